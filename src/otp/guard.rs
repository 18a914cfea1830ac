//! Wrong guesses per number, across codes: a new code starts a fresh attempt count, but not a
//! fresh guessing budget. After `max_consecutive_failures` wrong codes in a row, verification
//! of that number is locked, for `lockout_initial` doubling up to `lockout_max`; after
//! `max_failures_per_day` wrong codes within one day window, until that window ends. A right
//! code clears the record.
//!
//! The lock stops verification only: sends are limited on their own, so an attacker who knows
//! a number cannot stop its owner from receiving a code, and the longest the owner's
//! verification can be blocked is one day window (once the daily budget is spent; NIST SP
//! 800-63B 5.2.2 accepts this trade-off, and caps consecutive failures at 100).
//!
//! Bound: the day windows are fixed, so any 24 hours hold at most two windows' budgets:
//! `2 × max_failures_per_day` wrong guesses per number (100 with the defaults).

use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::clock::DAY;
use crate::phone::PhoneNumber;

/// How many wrong guesses a number gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessPolicy {
    pub max_consecutive_failures: u32,
    pub lockout_initial: Duration,
    pub lockout_max: Duration,
    pub max_failures_per_day: u32,
}

impl Default for GuessPolicy {
    fn default() -> Self {
        Self {
            max_consecutive_failures: 10,
            lockout_initial: Duration::from_secs(60),
            lockout_max: Duration::from_secs(3600),
            max_failures_per_day: 50,
        }
    }
}

/// A number's verification is locked for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

#[derive(Debug)]
struct Record {
    consecutive: u32,
    /// Lockouts since the last success: each doubles the next.
    lockouts: u32,
    locked_until: Option<Instant>,
    day_start: Instant,
    day_failures: u32,
}

/// Failure records the table holds before it first grows.
const PRESIZED_RECORDS: usize = 16_384;

/// What a verification means to its number's failure record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A wrong code.
    Failed,
    /// The right code: the number starts clean.
    Succeeded,
    /// No code compared (none pending, expired, attempts used up, a decoy's flow).
    Nothing,
}

impl Outcome {
    pub fn of(verdict: &crate::otp::Verdict) -> Self {
        match verdict {
            crate::otp::Verdict::Denied { .. } => Outcome::Failed,
            crate::otp::Verdict::Approved => Outcome::Succeeded,
            _ => Outcome::Nothing,
        }
    }
}

/// Per-number failure records, in memory (one instance; issue 11 moves them to Redis).
pub struct FailureGuard {
    records: DashMap<PhoneNumber, Record>,
    policy: GuessPolicy,
}

impl FailureGuard {
    pub fn new(policy: GuessPolicy) -> Self {
        Self {
            // Sized ahead (about 1.5 MB) so that a number's first wrong code does not pay for
            // the table's growth, work that no code and the right code do not do
            // (tests/timing.rs; callgrind showed the rehashes as the whole difference).
            // Past this many numbers with failures the table grows, amortised.
            records: DashMap::with_capacity(PRESIZED_RECORDS),
            policy,
        }
    }

