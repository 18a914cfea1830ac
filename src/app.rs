//! Wiring: builds the shared state, starts and tracks every task, and stops them in order.
//!
//! Shutdown order: stop accepting HTTP and finish in-flight requests; then no message can be
//! queued any more, so the carrier drains its queue to the SMSC and unbinds; then background tasks
//! end; the metrics listener stops last so the drain stays observable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::carrier::{self, CarrierStop, Carriers};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::delivery::DeliveryTracker;
use crate::directory::Directory;
use crate::directory::sqlite::SqliteDirectory;
use crate::http::{self, AppState, Shared, extract::ApiClients};
use crate::notify;
use crate::otp::{CodeMac, Entropy, MemoryStore, OsEntropy, OtpService};
use crate::ratelimit::RateLimits;
use crate::signin::SignIn;

/// The sockets the daemon serves on, bound before `run` so tests can pass port 0 and read it back.
pub struct Listeners {
    pub http: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses named in `config`.
    pub async fn bind(config: &Config) -> anyhow::Result<Self> {
        let http = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let metrics = match config.server.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            ),
            None => None,
        };
        Ok(Self { http, metrics })
    }

    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }
}

/// Plain HTTP is for loopback: said at info there, warned anywhere else (keys, numbers and codes
/// cross the network in clear).
fn say_plain_http(addr: Option<SocketAddr>) {
    match addr {
        Some(addr) if addr.ip().is_loopback() => {
            info!(%addr, "the API is served over plain HTTP on loopback ([server.tls] for HTTPS)");
        }
        _ => warn!(
            addr = ?addr,
            "the API is served over plain HTTP beyond loopback: keys, numbers and codes cross \
             the network in clear; set [server.tls] or put a TLS proxy in front"
        ),
    }
}

/// Time and randomness, injected.
pub struct Deps {
    pub clock: SharedClock,
    pub entropy: Arc<dyn Entropy>,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
        }
    }
}

/// A started daemon: the router to the carriers (for readiness) and the task that finishes on
/// shutdown.
pub struct Running {
    pub carriers: Carriers,
    pub done: tokio::task::JoinHandle<()>,
}

