//! The schema, as rusqlite_migration migrations (kept in `user_version`), and the pragmas every
//! connection needs.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::directory::{DirectoryError, Result};

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
-- Written in batches behind sign-in requests, so kept lean: the record's id is its rowid (no
-- AUTOINCREMENT bookkeeping, no GUID to draw per record).
CREATE TABLE sign_ins (
    seq INTEGER PRIMARY KEY,
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
