//! Delivery to SMSCs. Each carrier is a bounded queue in front of its SMPP sessions (N binds,
//! each a transceiver or a transmitter + receiver pair), with one segment pacer and one circuit
//! breaker shared by those sessions. The router picks a carrier for each message by its routes,
//! and moves queued messages to another carrier when theirs cannot send.

mod backoff;
mod breaker;
mod link;
mod pdu;
mod routes;
mod session;
mod shared;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rusmpp::pdus::SubmitSm;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::SharedClock;
use crate::config::{BindMode, CarrierConfig, RouteConfig};
use crate::delivery::DeliveryTracker;
use crate::metrics as m;
use crate::phone::PhoneNumber;
use pdu::BindKind;
use routes::RouteTable;
use shared::CarrierShared;

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
    /// After this the code has expired and sending it is pointless; on the daemon's injected
    /// clock (`CarrierShared::clock`), like the code's expiry. Also sent to the SMSC as the
    /// message's validity_period (the time left when it is written).
    pub deadline: Instant,
    /// Says, right before the message is written, whether a newer message replaced it (a
    /// fresh code for the same number): then it is dropped as `superseded`.
    pub superseded: Option<SupersededCheck>,
    /// Writes of it that went unanswered so far: 0 for a new message. A message that moves to
    /// another carrier keeps its count, so `max_resends` holds across failover.
    pub unanswered_writes: u32,
}

/// See [`OutboundSms::superseded`].
pub type SupersededCheck = Arc<dyn Fn() -> bool + Send + Sync>;

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
    /// Which part this is (0-based).
    index: usize,
    /// The carrier's order of parts: whatever is handed back goes back into this order, so
    /// throttling or a lost link never reverses messages.
    ordinal: u64,
    /// Writes of it that went unanswered (a timeout, a lost link): past `max_resends` it is
    /// given up. Answered writes (a throttle, a temporary error) do not count.
    unanswered: u32,
    /// The link on which it went unanswered: it is resent only on another.
    not_on: Option<u64>,
    /// Set when the SMSC accepted it (a late submit_sm_resp on the link that gave it up
    /// included): a resend not yet written is then dropped.
    accepted: Arc<AtomicBool>,
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

    /// Moves whole messages waiting for `carrier` to another route that can send now; what has
    /// nowhere to go (or had a part accepted there already) stays. Called while `carrier`
    /// cannot send (no submitting session bound, or its breaker open).
    fn move_waiting(&self, carrier: &CarrierShared) {
        let router = self;
        let from = carrier.index;
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
        // Parts handed back, of messages none of whose parts the SMSC accepted (a message with
        // an accepted part, a late answer's included, stays). A moved message keeps its count
        // of unanswered writes.
        {
            let mut lanes = carrier.lanes();
            let parts = std::mem::take(&mut lanes.parts);
            let mut waiting: HashMap<*const OutboundSms, (usize, u32)> = HashMap::new();
            for part in &parts {
                let entry = waiting.entry(Arc::as_ptr(&part.sms)).or_default();
                if part.accepted.load(Ordering::Acquire) {
                    // Never equal to `of`: the message stays.
                    entry.0 = usize::MAX / 2;
                }
                entry.0 += 1;
                entry.1 = entry.1.max(part.unanswered);
            }
            let mut moved: Vec<*const OutboundSms> = Vec::new();
            let mut nowhere = false;
            for part in parts {
                let key = Arc::as_ptr(&part.sms);
                if moved.contains(&key) {
                    continue;
                }
                let whole = waiting.get(&key).filter(|(count, _)| *count == part.of);
                if !nowhere && let Some(&(_, unanswered)) = whole {
                    let sms = OutboundSms {
                        unanswered_writes: unanswered,
                        ..(*part.sms).clone()
                    };
                    match router.reroute(sms, from) {
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
        while let Some(sms) = carrier.try_take_message() {
            if let Err(sms) = router.reroute(sms, from) {
                carrier.lanes().messages.push_front(sms);
                break;
            }
        }
    }

    /// Moves `sms` off carrier `from` to another available route; gives it back when none is.
    // The message comes back whole when it cannot be queued: boxing it would cost an
    // allocation per message on the hot path.
    #[allow(clippy::result_large_err)]
    fn reroute(&self, sms: OutboundSms, from: usize) -> Result<(), OutboundSms> {
        self.place_avoiding(sms, from, vec![from])
    }

    /// Queues `sms` on the best route that can send now, skipping the carriers in `avoid` and
    /// any whose queue turns out full; counts the move away from `from`. Gives `sms` back when
    /// no route can take it.
    // The message comes back whole when it cannot be queued: boxing it would cost an
    // allocation per message on the hot path.
    #[allow(clippy::result_large_err)]
    fn place_avoiding(
        &self,
        mut sms: OutboundSms,
        from: usize,
        mut avoid: Vec<usize>,
    ) -> Result<(), OutboundSms> {
        let now = Instant::now();
        loop {
            let usable = |c: usize| !avoid.contains(&c) && self.carriers[c].available(now);
            let Some(pick) = self.table.pick(sms.to.digits(), usable, false) else {
                return Err(sms);
            };
            match self.carriers[pick.carrier].try_enqueue(sms) {
                Ok(()) => {
                    self.counted_failover(from, pick.carrier);
                    return Ok(());
                }
                Err(back) => {
                    sms = back;
                    avoid.push(pick.carrier);
                }
            }
        }
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
        match carrier.try_enqueue(sms) {
            Ok(()) => {
                if let Some(from) = pick.instead_of {
                    inner.counted_failover(from, pick.carrier);
                }
                Ok(())
            }
            Err(sms) => {
                let from = pick.instead_of.unwrap_or(pick.carrier);
                inner
                    .place_avoiding(sms, from, vec![pick.carrier])
                    .map_err(|_| EnqueueError::QueueFull)
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
    clock: SharedClock,
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
        carriers.push(Arc::new(CarrierShared::new(
            index,
            config,
            tls,
            sessions_tx.clone(),
            clock.clone(),
        )));
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
