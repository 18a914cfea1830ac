//! Bringing the in-memory sign-in index up to date after a commit: one user, one tenant, or
//! everything (at start, and after another process's commits).

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::queries::{read_policy, stored_number};
use crate::directory::Result;
use crate::directory::index::{Ready, ReadyIndex};
use crate::metrics as m;

pub(super) fn reload_index(conn: &mut Connection, index: &ReadyIndex) -> Result<()> {
    let tenants: Vec<String> = conn
        .prepare("SELECT id FROM tenants")?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    index.retain_tenants(&tenants);
    for tid in &tenants {
        refresh_tenant(conn, index, tid)?;
    }
    metrics::gauge!(m::DIRECTORY_READY_NUMBERS).set(index.len() as f64);
    Ok(())
}

/// The registrations of `tid` (of one user when `uid` is given) that the policy allows.
pub(super) fn ready_of(conn: &Connection, tid: &str, uid: Option<&str>) -> Result<Vec<Ready>> {
    let policy = read_policy(conn, tid)?;
    if !policy.enabled {
        return Ok(Vec::new());
    }
    // One query shape per scope: an `?2 IS NULL OR` filter would stop SQLite from using the
    // (tenant_id, user_id) indexes and scan the tenant for every user's refresh.
    let mut memberships: HashMap<String, Vec<String>> = HashMap::new();
    {
        let sql = match uid {
            Some(_) => {
                "SELECT user_id, group_id FROM group_members WHERE tenant_id = ?1 AND user_id = ?2"
            }
            None => "SELECT user_id, group_id FROM group_members WHERE tenant_id = ?1",
        };
        let mut statement = conn.prepare_cached(sql)?;
        let mut rows = match uid {
            Some(uid) => statement.query(params![tid, uid])?,
            None => statement.query(params![tid])?,
        };
        while let Some(row) = rows.next()? {
            memberships
                .entry(row.get(0)?)
                .or_default()
                .push(row.get(1)?);
        }
    }
    const READY: &str =
        "SELECT r.phone_number, u.id, u.display_name, u.user_principal_name, u.account_enabled
         FROM sms_sign_in r JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id
         WHERE r.tenant_id = ?1";
    let mut statement = conn.prepare_cached(&match uid {
        Some(_) => format!("{READY} AND r.user_id = ?2"),
        None => READY.to_owned(),
    })?;
    let mut rows = match uid {
        Some(uid) => statement.query(params![tid, uid])?,
        None => statement.query(params![tid])?,
    };
    let mut ready = Vec::new();
    while let Some(row) = rows.next()? {
        let user_id: String = row.get(1)?;
        let groups = memberships.get(&user_id).map(Vec::as_slice).unwrap_or(&[]);
        if policy.allows_sign_in(&user_id, row.get(4)?, groups.iter().map(String::as_str)) {
            ready.push(Ready {
                number: stored_number(row.get(0)?)?,
                user_id,
                display_name: row.get(2)?,
                user_principal_name: row.get(3)?,
            });
        }
    }
    Ok(ready)
}

pub(super) fn refresh_tenant(conn: &Connection, index: &ReadyIndex, tid: &str) -> Result<()> {
    let ready = ready_of(conn, tid, None)?;
    index.replace_tenant(tid, ready);
    Ok(())
}

pub(super) fn refresh_user(
    conn: &Connection,
    index: &ReadyIndex,
    tid: &str,
    uid: &str,
) -> Result<()> {
    let ready = ready_of(conn, tid, Some(uid))?;
    index.replace_user(tid, uid, ready.into_iter().next());
    Ok(())
}
