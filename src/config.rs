//! Configuration: TOML file then `IPE_`-prefixed environment (figment), parsed into a raw
//! form that accepts anything well-typed, then validated into [`Config`]. Validation collects
//! every problem with its key path, so `check-config` can print them all at once.
//! Secrets are resolved here from `*_file` / `*_env` keys into [`Secret`], which never prints.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::model::{FactorType, Timestamp};

/// Default listen address (SPEC §2: port 9863).
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

/// One `[[sources]]` table: every key of every source type, checked against the type later.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<RawPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rate_limit_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests_per_poll: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    // file
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_anchor: Option<String>,
    // shared by several providers
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated_attribute: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_refresh_per_poll: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor_max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    // entra
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph_url: Option<String>,
    // google
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    // aws_iam
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_policies: Option<Vec<String>>,
    // github
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    // sspm
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tsg_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
}

/// Keys every source accepts.
const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "interval",
    "timeout",
    "policy",
    "max_rate_limit_share",
    "max_requests_per_poll",
    "concurrency",
];

/// Provider keys per source type (SPEC §3). A type absent here is not implemented yet.
fn provider_keys(source_type: &str) -> Option<&'static [&'static str]> {
    Some(match source_type {
        "file" => &["path", "time_anchor"],
        "okta" => &[
            "url",
            "token_file",
            "token_env",
            "client_id",
            "private_key_file",
            "private_key_env",
            "key_id",
            "scopes",
            "terminated_attribute",
            "factor_refresh_per_poll",
            "factor_max_age",
        ],
        "entra" => &[
            "tenant_id",
            "client_id",
            "client_secret_file",
            "client_secret_env",
            "certificate_file",
            "private_key_file",
            "private_key_env",
            "authority_url",
            "graph_url",
        ],
        "sspm" => &[
            "client_id",
            "client_secret_file",
            "client_secret_env",
            "tsg_id",
            "auth_url",
            "api_url",
        ],
        _ => return None,
    })
}

/// Source types the SPEC names that this build cannot read yet.
const PLANNED_TYPES: &[&str] = &["google", "aws_iam", "github"];

// ---------------------------------------------------------------------------------------------
// Validated form.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub policy: Policy,
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub web_config_file: Option<PathBuf>,
    pub api_token: Option<Secret>,
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

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub policy: Policy,
    pub limits: UpstreamLimits,
    pub kind: SourceKind,
}

impl SourceConfig {
    /// The `provider` label: the source type.
    pub fn provider(&self) -> &'static str {
        self.kind.provider()
    }
}

/// Limits on how hard a source may use its upstream (shared HTTP layer).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamLimits {
    /// Share of the provider's remaining rate-limit budget the exporter may use (0..=1].
    pub max_rate_limit_share: f64,
    /// Upper bound on upstream requests in one poll; `None` = no bound.
    pub max_requests_per_poll: Option<u32>,
    /// Requests in flight at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File(FileConfig),
    Okta(OktaConfig),
    Entra(EntraConfig),
    Sspm(SspmConfig),
}

