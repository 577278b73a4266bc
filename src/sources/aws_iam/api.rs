//! The narrow seam in front of the AWS SDK: [`IamApi`], exactly the IAM calls the source
//! makes, with plain owned results and one error type. The SDK implements it (`sdk.rs`), and
//! so does the in-memory fake the tests use (`fake.rs`). [`Meter`] is where either counts
//! attempts, throttling and the per-poll request budget.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::model::Timestamp;
use crate::upstream::RequestStats;

/// What every call returns.
pub type ApiFuture<'a, T> = BoxFuture<'a, Result<T, ApiError>>;

/// `GenerateCredentialReport`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportState {
    Complete,
    /// `STARTED` or `INPROGRESS`: ask again later.
    InProgress,
    /// A state this build does not know.
    Other(String),
}

/// `GetCredentialReport`'s answer: the CSV (already base64-decoded) and when AWS made it
/// (a report is reused for up to four hours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialReport {
    pub content: Vec<u8>,
    pub generated: Option<Timestamp>,
}

/// One entry of `ListVirtualMFADevices` (assigned devices only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMfaDevice {
    pub serial: String,
    /// The ARN of the user (or `arn:aws:iam::ACCOUNT:root`) the device is assigned to.
    pub user_arn: Option<String>,
}

/// A managed policy attached to a user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

/// `GetPolicy`'s answer: which version of a managed policy is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicy {
    pub name: String,
    pub default_version: Option<String>,
}

/// How an IAM call failed, as far as the source cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// `AccessDenied` (or a bare HTTP 403): the identity lacks the action.
    Denied,
    /// No credentials, or credentials AWS rejected (`InvalidClientTokenId`,
    /// `SignatureDoesNotMatch`, `ExpiredToken`).
    Credentials,
    /// `Throttling` after every retry the SDK allowed.
    Throttled,
    /// `NoSuchEntity`: the user, group or policy no longer exists.
    NotFound,
    /// The credential report is not ready (`ReportNotPresent`, `ReportExpired`,
    /// `ReportInProgress`).
    ReportNotReady,
    /// `LimitExceeded` on `GenerateCredentialReport`: a report is being made already.
    LimitExceeded,
    /// 5xx (`ServiceFailure`) after retries.
    Service,
    /// No usable response: connection, TLS, DNS.
    Transport,
    Timeout,
    /// A response that is not what IAM documents.
    Decode,
    /// `max_requests_per_poll` was reached; the request was not sent.
    Budget,
    Other,
}

/// A failed IAM call. The message is AWS's error code and message (never the raw response,
/// headers or credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ApiErrorKind,
    /// The IAM action, e.g. `iam:GetCredentialReport` (what a policy must allow).
    pub action: &'static str,
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.action)?;
        f.write_str(self.code.as_deref().unwrap_or(kind_word(self.kind)))?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

fn kind_word(k: ApiErrorKind) -> &'static str {
    match k {
        ApiErrorKind::Denied => "access denied",
        ApiErrorKind::Credentials => "no valid credentials",
        ApiErrorKind::Throttled => "throttled",
        ApiErrorKind::NotFound => "not found",
        ApiErrorKind::ReportNotReady => "report not ready",
        ApiErrorKind::LimitExceeded => "limit exceeded",
        ApiErrorKind::Service => "service error",
        ApiErrorKind::Transport => "no response",
        ApiErrorKind::Timeout => "timed out",
        ApiErrorKind::Decode => "unexpected response",
        ApiErrorKind::Budget => "request budget exhausted",
        ApiErrorKind::Other => "error",
    }
}

impl ApiError {
    pub fn new(kind: ApiErrorKind, action: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            action,
            code: None,
            status: None,
            message: message.into(),
        }
    }
    pub fn budget(action: &'static str, max: u64) -> ApiError {
        ApiError::new(
            ApiErrorKind::Budget,
            action,
            format!("max_requests_per_poll ({max}) reached; the request was not sent"),
        )
    }
}

