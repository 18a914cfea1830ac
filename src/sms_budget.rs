//! How many SMS one number may receive: at most `max_per_day` within a day window (opened by
//! the first SMS), and each after the first only once the previous one is `intervals[n]` old
//! (growing: 30 s, 1, 2, 4 min by default, the last repeating), with up to 10 % jitter so that
//! scripts cannot fire on the second. Codes (`/v1/otp/send`, sign-in starts) and `/v1/sms`
//! draw on the same budget. Neither a victim's phone nor the operator's bill can be run up
//! through one number. On the daemon's injected clock.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::clock::{DAY, SharedClock, jitter_seed};
use crate::phone::PhoneNumber;
use crate::ratelimit::{Limit, Refused};

/// The budget's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsBudgetPolicy {
    pub max_per_day: u32,
    /// Wait before the 2nd, 3rd, ... SMS of a window; the last repeats. Empty: no wait.
    pub intervals: Vec<Duration>,
}

impl Default for SmsBudgetPolicy {
    fn default() -> Self {
        Self {
            max_per_day: 10,
            intervals: [30, 60, 120, 240]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        }
    }
}

struct Entry {
    window_start: Instant,
    sent: u32,
    /// The earliest the next SMS may go (interval and jitter applied).
    next_at: Instant,
}

/// Per-number SMS budgets, in memory, on the daemon's clock.
pub struct SmsBudget {
    entries: DashMap<PhoneNumber, Entry>,
    policy: SmsBudgetPolicy,
    clock: SharedClock,
}

impl SmsBudget {
    pub fn new(policy: SmsBudgetPolicy, clock: SharedClock) -> Self {
        Self {
            entries: DashMap::new(),
            policy,
            clock,
        }
    }

    /// Takes one SMS for `phone` now, or says which limit refuses it and for how long.
    pub fn take(&self, phone: &PhoneNumber) -> Result<(), Refused> {
        let jitter = f64::from(jitter_seed()) / f64::from(u32::MAX);
        self.take_at(phone, self.clock.now(), jitter)
    }

    /// `take` at `now`; `jitter` (0.0 to 1.0) stretches the next interval by up to 10 %.
    fn take_at(&self, phone: &PhoneNumber, now: Instant, jitter: f64) -> Result<(), Refused> {
        let mut entry = self.entries.entry(phone.clone()).or_insert(Entry {
            window_start: now,
            sent: 0,
            next_at: now,
        });
        if now.duration_since(entry.window_start) >= DAY {
            *entry = Entry {
                window_start: now,
                sent: 0,
                next_at: now,
            };
        }
        if entry.sent >= self.policy.max_per_day {
            return Err(Refused {
                limit: Limit::SmsPerNumberDay,
                retry_after: (entry.window_start + DAY).saturating_duration_since(now),
            });
        }
        if now < entry.next_at {
            return Err(Refused {
                limit: Limit::ResendInterval,
                retry_after: entry.next_at - now,
            });
        }
        entry.sent += 1;
        let index = (entry.sent as usize - 1).min(self.policy.intervals.len().saturating_sub(1));
        let interval = self
            .policy
            .intervals
            .get(index)
            .copied()
            .unwrap_or_default();
        entry.next_at = now + interval.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0));
        Ok(())
    }

    /// Gives back the SMS just taken (it could not be queued): the count goes down; the wait
    /// stays (a failing send is no reason to send faster).
    pub fn give_back(&self, phone: &PhoneNumber) {
        if let Some(mut entry) = self.entries.get_mut(phone) {
            entry.sent = entry.sent.saturating_sub(1);
        }
    }

    /// Forgets windows that ended; returns how many numbers remain.
    pub fn sweep(&self) -> usize {
        self.sweep_at(self.clock.now())
    }

    fn sweep_at(&self, now: Instant) -> usize {
        self.entries
            .retain(|_, entry| now.duration_since(entry.window_start) < DAY);
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::sync::Arc;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("+31612345678").expect("valid")
    }

    #[test]
    fn intervals_grow_and_the_day_caps() {
        let budget = SmsBudget::new(
            SmsBudgetPolicy {
                max_per_day: 4,
                intervals: vec![Duration::from_secs(30), Duration::from_secs(60)],
            },
            Arc::new(SystemClock),
        );
        let p = phone();
        let start = Instant::now();
        assert!(budget.take_at(&p, start, 0.0).is_ok());
        let refused = budget
            .take_at(&p, start + Duration::from_secs(10), 0.0)
            .unwrap_err();
        assert_eq!(refused.limit, Limit::ResendInterval);
        assert_eq!(refused.retry_after, Duration::from_secs(20));
        let mut at = start + Duration::from_secs(30);
        assert!(budget.take_at(&p, at, 0.0).is_ok());
        at += Duration::from_secs(59);
        assert!(
            budget.take_at(&p, at, 0.0).is_err(),
            "the interval grew to 60 s"
        );
        at += Duration::from_secs(1);
        assert!(budget.take_at(&p, at, 0.0).is_ok());
        at += Duration::from_secs(60);
        assert!(
            budget.take_at(&p, at, 0.0).is_ok(),
            "the last interval repeats"
        );
        at += Duration::from_secs(60);
        let refused = budget.take_at(&p, at, 0.0).unwrap_err();
        assert_eq!(refused.limit, Limit::SmsPerNumberDay);
        assert_eq!(refused.retry_after, DAY - (at - start));
        assert!(budget.take_at(&p, start + DAY, 0.0).is_ok(), "a new day");
    }

    #[test]
    fn jitter_stretches_the_wait_by_at_most_a_tenth() {
        let budget = SmsBudget::new(
            SmsBudgetPolicy {
                max_per_day: 10,
                intervals: vec![Duration::from_secs(100)],
            },
            Arc::new(SystemClock),
        );
        let p = phone();
        let start = Instant::now();
        budget.take_at(&p, start, 1.0).expect("first");
        let refused = budget.take_at(&p, start, 0.0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(110));
        budget.give_back(&p);
        assert_eq!(budget.sweep_at(start + DAY), 0);
    }
}