impl SourceKind {
    pub fn provider(&self) -> &'static str {
        match self {
            SourceKind::File(_) => "file",
            SourceKind::Okta(_) => "okta",
            SourceKind::Entra(_) => "entra",
            SourceKind::Sspm(_) => "sspm",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Timestamps in the file are read as if this instant were now (they are shifted by
    /// `now - time_anchor`), so a committed demo file never ages.
    pub time_anchor: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct OktaConfig {
    pub url: String,
    pub auth: OktaAuth,
    /// Profile attribute holding the HR leave date (→ `terminated`).
    pub terminated_attribute: Option<String>,
    /// Most per-user factor requests in one poll (oldest cache entries first); `None` = as
    /// many as the request budget and half the poll timeout allow.
    pub factor_refresh_per_poll: Option<u32>,
    /// Cached factor lists younger than this are not refreshed (unless the System Log names
    /// the user in a factor change). Default 24 h.
    pub factor_max_age: Duration,
}

#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    ApiToken(Secret),
    /// OAuth 2.0 service app with a `private_key_jwt` client assertion.
    ServiceApp {
        client_id: String,
        /// PEM or JWK private key.
        private_key: Secret,
        key_id: Option<String>,
        scopes: Vec<String>,
    },
}

pub const OKTA_DEFAULT_SCOPES: &[&str] = &[
    "okta.users.read",
    "okta.groups.read",
    "okta.roles.read",
    "okta.policies.read",
    "okta.apiTokens.read",
    "okta.logs.read",
];

/// Microsoft Entra ID through Microsoft Graph (app-only, client credentials).
#[derive(Debug, Clone)]
pub struct EntraConfig {
    /// Directory (tenant) id or verified domain.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    pub auth: EntraAuth,
    /// Token authority, without the tenant (`https://login.microsoftonline.com`; national
    /// clouds have their own).
    pub authority_url: String,
    /// Graph base URL, without the version (`https://graph.microsoft.com`).
    pub graph_url: String,
}

#[derive(Debug, Clone)]
pub enum EntraAuth {
    ClientSecret(Secret),
    /// A signed client assertion (`private_key_jwt`): the certificate (PEM) gives the
    /// `x5t#S256` thumbprint, the RSA private key (PEM) signs.
    Certificate {
        certificate_pem: String,
        private_key: Secret,
    },
}

/// Palo Alto Networks SaaS Security (SSPM) Identity API, with the common SASE OAuth2
/// client-credentials grant (HTTP Basic, `scope=tsg_id:<tsg_id>`).
#[derive(Debug, Clone)]
pub struct SspmConfig {
    /// Client id of the SASE service account.
    pub client_id: String,
    pub client_secret: Secret,
    /// Tenant service group id (digits): the token's scope.
    pub tsg_id: String,
    /// Authentication service base URL (`https://auth.apps.paloaltonetworks.com`).
    pub auth_url: String,
    /// SASE API base URL (`https://api.sase.paloaltonetworks.com`).
    pub api_url: String,
}

pub const SSPM_DEFAULT_AUTH_URL: &str = "https://auth.apps.paloaltonetworks.com";
pub const SSPM_DEFAULT_API_URL: &str = "https://api.sase.paloaltonetworks.com";

pub const ENTRA_DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const ENTRA_DEFAULT_GRAPH: &str = "https://graph.microsoft.com";

/// Posture policy (SPEC §3 `[policy]`), after defaults and per-source overrides.
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
}

/// Super-admin role names as each provider spells them.
pub const DEFAULT_SUPER_ADMIN_ROLES: &[&str] = &[
    "SUPER_ADMIN",          // Okta
    "Global Administrator", // Entra ID
    "Company Administrator",
    "_SEED_ADMIN_ROLE", // Google Workspace super admin (built-in role id name)
    "Super Admin",
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

    /// Builds a policy from `raw` on top of `base` (or the SPEC defaults), pushing problems
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
        // A number: this level's value, else the base's, else the SPEC default.
        macro_rules! num {
            ($f:ident, $default:expr) => {
                raw.$f.or(b.map(|b| b.$f)).unwrap_or($default)
            };
        }
        let p = Policy {
            dormant_after_days: num!(dormant_after_days, 90),
            never_logged_in_grace_days: num!(never_logged_in_grace_days, 30),
            password_max_age_days: num!(password_max_age_days, 365),
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

// ---------------------------------------------------------------------------------------------
// Loading and validation.
// ---------------------------------------------------------------------------------------------

/// Every problem found in a configuration, each naming its key path.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .problems.join("\n  "))]
pub struct ConfigErrors {
    pub problems: Vec<String>,
}

/// Reads `path` then the `IPE_` environment, and validates.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_config_file(path).map_err(|e| ConfigErrors { problems: vec![e] })?;
    let figment = Figment::new()
        .merge(Toml::string(&text))
        // Only nested keys (`IPE_SECTION__KEY`): every top-level key is a table, and this
        // leaves `IPE_CONFIG` (the --config flag) and other IPE_ variables alone.
        .merge(
            Env::prefixed("IPE_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    from_figment(&figment, &base, &|name| std::env::var(name).ok())
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

/// Validates a configuration given as a TOML string (tests, examples). A leading UTF-8
/// byte-order mark is ignored, as in [`load`].
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigErrors> {
    let toml = toml.strip_prefix('\u{feff}').unwrap_or(toml);
    from_figment(
        &Figment::new().merge(Toml::string(toml)),
        Path::new("."),
        &|name| std::env::var(name).ok(),
    )
}

/// The core of loading: `env` reads environment variables (injected for tests). Relative
/// `*_file` paths are taken relative to the working directory, as users expect from a CLI.
pub fn from_figment(
    figment: &Figment,
    _config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();

    // Unknown top-level keys.
    match figment.extract::<BTreeMap<String, figment::value::Value>>() {
        Ok(top) => {
            for k in top.keys() {
                if !["server", "policy", "sources"].contains(&k.as_str()) {
                    errors.push(format!(
                        "{k}: unknown key (expected one of server, policy, sources)"
                    ));
                }
            }
        }
        Err(e) => errors.extend(figment_errors(e, "")),
    }

    let raw_server: RawServer = section(figment, "server", &mut errors);
    let raw_policy: RawPolicy = section(figment, "policy", &mut errors);

    let server = validate_server(&raw_server, env, &mut errors);
    let policy = Policy::from_raw(&raw_policy, None, "policy", &mut errors);

    let mut sources = Vec::new();
    match figment.find_value("sources") {
        Ok(figment::value::Value::Array(_, items)) => {
            let mut names = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let path = format!("sources[{i}]");
                match RawSource::deserialize(item) {
                    Ok(raw) => {
                        if let Some(s) = validate_source(&raw, &path, &policy, env, &mut errors) {
                            if !names.insert(s.name.clone()) {
                                errors.push(format!(
                                    "{path}.name: duplicate source name {:?}",
                                    s.name
                                ));
                            }
                            sources.push(s);
                        }
                    }
                    Err(e) => errors.extend(figment_errors(e, &path)),
                }
            }
        }
        Ok(_) => errors.push("sources: must be an array of tables ([[sources]])".into()),
        Err(_) => {}
    }
    if sources.is_empty() && errors.is_empty() {
        errors.push("sources: at least one [[sources]] entry is required".into());
    }

    if errors.is_empty() {
        Ok(Config {
            server,
            policy,
            sources,
        })
    } else {
        Err(ConfigErrors { problems: errors })
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
            errors.extend(figment_errors(e, key));
            T::default()
        }
    }
}

/// Turns figment's errors into "path: message" lines, without echoing values (a value may be
/// a misplaced secret).
fn figment_errors(e: figment::Error, prefix: &str) -> Vec<String> {
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
                    format!("unknown key (expected one of {})", expected.join(", "))
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

fn validate_server(
    raw: &RawServer,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> ServerConfig {
    let listen_str = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = match parse_listen(listen_str) {
        Ok(a) => a,
        Err(e) => {
            errors.push(format!("server.listen: {e}"));
            DEFAULT_LISTEN.parse().expect("default listen address")
        }
    };
    if let Some(p) = &raw.web_config_file {
        if !p.exists() {
            errors.push(format!(
                "server.web_config_file: {} does not exist",
                p.display()
            ));
        }
    }
    let api_token = read_secret(
        "server.api_token",
        raw.api_token_file.as_deref(),
        raw.api_token_env.as_deref(),
        false,
        env,
        errors,
    );
    let d = ConnLimits::default();
    let max_connections = match raw.max_connections {
        None => d.max_connections,
        Some(n @ 1..=1_000_000) => n as usize,
        Some(n) => {
            errors.push(format!(
                "server.max_connections: {n} is out of range (1 to 1000000)"
            ));
            d.max_connections
        }
    };
    let header_read_timeout = parse_duration(
        "server.header_read_timeout",
        raw.header_read_timeout.as_deref(),
        d.header_read_timeout,
        errors,
    );
    let idle_timeout = parse_duration(
        "server.idle_timeout",
        raw.idle_timeout.as_deref(),
        d.idle_timeout,
        errors,
    );
    for (key, v) in [
        ("server.header_read_timeout", header_read_timeout),
        ("server.idle_timeout", idle_timeout),
    ] {
        if v > Duration::from_secs(3600) {
            errors.push(format!("{key}: at most 1h"));
        }
    }
    ServerConfig {
        listen,
        web_config_file: raw.web_config_file.clone(),
        api_token,
        limits: ConnLimits {
            max_connections,
            header_read_timeout,
            idle_timeout,
        },
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

/// Reads a secret from `<key>_file` or `<key>_env`. Errors name the key, never the value.
pub fn read_secret(
    key: &str,
    file: Option<&Path>,
    env_name: Option<&str>,
    required: bool,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<Secret> {
    match (file, env_name) {
        (Some(_), Some(_)) => {
            errors.push(format!("{key}_file and {key}_env: set only one"));
            None
        }
        (Some(path), None) => match std::fs::read_to_string(path) {
            Ok(s) => {
                let s = s.trim_end_matches(['\n', '\r']).to_string();
                if s.is_empty() {
                    errors.push(format!("{key}_file: {} is empty", path.display()));
                    None
                } else {
                    Some(Secret(s))
                }
            }
            Err(e) => {
                errors.push(format!("{key}_file: cannot read {}: {e}", path.display()));
                None
            }
        },
        (None, Some(name)) => match env(name) {
            Some(v) if !v.is_empty() => Some(Secret(v.trim_end_matches(['\n', '\r']).into())),
            _ => {
                errors.push(format!(
                    "{key}_env: environment variable {name} is not set or empty"
                ));
                None
            }
        },
        (None, None) => {
            if required {
                errors.push(format!("{key}_file or {key}_env: required"));
            }
            None
        }
    }
}

fn parse_duration(
    path: &str,
    v: Option<&str>,
    dflt: Duration,
    errors: &mut Vec<String>,
) -> Duration {
    match v {
        None => dflt,
        Some(s) => match humantime::parse_duration(s) {
            Ok(d) if d.is_zero() => {
                errors.push(format!("{path}: must be longer than zero"));
                dflt
            }
            Ok(d) => d,
            Err(e) => {
                errors.push(format!(
                    "{path}: invalid duration {s:?} ({e}); use e.g. \"30s\", \"15m\", \"1h\""
                ));
                dflt
            }
        },
    }
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
            Some(s.trim_end_matches('/').to_string())
        }
        Err(e) => {
            errors.push(format!("{path}: invalid URL {s:?}: {e}"));
            None
        }
    }
}

fn validate_source(
    raw: &RawSource,
    path: &str,
    global_policy: &Policy,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<SourceConfig> {
    let before = errors.len();
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
    let Some(keys) = provider_keys(source_type) else {
        if PLANNED_TYPES.contains(&source_type) {
            errors.push(format!(
                "{path}.type: source type {source_type:?} is not implemented in this version (implemented: file, okta, entra, sspm)"
            ));
        } else {
            errors.push(format!(
                "{path}.type: unknown source type {source_type:?} (one of file, okta, entra, google, aws_iam, github, sspm)"
            ));
        }
        return None;
    };
    // Keys that belong to another source type.
    if let Ok(serde_json::Value::Object(set)) = serde_json::to_value(raw) {
        for k in set.keys() {
            if !COMMON_KEYS.contains(&k.as_str()) && !keys.contains(&k.as_str()) {
                errors.push(format!(
                    "{path}.{k}: not a key of a {source_type} source (its keys: {})",
                    keys.join(", ")
                ));
            }
        }
    }
    let interval = parse_duration(
        &format!("{path}.interval"),
        raw.interval.as_deref(),
        Duration::from_secs(15 * 60),
        errors,
    );
    let timeout = parse_duration(
        &format!("{path}.timeout"),
        raw.timeout.as_deref(),
        interval.min(Duration::from_secs(10 * 60)),
        errors,
    );
    let policy = match &raw.policy {
        Some(p) => Policy::from_raw(p, Some(global_policy), &format!("{path}.policy"), errors),
        None => global_policy.clone(),
    };
    let share = raw.max_rate_limit_share.unwrap_or(0.5);
    if !(share > 0.0 && share <= 1.0) {
        errors.push(format!(
            "{path}.max_rate_limit_share: {share} must be in (0, 1]"
        ));
    }
    let concurrency = raw.concurrency.unwrap_or(4);
    if concurrency == 0 || concurrency > 64 {
        errors.push(format!("{path}.concurrency: {concurrency} must be 1..=64"));
    }
    if raw.max_requests_per_poll == Some(0) {
        errors.push(format!("{path}.max_requests_per_poll: must be at least 1"));
    }
    let limits = UpstreamLimits {
        max_rate_limit_share: share,
        max_requests_per_poll: raw.max_requests_per_poll,
        concurrency: concurrency as usize,
    };

    let kind = match source_type {
        "file" => {
            let time_anchor = raw.time_anchor.as_deref().and_then(|s| {
                crate::model::parse_ts(s)
                    .map_err(|_| {
                        errors.push(format!(
                            "{path}.time_anchor: invalid RFC 3339 timestamp {s:?}"
                        ))
                    })
                    .ok()
            });
            match &raw.path {
                Some(p) => SourceKind::File(FileConfig {
                    path: p.clone(),
                    time_anchor,
                }),
                None => {
                    errors.push(format!("{path}.path: missing required key"));
                    return None;
                }
            }
        }
        "okta" => {
            let url = match raw.url.as_deref() {
                Some(u) => validate_url(&format!("{path}.url"), u, errors),
                None => {
                    errors.push(format!("{path}.url: missing required key"));
                    None
                }
            };
            let has_token = raw.token_file.is_some() || raw.token_env.is_some();
            let has_app = raw.client_id.is_some()
                || raw.private_key_file.is_some()
                || raw.private_key_env.is_some();
            let auth = if has_token && has_app {
                errors.push(format!(
                    "{path}: use either token_file/token_env (API token) or client_id + private_key_file (service app), not both"
                ));
                None
            } else if has_app {
                let key = read_secret(
                    &format!("{path}.private_key"),
                    raw.private_key_file.as_deref(),
                    raw.private_key_env.as_deref(),
                    true,
                    env,
                    errors,
                );
                match (&raw.client_id, key) {
                    (Some(id), Some(key)) => Some(OktaAuth::ServiceApp {
                        client_id: id.clone(),
                        private_key: key,
                        key_id: raw.key_id.clone(),
                        scopes: raw.scopes.clone().unwrap_or_else(|| {
                            OKTA_DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
                        }),
                    }),
                    (None, _) => {
                        errors.push(format!("{path}.client_id: missing required key"));
                        None
                    }
                    _ => None,
                }
            } else {
                read_secret(
                    &format!("{path}.token"),
                    raw.token_file.as_deref(),
                    raw.token_env.as_deref(),
                    true,
                    env,
                    errors,
                )
                .map(OktaAuth::ApiToken)
            };
            let factor_max_age = parse_duration(
                &format!("{path}.factor_max_age"),
                raw.factor_max_age.as_deref(),
                Duration::from_secs(24 * 3600),
                errors,
            );
            if raw.factor_refresh_per_poll == Some(0) {
                errors.push(format!(
                    "{path}.factor_refresh_per_poll: must be at least 1"
                ));
            }
            match (url, auth) {
                (Some(url), Some(auth)) => SourceKind::Okta(OktaConfig {
                    url,
                    auth,
                    terminated_attribute: raw.terminated_attribute.clone(),
                    factor_refresh_per_poll: raw.factor_refresh_per_poll,
                    factor_max_age,
                }),
                _ => return None,
            }
        }
        "entra" => {
            let tenant_id = required(&path, "tenant_id", &raw.tenant_id, errors);
            if let Some(t) = &tenant_id {
                if !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
                {
                    errors.push(format!(
                        "{path}.tenant_id: {t:?} must be a tenant id (GUID) or domain name"
                    ));
                }
            }
            let client_id = required(&path, "client_id", &raw.client_id, errors);
            let authority_url = url_or_default(
                &path,
                "authority_url",
                &raw.authority_url,
                ENTRA_DEFAULT_AUTHORITY,
                errors,
            );
            let graph_url = url_or_default(
                &path,
                "graph_url",
                &raw.graph_url,
                ENTRA_DEFAULT_GRAPH,
                errors,
            );
            let has_secret = raw.client_secret_file.is_some() || raw.client_secret_env.is_some();
            let has_cert = raw.certificate_file.is_some()
                || raw.private_key_file.is_some()
                || raw.private_key_env.is_some();
            let auth = if has_secret && has_cert {
                errors.push(format!(
                    "{path}: use either client_secret_file/client_secret_env or certificate_file + private_key_file, not both"
                ));
                None
            } else if has_cert {
                let key = read_secret(
                    &format!("{path}.private_key"),
                    raw.private_key_file.as_deref(),
                    raw.private_key_env.as_deref(),
                    true,
                    env,
                    errors,
                );
                let cert = match raw.certificate_file.as_deref() {
                    None => {
                        errors.push(format!("{path}.certificate_file: missing required key"));
                        None
                    }
                    Some(p) => match std::fs::read_to_string(p) {
                        Ok(s) if s.contains("-----BEGIN CERTIFICATE-----") => Some(s),
                        Ok(_) => {
                            errors.push(format!(
                                "{path}.certificate_file: {} holds no PEM certificate",
                                p.display()
                            ));
                            None
                        }
                        Err(e) => {
                            errors.push(format!(
                                "{path}.certificate_file: cannot read {}: {e}",
                                p.display()
                            ));
                            None
                        }
                    },
                };
                match (cert, key) {
                    (Some(certificate_pem), Some(private_key)) => Some(EntraAuth::Certificate {
                        certificate_pem,
                        private_key,
                    }),
                    _ => None,
                }
            } else {
                read_secret(
                    &format!("{path}.client_secret"),
                    raw.client_secret_file.as_deref(),
                    raw.client_secret_env.as_deref(),
                    true,
                    env,
                    errors,
                )
                .map(EntraAuth::ClientSecret)
            };
            match (tenant_id, client_id, auth, authority_url, graph_url) {
                (
                    Some(tenant_id),
                    Some(client_id),
                    Some(auth),
                    Some(authority_url),
                    Some(graph_url),
                ) => SourceKind::Entra(EntraConfig {
                    tenant_id,
                    client_id,
                    auth,
                    authority_url,
                    graph_url,
                }),
                _ => return None,
            }
        }
        "sspm" => {
            let client_id = required(&path, "client_id", &raw.client_id, errors);
            let tsg_id = required(&path, "tsg_id", &raw.tsg_id, errors);
            if let Some(t) = &tsg_id {
                // TSG ids are numeric (pan.dev "Tenant Service Groups"); anything else would
                // only fail later at the token endpoint with a vaguer message.
                if !t.chars().all(|c| c.is_ascii_digit()) {
                    errors.push(format!(
                        "{path}.tsg_id: {t:?} must be the numeric tenant service group id"
                    ));
                }
            }
            let auth_url = url_or_default(
                &path,
                "auth_url",
                &raw.auth_url,
                SSPM_DEFAULT_AUTH_URL,
                errors,
            );
            let api_url =
                url_or_default(&path, "api_url", &raw.api_url, SSPM_DEFAULT_API_URL, errors);
            let client_secret = read_secret(
                &format!("{path}.client_secret"),
                raw.client_secret_file.as_deref(),
                raw.client_secret_env.as_deref(),
                true,
                env,
                errors,
            );
            match (client_id, client_secret, tsg_id, auth_url, api_url) {
                (
                    Some(client_id),
                    Some(client_secret),
                    Some(tsg_id),
                    Some(auth_url),
                    Some(api_url),
                ) => SourceKind::Sspm(SspmConfig {
                    client_id,
                    client_secret,
                    tsg_id,
                    auth_url,
                    api_url,
                }),
                _ => return None,
            }
        }
        _ => unreachable!("provider_keys covers the implemented types"),
    };
    if errors.len() > before {
        return None;
    }
    Some(SourceConfig {
        name,
        interval,
        timeout,
        policy,
        limits,
        kind,
    })
}

/// A non-blank string key, trimmed; a missing or blank one is reported with its path.
fn required(path: &str, key: &str, v: &Option<String>, errors: &mut Vec<String>) -> Option<String> {
    match v.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Some(v.to_string()),
        _ => {
            errors.push(format!("{path}.{key}: missing required key"));
            None
        }
    }
}

/// A URL key with a provider default, validated like every other upstream URL.
fn url_or_default(
    path: &str,
    key: &str,
    v: &Option<String>,
    dflt: &str,
    errors: &mut Vec<String>,
) -> Option<String> {
    validate_url(
        &format!("{path}.{key}"),
        v.as_deref().unwrap_or(dflt),
        errors,
    )
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

    fn errs(toml: &str) -> Vec<String> {
        from_toml_str(toml).unwrap_err().problems
    }

    #[test]
    fn minimal_file_source_gets_spec_defaults() {
        let c = from_toml_str(
            r#"[[sources]]
name = "demo"
type = "file"
path = "x.json"
"#,
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:9863");
        let p = &c.sources[0].policy;
        assert_eq!(p.dormant_after_days, 90);
        assert_eq!(p.never_logged_in_grace_days, 30);
        assert_eq!(p.password_max_age_days, 365);
        assert_eq!(p.access_key_max_age_days, 90);
        assert_eq!(p.secret_max_age_days, 180);
        assert_eq!(p.certificate_max_age_days, 365);
        assert_eq!(p.expiring_within_days, 30);
        assert_eq!(p.unused_privilege_days, 45);
        assert_eq!((p.min_super_admins, p.max_super_admins), (2, 4));
        assert!(p.is_weak(FactorType::Sms) && p.is_weak(FactorType::Question));
        assert!(!p.is_weak(FactorType::Push));
        assert_eq!(c.sources[0].interval, Duration::from_secs(900));
        assert_eq!(c.sources[0].limits.max_rate_limit_share, 0.5);
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
type = "file"
interval = "soon"
[[sources]]
name = "b"
type = "okta"
url = "http://example.okta.com"
path = "x"
token_env = "IPE_TEST_SURELY_UNSET_VARIABLE"
[[sources]]
name = "c"
type = "ldap"
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
            "sources[1] (b).path: not a key of a okta source",
            "sources[1] (b).token_env: environment variable IPE_TEST_SURELY_UNSET_VARIABLE",
            "sources[2] (c).type: unknown source type \"ldap\"",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn unknown_key_in_source_policy_is_named() {
        let e = errs(
            r#"[[sources]]
name = "a"
type = "file"
path = "x"
policy = { dormant_days = 3 }
"#,
        );
        assert!(
            e.iter()
                .any(|m| m.contains("sources[0].policy.dormant_days")),
            "{e:?}"
        );
    }

    #[test]
    fn per_source_policy_overrides_global() {
        let c = from_toml_str(
            r#"[policy]
dormant_after_days = 60
exclude_accounts = ["breakglass-*@example.com"]
[[sources]]
name = "a"
type = "file"
path = "x"
policy = { dormant_after_days = 30 }
[[sources]]
name = "b"
type = "file"
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
    fn secrets_come_from_files_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "00supersecret\n").unwrap();
        let toml = format!(
            r#"[[sources]]
name = "o"
type = "okta"
url = "https://example.okta.com"
token_file = "{}"
"#,
            f.display()
        );
        let c = from_toml_str(&toml).unwrap();
        let SourceKind::Okta(o) = &c.sources[0].kind else {
            panic!()
        };
        let OktaAuth::ApiToken(t) = &o.auth else {
            panic!()
        };
        assert_eq!(t.expose(), "00supersecret");
        assert!(!format!("{c:?}").contains("supersecret"));
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

    #[test]
    #[allow(clippy::result_large_err)]
    fn env_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                r#"[policy]
dormant_after_days = 90
[[sources]]
name = "a"
type = "file"
path = "x"
"#,
            )?;
            jail.set_env("IPE_POLICY__DORMANT_AFTER_DAYS", "60");
            jail.set_env("IPE_SERVER__LISTEN", "127.0.0.1:1234");
            let c = load(Path::new("c.toml")).map_err(|e| e.to_string())?;
            assert_eq!(c.policy.dormant_after_days, 60);
            assert_eq!(c.sources[0].policy.dormant_after_days, 60);
            assert_eq!(c.server.listen.to_string(), "127.0.0.1:1234");
            Ok(())
        });
    }
}
