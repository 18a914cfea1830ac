//! Rate limits (governor): sends per API client and per source address, so that one client's
//! flood cannot spend another's budget; sends and verifies per normalised number; and a global
//! ceiling on sends, checked last.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::clients::ApiClient;
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
    /// The API client spent its send budget.
    ClientSend,
    /// The source address (the end user's, through a trusted proxy) spent its send budget.
    IpSend,
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
            Limit::ClientSend => "client_send",
            Limit::IpSend => "ip_send",
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
    /// Sends per second of one API client, unless the client sets its own.
    pub client_sends_per_second: NonZeroU32,
    /// Sends of one source address (IPv6: its /64).
    pub ip_send: Rate,
    /// SMS per number per day and the waits between them.
    pub sms_budget: crate::sms_budget::SmsBudgetPolicy,
}

/// Who asks for a send: the API client, and the source address the per-address limit counts
/// (`None`: a trusted proxy's own request, not limited per address).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub client: &'a str,
    pub ip: Option<IpAddr>,
}

/// The key of an address's limit: IPv4 as it is, IPv6 by its /64 (one subscriber's prefix,
/// whose addresses are free to rotate).
fn ip_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is (one client, one key, whichever way
/// the socket or a proxy wrote it).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

type Keyed<C> = RateLimiter<
    PhoneNumber,
    DefaultKeyedStateStore<PhoneNumber>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;
/// An address's budget is its client's: (the client's index, the address's key). A client can
/// spend no other client's budget for an address by forging `X-Forwarded-For`.
type AddressKey = (u32, IpAddr);
type ByAddress<C> = RateLimiter<
    AddressKey,
    DefaultKeyedStateStore<AddressKey>,
    C,
    NoOpMiddleware<<C as Clock>::Instant>,
>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The daemon's limiters; cheap to clone.
pub struct RateLimits<C: Clock + Clone> {
    send: Arc<Keyed<C>>,
    verify: Arc<Keyed<C>>,
    global_send: Arc<Direct<C>>,
    /// One budget per API client, by name, with the client's index (its addresses' key).
    client_send: Arc<HashMap<String, (u32, Direct<C>)>>,
    ip_send: Arc<ByAddress<C>>,
    clock: C,
}

impl<C: Clock + Clone> Clone for RateLimits<C> {
    fn clone(&self) -> Self {
        Self {
            send: self.send.clone(),
            verify: self.verify.clone(),
            global_send: self.global_send.clone(),
            client_send: self.client_send.clone(),
            ip_send: self.ip_send.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    pub fn with_clock(config: LimitsConfig, clients: &[ApiClient], clock: C) -> Self {
        let per_second = Quota::per_second(config.global_sends_per_second);
        let client_send = clients
            .iter()
            .zip(0u32..)
            .map(|(client, index)| {
                let rate = client
                    .sends_per_second
                    .unwrap_or(config.client_sends_per_second);
                let limiter =
                    RateLimiter::direct_with_clock(Quota::per_second(rate), clock.clone());
                (client.name.clone(), (index, limiter))
            })
            .collect();
        Self {
            client_send: Arc::new(client_send),
            ip_send: Arc::new(RateLimiter::dashmap_with_clock(
                config.ip_send.quota(),
                clock.clone(),
            )),
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

    /// Admits one send to `phone` by `sender`, or says which limit refuses it: the sender's
    /// own budgets first (its address's, then its client's), so a flood is cut off before it
    /// spends the number's or the global ones, then the number's, then the global ceiling.
    pub fn check_send(&self, phone: &PhoneNumber, sender: Sender<'_>) -> Result<(), Refused> {
        self.check_sender(sender)?;
        self.send
            .check_key(phone)
            .map_err(|not_until| self.refused(Limit::SendPerNumber, not_until))?;
        self.check_global_send()
    }

    /// Admits one generic SMS (not an OTP: no per-number rate here, the SMS budget counts it)
    /// under the sender's budgets and the global ceiling.
    pub fn check_sms_send(&self, sender: Sender<'_>) -> Result<(), Refused> {
        self.check_sender(sender)?;
        self.check_global_send()
    }

    /// The narrowest budget first: an end user's flood through a frontend is refused at its
    /// address without spending the frontend's own budget, which all its users share.
    fn check_sender(&self, sender: Sender<'_>) -> Result<(), Refused> {
        // A client the limiter does not know (none: every caller is a configured client) is
        // held to no budget of its own rather than refused.
        let budget = self.client_send.get(sender.client);
        if let Some(ip) = sender.ip {
            let client = budget.map_or(u32::MAX, |(index, _)| *index);
            self.ip_send
                .check_key(&(client, ip_key(ip)))
                .map_err(|not_until| self.refused(Limit::IpSend, not_until))?;
        }
        if let Some((_, budget)) = budget {
            budget
                .check()
                .map_err(|not_until| self.refused(Limit::ClientSend, not_until))?;
        }
        Ok(())
    }

    fn check_global_send(&self) -> Result<(), Refused> {
        self.global_send
            .check()
            .map_err(|not_until| self.refused(Limit::GlobalSend, not_until))
    }

    /// Admits one verification for `phone`.
    pub fn check_verify(&self, phone: &PhoneNumber) -> Result<(), Refused> {
        self.verify
            .check_key(phone)
            .map_err(|not_until| self.refused(Limit::VerifyPerNumber, not_until))
    }

    fn refused(
        &self,
        limit: Limit,
        not_until: governor::NotUntil<<C as Clock>::Instant>,
    ) -> Refused {
        Refused {
            limit,
            retry_after: not_until.wait_time_from(self.clock.now()),
        }
    }

    /// Forgets numbers whose limiter state is back to full; bounds memory under a flood of
    /// distinct numbers. Returns how many keys remain.
    pub fn prune(&self) -> usize {
        self.send.retain_recent();
        self.verify.retain_recent();
        self.ip_send.retain_recent();
        self.send.shrink_to_fit();
        self.verify.shrink_to_fit();
        self.ip_send.shrink_to_fit();
        self.send.len() + self.verify.len() + self.ip_send.len()
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
            client_sends_per_second: NonZeroU32::new(500).expect("non-zero"),
            ip_send: Rate {
                burst: NonZeroU32::new(100).expect("non-zero"),
                period: Duration::from_secs(1),
            },
            sms_budget: crate::sms_budget::SmsBudgetPolicy::default(),
        }
    }

    const ANYONE: Sender<'static> = Sender {
        client: "a",
        ip: None,
    };

    fn client(name: &str, sends_per_second: Option<u32>) -> ApiClient {
        ApiClient {
            name: name.to_owned(),
            key_sha256: [0; 32],
            scopes: crate::config::clients::Scopes::default(),
            tenants: None,
            webhook_secret: None,
            senders: Vec::new(),
            sends_per_second: sends_per_second.and_then(NonZeroU32::new),
            key_in_clear: false,
        }
    }

    fn phone(raw: &str) -> PhoneNumber {
        PhoneNumber::parse(raw).expect("valid test number")
    }

    #[test]
    fn fourth_send_waits_a_period_and_other_numbers_are_unaffected() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(config(), &[], clock.clone());
        let number = phone("+31612345678");
        for _ in 0..3 {
            limits.check_send(&number, ANYONE).expect("burst of 3");
        }
        let refused = limits
            .check_send(&number, ANYONE)
            .expect_err("4th is refused");
        assert_eq!(refused.limit, Limit::SendPerNumber);
        assert_eq!(refused.retry_after_secs(), 60);
        limits
            .check_send(&phone("+31612345679"), ANYONE)
            .expect("other number");
        clock.advance(Duration::from_secs(60));
        limits
            .check_send(&number, ANYONE)
            .expect("one more after a period");
    }

    #[test]
    fn the_global_ceiling_applies_across_numbers() {
        let clock = FakeRelativeClock::default();
        let mut cfg = config();
        cfg.global_sends_per_second = NonZeroU32::new(2).expect("non-zero");
        let limits = RateLimits::with_clock(cfg, &[], clock.clone());
        limits
            .check_send(&phone("+31600000001"), ANYONE)
            .expect("1");
        limits
            .check_send(&phone("+31600000002"), ANYONE)
            .expect("2");
        let refused = limits
            .check_send(&phone("+31600000003"), ANYONE)
            .expect_err("ceiling");
        assert_eq!(refused.limit, Limit::GlobalSend);
        assert_eq!(refused.retry_after_secs(), 1);
    }

    #[test]
    fn a_clients_flood_spends_its_own_budget_not_the_global_one() {
        let clock = FakeRelativeClock::default();
        let mut cfg = config();
        cfg.global_sends_per_second = NonZeroU32::new(10).expect("non-zero");
        let clients = [client("noisy", Some(4)), client("quiet", None)];
        let limits = RateLimits::with_clock(cfg, &clients, clock.clone());
        let noisy = Sender {
            client: "noisy",
            ip: None,
        };
        let mut refused = 0;
        for n in 0..50 {
            match limits.check_sms_send(noisy) {
                Ok(()) => {}
                Err(r) => {
                    assert_eq!(r.limit, Limit::ClientSend, "send {n}");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 46);
        let quiet = Sender {
            client: "quiet",
            ip: None,
        };
        for n in 0..6 {
            limits
                .check_send(&phone(&format!("+3160000010{n}")), quiet)
                .expect("the global ceiling has room for the quiet client");
        }
        let last = limits.check_sms_send(quiet).expect_err("ceiling");
        assert_eq!(last.limit, Limit::GlobalSend);
    }

    #[test]
    fn addresses_have_budgets_and_ipv6_counts_by_slash_64() {
        let clock = FakeRelativeClock::default();
        let mut cfg = config();
        cfg.ip_send = Rate {
            burst: NonZeroU32::new(2).expect("non-zero"),
            period: Duration::from_secs(30),
        };
        let limits = RateLimits::with_clock(cfg, &[], clock.clone());
        let from = |ip: &str| Sender {
            client: "a",
            ip: Some(ip.parse().expect("address")),
        };
        limits.check_sms_send(from("2001:db8:1:2::1")).expect("1");
        limits
            .check_sms_send(from("2001:db8:1:2:ffff::9"))
            .expect("2");
        let refused = limits
            .check_sms_send(from("2001:db8:1:2:abcd::1"))
            .expect_err("same /64");
        assert_eq!(refused.limit, Limit::IpSend);
        assert_eq!(refused.retry_after_secs(), 30);
        limits
            .check_sms_send(from("2001:db8:1:3::1"))
            .expect("another /64");
        limits.check_sms_send(from("192.0.2.7")).expect("v4");
        limits
            .check_sms_send(from("::ffff:192.0.2.7"))
            .expect("v4 mapped, 2nd");
        assert!(limits.check_sms_send(from("192.0.2.7")).is_err());
        limits
            .check_sms_send(ANYONE)
            .expect("a proxy's own request");
    }

    #[test]
    fn pruning_forgets_numbers_whose_limit_has_recovered() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(config(), &[], clock.clone());
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
