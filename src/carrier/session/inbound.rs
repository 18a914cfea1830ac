//! What a session reads: submit_sm_resp and enquire_link_resp, the SMSC's requests (answered
//! before anything else is done with them), receipts in deliver_sm or data_sm, and frames whose
//! body does not decode (a response is settled by its header and never answered).

use rusmpp::pdus::{DataSmResp, DeliverSmResp};
use rusmpp::tlvs::Tlv;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::Frame;
use smpp_wire::receipt::{self, IdFormat, Parsed};
use tracing::{debug, warn};

use super::Session;
use super::window::LinkState;
use crate::carrier::link::{Link, LinkError};
use crate::config::ReceiptIdFormat;
use crate::delivery::ReceiptMatch;
use crate::metrics as m;

fn is_response(id: CommandId) -> bool {
    u32::from(id) & 0x8000_0000 != 0
}

fn id_format(format: ReceiptIdFormat) -> IdFormat {
    match format {
        ReceiptIdFormat::Exact => IdFormat::Exact,
        ReceiptIdFormat::HexSubmitDecimalReceipt => IdFormat::HexSubmitDecimalReceipt,
        ReceiptIdFormat::DecimalSubmitHexReceipt => IdFormat::DecimalSubmitHexReceipt,
    }
}

impl Session {
    /// A PDU whose body did not decode. A response is never answered (a nack of a response
    /// would make the SMSC answer again, for ever): its header's status and sequence number
    /// still settle the request. A deliver_sm or data_sm gets its own response with an error
    /// status, so the SMSC does not redeliver it in a loop; anything else a generic_nack.
    pub(super) fn on_malformed(
        &mut self,
        link: &Link,
        state: &mut LinkState,
        frame: Frame,
    ) -> Result<(), LinkError> {
        let Frame::Malformed {
            command_id,
            command_status,
            sequence_number: seq,
            message_id,
            nack_status,
            error,
        } = frame
        else {
            return Ok(());
        };
        metrics::counter!(m::SMPP_LENIENT_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_WHAT => format!("{command_id:?}"))
            .increment(1);
        if is_response(command_id) {
            warn!(session = %self.label, ?command_id, %error, "response body does not decode; its header decides");
            if matches!(command_id, CommandId::SubmitSmResp | CommandId::GenericNack) {
                let id = message_id.unwrap_or_default();
                self.on_submit_response(state, seq, command_status, &id);
            } else if command_id == CommandId::EnquireLinkResp {
                Self::on_enquire_link_resp(state, seq);
            }
            return Ok(());
        }
        warn!(session = %self.label, ?command_id, %error, "malformed PDU from the SMSC refused");
        let reply = match command_id {
            CommandId::DeliverSm => Command::new(nack_status, seq, DeliverSmResp::default()),
            CommandId::DataSm => Command::new(nack_status, seq, DataSmResp::default()),
            _ => Command::new(nack_status, seq, Pdu::GenericNack),
        };
        link.writer.send(reply)
    }

    pub(super) fn on_enquire_link_resp(state: &mut LinkState, seq: u32) {
        if state
            .enquire_outstanding
            .is_some_and(|(expected, _)| expected == seq)
        {
            state.enquire_outstanding = None;
        }
    }

    /// Answers or matches one PDU from the SMSC. An error ends the session.
    pub(super) fn on_command(
        &mut self,
        command: Command,
        link: &Link,
        state: &mut LinkState,
    ) -> Result<(), LinkError> {
        let seq = command.sequence_number();
        let reply = match command.id() {
            CommandId::SubmitSmResp | CommandId::GenericNack => {
                let message_id = match command.pdu() {
                    Some(Pdu::SubmitSmResp(body)) => body.message_id().as_str(),
                    _ => "",
                };
                self.on_submit_response(state, seq, command.status(), message_id);
                None
            }
            CommandId::EnquireLinkResp => {
                Self::on_enquire_link_resp(state, seq);
                None
            }
            CommandId::EnquireLink => Some(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::EnquireLinkResp,
            )),
            // Every deliver_sm is acknowledged; a receipt also updates its message's record.
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
            id if is_response(id) => {
                debug!(session = %self.label, ?id, "unexpected response ignored");
                None
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
