//! Counters a tester can read over HTTP.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::Serialize;

#[derive(Default)]
pub struct Stats {
    pub binds: AtomicU64,
    pub bind_failures: AtomicU64,
    pub unbinds: AtomicU64,
    pub submits: AtomicU64,
    pub generic_nacks: AtomicU64,
    pub sessions: AtomicI64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub binds: u64,
    pub bind_failures: u64,
    pub unbinds: u64,
    pub submits: u64,
    pub generic_nacks: u64,
    pub sessions: i64,
    pub messages_stored: usize,
    pub messages_evicted: u64,
}

impl Stats {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, messages_stored: usize, messages_evicted: u64) -> StatsSnapshot {
        StatsSnapshot {
            binds: self.binds.load(Ordering::Relaxed),
            bind_failures: self.bind_failures.load(Ordering::Relaxed),
            unbinds: self.unbinds.load(Ordering::Relaxed),
            submits: self.submits.load(Ordering::Relaxed),
            generic_nacks: self.generic_nacks.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            messages_stored,
            messages_evicted,
        }
    }
}
