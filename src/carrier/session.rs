//! One SMPP session (a transceiver, transmitter or receiver bind): one task owns the socket,
//! binds, writes submit_sm within a window, matches responses by sequence_number, keeps the link
//! alive, reconnects, and unbinds on drain. What it cannot finish it hands back to its carrier,
//! where another session, or another carrier, takes it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::DeliverSmResp;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::Frame;
use smpp_wire::status::status_name;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::link::{self, Link};
use super::pdu::{self, BindKind};
use super::{CarrierShared, CarrierStop, OutboundPart, OutboundSms, RouterInner};
use crate::config::CarrierConfig;
use crate::delivery::{Assignment, DeliveryState, DeliveryTracker};
use crate::metrics as m;
use smpp_wire::receipt;

/// What became of a part offered to the link.
enum Fed {
    Written,
    /// Expired before it could go; counted and ended.
    Dropped,
    /// Over the carrier's rate: wait until then.
    Paused(Instant),
    LinkFailed(String),
}

/// Why a bound session ended.
enum SessionEnd {
    /// Queue drained and unbound: the task is done.
    Drained,
    /// Told to stop before the queue drained.
    Aborted,
    /// The link failed; reconnect.
    Lost(String),
}

struct InFlight {
    part: OutboundPart,
    written_at: Instant,
}

/// Allocates sequence_numbers: 1..=0x7FFF_FFFF, wrapping, as SMPP 3.4 section 3.2 allows.
struct Sequence(u32);

impl Sequence {
    fn next(&mut self) -> u32 {
        self.0 = if self.0 >= 0x7FFF_FFFF { 1 } else { self.0 + 1 };
        self.0
    }
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

pub(super) struct Session {
    shared: Arc<CarrierShared>,
    kind: BindKind,
    /// `carrier#n/kind`, for logs.
    label: String,
    router: Weak<RouterInner>,
    /// This session's own parts, in order: split from a message it took, or refused as
    /// throttled (resent here after a pause). Handed back to the carrier when the link drops.
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

