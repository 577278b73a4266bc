//! Shared state between the poller (the only writer) and the readers (metrics rendering,
//! the HTTP server). Each source's last good [`Report`] is swapped in atomically, so readers
//! never see a half-written poll and a failed poll leaves the last good numbers in place.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::Serialize;

use crate::config::SourceConfig;
use crate::model::Timestamp;
use crate::report::Report;
use crate::store::Store;
use crate::upstream::RequestStats;

/// Build identity for `identity_posture_exporter_build_info` and `--version`.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInfo {
    pub version: &'static str,
    pub revision: &'static str,
}

pub const BUILD: BuildInfo = BuildInfo {
    version: env!("CARGO_PKG_VERSION"),
    revision: match option_env!("IPE_GIT_REVISION") {
        Some(r) => r,
        None => "unknown",
    },
};

/// Poll bookkeeping for one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PollStatus {
    pub polls: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// The last poll succeeded.
    pub up: bool,
    /// At least one poll finished (success or error): readiness.
    pub completed: bool,
    pub polling: bool,
    #[serde(with = "crate::model::opt_rfc3339")]
    pub last_attempt: Option<Timestamp>,
    #[serde(with = "crate::model::opt_rfc3339")]
    pub last_success: Option<Timestamp>,
    pub last_duration_seconds: Option<f64>,
    pub last_error: Option<String>,
    /// What kind of failure the last error was (`auth`, `permission`, `rate_limited`,
    /// `timeout`, `transport`, `decode`, `budget`, `config`).
    pub last_error_kind: Option<&'static str>,
    #[serde(with = "crate::model::opt_rfc3339")]
    pub last_error_at: Option<Timestamp>,
    /// When the poller plans the next poll (interval plus jitter, or backoff).
    #[serde(with = "crate::model::opt_rfc3339")]
    pub next_poll: Option<Timestamp>,
}

impl PollStatus {
    /// `pending` before the first poll ends, then `ok` or `error` after the last one.
    pub fn state(&self) -> &'static str {
        if !self.completed {
            "pending"
        } else if self.up {
            "ok"
        } else {
            "error"
        }
    }
}

/// One configured source, as the rest of the process sees it.
pub struct SourceState {
    pub name: String,
    pub provider: &'static str,
    pub interval: Duration,
    /// Upstream request counters (kept by the upstream layer).
    pub stats: Arc<RequestStats>,
    pub status: Mutex<PollStatus>,
    /// The last good poll's result.
    pub report: ArcSwapOption<Report>,
    /// Wakes the poll loop for a poll now (`POST /-/poll/{source}`).
    pub poll_now: tokio::sync::Notify,
    /// Persisted state (finding history), shared by every source.
    pub store: Arc<Store>,
}

impl SourceState {
    /// A source with in-memory state only.
    pub fn new(cfg: &SourceConfig) -> SourceState {
        SourceState::with_store(cfg, Arc::new(Store::in_memory()))
    }

    pub fn with_store(cfg: &SourceConfig, store: Arc<Store>) -> SourceState {
        SourceState {
            name: cfg.name.clone(),
            provider: cfg.provider(),
            interval: cfg.interval,
            stats: Arc::new(RequestStats::default()),
            status: Mutex::new(PollStatus::default()),
            report: ArcSwapOption::empty(),
            poll_now: tokio::sync::Notify::new(),
            store,
        }
    }

    /// The same source under a reloaded configuration: its counters, poll status and last
    /// report carry over (the new poll task replaces the report at once).
    pub fn carry_over(old: &SourceState, cfg: &SourceConfig) -> SourceState {
        SourceState {
            name: cfg.name.clone(),
            provider: cfg.provider(),
            interval: cfg.interval,
            stats: old.stats.clone(),
            status: Mutex::new(old.status()),
            report: ArcSwapOption::new(old.report.load_full()),
            poll_now: tokio::sync::Notify::new(),
            store: old.store.clone(),
        }
    }

    pub fn status(&self) -> PollStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut PollStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Everything the server and the poller share.
pub struct AppState {
    pub sources: Vec<Arc<SourceState>>,
    /// `/metrics` body without the process metrics, re-encoded after every poll.
    pub metrics: ArcSwap<Vec<u8>>,
    /// `server.external_url`, exported as `identity_posture_exporter_web_info`.
    pub external_url: Option<String>,
}

impl AppState {
    /// Sources with in-memory state only (tests, `collect`). `metrics` is empty until
    /// `metrics::refresh` fills it.
    pub fn new(cfgs: &[SourceConfig]) -> AppState {
        AppState::with_store(cfgs, Arc::new(Store::in_memory()), None)
    }

    pub fn with_store(
        cfgs: &[SourceConfig],
        store: Arc<Store>,
        external_url: Option<String>,
    ) -> AppState {
        let sources = cfgs
            .iter()
            .map(|c| Arc::new(SourceState::with_store(c, store.clone())))
            .collect();
        AppState::from_sources(sources, external_url)
    }

    pub fn from_sources(sources: Vec<Arc<SourceState>>, external_url: Option<String>) -> AppState {
        AppState {
            sources,
            metrics: ArcSwap::from_pointee(Vec::new()),
            external_url,
        }
    }

    pub fn source(&self, name: &str) -> Option<&Arc<SourceState>> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Every source has finished one poll.
    pub fn ready(&self) -> bool {
        self.sources.iter().all(|s| s.status().completed)
    }
}

/// What the server reads: the current [`AppState`], replaced whole when the configuration
/// is reloaded (so a request sees one configuration from start to end).
pub struct Live {
    current: ArcSwap<AppState>,
}

impl Live {
    pub fn new(app: Arc<AppState>) -> Live {
        Live {
            current: ArcSwap::new(app),
        }
    }
    pub fn load(&self) -> Arc<AppState> {
        self.current.load_full()
    }
    pub fn store(&self, app: Arc<AppState>) {
        self.current.store(app)
    }
}
