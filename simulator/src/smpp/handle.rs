//! What the simulator answers to each PDU an ESME sends.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DataSm, DataSmResp, QuerySmResp,
    SubmitSm, SubmitSmResp,
};
use rusmpp::tlvs::{Tlv, TlvValue};
use rusmpp::types::{COctetString, EmptyOrFullCOctetString};
use rusmpp::values::{InterfaceVersion, MessageState, Ton};
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::status::status_name;
use tracing::{debug, info, warn};

use super::{Bound, Reply, Session};
use crate::concat::{GroupKey, Segment, from_sar, split_udh};
use crate::config::BindType;
use crate::faults::Active;
use crate::outcome::Decision;
use crate::receipt::{Job, Receipt};
use crate::registry::SessionHandle;
use crate::stats::Stats;
use crate::store::{ChangeError, Direction, NewMessage, PartRef, TlvView};
use crate::text;
use smpp_wire::receipt::ReceiptState;

/// A message as submit_sm or data_sm carries it.
struct Submitted<'a> {
    source_addr: &'a str,
    dest_addr: &'a str,
    dest_ton: Ton,
    esm_class: u8,
    registered_delivery: u8,
    data_coding: u8,
    body: &'a [u8],
    /// Octets in short_message (data_sm has none).
    short_message_length: usize,
    /// Whether a message_payload TLV came too.
    has_payload: bool,
    /// Segment info from sar_* TLVs (a UDH, if any, is read from `body`).
    sar: Option<Segment>,
    tlvs: &'a [Tlv],
}

/// The TLVs of a PDU as the tester API shows them.
fn tlv_views(tlvs: &[Tlv]) -> Vec<TlvView> {
    tlvs.iter()
        .map(|tlv| TlvView {
            tag: format!("0x{:04X}", u16::from(tlv.tag())),
            value: tlv
                .value()
                .map_or_else(|| "(empty)".to_owned(), |value| format!("{value:?}")),
        })
        .collect()
}

/// The message_payload TLV's bytes, if present.
fn payload(tlvs: &[Tlv]) -> Option<&[u8]> {
    tlvs.iter().find_map(|tlv| match tlv.value() {
        Some(TlvValue::MessagePayload(payload)) => Some(payload.value.as_ref()),
        _ => None,
    })
}

