//! The directory's objects, serialised in Microsoft Graph's shapes.

use serde::{Deserialize, Serialize, Serializer};

use crate::phone::PhoneNumber;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub display_name: String,
    pub user_principal_name: String,
    pub account_enabled: bool,
}

/// A user as a problem or an audit entry names them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    pub id: String,
    pub user_principal_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub display_name: String,
    pub user_principal_name: String,
    #[serde(default = "enabled")]
    pub account_enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub user_principal_name: Option<String>,
    pub account_enabled: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    pub display_name: String,
}

/// The three phone method types; a user has at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PhoneType {
    Mobile,
    AlternateMobile,
    Office,
}

impl PhoneType {
    pub const ALL: [PhoneType; 3] = [
        PhoneType::Mobile,
        PhoneType::AlternateMobile,
        PhoneType::Office,
    ];

    /// Graph's fixed method id of the type, which is the method's id for every user.
    pub fn method_id(self) -> &'static str {
        match self {
            PhoneType::Mobile => "3179e48a-750b-4051-897c-87b9720928f7",
            PhoneType::AlternateMobile => "b6332ec1-7057-4abe-9331-3d72feddfe41",
            PhoneType::Office => "e37fc753-ff3b-4958-9484-eaa9425c82bc",
        }
    }

    pub fn from_method_id(id: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.method_id().eq_ignore_ascii_case(id))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::Mobile => "mobile",
            PhoneType::AlternateMobile => "alternateMobile",
            PhoneType::Office => "office",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Whether a phone method can be used for SMS sign-in; computed on every read, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SmsSignInState {
    /// Not a `mobile` method.
    NotSupported,
    /// Policy off, user not targeted for sign-in or excluded, or account disabled.
    NotAllowedByPolicy,
    /// Allowed, but not registered for sign-in.
    NotEnabled,
    /// Not registered because another user of the tenant holds the number for sign-in.
    PhoneNumberNotUnique,
    Ready,
}

impl SmsSignInState {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsSignInState::NotSupported => "notSupported",
            SmsSignInState::NotAllowedByPolicy => "notAllowedByPolicy",
            SmsSignInState::NotEnabled => "notEnabled",
            SmsSignInState::PhoneNumberNotUnique => "phoneNumberNotUnique",
            SmsSignInState::Ready => "ready",
        }
    }
}

/// A `phoneAuthenticationMethod` with its computed sign-in state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneMethod {
    pub kind: PhoneType,
    pub number: PhoneNumber,
    pub state: SmsSignInState,
}

impl Serialize for PhoneMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Graph<'a> {
            id: &'static str,
            phone_number: String,
            #[serde(rename = "phoneNumberE164")]
            phone_number_e164: &'a str,
            phone_type: PhoneType,
            sms_sign_in_state: SmsSignInState,
        }
        Graph {
            id: self.kind.method_id(),
            phone_number: self.number.graph_form(),
            phone_number_e164: self.number.as_str(),
            phone_type: self.kind,
            sms_sign_in_state: self.state,
        }
        .serialize(serializer)
    }
}

/// One admin change, as `directoryAudit` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    pub at: String,
    pub actor: String,
    /// Entra's activity name ("Admin registered security info", …).
    pub activity: String,
    pub category: &'static str,
    pub target_type: String,
    pub target_id: String,
    pub target_name: String,
    pub success: bool,
    pub reason: String,
}

impl Serialize for AuditRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "id": self.id,
            "activityDateTime": self.at,
            "activityDisplayName": self.activity,
            "category": self.category,
            "loggedByService": "Authentication Methods",
            "result": if self.success { "success" } else { "failure" },
            "resultReason": self.reason,
            "initiatedBy": { "app": { "displayName": self.actor } },
            "targetResources": [{
                "id": self.target_id,
                "type": self.target_type,
                "displayName": self.target_name,
            }],
        })
        .serialize(serializer)
    }
}

/// One sign-in start or complete. Holds a masked number only, never a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    /// Empty until the record is written: the log numbers its records.
    pub id: String,
    pub at: String,
    pub tenant: String,
    pub user_id: Option<String>,
    pub phase: &'static str,
    /// `codeSent`, `notReady`, `notQueued`, `approved`, `denied`, `expired`,
    /// `max_attempts_reached`, `not_found`.
    pub result: String,
    pub phone_masked: String,
    pub client: String,
    pub ip: String,
}

impl Serialize for SignInRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let success = matches!(self.result.as_str(), "codeSent" | "approved");
        serde_json::json!({
            "id": self.id,
            "createdDateTime": self.at,
            "userId": self.user_id,
            "appDisplayName": self.client,
            "ipAddress": self.ip,
            "phase": self.phase,
            "result": self.result,
            "phoneNumber": self.phone_masked,
            "authenticationMethodsUsed": ["Text message"],
            "status": {
                "errorCode": if success { 0 } else { 50126 },
                "failureReason": if success { None } else { Some(self.result.as_str()) },
            },
        })
        .serialize(serializer)
    }
}

/// A sign-in start or complete as the request path hands it to the log: what is cheap to take
/// there (no formatting, few allocations); the log masks the number and formats the rest when it
/// writes, behind the request. The full number never reaches a stored record.
#[derive(Debug, Clone)]
pub struct SignInEvent {
    pub at: std::time::SystemTime,
    pub tenant: String,
    pub user_id: Option<String>,
    pub phase: &'static str,
    pub result: &'static str,
    pub phone: PhoneNumber,
    pub client: String,
    pub ip: Option<std::net::IpAddr>,
}

/// The wall-clock time of a log record, RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A fresh GUID for users, groups and log records.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
