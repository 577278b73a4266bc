//! Configuration: TOML file then `IPE_`-prefixed environment (figment), parsed into a raw
//! form that accepts anything well-typed, then validated into [`Config`]. Validation collects
//! every problem with its key path, so `check-config` can print them all at once.
//! This module owns `[server]`, `[policy]` and the keys common to every `[[sources]]` table;
//! each provider owns its own keys (`sources/<type>/config.rs`) and validates them through the
//! shared [`Validator`] (secrets from `*_file` / `*_env` into [`Secret`], which never prints).

use std::any::Any;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::activity::policy::{ActivityPolicy, ActivitySettings, RawActivityPolicy};
use crate::model::{CheckId, FactorType, Severity, Timestamp, N_CHECKS};

/// Default listen address (README "Commands": port 9863).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9863";

/// A secret value (token, client secret, private key). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself. Call sites should be few and obvious.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

// ---------------------------------------------------------------------------------------------
// Raw form: what the file and environment say, well-typed but not yet checked.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub web_config_file: Option<PathBuf>,
    pub api_token_file: Option<PathBuf>,
    pub api_token_env: Option<String>,
    pub max_connections: Option<u32>,
    pub header_read_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub external_url: Option<String>,
}

/// `[storage]`: where the exporter keeps state between restarts (finding history).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub dormant_after_days: Option<u32>,
    pub never_logged_in_grace_days: Option<u32>,
    pub password_max_age_days: Option<u32>,
    pub access_key_max_age_days: Option<u32>,
    pub secret_max_age_days: Option<u32>,
    pub certificate_max_age_days: Option<u32>,
    pub expiring_within_days: Option<u32>,
    pub weak_mfa_factors: Option<Vec<String>>,
    pub unused_privilege_days: Option<u32>,
    pub max_super_admins: Option<u32>,
    pub min_super_admins: Option<u32>,
    pub super_admin_roles: Option<Vec<String>>,
    pub exclude_accounts: Option<Vec<String>>,
    pub service_account_patterns: Option<Vec<String>>,
    pub privilege_rules: Option<Vec<RawPrivilegeRule>>,
    /// `[policy.checks."<check id>"]`: turn a check off or change its severity.
    pub checks: Option<BTreeMap<String, RawCheckControl>>,
    /// `[[policy.exceptions]]`: accepted findings, with a reason, an owner and an expiry.
    pub exceptions: Option<Vec<RawException>>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheckControl {
    pub enabled: Option<bool>,
    pub severity: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    pub check: Option<String>,
    pub account: Option<String>,
    pub reason: Option<String>,
    pub owner: Option<String>,
    pub expires: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivilegeRule {
    pub role: String,
    #[serde(default)]
    pub allow_groups: Vec<String>,
    #[serde(default)]
    pub allow_accounts: Vec<String>,
}

/// The keys every `[[sources]]` table accepts; the rest of the table belongs to the source's
/// provider, which reads it with its own raw struct (see [`SourceTypes`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCommon {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub source_type: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub policy: Option<RawPolicy>,
    pub max_rate_limit_share: Option<f64>,
    pub max_requests_per_poll: Option<u32>,
    pub max_accounts_per_poll: Option<u64>,
    pub max_bytes_per_poll: Option<String>,
    pub concurrency: Option<u32>,
    /// Read the source's sign-in event stream (activity analysis).
    pub activity: Option<bool>,
    pub activity_lookback: Option<String>,
    /// Per-source overrides of `[activity]`.
    pub activity_policy: Option<RawActivityPolicy>,
}

/// Keys every source accepts (the fields of [`RawCommon`]).
pub const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "interval",
    "timeout",
    "policy",
    "max_rate_limit_share",
    "max_requests_per_poll",
    "max_accounts_per_poll",
    "max_bytes_per_poll",
    "concurrency",
    "activity",
    "activity_lookback",
    "activity_policy",
];

/// Longest allowed `interval`: a source polled less often than weekly is not monitored.
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default `max_accounts_per_poll`.
pub const DEFAULT_MAX_ACCOUNTS: u64 = 5_000_000;
/// Default `max_bytes_per_poll`: response bytes read from the provider in one poll.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;

/// What the configuration needs to know about source types. The sources registry implements
/// it and the caller passes it in: this module knows no provider and none of their keys.
pub trait SourceTypes {
    /// Type names built into this binary, in registry order.
    fn types(&self) -> &[&'static str];
    /// Every type the product knows, built in or not (a type left out by a cargo feature gets
    /// a clearer message than an unknown one).
    fn known_types(&self) -> &[&'static str];
    /// Validates a provider's own keys (the table minus [`COMMON_KEYS`]), reporting every
    /// problem through `v`. Only called for a built type.
    fn validate(&self, ty: &str, keys: Dict, v: &mut Validator<'_>) -> Option<ProviderSettings>;
    /// The shortest interval allowed for the type (network sources protect the provider's
    /// rate limits).
    fn min_interval(&self, ty: &str) -> Duration;
    /// Whether the type has a sign-in event stream (`activity = true`).
    fn has_activity(&self, ty: &str) -> bool {
        let _ = ty;
        false
    }
}

/// A provider's validated keys, opaque here; the provider downcasts them back.
pub trait Settings: Any + std::fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
}
impl<T: Any + std::fmt::Debug + Send + Sync> Settings for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}
pub type ProviderSettings = Arc<dyn Settings>;

// ---------------------------------------------------------------------------------------------
// Validated form.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub policy: Policy,
    pub storage: StorageConfig,
    /// `[activity]`: the detectors' thresholds (sources may override them).
    pub activity: ActivityPolicy,
    pub sources: Vec<SourceConfig>,
    /// Problems that do not stop `serve` (each is logged as a warning when the configuration
    /// is loaded) but that `check-config` reports and fails on, each with its key path: a
    /// file source's file that does not exist yet (a cron job may write it after start).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub web_config_file: Option<PathBuf>,
    pub api_token: Option<Secret>,
    /// The URL people reach the exporter at (behind a proxy, say), without a trailing slash:
    /// absolute links in alerts (`identity_posture_exporter_web_info`) and pages.
    pub external_url: Option<String>,
    /// Connection cap and timeouts of the listener (docs/security.md).
    pub limits: ConnLimits,
}

/// How long and how many HTTP connections the listener keeps (`[server]` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most; at the cap the one that waited longest for a request is
    /// closed to make room, or the new one is refused when every connection is busy.
    pub max_connections: usize,
    /// A new connection (TLS handshake included), or a request already begun, must deliver
    /// its request headers within this time.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Where persisted state lives. `None`: in memory only (history restarts with the process).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageConfig {
    pub state_dir: Option<PathBuf>,
}

/// One validated `[[sources]]` table: the common keys, and the provider's own (opaque here).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    /// The source type: the `provider` label.
    pub provider: &'static str,
    pub interval: Duration,
    pub timeout: Duration,
    pub policy: Policy,
    pub limits: UpstreamLimits,
    /// Most accounts one poll may produce; more fail the poll (a provider paging forever).
    pub max_accounts_per_poll: u64,
    /// The sign-in event stream (`activity`, `activity_lookback`, thresholds).
    pub activity: ActivitySettings,
    /// The provider's validated keys.
    pub settings: ProviderSettings,
}

impl SourceConfig {
    /// A source with the common keys at their defaults (tests, benchmarks, embedding).
    pub fn new(
        name: impl Into<String>,
        provider: &'static str,
        settings: impl Settings,
    ) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            provider,
            interval: Duration::from_secs(15 * 60),
            timeout: Duration::from_secs(10 * 60),
            policy: Policy::default(),
            limits: UpstreamLimits::default(),
            max_accounts_per_poll: DEFAULT_MAX_ACCOUNTS,
            activity: ActivitySettings::default(),
            settings: Arc::new(settings),
        }
    }

    /// The `provider` label: the source type.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// The provider's keys, if they are of type `T`.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        // Through the trait object: `Arc` itself is `Settings` too, and would answer for itself.
        self.settings.as_ref().as_any().downcast_ref::<T>()
    }
}

/// Limits on how hard a source may use its upstream (shared HTTP layer).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamLimits {
    /// Share of the provider's remaining rate-limit budget the exporter may use (0..=1].
    pub max_rate_limit_share: f64,
    /// Upper bound on upstream requests in one poll; `None` = no bound.
    pub max_requests_per_poll: Option<u32>,
    /// Upper bound on response bytes read in one poll.
    pub max_bytes_per_poll: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            max_rate_limit_share: 0.5,
            max_requests_per_poll: None,
            max_bytes_per_poll: DEFAULT_MAX_BYTES,
            concurrency: 4,
        }
    }
}

