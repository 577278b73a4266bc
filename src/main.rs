//! The `identity-posture-exporter` command line (README "Commands"): `serve` (default), `collect`,
//! `check-config`, `generate-demo`, `hash-password`. Parses flags (each subcommand has only
//! the flags it uses), sets up logging, and hands off to the library.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use identity_posture_exporter::config::Config;
use identity_posture_exporter::daemon::{self, Daemon, Overrides};
use identity_posture_exporter::demo::{self, DemoOptions};
use identity_posture_exporter::poller::{self, Clock};
use identity_posture_exporter::server::{self, Reloader};
use identity_posture_exporter::sources::Deps;
use identity_posture_exporter::state::BUILD;
use identity_posture_exporter::store::Store;
use identity_posture_exporter::{collect, model};

/// mimalloc instead of glibc's malloc: parsing a large organisation is one thread making
/// millions of small allocations that another thread frees, where glibc's arenas contend on a
/// lock; mimalloc frees across threads without one (BENCHMARKS.md, `serve` on large
/// organisations).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults trade memory for speed: arenas committed up front, freed pages kept
/// for a while before they go back to the system, and transparent huge pages where the
/// kernel gives them (a 2 MiB page counts whole in RSS however little of it is used). A
/// daemon that builds a new report while the old one is served wants freed pages back at
/// once, so its peak is two reports and not more. The crate is also built with `no_thp`
/// (mimalloc then never asks for huge pages), and the process opts out of them, which also
/// covers kernels set to give them unasked (`enabled = always`). Option numbers: mimalloc
/// 3's `mi_option_e` (include/mimalloc.h); a unit test checks them against mimalloc's names.
#[cfg(feature = "mimalloc")]
fn configure_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    const ALLOW_THP: libmimalloc_sys::mi_option_t = 43;
    // SAFETY: a version query and plain option setters, before any thread is started.
    unsafe {
        // The numbers are mimalloc 3's (the crate's default; `v2` numbers them otherwise).
        if libmimalloc_sys::mi_version() / 10000 == 3 {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
            libmimalloc_sys::mi_option_set(ALLOW_THP, 0);
        }
    }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "identity-posture-exporter",
    about = "Prometheus exporter for identity posture: MFA, dormant accounts, credential rotation, privilege",
    version = version_string(),
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    /// `serve`'s flags, for the default command.
    #[command(flatten)]
    serve: ServeArgs,
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

#[derive(Args, Debug, Clone)]
struct ConfigArg {
    /// Configuration file (TOML); `IPE_`-prefixed environment variables override it.
    #[arg(long, short = 'c', env = "IPE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Run only this configured source (repeatable; `IPE_SOURCES` takes a comma-separated
    /// list): one configuration shared by several instances, each polling its own sources.
    #[arg(
        long = "source",
        env = "IPE_SOURCES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    sources: Vec<String>,
}

#[derive(Args, Debug, Clone)]
struct LogArgs {
    /// Log format (logs go to stderr; colours only when stderr is a terminal).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log level or filter (e.g. `info`, `debug`, `identity_posture_exporter=debug`); `RUST_LOG` also works.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct WebArgs {
    /// Listen address, overriding `server.listen` (alias `--web.listen-address`, as in exporter-toolkit).
    #[arg(long, visible_alias = "web.listen-address", value_name = "ADDR")]
    listen: Option<String>,
    /// exporter-toolkit web config (TLS, basic auth), overriding `server.web_config_file`.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Debug, Clone)]
struct CollectArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// What to print: the metrics in the Prometheus text format, or the findings as JSON (docs/api.md).
    #[arg(long, value_enum, default_value_t = CollectFormat::Prometheus)]
    format: CollectFormat,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Args, Debug, Clone)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    web: WebArgs,
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
    Serve(ServeArgs),
    /// Poll every source once and print the metrics (or findings) to stdout; exit 1 if any source failed.
    Collect(CollectArgs),
    /// Validate everything `serve` would load (configuration, web config, TLS files, bcrypt hashes, policy) and print every problem; exit 1 on any.
    CheckConfig(CheckArgs),
    /// Write a synthetic organisation in the file-source format to stdout.
    GenerateDemo {
        /// Number of accounts.
        #[arg(long, default_value_t = 500)]
        accounts: usize,
        /// Random seed: the same seed and --now give the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output form: one JSON document, or one account per line.
        #[arg(long, value_enum, default_value_t = DemoFormat::Json)]
        format: DemoFormat,
        /// The instant the organisation is generated relative to (RFC 3339); default: now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Also write a sign-in event stream over these accounts to FILE (NDJSON, the file
        /// source's `events_path` format): ordinary sign-ins and one case of every attack
        /// the activity detectors know. The accounts still go to stdout, unchanged.
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
    },
    /// Read a password from stdin and print its bcrypt hash for `basic_auth_users` in the web config.
    HashPassword {
        /// bcrypt cost (4-31); each step doubles the time to verify.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
}

