//! Every message the simulator handled (MT accepted from an ESME, MO sent to one), newest last,
//! bounded with the oldest evicted, with lookup by id and a way to wait for the next one.
//!
//! Ids are a hex counter assigned under the lock, so a message's position is its id minus the
//! id of the oldest kept: lookups by id are O(1).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{Notify, broadcast};

use crate::clock::rfc3339;
use crate::concat::Segment;
use crate::outcome::Stat;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Submitted by an ESME, to a phone.
    Mt,
    /// From a phone, delivered to an ESME.
    Mo,
}

/// What the caller knows about a new message; the store adds id, time and state.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub text: String,
    pub account: String,
    pub data_coding: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    /// The state it reaches, and when.
    pub outcome: Stat,
    pub final_at: Instant,
    /// Set on one segment of a concatenated message.
    pub segment: Option<Segment>,
    /// Set on a reassembled message: its segments, in order.
    pub parts: Vec<PartRef>,
    /// The TLVs the PDU carried.
    pub tlvs: Vec<TlvView>,
}

/// One TLV as the tester API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TlvView {
    /// `0x020C`
    pub tag: String,
    /// rusmpp's reading of it, e.g. `SarMsgRefNum(513)`.
    pub value: String,
}

/// One segment of a reassembled message.
#[derive(Debug, Clone, Serialize)]
pub struct PartRef {
    pub seq: u8,
    pub id: String,
}

/// One message as the tester API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub id: String,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub text: String,
    pub received_at: String,
    /// The code found in the text, as a phone's autofill would find it.
    pub otp: Option<String>,
    pub account: String,
    pub data_coding: u8,
    pub esm_class: u8,
    pub registered_delivery: u8,
    /// ENROUTE until its final state; then that state.
    pub state: Stat,
    /// When a delivery receipt for it was handed to a session.
    pub receipt_sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tlvs: Vec<TlvView>,
    #[serde(skip)]
    outcome: Stat,
    #[serde(skip)]
    final_at: Instant,
    #[serde(skip)]
    received: SystemTime,
    /// Cancelled by cancel_sm (as opposed to a DELETED outcome, which still gets its receipt).
    #[serde(skip)]
    cancelled: bool,
}

impl StoredMessage {
    fn state_at(&self, now: Instant) -> Stat {
        if now >= self.final_at {
            self.outcome
        } else {
            Stat::Enroute
        }
    }

    fn view(&self, now: Instant) -> StoredMessage {
        let mut view = self.clone();
        view.state = self.state_at(now);
        view
    }

    pub fn submitted_at(&self) -> SystemTime {
        self.received
    }
}

/// Which messages a query wants; every set field must match.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Destination, compared by digits: `+31 6 1234 5678` and `31612345678` match.
    pub to: Option<String>,
    /// Sender, compared by digits when it has digits, else exactly.
    pub from: Option<String>,
    pub account: Option<String>,
    /// RFC 3339; messages received at or after it.
    pub since: Option<String>,
    pub direction: Option<Direction>,
    /// Also list the segments of concatenated messages (by default only whole messages).
    pub parts: bool,
}

fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

fn same_address(wanted: &str, actual: &str) -> bool {
    let wanted_digits = digits(wanted);
    if wanted_digits.is_empty() {
        wanted == actual
    } else {
        wanted_digits == digits(actual)
    }
}

impl Filter {
    fn matches(&self, message: &StoredMessage) -> bool {
        self.to.as_ref().is_none_or(|to| same_address(to, &message.to))
            && self.from.as_ref().is_none_or(|from| same_address(from, &message.from))
            && self.account.as_ref().is_none_or(|a| *a == message.account)
            // Same fixed-width UTC format on both sides: string order is time order.
            && self.since.as_ref().is_none_or(|since| message.received_at.as_str() >= since.as_str())
            && self.direction.is_none_or(|d| d == message.direction)
            && (self.parts || message.segment.is_none())
    }
}

/// Why a cancel or replace was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeError {
    NotFound,
    /// The message already reached its final state.
    Final,
}

struct Inner {
    messages: VecDeque<StoredMessage>,
    /// Sequence number of `messages[0]`.
    first: u64,
}

pub struct MessageStore {
    inner: Mutex<Inner>,
    capacity: usize,
    /// Added to every sequence number so ids differ across simulator restarts.
    base: u64,
    evicted: AtomicU64,
    added: Notify,
    events: broadcast::Sender<StoredMessage>,
}

