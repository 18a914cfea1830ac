//! Which numbers may be sent an SMS at all: geo permissions (allow and deny lists by calling code
//! and prefix), the numbering plan (no SMS to unassigned ranges), a line-type policy (no codes to
//! premium-rate or shared-cost lines), and a safe list exempt from all three.

use crate::phone::PhoneNumber;

/// A set of E.164 prefixes (digits after `+`); the longest match is what counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prefixes(Vec<String>);

/// Why a prefix list entry is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a prefix: write + and 1 to 15 digits, such as +31 or +3197010")]
pub struct PrefixError(pub String);

impl Prefixes {
    /// Parses `+31`, `+44 7700`: `+` then 1 to 15 digits (spaces allowed).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PrefixError> {
        let mut prefixes = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref();
            let digits: String = entry
                .trim()
                .strip_prefix('+')
                .ok_or_else(|| PrefixError(entry.to_owned()))?
                .chars()
                .filter(|c| *c != ' ')
                .collect();
            if !(1..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PrefixError(entry.to_owned()));
            }
            prefixes.push(digits);
        }
        prefixes.sort();
        prefixes.dedup();
        Ok(Self(prefixes))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The length of the longest prefix of `phone` in this set.
    fn longest_match(&self, phone: &PhoneNumber) -> Option<usize> {
        let digits = phone.digits();
        self.0
            .iter()
            .filter(|prefix| digits.starts_with(prefix.as_str()))
            .map(String::len)
            .max()
    }

    pub fn matches(&self, phone: &PhoneNumber) -> bool {
        self.longest_match(phone).is_some()
    }
}

/// A kind of line, as libphonenumber's metadata classifies numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineType {
    Mobile,
    FixedLine,
    /// Where a number does not tell (the US, Canada).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    PersonalNumber,
    Voip,
    Pager,
    Uan,
    Voicemail,
    Other,
}

impl LineType {
    fn of(kind: phonenumber::Type) -> Self {
        use phonenumber::Type as T;
        match kind {
            T::Mobile => LineType::Mobile,
            T::FixedLine => LineType::FixedLine,
            T::FixedLineOrMobile => LineType::FixedLineOrMobile,
            T::TollFree => LineType::TollFree,
            T::PremiumRate => LineType::PremiumRate,
            T::SharedCost => LineType::SharedCost,
            T::PersonalNumber => LineType::PersonalNumber,
            T::Voip => LineType::Voip,
            T::Pager => LineType::Pager,
            T::Uan => LineType::Uan,
            T::Voicemail => LineType::Voicemail,
            _ => LineType::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Mobile => "mobile",
            LineType::FixedLine => "fixed_line",
            LineType::FixedLineOrMobile => "fixed_line_or_mobile",
            LineType::TollFree => "toll_free",
            LineType::PremiumRate => "premium_rate",
            LineType::SharedCost => "shared_cost",
            LineType::PersonalNumber => "personal_number",
            LineType::Voip => "voip",
            LineType::Pager => "pager",
            LineType::Uan => "uan",
            LineType::Voicemail => "voicemail",
            LineType::Other => "other",
        }
    }
}

/// How numbers are checked against the numbering plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberingPlan {
    /// A number must be in an assigned range of libphonenumber's metadata.
    #[default]
    Enforce,
    /// E.164 syntax only: for deployments whose numbers the metadata does not know yet.
    Structural,
}

/// The destination rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPolicy {
    /// Empty: every destination not denied.
    pub allow: Prefixes,
    pub deny: Prefixes,
    /// Exempt from every destination rule (and from the pumping limits): testers' numbers.
    pub safe: Prefixes,
    pub numbering_plan: NumberingPlan,
    /// Checked structurally even under `Enforce`: ranges newer than the metadata.
    pub structural: Prefixes,
    pub refused_line_types: Vec<LineType>,
}

impl Default for DestinationPolicy {
    /// What ships: satellite and international-network codes denied (expensive and a favourite
    /// of pumping rings; open them explicitly), premium-rate and shared-cost lines refused.
    fn default() -> Self {
        Self {
            allow: Prefixes::default(),
            deny: Prefixes::parse(&["+870", "+881", "+882", "+883"])
                .expect("static prefixes are valid"),
            safe: Prefixes::default(),
            numbering_plan: NumberingPlan::Enforce,
            structural: Prefixes::default(),
            refused_line_types: vec![LineType::PremiumRate, LineType::SharedCost],
        }
    }
}

/// Why a destination is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DestinationRefused {
    /// Denied by the geo permissions, or not on the allow list.
    #[error("SMS to this destination are not permitted")]
    NotPermitted,
    /// Not in any assigned range of its country's numbering plan.
    #[error("this number is not in an assigned range of its country's numbering plan")]
    Unassigned,
    #[error("codes are not sent to {} numbers", .0.as_str())]
    LineType(LineType),
}

