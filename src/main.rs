//! The `identity-posture-exporter` command line (README "Commands"): `serve` (default), `collect`,
//! `check-config`, `generate-demo`. Parses flags, sets up logging, and hands off to the
//! library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use identity_posture_exporter::config::{parse_listen, Config};
use identity_posture_exporter::demo::{self, DemoOptions};
use identity_posture_exporter::poller::{self, Clock};
use identity_posture_exporter::sources::{self, Deps};
use identity_posture_exporter::state::{AppState, BUILD};
use identity_posture_exporter::{collect, metrics, server};

#[derive(Parser, Debug)]
#[command(
    name = "identity-posture-exporter",
    about = "Prometheus exporter for identity posture: MFA, dormant accounts, credential rotation, privilege",
    version = version_string(),
)]
struct Cli {
    /// Configuration file (TOML); `IPE_`-prefixed environment variables override it.
    #[arg(long, short = 'c', global = true, env = "IPE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen`.
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or filter (e.g. `info`, `debug`, `identity_posture_exporter=debug`); `RUST_LOG` also works.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

const fn version_string() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (revision ",
        env!("IPE_GIT_REVISION"),
        ")"
    )
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
enum CollectFormat {
    Prometheus,
    Json,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq)]
enum DemoFormat {
    Json,
    Ndjson,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Poll every source once and print the metrics (or findings) to stdout; exit 1 if any source failed.
    Collect {
        #[arg(long, value_enum, default_value_t = CollectFormat::Prometheus)]
        format: CollectFormat,
    },
    /// Validate the configuration and print every problem with its key path.
    CheckConfig,
    /// Write a synthetic organisation in the file-source format to stdout.
    GenerateDemo {
        #[arg(long, default_value_t = 500)]
        accounts: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = DemoFormat::Json)]
        format: DemoFormat,
        /// The instant the organisation is generated relative to (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
}

fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = match &cli.log_level {
        Some(l) => EnvFilter::try_new(l).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn load_config(cli: &Cli) -> Result<Config, String> {
    let path = cli
        .config
        .as_ref()
        .ok_or("--config FILE is required (or IPE_CONFIG)")?;
    let mut cfg = sources::load_config(path).map_err(|e| e.to_string())?;
    if let Some(l) = &cli.listen {
        cfg.server.listen = parse_listen(l).map_err(|e| format!("--listen: {e}"))?;
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::GenerateDemo {
            accounts,
            seed,
            format,
            now,
        }) => {
            let now = match now {
                Some(s) => match identity_posture_exporter::model::parse_ts(s) {
                    Ok(t) => t,
                    Err(_) => {
                        eprintln!("--now: invalid RFC 3339 timestamp {s:?}");
                        return ExitCode::from(2);
                    }
                },
                None => time::OffsetDateTime::now_utc(),
            };
            let (a, t) = demo::generate(&DemoOptions {
                accounts: *accounts,
                seed: *seed,
                now,
            });
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            if let Err(e) =
                demo::write(&a, &t, *format == DemoFormat::Ndjson, &mut w).and_then(|_| w.flush())
            {
                eprintln!("generate-demo: {e}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Some(Command::CheckConfig) => match load_config(&cli).and_then(|cfg| {
            // Build every source too (no I/O): keys that only using them can judge, such as
            // a private key that must sign, are checked the way `serve` would.
            poller::build_all(&cfg.sources, &Deps::default())?;
            server::web_config(&cfg.server)?;
            Ok(cfg)
        }) {
            Ok(cfg) => {
                println!(
                    "configuration OK: {} source(s): {}",
                    cfg.sources.len(),
                    cfg.sources
                        .iter()
                        .map(|s| format!("{} ({})", s.name, s.provider()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Collect { format }) => {
            let Some(cfg) = start(&cli) else {
                return ExitCode::from(2);
            };
            let rt = runtime();
            let clock = poller::system_clock();
            let json = *format == CollectFormat::Json;
            let (out, ok) = rt.block_on(collect::run(&cfg, &clock, json));
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            if lock.write_all(&out).and_then(|_| lock.flush()).is_err() {
                return ExitCode::FAILURE;
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None | Some(Command::Serve) => {
            let Some(cfg) = start(&cli) else {
                return ExitCode::from(2);
            };
            let rt = runtime();
            match rt.block_on(serve(cfg, poller::system_clock())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Logging, then the configuration; `None` (after printing why) when it is invalid.
fn start(cli: &Cli) -> Option<Config> {
    init_logging(cli);
    load_config(cli).map_err(|e| eprintln!("{e}")).ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn serve(cfg: Config, clock: Clock) -> Result<(), String> {
    let app_state = Arc::new(AppState::new(&cfg.sources));
    metrics::refresh(&app_state);
    // Fail on a bad web config before any poll starts.
    server::web_config(&cfg.server)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let handles = poller::spawn_all(&cfg.sources, &app_state, &clock, &rx)?;
    tracing::info!(
        listen = %cfg.server.listen,
        version = BUILD.version,
        revision = BUILD.revision,
        sources = cfg.sources.len(),
        "identity-posture-exporter started"
    );
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight responses");
        let _ = tx.send(true);
    };
    let result = server::run(app_state, &cfg.server, shutdown).await;
    for h in handles {
        let _ = h.await;
    }
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
