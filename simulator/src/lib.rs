//! smsc-sim: an SMSC simulator for testing SMPP clients. It accepts binds, records every short
//! message, and lets a tester read what each "phone" received over HTTP.
//!
//! - `smpp`: accept loop and sessions (where PDUs are answered, `smpp::handle`);
//! - `outcome`: what happens to each message; `receipt` and `scheduler`: delivery receipts;
//! - `faults`: faults scripted at runtime; `registry`: bound sessions; `mo`: mobile-originated;
//! - `store`: the bounded message store; `otp`: code extraction; `text`: data_coding decoding;
//! - `concat`: concatenated messages; `capture`: SMPP traffic kept for the pcap export;
//! - `http`: the tester API, `cli` its command-line side; `metrics` and `stats`: counters;
//! - `config`: the TOML file; `clock`: time formats; `tls`: the TLS acceptor.
//!
//! Dependencies point one way: `config` reads `outcome`, `faults` and `capture` types, never
//! the reverse; `receipt` (with the scheduler's `Job`) sits below `registry` and `scheduler`.

pub mod capture;
pub mod cli;
pub mod clock;
pub mod concat;
pub mod config;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod mo;
pub mod otp;
pub mod outcome;
pub mod receipt;
pub mod registry;
pub mod scheduler;
pub mod smpp;
pub mod stats;
pub mod store;
pub mod text;
pub mod tls;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use faults::Faults;
use metrics::Metrics;
use outcome::Outcomes;
use registry::Registry;
use stats::{Stats, StatsSnapshot};
use store::MessageStore;
use tokio::sync::mpsc;

/// State shared by the SMPP sessions, the receipt scheduler and the HTTP API.
pub struct Shared {
    pub config: Config,
    pub store: MessageStore,
    pub stats: Stats,
    pub metrics: Metrics,
    pub faults: Faults,
    pub outcomes: Outcomes,
    pub registry: Registry,
    pub receipts: mpsc::UnboundedSender<receipt::Job>,
    pub pending_receipts: scheduler::Pending,
    pub reassembly: concat::Reassembly,
    pub captures: capture::Captures,
}

impl Shared {
    pub fn snapshot(&self) -> StatsSnapshot {
        self.stats.snapshot(self.store.len(), self.store.evicted())
    }
}

/// A running simulator.
pub struct Running {
    pub shared: Arc<Shared>,
    pub done: tokio::task::JoinHandle<()>,
}

/// The sockets the simulator serves on, bound by the caller (tests pass port 0).
pub struct Listeners {
    pub smpp: TcpListener,
    /// SMPP over TLS, with its acceptor (see [`tls::acceptor`]).
    pub tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    pub http: TcpListener,
}

/// Starts serving SMPP (and SMPP over TLS) and the tester API until `shutdown`. Cancelling drops
/// every SMPP connection at once, as a crashed SMSC would.
pub fn start(config: Config, listeners: Listeners, shutdown: CancellationToken) -> Running {
    let Listeners { smpp, tls, http } = listeners;
    let (receipts, jobs) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        store: MessageStore::new(config.store.capacity),
        stats: Stats::default(),
        metrics: Metrics::default(),
        faults: Faults::new(config.faults.clone()),
        outcomes: Outcomes::new(
            &config.rules,
            &config.receipts.outcomes,
            config.receipts.delay_ms,
            config.receipts.delay_ms_max,
        ),
        registry: Registry::default(),
        receipts,
        pending_receipts: scheduler::Pending::new(config.receipts.max_pending),
        // Parts of at most 10,000 messages wait up to 10 minutes for their siblings.
        reassembly: concat::Reassembly::new(10_000, std::time::Duration::from_secs(600)),
        captures: capture::Captures::new(
            config.capture.max_bytes_per_session,
            config.capture.max_sessions,
        ),
        config,
    });
    let tracker = TaskTracker::new();
    tracker.spawn(scheduler::run(shared.clone(), jobs, shutdown.clone()));
    tracker.spawn(smpp::serve(
        smpp,
        shared.clone(),
        shutdown.clone(),
        tracker.clone(),
        None,
    ));
    if let Some((listener, acceptor)) = tls {
        tracker.spawn(smpp::serve(
            listener,
            shared.clone(),
            shutdown.clone(),
            tracker.clone(),
            Some(acceptor),
        ));
    }
    let router = http::router(shared.clone());
    let http_shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(err) = axum::serve(http, router)
            .with_graceful_shutdown(http_shutdown.cancelled_owned())
            .await
        {
            tracing::warn!(%err, "HTTP server ended");
        }
    });
    let done = tokio::spawn(async move {
        shutdown.cancelled().await;
        tracker.close();
        tracker.wait().await;
    });
    Running { shared, done }
}
