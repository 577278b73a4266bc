//! Sources: each reads one identity provider and emits normalised [`Account`]s into an
//! [`AccountSink`], plus what it could not read ([`DataAvailability`]) and tenant-wide facts.
//! Sources never evaluate checks; they only map their provider into the model.

pub mod entra;
pub mod file;
pub mod okta;
pub mod sspm;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::{SourceConfig, SourceKind};
use crate::model::{Account, DataAvailability, TenantFacts, Timestamp};

/// Receives accounts as a source produces them (the checks, or a plain `Vec`).
pub trait AccountSink: Send {
    fn push(&mut self, account: Account);
}

impl AccountSink for Vec<Account> {
    fn push(&mut self, account: Account) {
        Vec::push(self, account)
    }
}

/// What a poll says besides the accounts.
#[derive(Debug, Default)]
pub struct PollOutput {
    pub availability: DataAvailability,
    pub tenant: TenantFacts,
    /// Source-specific gauges (cache coverage, upstream scan age …), exported with the
    /// `source` and `provider` labels added.
    pub gauges: Vec<SourceGauge>,
}

/// A source-specific gauge sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGauge {
    /// Full metric name, `identity_posture_` prefixed.
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// A failed poll. The message names the source's upstream (file, URL path) and never
/// contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceError {
    pub fn new(msg: impl Into<String>) -> SourceError {
        SourceError(msg.into())
    }
}

/// Counters a source's upstream traffic feeds; they live as long as the process.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Upstream requests by status class (`2xx`, `4xx`, `429`, `5xx`, `error` …).
    api_requests: Mutex<BTreeMap<String, u64>>,
    rate_limited: AtomicU64,
}

impl SourceStats {
    pub fn count_request(&self, code: &str) {
        let mut m = self.api_requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(code.to_string()).or_default() += 1;
    }
    pub fn count_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub fn api_requests(&self) -> BTreeMap<String, u64> {
        self.api_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

/// Everything a poll may need from outside the source.
pub struct PollContext<'a> {
    pub now: Timestamp,
    pub stats: &'a SourceStats,
}

/// A configured source, ready to poll. Long-lived: it may keep caches between polls.
pub enum Source {
    File(file::FileSource),
    Entra(Box<entra::EntraSource>),
    Okta(Box<okta::OktaSource>),
    Sspm(Box<sspm::SspmSource>),
}

impl Source {
    pub fn new(cfg: &SourceConfig) -> Result<Source, SourceError> {
        Ok(match &cfg.kind {
            SourceKind::File(f) => Source::File(file::FileSource::new(f.clone())),
            SourceKind::Entra(e) => Source::Entra(Box::new(entra::EntraSource::new(cfg, e)?)),
            SourceKind::Okta(_) => Source::Okta(Box::new(okta::OktaSource::new(cfg)?)),
            SourceKind::Sspm(c) => Source::Sspm(Box::new(sspm::SspmSource::new(cfg, c)?)),
        })
    }

    /// Reads the provider once, pushing every account into `sink`.
    pub async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        match self {
            Source::File(s) => s.poll(ctx, sink).await,
            Source::Entra(s) => s.poll(ctx, sink).await,
            Source::Okta(s) => s.poll(ctx, sink).await,
            Source::Sspm(s) => s.poll(ctx, sink).await,
        }
    }
}
