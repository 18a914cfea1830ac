//! The conversion breaker: per prefix, the share of sent codes that were verified over a sliding
//! window. A pumping ring sends codes nobody enters, so when the volume is high and the share
//! collapses the prefix is blocked for a while (`block`), or the trip is only recorded
//! (`shadow`, to tune the thresholds on live traffic first). Trips are listed and lifted over the
//! admin API. On the daemon's injected clock.

use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;

use crate::clock::SharedClock;

/// What a trip does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerMode {
    /// No window is kept.
    Off,
    /// Trips are logged, counted and listed; nothing is refused.
    Shadow,
    /// A tripped prefix is refused until its block ends or an admin lifts it.
    #[default]
    Block,
}

impl BreakerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerMode::Off => "off",
            BreakerMode::Shadow => "shadow",
            BreakerMode::Block => "block",
        }
    }
}

/// The window is this many buckets; a bucket ages out whole.
const BUCKETS: usize = 12;

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    pub mode: BreakerMode,
    pub window: Duration,
    /// Fewer codes than this in the window never trip (a quiet prefix has no ratio to speak of).
    pub min_sent: u32,
    /// Trip when verified / sent falls below this, in per mille.
    pub min_conversion_permille: u32,
    pub block: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            mode: BreakerMode::Block,
            window: Duration::from_secs(3600),
            min_sent: 50,
            min_conversion_permille: 200,
            block: Duration::from_secs(3600),
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    index: u64,
    sent: u32,
    verified: u32,
}

/// A prefix's trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    pub mode: BreakerMode,
    pub since: SystemTime,
    pub until: Instant,
    pub sent: u32,
    pub verified: u32,
}

#[derive(Default)]
struct Window {
    buckets: [Bucket; BUCKETS],
    trip: Option<Trip>,
}

impl Window {
    fn totals(&self, current: u64) -> (u32, u32) {
        self.buckets
            .iter()
            .filter(|b| b.index + BUCKETS as u64 > current && b.index <= current)
            .fold((0, 0), |(s, v), b| (s + b.sent, v + b.verified))
    }

    fn bucket(&mut self, current: u64) -> &mut Bucket {
        let bucket = &mut self.buckets[(current % BUCKETS as u64) as usize];
        if bucket.index != current {
            *bucket = Bucket {
                index: current,
                ..Bucket::default()
            };
        }
        bucket
    }
}

/// A listed trip, as the admin route shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub prefix: String,
    pub trip: Trip,
    pub remaining: Duration,
}

pub struct ConversionBreaker {
    prefixes: DashMap<String, Window>,
    policy: BreakerPolicy,
    clock: SharedClock,
    origin: Instant,
}

impl ConversionBreaker {
    pub fn new(policy: BreakerPolicy, clock: SharedClock) -> Self {
        let origin = clock.now();
        Self {
            prefixes: DashMap::new(),
            policy,
            clock,
            origin,
        }
    }

    pub fn mode(&self) -> BreakerMode {
        self.policy.mode
    }

    fn bucket_index(&self, now: Instant) -> u64 {
        let width = (self.policy.window / BUCKETS as u32).max(Duration::from_millis(1));
        (now.saturating_duration_since(self.origin).as_nanos() / width.as_nanos()) as u64
    }

    /// How long `prefix` stays blocked, if it is (mode `block` only).
    pub fn blocked(&self, prefix: &str) -> Option<Duration> {
        if self.policy.mode != BreakerMode::Block {
            return None;
        }
        let now = self.clock.now();
        let window = self.prefixes.get(prefix)?;
        let trip = window.trip?;
        (trip.until > now).then(|| trip.until - now)
    }

    /// Counts a code sent to `prefix`; returns the trip this send caused, if any.
    pub fn sent(&self, prefix: &str) -> Option<Trip> {
        if self.policy.mode == BreakerMode::Off {
            return None;
        }
        let now = self.clock.now();
        let current = self.bucket_index(now);
        let mut window = self.prefixes.entry(prefix.to_owned()).or_default();
        if window.trip.is_some_and(|trip| trip.until <= now) {
            // The block is over: the prefix starts a fresh window.
            *window = Window::default();
        }
        window.bucket(current).sent += 1;
        if window.trip.is_some() {
            return None;
        }
        let (sent, verified) = window.totals(current);
        let collapsed = u64::from(verified) * 1000
            < u64::from(self.policy.min_conversion_permille) * u64::from(sent);
        if sent < self.policy.min_sent || !collapsed {
            return None;
        }
        let trip = Trip {
            mode: self.policy.mode,
            since: self.clock.wall(),
            until: now + self.policy.block,
            sent,
            verified,
        };
        window.trip = Some(trip);
        Some(trip)
    }

