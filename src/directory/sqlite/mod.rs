//! The directory on an embedded SQLite file: one thread owns the one connection, so writes are
//! serialised in the process and "database is locked" cannot happen between our own requests
//! (another process, such as `otpgate directory import`, waits on `busy_timeout`).
//!
//! Schema versions are kept by rusqlite_migration in `user_version`. The sign-in index is
//! refreshed after each commit, on the same thread, before the caller gets its answer; changes
//! committed by another process are seen through `PRAGMA data_version` within a second.

mod logs;
mod queries;
mod refresh;
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;
use tracing::{info, warn};

pub use schema::connect;

use super::checks::{check_name, check_tenant_id, check_upn};
use super::index::ReadyIndex;
use super::policy::{self, SmsPolicy, SmsPolicyPatch, TargetType};
use super::*;
use crate::metrics as m;
use logs::{audit, category_name, insert_sign_ins};
use queries::*;
use refresh::{refresh_tenant, refresh_user, reload_index};

/// How many sign-in records may wait for the writer before new ones are dropped (and counted).
const MAX_PENDING_LOG: usize = 100_000;
/// How often the writer looks for commits made by another process.
const EXTERNAL_CHECK: Duration = Duration::from_secs(1);
/// How long sign-in records wait to share a transaction.
const LOG_BATCH_WAIT: Duration = Duration::from_millis(20);

type Job = Box<dyn FnOnce(&mut Connection, &ReadyIndex) + Send>;

enum Msg {
    Call(Job),
    /// Sign-in records are waiting in the buffer (sent when it stops being empty).
    LogsWaiting,
}

/// The SQLite directory; cheap to clone.
#[derive(Clone)]
pub struct SqliteDirectory {
    jobs: mpsc::Sender<Msg>,
    index: Arc<ReadyIndex>,
    /// Sign-in records not yet written: filled by requests without waking the thread for each.
    log_buffer: Arc<std::sync::Mutex<Vec<SignInEvent>>>,
}

