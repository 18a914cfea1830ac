//! SMS pumping and toll fraud: the rules a send passes before its SMS may reach a carrier.
//! `destinations` says which numbers may be sent to at all, `velocity` how fast each prefix and
//! country, and `breaker` blocks a prefix whose codes stop being verified. A number on the safe
//! list passes all of them.

pub mod breaker;
pub mod destinations;
pub mod velocity;

use std::time::Duration;

use dashmap::DashSet;
use tracing::{info, warn};

pub use breaker::{Block, BreakerMode, BreakerPolicy, ConversionBreaker, Trip};
pub use destinations::{DestinationPolicy, DestinationRefused, LineType, NumberingPlan, Prefixes};
pub use velocity::{Velocity, VelocityPolicy};

use crate::clock::SharedClock;
use crate::metrics as m;
use crate::phone::PhoneNumber;
use crate::ratelimit::Refused;

/// Everything `[destinations]` and `[pumping]` configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpingPolicy {
    pub destinations: DestinationPolicy,
    /// Digits after the calling code that make a prefix for velocity and the breaker.
    pub prefix_digits: usize,
    pub velocity: VelocityPolicy,
    pub breaker: BreakerPolicy,
}

impl Default for PumpingPolicy {
    fn default() -> Self {
        Self {
            destinations: DestinationPolicy::default(),
            prefix_digits: 3,
            velocity: VelocityPolicy::default(),
            breaker: BreakerPolicy::default(),
        }
    }
}

/// Why a send is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PumpingRefused {
    /// A velocity limit (per prefix, per country and day).
    #[error("{0:?}")]
    Limited(Refused),
    /// The conversion breaker blocks the number's prefix.
    #[error("SMS to this destination are paused; retry after {} s", crate::ratelimit::retry_after_secs(*.0))]
    Blocked(Duration),
}

/// Where a number's SMS are counted: its prefix and its country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub prefix: String,
    pub country: String,
}

pub struct Pumping {
    policy: PumpingPolicy,
    velocity: Velocity,
    breaker: ConversionBreaker,
    /// Calling codes sent to since start (a first one is logged and counted).
    seen_countries: DashSet<String>,
}

impl Pumping {
    pub fn new(policy: PumpingPolicy, clock: SharedClock) -> Self {
        Self {
            velocity: Velocity::new(policy.velocity.clone(), clock.clone()),
            breaker: ConversionBreaker::new(policy.breaker, clock),
            seen_countries: DashSet::new(),
            policy,
        }
    }

    pub fn destination(&self, phone: &PhoneNumber) -> Destination {
        let digits = phone.digits();
        let country = phone
            .calling_code()
            .unwrap_or(&digits[..1.min(digits.len())]);
        let end = (country.len() + self.policy.prefix_digits).min(digits.len());
        Destination {
            prefix: digits[..end].to_owned(),
            country: country.to_owned(),
        }
    }

    /// Whether `phone` may be sent an SMS at all (geo, numbering plan, line type).
    pub fn permitted(&self, phone: &PhoneNumber) -> Result<(), DestinationRefused> {
        self.policy
            .destinations
            .check(phone)
            .inspect_err(|refused| {
                metrics::counter!(m::DESTINATION_REFUSED_TOTAL, m::LABEL_RULE => refused.rule())
                    .increment(1);
            })
    }

    /// Whether `phone` may be sent an SMS now (the breaker, then velocity); counts one SMS
    /// against the velocity limits when it may.
    pub fn admit(&self, phone: &PhoneNumber) -> Result<(), PumpingRefused> {
        if self.policy.destinations.is_safe(phone) {
            return Ok(());
        }
        let destination = self.destination(phone);
        if let Some(remaining) = self.breaker.blocked(&destination.prefix) {
            metrics::counter!(m::DESTINATION_REFUSED_TOTAL, m::LABEL_RULE => "breaker")
                .increment(1);
            return Err(PumpingRefused::Blocked(remaining));
        }
        self.velocity
            .admit(&destination.prefix, &destination.country)
            .map_err(PumpingRefused::Limited)
    }

    /// Records an SMS queued for `phone`; `code` when it carries a code that can be verified.
    pub fn queued(&self, phone: &PhoneNumber, code: bool) {
        if self.policy.destinations.is_safe(phone) {
            return;
        }
        let destination = self.destination(phone);
        if !self.seen_countries.contains(&destination.country)
            && self.seen_countries.insert(destination.country.clone())
        {
            info!(country = %format_args!("+{}", destination.country), "first SMS to a country since start");
            metrics::counter!(m::PUMPING_FIRST_SEEN_COUNTRIES_TOTAL).increment(1);
        }
        if !code {
            return;
        }
        if let Some(trip) = self.breaker.sent(&destination.prefix) {
            warn!(
                prefix = %format_args!("+{}", destination.prefix),
                mode = trip.mode.as_str(),
                sent = trip.sent,
                verified = trip.verified,
                "conversion breaker tripped"
            );
            metrics::counter!(m::PUMPING_BREAKER_TRIPS_TOTAL, m::LABEL_MODE => trip.mode.as_str())
                .increment(1);
        }
    }

    /// Records a verified code for `phone`.
    pub fn verified(&self, phone: &PhoneNumber) {
        self.breaker.verified(&self.destination(phone).prefix);
    }

    pub fn breaker(&self) -> &ConversionBreaker {
        &self.breaker
    }

    /// Lifts the block of `prefix` (digits), logged with who lifted it.
    pub fn lift(&self, prefix: &str, by: &str) -> bool {
        let lifted = self.breaker.lift(prefix);
        if lifted {
            warn!(prefix = %format_args!("+{prefix}"), client = by, "conversion breaker lifted by an admin");
            metrics::counter!(m::PUMPING_BREAKER_LIFTS_TOTAL).increment(1);
        }
        lifted
    }

    pub fn sweep(&self) {
        self.velocity.sweep();
        self.breaker.sweep();
        metrics::gauge!(m::PUMPING_BLOCKED_PREFIXES).set(self.breaker.blocks().len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn a_prefix_is_the_calling_code_and_the_next_digits() {
        let pumping = Pumping::new(PumpingPolicy::default(), Arc::new(ManualClock::new()));
        let prefix =
            |raw: &str| pumping.destination(&PhoneNumber::parse(raw).expect("valid test number"));
        assert_eq!(
            prefix("+31612345678"),
            Destination {
                prefix: "31612".into(),
                country: "31".into()
            }
        );
        assert_eq!(prefix("+14158675309").prefix, "1415");
        assert_eq!(prefix("+2901234").prefix, "290123");
    }
}
