//! `[destinations]`: geo permissions, the numbering plan, line types and the safe list
//! (`pumping::destinations`), parsed into a policy that cannot be invalid.

use serde::Deserialize;

use super::SettingError;
use crate::pumping::{DestinationPolicy, LineType, NumberingPlan, Prefixes};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDestinations {
    #[serde(default)]
    allow: Vec<String>,
    deny: Option<Vec<String>>,
    #[serde(default)]
    safe: Vec<String>,
    #[serde(default)]
    numbering_plan: NumberingPlan,
    #[serde(default)]
    structural_prefixes: Vec<String>,
    refuse_line_types: Option<Vec<LineType>>,
}

impl TryFrom<FileDestinations> for DestinationPolicy {
    type Error = SettingError;

    fn try_from(file: FileDestinations) -> Result<Self, SettingError> {
        let prefixes = |setting: &'static str, entries: &[String]| {
            Prefixes::parse(entries).map_err(|err| SettingError::new(setting, err.to_string()))
        };
        let defaults = DestinationPolicy::default();
        if file.refuse_line_types.as_ref().is_some_and(|types| {
            types
                .iter()
                .any(|t| matches!(t, LineType::Mobile | LineType::FixedLineOrMobile))
        }) {
            return Err(SettingError::new(
                "destinations.refuse_line_types",
                "mobile and fixed_line_or_mobile numbers are where codes go; they cannot be refused",
            ));
        }
        Ok(DestinationPolicy {
            allow: prefixes("destinations.allow", &file.allow)?,
            deny: match &file.deny {
                Some(deny) => prefixes("destinations.deny", deny)?,
                None => defaults.deny,
            },
            safe: prefixes("destinations.safe", &file.safe)?,
            numbering_plan: file.numbering_plan,
            structural: prefixes(
                "destinations.structural_prefixes",
                &file.structural_prefixes,
            )?,
            refused_line_types: file
                .refuse_line_types
                .unwrap_or(defaults.refused_line_types),
        })
    }
}
