//! The `smsc-sim` binary: serve (default), or talk to a running simulator (`inbox`, `mo`,
//! `pcap`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use smsc_sim::{Config, cli};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Parser)]
#[command(
    version,
    about = "SMSC simulator: records SMPP messages and serves them to testers over HTTP"
)]
struct Args {
    /// Configuration file (for serving).
    #[arg(long, default_value = "config/smsc-sim.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the simulator (what happens without a subcommand).
    Serve,
    /// Print the newest messages of a running simulator.
    Inbox {
        /// Only messages to this number.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print the API's JSON instead of one line per message.
        #[arg(long)]
        json: bool,
        /// The simulator's tester API.
        #[arg(long, default_value = "http://127.0.0.1:8025")]
        url: String,
    },
    /// Save the SMPP traffic of a running simulator as a pcap file (Wireshark, tshark).
    Pcap {
        /// Only this session (ids from GET /api/sessions); default: every session kept.
        #[arg(long)]
        session: Option<u64>,
        /// The file to write.
        #[arg(long, short)]
        output: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8025")]
        url: String,
    },
    /// Make a phone send a message (MO) to a bound ESME.
    Mo {
        /// The phone, e.g. +31612345678.
        #[arg(long)]
        from: String,
        /// The ESME's address, e.g. a short code or OTPGATE.
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        /// Deliver through this account's sessions (default: any bound receiver).
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value = "http://127.0.0.1:8025")]
        url: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match args.command.unwrap_or(Command::Serve) {
        Command::Serve => return serve_main(&runtime, &args.config),
        Command::Inbox {
            to,
            limit,
            json,
            url,
        } => runtime.block_on(cli::inbox(&url, to.as_deref(), limit, json)),
        Command::Pcap {
            session,
            output,
            url,
        } => runtime.block_on(cli::pcap(&url, session, &output)),
        Command::Mo {
            from,
            to,
            text,
            account,
            url,
        } => runtime
            .block_on(cli::mo(&url, &from, &to, &text, account.as_deref()))
            .map(|id| format!("MO accepted as message {id}")),
    };
    match outcome {
        Ok(output) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve_main(runtime: &tokio::runtime::Runtime, config: &std::path::Path) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::load(config) {
        Ok(config) => config,
        Err(err) => {
            error!("{err}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let smpp = TcpListener::bind(config.smpp.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.smpp.listen))?;
    let http = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let tls = match &config.tls {
        None => None,
        Some(tls) => {
            let acceptor = smsc_sim::tls::acceptor(&tls.cert, &tls.key)?;
            let listener = TcpListener::bind(tls.listen)
                .await
                .with_context(|| format!("cannot listen on {}", tls.listen))?;
            info!(addr = %listener.local_addr()?, "smpp tls listening");
            Some((listener, acceptor))
        }
    };
    info!(addr = %smpp.local_addr()?, "smpp listening");
    info!(addr = %http.local_addr()?, "http listening");
    let shutdown = CancellationToken::new();
    let running = smsc_sim::start(
        config,
        smsc_sim::Listeners { smpp, tls, http },
        shutdown.clone(),
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    wait_for_signal().await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // A graceful SMSC asks its ESMEs to unbind before it goes; give them a moment to answer.
    let unbinding = running.shared.registry.unbind_sessions(None);
    if unbinding > 0 {
        info!(sessions = unbinding, "unbinding sessions");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while !running.shared.registry.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    shutdown.cancel();
    running.done.await.context("shutdown failed")
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
            }
        }
        Err(err) => {
            error!(%err, "cannot listen for SIGTERM; waiting for SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
