//! A carrier's circuit breaker: after `failures` failures in a row it opens and the carrier gets
//! no new traffic for `open`; then it lets traffic through again on trial, and the next outcome
//! closes it (a success) or opens it again (a failure). Time is passed in, so tests need no clock.

use std::time::Instant;

use crate::config::BreakerConfig;

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// The open period is over; the next outcome decides.
    HalfOpen,
}

impl BreakerState {
    /// The value of the `otpgate_carrier_breaker_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    failures_in_a_row: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            failures_in_a_row: 0,
            open_until: None,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.open_until {
            None => BreakerState::Closed,
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether the carrier may take new traffic.
    pub fn allows(&self, now: Instant) -> bool {
        self.state(now) != BreakerState::Open
    }

    /// A submit the carrier accepted: the breaker closes.
    pub fn success(&mut self) {
        self.failures_in_a_row = 0;
        self.open_until = None;
    }

    /// A failure; returns true when this one opened the breaker (a trip).
    pub fn failure(&mut self, now: Instant) -> bool {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let trips = match self.state(now) {
            BreakerState::Closed => self.failures_in_a_row >= self.config.failures,
            // The trial failed: open again at once.
            BreakerState::HalfOpen => true,
            BreakerState::Open => false,
        };
        if trips {
            self.open_until = Some(now + self.config.open);
        }
        trips
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            open: Duration::from_secs(30),
        })
    }

    #[test]
    fn opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let now = Instant::now();
        let mut breaker = breaker();
        assert!(!breaker.failure(now));
        assert!(!breaker.failure(now));
        breaker.success();
        assert!(!breaker.failure(now));
        assert!(!breaker.failure(now));
        assert!(breaker.allows(now));
        assert!(breaker.failure(now), "the third in a row trips it");
        assert_eq!(breaker.state(now), BreakerState::Open);
        assert!(!breaker.allows(now + Duration::from_secs(29)));
        assert!(!breaker.failure(now), "failures while open are no new trip");
    }

    #[test]
    fn after_the_open_period_one_outcome_decides() {
        let now = Instant::now();
        let mut breaker = breaker();
        for _ in 0..3 {
            breaker.failure(now);
        }
        let later = now + Duration::from_secs(30);
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert!(breaker.allows(later));
        assert!(breaker.failure(later), "a failed trial opens it again");
        assert!(!breaker.allows(later + Duration::from_secs(1)));

        let much_later = later + Duration::from_secs(30);
        assert!(breaker.allows(much_later));
        breaker.success();
        assert_eq!(breaker.state(much_later), BreakerState::Closed);
        assert!(!breaker.failure(much_later), "the count starts again");
    }
}
