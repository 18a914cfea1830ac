//! Every message the simulator accepted, newest last, bounded (oldest evicted), with a way to
//! wait for the next one.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::Notify;

/// One accepted short message.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub received_at: String,
    /// The code found in the text, as a phone's autofill would find it.
    pub otp: Option<String>,
    pub account: String,
    pub data_coding: u8,
    pub registered_delivery: u8,
}

/// Which messages a query wants.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Destination; compared by digits, so `+31 6 1234 5678` and `31612345678` match.
    pub to: Option<String>,
}

fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

impl Filter {
    fn matches(&self, message: &StoredMessage) -> bool {
        self.to
            .as_ref()
            .is_none_or(|to| digits(to) == digits(&message.to))
    }
}

pub struct MessageStore {
    messages: Mutex<VecDeque<StoredMessage>>,
    capacity: usize,
    next_id: AtomicU64,
    evicted: AtomicU64,
    added: Notify,
}

impl MessageStore {
    pub fn new(capacity: usize) -> Self {
        // Ids stay unique across restarts of the simulator: they start at the boot time in ms.
        let start = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        Self {
            messages: Mutex::new(VecDeque::new()),
            capacity,
            next_id: AtomicU64::new(start),
            evicted: AtomicU64::new(0),
            added: Notify::new(),
        }
    }

    /// A fresh message_id (hex, as many SMSCs use).
    pub fn next_id(&self) -> String {
        format!("{:x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<StoredMessage>> {
        // A panic while holding the lock cannot leave the deque half-written; keep serving.
        self.messages
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn push(&self, message: StoredMessage) {
        {
            let mut messages = self.lock();
            if messages.len() >= self.capacity {
                messages.pop_front();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
            messages.push_back(message);
        }
        self.added.notify_waiters();
    }

    /// Up to `limit` matching messages, newest first.
    pub fn list(&self, filter: &Filter, limit: usize) -> Vec<StoredMessage> {
        self.lock()
            .iter()
            .rev()
            .filter(|m| filter.matches(m))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn latest(&self, filter: &Filter) -> Option<StoredMessage> {
        self.lock()
            .iter()
            .rev()
            .find(|m| filter.matches(m))
            .cloned()
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

    pub fn clear(&self) -> usize {
        let mut messages = self.lock();
        let count = messages.len();
        messages.clear();
        count
    }

    pub fn len(&self) -> usize {
        self.lock().len()
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

    fn message(to: &str, text: &str) -> StoredMessage {
        StoredMessage {
            id: "1".into(),
            from: "OTPGATE".into(),
            to: to.into(),
            text: text.into(),
            received_at: String::new(),
            otp: None,
            account: "a".into(),
            data_coding: 0,
            registered_delivery: 0,
        }
    }

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let store = MessageStore::new(2);
        for text in ["one", "two", "three"] {
            store.push(message("+31612345678", text));
        }
        let texts: Vec<String> = store
            .list(&Filter::default(), 10)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(texts, ["three", "two"]);
        assert_eq!(store.evicted(), 1);
    }

    #[test]
    fn filters_by_destination_digits() {
        let store = MessageStore::new(10);
        store.push(message("+31612345678", "a"));
        store.push(message("+31612345679", "b"));
        let filter = Filter {
            to: Some(" 31 6 1234 5678".into()),
        };
        assert_eq!(store.latest(&filter).map(|m| m.text).as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn waiting_returns_as_soon_as_a_message_arrives() {
        let store = std::sync::Arc::new(MessageStore::new(10));
        let filter = Filter {
            to: Some("+31612345678".into()),
        };
        let waiter = {
            let store = store.clone();
            let filter = filter.clone();
            tokio::spawn(async move { store.latest_within(&filter, Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        store.push(message("+31612345678", "hello"));
        let found = waiter.await.expect("no panic");
        assert_eq!(found.map(|m| m.text).as_deref(), Some("hello"));
        assert!(
            store
                .latest_within(
                    &Filter {
                        to: Some("+1999".into())
                    },
                    Duration::from_millis(5)
                )
                .await
                .is_none()
        );
    }
}