/// Starts the daemon on `listeners`; it stops when `shutdown` is cancelled.
pub fn start(
    config: Config,
    listeners: Listeners,
    deps: Deps,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let metrics = crate::metrics::install();
    // The numbering plan is built here, not by the first request.
    crate::phone::warm_up();
    let tracker = TaskTracker::new();
    let mac = CodeMac::new(config.otp.secret.expose().as_bytes())?;
    let directory: Option<Arc<dyn Directory>> = match &config.directory {
        Some(settings) => Some(Arc::new(
            SqliteDirectory::open(&settings.path).with_context(|| {
                format!("cannot open the directory {}", settings.path.display())
            })?,
        )),
        None => None,
    };
    let signin = match (&directory, &config.signin) {
        (Some(directory), Some(settings)) => Some(SignIn::new(
            directory.clone(),
            mac.clone(),
            deps.entropy.clone(),
            deps.clock.clone(),
            config.otp.policy,
            config.otp.guessing,
            settings.clone(),
            config.otp.max_pending,
        )),
        _ => None,
    };
    let clock = deps.clock;
    let otp = OtpService::new(
        Arc::new(MemoryStore::new(config.otp.max_pending)),
        mac,
        deps.entropy,
        clock.clone(),
        config.otp.policy,
        config.otp.guessing,
    );
    let sms_budget = Arc::new(crate::sms_budget::SmsBudget::new(
        config.limits.sms_budget.clone(),
        clock.clone(),
    ));
    let pumping = Arc::new(crate::pumping::Pumping::new(
        config.pumping.clone(),
        clock.clone(),
    ));
    let sweeping_pumping = pumping.clone();
    // On the injected clock like every other limit, so tests move time instead of waiting.
    let limits = RateLimits::with_clock(
        config.limits.clone(),
        &config.clients,
        crate::clock::Governed::new(clock.clone()),
    );
    let stop = CarrierStop {
        drain: CancellationToken::new(),
        abort: CancellationToken::new(),
    };
    // Webhook POSTs still pending at the shutdown deadline are abandoned.
    let webhooks = crate::webhooks::spawn(&config.callbacks, &tracker, stop.abort.clone())
        .context("cannot build the HTTP client for callbacks")?;
    // Whether a message waits for a receipt is its carrier's registered_delivery, recorded when
    // the carrier takes it.
    let deliveries = DeliveryTracker::new(config.delivery.max_records, config.delivery.ttl)
        .with_receipt_wait(config.delivery.receipt_wait)
        .with_early_receipts(
            config.delivery.early_receipt_hold,
            config.delivery.early_receipts_max,
        )
        .with_webhooks(webhooks);
    let carriers = carrier::spawn(
        config.carriers.clone(),
        &config.routes,
        stop.clone(),
        deliveries.clone(),
        clock.clone(),
        &tracker,
    )
    .context("cannot set up TLS to the carrier")?;
    let state = AppState::new(Shared {
        otp: otp.clone(),
        limits: limits.clone(),
        carriers: carriers.clone(),
        clients: ApiClients::new(&config.clients),
        directory,
        signin: signin.clone(),
        admin_console: config.admin.console,
        sms_validity: config.delivery.sms_validity,
        messages: config.otp.messages.clone(),
        metrics,
        max_body_bytes: config.server.max_body_bytes,
        body_read_timeout: config.server.body_read_timeout,
        deliveries: deliveries.clone(),
        callbacks: config.callbacks.clone(),
        clock,
        sms_budget: sms_budget.clone(),
        pumping: pumping.clone(),
        client_ip: config.server.client_ip.clone(),
        metrics_require_key: config.server.metrics_require_key,
        verify_floor: config.otp.verify_floor,
    });

    spawn_every(&tracker, &shutdown, config.otp.sweep_interval, move || {
        otp.sweep();
        if let Some(signin) = &signin {
            signin.sweep();
        }
        sms_budget.sweep();
        sweeping_pumping.sweep();
    });
    // Forgets delivery records past their TTL and ends messages whose receipt is overdue.
    let sweeping = deliveries.clone();
    spawn_every(&tracker, &shutdown, config.otp.sweep_interval, move || {
        sweeping.sweep();
    });
    spawn_every(
        &tracker,
        &shutdown,
        config.limits_prune_interval,
        move || {
            limits.prune();
        },
    );

    let serve_limits = http::serve::ServeLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        write_timeout: config.server.write_timeout,
    };
    // The metrics server is not on `tracker`: it must outlive the drain, so it stops last.
    let metrics_stop = CancellationToken::new();
    let metrics_server = listeners.metrics.map(|listener| {
        let router = http::metrics_router(state.clone());
        let stop = metrics_stop.clone();
        tokio::spawn(async move {
            http::serve::serve(listener, router, serve_limits, None, stop).await;
        })
    });
    let router = http::router(state, metrics_server.is_none());
    let http_shutdown = shutdown.clone();
    let https = config.server.https.as_ref().map(|https| {
        info!(cert = %https.cert_file.display(), "the API is served over HTTPS");
        https.acceptor.clone()
    });
    if https.is_none() {
        say_plain_http(listeners.http.local_addr().ok());
    }
    let in_clear: Vec<&str> = config
        .clients
        .iter()
        .filter(|c| c.key_in_clear)
        .map(|c| c.name.as_str())
        .collect();
    if !in_clear.is_empty() {
        // Names only, never a key.
        warn!(
            clients = %in_clear.join(", "),
            "API keys configured in clear (keys, keys_file, sms_keys, key_file or key_env); \
             keep only their SHA-256 with key_sha256 (otpgate hash-key)"
        );
    }
    let http_server = tracker.spawn(async move {
        http::serve::serve(listeners.http, router, serve_limits, https, http_shutdown).await;
    });
    notify::ready();

    let shutdown_timeout = config.server.shutdown_timeout;
    let done = tokio::spawn(async move {
        shutdown.cancelled().await;
        notify::stopping();
        info!("shutting down: finishing HTTP requests");
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        if tokio::time::timeout_at(deadline, http_server)
            .await
            .is_err()
        {
            warn!("HTTP requests still running at the shutdown deadline");
        }
        info!("draining the SMS queue");
        stop.drain.cancel();
        tracker.close();
        // Every tracked task ends on its own once drained; past the deadline the carrier is told
        // to stop where it is.
        if tokio::time::timeout_at(deadline, tracker.wait())
            .await
            .is_err()
        {
            warn!("shutdown deadline reached; stopping the carrier with messages left");
            stop.abort.cancel();
            tracker.wait().await;
        }
        metrics_stop.cancel();
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        info!("stopped");
    });
    Ok(Running { carriers, done })
}

/// Runs `work` every `period` until `shutdown`.
fn spawn_every(
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    period: Duration,
    work: impl Fn() + Send + 'static,
) {
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => work(),
                _ = shutdown.cancelled() => break,
            }
        }
    });
}

/// Starts the daemon and waits until it has stopped.
pub async fn run(
    config: Config,
    listeners: Listeners,
    deps: Deps,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let running = start(config, listeners, deps, shutdown)?;
    running.done.await.context("shutdown task failed")
}
