//! One SMPP session (a transceiver, transmitter or receiver bind): binds, writes submit_sm
//! within a window, matches responses by sequence_number, keeps the link alive, reconnects, and
//! unbinds on drain. The link (see `link.rs`) writes on a task of its own, so the timers here
//! run whatever the SMSC does: a stalled write, a response that never comes, an enquire_link
//! unanswered, each ends the link, and what it held is handed back to the carrier, in order,
//! where another session (or this one, rebound) takes it. Resends are capped per part.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rusmpp::pdus::{DataSmResp, DeliverSmResp};
use rusmpp::tlvs::Tlv;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::Frame;
use smpp_wire::receipt::{self, IdFormat, Parsed};
use smpp_wire::status::status_name;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::link::{self, Link, LinkError};
use super::pdu::{self, BindKind};
use super::shared::insert_in_order;
use super::{CarrierShared, CarrierStop, OutboundPart, OutboundSms, RouterInner};
use crate::config::{CarrierConfig, ReceiptIdFormat};
use crate::delivery::{Assignment, DeliveryState, DeliveryTracker, ReceiptMatch};
use crate::metrics as m;

/// Why a bound session ended.
enum SessionEnd {
    /// Queue drained and unbound: the task is done.
    Drained,
    /// Told to stop before the queue drained.
    Aborted,
    /// The link failed; reconnect.
    Lost(LinkError),
}

struct InFlight {
    part: OutboundPart,
    written_at: Instant,
}

/// A part this link gave up waiting for (and handed back): a late submit_sm_resp still tells
/// the SMSC's id for it, and stops its resend if that is not written yet.
struct GivenUp {
    sms: Arc<OutboundSms>,
    index: usize,
    accepted: Arc<std::sync::atomic::AtomicBool>,
    at: Instant,
    /// Handed back for a resend (not ended as expired or exhausted).
    resend: bool,
}

/// Allocates sequence_numbers: 1..=0x7FFF_FFFF, wrapping, as SMPP 3.4 section 3.2 allows.
struct Sequence(u32);

impl Sequence {
    fn next(&mut self) -> u32 {
        self.0 = if self.0 >= 0x7FFF_FFFF { 1 } else { self.0 + 1 };
        self.0
    }
}

/// What one bound link is doing: its window, what it gave up on, its timers.
struct LinkState {
    sequence: Sequence,
    in_flight: HashMap<u32, InFlight>,
    given_up: HashMap<u32, GivenUp>,
    enquire_outstanding: Option<(u32, Instant)>,
    last_read: Instant,
    paused_until: Option<Instant>,
    /// Response timeouts since the last submit_sm_resp on this link.
    timeouts: u32,
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

pub(super) struct Session {
    shared: Arc<CarrierShared>,
    kind: BindKind,
    /// `carrier#n/kind`, for logs.
    label: String,
    router: Weak<RouterInner>,
    /// This session's own parts, in the carrier's order: split from a message it took, or
    /// refused as throttled (resent here after a pause). Handed back when the link drops.
    retry: VecDeque<OutboundPart>,
    /// Counted in the carrier's `holding` (parts in flight or in `retry`).
    holding: bool,
    stop: CarrierStop,
    deliveries: DeliveryTracker,
}

impl Session {
    pub(super) fn new(
        shared: Arc<CarrierShared>,
        kind: BindKind,
        number: usize,
        router: Weak<RouterInner>,
        stop: CarrierStop,
        deliveries: DeliveryTracker,
    ) -> Self {
        Self {
            label: format!("{}#{number}/{}", shared.config.name, kind.as_str()),
            shared,
            kind,
            router,
            retry: VecDeque::new(),
            holding: false,
            stop,
            deliveries,
        }
    }

    fn config(&self) -> &CarrierConfig {
        &self.shared.config
    }

    /// Whether this session may end its drain. A submitting session stays while any carrier has
    /// something left or held, since that may still move here; a receiver stays until its
    /// carrier's submitting sessions are gone, for their receipts.
    fn drained(&self) -> bool {
        if !self.retry.is_empty() {
            return false;
        }
        if !self.kind.submits() {
            return self.shared.nothing_left()
                && self.shared.running_senders.load(Ordering::Acquire) == 0;
        }
        match self.router.upgrade() {
            Some(router) => router.carriers.iter().all(|carrier| carrier.idle()),
            None => self.shared.idle(),
        }
    }

