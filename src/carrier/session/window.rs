//! What a session writes: the next part in the carrier's order (and what is no longer worth
//! writing), the window of parts in flight, response timeouts, resends on a fresh link (capped),
//! late answers, and the outcome of each submit_sm_resp.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rusmpp::{Command, CommandStatus};
use smpp_wire::status::status_name;
use tracing::{debug, warn};

use super::Session;
use crate::carrier::link::{Link, LinkError};
use crate::carrier::pdu;
use crate::carrier::shared::insert_in_order;
use crate::carrier::{OutboundPart, OutboundSms};
use crate::delivery::{Assignment, DeliveryState};
use crate::metrics as m;

pub(super) struct InFlight {
    pub(super) part: OutboundPart,
    written_at: Instant,
}

/// A part this link gave up waiting for (and handed back): a late submit_sm_resp still tells
/// the SMSC's id for it, and stops its resend if that is not written yet.
pub(super) struct GivenUp {
    sms: Arc<OutboundSms>,
    index: usize,
    accepted: Arc<std::sync::atomic::AtomicBool>,
    at: Instant,
    /// Handed back for a resend (not ended as expired or exhausted).
    resend: bool,
}

/// Allocates sequence_numbers: 1..=0x7FFF_FFFF, wrapping, as SMPP 3.4 section 3.2 allows.
pub(super) struct Sequence(pub(super) u32);

impl Sequence {
    pub(super) fn next(&mut self) -> u32 {
        self.0 = if self.0 >= 0x7FFF_FFFF { 1 } else { self.0 + 1 };
        self.0
    }
}

/// What one bound link is doing: its window, what it gave up on, its timers.
pub(super) struct LinkState {
    pub(super) sequence: Sequence,
    pub(super) in_flight: HashMap<u32, InFlight>,
    pub(super) given_up: HashMap<u32, GivenUp>,
    pub(super) enquire_outstanding: Option<(u32, Instant)>,
    pub(super) last_read: Instant,
    pub(super) paused_until: Option<Instant>,
    /// Response timeouts since the last submit_sm_resp on this link.
    pub(super) timeouts: u32,
}

/// Statuses that mean "later", not "never": the same part is retried (after a pause) until its
/// message's deadline. Everything else is final for that message.
fn is_temporary(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::EsmeRthrottled
            | CommandStatus::EsmeRmsgqful
            | CommandStatus::EsmeRsyserr
            | CommandStatus::EsmeRxTAppn
    )
}

/// The SMSC asks us to slow down (not a failure of the carrier): the same session resends the
/// same part after a pause, keeping its order.
fn is_throttle(status: CommandStatus) -> bool {
    matches!(
        status,
        CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful
    )
}

impl Session {
    /// Takes the next part to write on link `link` without waiting, in the carrier's order:
    /// this session's own or one handed back (whichever comes first), then its queue, split
    /// into parts. Parts no longer worth writing end here: expired, superseded by a newer code,
    /// or accepted already through a late answer. While the carrier's breaker is open, whatever
    /// another route can take moves there first; the rest is still sent here.
    pub(super) fn next_ready(&mut self, link: u64, now: Instant) -> Option<OutboundPart> {
        if !self.kind.submits() {
            return None;
        }
        loop {
            let own = self.retry.front().map(|part| part.ordinal);
            let part = if let Some(part) = self.shared.take_part(link, own) {
                part
            } else if let Some(part) = self.retry.pop_front() {
                part
            } else {
                // Nothing handed back could go here (with `own` None, every lane was looked
                // at), and a move only takes lanes away: on to the queue.
                if !self.shared.accepting(now) {
                    self.move_elsewhere();
                }
                let sms = self.shared.try_take_message()?;
                self.expand(sms);
                continue;
            };
            if self.worth_writing(&part) {
                return Some(part);
            }
        }
    }

    /// Whether `part` should still go out; if not, its message is ended (or, for a part a late
    /// answer accepted, simply not written again).
    fn worth_writing(&self, part: &OutboundPart) -> bool {
        if part.accepted.load(Ordering::Acquire) {
            self.count(m::SMS_RESENDS_CANCELLED_TOTAL);
            return false;
        }
        if self.shared.clock.now() >= part.sms.deadline {
            self.expired(&part.sms);
            return false;
        }
        if part.sms.superseded.as_ref().is_some_and(|check| check()) {
            self.record("superseded");
            self.count(m::SMS_SUPERSEDED_TOTAL);
            self.deliveries
                .ended(&part.sms.id, DeliveryState::Superseded, None);
            debug!(session = %self.label, to = %part.sms.to.masked(), "a newer code replaced this one; not sent");
            return false;
        }
        true
    }

