//! The Okta source: users (all statuses), MFA factors through a long-lived per-user cache
//! refreshed oldest-first within a budget (plus users named in factor-change System Log events),
//! admin roles, API tokens and the sign-on / app sign-in policies' MFA gaps, mapped into the
//! normalised model. All traffic goes through the shared [`crate::upstream`] layer.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Deserializer};
use url::Url;

use super::{AccountSink, PollContext, PollOutput, SourceError, SourceGauge};
use crate::config::{OktaAuth, OktaConfig, Secret, SourceConfig, SourceKind};
use crate::model::{
    parse_ts, Account, AccountType, Credential, CredentialType, DataKind, Factor, FactorStatus,
    FactorType, Known, Mfa, Role, Status, Timestamp,
};
use crate::upstream::{
    AssertionSigner, Auth, ClientAuth, ClientCredentials, NextPage, Pager, RateLimitHeaders,
    Request, Response, Session, Timer, TokenCache, TokioTimer, Upstream, UpstreamError,
    UpstreamOptions,
};

// Endpoint labels: log and error names, and the pacing buckets.
const USERS: &str = "/api/v1/users";
const FACTORS: &str = "/api/v1/users/{id}/factors";
const ROLES: &str = "/api/v1/users/{id}/roles";
const GROUPS: &str = "/api/v1/users/{id}/groups";
const ASSIGNEES: &str = "/api/v1/iam/assignees/users";
const API_TOKENS: &str = "/api/v1/api-tokens";
const POLICIES: &str = "/api/v1/policies";
const RULES: &str = "/api/v1/policies/{id}/rules";
const LOGS: &str = "/api/v1/logs";
const TOKEN: &str = "/oauth2/v1/token";

/// Events in the System Log that change a user's factors.
const FACTOR_EVENT_FILTER: &str = "eventType sw \"user.mfa.factor\"";
/// Late-arriving System Log events: each query overlaps the previous one by this much.
const LOG_OVERLAP: Duration = Duration::from_secs(300);

/// What a permission error on each endpoint means, for the error message.
fn permission_hint(endpoint: &str) -> &'static str {
    match endpoint {
        USERS | FACTORS => "needs the okta.users.read scope (API token: an admin who can read users)",
        ROLES | ASSIGNEES => "needs the okta.roles.read scope and an admin role allowed to read role assignments (Read-only Administrator may not be enough)",
        GROUPS => "needs the okta.groups.read scope",
        API_TOKENS => "needs the okta.apiTokens.read scope; Okta lets only Super Administrators list API tokens",
        POLICIES | RULES => "needs the okta.policies.read scope",
        LOGS => "needs the okta.logs.read scope",
        TOKEN => "check client_id, key_id, that the public key is registered on the service app, and that the app was granted the scopes",
        _ => "check the credential's permissions",
    }
}

// ---------------------------------------------------------------------------------------------
// Okta wire shapes. Lenient: every field optional, unknown fields ignored (Okta adds fields and
// omits nulls), so hostile or surprising data is skipped, never a panic.
// ---------------------------------------------------------------------------------------------

/// Present-and-null → `Some(None)`; absent → `None` (via `#[serde(default)]`).
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::<T>::deserialize(d)?))
}

