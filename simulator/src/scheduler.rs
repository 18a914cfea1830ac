//! Sends each delivery receipt when its message reaches its final state, to a bound receiver or
//! transceiver of the submitting account; retries while none is bound.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;
use tracing::debug;

use crate::Shared;
use crate::outcome::Stat;
use crate::receipt::Receipt;
use crate::registry::Outbound;

/// Retries while no receiver is bound: once a second for a minute.
const RETRY_EVERY: Duration = Duration::from_secs(1);
const MAX_ATTEMPTS: u32 = 60;

/// One receipt due at `at`.
pub struct Job {
    pub account: String,
    pub receipt: Receipt,
    pub at: Instant,
    pub attempts: u32,
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
                if let Some(retry) = deliver(&shared, &mut job) {
                    due.insert_at(job, retry);
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
}

/// Sends the receipt; returns when to try again if no receiver could take it.
fn deliver(shared: &Shared, job: &mut Job) -> Option<Instant> {
    // A message cancelled (cancel_sm) before its final state gets no receipt.
    if shared
        .store
        .state_of(&job.receipt.message_id, std::time::Instant::now())
        == Some(Stat::Deleted)
    {
        return None;
    }
    if let Some(session) = shared.registry.receiver(Some(&job.account)) {
        job.receipt.done_at = SystemTime::now();
        let pdu = Box::new(job.receipt.deliver_sm());
        if session.outbound.try_send(Outbound::DeliverSm(pdu)).is_ok() {
            shared.metrics.receipt_sent(job.receipt.stat);
            shared.store.receipt_sent(&job.receipt.message_id);
            return None;
        }
    }
    job.attempts += 1;
    if job.attempts >= MAX_ATTEMPTS {
        debug!(account = %job.account, id = %job.receipt.message_id, "receipt dropped: no receiver bound");
        shared.metrics.receipt_dropped();
        return None;
    }
    Some(Instant::now() + RETRY_EVERY)
}
