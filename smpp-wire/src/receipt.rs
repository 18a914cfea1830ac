//! Delivery receipts as carriers send them: the TLVs (receipted_message_id, message_state) when
//! present, else the de-facto text (`id:… stat:DELIVRD err:000 …`) as carriers really write it.
//! Message ids are matched exactly after canonicalising case and leading zeros; a conversion
//! between hex and decimal happens only where a carrier is configured for it ([`IdFormat`]).

use std::collections::HashMap;

use rusmpp::tlvs::{Tlv, TlvValue};
use rusmpp::values::MessageState;

use crate::coding::{self, Alphabet, DataCoding};

/// A message's final (or intermediate) state as a receipt reports it. With the `serde` feature it
/// is written as the receipt text's `stat:` value (`DELIVRD`), and read in any spelling
/// [`ReceiptState::from_stat`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

#[cfg(feature = "serde")]
impl serde::Serialize for ReceiptState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.stat())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ReceiptState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ReceiptState::from_stat(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown stat {text:?} (expected one of ENROUTE, DELIVRD, EXPIRED, DELETED, \
                 UNDELIV, ACCEPTD, UNKNOWN, REJECTD)"
            ))
        })
    }
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

    /// Every state, in the order of their message_state values (1 to 8).
    pub const ALL: [ReceiptState; 8] = [
        ReceiptState::Enroute,
        ReceiptState::Delivered,
        ReceiptState::Expired,
        ReceiptState::Deleted,
        ReceiptState::Undeliverable,
        ReceiptState::Accepted,
        ReceiptState::Unknown,
        ReceiptState::Rejected,
    ];

    /// The receipt text's seven-letter `stat:` value (SMPP 3.4 Appendix B): `DELIVRD`.
    pub fn stat(self) -> &'static str {
        match self {
            ReceiptState::Enroute => "ENROUTE",
            ReceiptState::Delivered => "DELIVRD",
            ReceiptState::Expired => "EXPIRED",
            ReceiptState::Deleted => "DELETED",
            ReceiptState::Undeliverable => "UNDELIV",
            ReceiptState::Accepted => "ACCEPTD",
            ReceiptState::Unknown => "UNKNOWN",
            ReceiptState::Rejected => "REJECTD",
        }
    }

    /// The message_state TLV and query_sm_resp value.
    pub fn message_state(self) -> MessageState {
        match self {
            ReceiptState::Enroute => MessageState::Enroute,
            ReceiptState::Delivered => MessageState::Delivered,
            ReceiptState::Expired => MessageState::Expired,
            ReceiptState::Deleted => MessageState::Deleted,
            ReceiptState::Undeliverable => MessageState::Undeliverable,
            ReceiptState::Accepted => MessageState::Accepted,
            ReceiptState::Unknown => MessageState::Unknown,
            ReceiptState::Rejected => MessageState::Rejected,
        }
    }

    /// From the text's `stat:` value: the spec's seven-letter forms, the words carriers spell
    /// out instead (`FAILED`, `UNDELIVERED`), and the message_state numbers (SMPP 3.4 §5.2.28),
    /// in any case.
    pub fn from_stat(stat: &str) -> Option<Self> {
        Some(match stat.to_ascii_uppercase().as_str() {
            "DELIVRD" | "DELIVERED" | "2" => ReceiptState::Delivered,
            "EXPIRED" | "3" => ReceiptState::Expired,
            "DELETED" | "4" => ReceiptState::Deleted,
            "UNDELIV" | "UNDELIVERABLE" | "UNDELIVERED" | "FAILED" | "5" => {
                ReceiptState::Undeliverable
            }
            "ACCEPTD" | "ACCEPTED" | "6" => ReceiptState::Accepted,
            "UNKNOWN" | "7" => ReceiptState::Unknown,
            "REJECTD" | "REJECTED" | "8" => ReceiptState::Rejected,
            "ENROUTE" | "1" => ReceiptState::Enroute,
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

/// What a deliver_sm (or data_sm) says about delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Neither the esm_class nor any TLV marks it as a receipt: a mobile-originated message.
    NotReceipt,
    Receipt(Receipt),
    /// Marked as a receipt (esm_class or receipt TLVs), but no message id or no state could be
    /// read from it: count it, acknowledge it, match nothing.
    Unparseable,
}

/// The keys of the de-facto receipt text (SMPP 3.4 Appendix B), lower case.
const KEYS: [&str; 8] = [
    "id:",
    "sub:",
    "dlvrd:",
    "submit date:",
    "done date:",
    "stat:",
    "err:",
    "text:",
];

/// The value after `key` (case-insensitive, at the start or after white space): one word, or a
/// quoted string, after optional white space. None when empty or when the next thing is another
/// key (`id: stat:DELIVRD` names no id).
fn field(text: &str, key: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower
        .match_indices(key)
        .find(|(i, _)| *i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace())?
        .0;
    let after = &text[at + key.len()..];
    let value = after.trim_start_matches([' ', '\t']);
    let spaced = value.len() != after.len();
    let value = match value.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let inner = &value[1..];
            inner.split(quote).next().unwrap_or(inner)
        }
        _ => {
            let word = value
                .split(|c: char| c.is_ascii_whitespace())
                .next()
                .unwrap_or(value);
            let word_lower = word.to_ascii_lowercase();
            if spaced && KEYS.iter().any(|k| word_lower.starts_with(k)) {
                return None;
            }
            word
        }
    };
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The receipt text: short_message, or the message_payload TLV when short_message is empty,
/// decoded by data_coding (UCS-2 and the GSM groups included). Receipt text is ASCII, so the
/// default alphabet is read as ASCII/UTF-8 as the carriers that send it mean it.
fn receipt_text(data_coding: u8, short_message: &[u8], tlvs: &[Tlv]) -> String {
    let bytes = if short_message.is_empty() {
        tlvs.iter()
            .find_map(|tlv| match tlv.value() {
                Some(TlvValue::MessagePayload(payload)) => Some(payload.value.as_ref()),
                _ => None,
            })
            .unwrap_or_default()
    } else {
        short_message
    };
    match DataCoding::from_octet(data_coding).alphabet {
        Alphabet::Ucs2 | Alphabet::Latin1 | Alphabet::Cyrillic | Alphabet::Hebrew => {
            coding::decode(data_coding, bytes)
        }
        _ => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
        },
    }
}