fn init_logging(log: &LogArgs) {
    use tracing_subscriber::EnvFilter;
    let filter = match &log.log_level {
        Some(l) => EnvFilter::try_new(l).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(identity_posture_exporter::sources::quiet_credential_logs(
            filter,
        ))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match log.log_format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn config_path(c: &ConfigArg) -> Result<PathBuf, String> {
    c.config
        .clone()
        .ok_or_else(|| "--config FILE is required (or IPE_CONFIG)".to_string())
}

fn overrides(c: &ConfigArg, w: &WebArgs) -> Overrides {
    Overrides {
        listen: w.listen.clone(),
        web_config_file: w.web_config_file.clone(),
        sources: c.sources.clone(),
    }
}

fn main() -> ExitCode {
    #[cfg(feature = "mimalloc")]
    configure_allocator();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::GenerateDemo {
            accounts,
            seed,
            format,
            now,
            events,
        }) => generate_demo(accounts, seed, format, now, events),
        Some(Command::HashPassword { cost }) => hash_password(cost),
        Some(Command::CheckConfig(a)) => check_config(&a),
        Some(Command::Collect(a)) => {
            init_logging(&a.log);
            let cfg = match config_path(&a.config).and_then(|p| {
                let o = Overrides {
                    sources: a.config.sources.clone(),
                    ..Overrides::default()
                };
                daemon::load_config(&p, &o)
            }) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let rt = runtime();
            let clock = poller::system_clock();
            let stdout = std::io::stdout();
            let ok = if a.format == CollectFormat::Json {
                // Findings stream to stdout as they are read back, never held whole.
                match rt.block_on(collect::run_json(&cfg, &clock, &mut stdout.lock())) {
                    Ok(ok) => ok,
                    Err(e) => {
                        eprintln!("collect: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                let (out, ok) = rt.block_on(collect::run(&cfg, &clock));
                let mut lock = stdout.lock();
                if lock.write_all(&out).and_then(|_| lock.flush()).is_err() {
                    return ExitCode::FAILURE;
                }
                ok
            };
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Some(Command::Serve(a)) => serve_main(&a),
        None => serve_main(&cli.serve),
    }
}

fn generate_demo(
    accounts: usize,
    seed: u64,
    format: DemoFormat,
    now: Option<String>,
    events: Option<PathBuf>,
) -> ExitCode {
    let now = match now {
        Some(s) => match model::parse_ts(&s) {
            Ok(t) => t,
            Err(_) => {
                eprintln!("--now: invalid RFC 3339 timestamp {s:?}");
                return ExitCode::from(2);
            }
        },
        None => time::OffsetDateTime::now_utc(),
    };
    let opts = DemoOptions {
        accounts,
        seed,
        now,
    };
    let (a, t) = demo::generate(&opts);
    if let Some(path) = events {
        let ev = demo::generate_events(&a, &opts);
        let written = std::fs::File::create(&path).and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            demo::write_events(&ev, &mut w)?;
            w.flush()
        });
        if let Err(e) = written {
            eprintln!("generate-demo: --events {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    if let Err(e) =
        demo::write(&a, &t, format == DemoFormat::Ndjson, &mut w).and_then(|_| w.flush())
    {
        eprintln!("generate-demo: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Reads one line from stdin (without echo on a terminal) and prints its bcrypt hash.
fn hash_password(cost: u32) -> ExitCode {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("Password: ");
        let _ = std::io::stderr().flush();
    }
    let echo = tty.then(no_echo);
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let Some(Some(saved)) = echo {
        restore_echo(&saved);
        eprintln!();
    }
    if let Err(e) = read {
        eprintln!("hash-password: cannot read the password: {e}");
        return ExitCode::FAILURE;
    }
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        eprintln!("hash-password: empty password");
        return ExitCode::FAILURE;
    }
    match bcrypt::hash(pw, cost) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hash-password: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Turns terminal echo off on stdin; returns the settings to restore.
fn no_echo() -> Option<libc::termios> {
    // SAFETY: tcgetattr/tcsetattr on fd 0 with a zeroed termios we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        (libc::tcsetattr(0, libc::TCSANOW, &t) == 0).then_some(saved)
    }
}

fn restore_echo(saved: &libc::termios) {
    // SAFETY: restores settings read by tcgetattr on the same fd.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, saved);
    }
}

/// Everything `serve` would load, each problem printed; exit 1 on any.
fn check_config(a: &CheckArgs) -> ExitCode {
    let cfg = match config_path(&a.config)
        .and_then(|p| daemon::load_config(&p, &overrides(&a.config, &a.web)))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    // What `serve` only warns about (a file source's file not written yet) fails here.
    let mut problems = cfg.warnings.clone();
    if let Err(e) = server::web_config(&cfg.server) {
        problems.push(format!("server.web_config_file: {e}"));
    }
    // Build every source too (no I/O): keys that only using them can judge, such as a
    // private key that must sign, are checked the way `serve` would.
    if let Err(e) = poller::build_all(&cfg.sources, &Deps::default()) {
        problems.extend(e.lines().map(str::to_string));
    }
    if let Some(dir) = &cfg.storage.state_dir {
        if let Err(e) = writable_dir(dir) {
            problems.push(format!("storage.state_dir: {}: {e}", dir.display()));
        }
    }
    if !problems.is_empty() {
        eprintln!("invalid configuration:\n  {}", problems.join("\n  "));
        return ExitCode::FAILURE;
    }
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

/// The directory exists (or can be made) and a file can be created in it.
fn writable_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(".check-config-probe");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

fn serve_main(a: &ServeArgs) -> ExitCode {
    init_logging(&a.log);
    let path = match config_path(&a.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let o = overrides(&a.config, &a.web);
    let cfg = match daemon::load_config(&path, &o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = runtime();
    match rt.block_on(serve(cfg, path, o, poller::system_clock())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Printed once: stderr is where the logs go too.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn serve(cfg: Config, path: PathBuf, o: Overrides, clock: Clock) -> Result<(), String> {
    // A bad web config or a port in use fails before any poll starts.
    server::web_config(&cfg.server)?;
    let listener = server::bind(cfg.server.listen)?;
    let store = Arc::new(Store::open(cfg.storage.state_dir.as_deref()));
    let server_cfg = cfg.server.clone();
    let n_sources = cfg.sources.len();
    let d = Daemon::start(cfg, path, o, clock, store)?;
    tracing::info!(
        listen = %server_cfg.listen,
        version = BUILD.version,
        revision = BUILD.revision,
        sources = n_sources,
        "identity-posture-exporter started"
    );
    let reloader: Reloader = {
        let d = d.clone();
        Arc::new(move || {
            let d = d.clone();
            Box::pin(async move {
                let r = d.reload().await;
                if let Err(e) = &r {
                    tracing::error!(error = %e, "configuration reload failed; the running configuration stays");
                }
                r
            })
        })
    };
    #[cfg(unix)]
    {
        let d = d.clone();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        if let Err(e) = d.reload().await {
                            tracing::error!(error = %e, "configuration reload failed; the running configuration stays");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload")
            }
        }
    }
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight responses");
    };
    let result = server::serve(listener, d.live(), Some(reloader), &server_cfg, shutdown).await;
    d.shutdown().await;
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

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    use std::ffi::{c_char, c_void, CStr};

    extern "C" {
        // mimalloc's own listing of its options, by name (include/mimalloc.h).
        fn mi_options_print_out(
            out: Option<unsafe extern "C" fn(*const c_char, *mut c_void)>,
            arg: *mut c_void,
        );
    }

    unsafe extern "C" fn collect(msg: *const c_char, arg: *mut c_void) {
        let out = &mut *(arg as *mut String);
        out.push_str(&CStr::from_ptr(msg).to_string_lossy());
    }

    /// The option numbers `configure_allocator` sets are the options it means (mimalloc
    /// prints each option's name beside its value), and huge pages are off.
    #[test]
    fn allocator_options_are_set_by_the_right_numbers() {
        super::configure_allocator();
        let mut out = String::new();
        // SAFETY: the callback only appends the printed text to `out`, which outlives it.
        unsafe { mi_options_print_out(Some(collect), &mut out as *mut String as *mut c_void) };
        assert!(out.contains("option 'purge_delay': 0"), "{out}");
        assert!(out.contains("option 'arena_eager_commit': 0"), "{out}");
        assert!(out.contains("option 'allow_thp': 0"), "{out}");
        #[cfg(target_os = "linux")]
        // SAFETY: PR_GET_THP_DISABLE only reads this process's flag.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }
}
