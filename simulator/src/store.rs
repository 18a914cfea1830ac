//! Every message the simulator handled (MT accepted from an ESME, MO sent to one), newest last,
//! bounded with the oldest evicted, with lookup by id and a way to wait for the next one.
//!
//! Ids are a hex counter assigned under the lock, so a message's position is its id minus the
//! id of the oldest kept: lookups by id are O(1).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::{Notify, broadcast};

use crate::clock::rfc3339;
use crate::concat::Segment;
use smpp_wire::receipt::ReceiptState;

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
    pub outcome: ReceiptState,
    pub final_at: Instant,
    /// Set on one segment of a concatenated message.
    pub segment: Option<Segment>,
    /// Set on a reassembled message: its segments, in order.
    pub parts: Vec<PartRef>,
    /// The TLVs the PDU carried.
    pub tlvs: Vec<TlvView>,
    /// An MT's submit_sm_resp / data_sm_resp status (`ESME_ROK`, or the refusal); None for MO.
    /// Borrowed for the common `ESME_ROK`: no allocation per accepted message.
    pub submit_status: Option<Cow<'static, str>>,
}

impl NewMessage {
    /// Whether the submit was refused (it never reached the phone).
    fn refused(&self) -> bool {
        self.submit_status
            .as_deref()
            .is_some_and(|s| s != "ESME_ROK")
    }
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
    /// The character set data_coding names (`gsm7`, `ucs2`, `cyrillic`, ...).
    pub alphabet: &'static str,
    /// The GSM message class (0 to 3) of the GSM coding groups; 0 is a flash message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_class: Option<u8>,
    pub flash: bool,
    pub esm_class: u8,
    pub registered_delivery: u8,
    /// ENROUTE until its final state; then that state. A refused submit is REJECTD at once.
    pub state: ReceiptState,
    /// An MT's submit response status: `ESME_ROK`, or why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submit_status: Option<Cow<'static, str>>,
    /// When a delivery receipt for it was handed to a session.
    pub receipt_sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tlvs: Vec<TlvView>,
    #[serde(skip)]
    outcome: ReceiptState,
    #[serde(skip)]
    final_at: Instant,
    #[serde(skip)]
    received: SystemTime,
    /// Cancelled by cancel_sm (as opposed to a DELETED outcome, which still gets its receipt).
    #[serde(skip)]
    cancelled: bool,
    /// Refused at submit: listed only when asked for, and unknown to query/cancel/replace.
    #[serde(skip)]
    refused: bool,
}

