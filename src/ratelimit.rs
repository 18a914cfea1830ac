//! Rate limits keyed by normalised number (governor): sends and verifies per number, and a global
//! ceiling on sends.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::phone::PhoneNumber;

/// Which limit refused a request; its name is part of the API (problem body, metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    SendPerNumber,
    VerifyPerNumber,
    GlobalSend,
    /// Verification of one number is locked after too many wrong codes (`otp::guard`).
    NumberLocked,
    /// The number had its SMS for the day (`sms_budget`).
    SmsPerNumberDay,
    /// The number's next SMS must wait (growing resend interval, `sms_budget`).
    ResendInterval,
    /// Too many SMS to one prefix (`pumping::velocity`).
    PrefixVelocity,
    /// The country had its SMS for the day (`pumping::velocity`).
    CountryDaily,
}

impl Limit {
    pub fn as_str(&self) -> &'static str {
        match self {
            Limit::SendPerNumber => "send_per_number",
            Limit::VerifyPerNumber => "verify_per_number",
            Limit::GlobalSend => "global_send",
            Limit::NumberLocked => "number_locked",
            Limit::SmsPerNumberDay => "sms_per_number_day",
            Limit::ResendInterval => "resend_interval",
            Limit::PrefixVelocity => "prefix_velocity",
            Limit::CountryDaily => "country_daily",
        }
    }
}

/// A refusal: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: Limit,
    pub retry_after: Duration,
}

impl Refused {
    /// `Retry-After` in whole seconds (see [`retry_after_secs`]).
    pub fn retry_after_secs(&self) -> u64 {
        retry_after_secs(self.retry_after)
    }
}

/// A wait as `Retry-After` seconds: rounded up, at least 1, so a client that obeys it is let
/// through.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Burst, then one more per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: NonZeroU32,
    pub period: Duration,
}

impl Rate {
    fn quota(self) -> Quota {
        Quota::with_period(self.period)
            .expect("config validation rejects a zero period")
            .allow_burst(self.burst)
    }
}

/// The configured limits.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub send: Rate,
    pub verify: Rate,
    pub global_sends_per_second: NonZeroU32,
    /// SMS per number per day and the waits between them.
    pub sms_budget: crate::sms_budget::SmsBudgetPolicy,
}

type Keyed<C> = RateLimiter<
    PhoneNumber,
    DefaultKeyedStateStore<PhoneNumber>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The daemon's limiters; cheap to clone.
pub struct RateLimits<C: Clock + Clone = DefaultClock> {
    send: Arc<Keyed<C>>,
    verify: Arc<Keyed<C>>,
    global_send: Arc<Direct<C>>,
    clock: C,
}

impl<C: Clock + Clone> Clone for RateLimits<C> {
    fn clone(&self) -> Self {
        Self {
            send: self.send.clone(),
            verify: self.verify.clone(),
            global_send: self.global_send.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl RateLimits<DefaultClock> {
    pub fn new(config: LimitsConfig) -> Self {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock(config: LimitsConfig, clock: C) -> Self {
        let per_second = Quota::per_second(config.global_sends_per_second);
        Self {
            send: Arc::new(RateLimiter::dashmap_with_clock(
                config.send.quota(),
                clock.clone(),
            )),
            verify: Arc::new(RateLimiter::dashmap_with_clock(
                config.verify.quota(),
                clock.clone(),
            )),
            global_send: Arc::new(RateLimiter::direct_with_clock(per_second, clock.clone())),
            clock,
        }
    }

    /// Admits one send to `phone`, or says which limit refuses it.
    pub fn check_send(&self, phone: &PhoneNumber) -> Result<(), Refused> {
        self.send.check_key(phone).map_err(|not_until| {
            self.refused(
                Limit::SendPerNumber,
                not_until.wait_time_from(self.clock.now()),
            )
        })?;
        self.global_send.check().map_err(|not_until| {
            self.refused(
                Limit::GlobalSend,
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    /// Admits one send under the global ceiling only (generic SMS: not an OTP, no per-number
    /// limit).
    pub fn check_global_send(&self) -> Result<(), Refused> {
        self.global_send.check().map_err(|not_until| {
            self.refused(
                Limit::GlobalSend,
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    /// Admits one verification for `phone`.
    pub fn check_verify(&self, phone: &PhoneNumber) -> Result<(), Refused> {
        self.verify.check_key(phone).map_err(|not_until| {
            self.refused(
                Limit::VerifyPerNumber,
                not_until.wait_time_from(self.clock.now()),
            )
        })
    }

    fn refused(&self, limit: Limit, retry_after: Duration) -> Refused {
        Refused { limit, retry_after }
    }

    /// Forgets numbers whose limiter state is back to full; bounds memory under a flood of
    /// distinct numbers. Returns how many keys remain.
    pub fn prune(&self) -> usize {
        self.send.retain_recent();
        self.verify.retain_recent();
        self.send.shrink_to_fit();
        self.verify.shrink_to_fit();
        self.send.len() + self.verify.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn config() -> LimitsConfig {
        LimitsConfig {
            send: Rate {
                burst: NonZeroU32::new(3).expect("non-zero"),
                period: Duration::from_secs(60),
            },
            verify: Rate {
                burst: NonZeroU32::new(10).expect("non-zero"),
                period: Duration::from_secs(10),
            },
            global_sends_per_second: NonZeroU32::new(1000).expect("non-zero"),
            sms_budget: crate::sms_budget::SmsBudgetPolicy::default(),
        }
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("valid test number")
    }

    #[test]
    fn fourth_send_waits_a_period_and_other_numbers_are_unaffected() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(config(), clock.clone());
        let number = phone("+31612345678");
        for _ in 0..3 {
            limits.check_send(&number).expect("burst of 3");
        }
        let refused = limits.check_send(&number).expect_err("4th is refused");
        assert_eq!(refused.limit, Limit::SendPerNumber);
        assert_eq!(refused.retry_after_secs(), 60);
        limits
            .check_send(&phone("+31612345679"))
            .expect("other number");
        clock.advance(Duration::from_secs(60));
        limits.check_send(&number).expect("one more after a period");
    }

    #[test]
    fn the_global_ceiling_applies_across_numbers() {
        let clock = FakeRelativeClock::default();
        let mut cfg = config();
        cfg.global_sends_per_second = NonZeroU32::new(2).expect("non-zero");
        let limits = RateLimits::with_clock(cfg, clock.clone());
        limits.check_send(&phone("+31600000001")).expect("1");
        limits.check_send(&phone("+31600000002")).expect("2");
        let refused = limits
            .check_send(&phone("+31600000003"))
            .expect_err("ceiling");
        assert_eq!(refused.limit, Limit::GlobalSend);
        assert_eq!(refused.retry_after_secs(), 1);
    }

    #[test]
    fn pruning_forgets_numbers_whose_limit_has_recovered() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(config(), clock.clone());
        for n in 0..100 {
            limits
                .check_verify(&phone(&format!("+316000{n:05}")))
                .expect("first verify");
        }
        assert_eq!(limits.prune(), 100);
        // governor drops a key once its state is indistinguishable from a fresh one: one period
        // after the bucket refilled (here 10 s to refill + 10 s).
        clock.advance(Duration::from_secs(19));
        assert_eq!(limits.prune(), 100);
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.prune(), 0);
    }
}