impl MessageStore {
    pub fn new(capacity: usize) -> Self {
        let base = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1)
            << 16;
        Self {
            inner: Mutex::new(Inner {
                messages: VecDeque::new(),
                first: 0,
            }),
            capacity,
            base,
            evicted: AtomicU64::new(0),
            added: Notify::new(),
            events: broadcast::channel(1024).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the deque half-written; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Index of message `id` in the deque, if still kept.
    fn index(&self, inner: &Inner, id: &str) -> Option<usize> {
        let sequence = u64::from_str_radix(id, 16).ok()?.checked_sub(self.base)?;
        let index = usize::try_from(sequence.checked_sub(inner.first)?).ok()?;
        (index < inner.messages.len()).then_some(index)
    }

    /// Stores `message` and returns its id.
    pub fn insert(&self, message: NewMessage) -> String {
        let received = SystemTime::now();
        let stored = {
            let mut inner = self.lock();
            if inner.messages.len() >= self.capacity {
                inner.messages.pop_front();
                inner.first += 1;
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
            let sequence = inner.first + inner.messages.len() as u64;
            let stored = StoredMessage {
                id: format!("{:x}", self.base + sequence),
                direction: message.direction,
                otp: crate::otp::find_code(&message.text),
                from: message.from,
                to: message.to,
                text: message.text,
                received_at: rfc3339(received),
                account: message.account,
                data_coding: message.data_coding,
                esm_class: message.esm_class,
                registered_delivery: message.registered_delivery,
                state: Stat::Enroute,
                receipt_sent_at: None,
                segment: message.segment,
                parts: message.parts,
                tlvs: message.tlvs,
                outcome: message.outcome,
                final_at: message.final_at,
                received,
                cancelled: false,
            };
            inner.messages.push_back(stored.clone());
            stored
        };
        self.added.notify_waiters();
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(stored.view(Instant::now()));
        }
        stored.id
    }

    /// New messages as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<StoredMessage> {
        self.events.subscribe()
    }