/// Reads a deliver_sm's (or data_sm's) esm_class, data_coding, short_message and TLVs. The
/// receipted_message_id and message_state TLVs win over the text; the text's part from `text:`
/// on (the start of the original message) is never searched for fields.
pub fn parse_deliver(esm_class: u8, data_coding: u8, short_message: &[u8], tlvs: &[Tlv]) -> Parsed {
    let mut tlv_id = None;
    let mut tlv_state = None;
    let mut receipt_tlvs = false;
    for tlv in tlvs {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(id)) => {
                receipt_tlvs = true;
                let id = id.as_str().trim();
                if !id.is_empty() {
                    tlv_id = Some(id.to_owned());
                }
            }
            Some(TlvValue::MessageState(value)) => {
                receipt_tlvs = true;
                tlv_state = ReceiptState::from_tlv(*value);
            }
            _ => {}
        }
    }
    if !is_receipt(esm_class) && !receipt_tlvs {
        return Parsed::NotReceipt;
    }
    let text = receipt_text(data_coding, short_message, tlvs);
    let lower = text.to_ascii_lowercase();
    let fields = match lower
        .match_indices("text:")
        .find(|(i, _)| *i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace())
    {
        Some((at, _)) => &text[..at],
        None => &text[..],
    };
    let message_id = tlv_id.or_else(|| field(fields, "id:"));
    let state =
        tlv_state.or_else(|| field(fields, "stat:").and_then(|s| ReceiptState::from_stat(&s)));
    match (message_id, state) {
        (Some(message_id), Some(state)) => Parsed::Receipt(Receipt {
            message_id,
            state,
            error: field(fields, "err:"),
        }),
        _ => Parsed::Unparseable,
    }
}

