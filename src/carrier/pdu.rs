//! The PDUs the daemon originates, built from configuration and an outbound SMS.

use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter, SubmitSm};
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
use std::time::{Duration, Instant};

use rusmpp::types::{AnyOctetString, COctetString, EmptyOrFullCOctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessagePayload, Npi, RegisteredDelivery, ServiceType,
    Ton,
};
use rusmpp::{CommandId, Pdu};
use smpp_wire::segment::{self, Concatenation};

use super::OutboundSms;
use crate::config::{self, CarrierConfig};

/// A PDU field that does not fit what SMPP allows.
#[derive(Debug, thiserror::Error)]
pub enum PduError {
    #[error("{field} does not fit SMPP: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
}

fn c_string<const MIN: usize, const MAX: usize>(
    field: &'static str,
    value: &str,
) -> Result<COctetString<MIN, MAX>, PduError> {
    value
        .parse()
        .map_err(|err: rusmpp::types::COctetStringError| PduError::Field {
            field,
            message: err.to_string(),
        })
}

/// The bind a session sends: transceiver, transmitter or receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    Transceiver,
    Transmitter,
    Receiver,
}

impl BindKind {
    /// The command_id of the bind's response.
    pub fn response_id(self) -> CommandId {
        match self {
            BindKind::Transceiver => CommandId::BindTransceiverResp,
            BindKind::Transmitter => CommandId::BindTransmitterResp,
            BindKind::Receiver => CommandId::BindReceiverResp,
        }
    }

    /// Whether the session submits (a receiver only takes deliver_sm).
    pub fn submits(self) -> bool {
        self != BindKind::Receiver
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BindKind::Transceiver => "trx",
            BindKind::Transmitter => "tx",
            BindKind::Receiver => "rx",
        }
    }
}

/// A bind of `kind` from the carrier's credentials and address range.
pub fn bind(config: &CarrierConfig, kind: BindKind) -> Result<Pdu, PduError> {
    let system_id = c_string("system_id", &config.system_id)?;
    let password = c_string("password", config.password.expose())?;
    let system_type = c_string("system_type", &config.system_type)?;
    let version = match config.interface_version {
        config::InterfaceVersion::V34 => InterfaceVersion::Smpp3_4,
        config::InterfaceVersion::V50 => InterfaceVersion::Smpp5_0,
    };
    let ton = Ton::from(config.address_range_ton);
    let npi = Npi::from(config.address_range_npi);
    let range = c_string("address_range", &config.address_range)?;
    Ok(match kind {
        BindKind::Transceiver => {
            BindTransceiver::new(system_id, password, system_type, version, ton, npi, range).into()
        }
        BindKind::Transmitter => {
            BindTransmitter::new(system_id, password, system_type, version, ton, npi, range).into()
        }
        BindKind::Receiver => {
            BindReceiver::new(system_id, password, system_type, version, ton, npi, range).into()
        }
    })
}

