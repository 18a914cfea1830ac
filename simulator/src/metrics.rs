//! The simulator's own Prometheus metrics, rendered by hand from counters it keeps. (The daemon's
//! exporter installs a process-wide recorder; the simulator must not depend on it, and tests run
//! both in one process.)

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry::Registry;
use crate::store::MessageStore;
use smpp_wire::receipt::ReceiptState;

pub const SUBMIT_SM_TOTAL: &str = "smsc_sim_submit_sm_total";
pub const RECEIPTS_SENT_TOTAL: &str = "smsc_sim_receipts_sent_total";
pub const RECEIPTS_DROPPED_TOTAL: &str = "smsc_sim_receipts_dropped_total";
pub const SESSIONS: &str = "smsc_sim_sessions";
pub const MESSAGES_STORED: &str = "smsc_sim_messages_stored";
pub const MESSAGES_EVICTED_TOTAL: &str = "smsc_sim_messages_evicted_total";
pub const GENERIC_NACKS_TOTAL: &str = "smsc_sim_generic_nacks_total";
pub const MO_SENT_TOTAL: &str = "smsc_sim_mo_sent_total";

/// Every stat, in `ReceiptState` discriminant order.
const STATS: [ReceiptState; 8] = ReceiptState::ALL;

#[derive(Default)]
pub struct Metrics {
    /// (account, command_status name) -> count.
    submits: Mutex<BTreeMap<(String, String), u64>>,
    /// Indexed by `ReceiptState as usize`.
    receipts: [AtomicU64; STATS.len()],
    receipts_dropped: AtomicU64,
    generic_nacks: AtomicU64,
    mo_sent: AtomicU64,
}

impl Metrics {
    pub fn submit(&self, account: &str, status: &str) {
        let mut submits = self.submits.lock().unwrap_or_else(|p| p.into_inner());
        // Look up before allocating: the key almost always exists already.
        if let Some(count) = submits
            .iter_mut()
            .find(|((a, s), _)| a == account && s == status)
            .map(|(_, c)| c)
        {
            *count += 1;
        } else {
            submits.insert((account.to_owned(), status.to_owned()), 1);
        }
    }

    pub fn receipt_sent(&self, stat: ReceiptState) {
        self.receipts[stat as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn receipt_dropped(&self) {
        self.receipts_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn generic_nack(&self) {
        self.generic_nacks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn mo_sent(&self) {
        self.mo_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, registry: &Registry, store: &MessageStore) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let submits = self
            .submits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        family(
            SUBMIT_SM_TOTAL,
            "counter",
            "submit_sm answered, by account and command_status.",
            submits
                .into_iter()
                .map(|((account, status), n)| {
                    (
                        format!("{{account=\"{}\",status=\"{status}\"}}", escape(&account)),
                        n,
                    )
                })
                .collect(),
        );
        family(
            RECEIPTS_SENT_TOTAL,
            "counter",
            "Delivery receipts handed to a session, by stat.",
            STATS
                .iter()
                .map(|&stat| (stat, self.receipts[stat as usize].load(Ordering::Relaxed)))
                .filter(|&(_, n)| n > 0)
                .map(|(stat, n)| (format!("{{stat=\"{}\"}}", stat.stat()), n))
                .collect(),
        );
        family(
            RECEIPTS_DROPPED_TOTAL,
            "counter",
            "Receipts given up after a minute without a bound receiver.",
            vec![(String::new(), self.receipts_dropped.load(Ordering::Relaxed))],
        );
        family(
            SESSIONS,
            "gauge",
            "Bound sessions by bind type.",
            registry
                .counts()
                .into_iter()
                .map(|(kind, n)| (format!("{{bind_type=\"{}\"}}", kind.as_str()), n as u64))
                .collect(),
        );
        family(
            MESSAGES_STORED,
            "gauge",
            "Messages in the store.",
            vec![(String::new(), store.len() as u64)],
        );
        family(
            MESSAGES_EVICTED_TOTAL,
            "counter",
            "Messages evicted from the full store.",
            vec![(String::new(), store.evicted())],
        );
        family(
            GENERIC_NACKS_TOTAL,
            "counter",
            "generic_nack sent for malformed or unknown PDUs.",
            vec![(String::new(), self.generic_nacks.load(Ordering::Relaxed))],
        );
        family(
            MO_SENT_TOTAL,
            "counter",
            "MO messages handed to a session.",
            vec![(String::new(), self.mo_sent.load(Ordering::Relaxed))],
        );
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
