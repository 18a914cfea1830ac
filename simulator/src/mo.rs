//! Mobile-originated messages: a "phone" texts an ESME. The simulator hands a deliver_sm to a
//! bound receiver or transceiver and records the message.

use std::time::Instant;

use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::types::{AnyOctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessagePayload};
use smpp_wire::gsm7;

use crate::Shared;
use crate::receipt::deliver_sm_between;
use crate::registry::Outbound;
use crate::store::{Direction, NewMessage};
use smpp_wire::receipt::ReceiptState;

/// Why an MO could not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoError {
    #[error("no receiver or transceiver is bound for that account")]
    NoReceiver,
    #[error("the receiving session's queue is full")]
    Busy,
}

/// The deliver_sm for `text`: GSM 03.38 when it fits one SMS, UCS-2 when that does, otherwise the
/// whole text in a message_payload TLV (in whichever coding carries it).
pub fn deliver_sm(from: &str, to: &str, text: &str) -> DeliverSm {
    let (data_coding, bytes) = match gsm7::encode(text) {
        Ok(septets) => (0u8, septets),
        Err(_) => (
            8u8,
            text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        ),
    };
    let fits = if data_coding == 0 {
        bytes.len() <= 160
    } else {
        bytes.len() <= 140
    };
    let mut pdu = deliver_sm_between(from, to)
        .esm_class(EsmClass::from(0))
        .data_coding(DataCoding::from(data_coding))
        .build();
    if fits {
        pdu.set_short_message(OctetString::from_vec(bytes).unwrap_or_default());
    } else {
        pdu.push_tlv(MessageDeliveryRequestTlvValue::MessagePayload(
            MessagePayload::new(AnyOctetString::from_vec(bytes)),
        ));
    }
    pdu
}

/// Delivers an MO from `from` to `to` (usually the ESME's short code) via a session of
/// `account` (any account if None); returns the stored message id.
pub fn send(
    shared: &Shared,
    account: Option<&str>,
    from: &str,
    to: &str,
    text: &str,
) -> Result<String, MoError> {
    let session = shared
        .registry
        .receiver(account)
        .ok_or(MoError::NoReceiver)?;
    let pdu = deliver_sm(from, to, text);
    let data_coding = u8::from(pdu.data_coding);
    session
        .outbound
        .try_send(Outbound::DeliverSm(Box::new(pdu)))
        .map_err(|_| MoError::Busy)?;
    shared.metrics.mo_sent();
    Ok(shared.store.insert(NewMessage {
        direction: Direction::Mo,
        from: from.to_owned(),
        to: to.to_owned(),
        text: text.to_owned(),
        account: session.account,
        data_coding,
        esm_class: 0,
        registered_delivery: 0,
        outcome: ReceiptState::Delivered,
        final_at: Instant::now(),
        segment: None,
        parts: Vec::new(),
        tlvs: Vec::new(),
        submit_status: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_coding_that_carries_the_text() {
        let gsm = deliver_sm("+31612345678", "OTPGATE", "STOP");
        assert_eq!(
            (u8::from(gsm.data_coding), gsm.short_message().as_ref()),
            (0, &b"STOP"[..])
        );
        let ucs2 = deliver_sm("+31612345678", "OTPGATE", "Да");
        assert_eq!(ucs2.short_message().as_ref(), &[0x04, 0x14, 0x04, 0x30]);
        let long = deliver_sm("+31612345678", "OTPGATE", &"x".repeat(200));
        assert!(long.short_message().is_empty());
        assert_eq!(long.tlvs().len(), 1);
    }
}