    /// Keeps the carrier's count of sessions holding parts right.
    fn set_holding(&mut self, holding: bool) {
        if holding != self.holding {
            self.holding = holding;
            if holding {
                self.shared.holding.fetch_add(1, Ordering::AcqRel);
            } else {
                self.shared.holding.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Counts a submit outcome.
    fn record(&self, result: &str) {
        if result == "ok" {
            self.shared.metrics.submitted_ok.increment(1);
        } else {
            metrics::counter!(m::SMS_SUBMITTED_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_RESULT => result.to_owned())
                .increment(1);
        }
    }

    fn count(&self, name: &'static str) {
        metrics::counter!(name, m::LABEL_CARRIER => self.config().name.clone()).increment(1);
    }

    /// Runs until drained or aborted: connect, bind, serve, and on failure back off and retry.
    pub(super) async fn run(mut self) {
        let mut backoff =
            Backoff::new(self.config().reconnect_initial, self.config().reconnect_max);
        loop {
            if self.stop.drain.is_cancelled() {
                self.shared.close_queue();
            }
            if self.stop.abort.is_cancelled() || (self.stop.drain.is_cancelled() && self.drained())
            {
                break;
            }
            let Some(attempt) = self.connect().await else {
                break;
            };
            match attempt {
                Ok(link) => {
                    backoff.reset();
                    info!(session = %self.label, host = %self.config().host, port = self.config().port, "SMPP session bound");
                    self.shared.session_bound(self.kind, true);
                    let end = self.serve(link).await;
                    self.shared.session_bound(self.kind, false);
                    match end {
                        SessionEnd::Drained => {
                            info!(session = %self.label, "queue drained, session unbound");
                            break;
                        }
                        SessionEnd::Aborted => break,
                        SessionEnd::Lost(reason) => {
                            metrics::counter!(m::SMPP_LINK_LOST_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_REASON => reason.reason())
                                .increment(1);
                            warn!(session = %self.label, %reason, "SMPP session lost; its unanswered parts were handed back")
                        }
                    }
                }
                Err(err) => {
                    self.shared.metrics.bind_failures.increment(1);
                    // While another session of the carrier is bound, the carrier works.
                    if self.kind.submits() && self.shared.senders.load(Ordering::Acquire) == 0 {
                        self.shared.failure(Instant::now(), "bind failed");
                    }
                    warn!(session = %self.label, %err, "SMPP connect or bind failed");
                }
            }
            let delay = backoff.next_delay(jitter_seed());
            if self
                .while_waiting(tokio::time::sleep(delay))
                .await
                .is_none()
            {
                break;
            }
        }
        if self.kind.submits() {
            self.shared.running_senders.fetch_sub(1, Ordering::AcqRel);
            let left = self.retry.len();
            self.shared.hand_back(self.retry.drain(..).collect());
            if self.stop.abort.is_cancelled() && (left > 0 || !self.shared.nothing_left()) {
                warn!(session = %self.label, "session stopped with messages unsent");
            }
        }
    }

    /// Connects and binds (which can take up to their timeouts) while waiting messages keep
    /// moving; None when told to stop first.
    async fn connect(&mut self) -> Option<Result<Link, link::BindError>> {
        let shared = self.shared.clone();
        let label = self.label.clone();
        let attempt =
            link::connect_and_bind(&shared.config, shared.tls.as_ref(), self.kind, &label);
        self.while_waiting(attempt).await
    }

    /// Runs `work` (a connect attempt or a backoff sleep) while, every second, what waits for
    /// this carrier moves to routes that can send. None when told to stop first: the abort, or
    /// the drain once nothing is left anywhere (a pending bind is not worth waiting for then).
    async fn while_waiting<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(work);
        let mut rescue = tokio::time::interval(Duration::from_secs(1));
        rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = &mut work => return Some(result),
                _ = rescue.tick() => self.rescue(),
                _ = self.stop.abort.cancelled() => return None,
                _ = self.stop.drain.cancelled(), if !self.stop.drain.is_cancelled() => {}
            }
            if self.stop.drain.is_cancelled() {
                self.shared.close_queue();
                if self.drained() {
                    return None;
                }
            }
        }
    }

