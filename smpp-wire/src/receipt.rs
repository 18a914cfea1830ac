//! Delivery receipts as carriers send them: the TLVs (receipted_message_id, message_state) when
//! present, else the de-facto text (`id:… stat:DELIVRD err:000 …`). Message ids are matched
//! canonically, because carriers differ in case, leading zeros, and hex versus decimal.

use std::collections::HashMap;

use rusmpp::tlvs::{Tlv, TlvValue};
use rusmpp::values::MessageState;

/// A message's final (or intermediate) state as a receipt reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptState {
    Enroute,
    Delivered,
    Expired,
    Deleted,
    Undeliverable,
    Accepted,
    Unknown,
    Rejected,
}

impl ReceiptState {
    /// Whether no further receipt will change it.
    pub fn is_final(self) -> bool {
        !matches!(self, ReceiptState::Enroute | ReceiptState::Accepted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptState::Enroute => "enroute",
            ReceiptState::Delivered => "delivered",
            ReceiptState::Expired => "expired",
            ReceiptState::Deleted => "deleted",
            ReceiptState::Undeliverable => "undeliverable",
            ReceiptState::Accepted => "accepted",
            ReceiptState::Unknown => "unknown",
            ReceiptState::Rejected => "rejected",
        }
    }

    /// From the text's `stat:` value; carriers spell some of them out.
    fn from_stat(stat: &str) -> Option<Self> {
        let stat = stat.to_ascii_uppercase();
        Some(match stat.get(..5)? {
            "DELIV" => ReceiptState::Delivered,
            "EXPIR" => ReceiptState::Expired,
            "DELET" => ReceiptState::Deleted,
            "UNDEL" => ReceiptState::Undeliverable,
            "ACCEP" => ReceiptState::Accepted,
            "UNKNO" => ReceiptState::Unknown,
            "REJEC" => ReceiptState::Rejected,
            "ENROU" => ReceiptState::Enroute,
            _ => return None,
        })
    }

    fn from_tlv(state: MessageState) -> Option<Self> {
        Some(match state {
            MessageState::Enroute => ReceiptState::Enroute,
            MessageState::Delivered => ReceiptState::Delivered,
            MessageState::Expired => ReceiptState::Expired,
            MessageState::Deleted => ReceiptState::Deleted,
            MessageState::Undeliverable => ReceiptState::Undeliverable,
            MessageState::Accepted => ReceiptState::Accepted,
            MessageState::Unknown => ReceiptState::Unknown,
            MessageState::Rejected => ReceiptState::Rejected,
            _ => return None,
        })
    }
}

/// What one receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub message_id: String,
    pub state: ReceiptState,
    /// The text's `err:` value, if any.
    pub error: Option<String>,
}

/// esm_class message type bits (2-5) 0001: an SMSC delivery receipt.
pub fn is_receipt(esm_class: u8) -> bool {
    esm_class & 0x3C == 0x04
}

/// The value after `key` (case-insensitive) up to the next space.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let lower = text.to_ascii_lowercase();
    let at = lower
        .match_indices(key)
        .find(|(i, _)| *i == 0 || lower.as_bytes()[i - 1] == b' ')?
        .0;
    let value = &text[at + key.len()..];
    Some(value.split(' ').next().unwrap_or(value)).filter(|v| !v.is_empty())
}

/// Reads a receipt from a deliver_sm's esm_class, short_message and TLVs; None when it is not a
/// receipt or names no message.
pub fn parse(esm_class: u8, short_message: &[u8], tlvs: &[Tlv]) -> Option<Receipt> {
    if !is_receipt(esm_class) {
        return None;
    }
    let text = String::from_utf8_lossy(short_message);
    let mut message_id = None;
    let mut state = None;
    for tlv in tlvs {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) if !id.as_str().is_empty() => {
                message_id = Some(id.as_str().to_owned())
            }
            Some(TlvValue::MessageState(value)) => state = ReceiptState::from_tlv(*value),
            _ => {}
        }
    }
    let message_id = message_id.or_else(|| field(&text, "id:").map(str::to_owned))?;
    let state = state.or_else(|| field(&text, "stat:").and_then(ReceiptState::from_stat))?;
    let error = field(&text, "err:").map(str::to_owned);
    Some(Receipt {
        message_id,
        state,
        error,
    })
}

/// The forms of one message id that may be compared across carriers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdForms {
    /// Lower case, leading zeros removed.
    exact: String,
    hex: Option<u128>,
    decimal: Option<u128>,
}

fn forms(id: &str) -> IdForms {
    let lower = id.trim().to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    let exact = if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    };
    IdForms {
        hex: u128::from_str_radix(&exact, 16).ok(),
        decimal: exact.parse().ok(),
        exact,
    }
}