    /// Up to `limit` matching messages, newest first.
    pub fn list(&self, filter: &Filter, limit: usize) -> Vec<StoredMessage> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .messages
            .iter()
            .rev()
            .filter(|m| filter.matches(m))
            .take(limit)
            .map(|m| m.view(now))
            .collect()
    }

    pub fn latest(&self, filter: &Filter) -> Option<StoredMessage> {
        let now = Instant::now();
        self.lock()
            .messages
            .iter()
            .rev()
            .find(|m| filter.matches(m))
            .map(|m| m.view(now))
    }

    pub fn get(&self, id: &str) -> Option<StoredMessage> {
        let inner = self.lock();
        let index = self.index(&inner, id)?;
        Some(inner.messages[index].view(Instant::now()))
    }

    /// The newest matching message, waiting up to `wait` for one to arrive.
    pub async fn latest_within(&self, filter: &Filter, wait: Duration) -> Option<StoredMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let added = self.added.notified();
            tokio::pin!(added);
            added.as_mut().enable();
            if let Some(message) = self.latest(filter) {
                return Some(message);
            }
            if tokio::time::timeout_at(deadline, added).await.is_err() {
                return None;
            }
        }
    }

    /// Whether message `id` was cancelled by cancel_sm.
    pub fn was_cancelled(&self, id: &str) -> bool {
        let inner = self.lock();
        self.index(&inner, id)
            .is_some_and(|index| inner.messages[index].cancelled)
    }

    /// (state, when it became final) of message `id`.
    pub fn query(&self, id: &str) -> Option<(Stat, Option<SystemTime>)> {
        let now = Instant::now();
        let inner = self.lock();
        let message = &inner.messages[self.index(&inner, id)?];
        let state = message.state_at(now);
        let done = (state != Stat::Enroute)
            .then(|| SystemTime::now() - now.saturating_duration_since(message.final_at));
        Some((state, done))
    }

    /// Applies `change` to message `id` if it is still en route.
    fn change_en_route(
        &self,
        id: &str,
        change: impl FnOnce(&mut StoredMessage, Instant),
    ) -> Result<(), ChangeError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let index = self.index(&inner, id).ok_or(ChangeError::NotFound)?;
        let message = &mut inner.messages[index];
        if message.state_at(now) != Stat::Enroute {
            return Err(ChangeError::Final);
        }
        change(message, now);
        Ok(())
    }

    /// Cancels a message still en route: it becomes DELETED now and gets no receipt.
    pub fn cancel(&self, id: &str) -> Result<(), ChangeError> {
        self.change_en_route(id, |message, now| {
            message.outcome = Stat::Deleted;
            message.final_at = now;
            message.cancelled = true;
        })
    }

    /// Replaces the text of a message still en route.
    pub fn replace(&self, id: &str, text: String) -> Result<(), ChangeError> {
        self.change_en_route(id, |message, _| {
            message.otp = crate::otp::find_code(&text);
            message.text = text;
        })
    }

    pub fn receipt_sent(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(index) = self.index(&inner, id) {
            inner.messages[index].receipt_sent_at = Some(rfc3339(SystemTime::now()));
        }
    }

    pub fn clear(&self) -> usize {
        let mut inner = self.lock();
        let count = inner.messages.len();
        inner.first += count as u64;
        inner.messages.clear();
        count
    }

    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, text: &str, final_in: Duration) -> NewMessage {
        NewMessage {
            direction: Direction::Mt,
            from: "OTPGATE".into(),
            to: to.into(),
            text: text.into(),
            account: "a".into(),
            data_coding: 0,
            esm_class: 0,
            registered_delivery: 0,
            outcome: Stat::Delivrd,
            final_at: Instant::now() + final_in,
            segment: None,
            parts: Vec::new(),
            tlvs: Vec::new(),
        }
    }

    #[test]
    fn keeps_the_newest_up_to_capacity_and_finds_by_id() {
        let store = MessageStore::new(2);
        let ids: Vec<String> = ["one", "two", "three"]
            .iter()
            .map(|text| store.insert(message("+31612345678", text, Duration::ZERO)))
            .collect();
        let texts: Vec<String> = store
            .list(&Filter::default(), 10)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["three", "two"]);
        assert_eq!(store.evicted(), 1);
        assert!(store.get(&ids[0]).is_none(), "evicted");
        assert_eq!(store.get(&ids[2]).map(|m| m.text).as_deref(), Some("three"));
        assert!(store.get("zz").is_none());
        store.clear();
        assert!(store.get(&ids[2]).is_none());
        let next = store.insert(message("+1", "four", Duration::ZERO));
        assert_eq!(store.get(&next).map(|m| m.text).as_deref(), Some("four"));
    }

    #[test]
    fn filters_by_destination_digits_sender_and_direction() {
        let store = MessageStore::new(10);
        store.insert(message("+31612345678", "a", Duration::ZERO));
        store.insert(message("+31612345679", "b", Duration::ZERO));
        let filter = Filter {
            to: Some(" 31 6 1234 5678".into()),
            ..Filter::default()
        };
        assert_eq!(store.latest(&filter).map(|m| m.text).as_deref(), Some("a"));
        let from = Filter {
            from: Some("OTPGATE".into()),
            direction: Some(Direction::Mo),
            ..Filter::default()
        };
        assert!(store.latest(&from).is_none());
        let since = Filter {
            since: Some("2999-01-01T00:00:00.000Z".into()),
            ..Filter::default()
        };
        assert!(store.latest(&since).is_none());
    }

    #[test]
    fn messages_are_en_route_until_final_and_only_then_cannot_change() {
        let store = MessageStore::new(10);
        let pending = store.insert(message("+1", "x", Duration::from_secs(60)));
        let done = store.insert(message("+1", "y", Duration::ZERO));
        assert_eq!(store.query(&pending).map(|q| q.0), Some(Stat::Enroute));
        assert_eq!(store.query(&done).map(|q| q.0), Some(Stat::Delivrd));
        assert_eq!(store.replace(&pending, "code 4321".into()), Ok(()));
        assert_eq!(
            store.get(&pending).and_then(|m| m.otp).as_deref(),
            Some("4321")
        );
        assert_eq!(store.cancel(&pending), Ok(()));
        assert_eq!(store.query(&pending).map(|q| q.0), Some(Stat::Deleted));
        assert_eq!(store.cancel(&done), Err(ChangeError::Final));
        assert_eq!(store.replace(&done, "z".into()), Err(ChangeError::Final));
        assert_eq!(store.cancel("ffff"), Err(ChangeError::NotFound));
    }

    #[tokio::test]
    async fn waiting_returns_as_soon_as_a_message_arrives() {
        let store = std::sync::Arc::new(MessageStore::new(10));
        let filter = Filter {
            to: Some("+31612345678".into()),
            ..Filter::default()
        };
        let waiter = {
            let store = store.clone();
            let filter = filter.clone();
            tokio::spawn(async move { store.latest_within(&filter, Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        store.insert(message("+31612345678", "hello", Duration::ZERO));
        let found = waiter.await.expect("no panic");
        assert_eq!(found.map(|m| m.text).as_deref(), Some("hello"));
        let other = Filter {
            to: Some("+1999".into()),
            ..Filter::default()
        };
        assert!(
            store
                .latest_within(&other, Duration::from_millis(5))
                .await
                .is_none()
        );
    }
}