impl Session {
    pub(super) fn on_command(&mut self, command: Command) -> Reply {
        let seq = command.sequence_number();
        let id = command.id();
        // An acknowledged receipt is done; a refused one is tried again after a back-off. (An
        // error response may carry no body, so this goes by command_id, not by PDU.) A
        // generic_nack answers our deliver_sm too.
        if matches!(id, CommandId::DeliverSmResp | CommandId::GenericNack) {
            self.on_deliver_response(seq, command.status());
            return Reply::None;
        }
        match command.pdu() {
            Some(Pdu::BindTransmitter(b)) => self.on_bind(
                BindType::Transmitter,
                seq,
                b.system_id.as_str(),
                b.password.as_str(),
                b.interface_version,
            ),
            Some(Pdu::BindReceiver(b)) => self.on_bind(
                BindType::Receiver,
                seq,
                b.system_id.as_str(),
                b.password.as_str(),
                b.interface_version,
            ),
            Some(Pdu::BindTransceiver(b)) => self.on_bind(
                BindType::Transceiver,
                seq,
                b.system_id.as_str(),
                b.password.as_str(),
                b.interface_version,
            ),
            Some(Pdu::SubmitSm(submit)) => self.on_submit_sm(seq, submit),
            Some(Pdu::DataSm(data)) => self.on_data_sm(seq, data),
            Some(Pdu::QuerySm(query)) => self.on_query_sm(seq, query.message_id.as_str()),
            Some(Pdu::CancelSm(cancel)) => self.on_change(seq, cancel.message_id.as_str(), None),
            Some(Pdu::ReplaceSm(replace)) => self.on_change(
                seq,
                replace.message_id.as_str(),
                Some(replace.short_message().as_ref()),
            ),
            Some(Pdu::EnquireLink) => Reply::Send(Command::new(
                CommandStatus::EsmeRok,
                seq,
                Pdu::EnquireLinkResp,
            )),
            Some(Pdu::Unbind) => {
                Stats::add(&self.shared.stats.unbinds);
                Reply::SendAndClose(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
            }
            Some(Pdu::UnbindResp)
                if self.unbinding.is_some_and(|(expected, _)| expected == seq) =>
            {
                Reply::Close
            }
            // Responses (deliver_sm_resp to MO, ...) need no answer.
            _ if u32::from(id) & 0x8000_0000 != 0 => Reply::None,
            _ => {
                debug!(peer = %self.peer, ?id, "unsupported command answered with generic_nack");
                self.nack(CommandStatus::EsmeRinvcmdid, seq)
            }
        }
    }

    fn bind_status(&self, kind: BindType, system_id: &str, password: &str) -> CommandStatus {
        if self.bound.is_some() {
            return CommandStatus::EsmeRalybnd;
        }
        if let Some(status) = self.shared.faults.for_account(Some(system_id)).refuse_binds {
            return status;
        }
        match self.shared.config.account(system_id) {
            None => CommandStatus::EsmeRinvsysid,
            Some(account) if account.password != password => CommandStatus::EsmeRinvpaswd,
            Some(account) if !account.bind_types.contains(&kind) => CommandStatus::EsmeRbindfail,
            Some(_) => CommandStatus::EsmeRok,
        }
    }

    fn on_bind(
        &mut self,
        kind: BindType,
        seq: u32,
        system_id: &str,
        password: &str,
        version: InterfaceVersion,
    ) -> Reply {
        let mut status = self.bind_status(kind, system_id, password);
        if status == CommandStatus::EsmeRok {
            let max_binds = self
                .shared
                .config
                .account(system_id)
                .map_or(1, |a| a.max_binds);
            let handle = SessionHandle {
                id: self.id,
                account: system_id.to_owned(),
                bind_type: kind,
                outbound: self.outbound_tx.clone(),
                kill: self.kill.clone(),
            };
            if self.shared.registry.register(handle, max_binds) {
                Stats::add(&self.shared.stats.binds);
                self.shared.stats.sessions.fetch_add(1, Ordering::Relaxed);
                self.bound = Some(Bound {
                    account: system_id.to_owned(),
                    bind_type: kind,
                });
                self.faults = self.shared.faults.for_account(Some(system_id));
                self.recorder.bound(system_id);
                info!(peer = %self.peer, system_id, ?kind, "bound");
            } else {
                status = CommandStatus::EsmeRbindfail;
            }
        }
        if status != CommandStatus::EsmeRok {
            Stats::add(&self.shared.stats.bind_failures);
            warn!(peer = %self.peer, system_id, status = %status_name(status), "bind refused");
        }
        // Config validation guarantees an ASCII system_id of at most 15 characters.
        let our_id: COctetString<1, 16> = self
            .shared
            .config
            .smpp
            .system_id
            .parse()
            .unwrap_or_default();
        let version = match version {
            InterfaceVersion::Smpp5_0 => InterfaceVersion::Smpp5_0,
            _ => InterfaceVersion::Smpp3_4,
        };
        let pdu: Pdu = match kind {
            BindType::Transmitter => BindTransmitterResp::new(our_id, Some(version)).into(),
            BindType::Receiver => BindReceiverResp::new(our_id, Some(version)).into(),
            BindType::Transceiver => BindTransceiverResp::new(our_id, Some(version)).into(),
        };
        Reply::Send(Command::new(status, seq, pdu))
    }

    fn on_submit_sm(&mut self, seq: u32, submit: &SubmitSm) -> Reply {
        let short = submit.short_message().as_ref();
        let payload = payload(submit.tlvs());
        let body = if short.is_empty() {
            payload.unwrap_or(short)
        } else {
            short
        };
        let message = Submitted {
            source_addr: submit.source_addr.as_str(),
            dest_addr: submit.destination_addr.as_str(),
            dest_ton: submit.dest_addr_ton,
            esm_class: u8::from(submit.esm_class),
            registered_delivery: u8::from(submit.registered_delivery),
            data_coding: u8::from(submit.data_coding),
            body,
            short_message_length: short.len(),
            has_payload: payload.is_some(),
            sar: from_sar(submit.tlvs()),
            tlvs: submit.tlvs(),
        };
        let (status, id) = self.accept(&message);
        if status != CommandStatus::EsmeRok {
            return error_response(CommandId::SubmitSmResp, status, seq);
        }
        let id: COctetString<1, 65> = id.parse().unwrap_or_default();
        Reply::Send(Command::new(status, seq, SubmitSmResp::new(id, Vec::new())))
    }

    fn on_data_sm(&mut self, seq: u32, data: &DataSm) -> Reply {
        let payload = payload(data.tlvs());
        let message = Submitted {
            source_addr: data.source_addr.as_str(),
            dest_addr: data.destination_addr.as_str(),
            dest_ton: data.dest_addr_ton,
            esm_class: u8::from(data.esm_class),
            registered_delivery: u8::from(data.registered_delivery),
            data_coding: u8::from(data.data_coding),
            body: payload.unwrap_or_default(),
            short_message_length: 0,
            has_payload: payload.is_some(),
            sar: from_sar(data.tlvs()),
            tlvs: data.tlvs(),
        };
        let (status, id) = self.accept(&message);
        if status != CommandStatus::EsmeRok {
            return error_response(CommandId::DataSmResp, status, seq);
        }
        let id: COctetString<1, 65> = id.parse().unwrap_or_default();
        Reply::Send(Command::new(status, seq, DataSmResp::new(id, Vec::new())))
    }

    /// Applies faults and outcome rules to a submitted message; stores it if accepted.
    /// Returns the command_status and (when accepted) the message id.
    fn accept(&mut self, message: &Submitted<'_>) -> (CommandStatus, String) {
        let Some(bound) = self.bound.as_ref().filter(|b| b.bind_type.may_submit()) else {
            return (CommandStatus::EsmeRinvbndsts, String::new());
        };
        let account = bound.account.clone();
        let to = if message.dest_ton == Ton::International {
            format!("+{}", message.dest_addr)
        } else {
            message.dest_addr.to_owned()
        };
        // A carrier checks the PDU before it looks at its load or the number.
        let status = self
            .invalid(message)
            .or_else(|| self.fault_status())
            .unwrap_or(CommandStatus::EsmeRok);
        let decision = if status == CommandStatus::EsmeRok {
            self.shared.outcomes.decide(&to)
        } else {
            Decision::Refuse(status)
        };
        let stat = match decision {
            Decision::Refuse(status) => {
                let name = status_name(status);
                self.shared.metrics.submit(&account, &name);
                self.record_refused(&account, &to, message, name);
                return (status, String::new());
            }
            Decision::Deliver(stat) => stat,
        };
        let (segment, user_data) = match split_udh(message.esm_class, message.body) {
            Some((segment, data)) => (segment.or(message.sar), data),
            None => (message.sar, message.body),
        };
        let text = text::decode(message.data_coding, user_data);
        let final_at = Instant::now() + self.shared.outcomes.delay();
        let id = self.shared.store.insert(NewMessage {
            direction: Direction::Mt,
            from: message.source_addr.to_owned(),
            to: to.clone(),
            text: text.clone(),
            account: account.clone(),
            data_coding: message.data_coding,
            esm_class: message.esm_class,
            registered_delivery: message.registered_delivery,
            outcome: stat,
            final_at,
            segment,
            parts: Vec::new(),
            tlvs: tlv_views(message.tlvs),
            submit_status: Some(Cow::Borrowed("ESME_ROK")),
        });
        Stats::add(&self.shared.stats.submits);
        self.shared.metrics.submit(&account, "ESME_ROK");
        if wants_receipt(message.registered_delivery, stat) {
            let receipt = Receipt {
                message_id: id.clone(),
                from: to.clone(),
                to: message.source_addr.to_owned(),
                stat,
                submitted_at: SystemTime::now(),
                done_at: SystemTime::now(),
                text: text.clone(),
            };
            self.shared.pending_receipts.add();
            let _ = self.shared.receipts.send(Job {
                account: account.clone(),
                receipt,
                at: final_at.into(),
                attempts: 0,
                refusals: 0,
            });
        }
        // A segment's text is not the message: the whole one is stored (and echoed) once the
        // last part arrives.
        let whole = match segment {
            None => Some(text.clone()),
            Some(segment) => self.reassemble(
                &account, &to, segment, &id, user_data, stat, final_at, message,
            ),
        };
        let Some(text) = whole else {
            return (CommandStatus::EsmeRok, id);
        };
        if self.shared.config.mo.loopback
            && let Err(err) = crate::mo::send(
                &self.shared,
                Some(&account),
                &to,
                message.source_addr,
                &text,
            )
        {
            debug!(account = %account, %err, "loopback MO not delivered");
        }
        (CommandStatus::EsmeRok, id)
    }

    /// Adds a segment; when it completes its message, stores the whole message and returns its
    /// text.
    #[allow(clippy::too_many_arguments)]
    fn reassemble(
        &self,
        account: &str,
        to: &str,
        segment: Segment,
        id: &str,
        user_data: &[u8],
        stat: ReceiptState,
        final_at: Instant,
        message: &Submitted<'_>,
    ) -> Option<String> {
        let from = message.source_addr;
        let key = GroupKey {
            account: account.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            reference: segment.reference,
            total: segment.total,
        };
        let parts = self.shared.reassembly.add(
            key,
            message.data_coding,
            segment.seq,
            id.to_owned(),
            user_data.to_vec(),
        )?;
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|(_, _, data)| data.iter().copied())
            .collect();
        let whole = text::decode(message.data_coding, &joined);
        self.shared.store.insert(NewMessage {
            direction: Direction::Mt,
            from: from.to_owned(),
            to: to.to_owned(),
            text: whole.clone(),
            account: account.to_owned(),
            data_coding: message.data_coding,
            esm_class: message.esm_class,
            registered_delivery: message.registered_delivery,
            outcome: stat,
            final_at,
            segment: None,
            parts: parts
                .into_iter()
                .map(|(seq, id, _)| PartRef { seq, id })
                .collect(),
            tlvs: Vec::new(),
            submit_status: Some(Cow::Borrowed("ESME_ROK")),
        });
        Some(whole)
    }

