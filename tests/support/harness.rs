//! The harness every source test drives: a configuration in TOML (with `{dir}` standing for a
//! temporary directory holding the secret files it names) → the source built on a virtual
//! clock (backoff and `Retry-After` waits take no time) → polls through the real poller →
//! gauges, findings, the report and the poll status, as the daemon would publish them.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use identity_posture_exporter::config::{Config, SourceConfig};
use identity_posture_exporter::poller::{poll_and_publish, Clock};
use identity_posture_exporter::report::Report;
use identity_posture_exporter::sources::{config_from_toml, Deps, Source};
use identity_posture_exporter::state::{AppState, PollStatus};
use identity_posture_exporter::upstream::ManualTimer;
use time::macros::datetime;
use time::OffsetDateTime;

/// The instant every harness poll happens at (checks judge ages against it).
pub const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

pub struct Harness {
    pub cfg: Config,
    pub state: Arc<AppState>,
    pub source: Source,
    pub timer: ManualTimer,
    pub dir: tempfile::TempDir,
    clock: Clock,
}

impl Harness {
    /// Writes `files` (name, contents) into a temporary directory, replaces `{dir}` in `toml`
    /// with its path, and builds the first source of the configuration.
    pub fn start(files: &[(&str, &str)], toml: &str) -> Harness {
        Harness::try_start(files, toml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Harness::start`], returning configuration and build errors.
    pub fn try_start(files: &[(&str, &str)], toml: &str) -> Result<Harness, String> {
        Harness::try_start_with_store(files, toml, None)
    }

    /// As [`Harness::start`], with state persisted in `state_dir` (a restart is a second
    /// harness on the same directory, after the first is dropped).
    pub fn start_with_state(
        files: &[(&str, &str)],
        toml: &str,
        state_dir: &std::path::Path,
    ) -> Harness {
        Harness::try_start_with_store(files, toml, Some(state_dir))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start_with_store(
        files: &[(&str, &str)],
        toml: &str,
        state_dir: Option<&std::path::Path>,
    ) -> Result<Harness, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let toml = toml.replace("{dir}", dir.path().to_str().unwrap());
        let cfg = config_from_toml(&toml).map_err(|e| e.to_string())?;
        let timer = ManualTimer::starting_now();
        let store = Arc::new(match state_dir {
            Some(d) => identity_posture_exporter::store::Store::open(Some(d)),
            None => identity_posture_exporter::store::Store::in_memory(),
        });
        let deps = Deps::with_timer(Arc::new(timer.clone())).with_store(store.clone());
        let source = Source::build(&cfg.sources[0], &deps).map_err(|e| e.to_string())?;
        let state = Arc::new(AppState::with_store(&cfg.sources, store, None));
        identity_posture_exporter::metrics::refresh(&state);
        Ok(Harness {
            cfg,
            state,
            source,
            timer,
            dir,
            clock: Arc::new(|| NOW),
        })
    }

    /// A harness over a source that `make` builds from the first `[[sources]]` table of
    /// `toml` (validated as usual) and the harness's virtual clock: a source on a fake of its
    /// provider's SDK, or on real credentials the configuration cannot express.
    pub fn with_source(toml: &str, make: impl FnOnce(&SourceConfig, &Deps) -> Source) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let toml = toml.replace("{dir}", dir.path().to_str().unwrap());
        let cfg = config_from_toml(&toml).unwrap_or_else(|e| panic!("{e}"));
        let timer = ManualTimer::starting_now();
        let source = make(&cfg.sources[0], &Deps::with_timer(Arc::new(timer.clone())));
        let state = Arc::new(AppState::new(&cfg.sources));
        identity_posture_exporter::metrics::refresh(&state);
        Harness {
            cfg,
            state,
            source,
            timer,
            dir,
            clock: Arc::new(|| NOW),
        }
    }

    /// The same harness polling at another instant.
    pub fn at(mut self, now: OffsetDateTime) -> Harness {
        self.clock = Arc::new(move || now);
        self
    }

    /// One poll through the poller (accounts and findings kept, metrics re-encoded).
    pub async fn poll(&self) -> Result<(), String> {
        poll_and_publish(
            &self.cfg.sources[0],
            &self.source,
            &self.state.sources[0],
            &self.state,
            &self.clock,
        )
        .await
    }

    /// The last good report.
    pub fn report(&self) -> Arc<Report> {
        self.state.sources[0]
            .report
            .load_full()
            .expect("no successful poll yet")
    }

    pub fn status(&self) -> PollStatus {
        self.state.sources[0].status()
    }

    /// `/metrics` as the daemon would serve it (without `process_*`).
    pub fn metrics(&self) -> String {
        String::from_utf8(self.state.metrics.load().to_vec()).unwrap()
    }

    /// The value of the series `name` whose labels include `labels` (and this source).
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let source = format!("source=\"{}\"", self.cfg.sources[0].name);
        self.metrics().lines().find_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            if n != name || !rest.contains(&source) {
                return None;
            }
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.parse().ok())?
        })
    }

    /// Every series of the metric family `name` for this source.
    pub fn series(&self, name: &str) -> Vec<String> {
        let source = format!("source=\"{}\"", self.cfg.sources[0].name);
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&source))
            .map(str::to_string)
            .collect()
    }

    /// (account id, check id) of every finding of the last good report.
    pub fn findings(&self) -> BTreeSet<(String, &'static str)> {
        let r = self.report();
        r.findings
            .iter()
            .map(|f| (r.account_id(f).to_string(), f.check.as_str()))
            .collect()
    }

    /// What `/api/v1/sources` would say about the source (status and data availability).
    pub fn sources_json(&self) -> String {
        let r = self.state.sources[0].report.load_full();
        serde_json::json!({
            "status": self.status(),
            "availability": r.as_ref().map(|r| &r.availability),
        })
        .to_string()
    }
}

/// Log lines written while a [`Logs`] guard is held on this thread (debug level and up), so a
/// test can assert that no secret is ever logged.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Starts capturing this thread's logs (use with a current-thread `#[tokio::test]`), at
    /// debug level with the binary's caps on third-party crates that would log credentials.
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let w = logs.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(identity_posture_exporter::sources::quiet_credential_logs(
                tracing_subscriber::EnvFilter::new("debug"),
            ))
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        (logs, tracing::subscriber::set_default(sub))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The shipped binary's `collect` (its own clock, its own configuration loading) over `toml`
/// with `files` written as in [`Harness::start`]: the exposition text it prints, or its
/// stderr when it fails. Runs on the blocking pool so the test's mock keeps serving.
pub async fn collect_cli(files: &[(&str, &str)], toml: &str) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, toml.replace("{dir}", dir.path().to_str().unwrap())).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
            .args(["collect", "--config", cfg.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    drop(dir);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The value of the sample of `name` carrying every label in `labels` (others may be present),
/// in exposition `text`; panics, showing `text`, if there is none.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let (n, rest) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            return None;
        }
        let all = labels
            .iter()
            .all(|(k, v)| rest.split(',').any(|p| p == format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    });
    found.unwrap_or_else(|| panic!("{name}{labels:?} missing\n{text}"))
}