/// Values keyed by carrier message id, found again by a receipt's id in whatever form the
/// carrier wrote it: exact (case and leading zeros aside) first, then the same number in the
/// same base, then the same number written in the other base.
pub struct MessageIds<V> {
    values: HashMap<String, V>,
    by_hex: HashMap<u128, String>,
    by_decimal: HashMap<u128, String>,
}

impl<V> Default for MessageIds<V> {
    fn default() -> Self {
        Self {
            values: HashMap::new(),
            by_hex: HashMap::new(),
            by_decimal: HashMap::new(),
        }
    }
}

impl<V> MessageIds<V> {
    pub fn insert(&mut self, id: &str, value: V) {
        let forms = forms(id);
        if let Some(hex) = forms.hex {
            self.by_hex.insert(hex, forms.exact.clone());
        }
        if let Some(decimal) = forms.decimal {
            self.by_decimal.insert(decimal, forms.exact.clone());
        }
        self.values.insert(forms.exact, value);
    }

    fn find(&self, id: &str) -> Option<String> {
        let forms = forms(id);
        if self.values.contains_key(&forms.exact) {
            return Some(forms.exact);
        }
        // The submit response's id read as hex equals the receipt's id read as decimal, or the
        // other way round: carriers that print one base in one place and the other elsewhere.
        let candidates = [
            forms.decimal.and_then(|n| self.by_hex.get(&n)),
            forms.hex.and_then(|n| self.by_decimal.get(&n)),
        ];
        candidates.into_iter().flatten().next().cloned()
    }

    /// Removes and returns the value for `id`, in any of its forms.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        let exact = self.find(id)?;
        let stored = forms(&exact);
        if let Some(hex) = stored.hex {
            self.by_hex.remove(&hex);
        }
        if let Some(decimal) = stored.decimal {
            self.by_decimal.remove(&decimal);
        }
        self.values.remove(&exact)
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.values.get(&self.find(id)?)
    }

    /// Keeps only the values `keep` accepts (for expiry).
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let gone: Vec<String> = self
            .values
            .iter()
            .filter(|(_, v)| !keep(v))
            .map(|(k, _)| k.clone())
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::tlvs::MessageDeliveryRequestTlvValue;

    #[test]
    fn text_receipts_are_read_in_the_usual_format() {
        let text = b"id:0A1B2C sub:001 dlvrd:001 submit date:2611252006 done date:2611252007 stat:DELIVRD err:000 text:Your code";
        let receipt = parse(0x04, text, &[]).expect("a receipt");
        assert_eq!(
            receipt,
            Receipt {
                message_id: "0A1B2C".into(),
                state: ReceiptState::Delivered,
                error: Some("000".into())
            }
        );
        let spelled = parse(0x04, b"ID:77 stat:UNDELIVERABLE err:034", &[]).expect("a receipt");
        assert_eq!(
            (spelled.message_id.as_str(), spelled.state),
            ("77", ReceiptState::Undeliverable)
        );
        assert!(parse(0x00, text, &[]).is_none(), "an MO is not a receipt");
        assert!(parse(0x04, b"hello", &[]).is_none(), "no id, no receipt");
    }

    #[test]
    fn tlvs_win_over_the_text() {
        let tlvs = [
            Tlv::from(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
                "ff01".parse().expect("id"),
            )),
            Tlv::from(MessageDeliveryRequestTlvValue::MessageState(
                MessageState::Expired,
            )),
        ];
        let receipt = parse(0x04, b"id:1 stat:DELIVRD", &tlvs).expect("a receipt");
        assert_eq!(
            (receipt.message_id.as_str(), receipt.state),
            ("ff01", ReceiptState::Expired)
        );
    }

    #[test]
    fn ids_match_across_case_zeros_and_bases() {
        let mut ids = MessageIds::default();
        ids.insert("0A1B2C", "hex");
        ids.insert("12345", "decimal");
        assert_eq!(ids.get("a1b2c"), Some(&"hex"));
        assert_eq!(ids.get("000a1b2c"), Some(&"hex"));
        // 0xA1B2C = 662316: a carrier that prints the receipt id in decimal.
        assert_eq!(ids.get("662316"), Some(&"hex"));
        // 12345 = 0x3039: one that prints it in hex.
        assert_eq!(ids.get("3039"), Some(&"decimal"));
        assert_eq!(
            ids.get("12345"),
            Some(&"decimal"),
            "exact beats any cross-base reading"
        );
        assert_eq!(ids.remove("662316"), Some("hex"));
        assert!(ids.get("a1b2c").is_none());
        assert_eq!(ids.len(), 1);
        ids.retain(|v| *v != "decimal");
        assert!(ids.is_empty());
    }

    #[test]
    fn finality_of_states() {
        assert!(ReceiptState::Delivered.is_final());
        assert!(ReceiptState::Undeliverable.is_final());
        assert!(!ReceiptState::Enroute.is_final());
        assert!(!ReceiptState::Accepted.is_final());
    }
}