    /// The refusal a carrier gives a PDU it will not take, whatever the number (unless the
    /// simulator is lenient): short_message must fit one SMS (140 octets on the air, see
    /// [`fits_one_sms`]), §5.3.2.32 makes message_payload exclusive with it, and E.164 numbers
    /// have at most 15 digits.
    fn invalid(&self, message: &Submitted<'_>) -> Option<CommandStatus> {
        if self.shared.config.smpp.lenient {
            return None;
        }
        let short_message = if message.short_message_length > 0 {
            message.body
        } else {
            &[]
        };
        if !fits_one_sms(message.data_coding, message.esm_class, short_message)
            || (message.short_message_length > 0 && message.has_payload)
        {
            return Some(CommandStatus::EsmeRinvmsglen);
        }
        let dest = message.dest_addr;
        let international_ok = message.dest_ton != Ton::International
            || (dest.len() <= 15 && dest.bytes().all(|b| b.is_ascii_digit()));
        if dest.is_empty() || !international_ok {
            return Some(CommandStatus::EsmeRinvdstadr);
        }
        None
    }

    /// Records a refused submit, so a tester sees what was refused and why (listed with
    /// `refused=true`; it reached no phone).
    fn record_refused(&self, account: &str, to: &str, message: &Submitted<'_>, status: String) {
        let user_data = split_udh(message.esm_class, message.body).map_or(message.body, |s| s.1);
        self.shared.store.insert(NewMessage {
            direction: Direction::Mt,
            from: message.source_addr.to_owned(),
            to: to.to_owned(),
            text: text::decode(message.data_coding, user_data),
            account: account.to_owned(),
            data_coding: message.data_coding,
            esm_class: message.esm_class,
            registered_delivery: message.registered_delivery,
            outcome: ReceiptState::Rejected,
            final_at: Instant::now(),
            segment: None,
            parts: Vec::new(),
            tlvs: tlv_views(message.tlvs),
            submit_status: Some(Cow::Owned(status)),
        });
    }

