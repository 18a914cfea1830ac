//! Velocity by destination: a rate per prefix (the calling code and the next digits), so that a
//! burst to one range is slowed whatever numbers it uses, and a daily budget per country, so
//! that no single country can run up the bill. On the daemon's injected clock.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::{DAY, Governed, SharedClock};
use crate::ratelimit::{Limit, Rate, Refused};

/// The velocity settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VelocityPolicy {
    /// SMS to one prefix: a burst, then one more per period.
    pub prefix: Rate,
    /// SMS per country (calling code) per day, unless `country_daily` names the country.
    pub default_country_daily: u32,
    /// Calling code (digits) -> SMS per day.
    pub country_daily: HashMap<String, u32>,
}

impl Default for VelocityPolicy {
    fn default() -> Self {
        Self {
            prefix: Rate {
                burst: NonZeroU32::new(300).expect("non-zero"),
                period: Duration::from_millis(200),
            },
            default_country_daily: 50_000,
            country_daily: HashMap::new(),
        }
    }
}

type PrefixLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, Governed, NoOpMiddleware<Duration>>;

struct Day {
    start: Instant,
    sent: u32,
}

pub struct Velocity {
    prefixes: PrefixLimiter,
    governed: Governed,
    countries: DashMap<String, Day>,
    policy: VelocityPolicy,
    clock: SharedClock,
}

impl Velocity {
    pub fn new(policy: VelocityPolicy, clock: SharedClock) -> Self {
        let governed = Governed::new(clock.clone());
        let quota = Quota::with_period(policy.prefix.period)
            .expect("the policy's period is not zero")
            .allow_burst(policy.prefix.burst);
        Self {
            prefixes: RateLimiter::dashmap_with_clock(quota, governed.clone()),
            governed,
            countries: DashMap::new(),
            policy,
            clock,
        }
    }

    /// Admits one SMS to `prefix` in `country`, or says which limit refuses it.
    pub fn admit(&self, prefix: &str, country: &str) -> Result<(), Refused> {
        self.prefixes
            .check_key(&prefix.to_owned())
            .map_err(|not_until| Refused {
                limit: Limit::PrefixVelocity,
                retry_after: not_until.wait_time_from(self.governed.now()),
            })?;
        let cap = self
            .policy
            .country_daily
            .get(country)
            .copied()
            .unwrap_or(self.policy.default_country_daily);
        let now = self.clock.now();
        let mut day = self.countries.entry(country.to_owned()).or_insert(Day {
            start: now,
            sent: 0,
        });
        if now.duration_since(day.start) >= DAY {
            *day = Day {
                start: now,
                sent: 0,
            };
        }
        if day.sent >= cap {
            return Err(Refused {
                limit: Limit::CountryDaily,
                retry_after: (day.start + DAY).saturating_duration_since(now),
            });
        }
        day.sent += 1;
        Ok(())
    }

    /// Forgets prefixes back at full burst and days that are over.
    pub fn sweep(&self) {
        self.prefixes.retain_recent();
        let now = self.clock.now();
        self.countries
            .retain(|_, day| now.duration_since(day.start) < DAY);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn velocity(clock: &Arc<ManualClock>) -> Velocity {
        Velocity::new(
            VelocityPolicy {
                prefix: Rate {
                    burst: NonZeroU32::new(3).expect("non-zero"),
                    period: Duration::from_secs(10),
                },
                default_country_daily: 5,
                country_daily: HashMap::from([("44".to_owned(), 1)]),
            },
            clock.clone(),
        )
    }

    #[test]
    fn a_prefix_gets_its_burst_then_one_per_period() {
        let clock = Arc::new(ManualClock::new());
        let velocity = velocity(&clock);
        for _ in 0..3 {
            assert_eq!(velocity.admit("31612", "31"), Ok(()));
        }
        let refused = velocity.admit("31612", "31").expect_err("burst spent");
        assert_eq!(refused.limit, Limit::PrefixVelocity);
        assert_eq!(refused.retry_after, Duration::from_secs(10));
        // Another prefix of the same country is not slowed.
        assert_eq!(velocity.admit("31613", "31"), Ok(()));
        clock.advance(Duration::from_secs(10));
        assert_eq!(velocity.admit("31612", "31"), Ok(()));
    }

    #[test]
    fn a_country_has_its_daily_budget() {
        let clock = Arc::new(ManualClock::new());
        let velocity = velocity(&clock);
        assert_eq!(velocity.admit("44770", "44"), Ok(()));
        let refused = velocity.admit("44771", "44").expect_err("budget spent");
        assert_eq!(refused.limit, Limit::CountryDaily);
        assert_eq!(refused.retry_after, DAY);
        for n in 0..5 {
            assert_eq!(velocity.admit(&format!("3161{n}"), "31"), Ok(()));
        }
        assert!(velocity.admit("31619", "31").is_err());
        clock.advance(DAY);
        assert_eq!(velocity.admit("44770", "44"), Ok(()));
        velocity.sweep();
        assert_eq!(velocity.countries.len(), 1);
    }
}
