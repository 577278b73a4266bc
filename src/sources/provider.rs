//! What every source is: the [`Provider`] trait (its type name, its own config keys and their
//! validation, how it is built, how it polls into an [`AccountSink`]), and what a poll hands
//! back ([`PollOutput`]) or fails with ([`SourceError`]). The registry in `sources/mod.rs` turns
//! one line per provider into the dispatch, the type list and the `provider` label.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::activity::event::EventSink;
use crate::config::{Secret, SourceConfig, Validator};
use crate::model::{Account, DataAvailability, DataKind, TenantFacts, Timestamp};
use crate::store::Store;
use crate::upstream::{RequestStats, Timer, TokioTimer, UpstreamError};

/// One identity provider type. Implemented by the long-lived source value itself, which may
/// keep caches between polls.
pub trait Provider: Sized + Send + Sync + 'static {
    /// `type = "…"` in `[[sources]]`, and the `provider` label of every series.
    const TYPE: &'static str;
    /// The shortest `interval` allowed. Network sources keep the default, so a typo cannot
    /// spend the provider's rate limit; local sources may allow less.
    const MIN_INTERVAL: Duration = Duration::from_secs(30);
    /// Log targets of third-party crates the source uses whose debug and trace logs print
    /// credentials: held at `info` whatever the log level asks (see
    /// [`quiet_credential_logs`](super::quiet_credential_logs)).
    const QUIET_LOG_TARGETS: &'static [&'static str] = &[];
    /// The provider's own keys of a `[[sources]]` table, as written
    /// (`#[serde(deny_unknown_fields)]`, so serde names an unknown key).
    type Raw: DeserializeOwned;
    /// The keys once validated (secrets resolved, URLs checked, defaults applied).
    type Config: std::fmt::Debug + Clone + Send + Sync + 'static;

    /// Checks the raw keys, recording every problem through `v`; `None` when unusable.
    fn validate(raw: Self::Raw, v: &mut Validator<'_>) -> Option<Self::Config>;

    /// Builds the source from its validated keys. No I/O happens here, but keys that can only
    /// be judged by using them (a private key that must sign) are tried, so `check-config`
    /// and start-up report them.
    fn build(common: &SourceConfig, cfg: &Self::Config, deps: &Deps) -> Result<Self, SourceError>;

    /// Reads the provider once, pushing every account into `sink` as it is mapped.
    fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> impl Future<Output = Result<PollOutput, SourceError>> + Send;

    /// Whether the source type has a sign-in event stream (`activity = true` is accepted).
    /// A source opts in by setting this and implementing [`Provider::activity`].
    const ACTIVITY: bool = false;

    /// The second stream: sign-in events from `ctx.cursor` (or `ctx.since` on a first read)
    /// onwards, pushed into `sink` as they are mapped. Called by the poller right after
    /// [`Provider::poll`], in the same poll: requests go through the same request budget and
    /// rate-limit share (`Upstream::continue_session`). The default: no stream.
    fn activity(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> impl Future<Output = Result<ActivityOutput, SourceError>> + Send {
        let _ = (ctx, sink);
        async { Ok(ActivityOutput::unsupported(Self::TYPE)) }
    }
}

/// What an activity read needs from outside the source.
pub struct ActivityContext<'a> {
    pub now: Timestamp,
    /// Where the upstream layer counts this source's requests.
    pub stats: &'a RequestStats,
    /// The cursor this source returned from its last committed read (`None`: the first read).
    pub cursor: Option<&'a serde_json::Value>,
    /// Read nothing older than this (`now` − `activity_lookback`): a first read, and
    /// catching up after downtime, are bounded by it.
    pub since: Timestamp,
}

/// What an activity read says besides the events.
#[derive(Debug, Default)]
pub struct ActivityOutput {
    /// Where the next read starts (the source's own shape); committed with the events.
    pub cursor: Option<serde_json::Value>,
    /// The source cannot read sign-in events (licence, permission): activity is unknown,
    /// with this reason, and the poll goes on.
    pub unavailable: Option<String>,
    /// Upstream requests the read made.
    pub requests: u32,
    /// The read stopped before the end of the stream (request budget, page cap): the next
    /// poll continues from `cursor`.
    pub more: bool,
    /// With `more`, for providers that list newest first: the events still to come are no
    /// older than this (the engine keeps their ids' de-duplication until then).
    pub pending_from: Option<Timestamp>,
}

impl ActivityOutput {
    /// A source type without an event stream.
    pub fn unsupported(ty: &str) -> ActivityOutput {
        ActivityOutput {
            unavailable: Some(format!("{ty} sources have no sign-in event stream")),
            ..ActivityOutput::default()
        }
    }
}

/// What sources share from outside: the clock and sleeper (tests inject a virtual one so
/// backoff and pacing take no real time), and the persisted-state store (long-lived caches
/// such as Okta's factor cache survive restarts through it; in memory by default).
#[derive(Clone)]
pub struct Deps {
    pub timer: Arc<dyn Timer>,
    pub store: Arc<Store>,
}