/// A value that must be a string; anything else becomes `None` instead of failing the page.
fn lenient_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaUser {
    #[serde(default, deserialize_with = "lenient_str")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    created: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    last_login: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "nullable")]
    password_changed: Option<Option<serde_json::Value>>,
    #[serde(default)]
    profile: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    credentials: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaFactor {
    #[serde(default, deserialize_with = "lenient_str")]
    factor_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaRole {
    #[serde(default, rename = "type", deserialize_with = "lenient_str")]
    role_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    label: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OktaGroup {
    #[serde(default)]
    profile: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
struct Assignees {
    #[serde(default)]
    value: Vec<serde_json::Value>,
    #[serde(default, rename = "_links")]
    links: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaApiToken {
    #[serde(default, deserialize_with = "lenient_str")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    created: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OktaPolicy {
    #[serde(default, deserialize_with = "lenient_str")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OktaRule {
    #[serde(default, deserialize_with = "lenient_str")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    status: Option<String>,
    #[serde(default)]
    actions: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct LogEvent {
    #[serde(default)]
    actor: Option<serde_json::Value>,
    #[serde(default)]
    target: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------
// Mapping.
// ---------------------------------------------------------------------------------------------

/// Okta user status → model status. `ACTIVE`, `PASSWORD_EXPIRED` and `RECOVERY` users can
/// sign in (or will after a reset), so they are active.
pub fn map_status(s: &str) -> Status {
    match s {
        "ACTIVE" | "PASSWORD_EXPIRED" | "RECOVERY" => Status::Active,
        "LOCKED_OUT" => Status::Locked,
        "SUSPENDED" => Status::Suspended,
        "DEPROVISIONED" => Status::Deprovisioned,
        // STAGED, PROVISIONED (activation pending), ACTIVATING, and anything new.
        _ => Status::Staged,
    }
}

/// Okta `factorType` → model factor type (see docs/okta.md for the table).
pub fn map_factor_type(t: &str) -> FactorType {
    match t {
        "push" => FactorType::Push,
        "token:software:totp" | "token:hotp" => FactorType::Totp,
        "webauthn" | "u2f" | "signed_nonce" => FactorType::Webauthn,
        "token:hardware" | "token" => FactorType::HardwareToken,
        "sms" => FactorType::Sms,
        "call" => FactorType::Voice,
        "email" => FactorType::Email,
        "question" => FactorType::Question,
        // "web" (Duo) and anything new.
        _ => FactorType::Other,
    }
}

/// Okta factor status → model factor status. Only `ACTIVE` counts as MFA.
pub fn map_factor_status(s: &str) -> FactorStatus {
    match s {
        "ACTIVE" => FactorStatus::Active,
        "PENDING_ACTIVATION" | "ENROLLED" => FactorStatus::Pending,
        _ => FactorStatus::Inactive,
    }
}

fn ts(v: &serde_json::Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| parse_ts(s).ok())
}

fn profile_str<'a>(p: &'a serde_json::Map<String, serde_json::Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
}

/// A user without factors or roles (those are added later).
fn map_user(u: OktaUser, terminated_attribute: Option<&str>) -> Option<Account> {
    let id = u.id.filter(|i| !i.is_empty())?;
    let profile = u.profile.unwrap_or_default();
    let login = profile_str(&profile, "login")
        .or_else(|| profile_str(&profile, "email"))
        .unwrap_or(&id)
        .to_string();
    let mut a = Account::new(id, login);
    a.account_type = AccountType::Human;
    a.status = map_status(u.status.as_deref().unwrap_or(""));
    a.display_name = profile_str(&profile, "displayName")
        .map(str::to_string)
        .or_else(|| {
            let first = profile_str(&profile, "firstName").unwrap_or("");
            let last = profile_str(&profile, "lastName").unwrap_or("");
            let n = format!("{first} {last}").trim().to_string();
            (!n.is_empty()).then_some(n)
        });
    a.created = u.created.as_deref().and_then(|s| parse_ts(s).ok());
    a.last_login = match &u.last_login {
        None => Known::Unknown,
        Some(None) | Some(Some(serde_json::Value::Null)) => Known::Never,
        Some(Some(v)) => ts(v).map(Known::At).unwrap_or(Known::Unknown),
    };
    if let Some(attr) = terminated_attribute {
        a.terminated = profile.get(attr).and_then(ts);
    }
    for (key, attr) in [
        ("email", "email"),
        ("department", "department"),
        ("title", "title"),
        ("employeeNumber", "employee_number"),
    ] {
        if let Some(v) = profile_str(&profile, key) {
            a.attributes
                .insert(attr.to_string(), serde_json::Value::String(v.to_string()));
        }
    }
    if let Some(s) = &u.status {
        a.attributes
            .insert("okta_status".into(), serde_json::Value::String(s.clone()));
    }
    // An Okta-mastered password; federated users (provider type not OKTA) have none.
    let provider = u
        .credentials
        .as_ref()
        .and_then(|c| c.pointer("/provider/type"))
        .and_then(|t| t.as_str());
    let has_password_obj = u
        .credentials
        .as_ref()
        .is_some_and(|c| c.get("password").is_some());
    let mut creds = Vec::new();
    let changed = match &u.password_changed {
        Some(Some(v)) => ts(v),
        _ => None,
    };
    let has_password = changed.is_some() || has_password_obj;
    if has_password && (provider == Some("OKTA") || provider.is_none()) {
        creds.push(Credential {
            credential_type: CredentialType::Password,
            id: "password".into(),
            last_rotated: changed.map(Known::At).unwrap_or(Known::Unknown),
            expires: Known::Unknown,
            last_used: Known::Unknown,
        });
    }
    a.credentials = Some(creds);
    Some(a)
}

fn map_factors(list: Vec<OktaFactor>) -> Vec<Factor> {
    list.into_iter()
        .filter_map(|f| {
            Some(Factor {
                factor_type: map_factor_type(f.factor_type.as_deref()?),
                status: map_factor_status(f.status.as_deref().unwrap_or("")),
            })
        })
        .collect()
}

/// Cleans a provider-supplied name for a message: printable, at most 120 characters.
fn clean(s: Option<&str>) -> String {
    let s = s.unwrap_or("(unnamed)");
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(120).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The source.
// ---------------------------------------------------------------------------------------------

struct CacheEntry {
    factors: Vec<Factor>,
    /// When the factors were fetched (unix seconds).
    fetched_at: i64,
    /// The poll generation that last saw this user active; older entries are pruned.
    seen: u64,
}

#[derive(Default)]
struct State {
    cache: HashMap<String, CacheEntry>,
    generation: u64,
    /// Start of the next System Log window for factor-change events.
    log_since: Option<Timestamp>,
    /// Active users and listing pages at the last poll (to plan the budget).
    last_active: usize,
    last_pages: u32,
}

#[derive(Default)]
struct AdminInfo {
    roles: Vec<Role>,
    groups: Vec<String>,
}

/// One configured Okta org. Long-lived: keeps the factor cache between polls.
pub struct OktaSource {
    name: String,
    base: Url,
    terminated_attribute: Option<String>,
    factor_refresh_per_poll: Option<u32>,
    factor_max_age: Duration,
    /// Factor refreshes stop once this much of the poll has passed (half the poll timeout),
    /// so the listing always completes.
    factor_time_budget: Duration,
    concurrency: usize,
    up: Upstream,
    state: Mutex<State>,
}

impl std::fmt::Debug for OktaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSource")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// Per-poll factor-refresh bookkeeping, shared by the concurrent fetches.
struct FactorRun {
    /// Refreshes still allowed this poll.
    left: AtomicUsize,
    deadline: Instant,
    /// Set on a 401/403 from the factors endpoint: no further attempts this poll.
    forbidden: Mutex<Option<String>>,
    stopped: AtomicBool,
    refreshed: AtomicU32,
    failed: AtomicU32,
    /// Users to refresh whatever their cache age: factor-change events, and the oldest entries.
    wanted: HashSet<String>,
    now_unix: i64,
    generation: u64,
}

impl OktaSource {
    pub fn new(cfg: &SourceConfig) -> Result<OktaSource, SourceError> {
        OktaSource::with_timer(cfg, Arc::new(TokioTimer))
    }

    /// As [`OktaSource::new`] with an injected clock/sleeper (tests).
    pub fn with_timer(
        cfg: &SourceConfig,
        timer: Arc<dyn Timer>,
    ) -> Result<OktaSource, SourceError> {
        let SourceKind::Okta(okta) = &cfg.kind else {
            return Err(SourceError::new(format!(
                "source {}: not an okta source",
                cfg.name
            )));
        };
        OktaSource::build(cfg, okta, timer)
    }

    fn build(
        cfg: &SourceConfig,
        okta: &OktaConfig,
        timer: Arc<dyn Timer>,
    ) -> Result<OktaSource, SourceError> {
        let err = |m: String| SourceError::new(format!("okta source {}: {m}", cfg.name));
        let base = Url::parse(&format!("{}/", okta.url.trim_end_matches('/')))
            .map_err(|e| err(format!("invalid url: {e}")))?;
        crate::upstream::check_url_scheme(&base).map_err(|e| err(e.to_string()))?;
        let mut opts = UpstreamOptions::new(&cfg.name, cfg.limits.clone());
        opts.rate_limit_headers = Some(RateLimitHeaders::OKTA);
        opts.request_timeout = opts.request_timeout.min(cfg.timeout);
        let auth = match &okta.auth {
            OktaAuth::ApiToken(t) => Auth::Header(Secret::new(format!("SSWS {}", t.expose()))),
            OktaAuth::ServiceApp {
                client_id,
                private_key,
                key_id,
                scopes,
            } => {
                let token_url = base
                    .join(TOKEN.trim_start_matches('/'))
                    .map_err(|e| err(e.to_string()))?;
                let signer =
                    AssertionSigner::from_key(private_key, key_id.clone(), token_url.as_str())
                        .map_err(|e| err(format!("private_key: {e}")))?;
                let mut cc = ClientCredentials::new(
                    token_url,
                    client_id.clone(),
                    ClientAuth::PrivateKeyJwt(signer),
                );
                cc.scope = Some(scopes.join(" "));
                cc.endpoint = TOKEN.into();
                Auth::OAuth(Arc::new(TokenCache::new(Box::new(cc))))
            }
        };
        let up = Upstream::with_timer(opts, auth, timer).map_err(|e| err(e.to_string()))?;
        Ok(OktaSource {
            name: cfg.name.clone(),
            base,
            terminated_attribute: okta.terminated_attribute.clone(),
            factor_refresh_per_poll: okta.factor_refresh_per_poll,
            factor_max_age: okta.factor_max_age,
            factor_time_budget: cfg.timeout / 2,
            concurrency: cfg.limits.concurrency.max(1),
            up,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut u = self.base.clone();
        u.set_path(&format!(
            "{}{}",
            self.base.path().trim_end_matches('/'),
            path
        ));
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// `/api/v1/users/{id}/<tail>` with the id percent-encoded as one path segment.
    fn user_url(&self, id: &str, tail: &str, query: &[(&str, &str)]) -> Url {
        let mut u = self.url("/api/v1/users", query);
        if let Ok(mut seg) = u.path_segments_mut() {
            seg.push(id).push(tail);
        }
        u
    }

    fn error(&self, e: &UpstreamError) -> SourceError {
        let mut msg = format!("okta source {} ({}): {e}", self.name, self.base.as_str());
        match e {
            UpstreamError::Status {
                status: 401,
                endpoint,
                ..
            } if endpoint != TOKEN => msg.push_str(
                " — the API token or access token was rejected (expired, revoked, or for another org)",
            ),
            UpstreamError::Status {
                status: 401 | 403,
                endpoint,
                ..
            } => msg.push_str(&format!(" — {}", permission_hint(endpoint))),
            _ => {}
        }
        if let Some(code) = e.provider_code() {
            if code == "invalid_dpop_proof" || code == "use_dpop_nonce" {
                msg.push_str(" — the service app requires DPoP, which this exporter does not send: turn off \"Require Demonstrating Proof of Possession (DPoP) header in token requests\" for this app");
            }
        }
        if matches!(e, UpstreamError::BudgetExhausted { .. }) {
            msg.push_str(" — raise max_requests_per_poll: the user listing alone needs one request per 200 users");
        }
        SourceError::new(self.up.redact(&msg))
    }

    /// Reads the org once, pushing every account into `sink`.
    pub async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let started = Instant::now();
        let s = self.up.session(ctx.stats);
        let mut out = PollOutput::default();
        let now_unix = ctx.now.unix_timestamp();

        // Admins, their roles and groups.
        let admins = match self.fetch_admins(&s).await {
            Ok(m) => Some(m),
            Err(e) if e.is_permission() => {
                out.availability.set_missing(
                    DataKind::Roles,
                    format!("{e} — {}", permission_hint(ASSIGNEES)),
                );
                None
            }
            Err(e) => return Err(self.error(&e)),
        };

        // API tokens → token credentials of their owners.
        let mut tokens: HashMap<String, Vec<Credential>> = HashMap::new();
        match self.fetch_api_tokens(&s).await {
            Ok(t) => tokens = t,
            Err(e) if e.is_permission() => out.availability.set_missing(
                DataKind::Credentials,
                format!(
                    "partially: API tokens could not be read ({e} — {}); password ages are reported",
                    permission_hint(API_TOKENS)
                ),
            ),
            Err(e) => return Err(self.error(&e)),
        }

        // MFA policy gaps.
        out.tenant.mfa_policy_gaps = match self.policy_gaps(&s).await {
            Ok(g) => Some(g),
            Err(e) if e.is_permission() => {
                tracing::warn!(source = %self.name, error = %e, hint = permission_hint(POLICIES), "okta: cannot read policies; MFA policy gaps unknown");
                None
            }
            Err(e) => return Err(self.error(&e)),
        };

        // Factor-change events since the last poll.
        let log_since = self.lock().log_since;
        let mut wanted: HashSet<String> = HashSet::new();
        if let Some(since) = log_since {
            match self.factor_events(&s, since, ctx.now).await {
                Ok(ids) => wanted = ids,
                Err(e) => {
                    tracing::warn!(source = %self.name, error = %e, "okta: cannot read factor-change events from the System Log; changes show up when the cache entry is next refreshed")
                }
            }
        }

        // Plan the factor refreshes.
        let (generation, planned_old, budget) = {
            let mut st = self.lock();
            st.generation += 1;
            let mut budget = self
                .factor_refresh_per_poll
                .map(|n| n as usize)
                .unwrap_or(usize::MAX);
            if let Some(rem) = s.budget().remaining() {
                // Keep enough for the listing (last poll's pages, twice over, plus slack).
                let reserve = st.last_pages as usize * 2 + 10;
                budget = budget.min((rem as usize).saturating_sub(reserve));
            }
            // Entries older than factor_max_age, oldest first, leaving room for users not
            // cached yet.
            let uncached = st.last_active.saturating_sub(st.cache.len());
            let room = budget.saturating_sub(wanted.len() + uncached);
            let stale_before = now_unix - self.factor_max_age.as_secs() as i64;
            let mut old: Vec<(&String, i64)> = st
                .cache
                .iter()
                .filter(|(_, v)| v.fetched_at <= stale_before)
                .map(|(k, v)| (k, v.fetched_at))
                .collect();
            let take = room.min(old.len());
            if take > 0 && take < old.len() {
                old.select_nth_unstable_by_key(take - 1, |(_, t)| *t);
            }
            let planned: Vec<String> = old[..take].iter().map(|(k, _)| (*k).clone()).collect();
            (st.generation, planned, budget)
        };
        wanted.extend(planned_old);
        let run = FactorRun {
            left: AtomicUsize::new(budget),
            deadline: started + self.factor_time_budget,
            forbidden: Mutex::new(None),
            stopped: AtomicBool::new(false),
            refreshed: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            wanted,
            now_unix,
            generation,
        };

        // Users: the default listing (every status but DEPROVISIONED), then DEPROVISIONED.
        let ctx_l = Listing {
            admins: admins.as_ref(),
            tokens: &tokens,
            run: &run,
        };
        let mut seen: HashSet<u64> = HashSet::new();
        let mut active = 0usize;
        let mut pages = 0u32;
        let first = Request::get(self.url(USERS, &[("limit", "200")]), USERS);
        let (n_active, n_pages) = self
            .list_users(&s, first, &ctx_l, sink, &mut seen, false)
            .await?;
        active += n_active;
        pages += n_pages;
        let deprov = Request::get(
            self.url(
                USERS,
                &[("filter", "status eq \"DEPROVISIONED\""), ("limit", "200")],
            ),
            USERS,
        );
        let (n_active, n_pages) = self
            .list_users(&s, deprov, &ctx_l, sink, &mut seen, true)
            .await?;
        active += n_active;
        pages += n_pages;

        // Prune users no longer active, record what the next poll needs, report coverage.
        let (covered, oldest) = {
            let mut st = self.lock();
            st.cache.retain(|_, e| e.seen == generation);
            st.last_active = active;
            st.last_pages = pages;
            // Next System Log window starts a little before this poll (late events).
            st.log_since = Some(ctx.now - LOG_OVERLAP);
            let covered = st.cache.len();
            let oldest = st.cache.values().map(|e| e.fetched_at).min();
            (covered, oldest)
        };
        let forbidden = run
            .forbidden
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(reason) = forbidden {
            out.availability.set_missing(DataKind::Mfa, reason);
        } else if covered == 0 && active > 0 {
            out.availability.set_missing(
                DataKind::Mfa,
                "no user's factors could be fetched yet (request budget or time budget spent)",
            );
        }
        let failed = run.failed.load(Ordering::Relaxed);
        if failed > 0 {
            tracing::warn!(source = %self.name, failed, "okta: some factor requests failed; those users keep their cached factors (or unknown)");
        }
        let ratio = if active == 0 {
            1.0
        } else {
            covered as f64 / active as f64
        };
        out.gauges.push(SourceGauge {
            name: "identity_posture_source_factor_cache_coverage_ratio",
            help: "Share of active accounts whose MFA factors are known (factor cache), as of the last background poll.",
            labels: Vec::new(),
            value: ratio.min(1.0),
        });
        if let Some(t) = oldest {
            out.gauges.push(SourceGauge {
                name: "identity_posture_source_factor_cache_oldest_timestamp_seconds",
                help: "When the oldest cached MFA factor list was fetched (unix seconds), as of the last background poll.",
                labels: Vec::new(),
                value: t as f64,
            });
        }
        out.gauges.push(SourceGauge {
            name: "identity_posture_source_factor_refreshes",
            help: "Accounts whose MFA factors were fetched in the last background poll.",
            labels: Vec::new(),
            value: run.refreshed.load(Ordering::Relaxed) as f64,
        });
        out.gauges.push(s.requests_gauge());
        tracing::info!(
            source = %self.name,
            active,
            factors_cached = covered,
            factors_refreshed = run.refreshed.load(Ordering::Relaxed),
            requests = s.budget().used(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "okta poll done"
        );
        Ok(out)
    }

    /// Pages through one user listing, refreshing factors for each page while the next
    /// page is fetched. Returns (active users, pages).
    async fn list_users(
        &self,
        s: &Session<'_>,
        first: Request,
        l: &Listing<'_>,
        sink: &mut dyn AccountSink,
        seen: &mut HashSet<u64>,
        deprovisioned_pass: bool,
    ) -> Result<(usize, u32), SourceError> {
        let mut pager = Pager::link(first);
        let mut active = 0usize;
        let mut page = pager.next_page(s).await.map_err(|e| self.error(&e))?;
        while let Some(resp) = page {
            let users: Vec<OktaUser> = resp.json().map_err(|e| self.error(&e))?;
            let mut to_fetch = Vec::new();
            for u in users {
                let Some(mut a) = map_user(u, self.terminated_attribute.as_deref()) else {
                    continue;
                };
                let h = id_hash(&a.id);
                if deprovisioned_pass {
                    if seen.contains(&h) {
                        continue; // changed status between the two listings
                    }
                } else {
                    seen.insert(h);
                }
                self.attach(&mut a, l);
                if a.status.is_active() {
                    active += 1;
                    if self.claim_refresh(&a.id, l.run) {
                        to_fetch.push(a);
                        continue;
                    }
                    a.mfa = self.cached_mfa(&a.id, l.run.generation);
                }
                sink.push(a);
            }
            let fetches = self.refresh_factors(s, to_fetch, l.run);
            let (done, next) = futures_util::future::join(fetches, pager.next_page(s)).await;
            for a in done {
                sink.push(a);
            }
            page = next.map_err(|e| self.error(&e))?;
        }
        Ok((active, pager.pages()))
    }

    /// Roles, groups and API tokens.
    fn attach(&self, a: &mut Account, l: &Listing<'_>) {
        match l.admins {
            Some(admins) => match admins.get(&a.id) {
                Some(info) => {
                    a.roles = Some(info.roles.clone());
                    a.groups = info.groups.clone();
                }
                None => a.roles = Some(Vec::new()),
            },
            None => a.roles = None,
        }
        if let Some(t) = l.tokens.get(&a.id) {
            a.credentials
                .get_or_insert_with(Vec::new)
                .extend(t.iter().cloned());
        }
    }

    /// Whether this user's factors are fetched now (taking one from the refresh budget).
    fn claim_refresh(&self, id: &str, run: &FactorRun) -> bool {
        if run.stopped.load(Ordering::Relaxed) {
            return false;
        }
        if Instant::now() >= run.deadline {
            run.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        let needed = run.wanted.contains(id) || !self.lock().cache.contains_key(id);
        if !needed {
            return false;
        }
        run.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The cached factors (marking the entry as still in use), or `None` = unknown.
    fn cached_mfa(&self, id: &str, generation: u64) -> Option<Mfa> {
        let mut st = self.lock();
        let e = st.cache.get_mut(id)?;
        e.seen = generation;
        Some(Mfa {
            factors: e.factors.clone(),
            enforced: None,
        })
    }

    async fn refresh_factors(
        &self,
        s: &Session<'_>,
        accounts: Vec<Account>,
        run: &FactorRun,
    ) -> Vec<Account> {
        stream::iter(accounts)
            .map(|mut a| async move {
                let stop = run.stopped.load(Ordering::Relaxed);
                let r = if stop {
                    None
                } else {
                    Some(self.fetch_factors(s, &a.id).await)
                };
                match r {
                    Some(Ok(factors)) => {
                        run.refreshed.fetch_add(1, Ordering::Relaxed);
                        let mut st = self.lock();
                        st.cache.insert(
                            a.id.clone(),
                            CacheEntry {
                                factors: factors.clone(),
                                fetched_at: run.now_unix,
                                seen: run.generation,
                            },
                        );
                        a.mfa = Some(Mfa {
                            factors,
                            enforced: None,
                        });
                        return a;
                    }
                    Some(Err(e)) if e.is_permission() => {
                        run.stopped.store(true, Ordering::Relaxed);
                        let mut f = run.forbidden.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert_with(|| format!("{e} — {}", permission_hint(FACTORS)));
                    }
                    Some(Err(UpstreamError::BudgetExhausted { .. })) => {
                        run.stopped.store(true, Ordering::Relaxed);
                    }
                    Some(Err(e)) if e.status() == Some(404) => {}
                    Some(Err(e)) => {
                        run.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(source = %self.name, error = %e, "okta: factor request failed");
                        if matches!(e.status(), Some(429)) {
                            // Rate limit not recovering: leave the rest for the next poll.
                            run.stopped.store(true, Ordering::Relaxed);
                        }
                    }
                    None => {}
                }
                a.mfa = self.cached_mfa(&a.id, run.generation);
                a
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }

    async fn fetch_factors(&self, s: &Session<'_>, id: &str) -> Result<Vec<Factor>, UpstreamError> {
        let r = s
            .send(Request::get(self.user_url(id, "factors", &[]), FACTORS))
            .await?;
        Ok(map_factors(r.json::<Vec<OktaFactor>>()?))
    }

    async fn fetch_all<T: serde::de::DeserializeOwned>(
        &self,
        s: &Session<'_>,
        req: Request,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut pager = Pager::link(req);
        let mut out = Vec::new();
        while let Some(r) = pager.next_page(s).await? {
            out.extend(r.json::<Vec<T>>()?);
        }
        Ok(out)
    }

    async fn fetch_admins(
        &self,
        s: &Session<'_>,
    ) -> Result<HashMap<String, AdminInfo>, UpstreamError> {
        // Ids of users holding any admin role (the next page is in the body).
        let mut pager = Pager::body(Request::get(
            self.url(ASSIGNEES, &[("limit", "100")]),
            ASSIGNEES,
        ));
        let mut ids: Vec<String> = Vec::new();
        while let Some(r) = pager.next_page(s).await? {
            let page: Assignees = r.json()?;
            ids.extend(
                page.value
                    .iter()
                    .filter_map(|v| v.get("id").and_then(|i| i.as_str()))
                    .filter(|i| !i.is_empty())
                    .map(str::to_string),
            );
            let next = page
                .links
                .as_ref()
                .and_then(|l| l.pointer("/next/href"))
                .and_then(|h| h.as_str())
                .map(str::to_string)
                .or_else(|| crate::upstream::next_link(&r.headers, &r.url).map(|u| u.to_string()));
            pager.set_next(next.map(NextPage::Url).unwrap_or(NextPage::Done))?;
        }
        ids.sort();
        ids.dedup();
        let results: Vec<Result<(String, AdminInfo), UpstreamError>> = stream::iter(ids)
            .map(|id| async move {
                let roles: Vec<OktaRole> = self
                    .fetch_all(s, Request::get(self.user_url(&id, "roles", &[]), ROLES))
                    .await?;
                let roles: Vec<Role> = roles
                    .into_iter()
                    .filter(|r| r.status.as_deref().unwrap_or("ACTIVE") == "ACTIVE")
                    .filter_map(|r| {
                        let t = r.role_type?;
                        // Custom roles are told apart by their label.
                        let name = if t == "CUSTOM" {
                            format!("CUSTOM:{}", clean(r.label.as_deref()))
                        } else {
                            t
                        };
                        Some(Role {
                            name,
                            last_used: Known::Unknown,
                        })
                    })
                    .collect();
                let groups = match self
                    .fetch_all::<OktaGroup>(
                        s,
                        Request::get(self.user_url(&id, "groups", &[("limit", "200")]), GROUPS),
                    )
                    .await
                {
                    Ok(g) => g
                        .into_iter()
                        .filter_map(|g| {
                            g.profile?
                                .get("name")
                                .and_then(|n| n.as_str())
                                .map(str::to_string)
                        })
                        .collect(),
                    Err(e) if e.is_permission() => {
                        tracing::warn!(source = %self.name, error = %e, "okta: cannot read an admin's groups; privilege rules by group cannot match");
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                };
                Ok((id, AdminInfo { roles, groups }))
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut map = HashMap::new();
        for r in results {
            let (id, info) = r?;
            map.insert(id, info);
        }
        Ok(map)
    }

    async fn fetch_api_tokens(
        &self,
        s: &Session<'_>,
    ) -> Result<HashMap<String, Vec<Credential>>, UpstreamError> {
        let list: Vec<OktaApiToken> = self
            .fetch_all(s, Request::get(self.url(API_TOKENS, &[]), API_TOKENS))
            .await?;
        let mut map: HashMap<String, Vec<Credential>> = HashMap::new();
        for t in list {
            let (Some(id), Some(user)) = (t.id, t.user_id) else {
                continue;
            };
            map.entry(user).or_default().push(Credential {
                credential_type: CredentialType::Token,
                id,
                last_rotated: t
                    .created
                    .as_deref()
                    .and_then(|c| parse_ts(c).ok())
                    .map(Known::At)
                    .unwrap_or(Known::Unknown),
                // `expiresAt` slides with every use (30 days after last use), so it is not a
                // deadline to warn about; Okta has no last-used field.
                expires: Known::Unknown,
                last_used: Known::Unknown,
            });
        }
        Ok(map)
    }

    async fn policies(
        &self,
        s: &Session<'_>,
        policy_type: &str,
    ) -> Result<Vec<(String, Vec<OktaRule>)>, UpstreamError> {
        let policies: Vec<OktaPolicy> = self
            .fetch_all(
                s,
                Request::get(self.url(POLICIES, &[("type", policy_type)]), POLICIES),
            )
            .await?;
        let active: Vec<OktaPolicy> = policies
            .into_iter()
            .filter(|p| p.status.as_deref() == Some("ACTIVE") && p.id.is_some())
            .collect();
        let results: Vec<Result<(String, Vec<OktaRule>), UpstreamError>> = stream::iter(active)
            .map(|p| async move {
                let id = p.id.clone().unwrap_or_default();
                let mut u = self.url(POLICIES, &[]);
                if let Ok(mut seg) = u.path_segments_mut() {
                    seg.push(&id).push("rules");
                }
                let rules: Vec<OktaRule> = self.fetch_all(s, Request::get(u, RULES)).await?;
                Ok((clean(p.name.as_deref()), rules))
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Active rules that grant access without a second factor.
    ///
    /// Identity Engine orgs (those with app sign-in policies, `ACCESS_POLICY`): a rule that
    /// allows access with `factorMode: 1FA`. Classic orgs: a global sign-on rule that allows
    /// sign-in with `requireFactor` false.
    async fn policy_gaps(&self, s: &Session<'_>) -> Result<Vec<String>, UpstreamError> {
        let mut gaps = Vec::new();
        let access = match self.policies(s, "ACCESS_POLICY").await {
            Ok(p) => Some(p),
            // Classic orgs reject the type (400): fall back to the sign-on policy.
            Err(e) if e.status() == Some(400) => None,
            Err(e) => return Err(e),
        };
        let active_allow = |r: &OktaRule| r.status.as_deref().unwrap_or("ACTIVE") == "ACTIVE";
        match access {
            Some(policies) if !policies.is_empty() => {
                for (policy, rules) in policies {
                    for r in rules.iter().filter(|r| active_allow(r)) {
                        let a = r.actions.as_ref().and_then(|a| a.get("appSignOn"));
                        let allow = a.and_then(|a| a.get("access")).and_then(|v| v.as_str())
                            == Some("ALLOW");
                        let one_factor = a
                            .and_then(|a| a.pointer("/verificationMethod/factorMode"))
                            .and_then(|v| v.as_str())
                            == Some("1FA");
                        if allow && one_factor {
                            gaps.push(format!(
                                "app sign-in policy \"{policy}\" rule \"{}\" allows access with one factor",
                                clean(r.name.as_deref())
                            ));
                        }
                    }
                }
            }
            _ => {
                for (policy, rules) in self.policies(s, "OKTA_SIGN_ON").await? {
                    for r in rules.iter().filter(|r| active_allow(r)) {
                        let a = r.actions.as_ref().and_then(|a| a.get("signon"));
                        let allow = a.and_then(|a| a.get("access")).and_then(|v| v.as_str())
                            == Some("ALLOW");
                        let requires = a
                            .and_then(|a| a.get("requireFactor"))
                            .and_then(|v| v.as_bool())
                            .unwrap_or(false);
                        if allow && !requires {
                            gaps.push(format!(
                                "global session policy \"{policy}\" rule \"{}\" allows sign-in without MFA",
                                clean(r.name.as_deref())
                            ));
                        }
                    }
                }
            }
        }
        gaps.sort();
        Ok(gaps)
    }

    /// Ids of users whose factors changed between `since` and `until`.
    async fn factor_events(
        &self,
        s: &Session<'_>,
        since: Timestamp,
        until: Timestamp,
    ) -> Result<HashSet<String>, UpstreamError> {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let f = |t: Timestamp| {
            t.to_offset(time::UtcOffset::UTC)
                .format(&fmt)
                .unwrap_or_default()
        };
        let (since, until) = (f(since), f(until));
        // Bounded query (since and until): finite pages, the last one without `next`.
        let req = Request::get(
            self.url(
                LOGS,
                &[
                    ("since", since.as_str()),
                    ("until", until.as_str()),
                    ("filter", FACTOR_EVENT_FILTER),
                    ("limit", "1000"),
                ],
            ),
            LOGS,
        );
        let mut pager = Pager::link(req).with_max_pages(50);
        let mut ids = HashSet::new();
        while let Some(r) = pager.next_page(s).await? {
            let events: Vec<LogEvent> = r.json()?;
            if events.is_empty() {
                break;
            }
            for e in events {
                let mut found = false;
                if let Some(targets) = e.target.as_ref().and_then(|t| t.as_array()) {
                    for t in targets {
                        if t.get("type").and_then(|v| v.as_str()) == Some("User") {
                            if let Some(id) = t.get("id").and_then(|v| v.as_str()) {
                                ids.insert(id.to_string());
                                found = true;
                            }
                        }
                    }
                }
                if !found {
                    if let Some(id) = e
                        .actor
                        .as_ref()
                        .filter(|a| a.get("type").and_then(|v| v.as_str()) == Some("User"))
                        .and_then(|a| a.get("id"))
                        .and_then(|v| v.as_str())
                    {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
        Ok(ids)
    }
}

/// What every page of a listing needs to finish its accounts.
struct Listing<'a> {
    admins: Option<&'a HashMap<String, AdminInfo>>,
    tokens: &'a HashMap<String, Vec<Credential>>,
    run: &'a FactorRun,
}

fn id_hash(id: &str) -> u64 {
    let mut h = DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// Pages of a response, for tests of the mapping.
#[doc(hidden)]
pub fn parse_users_for_test(r: &Response, terminated_attribute: Option<&str>) -> Vec<Account> {
    r.json::<Vec<OktaUser>>()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|u| map_user(u, terminated_attribute))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: &str) -> Account {
        map_user(serde_json::from_str(json).unwrap(), Some("leaveDate")).unwrap()
    }

    #[test]
    fn statuses_map_onto_the_model() {
        for (okta, model) in [
            ("ACTIVE", Status::Active),
            ("PASSWORD_EXPIRED", Status::Active),
            ("RECOVERY", Status::Active),
            ("LOCKED_OUT", Status::Locked),
            ("SUSPENDED", Status::Suspended),
            ("DEPROVISIONED", Status::Deprovisioned),
            ("STAGED", Status::Staged),
            ("PROVISIONED", Status::Staged),
            ("SOMETHING_NEW", Status::Staged),
        ] {
            assert_eq!(map_status(okta), model, "{okta}");
        }
    }

    #[test]
    fn factor_types_map_onto_the_model() {
        for (okta, model) in [
            ("push", FactorType::Push),
            ("token:software:totp", FactorType::Totp),
            ("token:hotp", FactorType::Totp),
            ("webauthn", FactorType::Webauthn),
            ("u2f", FactorType::Webauthn),
            ("signed_nonce", FactorType::Webauthn),
            ("token:hardware", FactorType::HardwareToken),
            ("token", FactorType::HardwareToken),
            ("sms", FactorType::Sms),
            ("call", FactorType::Voice),
            ("email", FactorType::Email),
            ("question", FactorType::Question),
            ("web", FactorType::Other),
            ("carrier_pigeon", FactorType::Other),
        ] {
            assert_eq!(map_factor_type(okta), model, "{okta}");
        }
        assert_eq!(map_factor_status("ACTIVE"), FactorStatus::Active);
        assert_eq!(
            map_factor_status("PENDING_ACTIVATION"),
            FactorStatus::Pending
        );
        for s in ["NOT_SETUP", "INACTIVE", "DISABLED", "EXPIRED", ""] {
            assert_eq!(map_factor_status(s), FactorStatus::Inactive, "{s}");
        }
    }

    #[test]
    fn absent_is_unknown_and_null_is_never() {
        let a = user(r#"{"id":"00u1","status":"ACTIVE","profile":{"login":"a@x"}}"#);
        assert_eq!(a.last_login, Known::Unknown);
        let a =
            user(r#"{"id":"00u1","status":"ACTIVE","lastLogin":null,"profile":{"login":"a@x"}}"#);
        assert_eq!(a.last_login, Known::Never);
        let a = user(
            r#"{"id":"00u1","status":"ACTIVE","lastLogin":"2026-01-02T03:04:05.000Z","profile":{"login":"a@x"}}"#,
        );
        assert!(matches!(a.last_login, Known::At(_)));
        assert!(a.mfa.is_none(), "factors not fetched = unknown");
    }

    #[test]
    fn passwords_for_okta_users_only() {
        let a = user(
            r#"{"id":"1","passwordChanged":"2025-01-01T00:00:00.000Z","credentials":{"password":{},"provider":{"type":"OKTA","name":"OKTA"}},"profile":{"login":"a"}}"#,
        );
        let c = a.credentials.unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].credential_type, CredentialType::Password);
        assert!(matches!(c[0].last_rotated, Known::At(_)));
        let a = user(
            r#"{"id":"1","passwordChanged":null,"credentials":{"provider":{"type":"FEDERATION","name":"FEDERATION"}},"profile":{"login":"a"}}"#,
        );
        assert_eq!(a.credentials, Some(vec![]));
    }

    #[test]
    fn profile_attributes_and_leave_date() {
        let a = user(
            r#"{"id":"1","status":"ACTIVE","profile":{"login":"a@x","firstName":"Ann","lastName":"Lee","department":"Eng","title":"SRE","employeeNumber":"42","leaveDate":"2026-03-01"}}"#,
        );
        assert_eq!(a.display_name.as_deref(), Some("Ann Lee"));
        assert_eq!(a.attributes["department"], "Eng");
        assert_eq!(a.attributes["employee_number"], "42");
        assert_eq!(a.attributes["okta_status"], "ACTIVE");
        assert!(a.terminated.is_some());
    }

    #[test]
    fn hostile_users_are_skipped_not_fatal() {
        let users: Vec<OktaUser> = serde_json::from_str(
            r#"[{"id":42,"status":["x"],"lastLogin":"not a date","profile":{"login":7}},{"profile":{}},{"id":"ok","lastLogin":17}]"#,
        )
        .unwrap();
        let accounts: Vec<Account> = users
            .into_iter()
            .filter_map(|u| map_user(u, None))
            .collect();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].id, "ok");
        assert_eq!(accounts[0].login, "ok");
        assert_eq!(accounts[0].last_login, Known::Unknown);
    }
}
