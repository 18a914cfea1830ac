//! Pending challenges, keyed by number, behind the narrow `ChallengeStore` interface.
//!
//! The interface is what a shared backend (Redis, for several daemons behind a load balancer) must
//! offer: replace-on-put, an atomic count-then-compare attempt, revoke, sweep.

use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::mac::Tag;
use crate::phone::PhoneNumber;

/// Opaque id of one issued code, returned to the caller of `send`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChallengeId(pub String);

/// One pending code for one number.
#[derive(Clone)]
pub struct Challenge {
    pub id: ChallengeId,
    pub tag: Tag,
    pub expires_at: Instant,
    /// Attempts made so far, right or wrong.
    pub attempts: u32,
}

impl Challenge {
    /// One attempt at `now`: refused if expired or out of attempts, else counted and then
    /// compared in constant time. The store removes the challenge when it is approved or
    /// expired.
    fn judge(&mut self, candidate: &Tag, now: Instant, max_attempts: u32) -> Verdict {
        if now >= self.expires_at {
            return Verdict::Expired;
        }
        if self.attempts >= max_attempts {
            return Verdict::MaxAttemptsReached;
        }
        self.attempts += 1;
        if self.tag.matches(candidate) {
            Verdict::Approved
        } else {
            Verdict::Denied {
                attempts_left: max_attempts - self.attempts,
            }
        }
    }
}

/// The outcome of one verification attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    Denied {
        attempts_left: u32,
    },
    Expired,
    MaxAttemptsReached,
    NotFound,
    /// Too many wrong codes for this number lately (across codes): verification waits.
    Locked {
        retry_after: std::time::Duration,
    },
}

impl Verdict {
    /// The wire and metrics name of the verdict.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::Denied { .. } => "denied",
            Verdict::Expired => "expired",
            Verdict::MaxAttemptsReached => "max_attempts_reached",
            Verdict::NotFound => "not_found",
            Verdict::Locked { .. } => "locked",
        }
    }
}

/// The store holds as many challenges as it may.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{0} challenges are pending, the configured maximum")]
pub struct StoreFull(pub usize);

/// Where pending challenges live.
pub trait ChallengeStore: Send + Sync + 'static {
    /// Stores `challenge` for `phone`, replacing (and so invalidating) any pending one.
    fn put(&self, phone: &PhoneNumber, challenge: Challenge) -> Result<(), StoreFull>;
    /// Counts one attempt and, if attempts remain, compares `candidate` in constant time.
    /// The count happens before the comparison and under the same lock, so concurrent guesses
    /// can never use more than `max_attempts` comparisons between them.
    fn attempt(
        &self,
        phone: &PhoneNumber,
        candidate: &Tag,
        now: Instant,
        max_attempts: u32,
    ) -> Verdict;
    /// Removes the challenge for `phone` if it is still `id`.
    fn revoke(&self, phone: &PhoneNumber, id: &ChallengeId);
    /// Whether another challenge than `id` is pending for `phone` (a newer code replaced it).
    fn replaced(&self, phone: &PhoneNumber, id: &ChallengeId) -> bool;
    /// Drops every challenge that expired at `now`; returns how many.
    fn sweep(&self, now: Instant) -> usize;
    /// Pending challenges.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// In-process store: a sharded concurrent map with a cap on its size. Keyed by number for
/// `/v1/otp`; the sign-in flows key it by tenant and number.
pub struct MemoryStore<K = PhoneNumber> {
    map: DashMap<K, Challenge>,
    capacity: usize,
}

impl MemoryStore<PhoneNumber> {
    pub fn new(capacity: usize) -> Self {
        Self::keyed(capacity)
    }
}

impl<K: std::hash::Hash + Eq + Clone> MemoryStore<K> {
    pub fn keyed(capacity: usize) -> Self {
        Self {
            map: DashMap::new(),
            capacity,
        }
    }

    /// Stores `challenge` under `key`, replacing (and so invalidating) any pending one.
    pub fn put_keyed(&self, key: &K, challenge: Challenge) -> Result<(), StoreFull> {
        // Replacing a key's challenge never grows the map, so it is allowed at the cap. Two racing
        // inserts of new keys may overshoot the cap by the number of racing threads, no more.
        if !self.map.contains_key(key) && self.map.len() >= self.capacity {
            return Err(StoreFull(self.capacity));
        }
        self.map.insert(key.clone(), challenge);
        Ok(())
    }

    /// Counts one attempt at the challenge under `key` (only if it is still `only`, when given)
    /// and, if attempts remain, compares `candidate` in constant time.
    pub fn attempt_keyed(
        &self,
        key: &K,
        only: Option<&ChallengeId>,
        candidate: &Tag,
        now: Instant,
        max_attempts: u32,
    ) -> Verdict {
        // The entry holds the shard's write lock for the whole count-compare-remove sequence.
        match self.map.entry(key.clone()) {
            Entry::Vacant(_) => {
                // A stand-in is judged the same way, so that "no code" runs the same code as a
                // wrong one and does not answer faster (tests/timing.rs).
                let mut stand_in = Challenge {
                    id: ChallengeId(String::new()),
                    tag: Tag::zero(),
                    expires_at: now + std::time::Duration::from_secs(1),
                    attempts: 0,
                };
                let _ = std::hint::black_box(stand_in.judge(candidate, now, max_attempts));
                Verdict::NotFound
            }
            Entry::Occupied(mut entry) => {
                if only.is_some_and(|id| *id != entry.get().id) {
                    return Verdict::NotFound;
                }
                let verdict = entry.get_mut().judge(candidate, now, max_attempts);
                if matches!(verdict, Verdict::Approved | Verdict::Expired) {
                    entry.remove();
                }
                verdict
            }
        }
    }

    /// Whether the challenge under `key` is another than `id`.
    pub fn replaced_keyed(&self, key: &K, id: &ChallengeId) -> bool {
        self.map
            .get(key)
            .is_some_and(|challenge| &challenge.id != id)
    }

    /// Removes the challenge under `key` if it is still `id`.
    pub fn revoke_keyed(&self, key: &K, id: &ChallengeId) {
        self.map.remove_if(key, |_, challenge| &challenge.id == id);
    }

    /// Drops every challenge that expired at `now`; returns how many.
    pub fn sweep_expired(&self, now: Instant) -> usize {
        let before = self.map.len();
        self.map.retain(|_, challenge| challenge.expires_at > now);
        before.saturating_sub(self.map.len())
    }

    pub fn count(&self) -> usize {
        self.map.len()
    }
}

impl ChallengeStore for MemoryStore<PhoneNumber> {
    fn put(&self, phone: &PhoneNumber, challenge: Challenge) -> Result<(), StoreFull> {
        self.put_keyed(phone, challenge)
    }

    fn attempt(
        &self,
        phone: &PhoneNumber,
        candidate: &Tag,
        now: Instant,
        max_attempts: u32,
    ) -> Verdict {
        self.attempt_keyed(phone, None, candidate, now, max_attempts)
    }

    fn revoke(&self, phone: &PhoneNumber, id: &ChallengeId) {
        self.revoke_keyed(phone, id);
    }

    fn replaced(&self, phone: &PhoneNumber, id: &ChallengeId) -> bool {
        self.replaced_keyed(phone, id)
    }

    fn sweep(&self, now: Instant) -> usize {
        self.sweep_expired(now)
    }

    fn len(&self) -> usize {
        self.count()
    }
}