    /// While this carrier cannot send (no submitting session bound, or its breaker open), moves
    /// what waits for it to other routes; ends what waits past its deadline. Also refreshes the
    /// carrier's gauges, which time alone can change (a breaker's open period ends): this runs
    /// every second in every session.
    fn rescue(&mut self) {
        let now = Instant::now();
        self.shared.refresh_gauges(now);
        if self.kind.submits() && !self.shared.available(now) {
            self.move_elsewhere();
        }
        for sms in self.shared.take_expired(now) {
            self.expired(&sms);
        }
    }

    fn expired(&self, sms: &OutboundSms) {
        self.record("expired");
        self.deliveries.ended(&sms.id, DeliveryState::Expired, None);
        debug!(session = %self.label, to = %sms.to.masked(), "code expired before it could be sent");
    }

    /// Moves whole messages waiting for this carrier to another route that can send now; what
    /// has nowhere to go (or had a part accepted here already) stays.
    fn move_elsewhere(&mut self) {
        let Some(router) = self.router.upgrade() else {
            return;
        };
        let from = self.shared.index;
        // Taking a message out of the queue to find it has nowhere to go would free its slot:
        // the queue's bound would stop bounding. Only look when some other carrier can send.
        let now = Instant::now();
        if !router
            .carriers
            .iter()
            .any(|carrier| carrier.index != from && carrier.available(now))
        {
            return;
        }
        // Parts handed back, of messages none of whose parts the SMSC accepted.
        {
            let mut lanes = self.shared.lanes();
            let parts = std::mem::take(&mut lanes.parts);
            let mut waiting: HashMap<*const OutboundSms, usize> = HashMap::new();
            for part in &parts {
                *waiting.entry(Arc::as_ptr(&part.sms)).or_default() += 1;
            }
            let mut moved: Vec<*const OutboundSms> = Vec::new();
            let mut nowhere = false;
            for part in parts {
                let key = Arc::as_ptr(&part.sms);
                if moved.contains(&key) {
                    continue;
                }
                if !nowhere && waiting.get(&key) == Some(&part.of) {
                    match router.reroute((*part.sms).clone(), from) {
                        Ok(()) => {
                            moved.push(key);
                            continue;
                        }
                        Err(_) => nowhere = true,
                    }
                }
                lanes.parts.push_back(part);
            }
            if nowhere {
                return;
            }
        }
        while let Some(sms) = self.shared.try_take_message() {
            if let Err(sms) = router.reroute(sms, from) {
                self.shared.lanes().messages.push_front(sms);
                break;
            }
        }
    }

    /// Takes the next part to write on link `link` without waiting, in the carrier's order:
    /// this session's own or one handed back (whichever comes first), then its queue, split
    /// into parts. Parts no longer worth writing end here: expired, superseded by a newer code,
    /// or accepted already through a late answer. While the carrier's breaker is open, whatever
    /// another route can take moves there first; the rest is still sent here.
    fn next_ready(&mut self, link: u64, now: Instant) -> Option<OutboundPart> {
        if !self.kind.submits() {
            return None;
        }
        loop {
            let own = self.retry.front().map(|part| part.ordinal);
            let part = match self.shared.take_part(link, own) {
                Some(part) => part,
                None => match self.retry.pop_front() {
                    Some(part) => part,
                    None => {
                        if !self.shared.accepting(now) {
                            self.move_elsewhere();
                        }
                        if let Some(part) = self.shared.take_part(link, None) {
                            part
                        } else {
                            let sms = self.shared.try_take_message()?;
                            self.expand(sms, now);
                            continue;
                        }
                    }
                },
            };
            if self.worth_writing(&part, now) {
                return Some(part);
            }
        }
    }

