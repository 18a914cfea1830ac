//! The audit log (written in the same transaction as the change it records) and the sign-in
//! log (written in batches behind the requests).

use rusqlite::{Connection, params};

use super::queries::cached_exec;
use crate::directory::*;

pub(super) fn insert_sign_ins(conn: &mut Connection, batch: &[SignInEvent]) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO sign_ins (tenant_id, at, user_id, phase, result, phone_masked, client, ip)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for r in batch {
            insert.execute(params![
                r.tenant,
                humantime::format_rfc3339_millis(r.at).to_string(),
                r.user_id,
                r.phase,
                r.result,
                r.phone.masked().to_string(),
                r.client,
                r.ip.map(|ip| ip.to_string()).unwrap_or_default()
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn audit(
    conn: &Connection,
    tid: &str,
    actor: &str,
    activity: &str,
    target: &(&'static str, String),
    name: &str,
    result: std::result::Result<&str, &DirectoryError>,
) -> Result<()> {
    let (success, reason) = match result {
        Ok(reason) => (true, reason.to_owned()),
        Err(err) => (false, err.to_string()),
    };
    cached_exec(conn,
        "INSERT INTO directory_audits
         (id, tenant_id, at, actor, activity, category, target_type, target_id, target_name, success, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            new_id(),
            tid,
            now_rfc3339(),
            actor,
            activity,
            category(activity),
            target.0,
            target.1,
            name,
            success,
            reason
        ],
    )?;
    Ok(())
}

pub(super) fn category(activity: &str) -> &'static str {
    if activity.contains("security info") || activity.contains("SMS sign-in") {
        "UserManagement"
    } else if activity.contains("policy") {
        "Policy"
    } else if activity.contains("group") {
        "GroupManagement"
    } else if activity.contains("tenant") {
        "DirectoryManagement"
    } else {
        "UserManagement"
    }
}

pub(super) fn category_name(stored: &str) -> &'static str {
    match stored {
        "Policy" => "Policy",
        "GroupManagement" => "GroupManagement",
        "DirectoryManagement" => "DirectoryManagement",
        _ => "UserManagement",
    }
}
