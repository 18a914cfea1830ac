//! What became of each SMS: queued, submitted (with the carrier's message id), then a final
//! state from delivery receipts or from a refusal. A message split into parts is submitted when
//! every part is, delivered when every part is, and fails when any part fails. Bounded in count
//! and age. A receipt that overtakes its submit_sm_resp (separate TX and RX binds; SMSCs that
//! check the number before answering) is held for a while and applied once the id is known.
//!
//! Decisions happen under the lock; webhook notifications are built and queued after it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use smpp_wire::receipt::{MessageIds, Receipt, ReceiptState};

use crate::metrics as m;
use crate::webhooks::{Callback, Notification, Webhooks};

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Queued,
    /// Accepted by the carrier; waiting for a receipt (if one was asked for).
    Submitted,
    /// A receipt reported this state.
    Receipt(ReceiptState),
    /// The code expired before the message could be sent.
    Expired,
    /// The carrier refused it, or it could not be encoded.
    Failed,
    /// Written `1 + max_resends` times and never answered: the SMSC may or may not have it.
    /// Shown as `unknown`, like a receipt that never came.
    Unanswered,
    /// A newer code for the same number replaced this one before it was written.
    Superseded,
}

impl DeliveryState {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Submitted => "submitted",
            DeliveryState::Receipt(state) => state.as_str(),
            DeliveryState::Expired => "expired",
            DeliveryState::Failed => "failed",
            DeliveryState::Unanswered => "unknown",
            DeliveryState::Superseded => "superseded",
        }
    }

    /// Whether nothing will change it any more.
    pub fn is_final(&self) -> bool {
        match self {
            DeliveryState::Queued | DeliveryState::Submitted => false,
            DeliveryState::Receipt(state) => state.is_final(),
            DeliveryState::Expired
            | DeliveryState::Failed
            | DeliveryState::Unanswered
            | DeliveryState::Superseded => true,
        }
    }

    /// Whether the message already ended without delivery (no later part can change that).
    fn failed(&self) -> bool {
        match self {
            DeliveryState::Failed
            | DeliveryState::Expired
            | DeliveryState::Unanswered
            | DeliveryState::Superseded => true,
            DeliveryState::Receipt(state) => state.is_final() && *state != ReceiptState::Delivered,
            DeliveryState::Queued | DeliveryState::Submitted => false,
        }
    }
}

/// One message's record.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub state: DeliveryState,
    pub queued_at: SystemTime,
    pub submitted_at: Option<SystemTime>,
    pub done_at: Option<SystemTime>,
    /// The carrier's id of the first part accepted.
    pub message_id: Option<String>,
    /// A refusal's command_status name, or a receipt's `err:`.
    pub error: Option<String>,
    /// Parts the text was split into (1 until it is).
    pub parts: usize,
    /// The carrier that took it (the last one, when it moved).
    pub carrier: Option<Arc<str>>,
    /// Where its receipts come from: the SMSC account that took it (see `Assignment`).
    receipt_scope: Option<Arc<str>>,
    /// Whether that carrier was asked for receipts; without them, acceptance is final.
    receipts_expected: bool,
    /// Where state changes are POSTed, if the caller asked.
    pub callback: Option<Arc<Callback>>,
    /// Notifications sent so far; each carries the next number, so a receiver can drop one
    /// that a retry delivered after a newer one.
    notifications: u32,
    /// The carrier's id of every part accepted so far (all of them index this record).
    part_ids: Vec<String>,
    /// Which parts were accepted (a resend accepted twice counts once).
    accepted: Vec<bool>,
    submitted_parts: usize,
    delivered_parts: usize,
}

/// A receipt waiting for its message id to become known.
struct Held {
    receipts: Vec<Receipt>,
}

struct Inner {
    records: HashMap<String, Delivery>,
    /// Insertion order, for expiry and the count bound.
    order: VecDeque<(Instant, String)>,
    /// Per receipt scope (SMSC account), its message id -> our id. Two SMSCs may hand out the
    /// same ids, so a receipt is matched only among the messages its own account took.
    by_message_id: HashMap<Arc<str>, MessageIds<String>>,
    /// Submitted messages waiting for a final receipt, oldest first (the sweep reads the front).
    awaiting: VecDeque<(SystemTime, String)>,
    /// Receipts that came before their id was known, per scope, and their arrival order.
    early: HashMap<Arc<str>, MessageIds<Held>>,
    early_order: VecDeque<(Instant, Arc<str>, String)>,
    early_count: usize,
    /// Records not yet final, and their gauge (a handle: no registry lookup per message).
    in_progress: usize,
    in_progress_gauge: metrics::Gauge,
}