    /// Splits a message into its parts, at the back of this session's own list; one that
    /// cannot be encoded ends here.
    pub(super) fn expand(&mut self, sms: OutboundSms) {
        let reference = self.shared.next_reference();
        match pdu::submit_parts(self.config(), &sms, reference, self.shared.clock.now()) {
            Ok(bodies) => {
                let of = bodies.len();
                self.deliveries.assigned(
                    &sms.id,
                    &Assignment {
                        carrier: self.shared.name.clone(),
                        receipt_scope: self.shared.receipt_scope.clone(),
                        parts: of,
                        receipts_expected: self.shared.receipts_expected,
                    },
                );
                let sms = Arc::new(sms);
                for (index, body) in bodies.into_iter().enumerate() {
                    let part = OutboundPart {
                        sms: sms.clone(),
                        body,
                        of,
                        index,
                        ordinal: self.shared.next_ordinal(),
                        unanswered: sms.unanswered_writes,
                        not_on: None,
                        accepted: Arc::default(),
                    };
                    self.retry.push_back(part);
                }
            }
            Err(err) => {
                self.record("invalid");
                self.deliveries
                    .ended(&sms.id, DeliveryState::Failed, Some(err.to_string()));
                warn!(session = %self.label, to = %sms.to.masked(), %err, "message cannot be encoded");
            }
        }
    }

    /// Hands one part to the writer. Over the carrier's rate it waits in its place instead:
    /// returns when it may go.
    pub(super) fn write_submit(
        &mut self,
        link: &Link,
        state: &mut LinkState,
        part: OutboundPart,
        now: Instant,
    ) -> Result<Option<Instant>, LinkError> {
        if let Some(pacer) = &self.shared.pacer
            && let Err(not_until) = pacer.check()
        {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            insert_in_order(&mut self.retry, part);
            return Ok(Some(now + wait));
        }
        let seq = state.sequence.next();
        // The time left now, not when it was split: a resend must not outlive the code.
        let mut body = part.body.clone();
        if let Ok(validity) = pdu::validity_period(part.sms.deadline, self.shared.clock.now()) {
            body.validity_period = validity;
        }
        let command = Command::new(CommandStatus::EsmeRok, seq, body);
        if let Err(err) = link.writer.send(command) {
            insert_in_order(&mut self.retry, part);
            return Err(err);
        }
        state.in_flight.insert(
            seq,
            InFlight {
                part,
                written_at: now,
            },
        );
        Ok(None)
    }

    /// A part written and not answered (no response in time, or the link went): handed back
    /// for a fresh link, unless its message expired or it has been written as often as allowed.
    /// Each resend is a possible duplicate on the handset (at-least-once).
    pub(super) fn unanswered(
        &self,
        mut part: OutboundPart,
        link: u64,
        reason: &'static str,
    ) -> bool {
        // Accepted through a late answer elsewhere: nothing to resend, nothing to end.
        if part.accepted.load(Ordering::Acquire) {
            return false;
        }
        if self.shared.clock.now() >= part.sms.deadline {
            self.expired(&part.sms);
            return false;
        }
        part.unanswered += 1;
        if part.unanswered > self.config().max_resends {
            self.count(m::SMS_RESENDS_EXHAUSTED_TOTAL);
            warn!(session = %self.label, to = %part.sms.to.masked(), writes = part.unanswered, "no submit_sm_resp for any write; given up");
            self.deliveries.ended(
                &part.sms.id,
                DeliveryState::Unanswered,
                Some(format!(
                    "no submit_sm_resp after {} writes",
                    part.unanswered
                )),
            );
            return false;
        }
        metrics::counter!(m::SMS_RESUBMITTED_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_REASON => reason)
            .increment(1);
        part.not_on = Some(link);
        self.shared.hand_back(vec![part]);
        true
    }

    /// A submit_sm_resp (or generic_nack) for sequence number `seq`: for a part in flight, or
    /// one this link gave up on (a late answer: its id is recorded, its resend stopped).
    pub(super) fn on_submit_response(
        &mut self,
        state: &mut LinkState,
        seq: u32,
        status: CommandStatus,
        message_id: &str,
    ) {
        if let Some(flight) = state.in_flight.remove(&seq) {
            state.timeouts = 0;
            self.on_submit_result(flight, status, message_id, &mut state.paused_until);
        } else if status == CommandStatus::EsmeRok
            && let Some(late) = state.given_up.remove(&seq)
        {
            // A late refusal changes nothing: the resend decides (and the entry stays, so a
            // resend nobody else can take still gets a fresh link).
            let first = !late.accepted.swap(true, Ordering::AcqRel);
            debug!(session = %self.label, first, "late submit_sm_resp: the part was accepted");
            self.deliveries
                .submitted(&late.sms.id, late.index, message_id);
        } else {
            debug!(session = %self.label, seq, "response to no outstanding request");
        }
    }