    /// Whether `phone` may be verified at `now`.
    pub fn check(&self, phone: &PhoneNumber, now: Instant) -> Result<(), Locked> {
        let Some(record) = self.records.get(phone) else {
            return Ok(());
        };
        match record.locked_until {
            Some(until) if now < until => Err(Locked {
                retry_after: until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Records what one verification of `phone` came to; returns whether it locked the number.
    /// Every outcome takes the same path: one clone of the number and one lookup under the
    /// shard's write lock, so that no code, a wrong code and the right one cost the same
    /// (tests/timing.rs). A verification that found no code is not a failure: an attacker
    /// who knows only the number must spend SMS budget on codes to lock it.
    pub fn settle(&self, phone: &PhoneNumber, now: Instant, outcome: Outcome) -> bool {
        match (self.records.entry(phone.clone()), outcome) {
            (Entry::Occupied(mut record), Outcome::Failed) => self.fail(record.get_mut(), now),
            (Entry::Vacant(vacant), Outcome::Failed) => {
                let mut record = Record {
                    consecutive: 0,
                    lockouts: 0,
                    locked_until: None,
                    day_start: now,
                    day_failures: 0,
                };
                let locked = self.fail(&mut record, now);
                vacant.insert(record);
                locked
            }
            (Entry::Occupied(record), Outcome::Succeeded) => {
                record.remove();
                false
            }
            (Entry::Vacant(_), Outcome::Succeeded) | (_, Outcome::Nothing) => false,
        }
    }

    fn fail(&self, record: &mut Record, now: Instant) -> bool {
        let policy = self.policy;
        if now.duration_since(record.day_start) >= DAY {
            record.day_start = now;
            record.day_failures = 0;
        }
        record.consecutive += 1;
        record.day_failures += 1;
        let mut until = None;
        if record.day_failures >= policy.max_failures_per_day {
            until = Some(record.day_start + DAY);
        }
        if record.consecutive >= policy.max_consecutive_failures {
            let doubling = 1u32 << record.lockouts.min(20);
            let lock = policy
                .lockout_initial
                .saturating_mul(doubling)
                .min(policy.lockout_max);
            record.lockouts += 1;
            record.consecutive = 0;
            until = until.max(Some(now + lock));
        }
        match until {
            Some(until) => {
                record.locked_until = Some(until.max(record.locked_until.unwrap_or(until)));
                true
            }
            None => false,
        }
    }

    /// Forgets records with nothing left to enforce at `now`; returns how many remain.
    pub fn sweep(&self, now: Instant) -> usize {
        self.records.retain(|_, record| {
            now.duration_since(record.day_start) < DAY
                || record.locked_until.is_some_and(|until| now < until)
        });
        self.records.len()
    }

    /// Numbers locked at `now` (for the gauge).
    pub fn locked(&self, now: Instant) -> usize {
        self.records
            .iter()
            .filter(|record| record.locked_until.is_some_and(|until| now < until))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("+31612345678").expect("valid")
    }

    #[test]
    fn consecutive_failures_lock_with_doubling_and_success_clears() {
        let guard = FailureGuard::new(GuessPolicy {
            max_consecutive_failures: 3,
            lockout_initial: Duration::from_secs(60),
            lockout_max: Duration::from_secs(150),
            max_failures_per_day: 1000,
        });
        let mut now = Instant::now();
        let p = phone();
        for _ in 0..2 {
            assert!(!guard.settle(&p, now, Outcome::Failed));
        }
        assert!(
            guard.settle(&p, now, Outcome::Failed),
            "the third in a row locks"
        );
        assert_eq!(
            guard.check(&p, now),
            Err(Locked {
                retry_after: Duration::from_secs(60)
            })
        );
        now += Duration::from_secs(60);
        assert_eq!(guard.check(&p, now), Ok(()));
        for _ in 0..3 {
            guard.settle(&p, now, Outcome::Failed);
        }
        assert_eq!(
            guard.check(&p, now).map_err(|l| l.retry_after),
            Err(Duration::from_secs(120)),
            "doubled"
        );
        now += Duration::from_secs(120);
        for _ in 0..3 {
            guard.settle(&p, now, Outcome::Failed);
        }
        assert_eq!(
            guard.check(&p, now).map_err(|l| l.retry_after),
            Err(Duration::from_secs(150)),
            "capped"
        );
        guard.settle(&p, now, Outcome::Succeeded);
        assert_eq!(guard.check(&p, now), Ok(()));
    }

    #[test]
    fn the_daily_budget_locks_until_the_window_ends() {
        let guard = FailureGuard::new(GuessPolicy {
            max_consecutive_failures: 100,
            lockout_initial: Duration::from_secs(60),
            lockout_max: Duration::from_secs(3600),
            max_failures_per_day: 5,
        });
        let start = Instant::now();
        let p = phone();
        for i in 0..5 {
            guard.settle(&p, start + Duration::from_secs(i * 60), Outcome::Failed);
        }
        let later = start + Duration::from_secs(3600);
        assert_eq!(
            guard.check(&p, later).map_err(|l| l.retry_after),
            Err(DAY - Duration::from_secs(3600))
        );
        assert_eq!(guard.check(&p, start + DAY), Ok(()));
        assert_eq!(guard.sweep(start + DAY), 0, "nothing left to enforce");
    }

    #[test]
    fn only_a_failure_creates_a_record_and_only_a_success_clears_one() {
        let guard = FailureGuard::new(GuessPolicy {
            max_consecutive_failures: 2,
            ..GuessPolicy::default()
        });
        let (p, now) = (phone(), Instant::now());
        // Nothing and a success on a number without a record leave no record.
        assert!(!guard.settle(&p, now, Outcome::Nothing));
        assert!(!guard.settle(&p, now, Outcome::Succeeded));
        assert_eq!(guard.sweep(now), 0);
        assert!(!guard.settle(&p, now, Outcome::Failed));
        // Nothing (no code, a decoy's flow) neither counts nor clears.
        assert!(!guard.settle(&p, now, Outcome::Nothing));
        assert_eq!(guard.sweep(now), 1);
        assert!(
            guard.settle(&p, now, Outcome::Failed),
            "the second in a row locks"
        );
        assert!(guard.check(&p, now).is_err());
        assert!(!guard.settle(&p, now, Outcome::Succeeded));
        assert!(guard.check(&p, now).is_ok());
        assert_eq!(guard.sweep(now), 0);
        assert_eq!(
            Outcome::of(&crate::otp::Verdict::NotFound),
            Outcome::Nothing
        );
    }
}