    /// Counts a verified code for `prefix`.
    pub fn verified(&self, prefix: &str) {
        if self.policy.mode == BreakerMode::Off {
            return;
        }
        let current = self.bucket_index(self.clock.now());
        if let Some(mut window) = self.prefixes.get_mut(prefix) {
            window.bucket(current).verified += 1;
        }
    }

    /// The trips in force, longest-running first.
    pub fn blocks(&self) -> Vec<Block> {
        let now = self.clock.now();
        let mut blocks: Vec<Block> = self
            .prefixes
            .iter()
            .filter_map(|entry| {
                let trip = entry.trip.filter(|trip| trip.until > now)?;
                Some(Block {
                    prefix: entry.key().clone(),
                    trip,
                    remaining: trip.until - now,
                })
            })
            .collect();
        blocks.sort_by(|a, b| {
            a.trip
                .since
                .cmp(&b.trip.since)
                .then(a.prefix.cmp(&b.prefix))
        });
        blocks
    }

    /// Lifts the trip of `prefix`; false when there was none in force.
    pub fn lift(&self, prefix: &str) -> bool {
        let now = self.clock.now();
        match self.prefixes.get_mut(prefix) {
            Some(mut window) if window.trip.is_some_and(|trip| trip.until > now) => {
                // A fresh window, or the next send would trip again at once.
                *window = Window::default();
                true
            }
            _ => false,
        }
    }

    /// Forgets prefixes with nothing in the window and no trip in force.
    pub fn sweep(&self) {
        let now = self.clock.now();
        let current = self.bucket_index(now);
        self.prefixes.retain(|_, window| {
            window.trip.is_some_and(|trip| trip.until > now) || window.totals(current).0 > 0
        });
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn breaker(clock: &Arc<ManualClock>, mode: BreakerMode) -> ConversionBreaker {
        ConversionBreaker::new(
            BreakerPolicy {
                mode,
                window: Duration::from_secs(600),
                min_sent: 10,
                min_conversion_permille: 300,
                block: Duration::from_secs(900),
            },
            clock.clone(),
        )
    }

    #[test]
    fn a_collapsed_ratio_at_volume_trips_and_blocks_until_lifted() {
        let clock = Arc::new(ManualClock::new());
        let breaker = breaker(&clock, BreakerMode::Block);
        // Healthy: 4 of every 5 verified.
        for n in 0..50 {
            assert_eq!(breaker.sent("44770"), None);
            if n % 5 != 0 {
                breaker.verified("44770");
            }
        }
        // Pumping: sent, never verified; the ratio over the window falls below 30 %.
        let trips: Vec<Trip> = (0..200).filter_map(|_| breaker.sent("88123")).collect();
        assert_eq!(trips.len(), 1);
        assert_eq!((trips[0].sent, trips[0].verified), (10, 0));
        assert_eq!(breaker.blocked("88123"), Some(Duration::from_secs(900)));
        assert_eq!(breaker.blocked("44770"), None);
        assert_eq!(breaker.blocks().len(), 1);
        clock.advance(Duration::from_secs(100));
        assert_eq!(breaker.blocks()[0].remaining, Duration::from_secs(800));
        assert!(breaker.lift("88123"));
        assert!(!breaker.lift("88123"));
        assert_eq!(breaker.blocked("88123"), None);
    }

    #[test]
    fn old_buckets_age_out_and_a_block_ends_on_time() {
        let clock = Arc::new(ManualClock::new());
        let breaker = breaker(&clock, BreakerMode::Block);
        for _ in 0..9 {
            assert_eq!(breaker.sent("31612"), None);
        }
        // The window moves on: the 9 sends age out, so 9 more do not trip either.
        clock.advance(Duration::from_secs(601));
        for _ in 0..9 {
            assert_eq!(breaker.sent("31612"), None);
        }
        assert!(breaker.sent("31612").is_some());
        clock.advance(Duration::from_secs(900));
        assert_eq!(breaker.blocked("31612"), None);
        assert_eq!(
            breaker.sent("31612"),
            None,
            "a fresh window after the block"
        );
        clock.advance(Duration::from_secs(1200));
        breaker.sweep();
        assert!(breaker.is_empty());
        let _ = clock.now();
    }

    #[test]
    fn shadow_records_trips_and_refuses_nothing() {
        let clock = Arc::new(ManualClock::new());
        let breaker = breaker(&clock, BreakerMode::Shadow);
        let trips = (0..20).filter_map(|_| breaker.sent("99")).count();
        assert_eq!(trips, 1);
        assert_eq!(breaker.blocked("99"), None);
        assert_eq!(breaker.blocks()[0].trip.mode, BreakerMode::Shadow);
    }
}
