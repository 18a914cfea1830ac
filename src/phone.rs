//! `PhoneNumber`: a parsed, normalised E.164 number; the only way a number enters the core.

use std::fmt;
use std::sync::LazyLock;

/// The fewest digits (country code included) of an E.164 number in service: +290 XXXX.
const MIN_DIGITS: usize = 7;
/// E.164 allows at most 15 digits, country code included.
const MAX_DIGITS: usize = 15;

/// A phone number in E.164 form (`+` and 7 to 15 digits, no leading zero).
///
/// Rate limits and challenges key on this normalised form, so `+1 425-123-4567` and
/// `+14251234567` are the same number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

/// Why a string is not an E.164 phone number; the text is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number must start with '+' and a country code (E.164, e.g. +31612345678)")]
    NoCountryCode,
    #[error("phone number may contain only digits, spaces, dashes, dots and parentheses")]
    InvalidCharacter,
    #[error("country code cannot start with 0")]
    LeadingZero,
    #[error("phone number has {0} digits; E.164 needs at least 7")]
    TooShort(usize),
    #[error("phone number has {0} digits; E.164 allows at most 15")]
    TooLong(usize),
}

impl PhoneNumber {
    /// Parses `+` followed by digits, with optional spaces, dashes, dots or parentheses between,
    /// and drops a trunk prefix written after the country code: `+31 (0)6 1234 5678`,
    /// `+31 06 12345678` and `+44 (0)7700 900123` are `+31612345678` and `+447700900123`, so
    /// every spelling of a number is one key for limits, budgets and codes. A leading digit is
    /// taken for a trunk prefix only where the country's numbering plan (libphonenumber's
    /// metadata) says so and the rest is a valid number (`+7 812…` keeps its 8).
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        // "(0)" marks the trunk prefix dialled at home, never part of the international number.
        let structural = if raw.contains("(0)") {
            Self::structural(&raw.replace("(0)", ""))?
        } else {
            Self::structural(raw)?
        };
        Ok(structural.without_trunk_prefix())
    }

    /// The E.164 syntax alone: `+`, 7 to 15 digits, no leading zero.
    fn structural(raw: &str) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        let Some(rest) = trimmed.strip_prefix('+') else {
            return Err(PhoneError::NoCountryCode);
        };
        let mut normalised = String::with_capacity(MAX_DIGITS + 1);
        normalised.push('+');
        for character in rest.chars() {
            match character {
                '0'..='9' => {
                    if normalised.len() > MAX_DIGITS + 1 {
                        // Stop collecting early; the count below reports the real length.
                        continue;
                    }
                    normalised.push(character);
                }
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError::InvalidCharacter),
            }
        }
        let digits = rest.chars().filter(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(PhoneError::NoCountryCode);
        }
        if normalised.as_bytes()[1] == b'0' {
            return Err(PhoneError::LeadingZero);
        }
        if digits < MIN_DIGITS {
            return Err(PhoneError::TooShort(digits));
        }
        if digits > MAX_DIGITS {
            return Err(PhoneError::TooLong(digits));
        }
        Ok(Self(normalised))
    }

    /// This number without a trunk prefix after its country code, when the numbering plan has
    /// one and the number is valid without it. Only numbers whose national part starts with
    /// their country's trunk prefix pay for libphonenumber's full parse. The shorter form is
    /// taken only if it is a number of its own (at least `MIN_DIGITS`) with no trunk prefix
    /// left to drop, so that a parsed number parses to itself (found by fuzzing:
    /// `+810000667766778` lost one zero per parse, `+43001118` became too short to parse).
    fn without_trunk_prefix(self) -> Self {
        match self.trunk_dropped() {
            Some(shorter)
                if shorter.digits().len() >= MIN_DIGITS && shorter.trunk_dropped().is_none() =>
            {
                shorter
            }
            _ => self,
        }
    }

    /// The number with its trunk prefix dropped, if it has one to drop.
    fn trunk_dropped(&self) -> Option<Self> {
        let (code, national) = calling_code_split(self.digits())?;
        let prefix = plan().trunk_prefixes[usize::from(code)].as_ref()?;
        if !national.starts_with(prefix.as_str()) {
            return None;
        }
        let number = phonenumber::parse(None, &self.0).ok()?;
        if !number.is_valid() {
            return None;
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        (e164.len() < self.0.len() && e164.starts_with('+')).then_some(Self(e164))
    }

    /// The country calling code (`31`, `1`, `979`), when the numbering plan knows it.
    pub fn calling_code(&self) -> Option<&str> {
        let digits = self.digits();
        calling_code_split(digits).map(|(code, _)| &digits[..decimal_len(code)])
    }

    /// libphonenumber's view of this number, for its validity and line type.
    pub fn numbering(&self) -> Option<phonenumber::PhoneNumber> {
        phonenumber::parse(None, &self.0).ok()
    }

    /// The way Microsoft Graph shows a phone method's number: country code, a space, the
    /// national number (`+31 612345678`). Where the country code ends comes from
    /// libphonenumber's metadata (the phonenumber crate).
    pub fn graph_form(&self) -> String {
        match phonenumber::parse(None, &self.0) {
            Ok(number) => format!("+{} {}", number.code().value(), number.national().value()),
            Err(_) => self.0.clone(),
        }
    }

    /// The E.164 form, `+` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as SMPP's `destination_addr` carries them with TON 1 / NPI 1.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// A form safe for logs: country code region and last two digits kept (`+316******78`).
    pub fn masked(&self) -> Masked<'_> {
        Masked(self)
    }
}

