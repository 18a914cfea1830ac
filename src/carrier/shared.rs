//! What a carrier's sessions share: its queue and the work handed back ahead of it, its segment
//! pacer, its circuit breaker, its counts of bound and busy sessions, and its metric handles.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{Notify, mpsc, watch};
use tracing::warn;

use super::breaker::{Breaker, BreakerState};
use super::pdu::BindKind;
use super::tls::TlsClient;
use super::{OutboundPart, OutboundSms};
use crate::clock::SharedClock;
use crate::config::CarrierConfig;
use crate::metrics as m;

/// Work a carrier's sessions share, ahead of its queue: parts handed back by a session (link
/// lost, no answer, temporary refusal), and whole messages put back by a failed move.
#[derive(Default)]
pub(super) struct Lanes {
    pub(super) parts: VecDeque<OutboundPart>,
    pub(super) messages: VecDeque<OutboundSms>,
    /// Keeps the queue slot of a message taken from the queue's head only to look at its
    /// deadline (see `take_expired`), so the queue's bound still bounds: released once
    /// `messages` is empty again.
    head_slot: Option<mpsc::OwnedPermit<OutboundSms>>,
}

impl Lanes {
    fn pop_message(&mut self) -> Option<OutboundSms> {
        let sms = self.messages.pop_front();
        if self.messages.is_empty() {
            self.head_slot = None;
        }
        sms
    }
}

/// Metric handles resolved once per carrier: the per-message path allocates no label strings.
pub(super) struct CarrierMetrics {
    pub(super) submitted_ok: metrics::Counter,
    pub(super) submit_duration: metrics::Histogram,
    pub(super) queue_depth: metrics::Gauge,
    pub(super) bound: metrics::Gauge,
    pub(super) bind_failures: metrics::Counter,
    pub(super) receipt_latency: metrics::Histogram,
    pub(super) available: metrics::Gauge,
    pub(super) breaker_state: metrics::Gauge,
    pub(super) breaker_trips: metrics::Counter,
}

impl CarrierMetrics {
    pub(super) fn new(carrier: &str) -> Self {
        let label = || carrier.to_owned();
        // Outcomes that may not happen for a while still show as 0 from the start.
        for result in ["ok", "expired", "timeout"] {
            metrics::counter!(m::SMS_SUBMITTED_TOTAL, m::LABEL_CARRIER => label(), m::LABEL_RESULT => result)
                .increment(0);
        }
        Self {
            submitted_ok: metrics::counter!(m::SMS_SUBMITTED_TOTAL, m::LABEL_CARRIER => label(), m::LABEL_RESULT => "ok"),
            submit_duration: metrics::histogram!(m::SMS_SUBMIT_DURATION_SECONDS, m::LABEL_CARRIER => label()),
            queue_depth: metrics::gauge!(m::SMS_QUEUE_DEPTH, m::LABEL_CARRIER => label()),
            bound: metrics::gauge!(m::SMPP_SESSIONS_BOUND, m::LABEL_CARRIER => label()),
            bind_failures: metrics::counter!(m::SMPP_BIND_FAILURES_TOTAL, m::LABEL_CARRIER => label()),
            receipt_latency: metrics::histogram!(m::SMS_RECEIPT_LATENCY_SECONDS, m::LABEL_CARRIER => label()),
            available: metrics::gauge!(m::CARRIER_AVAILABLE, m::LABEL_CARRIER => label()),
            breaker_state: metrics::gauge!(m::CARRIER_BREAKER_STATE, m::LABEL_CARRIER => label()),
            breaker_trips: metrics::counter!(m::CARRIER_BREAKER_TRIPS_TOTAL, m::LABEL_CARRIER => label()),
        }
    }
}