    /// The refusal a submit fault calls for, if any.
    fn fault_status(&mut self) -> Option<CommandStatus> {
        let spec = &self.faults.spec;
        if let Some(limit) = spec.max_submits_per_second {
            let now = Instant::now();
            if now.duration_since(self.window_start).as_secs() >= 1 {
                self.window_start = now;
                self.window_submits = 0;
            }
            self.window_submits += 1;
            if self.window_submits > limit {
                return Some(CommandStatus::EsmeRthrottled);
            }
        }
        if Active::roll(spec.queue_full_percent) {
            return Some(CommandStatus::EsmeRmsgqful);
        }
        if Active::roll(spec.error_percent) {
            return Some(self.faults.error_status);
        }
        None
    }

    /// The account of a session bound to submit (query_sm, cancel_sm and replace_sm are
    /// transmitter operations, SMPP 3.4 §2.3), or None.
    fn submitter(&self) -> Option<String> {
        self.bound
            .as_ref()
            .filter(|b| b.bind_type.may_submit())
            .map(|b| b.account.clone())
    }

    fn on_query_sm(&mut self, seq: u32, message_id: &str) -> Reply {
        let Some(account) = self.submitter() else {
            return error_response(CommandId::QuerySmResp, CommandStatus::EsmeRinvbndsts, seq);
        };
        // Another account's message is not found: its existence is not revealed either.
        let Some((stat, done)) = self.shared.store.query(message_id, &account) else {
            return error_response(CommandId::QuerySmResp, CommandStatus::EsmeRqueryfail, seq);
        };
        let final_date: EmptyOrFullCOctetString<17> = done
            .map(|at| smpp_time(at).parse().unwrap_or_default())
            .unwrap_or_default();
        let state: MessageState = stat.message_state();
        let id: COctetString<1, 65> = message_id.parse().unwrap_or_default();
        let error_code = u8::from(!matches!(
            stat,
            ReceiptState::Enroute | ReceiptState::Delivered
        ));
        Reply::Send(Command::new(
            CommandStatus::EsmeRok,
            seq,
            QuerySmResp::new(id, final_date, state, error_code),
        ))
    }