    /// Counts parts written again after an unanswered write: possible duplicates.
    fn resubmitted(&self, reason: &'static str, count: usize) {
        metrics::counter!(m::SMS_RESUBMITTED_TOTAL, m::LABEL_CARRIER => self.config().name.clone(), m::LABEL_REASON => reason)
            .increment(count as u64);
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
            self.shared.hand_back_first(self.retry.drain(..).collect());
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
    /// what waits for it to other routes. Also refreshes the carrier's gauges, which time alone
    /// can change (a breaker's open period ends): this runs every second in every session.
    fn rescue(&mut self) {
        let now = Instant::now();
        self.shared.refresh_gauges(now);
        if self.kind.submits() && !self.shared.available(now) {
            self.move_elsewhere();
        }
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

    /// Takes the next part to write without waiting: this session's own first, then parts
    /// handed back to the carrier, then its queue, split into parts. While the carrier's breaker
    /// is open, whatever another route can take moves there first; the rest is still sent here.
    fn next_ready(&mut self) -> Option<OutboundPart> {
        if !self.kind.submits() {
            return None;
        }
        loop {
            if let Some(part) = self.retry.pop_front() {
                return Some(part);
            }
            if !self.shared.accepting(Instant::now()) {
                self.move_elsewhere();
            }
            if let Some(part) = self.shared.take_part() {
                return Some(part);
            }
            let sms = self.shared.try_take_message()?;
            self.expand(sms);
        }
    }

    /// Splits a message into its parts, at the back of this session's own list; one that
    /// cannot be encoded ends here.
    fn expand(&mut self, sms: OutboundSms) {
        let reference = self.shared.next_reference();
        match pdu::submit_parts(self.config(), &sms, reference) {
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
                self.retry
                    .extend(bodies.into_iter().map(|body| OutboundPart {
                        sms: sms.clone(),
                        body,
                        of,
                    }));
            }
            Err(err) => {
                self.record("invalid");
                self.deliveries
                    .ended(&sms.id, DeliveryState::Failed, Some(err.to_string()));
                warn!(session = %self.label, to = %sms.to.masked(), %err, "message cannot be encoded");
            }
        }
    }

    /// Feeds one part into the link buffer (no flush).
    async fn feed_submit(
        &mut self,
        link: &mut Link,
        sequence: &mut Sequence,
        in_flight: &mut HashMap<u32, InFlight>,
        part: OutboundPart,
    ) -> Fed {
        let now = Instant::now();
        if now >= part.sms.deadline {
            self.record("expired");
            self.deliveries
                .ended(&part.sms.id, DeliveryState::Expired, None);
            debug!(session = %self.label, to = %part.sms.to.masked(), "code expired before it could be sent");
            return Fed::Dropped;
        }
        if let Some(pacer) = &self.shared.pacer
            && let Err(not_until) = pacer.check()
        {
            // Over the carrier's rate: this part waits, in its place, for the next slot.
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            self.retry.push_front(part);
            return Fed::Paused(now + wait);
        }
        let seq = sequence.next();
        let command = Command::new(CommandStatus::EsmeRok, seq, part.body.clone());
        if let Err(err) = link.feed(&command).await {
            self.retry.push_front(part);
            return Fed::LinkFailed(err.to_string());
        }
        in_flight.insert(
            seq,
            InFlight {
                part,
                written_at: now,
            },
        );
        Fed::Written
    }

    /// Serves a bound link until it ends.
    async fn serve(&mut self, mut link: Link) -> SessionEnd {
        let mut sequence = Sequence(1);
        let mut in_flight: HashMap<u32, InFlight> = HashMap::new();
        let mut enquire_outstanding: Option<(u32, Instant)> = None;
        let mut last_read = Instant::now();
        let mut paused_until: Option<Instant> = None;
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
            // Fill the window from what is ready, then flush once: one syscall for a batch.
            let writable = paused_until.is_none_or(|until| Instant::now() >= until);
            if writable {
                paused_until = None;
                let mut fed = false;
                let mut failure = None;
                while in_flight.len() < window {
                    let Some(part) = self.next_ready() else { break };
                    match self
                        .feed_submit(&mut link, &mut sequence, &mut in_flight, part)
                        .await
                    {
                        Fed::Written => fed = true,
                        Fed::Dropped => {}
                        Fed::Paused(until) => {
                            paused_until = Some(until);
                            break;
                        }
                        Fed::LinkFailed(err) => {
                            failure = Some(err);
                            break;
                        }
                    }
                }
                if let Some(err) = failure {
                    break SessionEnd::Lost(format!("write failed: {err}"));
                }
                if fed && let Err(err) = link.flush().await {
                    break SessionEnd::Lost(format!("write failed: {err}"));
                }
            }
            self.set_holding(!in_flight.is_empty() || !self.retry.is_empty());
            if self.stop.drain.is_cancelled() && in_flight.is_empty() && self.drained() {
                self.unbind(&mut link, &mut sequence).await;
                break SessionEnd::Drained;
            }

            let can_take = self.kind.submits() && writable && in_flight.len() < window;
            let can_take_queue = can_take && shared.accepting(Instant::now());
            tokio::select! {
                frame = link.next() => {
                    last_read = Instant::now();
                    match frame {
                        None => break SessionEnd::Lost("connection closed by the SMSC".into()),
                        Some(Err(err)) => break SessionEnd::Lost(format!("read failed: {err}")),
                        Some(Ok(Frame::Malformed { command_id, sequence_number, nack_status, error })) => {
                            warn!(session = %self.label, ?command_id, %error, "malformed PDU from the SMSC answered with generic_nack");
                            let nack = Command::new(nack_status, sequence_number, Pdu::GenericNack);
                            if let Err(err) = link.send(&nack).await {
                                break SessionEnd::Lost(format!("write failed: {err}"));
                            }
                        }
                        Some(Ok(Frame::Command(command))) => {
                            match self.on_command(command, &mut link, &mut in_flight, &mut enquire_outstanding, &mut paused_until).await {
                                Ok(()) => {}
                                Err(reason) => break SessionEnd::Lost(reason),
                            }
                        }
                    }
                }
                // The loop head writes its parts, fills the window and flushes.
                batch = shared.recv_batch(window.saturating_sub(in_flight.len())), if can_take_queue => {
                    for sms in batch {
                        self.expand(sms);
                    }
                }
                // Work handed back by another session of this carrier.
                _ = shared.lanes_ready.notified(), if can_take => {}
                _ = ticker.tick() => {
                    let now = Instant::now();
                    self.expire_responses(&mut in_flight, now);
                    self.rescue();
                    if let Some((_, sent)) = enquire_outstanding {
                        if now.duration_since(sent) >= self.config().enquire_link_timeout {
                            break SessionEnd::Lost("enquire_link unanswered".into());
                        }
                    } else if now.duration_since(last_read) >= self.config().enquire_link_interval {
                        let seq = sequence.next();
                        if let Err(err) = link.send(&Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink)).await {
                            break SessionEnd::Lost(format!("write failed: {err}"));
                        }
                        enquire_outstanding = Some((seq, now));
                    }
                }
                // Wakes the loop head once, to close the queue and check whether all is sent.
                _ = self.stop.drain.cancelled(), if !self.stop.drain.is_cancelled() => {}
                _ = self.stop.abort.cancelled() => break SessionEnd::Aborted,
            }
        };
        // Whatever was written and not answered goes first, to any session of this carrier,
        // then this session's own parts. Each resend is a possible duplicate (at-least-once).
        let mut unanswered: Vec<(u32, InFlight)> = in_flight.drain().collect();
        unanswered.sort_by_key(|(seq, _)| *seq);
        if !unanswered.is_empty() {
            self.resubmitted("link_lost", unanswered.len());
        }
        let mut handed: Vec<OutboundPart> = unanswered.into_iter().map(|(_, f)| f.part).collect();
        handed.extend(self.retry.drain(..));
        shared.hand_back_first(handed);
        self.set_holding(false);
        end
    }