/// The IAM calls the source makes. Listing calls return every page (each page is one
/// request, counted and budgeted through [`IamApi::meter`]).
pub trait IamApi: Send + Sync {
    /// Where this implementation counts attempts and enforces the per-poll budget.
    fn meter(&self) -> &Arc<Meter>;
    /// Scrubs credentials from a text (an error message) before the source logs or returns
    /// it: credential-shaped tokens always, the credentials in use where the implementation
    /// knows them.
    fn redact(&self, text: &str) -> String {
        super::redact::redact(text, &[])
    }
    fn generate_credential_report(&self) -> ApiFuture<'_, ReportState>;
    fn get_credential_report(&self) -> ApiFuture<'_, CredentialReport>;
    fn list_virtual_mfa_devices(&self) -> ApiFuture<'_, Vec<VirtualMfaDevice>>;
    /// Serial numbers of a user's MFA devices (virtual ones are device ARNs).
    fn list_mfa_devices<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>>;
    fn list_attached_user_policies<'a>(&'a self, user: &'a str)
        -> ApiFuture<'a, Vec<AttachedPolicy>>;
    /// Names of a user's inline policies.
    fn list_user_policies<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>>;
    /// An inline user policy's document, as IAM sends it (URL-encoded).
    fn get_user_policy<'a>(&'a self, user: &'a str, policy: &'a str) -> ApiFuture<'a, String>;
    /// Names of the groups a user is in.
    fn list_groups_for_user<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>>;
    fn list_attached_group_policies<'a>(
        &'a self,
        group: &'a str,
    ) -> ApiFuture<'a, Vec<AttachedPolicy>>;
    fn list_group_policies<'a>(&'a self, group: &'a str) -> ApiFuture<'a, Vec<String>>;
    fn get_group_policy<'a>(&'a self, group: &'a str, policy: &'a str) -> ApiFuture<'a, String>;
    fn get_policy<'a>(&'a self, arn: &'a str) -> ApiFuture<'a, ManagedPolicy>;
    /// A managed policy version's document (URL-encoded on AWS, raw on moto).
    fn get_policy_version<'a>(&'a self, arn: &'a str, version: &'a str)
        -> ApiFuture<'a, String>;
}

/// One poll's way of calling IAM: names the call in flight (a timed-out poll says what it
/// was waiting for) and moves the meter's counts into the source's request statistics after
/// every call.
pub struct Calls<'a> {
    pub api: &'a dyn IamApi,
    stats: &'a RequestStats,
}

impl<'a> Calls<'a> {
    pub fn new(api: &'a dyn IamApi, stats: &'a RequestStats) -> Calls<'a> {
        Calls { api, stats }
    }

    /// Awaits one call of `action`.
    pub async fn run<T>(&self, action: &'static str, call: ApiFuture<'_, T>) -> Result<T, ApiError> {
        let in_flight = self.stats.in_flight(action.to_string());
        let r = call.await;
        self.stats.answered(in_flight);
        let meter = self.api.meter();
        meter.drain_into(self.stats);
        let used = u32::try_from(meter.used()).unwrap_or(u32::MAX);
        self.stats.update_activity(|a| a.requests = used);
        r
    }
}

/// Status classes of `identity_posture_source_api_requests_total{code}`.
const CODES: [&str; 6] = ["2xx", "3xx", "4xx", "429", "5xx", "error"];

/// Attempts (retries included), their outcome and the request budget of the current poll.
/// Counts pile up here as requests happen and are moved into the source's [`RequestStats`]
/// by [`Meter::drain_into`] after every call.
#[derive(Debug)]
pub struct Meter {
    /// Attempts still allowed in this poll (`u64::MAX` without a budget).
    remaining: AtomicU64,
    max: AtomicU64,
    used: AtomicU64,
    budget_hit: AtomicBool,
    by_code: [AtomicU64; 6],
    throttled: AtomicU64,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            remaining: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(u64::MAX),
            used: AtomicU64::new(0),
            budget_hit: AtomicBool::new(false),
            by_code: Default::default(),
            throttled: AtomicU64::new(0),
        }
    }
}