impl Default for Deps {
    fn default() -> Self {
        Deps {
            timer: Arc::new(TokioTimer),
            store: Arc::new(Store::in_memory()),
        }
    }
}

impl Deps {
    pub fn with_timer(timer: Arc<dyn Timer>) -> Deps {
        Deps {
            timer,
            ..Deps::default()
        }
    }
    /// The same dependencies with `store` for persisted state.
    pub fn with_store(mut self, store: Arc<Store>) -> Deps {
        self.store = store;
        self
    }
}

/// Everything a poll may need from outside the source.
pub struct PollContext<'a> {
    pub now: Timestamp,
    /// Where the upstream layer counts this source's requests.
    pub stats: &'a RequestStats,
}

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
    /// Data classes the source could not read, and why. Classes no account carried are added
    /// by the report (once, for every source), with [`DataAvailability::if_absent`] wording.
    pub availability: DataAvailability,
    pub tenant: TenantFacts,
    /// Source-specific gauges (cache coverage, upstream scan age …), exported with the
    /// `source` and `provider` labels added. Names follow `identity_posture_<type>_…` and are
    /// declared as constants in the source's module.
    pub gauges: Vec<SourceGauge>,
}

/// A source-specific gauge's name and help, declared once as a constant in its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaugeDesc {
    /// Full metric name, `identity_posture_` prefixed.
    pub name: &'static str,
    pub help: &'static str,
}

impl GaugeDesc {
    pub const fn new(name: &'static str, help: &'static str) -> GaugeDesc {
        GaugeDesc { name, help }
    }
    /// A sample of this gauge.
    pub fn sample(&self, labels: Vec<(&'static str, String)>, value: f64) -> SourceGauge {
        SourceGauge {
            name: self.name,
            help: self.help,
            labels,
            value,
        }
    }
}

/// `identity_posture_source_poll_requests`: every network source reports its requests the
/// same way.
pub const POLL_REQUESTS: GaugeDesc = GaugeDesc::new(
    "identity_posture_source_poll_requests",
    "Upstream requests made by the last background poll.",
);

/// A source-specific gauge sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceGauge {
    /// Full metric name, `identity_posture_` prefixed.
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// What kind of failure a poll met: decides the hint, and lets tests and operators tell a
/// credential problem from an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The configuration cannot work (bad key, bad URL).
    Config,
    /// The credential was rejected (401, a token endpoint's refusal).
    Auth,
    /// The credential lacks a permission the source needs (403 on required data).
    Permission,
    /// The provider kept rate limiting after every allowed retry.
    RateLimited,
    /// The poll or a request took too long.
    Timeout,
    /// No usable response: connection, TLS, 5xx after retries, truncated body.
    Transport,
    /// The response was not what the provider documents (malformed JSON, HTML, a paging loop).
    Decode,
    /// A per-poll limit was reached (requests, bytes, accounts).
    Budget,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Auth => "auth",
            ErrorKind::Permission => "permission",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::Decode => "decode",
            ErrorKind::Budget => "budget",
        }
    }

    /// How an upstream failure is classified.
    pub fn of(e: &UpstreamError) -> ErrorKind {
        match e {
            // Before the status arms: a provider may throttle with a 403.
            e if e.is_rate_limited() => ErrorKind::RateLimited,
            UpstreamError::Status { status: 401, .. } => ErrorKind::Auth,
            UpstreamError::Status { status: 403, .. } => ErrorKind::Permission,
            UpstreamError::Status { status: 429, .. } => ErrorKind::RateLimited,
            UpstreamError::Status { status, .. } if *status >= 500 => ErrorKind::Transport,
            UpstreamError::Status { .. } => ErrorKind::Decode,
            UpstreamError::Transport { message, .. } if message.starts_with("timed out") => {
                ErrorKind::Timeout
            }
            UpstreamError::Transport { .. } => ErrorKind::Transport,
            UpstreamError::TooLarge { .. }
            | UpstreamError::Decode { .. }
            | UpstreamError::PaginationLoop { .. }
            | UpstreamError::DataLoop { .. }
            | UpstreamError::TooManyPages { .. }
            | UpstreamError::ForeignLink { .. } => ErrorKind::Decode,
            UpstreamError::BudgetExhausted { .. } | UpstreamError::BytesExhausted { .. } => {
                ErrorKind::Budget
            }
            UpstreamError::Url(_) => ErrorKind::Config,
            UpstreamError::Token(_) => ErrorKind::Auth,
        }
    }
}

/// A failed poll. The message names the source's upstream (file, endpoint) and what the
/// admin must change where that is known; it never contains a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    kind: ErrorKind,
    message: String,
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> SourceError {
        SourceError {
            kind,
            message: message.into(),
        }
    }
    pub fn config(message: impl Into<String>) -> SourceError {
        SourceError::new(ErrorKind::Config, message)
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// An upstream failure as a poll error: `"{label}: {error} — {hint}"`, where the hint is
    /// the provider's advice for this error, or the common one for its kind. `redact` scrubs
    /// the source's known secrets (the upstream client's redactor).
    pub fn upstream(
        label: &str,
        e: &UpstreamError,
        hint: Option<String>,
        redact: impl Fn(&str) -> String,
    ) -> SourceError {
        let kind = ErrorKind::of(e);
        let hint = hint.or_else(|| common_hint(kind, e));
        let msg = match hint {
            Some(h) => format!("{label}: {e} — {h}"),
            None => format!("{label}: {e}"),
        };
        SourceError::new(kind, redact(&msg))
    }
}