/// What the numbering plan says about calling codes, built once (see [`warm_up`]); indexed by
/// the code itself (1 to 999), so a parse costs array reads, not hashing.
struct Plan {
    /// Calling code -> the trunk prefix its main country dials at home ("0", "8", "1").
    trunk_prefixes: Vec<Option<String>>,
    codes: Vec<bool>,
}

fn plan() -> &'static Plan {
    static PLAN: LazyLock<Plan> = LazyLock::new(|| {
        let mut plan = Plan {
            trunk_prefixes: vec![None; 1000],
            codes: vec![false; 1000],
        };
        for metadata in phonenumber::metadata::DATABASE.iter() {
            let code = usize::from(metadata.country_code());
            if code >= 1000 {
                continue;
            }
            plan.codes[code] = true;
            if let Some(prefix) = metadata.national_prefix().filter(|p| !p.is_empty())
                && (metadata.is_main_country_for_code() || plan.trunk_prefixes[code].is_none())
            {
                plan.trunk_prefixes[code] = Some(prefix.to_owned());
            }
        }
        plan
    });
    &PLAN
}

/// Loads libphonenumber's metadata now, so that the first request does not wait for it.
pub fn warm_up() {
    let _ = plan();
    let _ = phonenumber::parse(None, "+31612345678").map(|number| number.is_valid());
}

/// `digits` split after its calling code; E.164 calling codes are prefix-free, 1 to 3 digits.
fn calling_code_split(digits: &str) -> Option<(u16, &str)> {
    let codes = &plan().codes;
    let bytes = digits.as_bytes();
    let mut code = 0u16;
    for len in 1..=3.min(bytes.len()) {
        let digit = bytes[len - 1].wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        code = code * 10 + u16::from(digit);
        if codes[usize::from(code)] {
            return Some((code, &digits[len..]));
        }
    }
    None
}