    /// Answers or matches one PDU from the SMSC. An error ends the session.
    async fn on_command(
        &mut self,
        command: Command,
        link: &mut Link,
        in_flight: &mut HashMap<u32, InFlight>,
        enquire_outstanding: &mut Option<(u32, Instant)>,
        paused_until: &mut Option<Instant>,
    ) -> Result<(), String> {
        let seq = command.sequence_number();
        let reply = match command.id() {
            CommandId::SubmitSmResp | CommandId::GenericNack => {
                match in_flight.remove(&seq) {
                    Some(flight) => {
                        let message_id = match command.pdu() {
                            Some(Pdu::SubmitSmResp(body)) => body.message_id().as_str(),
                            _ => "",
                        };
                        self.on_submit_result(flight, command.status(), message_id, paused_until)
                    }
                    None => {
                        debug!(session = %self.label, seq, "response to no outstanding request")
                    }
                }
                None
            }
            CommandId::EnquireLinkResp => {
                if enquire_outstanding.is_some_and(|(expected, _)| expected == seq) {
                    *enquire_outstanding = None;
                }
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
                    self.on_deliver_sm(body);
                }
                Some(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    DeliverSmResp::default(),
                ))
            }
            CommandId::Unbind => {
                let resp = Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp);
                let _ = link.send(&resp).await;
                return Err("the SMSC unbound".into());
            }
            CommandId::UnbindResp
            | CommandId::BindTransceiverResp
            | CommandId::BindTransmitterResp
            | CommandId::BindReceiverResp => None,
            id if u32::from(id) & 0x8000_0000 != 0 => {
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
            link.send(&reply)
                .await
                .map_err(|err| format!("write failed: {err}"))?;
        }
        Ok(())
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
        if status == CommandStatus::EsmeRok {
            self.record("ok");
            self.shared.success();
            self.deliveries.submitted(&flight.part.sms.id, message_id);
            return;
        }
        let name = status_name(status);
        if is_temporary(status) {
            let now = Instant::now();
            *paused_until = Some(now + self.config().throttle_pause);
            if is_throttle(status) {
                // Resend the same part here after the pause; it keeps its place before newer ones.
                debug!(session = %self.label, status = %name, "throttled; the part will be resent after a pause");
                self.retry.push_front(flight.part);
            } else {
                // A failure of the carrier: any session may retry it, or another carrier once
                // this one's breaker opens.
                debug!(session = %self.label, status = %name, "temporary refusal; the part will be retried");
                self.shared.failure(now, &name);
                self.shared.hand_back_first(vec![flight.part]);
            }
        } else {
            warn!(session = %self.label, to = %flight.part.sms.to.masked(), status = %name, "submit_sm refused");
            self.deliveries.ended(
                &flight.part.sms.id,
                DeliveryState::Failed,
                Some(name.clone()),
            );
        }
        self.record(&name);
    }

    fn on_deliver_sm(&self, body: &rusmpp::pdus::DeliverSm) {
        let Some(receipt) = receipt::parse(
            u8::from(body.esm_class),
            body.short_message().as_ref(),
            body.tlvs(),
        ) else {
            debug!(session = %self.label, "deliver_sm that is not a receipt acknowledged");
            return;
        };
        let matched = self
            .deliveries
            .receipt(&self.shared.receipt_scope, &receipt);
        if let Some(latency) = matched {
            self.shared
                .metrics
                .receipt_latency
                .record(latency.as_secs_f64());
        } else {
            debug!(session = %self.label, id = %receipt.message_id, "receipt for no known message");
        }
        metrics::counter!(
            m::SMS_RECEIPTS_TOTAL,
            m::LABEL_CARRIER => self.config().name.clone(),
            m::LABEL_STATE => receipt.state.as_str(),
            m::LABEL_RESULT => if matched.is_some() { "matched" } else { "unmatched" }
        )
        .increment(1);
    }

    fn expire_responses(&mut self, in_flight: &mut HashMap<u32, InFlight>, now: Instant) {
        let timeout = self.config().response_timeout;
        let expired: Vec<u32> = in_flight
            .iter()
            .filter(|(_, flight)| now.duration_since(flight.written_at) >= timeout)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(flight) = in_flight.remove(&seq) {
                self.record("timeout");
                self.resubmitted("response_timeout", 1);
                self.shared.failure(now, "no submit_sm_resp in time");
                // No answer is not a refusal: try again while the code is still valid.
                if now < flight.part.sms.deadline {
                    self.shared.hand_back_last(flight.part);
                }
            }
        }
    }

    async fn unbind(&mut self, link: &mut Link, sequence: &mut Sequence) {
        let seq = sequence.next();
        if link
            .send(&Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind))
            .await
            .is_err()
        {
            return;
        }
        let wait = async {
            while let Some(Ok(frame)) = link.next().await {
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