/// Posture policy (README "Configuration", `[policy]`), after defaults and per-source overrides.
#[derive(Debug, Clone)]
pub struct Policy {
    pub dormant_after_days: u32,
    pub never_logged_in_grace_days: u32,
    pub password_max_age_days: u32,
    pub access_key_max_age_days: u32,
    pub secret_max_age_days: u32,
    pub certificate_max_age_days: u32,
    pub expiring_within_days: u32,
    /// Indexed by `FactorType as usize`.
    pub weak_mfa_factors: [bool; 10],
    pub unused_privilege_days: u32,
    pub max_super_admins: u32,
    pub min_super_admins: u32,
    /// Role names that count as super admin for the admin-count tenant checks.
    pub super_admin_roles: Vec<String>,
    pub exclude_accounts: LoginMatcher,
    pub service_account_patterns: LoginMatcher,
    pub privilege_rules: Vec<PrivilegeRule>,
    /// Per check, in `CheckId` order: enabled, and the severity findings carry.
    pub checks: [CheckSetting; N_CHECKS],
    /// Accepted findings; those of the source's own policy follow the global ones.
    pub exceptions: Vec<Exception>,
}

/// Whether a check runs and the severity of its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSetting {
    pub enabled: bool,
    pub severity: Severity,
}

/// An accepted finding (`[[policy.exceptions]]`): findings of `check` on accounts matching
/// `account` (a glob on the login, or the account id) are counted as excepted, not as
/// findings, until `expires`; then they count again.
#[derive(Debug, Clone)]
pub struct Exception {
    pub check: CheckId,
    /// The pattern as written (shown in the view and API).
    pub account: String,
    matcher: LoginMatcher,
    pub reason: String,
    pub owner: String,
    pub expires: Timestamp,
}

impl Exception {
    /// Whether the exception covers a finding of `check` on the account with this login and id
    /// at `now` (tenant findings have an empty login and id: only `account = "*"` covers them).
    pub fn covers(&self, check: CheckId, login: &str, id: &str, now: Timestamp) -> bool {
        self.check == check
            && now < self.expires
            && (self.matcher.matches(login) || (!id.is_empty() && self.account == id))
    }
}

/// Super-admin role names as each provider spells them.
pub const DEFAULT_SUPER_ADMIN_ROLES: &[&str] = &[
    "SUPER_ADMIN",          // Okta
    "Global Administrator", // Entra ID
    "Company Administrator",
    "_SEED_ADMIN_ROLE", // Google Workspace super admin (built-in role id name)
    "Super Admin",
    "owner",               // GitHub organisation owner
    "root",                // AWS IAM: the account's root user
    "AdministratorAccess", // AWS IAM: the AWS-managed policy granting everything
];

impl Default for Policy {
    fn default() -> Self {
        let mut errors = Vec::new();
        let p = Policy::from_raw(&RawPolicy::default(), None, "policy", &mut errors);
        debug_assert!(errors.is_empty());
        p
    }
}

#[derive(Debug, Clone)]
pub struct PrivilegeRule {
    pub role: String,
    pub allow_groups: HashSet<String>,
    pub allow_accounts: LoginMatcher,
}

/// Case-insensitive globs over logins (and ids).
#[derive(Clone, Default)]
pub struct LoginMatcher {
    patterns: Vec<String>,
    set: GlobSet,
    /// When every pattern is ASCII and literal, `prefix*`, `*suffix` or `prefix*suffix`,
    /// they are matched without globset (the checks run this twice per account).
    simple: Option<Vec<Simple>>,
}

/// A glob with at most one `*` and no other metacharacters, lowercased.
#[derive(Clone, Debug)]
struct Simple {
    prefix: String,
    /// `None` for a literal pattern (no `*`).
    suffix: Option<String>,
}

impl Simple {
    fn parse(p: &str) -> Option<Simple> {
        if !p.is_ascii() || p.contains(['?', '[', ']', '{', '}', '\\']) {
            return None;
        }
        let p = p.to_ascii_lowercase();
        match p.split_once('*') {
            None => Some(Simple {
                prefix: p,
                suffix: None,
            }),
            Some((a, b)) if !b.contains('*') => Some(Simple {
                prefix: a.to_string(),
                suffix: Some(b.to_string()),
            }),
            _ => None,
        }
    }

    fn matches(&self, s: &[u8]) -> bool {
        let pre = self.prefix.as_bytes();
        match &self.suffix {
            None => s.eq_ignore_ascii_case(pre),
            Some(suf) => {
                let suf = suf.as_bytes();
                s.len() >= pre.len() + suf.len()
                    && s[..pre.len()].eq_ignore_ascii_case(pre)
                    && s[s.len() - suf.len()..].eq_ignore_ascii_case(suf)
            }
        }
    }
}

impl std::fmt::Debug for LoginMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.patterns).finish()
    }
}

impl LoginMatcher {
    pub fn new(patterns: &[String]) -> Result<LoginMatcher, String> {
        let mut b = GlobSetBuilder::new();
        // Patterns and subjects are lowercased instead of building case-insensitive globs:
        // literal, prefix and suffix globs then stay on globset's fast paths.
        for p in patterns {
            let g = GlobBuilder::new(&p.to_lowercase())
                .literal_separator(false)
                .build()
                .map_err(|e| format!("invalid glob {p:?}: {e}"))?;
            b.add(g);
        }
        Ok(LoginMatcher {
            patterns: patterns.to_vec(),
            set: b.build().map_err(|e| e.to_string())?,
            simple: patterns.iter().map(|p| Simple::parse(p)).collect(),
        })
    }
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
    pub fn matches(&self, s: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        if let Some(simple) = &self.simple {
            if s.is_ascii() {
                return simple.iter().any(|p| p.matches(s.as_bytes()));
            }
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) || !s.is_ascii() {
            self.set.is_match(s.to_lowercase())
        } else {
            self.set.is_match(s)
        }
    }
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl Policy {
    pub fn is_weak(&self, f: FactorType) -> bool {
        self.weak_mfa_factors[f as usize]
    }

    pub fn check(&self, c: CheckId) -> CheckSetting {
        self.checks[c as usize]
    }

    pub fn severity(&self, c: CheckId) -> Severity {
        self.checks[c as usize].severity
    }

    /// The first exception covering a finding, as an index into `exceptions`.
    pub fn exception_for(
        &self,
        check: CheckId,
        login: &str,
        id: &str,
        now: Timestamp,
    ) -> Option<u16> {
        self.exceptions
            .iter()
            .position(|e| e.covers(check, login, id, now))
            .map(|i| i as u16)
    }

    /// Builds a policy from `raw` on top of `base` (or the documented defaults), pushing problems
    /// onto `errors` with `path` as the key prefix.
    pub fn from_raw(
        raw: &RawPolicy,
        base: Option<&Policy>,
        path: &str,
        errors: &mut Vec<String>,
    ) -> Policy {
        let b = base;
        let weak = match &raw.weak_mfa_factors {
            Some(list) => {
                let mut w = [false; 10];
                for f in list {
                    match FactorType::parse(f) {
                        Some(t) => w[t as usize] = true,
                        None => errors.push(format!(
                            "{path}.weak_mfa_factors: unknown factor type {f:?} (one of push, totp, webauthn, smart_card, hardware_token, sms, voice, email, question, other)"
                        )),
                    }
                }
                w
            }
            None => match b {
                Some(b) => b.weak_mfa_factors,
                None => {
                    let mut w = [false; 10];
                    for t in [
                        FactorType::Sms,
                        FactorType::Voice,
                        FactorType::Email,
                        FactorType::Question,
                    ] {
                        w[t as usize] = true;
                    }
                    w
                }
            },
        };
        let matcher = |key: &str,
                       v: &Option<Vec<String>>,
                       base: Option<&LoginMatcher>,
                       errors: &mut Vec<String>| {
            match v {
                Some(list) => LoginMatcher::new(list).unwrap_or_else(|e| {
                    errors.push(format!("{path}.{key}: {e}"));
                    LoginMatcher::default()
                }),
                None => base.cloned().unwrap_or_default(),
            }
        };
        let exclude = matcher(
            "exclude_accounts",
            &raw.exclude_accounts,
            b.map(|b| &b.exclude_accounts),
            errors,
        );
        let service = matcher(
            "service_account_patterns",
            &raw.service_account_patterns,
            b.map(|b| &b.service_account_patterns),
            errors,
        );
        let rules = match &raw.privilege_rules {
            Some(rules) => rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    if r.role.trim().is_empty() {
                        errors.push(format!(
                            "{path}.privilege_rules[{i}].role: must not be empty"
                        ));
                    }
                    PrivilegeRule {
                        role: r.role.clone(),
                        allow_groups: r.allow_groups.iter().cloned().collect(),
                        allow_accounts: LoginMatcher::new(&r.allow_accounts).unwrap_or_else(|e| {
                            errors.push(format!("{path}.privilege_rules[{i}].allow_accounts: {e}"));
                            LoginMatcher::default()
                        }),
                    }
                })
                .collect(),
            None => b.map(|b| b.privilege_rules.clone()).unwrap_or_default(),
        };
        let mut checks = match b {
            Some(b) => b.checks,
            None => CheckId::ALL.map(|c| CheckSetting {
                enabled: true,
                severity: c.default_severity(),
            }),
        };
        for (name, ctl) in raw.checks.iter().flatten() {
            let Some(c) = CheckId::parse(name) else {
                errors.push(format!(
                    "{path}.checks.{name:?}: unknown check (one of {})",
                    CheckId::ALL.map(CheckId::as_str).join(", ")
                ));
                continue;
            };
            if let Some(e) = ctl.enabled {
                checks[c as usize].enabled = e;
            }
            if let Some(sv) = &ctl.severity {
                match Severity::parse(sv) {
                    Some(sv) => checks[c as usize].severity = sv,
                    None => errors.push(format!(
                        "{path}.checks.{name:?}.severity: unknown severity {sv:?} (critical, high, medium or low)"
                    )),
                }
            }
        }
        let mut exceptions = b.map(|b| b.exceptions.clone()).unwrap_or_default();
        for (i, e) in raw.exceptions.iter().flatten().enumerate() {
            if let Some(e) = Exception::from_raw(e, &format!("{path}.exceptions[{i}]"), errors) {
                exceptions.push(e);
            }
        }
        // A number: this level's value, else the base's, else the documented default.
        macro_rules! num {
            ($f:ident, $default:expr) => {
                raw.$f.or(b.map(|b| b.$f)).unwrap_or($default)
            };
        }
        let p = Policy {
            dormant_after_days: num!(dormant_after_days, 90),
            never_logged_in_grace_days: num!(never_logged_in_grace_days, 30),
            // 0 = off: NIST SP 800-63B advises against periodic password rotation.
            password_max_age_days: num!(password_max_age_days, 0),
            access_key_max_age_days: num!(access_key_max_age_days, 90),
            secret_max_age_days: num!(secret_max_age_days, 180),
            certificate_max_age_days: num!(certificate_max_age_days, 365),
            expiring_within_days: num!(expiring_within_days, 30),
            weak_mfa_factors: weak,
            unused_privilege_days: num!(unused_privilege_days, 45),
            max_super_admins: num!(max_super_admins, 4),
            min_super_admins: num!(min_super_admins, 2),
            super_admin_roles: raw
                .super_admin_roles
                .clone()
                .or_else(|| b.map(|b| b.super_admin_roles.clone()))
                .unwrap_or_else(|| {
                    DEFAULT_SUPER_ADMIN_ROLES
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                }),
            exclude_accounts: exclude,
            service_account_patterns: service,
            privilege_rules: rules,
            checks,
            exceptions,
        };
        if p.min_super_admins > p.max_super_admins {
            errors.push(format!(
                "{path}.min_super_admins: {} is above max_super_admins {}",
                p.min_super_admins, p.max_super_admins
            ));
        }
        p
    }
}