/// Reads a receipt from a deliver_sm's esm_class, short_message and TLVs (default data_coding);
/// None when it is not a receipt or names no message. See [`parse_deliver`].
pub fn parse(esm_class: u8, short_message: &[u8], tlvs: &[Tlv]) -> Option<Receipt> {
    match parse_deliver(esm_class, 0, short_message, tlvs) {
        Parsed::Receipt(receipt) => Some(receipt),
        Parsed::NotReceipt | Parsed::Unparseable => None,
    }
}

/// A message id in the form ids are compared in: trimmed, surrounding quotes removed, ASCII
/// lower case, leading zeros removed (an all-zero id is "0"). None for an empty id, which never
/// names a message.
pub fn canonical_id(id: &str) -> Option<String> {
    let mut id = id.trim();
    for quote in ['"', '\''] {
        if id.len() >= 2 && id.starts_with(quote) && id.ends_with(quote) {
            id = id[1..id.len() - 1].trim();
            break;
        }
    }
    if id.is_empty() {
        return None;
    }
    let lower = id.to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    Some(if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// How a carrier writes the id of one message in its submit_sm_resp and in its receipts. Which
/// one applies is a per-carrier setting: guessing the base for every carrier matches receipts to
/// the wrong messages (`1048576` read as hex is `0x100000`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IdFormat {
    /// The same string in both (after [`canonical_id`]).
    #[default]
    Exact,
    /// submit_sm_resp in hex, receipts in decimal.
    HexSubmitDecimalReceipt,
    /// submit_sm_resp in decimal, receipts in hex.
    DecimalSubmitHexReceipt,
}

impl IdFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            IdFormat::Exact => "exact",
            IdFormat::HexSubmitDecimalReceipt => "hex_submit_decimal_receipt",
            IdFormat::DecimalSubmitHexReceipt => "decimal_submit_hex_receipt",
        }
    }
}

impl std::fmt::Display for IdFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `receipt_id_format` that is none of `exact`, `hex_submit_decimal_receipt`,
/// `decimal_submit_hex_receipt`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown receipt id format {0:?} (expected exact, hex_submit_decimal_receipt or decimal_submit_hex_receipt)"
)]
pub struct UnknownIdFormat(pub String);

impl std::str::FromStr for IdFormat {
    type Err = UnknownIdFormat;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "exact" => Ok(IdFormat::Exact),
            "hex_submit_decimal_receipt" => Ok(IdFormat::HexSubmitDecimalReceipt),
            "decimal_submit_hex_receipt" => Ok(IdFormat::DecimalSubmitHexReceipt),
            other => Err(UnknownIdFormat(other.to_owned())),
        }
    }
}

/// The canonical id (see [`canonical_id`]) that the submit_sm_resp gave the message a receipt
/// with `receipt_id` reports on, under `format`. None for an empty id, or one that is not a
/// number in the base `format` says receipts use.
pub fn receipt_id_in_submit_form(receipt_id: &str, format: IdFormat) -> Option<String> {
    let id = canonical_id(receipt_id)?;
    match format {
        IdFormat::Exact => Some(id),
        IdFormat::HexSubmitDecimalReceipt => {
            // u128's FromStr would also take a leading '+'.
            if !id.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let number: u128 = id.parse().ok()?;
            Some(format!("{number:x}"))
        }
        IdFormat::DecimalSubmitHexReceipt => {
            if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let number = u128::from_str_radix(&id, 16).ok()?;
            Some(number.to_string())
        }
    }
}

/// Values keyed by carrier message id, found again by exactly the same id after
/// [`canonical_id`]: no base is guessed here (convert a receipt's id with
/// [`receipt_id_in_submit_form`] first). An empty id is never stored and never found.
pub struct MessageIds<V> {
    values: HashMap<String, V>,
}

impl<V> Default for MessageIds<V> {
    fn default() -> Self {
        Self {
            values: HashMap::new(),
        }
    }
}

impl<V> MessageIds<V> {
    /// Stores `value` under `id`; an empty id stores nothing.
    pub fn insert(&mut self, id: &str, value: V) {
        if let Some(id) = canonical_id(id) {
            self.values.insert(id, value);
        }
    }