fn decimal_len(code: u16) -> usize {
    match code {
        0..=9 => 1,
        10..=99 => 2,
        _ => 3,
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Display adapter that hides the middle of a number; see [`PhoneNumber::masked`].
pub struct Masked<'a>(&'a PhoneNumber);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.digits();
        let (head, tail) = (3.min(digits.len()), 2.min(digits.len()));
        let hidden = digits.len().saturating_sub(head + tail);
        write!(
            f,
            "+{}{}{}",
            &digits[..head],
            "*".repeat(hidden),
            &digits[digits.len() - tail..]
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_parsed_number_parses_to_itself() {
        // Inputs the fuzzer found (fuzz/corpus/phone/crash-*): a second parse dropped another
        // zero, or left fewer digits than a number has.
        for raw in [
            "+810000667766778",
            "+.49(01687",
            "+.49(0168.2..",
            "+43001118",
            "+31 (0)6 1234 5678",
            "+44 (0)7700 900123",
        ] {
            let once = PhoneNumber::parse(raw).expect("parses");
            assert_eq!(PhoneNumber::parse(once.as_str()), Ok(once.clone()), "{raw}");
        }
    }

    use super::*;

    #[test]
    fn separators_are_removed_and_forms_agree() {
        let a = PhoneNumber::parse("+1 425-123-4567").expect("valid");
        let b = PhoneNumber::parse("+1 (425) 123.4567").expect("valid");
        let c = PhoneNumber::parse(" +14251234567 ").expect("valid");
        assert_eq!(a.as_str(), "+14251234567");
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.digits(), "14251234567");
        assert_eq!(
            PhoneNumber::parse("+31 6 1234 5678")
                .expect("valid")
                .as_str(),
            "+31612345678"
        );
    }

    #[test]
    fn each_defect_gets_its_own_error() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("0612345678"),
            Err(PhoneError::NoCountryCode)
        );
        assert_eq!(PhoneNumber::parse("+"), Err(PhoneError::NoCountryCode));
        assert_eq!(
            PhoneNumber::parse("+31 6 CALL ME"),
            Err(PhoneError::InvalidCharacter)
        );
        assert_eq!(
            PhoneNumber::parse("+0612345678"),
            Err(PhoneError::LeadingZero)
        );
        assert_eq!(PhoneNumber::parse("+31 6"), Err(PhoneError::TooShort(3)));
        assert_eq!(
            PhoneNumber::parse("+1234567890123456"),
            Err(PhoneError::TooLong(16))
        );
        assert_eq!(
            PhoneNumber::parse("+1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9"),
            Err(PhoneError::TooLong(19))
        );
    }

    #[test]
    fn international_forms_drop_the_trunk_prefix_and_show_as_graph_does() {
        for raw in [
            "+31 (0)6 1234 5678",
            "+31 06 12345678",
            "+310612345678",
            "+31 6 12345678",
            "+31612345678",
        ] {
            let number = PhoneNumber::parse(raw).expect("valid");
            assert_eq!(number.as_str(), "+31612345678", "{raw}");
            assert_eq!(number.graph_form(), "+31 612345678");
        }
        let uk = PhoneNumber::parse("+44 (0)7700 900123").expect("valid");
        assert_eq!(uk.as_str(), "+447700900123");
        assert_eq!(uk.graph_form(), "+44 7700900123");
        let uk = PhoneNumber::parse("+44 07911 123456").expect("valid");
        assert_eq!(uk.as_str(), "+447911123456");
        let us = PhoneNumber::parse("+1 (425) 555-0100").expect("valid");
        assert_eq!(us.graph_form(), "+1 4255550100");
        assert_eq!(
            PhoneNumber::parse("06 1234 5678"),
            Err(PhoneError::NoCountryCode)
        );
    }

    #[test]
    fn a_leading_digit_is_a_trunk_prefix_only_where_the_plan_says_so() {
        // Russia's trunk prefix is 8, and +7 812 is St Petersburg: the 8 stays.
        let spb = PhoneNumber::parse("+7 812 123 45 67").expect("valid");
        assert_eq!(spb.as_str(), "+78121234567");
        // Italy keeps its leading 0 internationally (Rome +39 06...).
        let rome = PhoneNumber::parse("+39 06 1234 5678").expect("valid");
        assert_eq!(rome.as_str(), "+390612345678");
        // A 0 that would leave an invalid number is not a trunk prefix either.
        assert_eq!(
            PhoneNumber::parse("+31 01").map(|n| n.as_str().to_owned()),
            Err(PhoneError::TooShort(4))
        );
        assert_eq!(
            PhoneNumber::parse("+31612345678")
                .expect("valid")
                .calling_code(),
            Some("31")
        );
        assert_eq!(
            PhoneNumber::parse("+14255550100")
                .expect("valid")
                .calling_code(),
            Some("1")
        );
        assert_eq!(
            PhoneNumber::parse("+97912345678")
                .expect("valid")
                .calling_code(),
            Some("979")
        );
        assert_eq!(
            PhoneNumber::parse("+99912345678")
                .expect("valid")
                .calling_code(),
            None
        );
    }

    #[test]
    fn masking_hides_the_subscriber_part() {
        let number = PhoneNumber::parse("+31612345678").expect("valid");
        assert_eq!(number.masked().to_string(), "+316******78");
        let short = PhoneNumber::parse("+2901234").expect("valid");
        assert_eq!(short.masked().to_string(), "+290**34");
    }
}