impl Exception {
    fn from_raw(raw: &RawException, path: &str, errors: &mut Vec<String>) -> Option<Exception> {
        let before = errors.len();
        let mut text = |key: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => {
                errors.push(format!("{path}.{key}: missing required key"));
                String::new()
            }
        };
        let check_name = text("check", &raw.check);
        let account = text("account", &raw.account);
        let reason = text("reason", &raw.reason);
        let owner = text("owner", &raw.owner);
        let expires_s = text("expires", &raw.expires);
        let check = CheckId::parse(&check_name);
        if check.is_none() && !check_name.is_empty() {
            errors.push(format!(
                "{path}.check: unknown check {check_name:?} (one of {})",
                CheckId::ALL.map(CheckId::as_str).join(", ")
            ));
        }
        let expires = if expires_s.is_empty() {
            None
        } else {
            crate::model::parse_ts(&expires_s)
                .map_err(|_| {
                    errors.push(format!(
                        "{path}.expires: invalid date {expires_s:?} (RFC 3339 or YYYY-MM-DD)"
                    ))
                })
                .ok()
        };
        let matcher = LoginMatcher::new(std::slice::from_ref(&account)).unwrap_or_else(|e| {
            errors.push(format!("{path}.account: {e}"));
            LoginMatcher::default()
        });
        if errors.len() > before {
            return None;
        }
        Some(Exception {
            check: check?,
            account,
            matcher,
            reason,
            owner,
            expires: expires?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.
// ---------------------------------------------------------------------------------------------

/// Every problem found in a configuration, each naming its key path.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .problems.join("\n  "))]
pub struct ConfigErrors {
    pub problems: Vec<String>,
}

impl ConfigErrors {
    fn one(msg: String) -> ConfigErrors {
        ConfigErrors {
            problems: vec![msg],
        }
    }
}

/// The top-level tables of the configuration file.
const SECTIONS: &[&str] = &["server", "policy", "storage", "activity", "sources"];

/// Environment variables that belong to the command line, not to the configuration file.
const CLI_VARIABLES: &[&str] = &[
    "IPE_CONFIG",
    "IPE_SOURCES",
    "IPE_LOG_FORMAT",
    "IPE_LOG_LEVEL",
];

/// Reads `path` then the `IPE_` environment, and validates. Relative paths in the file
/// (`*_file` keys, a file source's `path`) are read relative to the file's directory.
pub fn load(path: &Path, types: &dyn SourceTypes) -> Result<Config, ConfigErrors> {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    load_with_env(path, types, &vars)
}

/// [`load`] with the environment given (tests never mutate the process environment).
pub fn load_with_env(
    path: &Path,
    types: &dyn SourceTypes,
    vars: &[(String, String)],
) -> Result<Config, ConfigErrors> {
    let text = read_config_file(path).map_err(ConfigErrors::one)?;
    let figment = Figment::new()
        .merge(Toml::string(&text))
        .merge(env_provider(vars));
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let env_map: HashMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut errors = env_problems(vars);
    let r = from_figment(
        &figment,
        &Inputs {
            base_dir: &base,
            env: &|name| env_map.get(name).map(|v| v.to_string()),
            source_vars: &source_vars(vars),
            types,
            warnings: Default::default(),
        },
    );
    match r {
        Ok(c) if errors.is_empty() => Ok(c),
        Ok(_) => Err(ConfigErrors { problems: errors }),
        Err(mut e) => {
            errors.append(&mut e.problems);
            Err(ConfigErrors { problems: errors })
        }
    }
}

/// A configuration file larger than this is refused (it cannot be one).
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// Reads the configuration file as text: says so when the path is missing or a directory,
/// and accepts a UTF-8 byte-order mark (PowerShell and Notepad write one).
fn read_config_file(path: &Path) -> Result<String, String> {
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{p}: no such file"),
        _ => format!("{p}: cannot read: {e}"),
    })?;
    if meta.is_dir() {
        return Err(format!(
            "{p}: is a directory; --config takes the configuration file (e.g. {p}/config.toml)"
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "{p}: {} bytes is too large for a configuration file (at most {} MiB)",
            meta.len(),
            MAX_CONFIG_BYTES >> 20
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{p}: cannot read: {e}"))?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        format!(
            "{p}: not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Validates a configuration given as a TOML string (tests, examples). Relative paths are
/// taken relative to the working directory; the process environment is not read. A leading
/// UTF-8 byte-order mark is ignored, as in [`load`].
pub fn from_toml_str(toml: &str, types: &dyn SourceTypes) -> Result<Config, ConfigErrors> {
    let toml = toml.strip_prefix('\u{feff}').unwrap_or(toml);
    from_figment(
        &Figment::new().merge(Toml::string(toml)),
        &Inputs {
            base_dir: Path::new("."),
            env: &|name| std::env::var(name).ok(),
            source_vars: &[],
            types,
            warnings: Default::default(),
        },
    )
}

/// The `IPE_SECTION__KEY` variables as a figment provider: nested keys only (`__` between
/// levels), so `IPE_CONFIG` and other command-line variables are left alone, and not the
/// `IPE_SOURCES__…` ones, which address a source by name (see [`source_vars`]). Values are
/// read as figment reads environment values (numbers, booleans, arrays, else strings).
struct EnvVars(Dict);

fn env_provider(vars: &[(String, String)]) -> EnvVars {
    let mut root = Dict::new();
    for (k, v) in vars {
        let Some(rest) = k.strip_prefix("IPE_") else {
            continue;
        };
        if !rest.contains("__") || rest.starts_with("SOURCES__") {
            continue;
        }
        let keys: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let value = Value::from_str(v).unwrap_or_else(|_| Value::from(v.clone()));
        let mut d = &mut root;
        for (i, key) in keys.iter().enumerate() {
            if i + 1 == keys.len() {
                d.insert(key.clone(), value);
                break;
            }
            let entry = d
                .entry(key.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            match entry {
                Value::Dict(_, inner) => d = inner,
                _ => break,
            }
        }
    }
    EnvVars(root)
}

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("`IPE_` environment variable(s)")
    }
    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.0.clone()))
    }
}

/// `IPE_*` variables that look like configuration but cannot be: a single `_` between
/// levels, or an unknown top-level section.
fn env_problems(vars: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (k, _) in vars {
        let Some(rest) = k.strip_prefix("IPE_") else {
            continue;
        };
        if CLI_VARIABLES.contains(&k.as_str()) || k == "IPE_GIT_REVISION" {
            continue;
        }
        let section = rest.split("__").next().unwrap_or("").to_ascii_lowercase();
        if !rest.contains("__") {
            let guess = SECTIONS
                .iter()
                .find(|s| section.starts_with(&format!("{s}_")))
                .map(|s| {
                    format!(
                        " (did you mean IPE_{}__{}?)",
                        s.to_ascii_uppercase(),
                        &rest[s.len() + 1..]
                    )
                })
                .unwrap_or_default();
            out.push(format!(
                "{k}: environment variable with the IPE_ prefix but no `__` between levels, so it configures nothing{guess}"
            ));
        } else if !SECTIONS.contains(&section.as_str()) {
            out.push(format!(
                "{k}: unknown section {section:?} (expected IPE_<SECTION>__<KEY> for a section of {}, or IPE_SOURCES__<name>__<key>)",
                SECTIONS.join(", ")
            ));
        }
    }
    out
}

/// `IPE_SOURCES__<NAME>__<KEY>[__<SUBKEY>]=value`: overrides a key of the source named NAME
/// (compared ignoring case, with `-` and `.` read as `_`, since variable names cannot hold
/// them). Returns (variable, name, key path, value).
type SourceVar = (String, String, Vec<String>, String);

fn source_vars(vars: &[(String, String)]) -> Vec<SourceVar> {
    let mut out = Vec::new();
    for (k, v) in vars {
        let Some(rest) = k.strip_prefix("IPE_SOURCES__") else {
            continue;
        };
        let mut parts = rest.split("__").map(|p| p.to_ascii_lowercase());
        let name = parts.next().unwrap_or_default();
        out.push((k.clone(), name, parts.collect(), v.clone()));
    }
    out
}

fn env_name_matches(var_name: &str, source_name: &str) -> bool {
    let norm = |s: &str| -> String {
        s.chars()
            .map(|c| match c {
                '-' | '.' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect()
    };
    norm(var_name) == norm(source_name)
}

/// What validation reads besides the figment.
pub struct Inputs<'a> {
    /// Relative paths are taken relative to this directory.
    pub base_dir: &'a Path,
    /// Reads an environment variable (`*_env` secrets).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `IPE_SOURCES__…` overrides.
    source_vars: &'a [SourceVar],
    pub types: &'a dyn SourceTypes,
    /// What [`Validator::warn`] records (→ [`Config::warnings`]).
    warnings: std::cell::RefCell<Vec<String>>,
}

/// The core of loading.
fn from_figment(figment: &Figment, inputs: &Inputs<'_>) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();

    // Unknown top-level keys.
    const TOP: &[&str] = SECTIONS;
    match figment.extract::<BTreeMap<String, Value>>() {
        Ok(top) => {
            for k in top.keys() {
                if !TOP.contains(&k.as_str()) {
                    errors.push(format!(
                        "{k}: unknown key{} (expected one of {})",
                        suggest(k, TOP),
                        TOP.join(", ")
                    ));
                }
            }
        }
        Err(e) => errors.extend(figment_errors(e, "", None)),
    }

    let raw_server: RawServer = section(figment, "server", &mut errors);
    let raw_policy: RawPolicy = section(figment, "policy", &mut errors);
    let raw_storage: RawStorage = section(figment, "storage", &mut errors);
    let storage = StorageConfig {
        state_dir: raw_storage.state_dir,
    };
    if let Some(d) = &storage.state_dir {
        if d.exists() && !d.is_dir() {
            errors.push(format!(
                "storage.state_dir: {} exists and is not a directory",
                d.display()
            ));
        }
    }

    let server = validate_server(&raw_server, inputs, &mut errors);
    let policy = Policy::from_raw(&raw_policy, None, "policy", &mut errors);
    let raw_activity: RawActivityPolicy = section(figment, "activity", &mut errors);
    let activity = ActivityPolicy::from_raw(&raw_activity, None, "activity", &mut errors);

    let mut sources = Vec::new();
    let items = match figment.find_value("sources") {
        Ok(Value::Array(_, items)) => items,
        Ok(_) => {
            errors.push("sources: must be an array of tables ([[sources]])".into());
            Vec::new()
        }
        Err(_) => Vec::new(),
    };
    let mut items: Vec<Value> = items;
    apply_source_vars(&mut items, inputs.source_vars, &mut errors);
    let mut names = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("sources[{i}]");
        if let Some(s) = validate_source(item, &path, &policy, &activity, inputs, &mut errors) {
            if !names.insert(s.name.clone()) {
                errors.push(format!("{path}.name: duplicate source name {:?}", s.name));
            }
            sources.push(s);
        }
    }
    if sources.is_empty() && errors.is_empty() {
        errors.push("sources: at least one [[sources]] entry is required".into());
    }

    if errors.is_empty() {
        Ok(Config {
            server,
            policy,
            storage,
            activity,
            sources,
            warnings: inputs.warnings.take(),
        })
    } else {
        Err(ConfigErrors { problems: errors })
    }
}

/// Applies `IPE_SOURCES__<NAME>__<KEY>` variables to the source tables, or says why not.
fn apply_source_vars(items: &mut [Value], vars: &[SourceVar], errors: &mut Vec<String>) {
    for (var, name, keys, raw) in vars {
        if keys.is_empty() {
            errors.push(format!(
                "{var}: name a key after the source, e.g. IPE_SOURCES__{}__INTERVAL",
                name.to_ascii_uppercase()
            ));
            continue;
        }
        let target = items.iter_mut().find(|it| {
            it.find_ref("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| env_name_matches(name, n))
        });
        let Some(Value::Dict(_, dict)) = target else {
            errors.push(format!(
                "{var}: no [[sources]] entry is named {name:?} (compared ignoring case, with - and . as _)"
            ));
            continue;
        };
        let value = Value::from_str(raw).unwrap_or_else(|_| Value::from(raw.clone()));
        let mut d = dict;
        for (depth, k) in keys.iter().enumerate() {
            if depth + 1 == keys.len() {
                d.insert(k.clone(), value);
                break;
            }
            let entry = d
                .entry(k.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            match entry {
                Value::Dict(_, inner) => d = inner,
                _ => {
                    errors.push(format!("{var}: {k} is not a table"));
                    break;
                }
            }
        }
    }
}

fn section<T: Default + for<'de> Deserialize<'de>>(
    figment: &Figment,
    key: &str,
    errors: &mut Vec<String>,
) -> T {
    if figment.find_value(key).is_err() {
        return T::default();
    }
    match figment.focus(key).extract::<T>() {
        Ok(v) => v,
        Err(e) => {
            errors.extend(figment_errors(e, key, None));
            T::default()
        }
    }
}

/// `" (did you mean `x`?)"` when one of `candidates` is close to `key`, else `""`.
pub fn suggest(key: &str, candidates: &[&str]) -> String {
    let best = candidates
        .iter()
        .map(|c| (edit_distance(key, c), *c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d > 0 && d <= (key.len().max(c.len()) / 3).max(2) => {
            format!(" (did you mean `{c}`?)")
        }
        _ => String::new(),
    }
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Turns figment's errors into "path: message" lines, without echoing values (a value may be
/// a misplaced secret). `provider` names the source type when the keys are a provider's, so an
/// unknown key says whose keys were expected. A value from the environment names its variable.
fn figment_errors(e: figment::Error, prefix: &str, provider: Option<&str>) -> Vec<String> {
    e.into_iter()
        .map(|e| {
            let mut path = prefix.to_string();
            for p in &e.path {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(p);
            }
            let msg = match &e.kind {
                figment::error::Kind::UnknownField(f, expected) => {
                    if e.path.last() != Some(f) {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(f);
                    }
                    let hint = suggest(f, expected);
                    match provider {
                        Some(t) => format!(
                            "not a key of type {t}{hint} (its keys: {}, and the common ones: {})",
                            expected.join(", "),
                            COMMON_KEYS.join(", ")
                        ),
                        None => format!(
                            "unknown key{hint} (expected one of {})",
                            expected.join(", ")
                        ),
                    }
                }
                figment::error::Kind::InvalidType(actual, expected) => {
                    format!("expected {expected}, found {}", kind_name(actual))
                }
                figment::error::Kind::MissingField(f) => {
                    if e.path.last().map(String::as_str) != Some(f.as_ref()) {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(f);
                    }
                    "missing required key".to_string()
                }
                other => without_source_excerpt(&other.to_string()),
            };
            // A value that came from the environment: name the variable.
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            let msg = if from_env {
                let var = format!("IPE_{}", path.replace('.', "__").to_ascii_uppercase());
                format!("{msg} (set by environment variable {var})")
            } else {
                msg
            };
            if path.is_empty() {
                msg
            } else {
                format!("{path}: {msg}")
            }
        })
        .collect()
}

/// A TOML syntax error quotes the offending line (`2 | key = "value"`) under a caret; the
/// line may hold a misplaced secret, so only the position and the message are kept.
fn without_source_excerpt(msg: &str) -> String {
    msg.lines()
        .filter(|l| {
            let t = l.trim_start();
            let digits = t.trim_start_matches(|c: char| c.is_ascii_digit());
            !(digits.starts_with('|') || digits.starts_with(" |"))
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

fn kind_name(a: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match a {
        Actual::Str(_) => "a string".into(),
        Actual::Signed(_) | Actual::Unsigned(_) => "an integer".into(),
        Actual::Float(_) => "a float".into(),
        Actual::Bool(_) => "a boolean".into(),
        other => other.to_string(),
    }
}

fn validate_server(raw: &RawServer, inputs: &Inputs<'_>, errors: &mut Vec<String>) -> ServerConfig {
    let listen_str = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match parse_listen(listen_str) {
        Ok(a) => a,
        Err(e) => {
            errors.push(format!("server.listen: {e}"));
            DEFAULT_LISTEN.parse().expect("default listen address")
        }
    };
    let mut v = Validator::new("server".into(), errors, inputs);
    let web_config_file = raw.web_config_file.as_deref().map(|p| v.resolve(p));
    if let Some(p) = &web_config_file {
        if !p.exists() {
            v.error("web_config_file", format!("{} does not exist", p.display()));
        }
    }
    let api_token = v.secret(
        "api_token",
        raw.api_token_file.as_deref(),
        raw.api_token_env.as_deref(),
        false,
    );
    let d = ConnLimits::default();
    let max_connections = match raw.max_connections {
        None => d.max_connections,
        Some(n @ 1..=1_000_000) => n as usize,
        Some(n) => {
            v.error(
                "max_connections",
                format!("{n} is out of range (1 to 1000000)"),
            );
            d.max_connections
        }
    };
    let header_read_timeout = v.duration(
        "header_read_timeout",
        raw.header_read_timeout.as_deref(),
        d.header_read_timeout,
    );
    let idle_timeout = v.duration("idle_timeout", raw.idle_timeout.as_deref(), d.idle_timeout);
    for (key, t) in [
        ("header_read_timeout", header_read_timeout),
        ("idle_timeout", idle_timeout),
    ] {
        if t > Duration::from_secs(3600) {
            v.error(key, "at most 1h");
        }
    }
    let external_url = raw
        .external_url
        .as_deref()
        .and_then(|u| match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                Some(u.trim_end_matches('/').to_string())
            }
            _ => {
                errors.push(format!(
                    "server.external_url: {u:?} is not an absolute http:// or https:// URL"
                ));
                None
            }
        });
    ServerConfig {
        listen,
        web_config_file,
        api_token,
        limits: ConnLimits {
            max_connections,
            header_read_timeout,
            idle_timeout,
        },
        external_url,
    }
}

/// Parses `host:port`, accepting `localhost:PORT` and `:PORT` (all interfaces).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        return format!("0.0.0.0:{port}")
            .parse()
            .map_err(|_| format!("invalid listen address {s:?}"));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        return format!("127.0.0.1:{port}")
            .parse()
            .map_err(|_| format!("invalid listen address {s:?}"));
    }
    s.parse()
        .map_err(|_| format!("invalid listen address {s:?} (expected HOST:PORT)"))
}

/// Parses a byte size: a plain number of bytes, or a number with `KiB`, `MiB`, `GiB`, `TiB`
/// (or `KB`, `MB`, `GB`, `TB`, powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; use e.g. \"512MiB\" or \"10GiB\""))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?}; use KiB, MiB, GiB or TiB"
            ))
        }
    };
    let v = n * mult;
    if !v.is_finite() || v < 1.0 || v > u64::MAX as f64 {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(v as u64)
}