/// Advice that holds for every provider.
fn common_hint(kind: ErrorKind, e: &UpstreamError) -> Option<String> {
    Some(match (kind, e) {
        (ErrorKind::Budget, UpstreamError::BytesExhausted { .. }) => {
            "raise max_bytes_per_poll if the organisation really is this large".into()
        }
        (ErrorKind::Budget, _) => {
            "raise max_requests_per_poll: the listing needs more requests than it allows".into()
        }
        (ErrorKind::RateLimited, _) => "the provider kept rate limiting after every retry; other integrations may be using the rate limit, or lower max_rate_limit_share / raise the interval".into(),
        (ErrorKind::Auth, UpstreamError::Status { .. }) => {
            "the credential was rejected: check that it is current and belongs to this tenant".into()
        }
        _ => return None,
    })
}

/// Optional data: when `refused` says the error is a refusal (a permission or licence the
/// source can do without), records `kind` as missing with that reason and yields `None`, so
/// the poll goes on and the data is unknown; any other error is returned for the poll to fail.
/// With `kind` `None` the refusal is logged only (tenant data such as policies).
/// Whether `key` (PEM or JWK) can sign the JWTs of the signed-JWT grants; the reason if not,
/// never the key. For [`Validator::private_key`](crate::config::Validator::private_key).
pub fn signs_jwts(key: &Secret) -> Result<(), String> {
    match crate::upstream::oauth::JwtSigner::from_key(key, None) {
        Ok(_) => Ok(()),
        Err(UpstreamError::Token(m)) => Err(m),
        Err(e) => Err(e.to_string()),
    }
}

pub fn optional<T>(
    availability: &mut DataAvailability,
    kind: Option<DataKind>,
    result: Result<T, UpstreamError>,
    refused: impl FnOnce(&UpstreamError) -> Option<String>,
) -> Result<Option<T>, UpstreamError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => match refused(&e) {
            Some(reason) => {
                match kind {
                    Some(k) => availability.set_missing(k, reason),
                    None => tracing::warn!(reason = %reason, "optional data refused; left unknown"),
                }
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// The usual refusal: 401/403, with the provider's advice for the endpoint.
pub fn permission_refusal(e: &UpstreamError, hint: &str) -> Option<String> {
    e.is_permission().then(|| format!("{e} — {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::ProviderError;

    fn status(code: u16) -> UpstreamError {
        UpstreamError::Status {
            method: "GET".into(),
            endpoint: "/x".into(),
            status: code,
            detail: Box::new(ProviderError::default()),
        }
    }

    #[test]
    fn upstream_errors_are_classified() {
        assert_eq!(ErrorKind::of(&status(401)), ErrorKind::Auth);
        assert_eq!(ErrorKind::of(&status(403)), ErrorKind::Permission);
        assert_eq!(ErrorKind::of(&status(429)), ErrorKind::RateLimited);
        assert_eq!(ErrorKind::of(&status(503)), ErrorKind::Transport);
        assert_eq!(ErrorKind::of(&status(400)), ErrorKind::Decode);
        // A 403 the client recognised as the provider's rate limit.
        let mut throttled = status(403);
        if let UpstreamError::Status { detail, .. } = &mut throttled {
            detail.rate_limited = true;
        }
        assert_eq!(ErrorKind::of(&throttled), ErrorKind::RateLimited);
        assert!(!throttled.is_permission());
        assert!(permission_refusal(&throttled, "x").is_none());
        assert_eq!(
            ErrorKind::of(&UpstreamError::BudgetExhausted { max: 3 }),
            ErrorKind::Budget
        );
    }

    #[test]
    fn optional_data_refused_is_unknown_with_the_reason() {
        let mut av = DataAvailability::default();
        let r: Result<u8, _> = Err(status(403));
        let got = optional(&mut av, Some(DataKind::Roles), r, |e| {
            permission_refusal(e, "grant roles.read")
        })
        .unwrap();
        assert_eq!(got, None);
        assert!(av.missing[&DataKind::Roles].contains("grant roles.read"));
        let r: Result<u8, _> = Err(status(500));
        assert!(
            optional(&mut av, Some(DataKind::Mfa), r, |e| permission_refusal(
                e, "x"
            ))
            .is_err()
        );
        assert!(av.is_available(DataKind::Mfa));
    }

    #[test]
    fn error_messages_carry_the_hint_and_are_redacted() {
        let e = SourceError::upstream("okta source o", &status(401), None, |s| s.replace("o", "0"));
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(e.to_string().contains("credential was rejected"), "{e}");
        assert!(e.to_string().starts_with("0kta"));
    }
}
