//! The text-message policy (`smsAuthenticationMethodConfiguration`) and who it lets sign in.

use serde::{Deserialize, Serialize};

/// The id that targets every user of the tenant.
pub const ALL_USERS: &str = "all_users";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetType {
    User,
    Group,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::User => "user",
            TargetType::Group => "group",
        }
    }
}

/// An include or exclude target. `is_usable_for_sign_in` means something only when included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub id: String,
    pub target_type: TargetType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_usable_for_sign_in: Option<bool>,
}

/// One tenant's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPolicy {
    pub enabled: bool,
    pub include: Vec<Target>,
    pub exclude: Vec<Target>,
}

impl Default for SmsPolicy {
    /// As a new Entra tenant has it: off, and when turned on, for all users with sign-in.
    fn default() -> Self {
        Self {
            enabled: false,
            include: vec![Target {
                id: ALL_USERS.to_owned(),
                target_type: TargetType::Group,
                is_usable_for_sign_in: Some(true),
            }],
            exclude: Vec::new(),
        }
    }
}

/// A `PATCH` of the policy: what it leaves out stays as it was.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmsPolicyPatch {
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    pub state: Option<PolicyState>,
    pub include_targets: Option<Vec<Target>>,
    pub exclude_targets: Option<Vec<Target>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PolicyState {
    Enabled,
    Disabled,
}

impl SmsPolicy {
    /// The policy with `patch` applied; every target checked for shape (ids are checked against
    /// the directory by the backend).
    pub fn patched(&self, patch: SmsPolicyPatch) -> Result<SmsPolicy, String> {
        if patch.id.as_deref().is_some_and(|id| id != "Sms") {
            return Err("id must be Sms".to_owned());
        }
        let mut next = self.clone();
        if let Some(state) = patch.state {
            next.enabled = state == PolicyState::Enabled;
        }
        if let Some(mut include) = patch.include_targets {
            for target in &mut include {
                check(target)?;
                // Graph's default for an include target is usable for sign-in off.
                target.is_usable_for_sign_in = Some(target.is_usable_for_sign_in.unwrap_or(false));
            }
            next.include = include;
        }
        if let Some(mut exclude) = patch.exclude_targets {
            for target in &mut exclude {
                check(target)?;
                if target.is_usable_for_sign_in.is_some() {
                    return Err("excludeTargets take no isUsableForSignIn".to_owned());
                }
                target.is_usable_for_sign_in = None;
            }
            next.exclude = exclude;
        }
        Ok(next)
    }

    /// Whether a user with `user_id`, member of `groups`, may sign in with SMS as first factor.
    /// Exclusion wins over inclusion; only an include target usable for sign-in counts.
    pub fn allows_sign_in<'a>(
        &self,
        user_id: &str,
        account_enabled: bool,
        groups: impl Iterator<Item = &'a str> + Clone,
    ) -> bool {
        if !self.enabled || !account_enabled {
            return false;
        }
        if self
            .exclude
            .iter()
            .any(|target| hits(target, user_id, groups.clone()))
        {
            return false;
        }
        self.include.iter().any(|target| {
            target.is_usable_for_sign_in == Some(true) && hits(target, user_id, groups.clone())
        })
    }

    /// Every group and user id the policy names (besides `all_users`).
    pub fn named_ids(&self) -> impl Iterator<Item = &Target> {
        self.include
            .iter()
            .chain(&self.exclude)
            .filter(|t| t.id != ALL_USERS)
    }
}

/// Whether `target` names the user, `all_users`, or one of the user's groups.
fn hits<'a>(target: &Target, user_id: &str, mut groups: impl Iterator<Item = &'a str>) -> bool {
    match target.target_type {
        TargetType::User => target.id == user_id,
        TargetType::Group => target.id == ALL_USERS || groups.any(|g| g == target.id),
    }
}

fn check(target: &Target) -> Result<(), String> {
    if target.id.is_empty() {
        return Err("a target needs an id".to_owned());
    }
    if target.id == ALL_USERS && target.target_type != TargetType::Group {
        return Err("all_users is a target of type group".to_owned());
    }
    Ok(())
}

impl Serialize for SmsPolicy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration",
            "id": "Sms",
            "state": if self.enabled { "enabled" } else { "disabled" },
            "includeTargets": self.include,
            "excludeTargets": self.exclude,
        })
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, target_type: TargetType, sign_in: Option<bool>) -> Target {
        Target {
            id: id.to_owned(),
            target_type,
            is_usable_for_sign_in: sign_in,
        }
    }

    fn policy(include: Vec<Target>, exclude: Vec<Target>) -> SmsPolicy {
        SmsPolicy {
            enabled: true,
            include,
            exclude,
        }
    }

    #[test]
    fn all_users_group_and_user_targets() {
        let all = policy(
            vec![target(ALL_USERS, TargetType::Group, Some(true))],
            vec![],
        );
        assert!(all.allows_sign_in("u1", true, [].into_iter()));
        assert!(
            !all.allows_sign_in("u1", false, [].into_iter()),
            "disabled account"
        );
        let group = policy(vec![target("g1", TargetType::Group, Some(true))], vec![]);
        assert!(group.allows_sign_in("u1", true, ["g0", "g1"].into_iter()));
        assert!(!group.allows_sign_in("u1", true, ["g0"].into_iter()));
        let user = policy(vec![target("u1", TargetType::User, Some(true))], vec![]);
        assert!(user.allows_sign_in("u1", true, [].into_iter()));
        assert!(!user.allows_sign_in("u2", true, [].into_iter()));
    }

    #[test]
    fn exclusion_wins_and_only_sign_in_targets_count() {
        let excluded = policy(
            vec![target(ALL_USERS, TargetType::Group, Some(true))],
            vec![target("g9", TargetType::Group, None)],
        );
        assert!(!excluded.allows_sign_in("u1", true, ["g9"].into_iter()));
        assert!(excluded.allows_sign_in("u2", true, ["g1"].into_iter()));
        let mfa_only = policy(
            vec![target(ALL_USERS, TargetType::Group, Some(false))],
            vec![],
        );
        assert!(!mfa_only.allows_sign_in("u1", true, [].into_iter()));
        let off = SmsPolicy {
            enabled: false,
            ..excluded
        };
        assert!(!off.allows_sign_in("u2", true, [].into_iter()));
    }

    #[test]
    fn patches_keep_what_they_leave_out_and_refuse_bad_targets() {
        let base = SmsPolicy::default();
        let on = base
            .patched(SmsPolicyPatch {
                state: Some(PolicyState::Enabled),
                ..Default::default()
            })
            .expect("valid");
        assert!(on.enabled);
        assert_eq!(on.include, base.include);
        let bad = base.patched(SmsPolicyPatch {
            include_targets: Some(vec![target(ALL_USERS, TargetType::User, Some(true))]),
            ..Default::default()
        });
        assert!(bad.is_err());
        let json = serde_json::to_value(&on).expect("serialises");
        assert_eq!(json["state"], "enabled");
        assert_eq!(json["includeTargets"][0]["isUsableForSignIn"], true);
    }
}
