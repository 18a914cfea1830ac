//! Exponential reconnect delays with jitter, so a fleet of daemons does not reconnect in lockstep.

use std::time::Duration;

pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The next delay: the current step with up to ±20% jitter; the step then doubles up to `max`.
    pub fn next_delay(&mut self, jitter_seed: u32) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        // jitter_seed maps onto a factor in [0.8, 1.2].
        let factor = 0.8 + 0.4 * (f64::from(jitter_seed) / f64::from(u32::MAX));
        step.mul_f64(factor).min(self.max)
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let mid = u32::MAX / 2;
        let delays: Vec<u128> = (0..5)
            .map(|_| backoff.next_delay(mid).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_delay(mid).as_millis(), 100);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut backoff = Backoff::new(Duration::from_millis(1000), Duration::from_secs(60));
        assert_eq!(backoff.next_delay(0), Duration::from_millis(800));
        backoff.reset();
        assert_eq!(backoff.next_delay(u32::MAX), Duration::from_millis(1200));
    }
}
