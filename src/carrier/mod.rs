//! Delivery to the SMSC: a bounded queue in front of one SMPP transceiver session.

mod backoff;
mod pdu;
mod session;
pub mod tls;

use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::CarrierConfig;
use crate::delivery::DeliveryTracker;
use crate::metrics as m;
use crate::phone::PhoneNumber;

pub use pdu::{bind_transceiver, submit_parts};

/// One SMS waiting for the carrier. Its text carries a code: never log it.
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

/// The carrier's queue is full; the caller should shed load.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the SMS queue for the carrier is full")]
pub struct QueueFull;

/// Cheap-to-clone handle through which the rest of the daemon reaches the session task.
#[derive(Clone)]
pub struct CarrierHandle {
    queue: mpsc::Sender<OutboundSms>,
    queue_depth: metrics::Gauge,
    bound: watch::Receiver<bool>,
}

impl CarrierHandle {
    /// Queues `sms` without waiting.
    pub fn try_enqueue(&self, sms: OutboundSms) -> Result<(), QueueFull> {
        self.queue.try_send(sms).map_err(|_| QueueFull)?;
        self.queue_depth.increment(1.0);
        Ok(())
    }

    /// Whether a session is bound right now.
    pub fn is_bound(&self) -> bool {
        *self.bound.borrow()
    }

    /// A receiver that sees every change of the bound state.
    pub fn bound_watch(&self) -> watch::Receiver<bool> {
        self.bound.clone()
    }
}

/// Signals that end the carrier task, in shutdown order.
#[derive(Clone)]
pub struct CarrierStop {
    /// No more messages will be queued: send what is queued, unbind, finish.
    pub drain: CancellationToken,
    /// Stop now, whatever is left (the drain took too long).
    pub abort: CancellationToken,
}

/// Starts the session task on `tracker` and returns the handle to it; fails only when TLS is
/// configured and cannot be set up (unreadable CA bundle or client certificate).
pub fn spawn(
    config: CarrierConfig,
    stop: CarrierStop,
    deliveries: DeliveryTracker,
    tracker: &TaskTracker,
) -> Result<CarrierHandle, tls::TlsSetupError> {
    let tls = match &config.tls {
        Some(tls_config) => Some(tls::client(tls_config, &config.host)?),
        None => None,
    };
    let (queue, receiver) = mpsc::channel(config.queue_capacity);
    let (bound_tx, bound) = watch::channel(false);
    let queue_depth = metrics::gauge!(m::SMS_QUEUE_DEPTH, m::LABEL_CARRIER => config.name.clone());
    // Outcomes that may not happen for a while still show as 0 from the start.
    for result in ["ok", "expired", "timeout"] {
        metrics::counter!(m::SMS_SUBMITTED_TOTAL, m::LABEL_CARRIER => config.name.clone(), m::LABEL_RESULT => result)
            .increment(0);
    }
    let carrier = session::Carrier::new(config, receiver, bound_tx, stop, deliveries, tls);
    tracker.spawn(carrier.run());
    Ok(CarrierHandle {
        queue,
        queue_depth,
        bound,
    })
}
