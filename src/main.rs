//! The `otpgate` daemon: command line, logging, config, signals.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use otpgate::app::{self, Deps, Listeners};
use otpgate::config::Config;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

#[derive(Parser)]
#[command(version, about = "SMS one-time-code daemon")]
struct Args {
    /// Configuration file to run with.
    #[arg(long, default_value = "/etc/otpgate/otpgate.toml")]
    config: PathBuf,
    /// Validate this configuration file and exit (0 valid, 2 invalid).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the key_sha256 of an API key read from standard input (for [[api.clients]]).
    HashKey,
    /// The sign-in directory of `[directory]` in the configuration.
    #[command(subcommand)]
    Directory(DirectoryCommand),
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import users, phone methods, groups and sign-in registrations from CSV (columns:
    /// userPrincipalName, displayName, phoneNumber, phoneType, groups, smsSignIn). Every good row
    /// is imported; each bad row is reported with its line. Safe to run twice. Exit 0 when every
    /// row was good, 1 when some were bad, 2 when nothing could be imported.
    Import {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
    },
    /// Write a tenant's users as CSV in the import's columns (to standard output by default).
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::HashKey) => return hash_key(),
        Some(Command::Directory(command)) => return directory(&args.config, command),
        None => {}
    }
    if let Some(path) = args.check_config {
        return match Config::load(&path) {
            Ok(_) => {
                println!("{}: configuration is valid", path.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(2)
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(err) => {
            error!("{err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
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
    let listeners = Listeners::bind(&config).await?;
    info!(addr = %listeners.http_addr()?, "http listening");
    if let Some(metrics) = &listeners.metrics {
        info!(addr = %metrics.local_addr()?, "metrics listening");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    app::run(config, listeners, Deps::default(), shutdown).await
}

/// Cancels `shutdown` on SIGTERM or SIGINT.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            error!(%err, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
    }
    shutdown.cancel();
}

fn hash_key() -> ExitCode {
    let mut key = String::new();
    if let Err(err) = std::io::stdin().read_line(&mut key) {
        eprintln!("error: cannot read the key: {err}");
        return ExitCode::from(2);
    }
    let key = key.trim();
    if key.len() < 8 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        eprintln!("error: a key is at least 8 printable ASCII characters without spaces");
        return ExitCode::from(2);
    }
    println!(
        "{}",
        otpgate::config::clients::hex(&otpgate::config::clients::key_sha256(key))
    );
    ExitCode::SUCCESS
}

fn directory(config: &std::path::Path, command: DirectoryCommand) -> ExitCode {
    use otpgate::directory::{Actor, import, sqlite::SqliteDirectory};
    let settings = match Config::load(config) {
        Ok(config) => config.directory,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(settings) = settings else {
        eprintln!("error: {}: no [directory] is configured", config.display());
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let directory = match SqliteDirectory::open(&settings.path) {
        Ok(directory) => directory,
        Err(err) => {
            eprintln!("error: {}: {err}", settings.path.display());
            return ExitCode::from(2);
        }
    };
    match command {
        DirectoryCommand::Import { tenant, file } => {
            let input = match std::fs::File::open(&file) {
                Ok(input) => std::io::BufReader::new(input),
                Err(err) => {
                    eprintln!("error: cannot read {}: {err}", file.display());
                    return ExitCode::from(2);
                }
            };
            let started = std::time::Instant::now();
            let outcome = runtime.block_on(import::import(
                &directory,
                &Actor("cli".to_owned()),
                &tenant,
                input,
                |so_far| {
                    eprintln!(
                        "{} rows read: {} created, {} updated, {} bad",
                        so_far.rows,
                        so_far.created,
                        so_far.updated,
                        so_far.bad.len()
                    )
                },
            ));
            match outcome {
                Ok(summary) => {
                    for bad in &summary.bad {
                        eprintln!("{}:{}: {}", file.display(), bad.line, bad.reason);
                    }
                    println!(
                        "imported {} of {} rows into {tenant} in {:.1} s: {} users created, {} updated, {} unchanged; {} bad rows",
                        summary.rows - summary.bad.len() as u64,
                        summary.rows,
                        started.elapsed().as_secs_f64(),
                        summary.created,
                        summary.updated,
                        summary.unchanged,
                        summary.bad.len()
                    );
                    if summary.bad.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(2)
                }
            }
        }
        DirectoryCommand::Export { tenant, output } => {
            let outcome = match &output {
                Some(path) => match std::fs::File::create(path) {
                    Ok(file) => runtime.block_on(import::export(&directory, &tenant, file)),
                    Err(err) => {
                        eprintln!("error: cannot write {}: {err}", path.display());
                        return ExitCode::from(2);
                    }
                },
                None => runtime.block_on(import::export(&directory, &tenant, std::io::stdout())),
            };
            match outcome {
                Ok(users) => {
                    eprintln!("exported {users} users of {tenant}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