/// What a carrier's sessions share.
pub(super) struct CarrierShared {
    pub(super) index: usize,
    /// `config.name`, shared into delivery records without copying.
    pub(super) name: Arc<str>,
    /// `system_id@host:port`: receipts for what this carrier sent come back on that account,
    /// whichever carrier's session it binds.
    pub(super) receipt_scope: Arc<str>,
    pub(super) config: CarrierConfig,
    pub(super) queue_tx: mpsc::Sender<OutboundSms>,
    pub(super) queue_rx: tokio::sync::Mutex<mpsc::Receiver<OutboundSms>>,
    pub(super) queue_closed: AtomicBool,
    pub(super) lanes: Mutex<Lanes>,
    /// Wakes idle sessions when work is handed back.
    pub(super) lanes_ready: Notify,
    /// Segments per second across all of this carrier's sessions, if limited.
    pub(super) pacer: Option<governor::DefaultDirectRateLimiter>,
    /// Concatenation reference of the next multipart message (unique across sessions).
    pub(super) reference: AtomicU16,
    /// The next part's place in the carrier's order (see `OutboundPart::ordinal`).
    pub(super) ordinals: AtomicU64,
    /// Bound sessions that can submit.
    pub(super) senders: AtomicUsize,
    /// Submitting session tasks not yet finished: receivers stay for their receipts until 0.
    pub(super) running_senders: AtomicUsize,
    /// Sessions holding parts (written and unanswered, or waiting in their own list): the
    /// drain is not over while any does, since a dropped link hands them back.
    pub(super) holding: AtomicUsize,
    pub(super) breaker: Mutex<Breaker>,
    /// Set while the breaker is closed with no failure counted: the hot path skips its lock.
    pub(super) breaker_clean: AtomicBool,
    pub(super) tls: Option<TlsClient>,
    /// registered_delivery asks for receipts: acceptance alone is not final.
    pub(super) receipts_expected: bool,
    pub(super) metrics: CarrierMetrics,
    /// Bound sessions of every carrier.
    pub(super) sessions_bound: Arc<watch::Sender<usize>>,
    /// The daemon's clock, for messages' deadlines (link timers run on tokio's time).
    pub(super) clock: SharedClock,
}

