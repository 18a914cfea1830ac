//! Sends each delivery receipt when its message reaches its final state, to a bound receiver or
//! transceiver of the submitting account; retries while none is bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::debug;

use crate::Shared;
use crate::receipt::Job;
use crate::registry::Outbound;

/// Retries while no receiver is bound: once a second for a minute.
const RETRY_UNBOUND: Duration = Duration::from_secs(1);
const MAX_ATTEMPTS: u32 = 60;
/// Retry when the receiver's outbound queue is full: soon, it drains at wire speed.
const RETRY_BUSY: Duration = Duration::from_millis(5);

/// Receipts scheduled and not yet sent or given up, and a wake-up for sessions waiting for room.
///
/// Sessions stop reading at `max` pending and resume below three quarters of it; the wake-up
/// fires only when the count crosses that mark, not for every receipt.
pub struct Pending {
    count: AtomicUsize,
    max: usize,
    resume_below: usize,
    room: Notify,
}

impl Pending {
    pub fn new(max: usize) -> Self {
        Self {
            count: AtomicUsize::new(0),
            max,
            resume_below: (max * 3 / 4).max(1),
            room: Notify::new(),
        }
    }

    pub fn add(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::Relaxed) == self.resume_below {
            self.room.notify_waiters();
        }
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether a session may read: below `max`, or (once paused) below the resume mark.
    pub fn may_read(&self, paused: bool) -> bool {
        self.count() < if paused { self.resume_below } else { self.max }
    }

    /// Waits until the count is below the resume mark.
    pub async fn room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if self.count() < self.resume_below {
                return;
            }
            room.await;
        }
    }
}

/// Runs until `shutdown`, taking jobs from `jobs`.
pub async fn run(
    shared: Arc<Shared>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shutdown: CancellationToken,
) {
    let mut due: DelayQueue<Job> = DelayQueue::new();
    loop {
        tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => {
                    let at = job.at;
                    due.insert_at(job, at);
                }
                None => break,
            },
            Some(expired) = due.next(), if !due.is_empty() => {
                let mut job = expired.into_inner();
                match deliver(&shared, &mut job) {
                    Some(retry) => {
                        due.insert_at(job, retry);
                    }
                    None => shared.pending_receipts.done(),
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
}

/// Sends the receipt; returns when to try again if no receiver could take it.
fn deliver(shared: &Shared, job: &mut Job) -> Option<Instant> {
    // A message cancelled (cancel_sm) before its final state gets no receipt; a DELETED
    // outcome does.
    if shared.store.was_cancelled(&job.receipt.message_id) {
        return None;
    }
    if let Some(session) = shared.registry.receiver(Some(&job.account)) {
        job.receipt.done_at = SystemTime::now();
        // The session keeps it until the ESME's deliver_sm_resp, and hands it back if it ends
        // first: a receipt is not lost with a dropped link.
        if session
            .outbound
            .try_send(Outbound::Receipt(Box::new(job.clone())))
            .is_ok()
        {
            shared.metrics.receipt_sent(job.receipt.stat);
            shared.store.receipt_sent(&job.receipt.message_id);
            return None;
        }
        // Bound but busy: its queue drains at wire speed. Not counted as an attempt.
        return Some(Instant::now() + RETRY_BUSY);
    }
    job.attempts += 1;
    if job.attempts >= MAX_ATTEMPTS {
        debug!(account = %job.account, id = %job.receipt.message_id, "receipt dropped: no receiver bound");
        shared.metrics.receipt_dropped();
        return None;
    }
    Some(Instant::now() + RETRY_UNBOUND)
}