impl SqliteDirectory {
    /// Opens the database and starts its thread; the index is loaded before this returns.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = connect(path)?;
        let index = Arc::new(ReadyIndex::default());
        reload_index(&mut conn, &index)?;
        info!(path = %path.display(), ready = index.len(), "directory opened");
        let (jobs, inbox) = mpsc::channel();
        let log_buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let thread_index = index.clone();
        let thread_buffer = log_buffer.clone();
        std::thread::Builder::new()
            .name("directory".to_owned())
            .spawn(move || run(conn, &thread_index, &inbox, &thread_buffer))
            .map_err(|err| DirectoryError::Storage(format!("cannot start its thread: {err}")))?;
        Ok(Self {
            jobs,
            index,
            log_buffer,
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
                // IMMEDIATE: every write reads first; a deferred transaction's upgrade to a
                // write lock does not wait on busy_timeout when another process (the importer)
                // writes, it fails with SQLITE_BUSY at once.
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
                Ok(_) => {
                    if let Err(err) = refresh.apply(conn, index, &tid) {
                        // Committed but not reflected: fail closed, nobody in scope signs in
                        // until a later refresh reads the truth again.
                        warn!(%err, "cannot refresh the sign-in index; closing it for the change");
                        refresh.close(index, &tid);
                        return Err(err);
                    }
                }
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

impl SqliteDirectory {
    /// An audited change to one user's phone methods: the target is the user, the index is
    /// refreshed for that user, and `work` gets the user as it is in the transaction.
    async fn write_user<T: Send + 'static>(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        activity: &'static str,
        work: impl FnOnce(&Transaction<'_>, &str, &User) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (id, user_id) = (tid.to_owned(), uid.to_owned());
        self.write(
            actor,
            tid,
            activity,
            ("User", uid.to_owned()),
            Refresh::User(uid.to_owned()),
            move |tx| {
                let user = read_user(tx, &id, &user_id)?;
                let value = work(tx, &id, &user)?;
                Ok((value, user.user_principal_name))
            },
        )
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

    /// What a failed refresh leaves: no ready entry the change may have touched.
    fn close(&self, index: &ReadyIndex, tid: &str) {
        match self {
            Refresh::None => {}
            Refresh::User(uid) => index.replace_user(tid, uid, None),
            Refresh::Tenant | Refresh::RemoveTenant => index.remove_tenant(tid),
        }
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
    log_buffer: &std::sync::Mutex<Vec<SignInEvent>>,
) {
    let mut seen_version = data_version(&conn).unwrap_or(0);
    let mut checked = Instant::now();
    let mut logs_due: Option<Instant> = None;
    loop {
        let wait = logs_due.map_or(EXTERNAL_CHECK, |due| {
            due.saturating_duration_since(Instant::now())
        });
        match inbox.recv_timeout(wait) {
            Ok(Msg::Call(job)) => job(&mut conn, index),
            // One commit per record cost ~50 µs of this thread per sign-in, and a wake-up per
            // record as much again (measured with scripts/bench-e2e): records wait up to
            // LOG_BATCH_WAIT in the buffer and share one transaction. Calls are not delayed.
            Ok(Msg::LogsWaiting) => {
                logs_due.get_or_insert_with(|| Instant::now() + LOG_BATCH_WAIT);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                flush_logs(&mut conn, log_buffer);
                break;
            }
        }
        if logs_due.is_some_and(|due| Instant::now() >= due) {
            logs_due = None;
            flush_logs(&mut conn, log_buffer);
        }
        // `data_version` changes only for commits of other connections; looked at once per
        // EXTERNAL_CHECK, not per call.
        if checked.elapsed() >= EXTERNAL_CHECK {
            checked = Instant::now();
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
}

/// Writes every buffered sign-in record in one transaction.
fn flush_logs(conn: &mut Connection, log_buffer: &std::sync::Mutex<Vec<SignInEvent>>) {
    let batch = std::mem::take(&mut *log_buffer.lock().unwrap_or_else(|e| e.into_inner()));
    if batch.is_empty() {
        return;
    }
    if let Err(err) = insert_sign_ins(conn, &batch) {
        warn!(%err, records = batch.len(), "cannot write the sign-in log");
    }
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    cached_row(conn, "PRAGMA data_version", [], |row| row.get(0))
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
                // Its logs go too (they hold masked numbers and user ids); what stays is the
                // one "Delete tenant" entry this write adds.
                cached_exec(
                    tx,
                    "DELETE FROM directory_audits WHERE tenant_id = ?1",
                    [&id],
                )?;
                cached_exec(tx, "DELETE FROM sign_ins WHERE tenant_id = ?1", [&id])?;
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
        self.write_user(
            actor,
            tid,
            uid,
            "Admin registered security info",
            move |tx, id, user| {
                let user_id = user.id.as_str();
                let existing = read_methods(tx, id, user_id)?;
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
                    [id, user_id, kind.as_str(), number.as_str()],
                )?;
                if kind == PhoneType::Mobile && allowed(tx, id, user)? {
                    try_register(tx, id, user_id, number.as_str())?;
                }
                read_method(tx, id, user_id, kind)
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
        self.write_user(
            actor,
            tid,
            uid,
            "Admin updated security info",
            move |tx, id, user| {
                let user_id = user.id.as_str();
                if cached_exec(
                    tx,
                    "UPDATE phone_methods SET phone_number = ?4
                 WHERE tenant_id = ?1 AND user_id = ?2 AND phone_type = ?3",
                    [id, user_id, kind.as_str(), number.as_str()],
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
                        [id, user_id],
                    )? > 0;
                    if registered || allowed(tx, id, user)? {
                        try_register(tx, id, user_id, number.as_str())?;
                    }
                }
                read_method(tx, id, user_id, kind)
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
        self.write_user(actor, tid, uid, "Admin deleted security info", move |tx, id, user| {
            let user_id = user.id.as_str();
            let existing = read_methods(tx, id, user_id)?;
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
                    [id, user_id],
                )?;
            }
            cached_exec(tx,
                "DELETE FROM phone_methods WHERE tenant_id = ?1 AND user_id = ?2 AND phone_type = ?3",
                [id, user_id, kind.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn enable_sms_sign_in(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<PhoneMethod> {
        self.write_user(
            actor,
            tid,
            uid,
            "Admin enabled SMS sign-in",
            move |tx, id, user| {
                let user_id = user.id.as_str();
                let method = read_method(tx, id, user_id, kind)?;
                match method.state {
                    SmsSignInState::NotSupported => return Err(DirectoryError::NotSupported),
                    SmsSignInState::NotAllowedByPolicy => {
                        return Err(DirectoryError::NotAllowedByPolicy);
                    }
                    SmsSignInState::Ready => return Ok(method),
                    SmsSignInState::NotEnabled | SmsSignInState::PhoneNumberNotUnique => {}
                }
                if !try_register(tx, id, user_id, method.number.as_str())? {
                    let holder =
                        holder(tx, id, user_id, method.number.as_str())?.ok_or_else(|| {
                            DirectoryError::Storage(
                                "a unique index refused without a holder".into(),
                            )
                        })?;
                    return Err(DirectoryError::NumberNotUnique { holder });
                }
                read_method(tx, id, user_id, kind)
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
        self.write_user(
            actor,
            tid,
            uid,
            "Admin disabled SMS sign-in",
            move |tx, id, user| {
                let user_id = user.id.as_str();
                let method = read_method(tx, id, user_id, kind)?;
                if method.kind != PhoneType::Mobile {
                    return Err(DirectoryError::NotSupported);
                }
                cached_exec(
                    tx,
                    "DELETE FROM sms_sign_in WHERE tenant_id = ?1 AND user_id = ?2",
                    [id, user_id],
                )?;
                read_method(tx, id, user_id, kind)
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
        patch: SmsPolicyPatch,
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
                // Read, patch and write in one transaction: two admins' PATCHes cannot undo
                // each other's targets.
                let current = read_policy(tx, &id)?;
                let policy = current.patched(patch).map_err(DirectoryError::Invalid)?;
                // Only targets the patch adds must exist: one deleted since (a group, a user)
                // stays harmless and must not block the next change, such as turning it off.
                let known: Vec<&policy::Target> = current.named_ids().collect();
                for target in policy.named_ids().filter(|t| !known.contains(t)) {
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
                "SELECT seq, at, tenant_id, user_id, phase, result, phone_masked, client, ip
                 FROM sign_ins WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let records = statement
                .query_map(params![tid, top.clamp(1, 1000) as i64], |row| {
                    let phase: String = row.get(4)?;
                    Ok(SignInRecord {
                        id: record_id(row.get(0)?),
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

    fn record_sign_in(&self, event: SignInEvent) {
        let first = {
            let mut buffer = self.log_buffer.lock().unwrap_or_else(|e| e.into_inner());
            if buffer.len() >= MAX_PENDING_LOG {
                drop(buffer);
                metrics::counter!(m::SIGNIN_LOG_DROPPED_TOTAL).increment(1);
                return;
            }
            buffer.push(event);
            buffer.len() == 1
        };
        // Only the first record of a batch wakes the thread.
        if first {
            let _ = self.jobs.send(Msg::LogsWaiting);
        }
    }

    fn ready(&self, tid: &str, phone: &PhoneNumber) -> Option<Arc<ReadyEntry>> {
        self.index.lookup(tid, phone)
    }
}

/// A sign-in record's id, GUID-shaped, from its rowid.
fn record_id(seq: i64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", seq)
}