/// SMPP's relative time (`YYMMDDhhmmss000R`, section 7.1.1) for `left`, rounded down to the
/// second and capped at 99 days: the carrier drops the message once the code is useless.
pub fn relative_validity(left: Duration) -> String {
    let total = left.as_secs().min(99 * 86_400 + 86_399);
    let (days, rest) = (total / 86_400, total % 86_400);
    format!(
        "0000{days:02}{:02}{:02}{:02}000R",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The validity_period for a message due at `deadline`, written at `now`.
pub fn validity_period(
    deadline: Instant,
    now: Instant,
) -> Result<EmptyOrFullCOctetString<17>, PduError> {
    relative_validity(deadline.saturating_duration_since(now))
        .parse()
        .map_err(
            |err: rusmpp::types::EmptyOrFullCOctetStringError| PduError::Field {
                field: "validity_period",
                message: err.to_string(),
            },
        )
}

/// One submit_sm per part of `sms`: international destination (TON 1, NPI 1, digits without
/// '+'); the text in GSM 03.38 when it fits (data_coding 0), else Latin-1 where the carrier allows
/// it (3), else UCS-2 (8); a long text split as the carrier's `concatenation` says, under
/// `reference`; the time left until its deadline (from `now`) as its validity_period.
pub fn submit_parts(
    config: &CarrierConfig,
    sms: &OutboundSms,
    reference: u16,
    now: Instant,
) -> Result<Vec<SubmitSm>, PduError> {
    let validity: EmptyOrFullCOctetString<17> =
        relative_validity(sms.deadline.saturating_duration_since(now))
            .parse()
            .map_err(
                |err: rusmpp::types::EmptyOrFullCOctetStringError| PduError::Field {
                    field: "validity_period",
                    message: err.to_string(),
                },
            )?;
    let coding = segment::choose(&sms.text, config.allow_latin1);
    let parts =
        segment::split(&sms.text, coding, config.concatenation, reference).map_err(|err| {
            PduError::Field {
                field: "short_message",
                message: err.to_string(),
            }
        })?;
    let (source_ton, source) = match &sms.from {
        Some(from) => sender(from),
        None => (config.source_addr_ton, config.source_addr.clone()),
    };
    let source_npi = if sms.from.is_some() {
        u8::from(source_ton == 1)
    } else {
        config.source_addr_npi
    };
    parts
        .into_iter()
        .map(|part| {
            let mut esm_class = 0u8;
            if part.udhi {
                esm_class |= 0x40;
            }
            let mut builder = SubmitSm::builder()
                .service_type(ServiceType::default())
                .source_addr_ton(Ton::from(source_ton))
                .source_addr_npi(Npi::from(source_npi))
                .source_addr(c_string("source_addr", &source)?)
                .dest_addr_ton(Ton::International)
                .dest_addr_npi(Npi::Isdn)
                .destination_addr(c_string("destination_addr", sms.to.digits())?)
                // rusmpp's EsmClass::default() is 0x08; our messages are default-mode.
                .esm_class(EsmClass::from(esm_class))
                .protocol_id(0)
                .validity_period(validity.clone())
                .registered_delivery(RegisteredDelivery::from(config.registered_delivery))
                .data_coding(DataCoding::from(coding.data_coding()));
            if config.concatenation == Concatenation::Payload {
                builder = builder.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
                    MessagePayload::new(AnyOctetString::from_vec(part.data)),
                ));
            } else {
                let short_message =
                    OctetString::from_vec(part.data).map_err(|err| PduError::Field {
                        field: "short_message",
                        message: err.to_string(),
                    })?;
                builder = builder.short_message(short_message);
            }
            if let Some((reference, total, seq)) = part.sar {
                builder = builder
                    .push_tlv(MessageSubmissionRequestTlvValue::SarMsgRefNum(reference))
                    .push_tlv(MessageSubmissionRequestTlvValue::SarTotalSegments(total))
                    .push_tlv(MessageSubmissionRequestTlvValue::SarSegmentSeqnum(seq));
            }
            Ok(builder.build())
        })
        .collect()
}

/// (TON, address) of a sender given per message: `+digits` is an international number (TON 1),
/// digits alone a short code (TON 3), anything else alphanumeric (TON 5).
fn sender(from: &str) -> (u8, String) {
    match from.strip_prefix('+') {
        Some(digits) => (1, digits.to_owned()),
        None if from.bytes().all(|b| b.is_ascii_digit()) => (3, from.to_owned()),
        None => (5, from.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_written_as_smpp_relative_time() {
        assert_eq!(
            relative_validity(Duration::from_secs(299)),
            "000000000459000R"
        );
        assert_eq!(
            relative_validity(Duration::from_secs(3 * 86_400 + 3_661)),
            "000003010101000R"
        );
        assert_eq!(relative_validity(Duration::ZERO), "000000000000000R");
        assert_eq!(
            relative_validity(Duration::from_secs(u64::MAX)),
            "000099235959000R",
            "capped at what the format holds"
        );
    }
}