/// RFC 3339 with milliseconds, UTC.
fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

impl Delivery {
    /// The record as the status routes and webhooks show it.
    pub fn view(&self, id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "delivery": {
                "state": self.state.as_str(),
                "queued_at": timestamp(self.queued_at),
                "submitted_at": self.submitted_at.map(timestamp),
                "done_at": self.done_at.map(timestamp),
                "message_id": self.message_id,
                "error": self.error,
                "parts": self.parts,
                "carrier": self.carrier.as_deref(),
            }
        })
    }
}

/// Drops `record`'s carrier ids from the receipt index (a field of `Inner`, taken alone so the
/// record can stay borrowed from the same `Inner`).
fn unindex(index: &mut HashMap<Arc<str>, MessageIds<String>>, record: &Delivery) {
    let scope = record.receipt_scope.as_deref().unwrap_or_default();
    if let Some(ids) = index.get_mut(scope) {
        for part_id in &record.part_ids {
            ids.remove(part_id);
        }
    }
}

impl Inner {
    /// Keeps `in_progress` and its gauge right across a change of `id`'s state.
    fn account(&mut self, was_final: bool, now_final: bool) {
        match (was_final, now_final) {
            (false, true) => self.in_progress = self.in_progress.saturating_sub(1),
            (true, false) => self.in_progress += 1,
            _ => return,
        }
        self.in_progress_gauge.set(self.in_progress as f64);
    }
}

/// Who took a message, as its record needs it.
pub struct Assignment {
    /// The carrier's name, shown in the record.
    pub carrier: Arc<str>,
    /// Receipts for it come back on the SMSC account that took it (`system_id@host:port`):
    /// carriers sharing an account share receipts, others never match each other's ids.
    pub receipt_scope: Arc<str>,
    /// Submits the text was split into.
    pub parts: usize,
    /// Whether that carrier was asked for receipts.
    pub receipts_expected: bool,
}

/// What became of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptMatch {
    /// It updated a message; `latency` is how long after the submit it came.
    Matched { latency: Option<Duration> },
    /// Its id is not known yet: held until it is, or until the hold time passes.
    Held,
    /// Not known, and not held (no id, or the hold is full).
    Unmatched,
}

impl ReceiptMatch {
    pub fn is_matched(&self) -> bool {
        matches!(self, ReceiptMatch::Matched { .. })
    }
}

/// A state change to notify once the lock is released.
struct Change {
    id: String,
    record: Delivery,
}

/// Cheap-to-clone handle to the records.
#[derive(Clone)]
pub struct DeliveryTracker {
    inner: Arc<Mutex<Inner>>,
    webhooks: Option<Webhooks>,
    /// A message still without a final receipt this long after its submit ends as unknown.
    receipt_wait: Duration,
    /// How long, and how many, receipts with ids not yet known are held.
    early_hold: Duration,
    early_max: usize,
    max_records: usize,
    ttl: Duration,
}

impl DeliveryTracker {
    pub fn new(max_records: usize, ttl: Duration) -> Self {
        let inner = Inner {
            records: HashMap::new(),
            order: VecDeque::new(),
            by_message_id: HashMap::new(),
            awaiting: VecDeque::new(),
            early: HashMap::new(),
            early_order: VecDeque::new(),
            early_count: 0,
            in_progress: 0,
            in_progress_gauge: metrics::gauge!(crate::metrics::SMS_IN_PROGRESS),
        };
        for result in ["held", "matched", "expired", "dropped"] {
            early_counter(result).increment(0);
        }
        Self {
            inner: Arc::new(Mutex::new(inner)),
            webhooks: None,
            receipt_wait: ttl,
            early_hold: Duration::from_secs(60),
            early_max: 10_000,
            max_records,
            ttl,
        }
    }

