//! Time as a dependency: the core asks a `Clock`, so tests move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A source of monotonic time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
    /// Wall-clock time, for what leaves the process with a date on it (a JWT's `iat`/`exp`).
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Shared handle to whichever clock the process runs on.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    wall_origin: SystemTime,
    offset_nanos: AtomicU64,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::with_wall(SystemTime::now())
    }

    /// A clock whose wall time starts at `wall` (in the past, to mint already-expired tokens).
    pub fn with_wall(wall: SystemTime) -> Self {
        Self {
            origin: Instant::now(),
            wall_origin: wall,
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }

    fn wall(&self) -> SystemTime {
        self.wall_origin + Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

/// The daemon's clock as governor's, so that keyed limiters run on injected time too: instants
/// are the time since the adapter was made.
#[derive(Clone)]
pub struct Governed {
    clock: SharedClock,
    origin: Instant,
}

impl Governed {
    pub fn new(clock: SharedClock) -> Self {
        let origin = clock.now();
        Self { clock, origin }
    }
}

impl governor::clock::Clock for Governed {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.clock.now().saturating_duration_since(self.origin)
    }
}

/// Whole days of 86,400 s: the window of the daily budgets.
pub const DAY: Duration = Duration::from_secs(86_400);

/// A random number for jitter (reconnect backoff, resend waits): from the OS RNG; its failure
/// only costs the jitter.
pub fn jitter_seed() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map(|()| u32::from_le_bytes(bytes))
        .unwrap_or(u32::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(301));
        assert_eq!(clock.now() - start, Duration::from_secs(301));
    }
}
