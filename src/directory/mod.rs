//! The sign-in directory: tenants, users, groups, phone methods, the text-message policy, and the
//! audit and sign-in logs, behind the async [`Directory`] interface (SQLite today; a PostgreSQL
//! backend implements the same trait).
//!
//! Names follow Microsoft Graph (`phoneAuthenticationMethod`, `smsAuthenticationMethodConfiguration`).
//! SMS sign-in is a *registration* on a `mobile` method, separate from the method: the number is
//! unique among a tenant's registrations (a unique index), not among its methods.

pub mod checks;
pub mod import;
pub mod index;
pub mod model;
pub mod policy;
pub mod sqlite;

use async_trait::async_trait;

pub use checks::check_tenant_id;
pub use index::{ReadyEntry, ReadyIndex};
pub use model::*;
pub use policy::{SmsPolicy, Target, TargetType};

use crate::phone::PhoneNumber;

/// Why a directory operation failed; `http/problem.rs` maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("no such {0}")]
    NotFound(&'static str),
    /// A second tenant id, userPrincipalName, member or method of one type.
    #[error("{0}")]
    Conflict(String),
    /// Another user of the tenant holds this number for SMS sign-in.
    #[error("another user of the tenant uses this number for SMS sign-in")]
    NumberNotUnique { holder: UserRef },
    #[error("SMS sign-in needs a mobile phone method")]
    NotSupported,
    #[error("the text-message policy does not allow this user to sign in with SMS")]
    NotAllowedByPolicy,
    #[error("a user needs a mobile number before an alternateMobile one")]
    MobileRequired,
    /// A value the caller sent that the directory cannot hold; the text says which.
    #[error("{0}")]
    Invalid(String),
    /// The database failed; details are logged, not returned.
    #[error("directory storage failed: {0}")]
    Storage(String),
}

impl From<rusqlite::Error> for DirectoryError {
    fn from(err: rusqlite::Error) -> Self {
        DirectoryError::Storage(err.to_string())
    }
}

pub type Result<T> = std::result::Result<T, DirectoryError>;

/// Who made a change: the API client's name (or `cli` for the operator's import).
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// Where a list continues: the last id of the previous page.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub top: usize,
    pub after: Option<String>,
    pub user_principal_name: Option<String>,
    pub phone: Option<PhoneNumber>,
}

/// One page of a list, and whether another follows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// The directory as the HTTP API, the importer and the sign-in flow see it.
///
/// Every write returns the new state, is recorded in the audit log in the same transaction, and
/// updates the in-memory [`ReadyIndex`] before it returns, so a change takes effect at once.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    async fn create_tenant(
        &self,
        actor: &Actor,
        id: Option<String>,
        display_name: String,
    ) -> Result<Tenant>;
    async fn tenants(&self) -> Result<Vec<Tenant>>;
    async fn tenant(&self, tid: &str) -> Result<Tenant>;
    async fn update_tenant(&self, actor: &Actor, tid: &str, display_name: String)
    -> Result<Tenant>;
    async fn delete_tenant(&self, actor: &Actor, tid: &str) -> Result<()>;

    async fn create_user(&self, actor: &Actor, tid: &str, user: NewUser) -> Result<User>;
    async fn users(&self, tid: &str, query: UserQuery) -> Result<Page<User>>;
    async fn user(&self, tid: &str, uid: &str) -> Result<User>;
    async fn update_user(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        patch: UserPatch,
    ) -> Result<User>;
    async fn delete_user(&self, actor: &Actor, tid: &str, uid: &str) -> Result<()>;

    async fn create_group(&self, actor: &Actor, tid: &str, display_name: String) -> Result<Group>;
    async fn groups(&self, tid: &str) -> Result<Vec<Group>>;
    async fn group(&self, tid: &str, gid: &str) -> Result<Group>;
    async fn delete_group(&self, actor: &Actor, tid: &str, gid: &str) -> Result<()>;
    async fn members(&self, tid: &str, gid: &str) -> Result<Vec<User>>;
    async fn add_member(&self, actor: &Actor, tid: &str, gid: &str, uid: &str) -> Result<User>;
    async fn remove_member(&self, actor: &Actor, tid: &str, gid: &str, uid: &str) -> Result<()>;

    async fn phone_methods(&self, tid: &str, uid: &str) -> Result<Vec<PhoneMethod>>;
    async fn phone_method(&self, tid: &str, uid: &str, kind: PhoneType) -> Result<PhoneMethod>;
    /// Adds a method; a `mobile` of a user the policy allows attempts the sign-in registration.
    async fn add_phone_method(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
        number: PhoneNumber,
    ) -> Result<PhoneMethod>;
    async fn update_phone_method(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
        number: PhoneNumber,
    ) -> Result<PhoneMethod>;
    async fn delete_phone_method(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<()>;
    async fn enable_sms_sign_in(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<PhoneMethod>;
    async fn disable_sms_sign_in(
        &self,
        actor: &Actor,
        tid: &str,
        uid: &str,
        kind: PhoneType,
    ) -> Result<PhoneMethod>;

    async fn sms_policy(&self, tid: &str) -> Result<SmsPolicy>;
    /// Applies `patch` to the tenant's policy in one transaction; returns the new policy.
    async fn update_sms_policy(
        &self,
        actor: &Actor,
        tid: &str,
        patch: policy::SmsPolicyPatch,
    ) -> Result<SmsPolicy>;

    async fn directory_audits(&self, tid: &str, top: usize) -> Result<Vec<AuditRecord>>;
    async fn sign_ins(&self, tid: &str, top: usize) -> Result<Vec<SignInRecord>>;
    /// Queues a sign-in event for the log without waiting for it to be written.
    fn record_sign_in(&self, event: SignInEvent);

    /// The sign-in path: who may sign in with `phone` in tenant `tid`, from memory.
    fn ready(&self, tid: &str, phone: &PhoneNumber) -> Option<std::sync::Arc<ReadyEntry>>;
}