    fn on_submit_result(
        &mut self,
        flight: InFlight,
        status: CommandStatus,
        message_id: &str,
        paused_until: &mut Option<Instant>,
    ) {
        let elapsed = flight.written_at.elapsed();
        self.shared
            .metrics
            .submit_duration
            .record(elapsed.as_secs_f64());
        let part = flight.part;
        if status == CommandStatus::EsmeRok {
            self.record("ok");
            self.shared.success();
            part.accepted.store(true, Ordering::Release);
            self.deliveries
                .submitted(&part.sms.id, part.index, message_id);
            return;
        }
        let name = status_name(status);
        if is_temporary(status) {
            let now = Instant::now();
            *paused_until = Some(now + self.config().throttle_pause);
            if is_throttle(status) {
                // Resent here after the pause, in its place among the others.
                debug!(session = %self.label, status = %name, "throttled; the part will be resent after a pause");
                insert_in_order(&mut self.retry, part);
            } else {
                // A failure of the carrier: any session may retry it, or another carrier once
                // this one's breaker opens.
                debug!(session = %self.label, status = %name, "temporary refusal; the part will be retried");
                self.shared.failure(now, &name);
                self.shared.hand_back(vec![part]);
            }
        } else {
            warn!(session = %self.label, to = %part.sms.to.masked(), status = %name, "submit_sm refused");
            self.deliveries
                .ended(&part.sms.id, DeliveryState::Failed, Some(name.clone()));
        }
        self.record(&name);
    }

    /// Gives up on parts unanswered past the response timeout: each goes back for another
    /// link (a late answer here still counts); after `response_timeouts_before_reconnect` in a
    /// row the link itself is declared dead.
    pub(super) fn expire_responses(
        &mut self,
        link: &Link,
        state: &mut LinkState,
        now: Instant,
    ) -> Result<(), LinkError> {
        let timeout = self.config().response_timeout;
        let mut expired: Vec<u32> = state
            .in_flight
            .iter()
            .filter(|(_, flight)| now.duration_since(flight.written_at) >= timeout)
            .map(|(seq, _)| *seq)
            .collect();
        if expired.is_empty() {
            return Ok(());
        }
        expired.sort_by_key(|seq| state.in_flight.get(seq).map(|f| f.part.ordinal));
        for seq in expired {
            let Some(flight) = state.in_flight.remove(&seq) else {
                continue;
            };
            self.record("timeout");
            self.shared.failure(now, "no submit_sm_resp in time");
            state.timeouts += 1;
            let (sms, index, accepted) = (
                flight.part.sms.clone(),
                flight.part.index,
                flight.part.accepted.clone(),
            );
            let resend = self.unanswered(flight.part, link.id, "response_timeout");
            state.given_up.insert(
                seq,
                GivenUp {
                    sms,
                    index,
                    accepted,
                    at: now,
                    resend,
                },
            );
        }
        if state.timeouts >= self.config().response_timeouts_before_reconnect {
            return Err(LinkError::ResponseTimeouts(state.timeouts));
        }
        Ok(())
    }

    /// A part given up here waits for another link, or for a late answer here. When no other
    /// session of the carrier can take it, this link is dropped once the part has waited
    /// another response timeout, so that it goes on a fresh one (and never waits for ever).
    /// Entries long past any late answer are forgotten.
    pub(super) fn awaiting_fresh_link(
        &self,
        state: &mut LinkState,
        now: Instant,
    ) -> Result<(), LinkError> {
        if state.given_up.is_empty() {
            return Ok(());
        }
        let timeout = self.config().response_timeout;
        state
            .given_up
            .retain(|_, late| now.duration_since(late.at) < timeout * 4);
        let alone = self.shared.senders.load(Ordering::Acquire) <= 1;
        let stranded = state.given_up.values().any(|late| {
            late.resend
                && !late.accepted.load(Ordering::Acquire)
                && now.duration_since(late.at) >= timeout
        });
        if alone && stranded {
            return Err(LinkError::ResponseTimeouts(state.timeouts.max(1)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_within_the_spec_range() {
        let mut sequence = Sequence(0x7FFF_FFFE);
        assert_eq!(sequence.next(), 0x7FFF_FFFF);
        assert_eq!(sequence.next(), 1);
    }

    #[test]
    fn throttling_is_temporary_and_other_errors_are_not() {
        assert!(is_temporary(CommandStatus::EsmeRthrottled));
        assert!(is_temporary(CommandStatus::EsmeRmsgqful));
        assert!(is_temporary(CommandStatus::EsmeRsyserr));
        assert!(!is_temporary(CommandStatus::EsmeRinvdstadr));
        assert!(!is_temporary(CommandStatus::EsmeRsubmitfail));
    }
}