/// `https://` everywhere, `http://` only for loopback hosts (tests, local mocks).
pub fn validate_url(path: &str, s: &str, errors: &mut Vec<String>) -> Option<String> {
    match url::Url::parse(s) {
        Ok(u) => {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            match u.scheme() {
                "https" => {}
                "http" if loopback => {}
                "http" => {
                    errors.push(format!(
                        "{path}: {s:?} must use https:// (http:// is accepted only for loopback hosts)"
                    ));
                    return None;
                }
                other => {
                    errors.push(format!("{path}: unsupported URL scheme {other:?}"));
                    return None;
                }
            }
            if u.host().is_none() {
                errors.push(format!("{path}: {s:?} has no host"));
                return None;
            }
            if u.query().is_some() || u.fragment().is_some() {
                errors.push(format!(
                    "{path}: {s:?} must be a base URL without a query or fragment"
                ));
                return None;
            }
            Some(s.trim_end_matches('/').to_string())
        }
        Err(e) => {
            errors.push(format!("{path}: invalid URL {s:?}: {e}"));
            None
        }
    }
}

/// Validates a provider's keys: every problem is recorded with its key path (never with a
/// secret's value), so `check-config` can print them all at once. Providers call these
/// helpers from their `validate`; each returns `None` (after recording why) when the key is
/// unusable.
pub struct Validator<'a> {
    path: String,
    errors: &'a mut Vec<String>,
    inputs: &'a Inputs<'a>,
    before: usize,
}

