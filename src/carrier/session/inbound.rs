//! What a session does with the link's events (`link::Event`): responses settled by sequence
//! number (one whose body does not decode by its header, never answered), the SMSC's requests
//! answered before anything else is done with them, receipts in deliver_sm or data_sm.

use rusmpp::pdus::{DataSmResp, DeliverSmResp};
use rusmpp::tlvs::Tlv;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::receipt::{self, IdFormat, Parsed};
use tracing::{debug, warn};

use super::Session;
use super::window::LinkState;
use crate::carrier::link::{Event, Link, LinkError};
use crate::config::ReceiptIdFormat;
use crate::delivery::ReceiptMatch;
use crate::metrics as m;

fn id_format(format: ReceiptIdFormat) -> IdFormat {
    match format {
        ReceiptIdFormat::Exact => IdFormat::Exact,
        ReceiptIdFormat::HexSubmitDecimalReceipt => IdFormat::HexSubmitDecimalReceipt,
        ReceiptIdFormat::DecimalSubmitHexReceipt => IdFormat::DecimalSubmitHexReceipt,
    }
}

impl Session {
    /// Handles one event from the link. An error ends the session.
    pub(super) fn on_event(
        &mut self,
        event: Event,
        link: &Link,
        state: &mut LinkState,
    ) -> Result<(), LinkError> {
        match event {
            Event::SubmitResponse {
                seq,
                status,
                message_id,
                malformed,
            } => {
                self.lenient(CommandId::SubmitSmResp, malformed.as_deref());
                self.on_submit_response(state, seq, status, &message_id);
                Ok(())
            }
            Event::EnquireLinkResponse { seq, malformed } => {
                self.lenient(CommandId::EnquireLinkResp, malformed.as_deref());
                if state
                    .enquire_outstanding
                    .is_some_and(|(expected, _)| expected == seq)
                {
                    state.enquire_outstanding = None;
                }
                Ok(())
            }
            Event::OtherResponse {
                command_id,
                malformed,
            } => {
                self.lenient(command_id, malformed.as_deref());
                debug!(session = %self.label, ?command_id, "unexpected response ignored");
                Ok(())
            }
            Event::Request(command) => self.on_request(command, link),
            Event::MalformedRequest {
                command_id,
                seq,
                status,
                error,
            } => {
                // A deliver_sm or data_sm gets its own response with an error status, so the
                // SMSC does not redeliver it in a loop; anything else a generic_nack.
                self.lenient(command_id, None);
                warn!(session = %self.label, ?command_id, %error, "malformed PDU from the SMSC refused");
                let reply = match command_id {
                    CommandId::DeliverSm => Command::new(status, seq, DeliverSmResp::default()),
                    CommandId::DataSm => Command::new(status, seq, DataSmResp::default()),
                    _ => Command::new(status, seq, Pdu::GenericNack),
                };
                link.writer.send(reply)
            }
            Event::Lost(err) => Err(err),
        }
    }

    /// Counts a PDU read leniently: a body that did not decode (`error`, for a response, which
    /// its header settles; never answered, since a nack of a response would make the SMSC
    /// answer again, for ever).
    fn lenient(&self, command_id: CommandId, error: Option<&str>) {
        if let Some(error) = error {
            warn!(session = %self.label, ?command_id, %error, "response body does not decode; its header decides");
        } else if u32::from(command_id) & 0x8000_0000 != 0 {
            return;
        }
        metrics::counter!(m::SMPP_LENIENT_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_WHAT => format!("{command_id:?}"))
            .increment(1);
    }

    /// Answers one request from the SMSC (a receipt also updates its message's record).
    fn on_request(&mut self, command: Command, link: &Link) -> Result<(), LinkError> {
        let seq = command.sequence_number();
        let reply = match command.id() {
            CommandId::EnquireLink => Some(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::EnquireLinkResp,
            )),
            CommandId::DeliverSm => {
                if let Some(Pdu::DeliverSm(body)) = command.pdu() {
                    self.on_delivery(
                        u8::from(body.esm_class),
                        u8::from(body.data_coding),
                        body.short_message().as_ref(),
                        body.tlvs(),
                    );
                }
                Some(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    DeliverSmResp::default(),
                ))
            }
            // data_sm from the SMSC carries receipts (or MO) in TLVs: answered and read alike.
            CommandId::DataSm => {
                if let Some(Pdu::DataSm(body)) = command.pdu() {
                    self.on_delivery(
                        u8::from(body.esm_class),
                        u8::from(body.data_coding),
                        &[],
                        body.tlvs(),
                    );
                }
                Some(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    DataSmResp::default(),
                ))
            }
            // SMPP 3.4 section 4.12: alert_notification has no response.
            CommandId::AlertNotification => None,
            CommandId::Unbind => {
                let resp = Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp);
                let _ = link.writer.send(resp);
                return Err(LinkError::Unbound);
            }
            id => {
                debug!(session = %self.label, ?id, "unsupported request answered with generic_nack");
                Some(Command::new(
                    CommandStatus::EsmeRinvcmdid,
                    seq,
                    Pdu::GenericNack,
                ))
            }
        };
        if let Some(reply) = reply {
            link.writer.send(reply)?;
        }
        Ok(())
    }

    /// A deliver_sm or data_sm: a receipt updates its message; anything else is an MO.
    fn on_delivery(&self, esm_class: u8, data_coding: u8, text: &[u8], tlvs: &[Tlv]) {
        let receipt = match receipt::parse_deliver(esm_class, data_coding, text, tlvs) {
            Parsed::Receipt(receipt) => receipt,
            Parsed::NotReceipt => {
                debug!(session = %self.label, "deliver_sm that is not a receipt acknowledged");
                return;
            }
            Parsed::Unparseable => {
                self.count(m::SMS_RECEIPTS_UNPARSEABLE_TOTAL);
                warn!(session = %self.label, "a receipt whose id or state cannot be read");
                return;
            }
        };
        let format = id_format(self.config().receipt_id_format);
        let matched = match receipt::receipt_id_in_submit_form(&receipt.message_id, format) {
            Some(id) => {
                let receipt = smpp_wire::receipt::Receipt {
                    message_id: id,
                    ..receipt.clone()
                };
                self.deliveries
                    .receipt(&self.shared.receipt_scope, &receipt)
            }
            None => ReceiptMatch::Unmatched,
        };
        let result = match matched {
            ReceiptMatch::Matched { latency } => {
                if let Some(latency) = latency {
                    self.shared
                        .metrics
                        .receipt_latency
                        .record(latency.as_secs_f64());
                }
                "matched"
            }
            ReceiptMatch::Held => "held",
            ReceiptMatch::Unmatched => {
                debug!(session = %self.label, "receipt for no known message");
                "unmatched"
            }
        };
        metrics::counter!(
            m::SMS_RECEIPTS_TOTAL,
            m::LABEL_CARRIER => self.config().name.clone(),
            m::LABEL_STATE => receipt.state.as_str(),
            m::LABEL_RESULT => result
        )
        .increment(1);
    }
}
