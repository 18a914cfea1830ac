//! The statements of the SQLite directory: reads, and the small writes several changes share.
//! Every statement goes through the connection's statement cache.

use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction};

use crate::directory::policy::{SmsPolicy, Target};
use crate::directory::*;

/// `execute` through the statement cache: the same few statements run for every change.
pub(super) fn cached_exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache.
pub(super) fn cached_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, map)
}

pub(super) fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

pub(super) fn tenant_exists(conn: &Connection, tid: &str) -> Result<()> {
    cached_row(conn, "SELECT 1 FROM tenants WHERE id = ?1", [tid], |_| {
        Ok(())
    })
    .optional()?
    .ok_or(DirectoryError::NotFound("tenant"))
}

pub(super) fn read_tenant(conn: &Connection, tid: &str) -> Result<Tenant> {
    cached_row(
        conn,
        "SELECT id, display_name FROM tenants WHERE id = ?1",
        [tid],
        |row| {
            Ok(Tenant {
                id: row.get(0)?,
                display_name: row.get(1)?,
            })
        },
    )
    .optional()?
    .ok_or(DirectoryError::NotFound("tenant"))
}

pub(super) fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        display_name: row.get(1)?,
        user_principal_name: row.get(2)?,
        account_enabled: row.get(3)?,
    })
}

pub(super) const USER_COLUMNS: &str = "id, display_name, user_principal_name, account_enabled";

pub(super) fn read_user(conn: &Connection, tid: &str, uid: &str) -> Result<User> {
    tenant_exists(conn, tid)?;
    cached_row(
        conn,
        &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1 AND id = ?2"),
        [tid, uid],
        user_from_row,
    )
    .optional()?
    .ok_or(DirectoryError::NotFound("user"))
}

pub(super) fn read_group(conn: &Connection, tid: &str, gid: &str) -> Result<Group> {
    tenant_exists(conn, tid)?;
    cached_row(
        conn,
        "SELECT id, display_name FROM groups WHERE tenant_id = ?1 AND id = ?2",
        [tid, gid],
        |row| {
            Ok(Group {
                id: row.get(0)?,
                display_name: row.get(1)?,
            })
        },
    )
    .optional()?
    .ok_or(DirectoryError::NotFound("group"))
}