impl StoredMessage {
    fn state_at(&self, now: Instant) -> ReceiptState {
        if now >= self.final_at {
            self.outcome
        } else {
            ReceiptState::Enroute
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
    /// Also list refused submits (by default only what reached a phone).
    pub refused: bool,
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
        self.matches_fields(
            message.direction,
            &message.from,
            &message.to,
            &message.account,
            &message.received_at,
        ) && (self.parts || message.segment.is_none())
            && (self.refused || !message.refused)
    }

    /// Whether a message with these fields matches, segments and refusals aside (for listings
    /// that are not stored messages, such as incomplete concatenated ones).
    pub fn matches_fields(
        &self,
        direction: Direction,
        from: &str,
        to: &str,
        account: &str,
        received_at: &str,
    ) -> bool {
        self.to.as_ref().is_none_or(|wanted| same_address(wanted, to))
            && self.from.as_ref().is_none_or(|wanted| same_address(wanted, from))
            && self.account.as_ref().is_none_or(|a| a == account)
            // Same fixed-width UTC format on both sides: string order is time order.
            && self.since.as_ref().is_none_or(|since| received_at >= since.as_str())
            && self.direction.is_none_or(|d| d == direction)
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
        let refused = message.refused();
        let coding = smpp_wire::coding::DataCoding::from_octet(message.data_coding);
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
                alphabet: coding.alphabet.as_str(),
                message_class: coding.class.map(|class| class.number()),
                flash: coding.is_flash(),
                esm_class: message.esm_class,
                registered_delivery: message.registered_delivery,
                state: ReceiptState::Enroute,
                submit_status: message.submit_status,
                receipt_sent_at: None,
                segment: message.segment,
                parts: message.parts,
                tlvs: message.tlvs,
                // A refused submit never travels: it is final at once.
                outcome: if refused {
                    ReceiptState::Rejected
                } else {
                    message.outcome
                },
                final_at: if refused {
                    Instant::now()
                } else {
                    message.final_at
                },
                received,
                cancelled: false,
                refused,
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

    /// The MT message `id` that `account` submitted and the simulator accepted: another
    /// account's message, an MO or a refused submit is not found (and not revealed).
    fn owned(&self, inner: &Inner, id: &str, account: &str) -> Option<usize> {
        let index = self.index(inner, id)?;
        let message = &inner.messages[index];
        (message.direction == Direction::Mt && !message.refused && message.account == account)
            .then_some(index)
    }

    /// (state, when it became final) of message `id`, if `account` submitted it.
    pub fn query(&self, id: &str, account: &str) -> Option<(ReceiptState, Option<SystemTime>)> {
        let now = Instant::now();
        let inner = self.lock();
        let message = &inner.messages[self.owned(&inner, id, account)?];
        let state = message.state_at(now);
        let done = (state != ReceiptState::Enroute)
            .then(|| SystemTime::now() - now.saturating_duration_since(message.final_at));
        Some((state, done))
    }

    /// Applies `change` to message `id` if it is still en route.
    fn change_en_route(
        &self,
        id: &str,
        account: &str,
        change: impl FnOnce(&mut StoredMessage, Instant),
    ) -> Result<(), ChangeError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let index = self
            .owned(&inner, id, account)
            .ok_or(ChangeError::NotFound)?;
        let message = &mut inner.messages[index];
        if message.state_at(now) != ReceiptState::Enroute {
            return Err(ChangeError::Final);
        }
        change(message, now);
        Ok(())
    }

    /// Cancels a message of `account` still en route: it becomes DELETED now and gets no
    /// receipt.
    pub fn cancel(&self, id: &str, account: &str) -> Result<(), ChangeError> {
        self.change_en_route(id, account, |message, now| {
            message.outcome = ReceiptState::Deleted;
            message.final_at = now;
            message.cancelled = true;
        })
    }

    /// Replaces the text of a message of `account` still en route with `short_message`, read
    /// in the message's own data_coding (replace_sm carries none of its own).
    pub fn replace(
        &self,
        id: &str,
        account: &str,
        short_message: &[u8],
    ) -> Result<(), ChangeError> {
        self.change_en_route(id, account, |message, _| {
            let text = crate::text::decode(message.data_coding, short_message);
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
            outcome: ReceiptState::Delivered,
            final_at: Instant::now() + final_in,
            segment: None,
            parts: Vec::new(),
            tlvs: Vec::new(),
            submit_status: Some("ESME_ROK".into()),
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
        assert_eq!(
            store.query(&pending, "a").map(|q| q.0),
            Some(ReceiptState::Enroute)
        );
        assert_eq!(
            store.query(&done, "a").map(|q| q.0),
            Some(ReceiptState::Delivered)
        );
        assert_eq!(store.replace(&pending, "a", b"code 4321"), Ok(()));
        assert_eq!(
            store.get(&pending).and_then(|m| m.otp).as_deref(),
            Some("4321")
        );
        assert_eq!(store.cancel(&pending, "a"), Ok(()));
        assert_eq!(
            store.query(&pending, "a").map(|q| q.0),
            Some(ReceiptState::Deleted)
        );
        assert_eq!(store.cancel(&done, "a"), Err(ChangeError::Final));
        assert_eq!(store.replace(&done, "a", b"z"), Err(ChangeError::Final));
        assert_eq!(store.cancel("ffff", "a"), Err(ChangeError::NotFound));
    }

    #[test]
    fn only_the_submitting_account_sees_or_changes_a_message() {
        let store = MessageStore::new(10);
        let id = store.insert(message("+1", "code 1111", Duration::from_secs(60)));
        assert!(store.query(&id, "b").is_none());
        assert_eq!(store.cancel(&id, "b"), Err(ChangeError::NotFound));
        assert_eq!(
            store.replace(&id, "b", b"code 2222"),
            Err(ChangeError::NotFound)
        );
        let kept = store.get(&id).expect("kept");
        assert_eq!(
            (kept.text.as_str(), kept.state),
            ("code 1111", ReceiptState::Enroute)
        );
    }

    #[test]
    fn refused_submits_are_kept_apart_from_what_phones_received() {
        let store = MessageStore::new(10);
        let mut refused = message("+1", "code 9999", Duration::from_secs(60));
        refused.submit_status = Some("ESME_RTHROTTLED".into());
        let id = store.insert(refused);
        assert!(store.latest(&Filter::default()).is_none());
        let all = Filter {
            refused: true,
            ..Filter::default()
        };
        let listed = store.list(&all, 10);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].state, listed[0].submit_status.as_deref()),
            (ReceiptState::Rejected, Some("ESME_RTHROTTLED"))
        );
        assert!(store.query(&id, "a").is_none());
        assert_eq!(store.cancel(&id, "a"), Err(ChangeError::NotFound));
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