    /// cancel_sm (`short_message` None) or replace_sm (`short_message` Some). The bind and the
    /// owning account are checked before anything changes.
    fn on_change(&mut self, seq: u32, message_id: &str, short_message: Option<&[u8]>) -> Reply {
        let (fail, reply_pdu) = match short_message {
            None => (CommandStatus::EsmeRcancelfail, Pdu::CancelSmResp),
            Some(_) => (CommandStatus::EsmeRreplacefail, Pdu::ReplaceSmResp),
        };
        let Some(account) = self.submitter() else {
            return Reply::Send(Command::new(CommandStatus::EsmeRinvbndsts, seq, reply_pdu));
        };
        // replace_sm carries no data_coding: its text is read in the message's, and no
        // coding packs more than 160 septets into an SMS.
        if short_message.is_some_and(|m| m.len() > 160) && !self.shared.config.smpp.lenient {
            return Reply::Send(Command::new(CommandStatus::EsmeRinvmsglen, seq, reply_pdu));
        }
        let changed = match short_message {
            None => self.shared.store.cancel(message_id, &account),
            Some(bytes) => self.shared.store.replace(message_id, &account, bytes),
        };
        let status = match changed {
            Ok(()) => CommandStatus::EsmeRok,
            Err(ChangeError::NotFound) => CommandStatus::EsmeRinvmsgid,
            Err(ChangeError::Final) => fail,
        };
        Reply::Send(Command::new(status, seq, reply_pdu))
    }
}

