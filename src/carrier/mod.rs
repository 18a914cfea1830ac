//! Delivery to SMSCs. Each carrier is a bounded queue in front of its SMPP sessions (N binds,
//! each a transceiver or a transmitter + receiver pair), with one segment pacer and one circuit
//! breaker shared by those sessions. The router picks a carrier for each message by its routes,
//! and moves queued messages to another carrier when theirs cannot send.

mod backoff;
mod breaker;
mod pdu;
mod routes;
mod session;
pub mod tls;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rusmpp::pdus::SubmitSm;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::config::{BindMode, CarrierConfig, RouteConfig};
use crate::delivery::DeliveryTracker;
use crate::metrics as m;
use crate::phone::PhoneNumber;
use breaker::{Breaker, BreakerState};
use pdu::BindKind;
use routes::RouteTable;

pub use pdu::submit_parts;

/// One SMS waiting for a carrier. Its text carries a code: never log it.
#[derive(Clone)]
pub struct OutboundSms {
    /// Our id of the message (the code's challenge id), for its delivery record.
    pub id: String,
    pub to: PhoneNumber,
    /// A sender for this message only (`+digits`, a short code, or alphanumeric); else the
    /// carrier's source_addr.
    pub from: Option<String>,
    pub text: String,
    /// After this the code has expired and sending it is pointless.
    pub deadline: Instant,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    #[error("the SMS queue for the carrier is full")]
    QueueFull,
    #[error("no route sends SMS to this number")]
    NoRoute,
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

/// Signals that end the carrier tasks, in shutdown order.
#[derive(Clone)]
pub struct CarrierStop {
    /// No more messages will be queued: send what is queued, unbind, finish.
    pub drain: CancellationToken,
    /// Stop now, whatever is left (the drain took too long).
    pub abort: CancellationToken,
}

/// One submit_sm's worth of a message: what windows, retry buffers and in-flight maps hold, so a
/// part the SMSC accepted is never sent again when a later one must be.
pub(crate) struct OutboundPart {
    sms: Arc<OutboundSms>,
    body: SubmitSm,
    /// How many parts the message has (a message moves to another carrier only whole).
    of: usize,
}

/// Work a carrier's sessions share, ahead of its queue: parts handed back by a session (link
/// lost, no answer, temporary refusal), and whole messages put back by a failed move.
#[derive(Default)]
struct Lanes {
    parts: VecDeque<OutboundPart>,
    messages: VecDeque<OutboundSms>,
}

/// Metric handles resolved once per carrier: the per-message path allocates no label strings.
struct CarrierMetrics {
    submitted_ok: metrics::Counter,
    submit_duration: metrics::Histogram,
    queue_depth: metrics::Gauge,
    bound: metrics::Gauge,
    bind_failures: metrics::Counter,
    receipt_latency: metrics::Histogram,
    available: metrics::Gauge,
    breaker_state: metrics::Gauge,
    breaker_trips: metrics::Counter,
}

impl CarrierMetrics {
    fn new(carrier: &str) -> Self {
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
pub(crate) struct CarrierShared {
    index: usize,
    /// `config.name`, shared into delivery records without copying.
    name: Arc<str>,
    /// `system_id@host:port`: receipts for what this carrier sent come back on that account,
    /// whichever carrier's session it binds.
    receipt_scope: Arc<str>,
    config: CarrierConfig,
    queue_tx: mpsc::Sender<OutboundSms>,
    queue_rx: tokio::sync::Mutex<mpsc::Receiver<OutboundSms>>,
    queue_closed: AtomicBool,
    lanes: Mutex<Lanes>,
    /// Wakes idle sessions when work is handed back.
    lanes_ready: Notify,
    /// Segments per second across all of this carrier's sessions, if limited.
    pacer: Option<governor::DefaultDirectRateLimiter>,
    /// Concatenation reference of the next multipart message (unique across sessions).
    reference: AtomicU16,
    /// Bound sessions that can submit.
    senders: AtomicUsize,
    /// Submitting session tasks not yet finished: receivers stay for their receipts until 0.
    running_senders: AtomicUsize,
    /// Sessions holding parts (written and unanswered, or waiting in their own list): the
    /// drain is not over while any does, since a dropped link hands them back.
    holding: AtomicUsize,
    breaker: Mutex<Breaker>,
    /// Set while the breaker is closed with no failure counted: the hot path skips its lock.
    breaker_clean: AtomicBool,
    tls: Option<tls::TlsClient>,
    /// registered_delivery asks for receipts: acceptance alone is not final.
    receipts_expected: bool,
    metrics: CarrierMetrics,
    /// Bound sessions of every carrier.
    sessions_bound: Arc<watch::Sender<usize>>,
}

impl CarrierShared {
    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        // Every update leaves the lanes consistent; a panic elsewhere cannot tear them.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// Queues without waiting. The drain's close applies to new messages only (checked by
    /// `Carriers::try_enqueue`): one moving here from a carrier that cannot send still may.
    fn try_enqueue(&self, sms: OutboundSms) -> Result<(), OutboundSms> {
        self.queue_tx
            .try_send(sms)
            .map_err(|err| err.into_inner())?;
        self.metrics.queue_depth.increment(1.0);
        Ok(())
    }

    /// Messages in the queue (from the sender side: no lock).
    fn queue_len(&self) -> usize {
        self.queue_tx.max_capacity() - self.queue_tx.capacity()
    }

    /// Takes no more messages (the drain): what is queued is still sent. A flag, not the
    /// channel's close: closing needs the receiver, which a waiting session may hold.
    fn close_queue(&self) {
        self.queue_closed.store(true, Ordering::Release);
    }

    /// The next whole message without waiting: one put back first, then the queue.
    fn try_take_message(&self) -> Option<OutboundSms> {
        if let Some(sms) = self.lanes().messages.pop_front() {
            return Some(sms);
        }
        let sms = self.queue_rx.try_lock().ok()?.try_recv().ok()?;
        self.metrics.queue_depth.decrement(1.0);
        Some(sms)
    }

    /// Waits for queued messages and takes up to `limit` of them: one wake-up, one batch, even
    /// when several sessions wait on the queue.
    async fn recv_batch(&self, limit: usize) -> Vec<OutboundSms> {
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

    fn take_part(&self) -> Option<OutboundPart> {
        self.lanes().parts.pop_front()
    }

    /// Hands `parts` back, in their order, ahead of everything else for any session to take.
    fn hand_back_first(&self, parts: Vec<OutboundPart>) {
        if parts.is_empty() {
            return;
        }
        let mut lanes = self.lanes();
        for part in parts.into_iter().rev() {
            lanes.parts.push_front(part);
        }
        drop(lanes);
        self.lanes_ready.notify_waiters();
    }

    /// Hands one part back behind the others handed back.
    fn hand_back_last(&self, part: OutboundPart) {
        self.lanes().parts.push_back(part);
        self.lanes_ready.notify_waiters();
    }

    fn has_handed_back(&self) -> bool {
        let lanes = self.lanes();
        !lanes.parts.is_empty() || !lanes.messages.is_empty()
    }

    /// Nothing waits for this carrier and no session of it holds a part.
    fn idle(&self) -> bool {
        self.nothing_left() && self.holding.load(Ordering::Acquire) == 0
    }

    /// Nothing waits to be sent any more (the queue closed and empty, nothing handed back).
    fn nothing_left(&self) -> bool {
        self.queue_closed.load(Ordering::Acquire)
            && self.queue_len() == 0
            && !self.has_handed_back()
    }

    /// Whether the breaker lets new traffic through.
    fn accepting(&self, now: Instant) -> bool {
        self.breaker_clean.load(Ordering::Acquire) || self.breaker().allows(now)
    }

    /// Whether new traffic should come here: a submitting session bound, and the breaker not open.
    fn available(&self, now: Instant) -> bool {
        self.senders.load(Ordering::Acquire) > 0 && self.accepting(now)
    }

    fn success(&self) {
        if self.breaker_clean.load(Ordering::Acquire) {
            return;
        }
        self.breaker().success();
        self.breaker_clean.store(true, Ordering::Release);
        self.refresh_gauges(Instant::now());
    }

    /// Counts a failure of this carrier (temporary refusal, no answer, failed bind).
    fn failure(&self, now: Instant, what: &str) {
        self.breaker_clean.store(false, Ordering::Release);
        let tripped = self.breaker().failure(now);
        if tripped {
            self.metrics.breaker_trips.increment(1);
            warn!(carrier = %self.name(), last_failure = %what, open_seconds = self.config.breaker.open.as_secs(),
                "carrier keeps failing: breaker open, new traffic goes to other routes");
        }
        self.refresh_gauges(now);
    }

    fn refresh_gauges(&self, now: Instant) {
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

    fn session_bound(&self, kind: BindKind, bound: bool) {
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

    fn next_reference(&self) -> u16 {
        self.reference
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }
}

/// The carriers and the routes to them.
pub(crate) struct RouterInner {
    carriers: Vec<Arc<CarrierShared>>,
    table: RouteTable,
    sessions_bound: watch::Receiver<usize>,
}

impl RouterInner {
    fn counted_failover(&self, from: usize, to: usize) {
        metrics::counter!(
            m::SMS_FAILOVERS_TOTAL,
            m::LABEL_FROM => self.carriers[from].name().to_owned(),
            m::LABEL_TO => self.carriers[to].name().to_owned()
        )
        .increment(1);
    }

    /// Moves `sms` off carrier `from` to another available route; gives it back when none is.
    fn reroute(&self, sms: OutboundSms, from: usize) -> Result<(), OutboundSms> {
        let now = Instant::now();
        let usable = |c: usize| c != from && self.carriers[c].available(now);
        let Some(pick) = self.table.pick(sms.to.digits(), usable, false) else {
            return Err(sms);
        };
        self.carriers[pick.carrier].try_enqueue(sms)?;
        self.counted_failover(from, pick.carrier);
        Ok(())
    }
}

/// Cheap-to-clone handle through which the rest of the daemon reaches the carriers.
#[derive(Clone)]
pub struct Carriers {
    inner: Arc<RouterInner>,
}

impl Carriers {
    /// Whether any route serves `to`.
    pub fn serves(&self, to: &PhoneNumber) -> bool {
        self.inner.table.serves(to.digits())
    }

    /// Queues `sms` on the carrier its routes choose, without waiting. When that carrier's queue
    /// is full, the next route that can send now takes it.
    pub fn try_enqueue(&self, sms: OutboundSms) -> Result<(), EnqueueError> {
        let inner = &self.inner;
        let now = Instant::now();
        let pick = inner
            .table
            .pick(sms.to.digits(), |c| inner.carriers[c].available(now), true)
            .ok_or(EnqueueError::NoRoute)?;
        let carrier = &inner.carriers[pick.carrier];
        if carrier.queue_closed.load(Ordering::Acquire) {
            return Err(EnqueueError::ShuttingDown);
        }
        let mut sms = match carrier.try_enqueue(sms) {
            Ok(()) => {
                if let Some(from) = pick.instead_of {
                    inner.counted_failover(from, pick.carrier);
                }
                return Ok(());
            }
            Err(sms) => sms,
        };
        let from = pick.instead_of.unwrap_or(pick.carrier);
        let mut full = vec![pick.carrier];
        loop {
            let usable = |c: usize| !full.contains(&c) && inner.carriers[c].available(now);
            let Some(next) = inner.table.pick(sms.to.digits(), usable, false) else {
                return Err(EnqueueError::QueueFull);
            };
            match inner.carriers[next.carrier].try_enqueue(sms) {
                Ok(()) => {
                    inner.counted_failover(from, next.carrier);
                    return Ok(());
                }
                Err(back) => {
                    sms = back;
                    full.push(next.carrier);
                }
            }
        }
    }

    /// Whether some carrier can send right now.
    pub fn any_available(&self) -> bool {
        let now = Instant::now();
        self.inner.carriers.iter().any(|c| c.available(now))
    }

    /// Bound sessions across all carriers (receivers included), and every change of it.
    pub fn bound_watch(&self) -> watch::Receiver<usize> {
        self.inner.sessions_bound.clone()
    }
}

/// Starts every carrier's sessions on `tracker` and returns the router to them; fails only when
/// TLS is configured and cannot be set up (unreadable CA bundle or client certificate).
pub fn spawn(
    configs: Vec<CarrierConfig>,
    routes: &[RouteConfig],
    stop: CarrierStop,
    deliveries: DeliveryTracker,
    tracker: &TaskTracker,
) -> Result<Carriers, tls::TlsSetupError> {
    let (sessions_tx, sessions_bound) = watch::channel(0usize);
    let sessions_tx = Arc::new(sessions_tx);
    let mut carriers = Vec::with_capacity(configs.len());
    for (index, config) in configs.into_iter().enumerate() {
        let tls = match &config.tls {
            Some(tls_config) => Some(tls::client(tls_config, &config.host)?),
            None => None,
        };
        let (queue_tx, queue_rx) = mpsc::channel(config.queue_capacity);
        let breaker = Breaker::new(config.breaker);
        let metrics = CarrierMetrics::new(&config.name);
        metrics.breaker_state.set(0.0);
        metrics.available.set(0.0);
        carriers.push(Arc::new(CarrierShared {
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
            config,
            queue_tx,
            queue_rx: tokio::sync::Mutex::new(queue_rx),
            queue_closed: AtomicBool::new(false),
            lanes: Mutex::new(Lanes::default()),
            lanes_ready: Notify::new(),
            reference: AtomicU16::new(0),
            senders: AtomicUsize::new(0),
            running_senders: AtomicUsize::new(0),
            holding: AtomicUsize::new(0),
            breaker: Mutex::new(breaker),
            breaker_clean: AtomicBool::new(true),
            tls,
            metrics,
            sessions_bound: sessions_tx.clone(),
        }));
    }
    let table = RouteTable::new(routes, |name| {
        carriers.iter().position(|c| c.config.name == name)
    });
    let inner = Arc::new(RouterInner {
        carriers,
        table,
        sessions_bound,
    });
    for carrier in &inner.carriers {
        let kinds: &[BindKind] = match carrier.config.bind_mode {
            BindMode::Transceiver => &[BindKind::Transceiver],
            BindMode::TransmitterReceiver => &[BindKind::Transmitter, BindKind::Receiver],
        };
        for number in 1..=carrier.config.binds {
            for &kind in kinds {
                if kind.submits() {
                    carrier.running_senders.fetch_add(1, Ordering::AcqRel);
                }
                let session = session::Session::new(
                    carrier.clone(),
                    kind,
                    number,
                    Arc::downgrade(&inner),
                    stop.clone(),
                    deliveries.clone(),
                );
                tracker.spawn(session.run());
            }
        }
    }
    Ok(Carriers { inner })
}