    /// Whether `part` should still go out; if not, its message is ended (or, for a part a late
    /// answer accepted, simply not written again).
    fn worth_writing(&self, part: &OutboundPart, now: Instant) -> bool {
        if part.accepted.load(Ordering::Acquire) {
            self.count(m::SMS_RESENDS_CANCELLED_TOTAL);
            return false;
        }
        if now >= part.sms.deadline {
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
    fn expand(&mut self, sms: OutboundSms, now: Instant) {
        let reference = self.shared.next_reference();
        match pdu::submit_parts(self.config(), &sms, reference, now) {
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
                        writes: 0,
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
    fn write_submit(
        &mut self,
        link: &Link,
        state: &mut LinkState,
        mut part: OutboundPart,
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
        let command = Command::new(CommandStatus::EsmeRok, seq, part.body.clone());
        if let Err(err) = link.writer.send(command) {
            insert_in_order(&mut self.retry, part);
            return Err(err);
        }
        part.writes += 1;
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
    fn unanswered(
        &self,
        mut part: OutboundPart,
        link: u64,
        reason: &'static str,
        now: Instant,
    ) -> bool {
        if now >= part.sms.deadline {
            self.expired(&part.sms);
            return false;
        }
        if part.writes > self.config().max_resends {
            self.count(m::SMS_RESENDS_EXHAUSTED_TOTAL);
            warn!(session = %self.label, to = %part.sms.to.masked(), writes = part.writes, "no submit_sm_resp for any write; given up");
            self.deliveries.ended(
                &part.sms.id,
                DeliveryState::Unanswered,
                Some(format!("no submit_sm_resp after {} writes", part.writes)),
            );
            return false;
        }
        metrics::counter!(m::SMS_RESUBMITTED_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_REASON => reason)
            .increment(1);
        part.not_on = Some(link);
        self.shared.hand_back(vec![part]);
        true
    }

    /// Serves a bound link until it ends.
    async fn serve(&mut self, mut link: Link) -> SessionEnd {
        let mut state = LinkState {
            sequence: Sequence(1),
            in_flight: HashMap::new(),
            given_up: HashMap::new(),
            enquire_outstanding: None,
            last_read: Instant::now(),
            paused_until: None,
            timeouts: 0,
        };
        let tick_every = (self
            .config()
            .enquire_link_interval
            .min(self.config().response_timeout)
            / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(tick_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let window = self.config().window;
        let shared = self.shared.clone();

        let end = loop {
            if self.stop.drain.is_cancelled() {
                shared.close_queue();
            }
            // Fill the window from what is ready; the writer sends it as one batch.
            let now = Instant::now();
            let writable = state.paused_until.is_none_or(|until| now >= until);
            if writable {
                state.paused_until = None;
                let mut failure = None;
                while state.in_flight.len() < window {
                    let Some(part) = self.next_ready(link.id, now) else {
                        break;
                    };
                    match self.write_submit(&link, &mut state, part, now) {
                        Ok(None) => {}
                        Ok(Some(until)) => {
                            state.paused_until = Some(until);
                            break;
                        }
                        Err(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
                if let Some(err) = failure {
                    break SessionEnd::Lost(err);
                }
            }
            self.set_holding(!state.in_flight.is_empty() || !self.retry.is_empty());
            if self.stop.drain.is_cancelled() && state.in_flight.is_empty() && self.drained() {
                self.unbind(&mut link, &mut state.sequence).await;
                break SessionEnd::Drained;
            }

            let writable = state.paused_until.is_none();
            let can_take = self.kind.submits() && writable && state.in_flight.len() < window;
            let can_take_queue = can_take && shared.accepting(Instant::now());
            tokio::select! {
                frame = link.reader.next() => {
                    state.last_read = Instant::now();
                    let result = match frame {
                        None => Err(LinkError::Closed),
                        Some(Err(err)) => Err(LinkError::Read(err.to_string())),
                        Some(Ok(Frame::Command(command))) => self.on_command(command, &link, &mut state),
                        Some(Ok(malformed)) => self.on_malformed(&link, &mut state, malformed),
                    };
                    if let Err(err) = result {
                        break SessionEnd::Lost(err);
                    }
                }
                err = link.writer.failed() => break SessionEnd::Lost(err),
                // The loop head writes its parts and fills the window.
                batch = shared.recv_batch(window.saturating_sub(state.in_flight.len())), if can_take_queue => {
                    let now = Instant::now();
                    for sms in batch {
                        self.expand(sms, now);
                    }
                }
                // Work handed back by another session of this carrier.
                _ = shared.lanes_ready.notified(), if can_take => {}
                _ = ticker.tick() => {
                    if let Err(err) = self.on_tick(&link, &mut state) {
                        break SessionEnd::Lost(err);
                    }
                }
                // Wakes the loop head once, to close the queue and check whether all is sent.
                _ = self.stop.drain.cancelled(), if !self.stop.drain.is_cancelled() => {}
                _ = self.stop.abort.cancelled() => break SessionEnd::Aborted,
            }
        };
        // Whatever was written and not answered goes back, in order, for a fresh link; then
        // this session's own parts.
        let now = Instant::now();
        let mut unanswered: Vec<InFlight> = state.in_flight.into_values().collect();
        unanswered.sort_by_key(|flight| flight.part.ordinal);
        for flight in unanswered {
            self.unanswered(flight.part, link.id, "link_lost", now);
        }
        shared.hand_back(self.retry.drain(..).collect());
        self.set_holding(false);
        end
    }

    /// The session's clock: response timeouts, enquire_link, the carrier's rescue.
    fn on_tick(&mut self, link: &Link, state: &mut LinkState) -> Result<(), LinkError> {
        let now = Instant::now();
        self.expire_responses(link, state, now)?;
        self.awaiting_fresh_link(state, now)?;
        self.rescue();
        if let Some((_, sent)) = state.enquire_outstanding {
            if now.duration_since(sent) >= self.config().enquire_link_timeout {
                return Err(LinkError::EnquireLinkUnanswered);
            }
        } else if now.duration_since(state.last_read) >= self.config().enquire_link_interval {
            let seq = state.sequence.next();
            link.writer
                .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink))?;
            state.enquire_outstanding = Some((seq, now));
        }
        Ok(())
    }

    /// A PDU whose body did not decode. A response is never answered (a nack of a response
    /// would make the SMSC answer again, for ever): its header's status and sequence number
    /// still settle the request. A deliver_sm or data_sm gets its own response with an error
    /// status, so the SMSC does not redeliver it in a loop; anything else a generic_nack.
    fn on_malformed(
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

    fn on_enquire_link_resp(state: &mut LinkState, seq: u32) {
        if state
            .enquire_outstanding
            .is_some_and(|(expected, _)| expected == seq)
        {
            state.enquire_outstanding = None;
        }
    }

    /// Answers or matches one PDU from the SMSC. An error ends the session.
    fn on_command(
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

    /// A submit_sm_resp (or generic_nack) for sequence number `seq`: for a part in flight, or
    /// one this link gave up on (a late answer: its id is recorded, its resend stopped).
    fn on_submit_response(
        &mut self,
        state: &mut LinkState,
        seq: u32,
        status: CommandStatus,
        message_id: &str,
    ) {
        if let Some(flight) = state.in_flight.remove(&seq) {
            state.timeouts = 0;
            self.on_submit_result(flight, status, message_id, &mut state.paused_until);
        } else if let Some(late) = state.given_up.remove(&seq) {
            if status == CommandStatus::EsmeRok {
                let first = !late.accepted.swap(true, Ordering::AcqRel);
                debug!(session = %self.label, first, "late submit_sm_resp: the part was accepted");
                self.deliveries
                    .submitted(&late.sms.id, late.index, message_id);
            }
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

    /// Gives up on parts unanswered past the response timeout: each goes back for another
    /// link (a late answer here still counts); after `response_timeouts_before_reconnect` in a
    /// row the link itself is declared dead.
    fn expire_responses(
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
            let resend = self.unanswered(flight.part, link.id, "response_timeout", now);
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
    fn awaiting_fresh_link(&self, state: &mut LinkState, now: Instant) -> Result<(), LinkError> {
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

    async fn unbind(&mut self, link: &mut Link, sequence: &mut Sequence) {
        let seq = sequence.next();
        if link
            .writer
            .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind))
            .is_err()
        {
            return;
        }
        let reader = &mut link.reader;
        let wait = async {
            while let Some(Ok(frame)) = reader.next().await {
                if let Frame::Command(command) = frame
                    && command.id() == CommandId::UnbindResp
                    && command.sequence_number() == seq
                {
                    return;
                }
            }
        };
        if tokio::time::timeout(self.config().unbind_timeout, wait)
            .await
            .is_err()
        {
            debug!(session = %self.label, "no unbind_resp in time; closing anyway");
        }
    }
}

/// A random number for backoff jitter; a failure of the OS RNG only costs jitter.
fn jitter_seed() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map(|()| u32::from_le_bytes(bytes))
        .unwrap_or(u32::MAX / 2)
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
