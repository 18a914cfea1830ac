//! Delivery receipts: the de-facto text format (SMPP 3.4 appendix B) plus the
//! receipted_message_id and message_state TLVs.

use std::time::SystemTime;

use rusmpp::pdus::DeliverSm;
use rusmpp::pdus::builders::DeliverSmBuilder;
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, Npi, RegisteredDelivery, Ton};

use crate::clock::yymmddhhmm;
use smpp_wire::receipt::ReceiptState;

/// What a receipt reports about one message.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub message_id: String,
    /// The original destination (the receipt comes from it).
    pub from: String,
    /// The original sender (the receipt goes to it).
    pub to: String,
    pub stat: ReceiptState,
    pub submitted_at: SystemTime,
    pub done_at: SystemTime,
    /// The start of the original text.
    pub text: String,
}

impl Receipt {
    /// `id:… sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:…`
    pub fn text(&self) -> String {
        let delivered = if self.stat == ReceiptState::Delivered {
            "001"
        } else {
            "000"
        };
        let err = if self.stat == ReceiptState::Delivered {
            "000"
        } else {
            "001"
        };
        let text: String = self.text.chars().take(20).collect();
        format!(
            "id:{} sub:001 dlvrd:{delivered} submit date:{} done date:{} stat:{} err:{err} text:{text}",
            self.message_id,
            yymmddhhmm(self.submitted_at),
            yymmddhhmm(self.done_at),
            self.stat.stat(),
        )
    }

    /// The deliver_sm carrying this receipt (esm_class 0x04: SMSC delivery receipt).
    pub fn deliver_sm(&self) -> DeliverSm {
        // Receipt text is ASCII apart from the original text's start; keep only what GSM 03.38
        // shows the same as ASCII so the short_message stays valid in data_coding 0.
        let body: Vec<u8> = self
            .text()
            .chars()
            .filter(|c| c.is_ascii() && *c != '`')
            .map(|c| c as u8)
            .collect();
        let mut pdu = deliver_sm_between(&self.from, &self.to)
            .esm_class(EsmClass::from(0x04))
            .registered_delivery(RegisteredDelivery::from(0))
            .data_coding(DataCoding::from(0))
            .short_message(OctetString::from_vec(body).unwrap_or_default())
            .build();
        pdu.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
            self.message_id.parse().unwrap_or_default(),
        ));
        pdu.push_tlv(MessageDeliveryRequestTlvValue::MessageState(
            self.stat.message_state(),
        ));
        pdu
    }
}

/// One receipt for the scheduler, due at `at`, for a receiver of `account`.
#[derive(Debug, Clone)]
pub struct Job {
    pub account: String,
    pub receipt: Receipt,
    pub at: tokio::time::Instant,
    /// Tries while no receiver was bound.
    pub attempts: u32,
    /// Times an ESME refused it with an error deliver_sm_resp (or generic_nack): the back-off
    /// before the next delivery grows with it.
    pub refusals: u32,
}

/// A deliver_sm builder from `from` to `to`, addresses as the store shows them (`+` marks an
/// international number: TON 1, NPI 1).
pub fn deliver_sm_between(from: &str, to: &str) -> DeliverSmBuilder {
    let npi = |ton: Ton| {
        if ton == Ton::International {
            Npi::Isdn
        } else {
            Npi::Unknown
        }
    };
    let (from_ton, from) = address(from);
    let (to_ton, to) = address(to);
    DeliverSm::builder()
        .source_addr_ton(from_ton)
        .source_addr_npi(npi(from_ton))
        .source_addr(from)
        .dest_addr_ton(to_ton)
        .dest_addr_npi(npi(to_ton))
        .destination_addr(to)
}

/// TON and digits of an address as the store shows it (`+` marks an international number).
pub fn address(shown: &str) -> (Ton, COctetString<1, 21>) {
    let (ton, raw) = match shown.strip_prefix('+') {
        Some(digits) => (Ton::International, digits),
        None if shown.bytes().all(|b| b.is_ascii_digit()) => (Ton::Unknown, shown),
        None => (Ton::Alphanumeric, shown),
    };
    let ascii: String = raw.chars().filter(char::is_ascii).take(20).collect();
    (ton, ascii.parse().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn text_follows_the_usual_format() {
        let receipt = Receipt {
            message_id: "1a2b".into(),
            from: "+31612345678".into(),
            to: "OTPGATE".into(),
            stat: ReceiptState::Undeliverable,
            submitted_at: UNIX_EPOCH + Duration::from_secs(1_795_637_191),
            done_at: UNIX_EPOCH + Duration::from_secs(1_795_637_251),
            text: "Your verification code is 123456".into(),
        };
        assert_eq!(
            receipt.text(),
            "id:1a2b sub:001 dlvrd:000 submit date:2611252006 done date:2611252007 stat:UNDELIV err:001 text:Your verification co"
        );
        let pdu = receipt.deliver_sm();
        assert_eq!(u8::from(pdu.esm_class), 0x04);
        assert_eq!(pdu.source_addr.as_str(), "31612345678");
        assert_eq!(pdu.source_addr_ton, Ton::International);
        assert_eq!(pdu.destination_addr.as_str(), "OTPGATE");
        assert_eq!(pdu.dest_addr_ton, Ton::Alphanumeric);
        assert_eq!(pdu.tlvs().len(), 2);
    }
}
