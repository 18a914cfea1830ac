//! The PDUs the daemon originates, built from configuration and an outbound SMS.

use rusmpp::pdus::{BindTransceiver, SubmitSm};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, Npi, RegisteredDelivery, ServiceType, Ton,
};
use smpp_wire::segment;

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

/// bind_transceiver from the carrier's credentials.
pub fn bind_transceiver(config: &CarrierConfig) -> Result<BindTransceiver, PduError> {
    Ok(BindTransceiver::builder()
        .system_id(c_string("system_id", &config.system_id)?)
        .password(c_string("password", config.password.expose())?)
        .system_type(c_string("system_type", &config.system_type)?)
        .interface_version(match config.interface_version {
            config::InterfaceVersion::V34 => InterfaceVersion::Smpp3_4,
            config::InterfaceVersion::V50 => InterfaceVersion::Smpp5_0,
        })
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .address_range(COctetString::empty())
        .build())
}

/// submit_sm for `sms`: international destination (TON 1, NPI 1, digits without '+'), the text
/// in GSM 03.38 when it fits (data_coding 0, one septet per octet), else Latin-1 if the carrier
/// allows it (3), else UCS-2 (8).
pub fn submit_sm(config: &CarrierConfig, sms: &OutboundSms) -> Result<SubmitSm, PduError> {
    let coding = segment::choose(&sms.text, config.allow_latin1);
    let mut parts =
        segment::split(&sms.text, coding, segment::Concatenation::Payload, 0).map_err(|err| {
            PduError::Field {
                field: "short_message",
                message: err.to_string(),
            }
        })?;
    let data = parts.pop().map(|part| part.data).unwrap_or_default();
    let short_message = OctetString::from_vec(data).map_err(|err| PduError::Field {
        field: "short_message",
        message: err.to_string(),
    })?;
    Ok(SubmitSm::builder()
        .service_type(ServiceType::default())
        .source_addr_ton(Ton::from(config.source_addr_ton))
        .source_addr_npi(Npi::from(config.source_addr_npi))
        .source_addr(c_string("source_addr", &config.source_addr)?)
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c_string("destination_addr", sms.to.digits())?)
        // rusmpp's EsmClass::default() is 0x08; an OTP is a plain default-mode message.
        .esm_class(EsmClass::from(0u8))
        .protocol_id(0)
        .registered_delivery(RegisteredDelivery::from(config.registered_delivery))
        .data_coding(DataCoding::from(coding.data_coding()))
        .short_message(short_message)
        .build())
}
