//! Bound sessions by account: where receipts and MO messages go, and what a tester can drop.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rusmpp::pdus::DeliverSm;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BindType;
use crate::receipt::Job;

/// A PDU for a session to send to its ESME.
#[derive(Debug)]
pub enum Outbound {
    DeliverSm(Box<DeliverSm>),
    /// A delivery receipt, kept by the session until the ESME acknowledges it.
    Receipt(Box<Job>),
    /// Ask the ESME to unbind; the session closes on its unbind_resp (or a timeout).
    Unbind,
}

/// How the rest of the simulator reaches one bound session.
#[derive(Clone)]
pub struct SessionHandle {
    pub id: u64,
    pub account: String,
    pub bind_type: BindType,
    pub outbound: mpsc::Sender<Outbound>,
    pub kill: CancellationToken,
}

#[derive(Default)]
pub struct Registry {
    sessions: Mutex<Vec<SessionHandle>>,
    next_id: AtomicU64,
    round_robin: AtomicUsize,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SessionHandle>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers `handle` unless its account already has `max_binds` sessions.
    pub fn register(&self, handle: SessionHandle, max_binds: usize) -> bool {
        let mut sessions = self.lock();
        if sessions
            .iter()
            .filter(|s| s.account == handle.account)
            .count()
            >= max_binds
        {
            return false;
        }
        sessions.push(handle);
        true
    }

    pub fn unregister(&self, id: u64) {
        self.lock().retain(|s| s.id != id);
    }

    /// A session of `account` (any account if None) that may receive deliver_sm, in turn.
    pub fn receiver(&self, account: Option<&str>) -> Option<SessionHandle> {
        let sessions = self.lock();
        let eligible = |s: &&SessionHandle| {
            s.bind_type.may_receive() && account.is_none_or(|a| s.account == a)
        };
        let count = sessions.iter().filter(eligible).count();
        if count == 0 {
            return None;
        }
        let turn = self.round_robin.fetch_add(1, Ordering::Relaxed) % count;
        sessions.iter().filter(eligible).nth(turn).cloned()
    }

    /// Closes every session of `account` (all if None) now; returns how many.
    pub fn drop_sessions(&self, account: Option<&str>) -> usize {
        let sessions = self.lock();
        let mut dropped = 0;
        for session in sessions
            .iter()
            .filter(|s| account.is_none_or(|a| s.account == a))
        {
            session.kill.cancel();
            dropped += 1;
        }
        dropped
    }

    /// Sends unbind to every session of `account` (all if None); returns how many.
    pub fn unbind_sessions(&self, account: Option<&str>) -> usize {
        let sessions = self.lock();
        sessions
            .iter()
            .filter(|s| account.is_none_or(|a| s.account == a))
            .filter(|s| s.outbound.try_send(Outbound::Unbind).is_ok())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Bound sessions by bind type.
    pub fn counts(&self) -> [(BindType, usize); 3] {
        let sessions = self.lock();
        [
            BindType::Transmitter,
            BindType::Receiver,
            BindType::Transceiver,
        ]
        .map(|kind| {
            (
                kind,
                sessions.iter().filter(|s| s.bind_type == kind).count(),
            )
        })
    }
}