impl<'a> Validator<'a> {
    fn new(path: String, errors: &'a mut Vec<String>, inputs: &'a Inputs<'a>) -> Validator<'a> {
        let before = errors.len();
        Validator {
            path,
            errors,
            inputs,
            before,
        }
    }

    /// The key path of the table, e.g. `sources[0] (okta-prod)`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records a problem with `key` (`""` for the table itself).
    pub fn error(&mut self, key: &str, msg: impl std::fmt::Display) {
        if key.is_empty() {
            self.errors.push(format!("{}: {msg}", self.path));
        } else {
            self.errors.push(format!("{}.{key}: {msg}", self.path));
        }
    }

    /// Records a problem with `key` that does not stop `serve` (it logs it) but fails
    /// `check-config`: see [`Config::warnings`].
    pub fn warn(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.inputs
            .warnings
            .borrow_mut()
            .push(format!("{}.{key}: {msg}", self.path));
    }

    /// Whether any problem was recorded through this validator.
    pub fn failed(&self) -> bool {
        self.errors.len() > self.before
    }

    /// A non-blank string, trimmed; missing or blank is a problem.
    pub fn required(&mut self, key: &str, v: Option<&str>) -> Option<String> {
        match v.map(str::trim) {
            Some(v) if !v.is_empty() => Some(v.to_string()),
            _ => {
                self.error(key, "missing required key");
                None
            }
        }
    }

    /// A required upstream base URL (`https://`, or `http://` to loopback).
    pub fn url(&mut self, key: &str, v: Option<&str>) -> Option<String> {
        let v = self.required(key, v)?;
        let path = format!("{}.{key}", self.path);
        let r = validate_url(&path, &v, self.errors);
        if let Some(u) = &r {
            self.api_path_mistake(key, u);
        }
        r
    }

    /// An upstream base URL with a provider default.
    pub fn url_or(&mut self, key: &str, v: Option<&str>, default: &str) -> Option<String> {
        let path = format!("{}.{key}", self.path);
        let r = validate_url(&path, v.unwrap_or(default), self.errors);
        if let (Some(u), Some(_)) = (&r, v) {
            self.api_path_mistake(key, u);
        }
        r
    }

    /// Base URLs are the provider's root: a pasted API path (`…/api/v1`, `…/v1.0`) would be
    /// doubled by the source.
    fn api_path_mistake(&mut self, key: &str, url: &str) {
        const SUFFIXES: &[&str] = &["/api/v1", "/v1.0", "/beta", "/oauth2/v1/token"];
        if let Some(s) = SUFFIXES.iter().find(|s| url.ends_with(*s)) {
            self.error(
                key,
                format!(
                    "{url:?} ends in {s}: give the base URL only (the source adds the API path)"
                ),
            );
        }
    }

    /// A duration string (`"30s"`, `"15m"`) longer than zero.
    pub fn duration(&mut self, key: &str, v: Option<&str>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d.is_zero() => {
                    self.error(key, "must be longer than zero");
                    default
                }
                Ok(d) => d,
                Err(e) => {
                    self.error(
                        key,
                        format!("invalid duration {s:?} ({e}); use e.g. \"30s\", \"15m\", \"1h\""),
                    );
                    default
                }
            },
        }
    }

    /// A path from the configuration, relative ones resolved against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.inputs.base_dir.join(p)
        }
    }

    /// A secret from `<key>_file` or `<key>_env` (trailing newline trimmed). Problems name the
    /// key and the file or variable, never the value.
    pub fn secret(
        &mut self,
        key: &str,
        file: Option<&Path>,
        env_name: Option<&str>,
        required: bool,
    ) -> Option<Secret> {
        match (file, env_name) {
            (Some(_), Some(_)) => {
                self.error(&format!("{key}_file and {key}_env"), "set only one");
                None
            }
            (Some(path), None) => {
                let path = self.resolve(path);
                match std::fs::read_to_string(&path) {
                    Ok(s) => {
                        let s = s.trim_end_matches(['\n', '\r']).to_string();
                        if s.is_empty() {
                            self.error(
                                &format!("{key}_file"),
                                format!("{} is empty", path.display()),
                            );
                            None
                        } else {
                            Some(Secret(s))
                        }
                    }
                    Err(e) => {
                        self.error(
                            &format!("{key}_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            (None, Some(name)) => match (self.inputs.env)(name) {
                Some(v) if !v.is_empty() => Some(Secret(v.trim_end_matches(['\n', '\r']).into())),
                _ => {
                    self.error(
                        &format!("{key}_env"),
                        format!("environment variable {name} is not set or empty"),
                    );
                    None
                }
            },
            (None, None) => {
                if required {
                    self.error(&format!("{key}_file or {key}_env"), "required");
                }
                None
            }
        }
    }

    /// A private key from `<key>_file` or `<key>_env` that must be `usable` (for the sources:
    /// [`signs_jwts`](crate::sources::signs_jwts), PEM or JWK): it is tried once here, so an
    /// unparsable key is a configuration problem naming its key path (and file), for
    /// `check-config` as for `serve`.
    pub fn private_key(
        &mut self,
        key: &str,
        file: Option<&Path>,
        env_name: Option<&str>,
        required: bool,
        usable: impl FnOnce(&Secret) -> Result<(), String>,
    ) -> Option<Secret> {
        let secret = self.secret(key, file, env_name, required)?;
        match usable(&secret) {
            Ok(()) => Some(secret),
            Err(msg) => {
                match file {
                    Some(p) => self.error(
                        &format!("{key}_file"),
                        format!("{}: {msg}", self.resolve(p).display()),
                    ),
                    None => self.error(
                        &format!("{key}_env"),
                        format!(
                            "environment variable {}: {msg}",
                            env_name.unwrap_or_default()
                        ),
                    ),
                }
                None
            }
        }
    }

    /// A text file the configuration names (a certificate), resolved and read.
    pub fn file_text(&mut self, key: &str, p: &Path) -> Option<String> {
        let path = self.resolve(p);
        match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(key, format!("cannot read {}: {e}", path.display()));
                None
            }
        }
    }

    /// Mutually exclusive groups of keys, each `(description, present)`: more than one present
    /// is a problem. Returns the index of the one present, if exactly one is.
    pub fn one_of(&mut self, groups: &[(&str, bool)]) -> Option<usize> {
        let present: Vec<usize> = (0..groups.len()).filter(|i| groups[*i].1).collect();
        match present.as_slice() {
            [i] => Some(*i),
            [] => None,
            _ => {
                let names: Vec<&str> = groups.iter().map(|g| g.0).collect();
                self.error("", format!("use either {}, not both", names.join(" or ")));
                None
            }
        }
    }
}

/// Validates one `[[sources]]` table: the common keys here, the provider's through `types`.
fn validate_source(
    item: Value,
    path: &str,
    global_policy: &Policy,
    global_activity: &ActivityPolicy,
    inputs: &Inputs<'_>,
    errors: &mut Vec<String>,
) -> Option<SourceConfig> {
    let before = errors.len();
    let Value::Dict(_, mut dict) = item else {
        errors.push(format!("{path}: must be a table"));
        return None;
    };
    let mut common = Dict::new();
    for k in COMMON_KEYS {
        if let Some(v) = dict.remove(*k) {
            common.insert(k.to_string(), v);
        }
    }
    // Name the source in every message, also those about the common keys.
    let named = match common.get("name").and_then(|n| n.as_str()) {
        Some(n) if valid_name(n) => format!("{path} ({n})"),
        _ => path.to_string(),
    };
    let raw = match RawCommon::deserialize(&Value::from(common)) {
        Ok(r) => r,
        Err(e) => {
            errors.extend(figment_errors(e, &named, None));
            return None;
        }
    };
    let name = match raw.name.as_deref() {
        Some(n) if valid_name(n) => n.to_string(),
        Some(n) => {
            errors.push(format!(
                "{path}.name: {n:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
            ));
            return None;
        }
        None => {
            errors.push(format!("{path}.name: missing required key"));
            return None;
        }
    };
    let path = format!("{path} ({name})");
    let Some(source_type) = raw.source_type.as_deref() else {
        errors.push(format!("{path}.type: missing required key"));
        return None;
    };
    let types = inputs.types;
    let Some(provider) = types.types().iter().find(|t| **t == source_type).copied() else {
        if types.known_types().contains(&source_type) {
            errors.push(format!(
                "{path}.type: source type {source_type:?} is not built into this binary (built: {}; rebuild with the cargo feature {source_type:?})",
                types.types().join(", ")
            ));
        } else {
            errors.push(format!(
                "{path}.type: unknown source type {source_type:?}{} (one of {})",
                suggest(source_type, types.types()),
                types.types().join(", ")
            ));
        }
        return None;
    };

    let mut v = Validator::new(path.clone(), errors, inputs);
    let min = types.min_interval(provider);
    let interval = v.duration(
        "interval",
        raw.interval.as_deref(),
        Duration::from_secs(15 * 60),
    );
    if interval < min || interval > MAX_INTERVAL {
        v.error(
            "interval",
            format!(
                "{} is outside {}..{} for a {provider} source (a shorter interval would spend the provider's rate limit; a longer one is not monitoring)",
                humantime::format_duration(interval),
                humantime::format_duration(min),
                humantime::format_duration(MAX_INTERVAL)
            ),
        );
    }
    let timeout = v.duration(
        "timeout",
        raw.timeout.as_deref(),
        interval.min(Duration::from_secs(10 * 60)),
    );
    if timeout > Duration::from_secs(24 * 3600) {
        v.error("timeout", "must be at most 24h");
    }
    let share = raw.max_rate_limit_share.unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        v.error("max_rate_limit_share", format!("{share} must be in (0, 1]"));
    }
    let concurrency = raw.concurrency.unwrap_or(4);
    if concurrency == 0 || concurrency > 64 {
        v.error("concurrency", format!("{concurrency} must be 1..=64"));
    }
    if raw.max_requests_per_poll == Some(0) {
        v.error("max_requests_per_poll", "must be at least 1");
    }
    if raw.max_accounts_per_poll == Some(0) {
        v.error("max_accounts_per_poll", "must be at least 1");
    }
    let max_bytes = match raw.max_bytes_per_poll.as_deref().map(parse_size) {
        None => DEFAULT_MAX_BYTES,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            v.error("max_bytes_per_poll", e);
            DEFAULT_MAX_BYTES
        }
    };
    let limits = UpstreamLimits {
        max_rate_limit_share: share,
        max_requests_per_poll: raw.max_requests_per_poll,
        max_bytes_per_poll: max_bytes,
        concurrency: concurrency as usize,
    };
    let activity_enabled = raw.activity.unwrap_or(false);
    if activity_enabled && !types.has_activity(provider) {
        v.error(
            "activity",
            format!("a {provider} source has no sign-in event stream (activity analysis reads the Okta System Log, Entra sign-in logs, the Google Workspace login audit and the file source's events_path)"),
        );
    }
    let lookback = v.duration(
        "activity_lookback",
        raw.activity_lookback.as_deref(),
        crate::activity::policy::DEFAULT_LOOKBACK,
    );
    if lookback > Duration::from_secs(30 * 24 * 3600) {
        v.error("activity_lookback", "must be at most 30d");
    }
    if !activity_enabled && (raw.activity_lookback.is_some() || raw.activity_policy.is_some()) {
        v.error(
            "activity",
            "activity_lookback and activity_policy apply only with activity = true",
        );
    }
    let settings = types.validate(provider, dict, &mut v);
    let activity = ActivitySettings {
        enabled: activity_enabled,
        lookback,
        policy: match &raw.activity_policy {
            Some(p) => ActivityPolicy::from_raw(
                p,
                Some(global_activity),
                &format!("{path}.activity_policy"),
                errors,
            ),
            None => global_activity.clone(),
        },
    };
    let policy = match &raw.policy {
        Some(p) => Policy::from_raw(p, Some(global_policy), &format!("{path}.policy"), errors),
        None => global_policy.clone(),
    };
    if errors.len() > before {
        return None;
    }
    Some(SourceConfig {
        name,
        provider,
        interval,
        timeout,
        policy,
        limits,
        max_accounts_per_poll: raw.max_accounts_per_poll.unwrap_or(DEFAULT_MAX_ACCOUNTS),
        activity,
        settings: settings?,
    })
}