    /// How long a submitted message waits for its final receipt (when its carrier asks for
    /// receipts) before it ends as unknown.
    pub fn with_receipt_wait(mut self, wait: Duration) -> Self {
        self.receipt_wait = wait;
        self
    }

    /// How long and how many receipts for ids not yet known are held.
    pub fn with_early_receipts(mut self, hold: Duration, max: usize) -> Self {
        self.early_hold = hold;
        self.early_max = max;
        self
    }

    /// Sends state changes of records with a callback through `webhooks`.
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Some(webhooks);
        self
    }

    /// Notes a change of `id`'s state: numbers it and, if it has a callback, returns what to
    /// notify after the lock is released.
    fn changed(&self, id: &str, record: &mut Delivery) -> Option<Change> {
        if self.webhooks.is_none() || record.callback.is_none() {
            return None;
        }
        record.notifications += 1;
        Some(Change {
            id: id.to_owned(),
            record: record.clone(),
        })
    }

    /// Queues the notifications of `changes` (called without the lock).
    fn notify(&self, changes: impl IntoIterator<Item = Change>) {
        let Some(webhooks) = &self.webhooks else {
            return;
        };
        for Change { id, record } in changes {
            let Some(callback) = record.callback.clone() else {
                continue;
            };
            let mut body = record.view(&id);
            body["sequence"] = record.notifications.into();
            webhooks.notify(Notification {
                callback,
                id: format!("{id}-{}", record.notifications),
                body,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update below leaves the maps consistent; a panic elsewhere cannot tear them.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new message for `id` is queued.
    pub fn queued(&self, id: &str) {
        self.queued_with_callback(id, None);
    }

    /// A new message for `id` is queued; its state changes go to `callback`.
    pub fn queued_with_callback(&self, id: &str, callback: Option<Callback>) {
        let mut inner = self.lock();
        while inner.records.len() >= self.max_records {
            let Some((_, oldest)) = inner.order.pop_front() else {
                break;
            };
            Self::forget(&mut inner, &oldest);
        }
        inner.order.push_back((Instant::now(), id.to_owned()));
        let record = Delivery {
            state: DeliveryState::Queued,
            queued_at: SystemTime::now(),
            submitted_at: None,
            done_at: None,
            message_id: None,
            error: None,
            parts: 1,
            carrier: None,
            receipt_scope: None,
            // Until a carrier takes it (and says, in `assigned`).
            receipts_expected: true,
            callback: callback.map(Arc::new),
            notifications: 0,
            part_ids: Vec::new(),
            accepted: vec![false],
            submitted_parts: 0,
            delivered_parts: 0,
        };
        let replaced = inner.records.insert(id.to_owned(), record);
        inner.account(replaced.is_none_or(|old| old.done_at.is_some()), false);
    }

    fn forget(inner: &mut Inner, id: &str) {
        if let Some(record) = inner.records.remove(id) {
            inner.account(record.done_at.is_some(), true);
            unindex(&mut inner.by_message_id, &record);
        }
    }

    /// A carrier took the message (see `Assignment`).
    pub fn assigned(&self, id: &str, assignment: &Assignment) {
        if let Some(record) = self.lock().records.get_mut(id) {
            record.parts = assignment.parts.max(1);
            record.accepted = vec![false; record.parts];
            record.submitted_parts = 0;
            record.receipts_expected = assignment.receipts_expected;
            record.carrier = Some(assignment.carrier.clone());
            record.receipt_scope = Some(assignment.receipt_scope.clone());
        }
    }

    /// The carrier accepted part `part` (0-based) as `message_id`; the message is submitted
    /// once every part is. Receipts held for that id are applied now.
    pub fn submitted(&self, id: &str, part: usize, message_id: &str) {
        let mut changes = Vec::new();
        let mut inner = self.lock();
        let Some(record) = inner.records.get_mut(id) else {
            return;
        };
        let scope = record
            .receipt_scope
            .clone()
            .unwrap_or_else(|| Arc::from(""));
        record.part_ids.push(message_id.to_owned());
        record
            .message_id
            .get_or_insert_with(|| message_id.to_owned());
        let first_time = match record.accepted.get_mut(part) {
            Some(accepted) => !std::mem::replace(accepted, true),
            None => true,
        };
        if first_time {
            record.submitted_parts += 1;
        }
        if record.state == DeliveryState::Queued && record.submitted_parts >= record.parts {
            record.state = DeliveryState::Submitted;
            let now = SystemTime::now();
            record.submitted_at = Some(now);
            // Without receipts the carrier's acceptance is all there will be: final.
            let receipts_expected = record.receipts_expected;
            if !receipts_expected {
                record.done_at = Some(now);
            }
            changes.extend(self.changed(id, record));
            if receipts_expected {
                inner.awaiting.push_back((now, id.to_owned()));
            } else {
                inner.account(false, true);
            }
        }
        // Indexed even when no receipt is expected: with registered_delivery 2 a failure
        // receipt may still come and change the state.
        inner
            .by_message_id
            .entry(scope.clone())
            .or_default()
            .insert(message_id, id.to_owned());
        let held = inner
            .early
            .get_mut(&scope)
            .and_then(|ids| ids.remove(message_id));
        if let Some(held) = held {
            inner.early_count = inner.early_count.saturating_sub(held.receipts.len());
            for receipt in &held.receipts {
                early_counter("matched").increment(1);
                let (_, change) = self.apply(&mut inner, &scope, receipt);
                changes.extend(change);
            }
        }
        drop(inner);
        self.notify(changes);
    }

    /// It ended without reaching the carrier, or the carrier refused a part, or no answer
    /// came. A message that already failed keeps its first reason.
    pub fn ended(&self, id: &str, state: DeliveryState, error: Option<String>) {
        let mut inner = self.lock();
        let Some(record) = inner.records.get_mut(id) else {
            return;
        };
        // A message that failed keeps its first reason; one that is final (delivered, or
        // accepted without receipts) stays so: one final state, one final notification.
        if record.state.failed() || record.done_at.is_some() {
            return;
        }
        record.state = state;
        record.done_at = Some(SystemTime::now());
        record.error = error;
        let change = self.changed(id, record);
        inner.account(false, true);
        drop(inner);
        self.notify(change);
    }

    /// Applies a receipt that came from receipt scope `scope` for one part. One whose id is
    /// not known yet is held (see [`ReceiptMatch`]).
    pub fn receipt(&self, scope: &str, receipt: &Receipt) -> ReceiptMatch {
        let mut inner = self.lock();
        let known = inner
            .by_message_id
            .get(scope)
            .is_some_and(|ids| ids.get(&receipt.message_id).is_some());
        if !known {
            let held = self.hold(&mut inner, scope, receipt);
            return if held {
                ReceiptMatch::Held
            } else {
                ReceiptMatch::Unmatched
            };
        }
        let (latency, change) = self.apply(&mut inner, scope, receipt);
        drop(inner);
        self.notify(change);
        ReceiptMatch::Matched { latency }
    }

    /// Holds a receipt for an id not yet known; false when it cannot be (no id, or one longer
    /// than SMPP's 64 octets). At the limit the oldest held receipt makes room (counted as
    /// dropped): foreign and duplicate receipts, which never match, must not lock out the
    /// early receipts that will.
    fn hold(&self, inner: &mut Inner, scope: &str, receipt: &Receipt) -> bool {
        let id = receipt.message_id.trim();
        if id.is_empty() || id.len() > MAX_ID_OCTETS || self.early_max == 0 {
            return false;
        }
        while inner.early_count >= self.early_max || inner.early_order.len() >= 2 * self.early_max {
            let Some((_, scope, message_id)) = inner.early_order.pop_front() else {
                break;
            };
            if let Some(held) = inner
                .early
                .get_mut(&scope)
                .and_then(|ids| ids.remove(&message_id))
            {
                inner.early_count = inner.early_count.saturating_sub(held.receipts.len());
                early_counter("dropped").increment(held.receipts.len() as u64);
            }
        }
        let scope: Arc<str> = Arc::from(scope);
        let ids = inner.early.entry(scope.clone()).or_default();
        let mut held = ids.remove(&receipt.message_id).unwrap_or(Held {
            receipts: Vec::new(),
        });
        let mut receipt = receipt.clone();
        if let Some(error) = &mut receipt.error
            && let Some((cut, _)) = error.char_indices().nth(MAX_ERROR_CHARS)
        {
            error.truncate(cut);
        }
        held.receipts.push(receipt);
        ids.insert(id, held);
        inner.early_count += 1;
        inner
            .early_order
            .push_back((Instant::now(), scope, id.to_owned()));
        early_counter("held").increment(1);
        true
    }

    /// Applies one receipt to the record its id indexes; returns its latency and the change.
    fn apply(
        &self,
        inner: &mut Inner,
        scope: &str,
        receipt: &Receipt,
    ) -> (Option<Duration>, Option<Change>) {
        let Some(id) = inner
            .by_message_id
            .get(scope)
            .and_then(|ids| ids.get(&receipt.message_id))
            .cloned()
        else {
            return (None, None);
        };
        let Some(record) = inner.records.get_mut(&id) else {
            return (None, None);
        };
        let now = SystemTime::now();
        let latency = record
            .submitted_at
            .and_then(|at| now.duration_since(at).ok());
        let was_final = record.done_at.is_some();
        let before = record.state;
        match receipt.state {
            // A message already final keeps its state: a duplicate or stray receipt never
            // changes it (nor, ids being exact, any other message).
            _ if was_final => {}
            ReceiptState::Delivered => {
                record.delivered_parts += 1;
                if record.delivered_parts >= record.parts {
                    record.state = DeliveryState::Receipt(ReceiptState::Delivered);
                    record.done_at = Some(now);
                }
            }
            state if state.is_final() => {
                record.state = DeliveryState::Receipt(state);
                // err:000 (and the like) means no error.
                record.error = receipt
                    .error
                    .clone()
                    .filter(|e| !e.trim_start_matches('0').is_empty());
                record.done_at = Some(now);
            }
            state => {
                if record.delivered_parts == 0 && record.submitted_parts >= record.parts {
                    record.state = DeliveryState::Receipt(state);
                }
            }
        }
        let now_final = record.done_at.is_some();
        let change = if record.state != before {
            self.changed(&id, record)
        } else {
            None
        };
        inner.account(was_final, now_final);
        if receipt.state.is_final()
            && let Some(ids) = inner.by_message_id.get_mut(scope)
        {
            ids.remove(&receipt.message_id);
        }
        (latency, change)
    }

    /// Messages not yet in a final state.
    pub fn in_progress(&self) -> usize {
        self.lock().in_progress
    }

    pub fn get(&self, id: &str) -> Option<Delivery> {
        self.lock().records.get(id).cloned()
    }

    /// Forgets records older than the TTL, ends as `unknown` messages whose receipt has not
    /// come within the receipt wait, and drops held receipts past their hold; returns how many
    /// records remain. Each reads only the front of an ordered queue: no scan of every record.
    pub fn sweep(&self) -> usize {
        let mut changes = Vec::new();
        let mut guard = self.lock();
        let inner = &mut *guard;
        while let Some((at, _)) = inner.order.front() {
            if at.elapsed() < self.ttl {
                break;
            }
            let Some((_, id)) = inner.order.pop_front() else {
                break;
            };
            Self::forget(inner, &id);
        }
        while let Some((at, _, _)) = inner.early_order.front() {
            if at.elapsed() < self.early_hold {
                break;
            }
            let Some((_, scope, message_id)) = inner.early_order.pop_front() else {
                break;
            };
            // Gone already when its id became known (or when a later copy re-queued it).
            let held = inner
                .early
                .get_mut(&scope)
                .and_then(|ids| ids.remove(&message_id));
            if let Some(held) = held {
                inner.early_count = inner.early_count.saturating_sub(held.receipts.len());
                early_counter("expired").increment(held.receipts.len() as u64);
            }
        }
        let now = SystemTime::now();
        while let Some((at, _)) = inner.awaiting.front() {
            if now.duration_since(*at).unwrap_or_default() < self.receipt_wait {
                break;
            }
            let Some((_, id)) = inner.awaiting.pop_front() else {
                break;
            };
            let Some(record) = inner.records.get_mut(&id) else {
                continue;
            };
            if record.done_at.is_some() {
                continue;
            }
            record.state = DeliveryState::Receipt(ReceiptState::Unknown);
            record.error = Some(format!(
                "no final receipt within {} s",
                self.receipt_wait.as_secs()
            ));
            record.done_at = Some(now);
            changes.extend(self.changed(&id, record));
            unindex(&mut inner.by_message_id, record);
            inner.account(false, true);
        }
        let remaining = inner.records.len();
        drop(guard);
        self.notify(changes);
        remaining
    }
}

/// SMPP's message_id is at most 64 octets (65 with its NUL): a longer one in a receipt is not
/// held, so a hostile SMSC cannot fill memory through the hold.
const MAX_ID_OCTETS: usize = 64;
/// Characters of a receipt's `err:` kept with a held receipt.
const MAX_ERROR_CHARS: usize = 16;

fn early_counter(result: &'static str) -> metrics::Counter {
    metrics::counter!(m::SMS_EARLY_RECEIPTS_TOTAL, m::LABEL_RESULT => result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Carrier `name` on an account of its own took a message of `parts` parts.
    fn assignment(name: &str, parts: usize) -> Assignment {
        Assignment {
            carrier: Arc::from(name),
            receipt_scope: Arc::from(name),
            parts,
            receipts_expected: true,
        }
    }

    fn receipt(id: &str, state: ReceiptState) -> Receipt {
        Receipt {
            message_id: id.into(),
            state,
            error: Some("000".into()),
        }
    }

    #[test]
    fn a_message_goes_from_queued_to_its_receipt() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60));
        tracker.queued("a");
        assert_eq!(
            tracker.get("a").map(|d| d.state),
            Some(DeliveryState::Queued)
        );
        tracker.submitted("a", 0, "00FF");
        assert!(
            tracker
                .receipt("", &receipt("ff", ReceiptState::Enroute))
                .is_matched(),
            "matched canonically"
        );
        assert_eq!(
            tracker.get("a").map(|d| d.state),
            Some(DeliveryState::Receipt(ReceiptState::Enroute))
        );
        assert_eq!(
            tracker.receipt("", &receipt("255", ReceiptState::Delivered)),
            ReceiptMatch::Held,
            "another base is another id (unless the carrier is configured so)"
        );
        assert!(
            tracker
                .receipt("", &receipt("0ff", ReceiptState::Delivered))
                .is_matched(),
            "leading zeros and case aside, the same id"
        );
        let delivery = tracker.get("a").expect("kept");
        assert_eq!(delivery.state.as_str(), "delivered");
        assert!(delivery.done_at.is_some() && delivery.error.is_none());
        assert!(
            !tracker
                .receipt("", &receipt("ff", ReceiptState::Delivered))
                .is_matched(),
            "a final state is final"
        );
    }

    #[test]
    fn a_multipart_message_is_delivered_when_every_part_is_and_fails_when_one_fails() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60));
        tracker.queued("m");
        tracker.assigned("m", &assignment("c", 2));
        tracker.submitted("m", 0, "a1");
        assert_eq!(
            tracker.get("m").map(|d| d.state),
            Some(DeliveryState::Queued),
            "one of two parts"
        );
        tracker.submitted("m", 1, "a2");
        let record = tracker.get("m").expect("kept");
        assert_eq!(
            (record.state, record.message_id.as_deref(), record.parts),
            (DeliveryState::Submitted, Some("a1"), 2)
        );
        tracker.receipt("c", &receipt("a1", ReceiptState::Delivered));
        assert_eq!(
            tracker.get("m").map(|d| d.state),
            Some(DeliveryState::Submitted),
            "one part delivered"
        );
        tracker.receipt("c", &receipt("a2", ReceiptState::Delivered));
        assert_eq!(
            tracker.get("m").map(|d| d.state.as_str()),
            Some("delivered")
        );

        tracker.queued("n");
        tracker.assigned("n", &assignment("c", 2));
        tracker.submitted("n", 0, "b1");
        tracker.submitted("n", 1, "b2");
        tracker.receipt(
            "c",
            &Receipt {
                message_id: "b1".into(),
                state: ReceiptState::Undeliverable,
                error: Some("034".into()),
            },
        );
        tracker.receipt("c", &receipt("b2", ReceiptState::Delivered));
        let record = tracker.get("n").expect("kept");
        assert_eq!(
            (record.state.as_str(), record.error.as_deref()),
            ("undeliverable", Some("034"))
        );
    }

    #[test]
    fn refusals_end_a_message_with_their_reason() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60));
        tracker.queued("a");
        tracker.ended("a", DeliveryState::Failed, Some("ESME_RINVDSTADR".into()));
        let delivery = tracker.get("a").expect("kept");
        assert_eq!(
            (delivery.state.as_str(), delivery.error.as_deref()),
            ("failed", Some("ESME_RINVDSTADR"))
        );
        assert_eq!(tracker.in_progress(), 0);
    }

    #[test]
    fn the_same_message_id_from_two_carriers_reaches_each_its_own_message() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60));
        for (id, carrier) in [("x", "a"), ("y", "b")] {
            tracker.queued(id);
            tracker.assigned(id, &assignment(carrier, 1));
            tracker.submitted(id, 0, "42");
        }
        assert!(
            tracker
                .receipt("b", &receipt("42", ReceiptState::Undeliverable))
                .is_matched()
        );
        assert!(
            !tracker
                .receipt("c", &receipt("42", ReceiptState::Delivered))
                .is_matched()
        );
        assert!(
            tracker
                .receipt("a", &receipt("42", ReceiptState::Delivered))
                .is_matched()
        );
        let state = |id| tracker.get(id).map(|d| d.state.as_str());
        assert_eq!(
            (state("x"), state("y")),
            (Some("delivered"), Some("undeliverable"))
        );
    }

    #[test]
    fn messages_in_progress_are_counted_until_final_or_forgotten() {
        let tracker = DeliveryTracker::new(2, Duration::from_secs(60));
        tracker.queued("a");
        tracker.queued("b");
        assert_eq!(tracker.in_progress(), 2);
        tracker.submitted("a", 0, "1");
        tracker.receipt("", &receipt("1", ReceiptState::Delivered));
        assert_eq!(tracker.in_progress(), 1);
        tracker.queued("c"); // evicts "a", which was final: no change for it
        assert_eq!(tracker.in_progress(), 2);
        tracker.queued("d"); // evicts "b", still in progress
        assert_eq!(tracker.in_progress(), 2);
    }

    #[test]
    fn without_receipts_acceptance_is_final_and_with_them_waiting_ends_as_unknown() {
        let silent = DeliveryTracker::new(10, Duration::from_secs(60));
        silent.queued("a");
        silent.assigned(
            "a",
            &Assignment {
                receipts_expected: false,
                ..assignment("quiet", 1)
            },
        );
        silent.submitted("a", 0, "1");
        let record = silent.get("a").expect("kept");
        assert_eq!(
            (record.state.as_str(), record.done_at.is_some()),
            ("submitted", true)
        );
        assert_eq!(silent.in_progress(), 0);

        let waiting =
            DeliveryTracker::new(10, Duration::from_secs(60)).with_receipt_wait(Duration::ZERO);
        waiting.queued("b");
        waiting.queued("c");
        waiting.submitted("b", 0, "2");
        // A message that went to a carrier not asked for receipts is final on acceptance.
        waiting.queued("d");
        waiting.assigned(
            "d",
            &Assignment {
                receipts_expected: false,
                ..assignment("quiet", 1)
            },
        );
        waiting.submitted("d", 0, "3");
        let quiet = waiting.get("d").expect("kept");
        assert_eq!(quiet.carrier.as_deref(), Some("quiet"));
        assert!(quiet.done_at.is_some(), "{quiet:?}");
        assert_eq!(waiting.sweep(), 3);
        let record = waiting.get("b").expect("kept");
        assert_eq!(record.state.as_str(), "unknown");
        assert!(
            record
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("no final receipt"))
        );
        assert_eq!(
            waiting.get("c").map(|r| r.state.as_str()),
            Some("queued"),
            "not submitted: not waiting"
        );
        assert_eq!(waiting.in_progress(), 1);
        assert!(
            !waiting
                .receipt("", &receipt("2", ReceiptState::Delivered))
                .is_matched(),
            "too late to match"
        );
    }

    #[test]
    fn records_are_bounded_in_count_and_age() {
        let tracker = DeliveryTracker::new(2, Duration::ZERO);
        for id in ["a", "b", "c"] {
            tracker.queued(id);
        }
        assert!(tracker.get("a").is_none(), "the oldest made room");
        assert!(tracker.get("c").is_some());
        assert_eq!(tracker.sweep(), 0, "a zero TTL forgets everything");
    }

    #[test]
    fn a_receipt_that_overtakes_its_submit_response_is_applied_when_the_id_is_known() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60))
            .with_early_receipts(Duration::from_secs(60), 2);
        tracker.queued("a");
        tracker.assigned("a", &assignment("c", 1));
        assert_eq!(
            tracker.receipt("c", &receipt("77", ReceiptState::Delivered)),
            ReceiptMatch::Held
        );
        assert_eq!(
            tracker.get("a").map(|d| d.state),
            Some(DeliveryState::Queued)
        );
        tracker.submitted("a", 0, "077");
        assert_eq!(
            tracker.get("a").map(|d| d.state.as_str()),
            Some("delivered"),
            "the held receipt found its message"
        );
        assert_eq!(tracker.in_progress(), 0);
        // Bounded in number, the oldest making room; an empty id or one longer than SMPP's
        // 64 octets is never held.
        assert_eq!(
            tracker.receipt("c", &receipt("", ReceiptState::Delivered)),
            ReceiptMatch::Unmatched
        );
        assert_eq!(
            tracker.receipt("c", &receipt(&"9".repeat(65), ReceiptState::Delivered)),
            ReceiptMatch::Unmatched
        );
        for id in ["1", "2", "3"] {
            assert_eq!(
                tracker.receipt("c", &receipt(id, ReceiptState::Delivered)),
                ReceiptMatch::Held
            );
        }
        for (id, message) in [("1", "b"), ("3", "d")] {
            tracker.queued(message);
            tracker.assigned(message, &assignment("c", 1));
            tracker.submitted(message, 0, id);
        }
        assert_eq!(
            tracker.get("b").map(|d| d.state.as_str()),
            Some("submitted"),
            "the oldest held receipt made room"
        );
        assert_eq!(
            tracker.get("d").map(|d| d.state.as_str()),
            Some("delivered")
        );
    }

    #[test]
    fn held_receipts_expire_and_never_reach_a_later_message() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60))
            .with_early_receipts(Duration::ZERO, 10);
        tracker.queued("a");
        tracker.assigned("a", &assignment("c", 1));
        assert_eq!(
            tracker.receipt("c", &receipt("9", ReceiptState::Undeliverable)),
            ReceiptMatch::Held
        );
        tracker.sweep();
        tracker.submitted("a", 0, "9");
        assert_eq!(
            tracker.get("a").map(|d| d.state.as_str()),
            Some("submitted"),
            "expired before the id became known"
        );
    }

    #[test]
    fn a_part_accepted_twice_counts_once() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60));
        tracker.queued("m");
        tracker.assigned("m", &assignment("c", 2));
        tracker.submitted("m", 0, "late");
        tracker.submitted("m", 0, "resent");
        assert_eq!(
            tracker.get("m").map(|d| d.state),
            Some(DeliveryState::Queued),
            "one part of two, however often accepted"
        );
        tracker.submitted("m", 1, "second");
        assert_eq!(
            tracker.get("m").map(|d| d.state),
            Some(DeliveryState::Submitted)
        );
        // Both ids of the twice-accepted part match its receipts.
        assert!(
            tracker
                .receipt("c", &receipt("late", ReceiptState::Delivered))
                .is_matched()
        );
    }

    #[test]
    fn a_final_message_is_never_ended_again() {
        let tracker = DeliveryTracker::new(10, Duration::from_secs(60));
        tracker.queued("a");
        tracker.submitted("a", 0, "1");
        tracker.receipt("", &receipt("1", ReceiptState::Delivered));
        // A resend's copy timing out after the code expired must not overwrite `delivered`.
        tracker.ended("a", DeliveryState::Expired, None);
        tracker.ended(
            "a",
            DeliveryState::Unanswered,
            Some("no submit_sm_resp".into()),
        );
        let record = tracker.get("a").expect("kept");
        assert_eq!((record.state.as_str(), record.error), ("delivered", None));
        assert_eq!(tracker.in_progress(), 0);
    }
}