impl Meter {
    /// A new poll: a fresh budget (`None` = unbounded).
    pub fn reset(&self, max_requests: Option<u32>) {
        let max = max_requests.map_or(u64::MAX, u64::from);
        self.max.store(max, Ordering::Relaxed);
        self.remaining.store(max, Ordering::Relaxed);
        self.used.store(0, Ordering::Relaxed);
        self.budget_hit.store(false, Ordering::Relaxed);
    }

    /// Takes one attempt from the budget; `false` (and nothing sent) when none is left.
    pub fn try_attempt(&self) -> bool {
        let ok = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
            .is_ok();
        if ok {
            self.used.fetch_add(1, Ordering::Relaxed);
        } else {
            self.budget_hit.store(true, Ordering::Relaxed);
        }
        ok
    }

    /// Records one answered (or failed, `status` `None`) attempt.
    pub fn record(&self, status: Option<u16>, throttled: bool) {
        let i = match status {
            Some(429) => 3,
            Some(s @ 200..=599) => match s / 100 {
                2 => 0,
                3 => 1,
                4 => 2,
                _ => 4,
            },
            _ => 5,
        };
        self.by_code[i].fetch_add(1, Ordering::Relaxed);
        if throttled {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Attempts made in this poll.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
    /// Attempts left in this poll (`None` without a budget).
    pub fn remaining(&self) -> Option<u64> {
        let max = self.max.load(Ordering::Relaxed);
        (max != u64::MAX).then(|| self.remaining.load(Ordering::Relaxed))
    }
    pub fn max(&self) -> Option<u64> {
        let max = self.max.load(Ordering::Relaxed);
        (max != u64::MAX).then_some(max)
    }
    /// Whether a request was refused for want of budget in this poll.
    pub fn budget_hit(&self) -> bool {
        self.budget_hit.load(Ordering::Relaxed)
    }

    /// Moves the counts gathered so far into the source's request statistics.
    pub fn drain_into(&self, stats: &RequestStats) {
        for (i, code) in CODES.iter().enumerate() {
            for _ in 0..self.by_code[i].swap(0, Ordering::Relaxed) {
                stats.count_request(code);
            }
        }
        for _ in 0..self.throttled.swap(0, Ordering::Relaxed) {
            stats.count_rate_limited();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_counts() {
        let m = Meter::default();
        m.reset(Some(2));
        assert!(m.try_attempt() && m.try_attempt());
        assert!(!m.try_attempt());
        assert!(m.budget_hit());
        assert_eq!((m.used(), m.remaining()), (2, Some(0)));
        m.record(Some(200), false);
        m.record(Some(400), true);
        m.record(Some(429), true);
        m.record(Some(503), false);
        m.record(None, false);
        let stats = RequestStats::default();
        m.drain_into(&stats);
        m.drain_into(&stats); // nothing twice
        let r = stats.api_requests();
        assert_eq!(
            (r["2xx"], r["4xx"], r["429"], r["5xx"], r["error"]),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(stats.rate_limited(), 2);
        m.reset(None);
        assert!(!m.budget_hit());
        assert_eq!(m.remaining(), None);
        assert!((0..1000).all(|_| m.try_attempt()));
    }

    #[test]
    fn errors_read_as_action_code_and_message() {
        let e = ApiError {
            kind: ApiErrorKind::Denied,
            action: "iam:GetCredentialReport",
            code: Some("AccessDenied".into()),
            status: Some(403),
            message: "User: arn:aws:iam::1:user/x is not authorized".into(),
        };
        assert_eq!(
            e.to_string(),
            "iam:GetCredentialReport: AccessDenied (HTTP 403): User: arn:aws:iam::1:user/x is not authorized"
        );
        assert_eq!(
            ApiError::new(ApiErrorKind::Timeout, "iam:ListUsers", "").to_string(),
            "iam:ListUsers: timed out"
        );
    }
}