/// Octets of user data one SMS carries on the air (3GPP TS 23.040 §9.2.3.16).
const SMS_OCTETS: usize = 140;

/// Whether `short_message` fits one SMS, as a carrier checks it: 140 octets of user data, which
/// in the GSM 7-bit alphabet (sent unpacked, one septet per octet) is 160 septets, a user data
/// header counting its octets rounded up to whole septets (6 octets + 153 septets = 160).
fn fits_one_sms(data_coding: u8, esm_class: u8, short_message: &[u8]) -> bool {
    let gsm7 = smpp_wire::coding::DataCoding::from_octet(data_coding).alphabet
        == smpp_wire::coding::Alphabet::Gsm7;
    if !gsm7 {
        return short_message.len() <= SMS_OCTETS;
    }
    let udh = if esm_class & crate::concat::UDHI != 0 {
        short_message
            .first()
            .map_or(0, |&udhl| (usize::from(udhl) + 1).min(short_message.len()))
    } else {
        0
    };
    let septets = (udh * 8).div_ceil(7) + (short_message.len() - udh);
    septets <= SMS_OCTETS * 8 / 7
}

/// An error response without a body, as SMPP 3.4 §4 asks and real SMSCs send.
fn error_response(id: CommandId, status: CommandStatus, seq: u32) -> Reply {
    Reply::Send(smpp_wire::frame::header_only(id, status, seq))
}

/// registered_delivery bits 0-1: 1 always, 2 on failure only, 3 on success only (SMPP 5.0).
fn wants_receipt(registered_delivery: u8, stat: ReceiptState) -> bool {
    match registered_delivery & 0x03 {
        1 => true,
        2 => stat != ReceiptState::Delivered,
        3 => stat == ReceiptState::Delivered,
        _ => false,
    }
}

/// Absolute SMPP time `YYMMDDhhmmss000+` (UTC).
fn smpp_time(at: SystemTime) -> String {
    let stamp = crate::clock::rfc3339(at);
    // 2026-11-25T20:06:31.250Z -> 261125200631
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    format!("{}000+", &digits[2..14])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_follow_registered_delivery() {
        assert!(!wants_receipt(0, ReceiptState::Delivered));
        assert!(wants_receipt(1, ReceiptState::Undeliverable));
        assert!(wants_receipt(2, ReceiptState::Undeliverable));
        assert!(!wants_receipt(2, ReceiptState::Delivered));
        assert!(wants_receipt(3, ReceiptState::Delivered));
        assert!(!wants_receipt(0x10, ReceiptState::Delivered));
    }

    #[test]
    fn one_sms_is_140_octets_or_160_septets() {
        assert!(fits_one_sms(8, 0, &[0; 140]));
        assert!(!fits_one_sms(8, 0, &[0; 141]));
        assert!(!fits_one_sms(4, 0, &[0; 141]));
        assert!(fits_one_sms(0, 0, &[b'x'; 160]));
        assert!(!fits_one_sms(0, 0, &[b'x'; 161]));
        assert!(fits_one_sms(0xF0, 0, &[b'x'; 160]));
        // A 6-octet concatenation UDH takes 7 septets: 153 are left.
        let mut part = vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01];
        part.extend_from_slice(&[b'x'; 153]);
        assert!(fits_one_sms(0, 0x40, &part));
        part.push(b'x');
        assert!(!fits_one_sms(0, 0x40, &part));
        // UCS-2 with a UDH: octets, 6 + 134.
        let mut part = vec![0x05, 0x00, 0x03, 0x01, 0x02, 0x01];
        part.extend_from_slice(&[0; 134]);
        assert!(fits_one_sms(8, 0x40, &part));
        part.push(0);
        assert!(!fits_one_sms(8, 0x40, &part));
    }

    #[test]
    fn smpp_time_is_absolute_utc() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_637_191);
        assert_eq!(smpp_time(at), "261125200631000+");
    }
}