impl DestinationRefused {
    /// The rule's name in `otpgate_destination_refused_total{rule}`.
    pub fn rule(self) -> &'static str {
        match self {
            DestinationRefused::NotPermitted => "geo",
            DestinationRefused::Unassigned => "unassigned",
            DestinationRefused::LineType(_) => "line_type",
        }
    }
}

impl DestinationPolicy {
    /// Whether `phone` is on the safe list.
    pub fn is_safe(&self, phone: &PhoneNumber) -> bool {
        self.safe.matches(phone)
    }

    /// Whether an SMS may go to `phone`. Geo first (cheap), then the numbering plan.
    pub fn check(&self, phone: &PhoneNumber) -> Result<(), DestinationRefused> {
        if self.is_safe(phone) {
            return Ok(());
        }
        let allowed = self.allow.longest_match(phone);
        let denied = self.deny.longest_match(phone);
        let permitted = match (allowed, denied) {
            (_, None) => allowed.is_some() || self.allow.is_empty(),
            (None, Some(_)) => false,
            // The more specific entry decides: allow +1 with deny +1900, or deny +44 with
            // allow +447.
            (Some(allow), Some(deny)) => allow > deny,
        };
        if !permitted {
            return Err(DestinationRefused::NotPermitted);
        }
        if self.numbering_plan == NumberingPlan::Structural || self.structural.matches(phone) {
            return Ok(());
        }
        let number = phone.numbering().ok_or(DestinationRefused::Unassigned)?;
        if !number.is_valid() {
            return Err(DestinationRefused::Unassigned);
        }
        let line = LineType::of(number.number_type(&phonenumber::metadata::DATABASE));
        if self.refused_line_types.contains(&line) {
            return Err(DestinationRefused::LineType(line));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("valid test number")
    }

    fn policy(allow: &[&str], deny: &[&str]) -> DestinationPolicy {
        DestinationPolicy {
            allow: Prefixes::parse(allow).expect("valid"),
            deny: Prefixes::parse(deny).expect("valid"),
            ..DestinationPolicy::default()
        }
    }

    #[test]
    fn the_most_specific_prefix_decides() {
        let policy = policy(&["+1", "+447"], &["+1900", "+44"]);
        assert_eq!(policy.check(&phone("+14158675309")), Ok(()));
        assert_eq!(
            policy.check(&phone("+19005550123")),
            Err(DestinationRefused::NotPermitted)
        );
        assert_eq!(policy.check(&phone("+447911123456")), Ok(()));
        assert_eq!(
            policy.check(&phone("+442079460000")),
            Err(DestinationRefused::NotPermitted)
        );
        // Not on a non-empty allow list.
        assert_eq!(
            policy.check(&phone("+31612345678")),
            Err(DestinationRefused::NotPermitted)
        );
    }

    #[test]
    fn unassigned_ranges_and_refused_line_types_are_refused_unless_structural_or_safe() {
        let mut policy = DestinationPolicy::default();
        assert_eq!(policy.check(&phone("+31612345678")), Ok(()));
        // No country has calling code 999; +979 is international premium rate.
        assert_eq!(
            policy.check(&phone("+99912345678")),
            Err(DestinationRefused::Unassigned)
        );
        assert_eq!(
            policy.check(&phone("+979123456789")),
            Err(DestinationRefused::LineType(LineType::PremiumRate))
        );
        // Dutch 0900 is premium rate, 0909 too; 06-9 is not assigned to mobiles.
        assert_eq!(
            policy.check(&phone("+319001234567")),
            Err(DestinationRefused::LineType(LineType::PremiumRate))
        );
        assert_eq!(
            policy.check(&phone("+8816123456789")),
            Err(DestinationRefused::NotPermitted)
        );
        policy.structural = Prefixes::parse(&["+999"]).expect("valid");
        assert_eq!(policy.check(&phone("+99912345678")), Ok(()));
        policy.safe = Prefixes::parse(&["+979123456789"]).expect("valid");
        assert_eq!(policy.check(&phone("+979123456789")), Ok(()));
        policy.numbering_plan = NumberingPlan::Structural;
        assert_eq!(policy.check(&phone("+319001234567")), Ok(()));
    }

    #[test]
    fn prefixes_are_plus_and_digits() {
        assert_eq!(
            Prefixes::parse(&["+44 7700", "+31"]).map(|p| p.0),
            Ok(vec!["31".to_owned(), "447700".to_owned()])
        );
        for bad in ["31", "+", "+3a", "+1234567890123456"] {
            assert_eq!(Prefixes::parse(&[bad]), Err(PrefixError(bad.to_owned())));
        }
    }
}