/// Deserialises a provider's raw keys from its part of a `[[sources]]` table, recording
/// serde's problems (an unknown key is named with the provider's key list). An unknown key
/// is set aside and the rest read again, so the other keys are still checked.
pub fn provider_keys<T: for<'de> Deserialize<'de>>(
    provider: &str,
    mut keys: Dict,
    v: &mut Validator<'_>,
) -> Option<T> {
    loop {
        match T::deserialize(&Value::from(keys.clone())) {
            // With unknown keys set aside the problems are already recorded, and the source is
            // refused; the rest is still validated, so every problem shows at once.
            Ok(t) => return Some(t),
            Err(e) => {
                let key = match &e.kind {
                    figment::error::Kind::UnknownField(f, _) if e.path.len() <= 1 => {
                        Some(f.clone())
                    }
                    _ => None,
                };
                let lines = figment_errors(e, &v.path, Some(provider));
                v.errors.extend(lines);
                match key {
                    Some(k) if keys.remove(&k).is_some() => {}
                    _ => return None,
                }
            }
        }
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider for these tests (this module knows no real one): `path`, `url`, and a
    /// `token_file`/`token_env` secret.
    struct Fake;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawFake {
        path: Option<PathBuf>,
        url: Option<String>,
        token_file: Option<PathBuf>,
        token_env: Option<String>,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct FakeSettings {
        path: PathBuf,
        url: Option<String>,
        token: Option<Secret>,
    }

    impl SourceTypes for Fake {
        fn types(&self) -> &[&'static str] {
            &["fake", "local"]
        }
        fn known_types(&self) -> &[&'static str] {
            &["fake", "local", "absent"]
        }
        fn validate(
            &self,
            ty: &str,
            keys: Dict,
            v: &mut Validator<'_>,
        ) -> Option<ProviderSettings> {
            let raw: RawFake = provider_keys(ty, keys, v)?;
            let url = raw.url.as_deref().and_then(|u| v.url("url", Some(u)));
            let token = v.secret(
                "token",
                raw.token_file.as_deref(),
                raw.token_env.as_deref(),
                false,
            );
            let path = match raw.path {
                Some(p) => v.resolve(&p),
                None => {
                    v.error("path", "missing required key");
                    return None;
                }
            };
            Some(Arc::new(FakeSettings { path, url, token }))
        }
        fn min_interval(&self, ty: &str) -> Duration {
            if ty == "local" {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(30)
            }
        }
    }

    fn parse(toml: &str) -> Result<Config, ConfigErrors> {
        from_toml_str(toml, &Fake)
    }

    fn errs(toml: &str) -> Vec<String> {
        parse(toml).unwrap_err().problems
    }

    #[test]
    fn minimal_source_gets_spec_defaults() {
        let c =
            parse("[[sources]]\nname = \"demo\"\ntype = \"fake\"\npath = \"x.json\"\n").unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:9863");
        let p = &c.sources[0].policy;
        assert_eq!(p.dormant_after_days, 90);
        assert_eq!(p.never_logged_in_grace_days, 30);
        assert_eq!(
            p.password_max_age_days, 0,
            "off by default (NIST SP 800-63B)"
        );
        assert_eq!(p.access_key_max_age_days, 90);
        assert_eq!(p.secret_max_age_days, 180);
        assert_eq!(p.certificate_max_age_days, 365);
        assert_eq!(p.expiring_within_days, 30);
        assert_eq!(p.unused_privilege_days, 45);
        assert_eq!((p.min_super_admins, p.max_super_admins), (2, 4));
        assert!(p.is_weak(FactorType::Sms) && p.is_weak(FactorType::Question));
        assert!(!p.is_weak(FactorType::Push));
        let s = &c.sources[0];
        assert_eq!(s.interval, Duration::from_secs(900));
        assert_eq!(s.limits.max_rate_limit_share, 0.5);
        assert_eq!(s.limits.max_bytes_per_poll, DEFAULT_MAX_BYTES);
        assert_eq!(s.max_accounts_per_poll, DEFAULT_MAX_ACCOUNTS);
        assert_eq!(s.provider(), "fake");
        let f = s.settings::<FakeSettings>().unwrap();
        assert_eq!(f.path, Path::new("./x.json"));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let e = errs(
            r#"
bogus = 1
[server]
listen = "nope"
colour = "red"
[policy]
weak_mfa_factors = ["sms", "carrier-pigeon"]
[[sources]]
name = "a"
type = "fake"
interval = "soon"
[[sources]]
name = "b"
type = "fake"
url = "http://example.okta.com"
path = "x"
pth = "y"
token_env = "IPE_TEST_SURELY_UNSET_VARIABLE"
[[sources]]
name = "c"
type = "ldap"
[[sources]]
name = "d"
type = "absent"
[[sources]]
name = "e"
type = "fak"
"#,
        );
        let all = e.join("\n");
        for needle in [
            "bogus: unknown key",
            "server.colour: unknown key",
            "policy.weak_mfa_factors: unknown factor type \"carrier-pigeon\"",
            "sources[0] (a).interval: invalid duration",
            "sources[0] (a).path: missing required key",
            "sources[1] (b).url: \"http://example.okta.com\" must use https://",
            "sources[1] (b).pth: not a key of type fake (did you mean `path`?)",
            "sources[1] (b).token_env: environment variable IPE_TEST_SURELY_UNSET_VARIABLE",
            "sources[2] (c).type: unknown source type \"ldap\" (one of fake, local)",
            "sources[3] (d).type: source type \"absent\" is not built into this binary",
            "sources[4] (e).type: unknown source type \"fak\" (did you mean `fake`?)",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn unknown_key_in_source_policy_is_named() {
        let e = errs(
            "[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"x\"\npolicy = { dormant_days = 3 }\n",
        );
        assert!(
            e.iter()
                .any(|m| m.contains("sources[0] (a).policy.dormant_days")),
            "{e:?}"
        );
    }

    #[test]
    fn intervals_are_bounded_by_the_provider() {
        let e =
            errs("[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"x\"\ninterval = \"1ns\"\n");
        assert!(
            e[0].contains("interval: 1ns is outside 30s..7days for a fake source"),
            "{e:?}"
        );
        assert!(parse(
            "[[sources]]\nname = \"a\"\ntype = \"local\"\npath = \"x\"\ninterval = \"1s\"\n"
        )
        .is_ok());
        let e = errs(
            "[[sources]]\nname = \"a\"\ntype = \"local\"\npath = \"x\"\ninterval = \"500ms\"\n",
        );
        assert!(e[0].contains("outside 1s.."), "{e:?}");
        let e =
            errs("[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"x\"\ninterval = \"30d\"\n");
        assert!(e[0].contains("interval"), "{e:?}");
    }

    #[test]
    fn limits_are_checked() {
        let e = errs(
            "[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"x\"\nmax_bytes_per_poll = \"lots\"\nmax_accounts_per_poll = 0\nconcurrency = 0\nmax_rate_limit_share = 1.5\n",
        );
        let all = e.join("\n");
        for k in [
            "max_bytes_per_poll",
            "max_accounts_per_poll",
            "concurrency",
            "max_rate_limit_share",
        ] {
            assert!(all.contains(&format!("sources[0] (a).{k}")), "{k}: {all}");
        }
        let c = parse("[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"x\"\nmax_bytes_per_poll = \"512MiB\"\n").unwrap();
        assert_eq!(c.sources[0].limits.max_bytes_per_poll, 512 << 20);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("0").is_err() && parse_size("5 parsecs").is_err());
    }

    #[test]
    fn per_source_policy_overrides_global() {
        let c = parse(
            r#"[policy]
dormant_after_days = 60
exclude_accounts = ["breakglass-*@example.com"]
[[sources]]
name = "a"
type = "fake"
path = "x"
policy = { dormant_after_days = 30 }
[[sources]]
name = "b"
type = "fake"
path = "y"
"#,
        )
        .unwrap();
        assert_eq!(c.sources[0].policy.dormant_after_days, 30);
        assert!(c.sources[0]
            .policy
            .exclude_accounts
            .matches("BreakGlass-1@Example.com"));
        assert_eq!(c.sources[1].policy.dormant_after_days, 60);
    }

    #[test]
    fn check_settings_merge_per_check_and_exceptions_add_up_per_source() {
        let c = parse(
            r#"[policy.checks."mfa.weak"]
severity = "high"
enabled = true
[[policy.exceptions]]
check = "mfa.missing"
account = "kiosk-*"
reason = "r"
owner = "o"
expires = "2027-01-01"
[[sources]]
name = "a"
type = "fake"
path = "x"
policy = { checks = { "mfa.weak" = { enabled = false } }, exceptions = [{ check = "mfa.weak", account = "u-1", reason = "r2", owner = "o2", expires = "2027-02-01T00:00:00Z" }] }
[[sources]]
name = "b"
type = "fake"
path = "y"
"#,
        )
        .unwrap();
        let a = &c.sources[0].policy;
        let w = a.check(CheckId::MfaWeak);
        assert!(!w.enabled, "the source turns it off");
        assert_eq!(w.severity, Severity::High, "the global severity stays");
        assert_eq!(a.exceptions.len(), 2, "global + the source's own");
        let b = &c.sources[1].policy;
        assert!(b.check(CheckId::MfaWeak).enabled);
        assert_eq!(b.exceptions.len(), 1);
        let now = crate::model::parse_ts("2026-12-01").unwrap();
        assert!(a.exceptions[0].covers(CheckId::MfaMissing, "KIOSK-7", "x", now));
        assert!(a.exceptions[1].covers(CheckId::MfaWeak, "anyone", "u-1", now));
        assert!(!a.exceptions[1].covers(CheckId::MfaWeak, "anyone", "u-2", now));
        let later = crate::model::parse_ts("2027-01-01").unwrap();
        assert!(
            !a.exceptions[0].covers(CheckId::MfaMissing, "kiosk-7", "x", later),
            "expired"
        );
    }

    #[test]
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "00supersecret\n").unwrap();
        let toml = format!(
            "[[sources]]\nname = \"o\"\ntype = \"fake\"\npath = \"p\"\ntoken_file = \"{}\"\n",
            f.display()
        );
        let c = parse(&toml).unwrap();
        let t = c.sources[0]
            .settings::<FakeSettings>()
            .unwrap()
            .token
            .as_ref()
            .unwrap();
        assert_eq!(t.expose(), "00supersecret");
        assert!(!format!("{c:?}").contains("supersecret"));
    }

    #[test]
    fn a_base_url_with_the_api_path_is_a_mistake() {
        let e = errs("[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"x\"\nurl = \"https://x.okta.com/api/v1\"\n");
        assert!(
            e[0].contains("ends in /api/v1: give the base URL only"),
            "{e:?}"
        );
    }

    #[test]
    fn login_globs_agree_with_globset_on_the_fast_path() {
        let pats: Vec<String> = [
            "svc-*",
            "*@serviceaccounts.example.com",
            "breakglass-*@example.com",
            "root",
            "a*b*c",
            "[ab]x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let fast = LoginMatcher::new(&pats[..4]).unwrap();
        assert!(fast.simple.is_some());
        let slow = LoginMatcher::new(&pats).unwrap();
        assert!(slow.simple.is_none());
        for (login, want) in [
            ("svc-backup", true),
            ("SVC-Backup", true),
            ("svc", false),
            ("x@ServiceAccounts.example.com", true),
            ("breakglass-1@example.com", true),
            ("breakglass-@example.com", true),
            ("breakglass@example.com", false),
            ("ROOT", true),
            ("rooted", false),
            ("alice@example.com", false),
        ] {
            assert_eq!(fast.matches(login), want, "{login}");
            assert_eq!(slow.matches(login), want, "{login} (globset)");
        }
        assert!(slow.matches("aXbYc") && slow.matches("ax") && !slow.matches("cx"));
        assert!(LoginMatcher::new(&["ü*".to_string()])
            .unwrap()
            .matches("Üser"));
    }

    #[test]
    fn http_only_for_loopback() {
        let mut e = Vec::new();
        assert!(validate_url("u", "http://127.0.0.1:8080", &mut e).is_some());
        assert!(validate_url("u", "http://localhost:8080/", &mut e).is_some());
        assert!(validate_url("u", "https://x.okta.com", &mut e).is_some());
        assert!(e.is_empty());
        assert!(validate_url("u", "http://10.0.0.1", &mut e).is_none());
        assert_eq!(e.len(), 1);
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_file(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml).unwrap();
        load_with_env(&p, &Fake, &vars(env))
    }

    const TWO: &str = "[policy]\ndormant_after_days = 90\n[[sources]]\nname = \"okta-prod\"\ntype = \"fake\"\npath = \"x\"\n[[sources]]\nname = \"b\"\ntype = \"fake\"\npath = \"/abs/y\"\n";

    #[test]
    fn env_overrides_the_file() {
        let c = load_file(
            TWO,
            &[
                ("IPE_POLICY__DORMANT_AFTER_DAYS", "60"),
                ("IPE_SERVER__LISTEN", "127.0.0.1:1234"),
                ("IPE_CONFIG", "/elsewhere.toml"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(c.policy.dormant_after_days, 60);
        assert_eq!(c.sources[0].policy.dormant_after_days, 60);
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:1234");
    }

    #[test]
    fn env_overrides_a_source_by_name_or_says_why_not() {
        let c = load_file(
            TWO,
            &[
                ("IPE_SOURCES__OKTA_PROD__INTERVAL", "5m"),
                ("IPE_SOURCES__B__POLICY__DORMANT_AFTER_DAYS", "30"),
            ],
        )
        .unwrap();
        assert_eq!(c.sources[0].interval, Duration::from_secs(300));
        assert_eq!(c.sources[1].policy.dormant_after_days, 30);
        assert_eq!(c.sources[0].policy.dormant_after_days, 90);
        let e = load_file(TWO, &[("IPE_SOURCES__NOPE__INTERVAL", "5m")])
            .unwrap_err()
            .problems;
        assert!(
            e[0].contains("IPE_SOURCES__NOPE__INTERVAL: no [[sources]] entry is named \"nope\""),
            "{e:?}"
        );
        let e = load_file(TWO, &[("IPE_SOURCES__B__INTERVAL", "soon")])
            .unwrap_err()
            .problems;
        assert!(
            e[0].contains("sources[1] (b).interval: invalid duration"),
            "{e:?}"
        );
    }

    #[test]
    fn env_variables_that_configure_nothing_are_reported() {
        let e = load_file(
            TWO,
            &[("IPE_SERVER_LISTEN", ":1"), ("IPE_SERVR__LISTEN", ":1")],
        )
        .unwrap_err()
        .problems
        .join("\n");
        assert!(
            e.contains("IPE_SERVER_LISTEN: environment variable with the IPE_ prefix but no `__` between levels, so it configures nothing (did you mean IPE_SERVER__LISTEN?)"),
            "{e}"
        );
        assert!(
            e.contains("IPE_SERVR__LISTEN: unknown section \"servr\""),
            "{e}"
        );
        let e = load_file(TWO, &[("IPE_POLICY__DORMANT_AFTER_DAYS", "soon")])
            .unwrap_err()
            .problems
            .join("\n");
        assert!(
            e.contains("policy.dormant_after_days") && e.contains("IPE_POLICY__DORMANT_AFTER_DAYS"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_are_read_from_the_config_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/tok"), "t0k\n").unwrap();
        let p = dir.path().join("conf/c.toml");
        std::fs::write(
            &p,
            "[[sources]]\nname = \"a\"\ntype = \"fake\"\npath = \"data.json\"\ntoken_file = \"tok\"\n",
        )
        .unwrap();
        let c = load_with_env(&p, &Fake, &[]).unwrap();
        let f = c.sources[0].settings::<FakeSettings>().unwrap();
        assert_eq!(f.path, dir.path().join("conf/data.json"));
        assert_eq!(f.token.as_ref().unwrap().expose(), "t0k");
    }

    #[test]
    fn a_byte_order_mark_is_accepted_and_a_directory_is_named() {
        let c = load_file(&format!("\u{feff}{TWO}"), &[]).unwrap();
        assert_eq!(c.sources.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let e = load_with_env(dir.path(), &Fake, &[]).unwrap_err().problems;
        assert!(e[0].contains("is a directory"), "{e:?}");
    }
}