    /// Removes and returns the value for `id`.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        self.values.remove(&canonical_id(id)?)
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.values.get(&canonical_id(id)?)
    }

    /// Keeps only the values `keep` accepts (for expiry).
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        self.values.retain(|_, v| keep(v));
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
    use rusmpp::types::AnyOctetString;
    use rusmpp::values::MessagePayload;

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

    fn text(text: &str) -> Parsed {
        parse_deliver(0x04, 0, text.as_bytes(), &[])
    }

    fn state_of(parsed: Parsed) -> Option<(String, ReceiptState)> {
        match parsed {
            Parsed::Receipt(r) => Some((r.message_id, r.state)),
            Parsed::NotReceipt | Parsed::Unparseable => None,
        }
    }

    #[test]
    fn every_stat_spelling_is_read() {
        let cases = [
            ("DELIVRD", ReceiptState::Delivered),
            ("DELIVERED", ReceiptState::Delivered),
            ("delivered", ReceiptState::Delivered),
            ("UNDELIV", ReceiptState::Undeliverable),
            ("UNDELIVERABLE", ReceiptState::Undeliverable),
            ("UNDELIVERED", ReceiptState::Undeliverable),
            ("FAILED", ReceiptState::Undeliverable),
            ("Failed", ReceiptState::Undeliverable),
            ("REJECTD", ReceiptState::Rejected),
            ("REJECTED", ReceiptState::Rejected),
            ("ACCEPTD", ReceiptState::Accepted),
            ("ACCEPTED", ReceiptState::Accepted),
            ("EXPIRED", ReceiptState::Expired),
            ("DELETED", ReceiptState::Deleted),
            ("ENROUTE", ReceiptState::Enroute),
            ("UNKNOWN", ReceiptState::Unknown),
            ("unknown", ReceiptState::Unknown),
            ("2", ReceiptState::Delivered),
        ];
        for (stat, state) in cases {
            assert_eq!(
                state_of(text(&format!(
                    "id:42 sub:001 dlvrd:001 stat:{stat} err:000"
                ))),
                Some(("42".to_owned(), state)),
                "stat:{stat}"
            );
        }
        // Prefixes are no longer guessed at.
        assert_eq!(text("id:42 stat:DELIVXYZ"), Parsed::Unparseable);
        assert_eq!(text("id:42 stat:FAIL"), Parsed::Unparseable);
    }

    #[test]
    fn tabs_quotes_and_spaces_after_the_colon() {
        assert_eq!(
            state_of(text("id:abc\tsub:001\tstat:DELIVRD\terr:000")),
            Some(("abc".to_owned(), ReceiptState::Delivered))
        );
        assert_eq!(
            state_of(text("id:\"A b\" stat:FAILED")),
            Some(("A b".to_owned(), ReceiptState::Undeliverable))
        );
        assert_eq!(
            state_of(text("id:'0x1' stat:EXPIRED")),
            Some(("0x1".to_owned(), ReceiptState::Expired))
        );
        let spaced = text("id: 77 sub: 001 stat: DELIVRD err: 000");
        assert_eq!(
            spaced,
            Parsed::Receipt(Receipt {
                message_id: "77".into(),
                state: ReceiptState::Delivered,
                error: Some("000".into())
            })
        );
        assert_eq!(
            state_of(text("Id:\t5\tStat:\tREJECTD")),
            Some(("5".to_owned(), ReceiptState::Rejected))
        );
        // An empty id is not the next key's text.
        assert_eq!(text("id: stat:DELIVRD err:000"), Parsed::Unparseable);
        assert_eq!(text("id:\"\" stat:DELIVRD"), Parsed::Unparseable);
        // Nothing after text: is read as a field (the user's message may say "stat:").
        assert_eq!(
            state_of(text("id:9 stat:UNDELIV err:001 text:stat:DELIVRD id:1")),
            Some(("9".to_owned(), ReceiptState::Undeliverable))
        );
        assert_eq!(text("id:9 text:stat:DELIVRD"), Parsed::Unparseable);
    }

    #[test]
    fn receipt_text_in_message_payload_and_in_ucs2() {
        let payload = Tlv::from(MessageDeliveryRequestTlvValue::MessagePayload(
            MessagePayload::new(AnyOctetString::from_static_slice(
                b"id:p1 sub:001 dlvrd:001 stat:DELIVRD err:000",
            )),
        ));
        assert_eq!(
            state_of(parse_deliver(0x04, 0, b"", std::slice::from_ref(&payload))),
            Some(("p1".to_owned(), ReceiptState::Delivered))
        );
        let ucs2: Vec<u8> = "id:u2 stat:UNDELIVERABLE err:001"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(
            state_of(parse_deliver(0x04, 8, &ucs2, &[])),
            Some(("u2".to_owned(), ReceiptState::Undeliverable))
        );
        // UCS-2 in message_payload, with a flash GSM coding group.
        let payload = Tlv::from(MessageDeliveryRequestTlvValue::MessagePayload(
            MessagePayload::new(AnyOctetString::from_vec(ucs2)),
        ));
        assert_eq!(
            state_of(parse_deliver(0x04, 0x18, b"", &[payload])),
            Some(("u2".to_owned(), ReceiptState::Undeliverable))
        );
        // Latin-1 octets in the default coding do not hide the fields.
        assert_eq!(
            state_of(parse_deliver(
                0x04,
                0,
                b"id:l1 stat:DELIVRD text:caf\xe9",
                &[]
            )),
            Some(("l1".to_owned(), ReceiptState::Delivered))
        );
    }

    #[test]
    fn receipts_unparseable_and_not_receipts_are_told_apart() {
        assert_eq!(parse_deliver(0x00, 0, b"hello", &[]), Parsed::NotReceipt);
        assert_eq!(
            parse_deliver(0x00, 0, b"id:1 stat:DELIVRD", &[]),
            Parsed::NotReceipt,
            "an MO that looks like a receipt is an MO"
        );
        assert_eq!(parse_deliver(0x04, 0, b"hello", &[]), Parsed::Unparseable);
        assert_eq!(parse_deliver(0x04, 0, b"", &[]), Parsed::Unparseable);
        assert_eq!(
            parse_deliver(0x04, 0, b"id:1 stat:", &[]),
            Parsed::Unparseable
        );
        // Receipt TLVs mark a receipt whatever the esm_class says.
        let state = Tlv::from(MessageDeliveryRequestTlvValue::MessageState(
            MessageState::Delivered,
        ));
        assert_eq!(
            parse_deliver(0x00, 0, b"", std::slice::from_ref(&state)),
            Parsed::Unparseable,
            "a state without an id"
        );
        assert_eq!(
            state_of(parse_deliver(0x00, 0, b"id:7", &[state])),
            Some(("7".to_owned(), ReceiptState::Delivered))
        );
        // The old entry point still answers None for both.
        assert!(parse(0x04, b"hello", &[]).is_none());
        assert!(parse(0x00, b"hello", &[]).is_none());
    }

    #[test]
    fn ids_match_exactly_after_case_and_leading_zeros() {
        let mut ids = MessageIds::default();
        ids.insert("0A1B2C", "hex");
        ids.insert("12345", "decimal");
        ids.insert("000", "zero");
        assert_eq!(ids.get("a1b2c"), Some(&"hex"));
        assert_eq!(ids.get("000a1b2c"), Some(&"hex"));
        assert_eq!(ids.get(" \"0A1B2C\" "), Some(&"hex"));
        assert_eq!(ids.get("'12345'"), Some(&"decimal"));
        assert_eq!(ids.get("0"), Some(&"zero"));
        // No cross-base guess: 0xA1B2C = 662316, 12345 = 0x3039.
        assert_eq!(ids.get("662316"), None);
        assert_eq!(ids.get("3039"), None);
        assert_eq!(ids.remove("662316"), None);
        assert_eq!(ids.remove("a1b2c"), Some("hex"));
        assert!(ids.get("0A1B2C").is_none());
        assert_eq!(ids.len(), 2);
        ids.retain(|v| *v != "decimal");
        assert_eq!(ids.len(), 1);
        assert_eq!(ids.get("0000"), Some(&"zero"));
    }

    #[test]
    fn ten_and_sixteen_never_match_in_exact_mode() {
        let mut ids = MessageIds::default();
        ids.insert("10", "ten");
        assert_eq!(ids.get("16"), None);
        assert_eq!(ids.get("0x10"), None);
        let converted = receipt_id_in_submit_form("16", IdFormat::Exact).expect("an id");
        assert_eq!(ids.get(&converted), None);
        ids.insert("16", "sixteen");
        assert_eq!(ids.get("10"), Some(&"ten"));
        assert_eq!(ids.get("16"), Some(&"sixteen"));
        // 1048576 read as hex is 0x1048576, not 0x100000: no stray match either way.
        ids.insert("100000", "hex 100000");
        assert_eq!(ids.get("1048576"), None);
    }

    #[test]
    fn empty_ids_are_never_stored_or_found() {
        let mut ids = MessageIds::default();
        ids.insert("", "empty");
        ids.insert("  ", "blank");
        ids.insert("\"\"", "quoted nothing");
        assert!(ids.is_empty());
        assert_eq!(ids.get(""), None);
        assert_eq!(ids.remove(""), None);
        assert_eq!(canonical_id(""), None);
        assert_eq!(canonical_id(" '' "), None);
        assert_eq!(canonical_id("000"), Some("0".to_owned()));
        assert_eq!(canonical_id(" 00Ab "), Some("ab".to_owned()));
        assert_eq!(canonical_id("\"00Ab\""), Some("ab".to_owned()));
    }

    #[test]
    fn receipt_ids_convert_only_in_the_configured_base() {
        use IdFormat::*;
        assert_eq!(
            receipt_id_in_submit_form("00A1B2C", Exact).as_deref(),
            Some("a1b2c")
        );
        // Receipts in decimal, submit_sm_resp in hex.
        assert_eq!(
            receipt_id_in_submit_form("662316", HexSubmitDecimalReceipt).as_deref(),
            Some("a1b2c")
        );
        assert_eq!(
            receipt_id_in_submit_form("16", HexSubmitDecimalReceipt).as_deref(),
            Some("10")
        );
        assert_eq!(
            receipt_id_in_submit_form("0", HexSubmitDecimalReceipt).as_deref(),
            Some("0")
        );
        assert_eq!(
            receipt_id_in_submit_form("a1", HexSubmitDecimalReceipt),
            None
        );
        assert_eq!(
            receipt_id_in_submit_form("+5", HexSubmitDecimalReceipt),
            None
        );
        // Receipts in hex, submit_sm_resp in decimal.
        assert_eq!(
            receipt_id_in_submit_form("3039", DecimalSubmitHexReceipt).as_deref(),
            Some("12345")
        );
        assert_eq!(
            receipt_id_in_submit_form("'0A1B2C'", DecimalSubmitHexReceipt).as_deref(),
            Some("662316")
        );
        assert_eq!(
            receipt_id_in_submit_form("10", DecimalSubmitHexReceipt).as_deref(),
            Some("16")
        );
        assert_eq!(
            receipt_id_in_submit_form("xyz", DecimalSubmitHexReceipt),
            None
        );
        // Too large for any base we convert.
        let huge = "f".repeat(40);
        assert_eq!(
            receipt_id_in_submit_form(&huge, DecimalSubmitHexReceipt),
            None
        );
        for format in [Exact, HexSubmitDecimalReceipt, DecimalSubmitHexReceipt] {
            assert_eq!(receipt_id_in_submit_form("", format), None, "{format}");
            assert_eq!(
                receipt_id_in_submit_form(" \"\" ", format),
                None,
                "{format}"
            );
            assert_eq!(format.as_str().parse::<IdFormat>(), Ok(format));
        }
        assert_eq!(
            "hex".parse::<IdFormat>(),
            Err(UnknownIdFormat("hex".to_owned()))
        );
        assert_eq!(IdFormat::default(), Exact);
    }

    #[test]
    fn stat_text_and_message_state_round_trip() {
        for state in ReceiptState::ALL {
            assert_eq!(ReceiptState::from_stat(state.stat()), Some(state));
            assert_eq!(ReceiptState::from_tlv(state.message_state()), Some(state));
        }
    }

    #[test]
    fn finality_of_states() {
        assert!(ReceiptState::Delivered.is_final());
        assert!(ReceiptState::Undeliverable.is_final());
        assert!(!ReceiptState::Enroute.is_final());
        assert!(!ReceiptState::Accepted.is_final());
    }
}