pub(super) fn read_policy(conn: &Connection, tid: &str) -> Result<SmsPolicy> {
    let row: Option<(bool, String, String)> = cached_row(
        conn,
        "SELECT enabled, include_targets, exclude_targets FROM sms_policies WHERE tenant_id = ?1",
        [tid],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .optional()?;
    let Some((enabled, include, exclude)) = row else {
        tenant_exists(conn, tid)?;
        return Ok(SmsPolicy::default());
    };
    let parse = |text: &str| -> Result<Vec<Target>> {
        serde_json::from_str(text)
            .map_err(|err| DirectoryError::Storage(format!("stored policy unreadable: {err}")))
    };
    Ok(SmsPolicy {
        enabled,
        include: parse(&include)?,
        exclude: parse(&exclude)?,
    })
}

pub(super) fn user_groups(conn: &Connection, tid: &str, uid: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT group_id FROM group_members WHERE tenant_id = ?1 AND user_id = ?2",
    )?;
    let groups = statement
        .query_map([tid, uid], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(groups)
}

pub(super) fn allowed(conn: &Connection, tid: &str, user: &User) -> Result<bool> {
    let policy = read_policy(conn, tid)?;
    let groups = user_groups(conn, tid, &user.id)?;
    Ok(policy.allows_sign_in(
        &user.id,
        user.account_enabled,
        groups.iter().map(String::as_str),
    ))
}

pub(super) fn registration(conn: &Connection, tid: &str, uid: &str) -> Result<Option<String>> {
    Ok(cached_row(
        conn,
        "SELECT phone_number FROM sms_sign_in WHERE tenant_id = ?1 AND user_id = ?2",
        [tid, uid],
        |row| row.get(0),
    )
    .optional()?)
}

/// The user (other than `uid`) whose sign-in registration holds `number`.
pub(super) fn holder(
    conn: &Connection,
    tid: &str,
    uid: &str,
    number: &str,
) -> Result<Option<UserRef>> {
    Ok(cached_row(
        conn,
        "SELECT u.id, u.user_principal_name FROM sms_sign_in r
             JOIN users u ON u.tenant_id = r.tenant_id AND u.id = r.user_id
             WHERE r.tenant_id = ?1 AND r.phone_number = ?2 AND r.user_id <> ?3",
        [tid, number, uid],
        |row| {
            Ok(UserRef {
                id: row.get(0)?,
                user_principal_name: row.get(1)?,
            })
        },
    )
    .optional()?)
}

pub(super) fn stored_number(text: String) -> Result<PhoneNumber> {
    PhoneNumber::parse(&text)
        .map_err(|_| DirectoryError::Storage("a stored phone number is not E.164".to_owned()))
}

/// A user's methods with their computed sign-in state.
pub(super) fn read_methods(conn: &Connection, tid: &str, uid: &str) -> Result<Vec<PhoneMethod>> {
    let user = read_user(conn, tid, uid)?;
    let mut statement = conn.prepare_cached(
        "SELECT phone_type, phone_number FROM phone_methods WHERE tenant_id = ?1 AND user_id = ?2",
    )?;
    let rows = statement
        .query_map([tid, uid], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut methods = Vec::with_capacity(rows.len());
    let mut allowed_cache = None;
    for (kind, number) in rows {
        let kind = PhoneType::parse(&kind)
            .ok_or_else(|| DirectoryError::Storage("unknown stored phone type".to_owned()))?;
        let state = if kind != PhoneType::Mobile {
            SmsSignInState::NotSupported
        } else {
            let allowed = match allowed_cache {
                Some(allowed) => allowed,
                None => *allowed_cache.insert(allowed(conn, tid, &user)?),
            };
            if !allowed {
                SmsSignInState::NotAllowedByPolicy
            } else if registration(conn, tid, uid)?.is_some() {
                SmsSignInState::Ready
            } else if holder(conn, tid, uid, &number)?.is_some() {
                SmsSignInState::PhoneNumberNotUnique
            } else {
                SmsSignInState::NotEnabled
            }
        };
        methods.push(PhoneMethod {
            kind,
            number: stored_number(number)?,
            state,
        });
    }
    methods.sort_by_key(|m| PhoneType::ALL.iter().position(|k| *k == m.kind));
    Ok(methods)
}

pub(super) fn read_method(
    conn: &Connection,
    tid: &str,
    uid: &str,
    kind: PhoneType,
) -> Result<PhoneMethod> {
    read_methods(conn, tid, uid)?
        .into_iter()
        .find(|m| m.kind == kind)
        .ok_or(DirectoryError::NotFound("phone method"))
}

/// Registers the user's mobile number for sign-in if the index allows; whether it took.
pub(super) fn try_register(
    tx: &Transaction<'_>,
    tid: &str,
    uid: &str,
    number: &str,
) -> Result<bool> {
    match cached_exec(
        tx,
        "INSERT INTO sms_sign_in (tenant_id, user_id, phone_number) VALUES (?1, ?2, ?3)",
        [tid, uid, number],
    ) {
        Ok(_) => Ok(true),
        Err(err) if is_unique_violation(&err) => Ok(false),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn upn_taken(err: rusqlite::Error) -> DirectoryError {
    if is_unique_violation(&err) {
        DirectoryError::Conflict("another user of the tenant has this userPrincipalName".to_owned())
    } else {
        err.into()
    }
}

pub(super) fn json_targets(targets: &[Target]) -> String {
    serde_json::to_string(targets).unwrap_or_else(|_| "[]".to_owned())
}