impl CarrierShared {
    pub(super) fn new(
        index: usize,
        config: CarrierConfig,
        tls: Option<TlsClient>,
        sessions_bound: Arc<watch::Sender<usize>>,
        clock: SharedClock,
    ) -> Self {
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity);
        let metrics = CarrierMetrics::new(&config.name);
        metrics.breaker_state.set(0.0);
        metrics.available.set(0.0);
        Self {
            index,
            name: Arc::from(config.name.as_str()),
            receipt_scope: Arc::from(format!(
                "{}@{}:{}",
                config.system_id, config.host, config.port
            )),
            pacer: config
                .max_messages_per_second
                .map(|rate| governor::RateLimiter::direct(governor::Quota::per_second(rate))),
            receipts_expected: matches!(config.registered_delivery & 0x03, 1 | 3),
            breaker: Mutex::new(Breaker::new(config.breaker)),
            config,
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            queue_closed: AtomicBool::new(false),
            lanes: Mutex::new(Lanes::default()),
            lanes_ready: Notify::new(),
            reference: AtomicU16::new(0),
            ordinals: AtomicU64::new(0),
            senders: AtomicUsize::new(0),
            running_senders: AtomicUsize::new(0),
            holding: AtomicUsize::new(0),
            breaker_clean: AtomicBool::new(true),
            tls,
            metrics,
            sessions_bound,
            clock,
        }
    }

    pub(super) fn lanes(&self) -> MutexGuard<'_, Lanes> {
        // Every update leaves the lanes consistent; a panic elsewhere cannot tear them.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Queues without waiting. The drain's close applies to new messages only (checked by
    /// `Carriers::try_enqueue`): one moving here from a carrier that cannot send still may.
    // The message comes back whole when it cannot be queued: boxing it would cost an
    // allocation per message on the hot path.
    #[allow(clippy::result_large_err)]
    pub(super) fn try_enqueue(&self, sms: OutboundSms) -> Result<(), OutboundSms> {
        self.queue_tx
            .try_send(sms)
            .map_err(|err| err.into_inner())?;
        self.metrics.queue_depth.increment(1.0);
        Ok(())
    }

    /// Messages in the queue (from the sender side: no lock).
    pub(super) fn queue_len(&self) -> usize {
        self.queue_tx.max_capacity() - self.queue_tx.capacity()
    }

    /// Takes no more messages (the drain): what is queued is still sent. A flag, not the
    /// channel's close: closing needs the receiver, which a waiting session may hold.
    pub(super) fn close_queue(&self) {
        self.queue_closed.store(true, Ordering::Release);
    }

    /// The next whole message without waiting: one put back first, then the queue.
    pub(super) fn try_take_message(&self) -> Option<OutboundSms> {
        if let Some(sms) = self.lanes().pop_message() {
            return Some(sms);
        }
        let sms = self.queue_rx.try_lock().ok()?.try_recv().ok()?;
        self.metrics.queue_depth.decrement(1.0);
        Some(sms)
    }

    /// Waits for queued messages and takes up to `limit` of them: one wake-up, one batch, even
    /// when several sessions wait on the queue.
    pub(super) async fn recv_batch(&self, limit: usize) -> Vec<OutboundSms> {
        let mut batch = Vec::new();
        let taken = self
            .queue_rx
            .lock()
            .await
            .recv_many(&mut batch, limit.max(1))
            .await;
        self.metrics.queue_depth.decrement(taken as f64);
        batch
    }

    /// Takes the first part handed back that may go on link `link` (not one that went
    /// unanswered there, unless accepted since), if it comes before `before` in the carrier's
    /// order.
    pub(super) fn take_part(&self, link: u64, before: Option<u64>) -> Option<OutboundPart> {
        let mut lanes = self.lanes();
        // A part a late answer accepted is taken anywhere, to be dropped by the taker.
        let position = lanes
            .parts
            .iter()
            .position(|part| part.not_on != Some(link) || part.accepted.load(Ordering::Acquire))?;
        if before.is_some_and(|before| lanes.parts[position].ordinal > before) {
            return None;
        }
        lanes.parts.remove(position)
    }

    /// Hands `parts` back for any session to take, each in its place in the carrier's order.
    pub(super) fn hand_back(&self, parts: Vec<OutboundPart>) {
        if parts.is_empty() {
            return;
        }
        let mut lanes = self.lanes();
        for part in parts {
            insert_in_order(&mut lanes.parts, part);
        }
        drop(lanes);
        self.lanes_ready.notify_waiters();
    }

    /// Takes out what waits here (handed back, or at the head of the queue) whose deadline
    /// passed, for the caller to end as expired: a carrier that cannot send must not keep
    /// messages `queued` for ever. The queue is looked at only while no session can submit
    /// (otherwise sessions take its head soon enough).
    pub(super) fn take_expired(&self, now: Instant) -> Vec<Arc<OutboundSms>> {
        let mut expired = Vec::new();
        let mut lanes = self.lanes();
        lanes.parts.retain(|part| {
            if part.accepted.load(Ordering::Acquire) {
                // A late answer accepted it: its resend is not needed (nor an end).
                return false;
            }
            let keep = now < part.sms.deadline;
            if !keep && !expired.iter().any(|sms| Arc::ptr_eq(sms, &part.sms)) {
                expired.push(part.sms.clone());
            }
            keep
        });
        let mut kept = VecDeque::new();
        for sms in lanes.messages.drain(..) {
            if now < sms.deadline {
                kept.push_back(sms);
            } else {
                expired.push(Arc::new(sms));
            }
        }
        lanes.messages = kept;
        if lanes.messages.is_empty() {
            lanes.head_slot = None;
            if self.senders.load(Ordering::Acquire) == 0
                && let Ok(mut queue) = self.queue_rx.try_lock()
            {
                while let Ok(sms) = queue.try_recv() {
                    self.metrics.queue_depth.decrement(1.0);
                    if now < sms.deadline {
                        // Its slot was freed by taking it; take the slot again (a send that
                        // raced into it makes the queue one longer, once).
                        lanes.head_slot = self.queue_tx.clone().try_reserve_owned().ok();
                        lanes.messages.push_front(sms);
                        break;
                    }
                    expired.push(Arc::new(sms));
                }
            }
        }
        expired
    }

    pub(super) fn has_handed_back(&self) -> bool {
        let lanes = self.lanes();
        !lanes.parts.is_empty() || !lanes.messages.is_empty()
    }

    /// Nothing waits for this carrier and no session of it holds a part.
    pub(super) fn idle(&self) -> bool {
        self.nothing_left() && self.holding.load(Ordering::Acquire) == 0
    }

    /// Nothing waits to be sent any more (the queue closed and empty, nothing handed back).
    pub(super) fn nothing_left(&self) -> bool {
        self.queue_closed.load(Ordering::Acquire)
            && self.queue_len() == 0
            && !self.has_handed_back()
    }

    /// Whether the breaker lets new traffic through.
    pub(super) fn accepting(&self, now: Instant) -> bool {
        self.breaker_clean.load(Ordering::Acquire) || self.breaker().allows(now)
    }

    /// Whether new traffic should come here: a submitting session bound, and the breaker not open.
    pub(super) fn available(&self, now: Instant) -> bool {
        self.senders.load(Ordering::Acquire) > 0 && self.accepting(now)
    }

    pub(super) fn success(&self) {
        if self.breaker_clean.load(Ordering::Acquire) {
            return;
        }
        // The flag changes only under the breaker's lock, so it always matches the last
        // outcome recorded: a failure racing this success cannot be left marked clean.
        let mut breaker = self.breaker();
        breaker.success();
        self.breaker_clean.store(true, Ordering::Release);
        drop(breaker);
        self.refresh_gauges(Instant::now());
    }

    /// Counts a failure of this carrier (temporary refusal, no answer, failed bind).
    pub(super) fn failure(&self, now: Instant, what: &str) {
        let mut breaker = self.breaker();
        self.breaker_clean.store(false, Ordering::Release);
        let tripped = breaker.failure(now);
        drop(breaker);
        if tripped {
            self.metrics.breaker_trips.increment(1);
            warn!(carrier = %self.name(), last_failure = %what, open_seconds = self.config.breaker.open.as_secs(),
                "carrier keeps failing: breaker open, new traffic goes to other routes");
        }
        self.refresh_gauges(now);
    }

    pub(super) fn refresh_gauges(&self, now: Instant) {
        let state = if self.breaker_clean.load(Ordering::Acquire) {
            BreakerState::Closed
        } else {
            self.breaker().state(now)
        };
        self.metrics.breaker_state.set(state.gauge());
        let available = self.available(now);
        self.metrics
            .available
            .set(if available { 1.0 } else { 0.0 });
    }

    pub(super) fn session_bound(&self, kind: BindKind, bound: bool) {
        if kind.submits() {
            if bound {
                self.senders.fetch_add(1, Ordering::AcqRel);
            } else {
                self.senders.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let change = if bound { 1.0 } else { -1.0 };
        self.metrics.bound.increment(change);
        self.sessions_bound.send_modify(|count| {
            *count = if bound {
                *count + 1
            } else {
                count.saturating_sub(1)
            }
        });
        self.refresh_gauges(Instant::now());
    }

    pub(super) fn next_ordinal(&self) -> u64 {
        self.ordinals.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn next_reference(&self) -> u16 {
        self.reference
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }
}

/// Inserts `part` into `parts` (kept in the carrier's order) at its place.
pub(super) fn insert_in_order(parts: &mut VecDeque<OutboundPart>, part: OutboundPart) {
    let at = parts.partition_point(|other| other.ordinal < part.ordinal);
    parts.insert(at, part);
}
