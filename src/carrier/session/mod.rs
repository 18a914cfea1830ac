//! One SMPP session (a transceiver, transmitter or receiver bind): binds, serves the link,
//! reconnects, and unbinds on drain. The link (see `link.rs`) writes on a task of its own, so
//! the timers here run whatever the SMSC does: a stalled write, a response that never comes, an
//! enquire_link unanswered, each ends the link, and what it held is handed back to the carrier,
//! in order, where another session (or this one, rebound) takes it.
//!
//! `window.rs` is what goes out (the next part in order, the window, timeouts, resends);
//! `inbound.rs` is what comes in (responses, receipts, requests, malformed frames).

mod inbound;
mod window;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rusmpp::{Command, CommandId, CommandStatus, Pdu};
use smpp_wire::Frame;
use tracing::{debug, info, warn};

use super::backoff::Backoff;
use super::link::{self, Link, LinkError};
use super::pdu::BindKind;
use super::{CarrierShared, CarrierStop, OutboundPart, OutboundSms, RouterInner};
use crate::config::CarrierConfig;
use crate::delivery::{DeliveryState, DeliveryTracker};
use crate::metrics as m;
use window::{InFlight, LinkState, Sequence};

/// Why a bound session ended.
enum SessionEnd {
    /// Queue drained and unbound: the task is done.
    Drained,
    /// Told to stop before the queue drained.
    Aborted,
    /// The link failed; reconnect.
    Lost(LinkError),
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
            let delay = backoff.next_delay(crate::clock::jitter_seed());
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
        for sms in self.shared.take_expired(self.shared.clock.now()) {
            self.expired(&sms);
        }
    }

    fn expired(&self, sms: &OutboundSms) {
        self.record("expired");
        self.deliveries.ended(&sms.id, DeliveryState::Expired, None);
        debug!(session = %self.label, to = %sms.to.masked(), "code expired before it could be sent");
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
                while state.in_flight.len() < window && link.writer.has_room() {
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
            // A pause (throttle, pacer) ends on time, not at the next tick.
            let resume = state.paused_until.map(tokio::time::Instant::from_std);
            tokio::select! {
                // Read only while the answers can be queued: the writer sets the pace.
                event = link::next_event(&mut link.reader), if link.writer.has_room() => {
                    state.last_read = Instant::now();
                    if let Err(err) = self.on_event(event, &link, &mut state) {
                        break SessionEnd::Lost(err);
                    }
                }
                err = link.writer_task.failed() => break SessionEnd::Lost(err),
                _ = link.writer.room(), if !link.writer.has_room() => {}
                // The loop head writes its parts and fills the window.
                batch = shared.recv_batch(window.saturating_sub(state.in_flight.len())), if can_take_queue => {
                    for sms in batch {
                        self.expand(sms);
                    }
                }
                // Work handed back by another session of this carrier.
                _ = shared.lanes_ready.notified(), if can_take => {}
                _ = ticker.tick() => {
                    if let Err(err) = self.on_tick(&link, &mut state) {
                        break SessionEnd::Lost(err);
                    }
                }
                _ = tokio::time::sleep_until(resume.unwrap_or_else(tokio::time::Instant::now)), if resume.is_some() => {}
                // Wakes the loop head once, to close the queue and check whether all is sent.
                _ = self.stop.drain.cancelled(), if !self.stop.drain.is_cancelled() => {}
                _ = self.stop.abort.cancelled() => break SessionEnd::Aborted,
            }
        };
        // A send that found the writer gone raced its report: the writer's own outcome (a
        // stall, a write error) is the reason.
        let end = match end {
            SessionEnd::Lost(LinkError::WriterGone) => SessionEnd::Lost(
                tokio::time::timeout(self.config().write_timeout, link.writer_task.failed())
                    .await
                    .unwrap_or(LinkError::WriterGone),
            ),
            end => end,
        };
        let link_id = link.id;
        if matches!(end, SessionEnd::Lost(LinkError::Unbound)) {
            // The unbind_resp is queued: let the writer send it (bounded) before closing.
            let Link {
                writer,
                mut writer_task,
                ..
            } = link;
            drop(writer);
            let _ = tokio::time::timeout(self.config().unbind_timeout, writer_task.failed()).await;
        }
        // Whatever was written and not answered goes back, in order, for a fresh link; then
        // this session's own parts.
        let mut unanswered: Vec<InFlight> = state.in_flight.into_values().collect();
        unanswered.sort_by_key(|flight| flight.part.ordinal);
        for flight in unanswered {
            self.unanswered(flight.part, link_id, "link_lost");
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
        } else if now.duration_since(state.last_read) >= self.config().enquire_link_interval
            && link.writer.has_room()
        {
            let seq = state.sequence.next();
            link.writer
                .send(Command::new(CommandStatus::EsmeRok, seq, Pdu::EnquireLink))?;
            state.enquire_outstanding = Some((seq, now));
        }
        Ok(())
    }

    /// Moves what waits for this carrier to other routes (see `RouterInner::move_waiting`).
    fn move_elsewhere(&self) {
        if let Some(router) = self.router.upgrade() {
            router.move_waiting(&self.shared);
        }
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
