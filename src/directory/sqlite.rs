//! The directory on an embedded SQLite file: one thread owns the one connection, so writes are
//! serialised in the process and "database is locked" cannot happen between our own requests
//! (another process, such as `otpgate directory import`, waits on `busy_timeout`).
//!
//! Schema versions are kept by rusqlite_migration in `user_version`. The sign-in index is
//! refreshed after each commit, on the same thread, before the caller gets its answer; changes
//! committed by another process are seen through `PRAGMA data_version` within a second.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, params};
use rusqlite_migration::{M, Migrations};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::index::{Ready, ReadyIndex};
use super::policy::{SmsPolicy, Target, TargetType};
use super::*;
use crate::metrics as m;

const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE users (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    user_principal_name TEXT NOT NULL,
    account_enabled INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_upn ON users (tenant_id, user_principal_name COLLATE NOCASE);
CREATE TABLE groups (
    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE group_members (
    tenant_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    -- User first: the sign-in path's refresh asks for one user's groups. (With the group first
    -- and a second index by user, SQLite picks the covering primary key and scans the tenant.)
    PRIMARY KEY (tenant_id, user_id, group_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups(tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_group ON group_members (tenant_id, group_id);
CREATE TABLE phone_methods (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    phone_type TEXT NOT NULL CHECK (phone_type IN ('mobile', 'alternateMobile', 'office')),
    phone_number TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, phone_type),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX phone_methods_number ON phone_methods (tenant_id, phone_number);
-- SMS sign-in registrations: a number is unique among a tenant's registrations. A registration
-- is the user's mobile method's number; the writes that change or delete that method keep it so.
CREATE TABLE sms_sign_in (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    phone_number TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX sms_sign_in_number ON sms_sign_in (tenant_id, phone_number);
CREATE TABLE sms_policies (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL,
    include_targets TEXT NOT NULL,
    exclude_targets TEXT NOT NULL
);
CREATE TABLE directory_audits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    activity TEXT NOT NULL,
    category TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    target_name TEXT NOT NULL,
    success INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX directory_audits_tenant ON directory_audits (tenant_id, seq);
CREATE TABLE sign_ins (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    at TEXT NOT NULL,
    user_id TEXT,
    phase TEXT NOT NULL,
    result TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    client TEXT NOT NULL,
    ip TEXT NOT NULL
);
CREATE INDEX sign_ins_tenant ON sign_ins (tenant_id, seq);
"#];

/// How many sign-in records may wait for the writer before new ones are dropped (and counted).
const MAX_PENDING_LOG: usize = 100_000;
/// How often the writer looks for commits made by another process.
const EXTERNAL_CHECK: Duration = Duration::from_secs(1);

type Job = Box<dyn FnOnce(&mut Connection, &ReadyIndex) + Send>;

enum Msg {
    Call(Job),
    Log(SignInRecord),
}

/// The SQLite directory; cheap to clone.
#[derive(Clone)]
pub struct SqliteDirectory {
    jobs: mpsc::Sender<Msg>,
    index: Arc<ReadyIndex>,
    pending_log: Arc<AtomicUsize>,
}

/// Opens (creating and migrating) the database at `path` with the pragmas every connection
/// needs.
pub fn connect(path: &Path) -> Result<Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|err| {
            DirectoryError::Storage(format!("cannot create {}: {err}", parent.display()))
        })?;
    }
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(128);
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
        .to_latest(&mut conn)
        .map_err(|err| DirectoryError::Storage(format!("migration failed: {err}")))?;
    Ok(conn)
}

impl SqliteDirectory {
    /// Opens the database and starts its thread; the index is loaded before this returns.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = connect(path)?;
        let index = Arc::new(ReadyIndex::default());
        reload_index(&mut conn, &index)?;
        info!(path = %path.display(), ready = index.len(), "directory opened");
        let (jobs, inbox) = mpsc::channel();
        let pending_log = Arc::new(AtomicUsize::new(0));
        let thread_index = index.clone();
        let thread_pending = pending_log.clone();
        std::thread::Builder::new()
            .name("directory".to_owned())
            .spawn(move || run(conn, &thread_index, &inbox, &thread_pending))
            .map_err(|err| DirectoryError::Storage(format!("cannot start its thread: {err}")))?;
        Ok(Self {
            jobs,
            index,
            pending_log,
        })
    }

    pub fn index(&self) -> &ReadyIndex {
        &self.index
    }

    /// Runs `work` on the directory's thread.
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &ReadyIndex) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn, index| {
            let _ = reply.send(work(conn, index));
        });
        self.jobs
            .send(Msg::Call(job))
            .map_err(|_| DirectoryError::Storage("the directory thread has stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| DirectoryError::Storage("the directory thread has stopped".to_owned()))?
    }

    /// Runs an audited write: `work` in one transaction with its audit record; on failure the
    /// transaction is rolled back and the failure recorded. `refresh` then brings the index up
    /// to date.
    async fn write<T: Send + 'static>(
        &self,
        actor: &Actor,
        tid: &str,
        activity: &'static str,
        target: (&'static str, String),
        refresh: Refresh,
        work: impl FnOnce(&Transaction<'_>) -> Result<(T, String)> + Send + 'static,
    ) -> Result<T> {
        let (actor, tid) = (actor.0.clone(), tid.to_owned());
        self.call(move |conn, index| {
            let outcome = (|| {
                let tx = conn.transaction()?;
                let (value, name) = work(&tx)?;
                audit(
                    &tx,
                    &tid,
                    &actor,
                    activity,
                    &target,
                    &name,
                    Ok(reason(activity)),
                )?;
                tx.commit()?;
                Ok(value)
            })();
            match &outcome {
                Ok(_) => refresh.apply(conn, index, &tid)?,
                Err(err) if audits_failure(err) => {
                    if let Err(log_err) = audit(conn, &tid, &actor, activity, &target, "", Err(err))
                    {
                        warn!(%log_err, "cannot record a failed change in the audit log");
                    }
                }
                Err(_) => {}
            }
            outcome
        })
        .await
    }
}

/// What a write may have changed in the sign-in index.
enum Refresh {
    None,
    User(String),
    Tenant,
    RemoveTenant,
}

impl Refresh {
    fn apply(&self, conn: &Connection, index: &ReadyIndex, tid: &str) -> Result<()> {
        let outcome = self.refresh(conn, index, tid);
        metrics::gauge!(m::DIRECTORY_READY_NUMBERS).set(index.len() as f64);
        outcome
    }

    fn refresh(&self, conn: &Connection, index: &ReadyIndex, tid: &str) -> Result<()> {
        match self {
            Refresh::None => Ok(()),
            Refresh::User(uid) => refresh_user(conn, index, tid, uid),
            Refresh::Tenant => refresh_tenant(conn, index, tid),
            Refresh::RemoveTenant => {
                index.remove_tenant(tid);
                Ok(())
            }
        }
    }
}

fn audits_failure(err: &DirectoryError) -> bool {
    !matches!(
        err,
        DirectoryError::NotFound("tenant") | DirectoryError::Storage(_)
    )
}

fn reason(activity: &str) -> &'static str {
    match activity {
        "Admin enabled SMS sign-in" => "SMS sign-in registered",
        "Admin disabled SMS sign-in" => "SMS sign-in registration removed",
        _ => "",
    }
}

fn run(
    mut conn: Connection,
    index: &ReadyIndex,
    inbox: &mpsc::Receiver<Msg>,
    pending: &AtomicUsize,
) {
    let mut seen_version = data_version(&conn).unwrap_or(0);
    loop {
        match inbox.recv_timeout(EXTERNAL_CHECK) {
            Ok(Msg::Call(job)) => job(&mut conn, index),
            Ok(Msg::Log(record)) => {
                // Sign-in records come in bursts: one transaction for all that are waiting.
                let mut batch = vec![record];
                let mut jobs = Vec::new();
                while batch.len() < 1000 {
                    match inbox.try_recv() {
                        Ok(Msg::Log(record)) => batch.push(record),
                        Ok(Msg::Call(job)) => {
                            jobs.push(job);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                pending.fetch_sub(batch.len(), Ordering::Relaxed);
                if let Err(err) = insert_sign_ins(&mut conn, &batch) {
                    warn!(%err, records = batch.len(), "cannot write the sign-in log");
                }
                for job in jobs {
                    job(&mut conn, index);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        // `data_version` changes only for commits of other connections.
        if let Ok(version) = data_version(&conn)
            && version != seen_version
        {
            seen_version = version;
            if let Err(err) = reload_index(&mut conn, index) {
                warn!(%err, "cannot reload the sign-in index after an outside change");
            }
        }
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    cached_row(conn, "PRAGMA data_version", [], |row| row.get(0))
}

fn insert_sign_ins(conn: &mut Connection, batch: &[SignInRecord]) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO sign_ins (id, tenant_id, at, user_id, phase, result, phone_masked, client, ip)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for r in batch {
            insert.execute(params![
                r.id,
                r.tenant,
                r.at,
                r.user_id,
                r.phase,
                r.result,
                r.phone_masked,
                r.client,
                r.ip
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn audit(
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

fn category(activity: &str) -> &'static str {
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

/// `execute` through the statement cache: the same few statements run for every change.
fn cached_exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// `query_row` through the statement cache.
fn cached_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, map)
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

// ---- reads ----------------------------------------------------------------------------------

fn tenant_exists(conn: &Connection, tid: &str) -> Result<()> {
    cached_row(conn, "SELECT 1 FROM tenants WHERE id = ?1", [tid], |_| {
        Ok(())
    })
    .optional()?
    .ok_or(DirectoryError::NotFound("tenant"))
}

fn read_tenant(conn: &Connection, tid: &str) -> Result<Tenant> {
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

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        display_name: row.get(1)?,
        user_principal_name: row.get(2)?,
        account_enabled: row.get(3)?,
    })
}

const USER_COLUMNS: &str = "id, display_name, user_principal_name, account_enabled";

fn read_user(conn: &Connection, tid: &str, uid: &str) -> Result<User> {
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

fn read_group(conn: &Connection, tid: &str, gid: &str) -> Result<Group> {
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

fn read_policy(conn: &Connection, tid: &str) -> Result<SmsPolicy> {
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

fn user_groups(conn: &Connection, tid: &str, uid: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT group_id FROM group_members WHERE tenant_id = ?1 AND user_id = ?2",
    )?;
    let groups = statement
        .query_map([tid, uid], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(groups)
}

fn allowed(conn: &Connection, tid: &str, user: &User) -> Result<bool> {
    let policy = read_policy(conn, tid)?;
    let groups = user_groups(conn, tid, &user.id)?;
    Ok(policy.allows_sign_in(
        &user.id,
        user.account_enabled,
        groups.iter().map(String::as_str),
    ))
}

fn registration(conn: &Connection, tid: &str, uid: &str) -> Result<Option<String>> {
    Ok(cached_row(
        conn,
        "SELECT phone_number FROM sms_sign_in WHERE tenant_id = ?1 AND user_id = ?2",
        [tid, uid],
        |row| row.get(0),
    )
    .optional()?)
}

/// The user (other than `uid`) whose sign-in registration holds `number`.
fn holder(conn: &Connection, tid: &str, uid: &str, number: &str) -> Result<Option<UserRef>> {
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

fn stored_number(text: String) -> Result<PhoneNumber> {
    PhoneNumber::parse(&text)
        .map_err(|_| DirectoryError::Storage("a stored phone number is not E.164".to_owned()))
}

/// A user's methods with their computed sign-in state.
fn read_methods(conn: &Connection, tid: &str, uid: &str) -> Result<Vec<PhoneMethod>> {
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

fn read_method(conn: &Connection, tid: &str, uid: &str, kind: PhoneType) -> Result<PhoneMethod> {
    read_methods(conn, tid, uid)?
        .into_iter()
        .find(|m| m.kind == kind)
        .ok_or(DirectoryError::NotFound("phone method"))
}

// ---- the index ------------------------------------------------------------------------------

fn reload_index(conn: &mut Connection, index: &ReadyIndex) -> Result<()> {
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
fn ready_of(conn: &Connection, tid: &str, uid: Option<&str>) -> Result<Vec<Ready>> {
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

fn refresh_tenant(conn: &Connection, index: &ReadyIndex, tid: &str) -> Result<()> {
    let ready = ready_of(conn, tid, None)?;
    index.replace_tenant(tid, ready);
    Ok(())
}

fn refresh_user(conn: &Connection, index: &ReadyIndex, tid: &str, uid: &str) -> Result<()> {
    let ready = ready_of(conn, tid, Some(uid))?;
    index.replace_user(tid, uid, ready.into_iter().next());
    Ok(())
}

// ---- writes ---------------------------------------------------------------------------------

/// Registers the user's mobile number for sign-in if the index allows; whether it took.
fn try_register(tx: &Transaction<'_>, tid: &str, uid: &str, number: &str) -> Result<bool> {
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

fn check_name(field: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.len() > 256 || trimmed.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(format!(
            "{field} must be 1 to 256 printable characters"
        )));
    }
    Ok(trimmed.to_owned())
}

fn check_upn(value: &str) -> Result<String> {
    let upn = check_name("userPrincipalName", value)?;
    match upn.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !upn.contains(char::is_whitespace) =>
        {
            Ok(upn)
        }
        _ => Err(DirectoryError::Invalid(
            "userPrincipalName must look like alias@domain".to_owned(),
        )),
    }
}

fn check_tenant_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(DirectoryError::Invalid(
            "a tenant id is 1 to 64 letters, digits, '-', '_' or '.'".to_owned(),
        ));
    }
    Ok(())
}

fn upn_taken(err: rusqlite::Error) -> DirectoryError {
    if is_unique_violation(&err) {
        DirectoryError::Conflict("another user of the tenant has this userPrincipalName".to_owned())
    } else {
        err.into()
    }
}

#[async_trait]
impl Directory for SqliteDirectory {
    async fn create_tenant(
        &self,
        actor: &Actor,
        id: Option<String>,
        display_name: String,
    ) -> Result<Tenant> {
        let id = id.unwrap_or_else(new_id);
        check_tenant_id(&id)?;
        let name = check_name("displayName", &display_name)?;
        let tid = id.clone();
        self.write(
            actor,
            &id,
            "Add tenant",
            ("Tenant", id.clone()),
            Refresh::None,
            move |tx| {
                match cached_exec(
                    tx,
                    "INSERT INTO tenants (id, display_name, created_at) VALUES (?1, ?2, ?3)",
                    params![tid, name, now_rfc3339()],
                ) {
                    Err(err) if is_unique_violation(&err) => {
                        return Err(DirectoryError::Conflict(
                            "a tenant with this id exists".to_owned(),
                        ));
                    }
                    other => other?,
                };
                let policy = SmsPolicy::default();
                cached_exec(tx,
                    "INSERT INTO sms_policies (tenant_id, enabled, include_targets, exclude_targets)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        tid,
                        policy.enabled,
                        json_targets(&policy.include),
                        json_targets(&policy.exclude)
                    ],
                )?;
                Ok((
                    Tenant {
                        id: tid,
                        display_name: name.clone(),
                    },
                    name,
                ))
            },
        )
        .await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>> {
        self.call(|conn, _| {
            let mut statement = conn.prepare("SELECT id, display_name FROM tenants ORDER BY id")?;
            let tenants = statement
                .query_map([], |row| {
                    Ok(Tenant {
                        id: row.get(0)?,
                        display_name: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(tenants)
        })
        .await
    }

    async fn tenant(&self, tid: &str) -> Result<Tenant> {
        let tid = tid.to_owned();
        self.call(move |conn, _| read_tenant(conn, &tid)).await
    }

    async fn update_tenant(
        &self,
        actor: &Actor,
        tid: &str,
        display_name: String,
    ) -> Result<Tenant> {
        let name = check_name("displayName", &display_name)?;
        let id = tid.to_owned();
        self.write(
            actor,
            tid,
            "Update tenant",
            ("Tenant", tid.to_owned()),
            Refresh::None,
            move |tx| {
                if cached_exec(
                    tx,
                    "UPDATE tenants SET display_name = ?2 WHERE id = ?1",
                    [&id, &name],
                )? == 0
                {
                    return Err(DirectoryError::NotFound("tenant"));
                }
                Ok((
                    Tenant {
                        id,
                        display_name: name.clone(),
                    },
                    name,
                ))
            },
        )
        .await
    }

    async fn delete_tenant(&self, actor: &Actor, tid: &str) -> Result<()> {
        let id = tid.to_owned();
        self.write(
            actor,
            tid,
            "Delete tenant",
            ("Tenant", tid.to_owned()),
            Refresh::RemoveTenant,
            move |tx| {
                let tenant = read_tenant(tx, &id)?;
                cached_exec(tx, "DELETE FROM tenants WHERE id = ?1", [&id])?;
                Ok(((), tenant.display_name))
            },
        )
        .await
    }

    async fn create_user(&self, actor: &Actor, tid: &str, user: NewUser) -> Result<User> {
        let user = User {
            id: new_id(),
            display_name: check_name("displayName", &user.display_name)?,
            user_principal_name: check_upn(&user.user_principal_name)?,
            account_enabled: user.account_enabled,
        };
        let id = tid.to_owned();
        self.write(
            actor,
            tid,
            "Add user",
            ("User", user.id.clone()),
            Refresh::None,
            move |tx| {
                tenant_exists(tx, &id)?;
                cached_exec(tx,
                    "INSERT INTO users (tenant_id, id, display_name, user_principal_name, account_enabled)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        id,
                        user.id,
                        user.display_name,
                        user.user_principal_name,
                        user.account_enabled
                    ],
                )
                .map_err(upn_taken)?;
                let name = user.user_principal_name.clone();
                Ok((user, name))
            },
        )
        .await
    }

    async fn users(&self, tid: &str, query: UserQuery) -> Result<Page<User>> {
        let tid = tid.to_owned();
        self.call(move |conn, _| {
            tenant_exists(conn, &tid)?;
            let top = query.top.clamp(1, 999);
            // Only the filters asked for, so each can use its index (no `?n IS NULL OR`).
            let mut sql = format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1");
            let mut values: Vec<String> = vec![tid.clone()];
            if let Some(after) = &query.after {
                values.push(after.clone());
                sql.push_str(&format!(" AND id > ?{}", values.len()));
            }
            if let Some(upn) = &query.user_principal_name {
                values.push(upn.clone());
                sql.push_str(&format!(
                    " AND user_principal_name = ?{} COLLATE NOCASE",
                    values.len()
                ));
            }
            if let Some(phone) = &query.phone {
                values.push(phone.as_str().to_owned());
                sql.push_str(&format!(
                    " AND id IN (SELECT user_id FROM phone_methods WHERE tenant_id = ?1 \
                     AND phone_number = ?{})",
                    values.len()
                ));
            }
            sql.push_str(&format!(" ORDER BY id LIMIT {}", top + 1));
            let mut statement = conn.prepare_cached(&sql)?;
            let mut items = statement
                .query_map(rusqlite::params_from_iter(values.iter()), user_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let more = items.len() > top;
            items.truncate(top);
            Ok(Page { items, more })
        })
        .await
    }

    async fn user(&self, tid: &str, uid: &str) -> Result<User> {
        let (tid, uid) = (tid.to_owned(), uid.to_owned());
        self.call(move |conn, _| read_user(conn, &tid, &uid)).await
    }

    async fn update_user(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        patch: UserPatch,
    ) -> Result<User> {
        let display_name = patch
            .display_name
            .as_deref()
            .map(|n| check_name("displayName", n))
            .transpose()?;
        let upn = patch
            .user_principal_name
            .as_deref()
            .map(check_upn)
            .transpose()?;
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Update user",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let mut user = read_user(tx, &id, &user_id)?;
                if let Some(name) = display_name {
                    user.display_name = name;
                }
                if let Some(upn) = upn {
                    user.user_principal_name = upn;
                }
                if let Some(enabled) = patch.account_enabled {
                    user.account_enabled = enabled;
                }
                cached_exec(tx,
                    "UPDATE users SET display_name = ?3, user_principal_name = ?4, account_enabled = ?5
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![
                        id,
                        user_id,
                        user.display_name,
                        user.user_principal_name,
                        user.account_enabled
                    ],
                )
                .map_err(upn_taken)?;
                let name = user.user_principal_name.clone();
                Ok((user, name))
            },
        )
        .await
    }

    async fn delete_user(&self, actor: &Actor, tid: &str, uid: &str) -> Result<()> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Delete user",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                // The registration goes with the user (cascade): the number is free again.
                cached_exec(
                    tx,
                    "DELETE FROM users WHERE tenant_id = ?1 AND id = ?2",
                    [&id, &user_id],
                )?;
                Ok(((), user.user_principal_name))
            },
        )
        .await
    }

    async fn create_group(&self, actor: &Actor, tid: &str, display_name: String) -> Result<Group> {
        let group = Group {
            id: new_id(),
            display_name: check_name("displayName", &display_name)?,
        };
        let id = tid.to_owned();
        self.write(
            actor,
            tid,
            "Add group",
            ("Group", group.id.clone()),
            Refresh::None,
            move |tx| {
                tenant_exists(tx, &id)?;
                cached_exec(
                    tx,
                    "INSERT INTO groups (tenant_id, id, display_name) VALUES (?1, ?2, ?3)",
                    [&id, &group.id, &group.display_name],
                )?;
                let name = group.display_name.clone();
                Ok((group, name))
            },
        )
        .await
    }

    async fn groups(&self, tid: &str) -> Result<Vec<Group>> {
        let tid = tid.to_owned();
        self.call(move |conn, _| {
            tenant_exists(conn, &tid)?;
            let mut statement = conn.prepare_cached(
                "SELECT id, display_name FROM groups WHERE tenant_id = ?1 ORDER BY display_name, id",
            )?;
            let groups = statement
                .query_map([&tid], |row| {
                    Ok(Group {
                        id: row.get(0)?,
                        display_name: row.get(1)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(groups)
        })
        .await
    }

    async fn group(&self, tid: &str, gid: &str) -> Result<Group> {
        let (tid, gid) = (tid.to_owned(), gid.to_owned());
        self.call(move |conn, _| read_group(conn, &tid, &gid)).await
    }

    async fn delete_group(&self, actor: &Actor, tid: &str, gid: &str) -> Result<()> {
        let (id, group_id) = (tid.to_owned(), gid.to_owned());
        self.write(
            actor,
            tid,
            "Delete group",
            ("Group", gid.to_owned()),
            Refresh::Tenant,
            move |tx| {
                let group = read_group(tx, &id, &group_id)?;
                cached_exec(
                    tx,
                    "DELETE FROM groups WHERE tenant_id = ?1 AND id = ?2",
                    [&id, &group_id],
                )?;
                Ok(((), group.display_name))
            },
        )
        .await
    }

    async fn members(&self, tid: &str, gid: &str) -> Result<Vec<User>> {
        let (tid, gid) = (tid.to_owned(), gid.to_owned());
        self.call(move |conn, _| {
            read_group(conn, &tid, &gid)?;
            let mut statement = conn.prepare_cached(
                "SELECT u.id, u.display_name, u.user_principal_name, u.account_enabled
                 FROM group_members g INDEXED BY group_members_group
                 JOIN users u ON u.tenant_id = g.tenant_id AND u.id = g.user_id
                 WHERE g.tenant_id = ?1 AND g.group_id = ?2 ORDER BY u.id",
            )?;
            let users = statement
                .query_map([&tid, &gid], user_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(users)
        })
        .await
    }

    async fn add_member(&self, actor: &Actor, tid: &str, gid: &str, uid: &str) -> Result<User> {
        let (id, group_id, user_id) = (tid.to_owned(), gid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Add member to group",
            ("Group", gid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let group = read_group(tx, &id, &group_id)?;
                let user = read_user(tx, &id, &user_id)?;
                match cached_exec(
                    tx,
                    "INSERT INTO group_members (tenant_id, group_id, user_id) VALUES (?1, ?2, ?3)",
                    [&id, &group_id, &user_id],
                ) {
                    Err(err) if is_unique_violation(&err) => {
                        return Err(DirectoryError::Conflict(
                            "the user is already a member of the group".to_owned(),
                        ));
                    }
                    other => other?,
                };
                Ok((user, group.display_name))
            },
        )
        .await
    }

    async fn remove_member(&self, actor: &Actor, tid: &str, gid: &str, uid: &str) -> Result<()> {
        let (id, group_id, user_id) = (tid.to_owned(), gid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Remove member from group",
            ("Group", gid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let group = read_group(tx, &id, &group_id)?;
                if cached_exec(tx,
                    "DELETE FROM group_members WHERE tenant_id = ?1 AND group_id = ?2 AND user_id = ?3",
                    [&id, &group_id, &user_id],
                )? == 0
                {
                    return Err(DirectoryError::NotFound("member"));
                }
                Ok(((), group.display_name))
            },
        )
        .await
    }

    async fn phone_methods(&self, tid: &str, uid: &str) -> Result<Vec<PhoneMethod>> {
        let (tid, uid) = (tid.to_owned(), uid.to_owned());
        self.call(move |conn, _| read_methods(conn, &tid, &uid))
            .await
    }

    async fn phone_method(&self, tid: &str, uid: &str, kind: PhoneType) -> Result<PhoneMethod> {
        let (tid, uid) = (tid.to_owned(), uid.to_owned());
        self.call(move |conn, _| read_method(conn, &tid, &uid, kind))
            .await
    }

    async fn add_phone_method(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
        number: PhoneNumber,
    ) -> Result<PhoneMethod> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Admin registered security info",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                let existing = read_methods(tx, &id, &user_id)?;
                if existing.iter().any(|m| m.kind == kind) {
                    return Err(DirectoryError::Conflict(format!(
                        "the user already has a {} method; PATCH it instead",
                        kind.as_str()
                    )));
                }
                if kind == PhoneType::AlternateMobile
                    && !existing.iter().any(|m| m.kind == PhoneType::Mobile)
                {
                    return Err(DirectoryError::MobileRequired);
                }
                cached_exec(
                    tx,
                    "INSERT INTO phone_methods (tenant_id, user_id, phone_type, phone_number)
                     VALUES (?1, ?2, ?3, ?4)",
                    [&id, &user_id, kind.as_str(), number.as_str()],
                )?;
                if kind == PhoneType::Mobile && allowed(tx, &id, &user)? {
                    try_register(tx, &id, &user_id, number.as_str())?;
                }
                Ok((
                    read_method(tx, &id, &user_id, kind)?,
                    user.user_principal_name,
                ))
            },
        )
        .await
    }

    async fn update_phone_method(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
        number: PhoneNumber,
    ) -> Result<PhoneMethod> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Admin updated security info",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                if cached_exec(
                    tx,
                    "UPDATE phone_methods SET phone_number = ?4
                     WHERE tenant_id = ?1 AND user_id = ?2 AND phone_type = ?3",
                    [&id, &user_id, kind.as_str(), number.as_str()],
                )? == 0
                {
                    return Err(DirectoryError::NotFound("phone method"));
                }
                if kind == PhoneType::Mobile {
                    // A registration follows its number, or is dropped if the new one is held
                    // by another user; an unregistered number of an allowed user is attempted.
                    let registered = cached_exec(
                        tx,
                        "DELETE FROM sms_sign_in WHERE tenant_id = ?1 AND user_id = ?2",
                        [&id, &user_id],
                    )? > 0;
                    if registered || allowed(tx, &id, &user)? {
                        try_register(tx, &id, &user_id, number.as_str())?;
                    }
                }
                Ok((
                    read_method(tx, &id, &user_id, kind)?,
                    user.user_principal_name,
                ))
            },
        )
        .await
    }

    async fn delete_phone_method(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<()> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Admin deleted security info",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                let existing = read_methods(tx, &id, &user_id)?;
                if !existing.iter().any(|m| m.kind == kind) {
                    return Err(DirectoryError::NotFound("phone method"));
                }
                if kind == PhoneType::Mobile
                    && existing.iter().any(|m| m.kind == PhoneType::AlternateMobile)
                {
                    return Err(DirectoryError::Conflict(
                        "delete the alternateMobile method before the mobile one".to_owned(),
                    ));
                }
                if kind == PhoneType::Mobile {
                    cached_exec(tx,
                        "DELETE FROM sms_sign_in WHERE tenant_id = ?1 AND user_id = ?2",
                        [&id, &user_id],
                    )?;
                }
                cached_exec(tx,
                    "DELETE FROM phone_methods WHERE tenant_id = ?1 AND user_id = ?2 AND phone_type = ?3",
                    [&id, &user_id, kind.as_str()],
                )?;
                Ok(((), user.user_principal_name))
            },
        )
        .await
    }

    async fn enable_sms_sign_in(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<PhoneMethod> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Admin enabled SMS sign-in",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                let method = read_method(tx, &id, &user_id, kind)?;
                match method.state {
                    SmsSignInState::NotSupported => return Err(DirectoryError::NotSupported),
                    SmsSignInState::NotAllowedByPolicy => {
                        return Err(DirectoryError::NotAllowedByPolicy);
                    }
                    SmsSignInState::Ready => return Ok((method, user.user_principal_name)),
                    SmsSignInState::NotEnabled | SmsSignInState::PhoneNumberNotUnique => {}
                }
                if !try_register(tx, &id, &user_id, method.number.as_str())? {
                    let holder =
                        holder(tx, &id, &user_id, method.number.as_str())?.ok_or_else(|| {
                            DirectoryError::Storage(
                                "a unique index refused without a holder".into(),
                            )
                        })?;
                    return Err(DirectoryError::NumberNotUnique { holder });
                }
                Ok((
                    read_method(tx, &id, &user_id, kind)?,
                    user.user_principal_name,
                ))
            },
        )
        .await
    }

    async fn disable_sms_sign_in(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<PhoneMethod> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            "Admin disabled SMS sign-in",
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                let method = read_method(tx, &id, &user_id, kind)?;
                if method.kind != PhoneType::Mobile {
                    return Err(DirectoryError::NotSupported);
                }
                cached_exec(
                    tx,
                    "DELETE FROM sms_sign_in WHERE tenant_id = ?1 AND user_id = ?2",
                    [&id, &user_id],
                )?;
                Ok((
                    read_method(tx, &id, &user_id, kind)?,
                    user.user_principal_name,
                ))
            },
        )
        .await
    }

    async fn sms_policy(&self, tid: &str) -> Result<SmsPolicy> {
        let tid = tid.to_owned();
        self.call(move |conn, _| read_policy(conn, &tid)).await
    }

    async fn update_sms_policy(
        &self,
        actor: &Actor,
        tid: &str,
        policy: SmsPolicy,
    ) -> Result<SmsPolicy> {
        let id = tid.to_owned();
        self.write(
            actor,
            tid,
            "Update authentication methods policy",
            ("Policy", "Sms".to_owned()),
            Refresh::Tenant,
            move |tx| {
                tenant_exists(tx, &id)?;
                for target in policy.named_ids() {
                    let table = match target.target_type {
                        TargetType::User => "users",
                        TargetType::Group => "groups",
                    };
                    let found = cached_row(
                        tx,
                        &format!("SELECT 1 FROM {table} WHERE tenant_id = ?1 AND id = ?2"),
                        [&id, &target.id],
                        |_| Ok(()),
                    )
                    .optional()?;
                    if found.is_none() {
                        return Err(DirectoryError::Invalid(format!(
                            "target {} is no {} of this tenant",
                            target.id,
                            target.target_type.as_str()
                        )));
                    }
                }
                cached_exec(tx,
                    "INSERT INTO sms_policies (tenant_id, enabled, include_targets, exclude_targets)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant_id) DO UPDATE SET enabled = ?2, include_targets = ?3,
                         exclude_targets = ?4",
                    params![
                        id,
                        policy.enabled,
                        json_targets(&policy.include),
                        json_targets(&policy.exclude)
                    ],
                )?;
                Ok((policy, "Text message".to_owned()))
            },
        )
        .await
    }

    async fn directory_audits(&self, tid: &str, top: usize) -> Result<Vec<AuditRecord>> {
        let tid = tid.to_owned();
        self.call(move |conn, _| {
            tenant_exists(conn, &tid)?;
            let mut statement = conn.prepare_cached(
                "SELECT id, at, actor, activity, category, target_type, target_id, target_name,
                        success, reason
                 FROM directory_audits WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let records = statement
                .query_map(params![tid, top.clamp(1, 1000) as i64], |row| {
                    let category: String = row.get(4)?;
                    Ok(AuditRecord {
                        id: row.get(0)?,
                        at: row.get(1)?,
                        actor: row.get(2)?,
                        activity: row.get(3)?,
                        category: category_name(&category),
                        target_type: row.get(5)?,
                        target_id: row.get(6)?,
                        target_name: row.get(7)?,
                        success: row.get(8)?,
                        reason: row.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(records)
        })
        .await
    }

    async fn sign_ins(&self, tid: &str, top: usize) -> Result<Vec<SignInRecord>> {
        let tid = tid.to_owned();
        self.call(move |conn, _| {
            tenant_exists(conn, &tid)?;
            let mut statement = conn.prepare_cached(
                "SELECT id, at, tenant_id, user_id, phase, result, phone_masked, client, ip
                 FROM sign_ins WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let records = statement
                .query_map(params![tid, top.clamp(1, 1000) as i64], |row| {
                    let phase: String = row.get(4)?;
                    Ok(SignInRecord {
                        id: row.get(0)?,
                        at: row.get(1)?,
                        tenant: row.get(2)?,
                        user_id: row.get(3)?,
                        phase: if phase == "start" {
                            "start"
                        } else {
                            "complete"
                        },
                        result: row.get(5)?,
                        phone_masked: row.get(6)?,
                        client: row.get(7)?,
                        ip: row.get(8)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(records)
        })
        .await
    }

    fn record_sign_in(&self, record: SignInRecord) {
        if self.pending_log.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING_LOG {
            self.pending_log.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!(m::SIGNIN_LOG_DROPPED_TOTAL).increment(1);
            return;
        }
        if self.jobs.send(Msg::Log(record)).is_err() {
            self.pending_log.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn ready(&self, tid: &str, phone: &PhoneNumber) -> Option<ReadyEntry> {
        self.index.lookup(tid, phone)
    }
}

fn category_name(stored: &str) -> &'static str {
    match stored {
        "Policy" => "Policy",
        "GroupManagement" => "GroupManagement",
        "DirectoryManagement" => "DirectoryManagement",
        _ => "UserManagement",
    }
}

fn json_targets(targets: &[Target]) -> String {
    serde_json::to_string(targets).unwrap_or_else(|_| "[]".to_owned())
}
