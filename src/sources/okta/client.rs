//! The Okta source's requests, on the shared upstream layer: the client (API token or
//! service-app OAuth), URL building, and the reads besides the user listing — admins with
//! their roles and groups, API tokens, sign-on policies' MFA gaps, System Log factor events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use url::Url;

use super::config::{OktaAuth, OktaConfig};
use super::map::{clean, map_factors};
use super::wire::{
    Assignees, LogEvent, OktaApiToken, OktaFactor, OktaGroup, OktaPolicy, OktaRole, OktaRule,
};
use crate::config::{Secret, SourceConfig};
use crate::model::{parse_ts, Credential, CredentialType, Factor, Known, Role, Timestamp};
use crate::sources::{Deps, SourceError};
use crate::upstream::{
    Auth, ClientAuth, ClientCredentials, JwtSigner, NextPage, Pager, RateLimitHeaders, Request,
    RequestStats, Session, TokenCache, Upstream, UpstreamError, UpstreamOptions,
};

// Endpoint labels: log and error names, and the pacing buckets.
pub const USERS: &str = "/api/v1/users";
pub const FACTORS: &str = "/api/v1/users/{id}/factors";
pub const ROLES: &str = "/api/v1/users/{id}/roles";
pub const GROUPS: &str = "/api/v1/users/{id}/groups";
pub const ASSIGNEES: &str = "/api/v1/iam/assignees/users";
pub const API_TOKENS: &str = "/api/v1/api-tokens";
pub const POLICIES: &str = "/api/v1/policies";
pub const RULES: &str = "/api/v1/policies/{id}/rules";
pub const LOGS: &str = "/api/v1/logs";
pub const TOKEN: &str = "/oauth2/v1/token";

/// Events in the System Log that change a user's factors.
pub const FACTOR_EVENT_FILTER: &str = "eventType sw \"user.mfa.factor\"";

/// What a permission error on each endpoint means, for the error message.
pub fn permission_hint(endpoint: &str) -> &'static str {
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

/// An admin's roles and groups.
#[derive(Default)]
pub struct AdminInfo {
    pub roles: Vec<Role>,
    pub groups: Vec<String>,
    /// The admin's groups were refused (403): `groups` is empty, not known to be.
    pub groups_unknown: bool,
}

/// One Okta org's client. Long-lived: pacing state and tokens persist between polls.
pub struct OktaClient {
    name: String,
    base: Url,
    concurrency: usize,
    up: Upstream,
}

impl OktaClient {
    pub fn new(cfg: &SourceConfig, okta: &OktaConfig, deps: &Deps) -> Result<OktaClient, SourceError> {
        let err = |m: String| SourceError::config(format!("okta source {}: {m}", cfg.name));
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
                let signer = JwtSigner::from_key(private_key, key_id.clone())
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
        let up = Upstream::with_timer(opts, auth, deps.timer.clone())
            .map_err(|e| err(e.to_string()))?;
        Ok(OktaClient {
            name: cfg.name.clone(),
            base,
            concurrency: cfg.limits.concurrency.max(1),
            up,
        })
    }

    /// One poll's session: a fresh request budget, counting into `stats`.
    pub fn session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.session(stats)
    }

    /// The sign-in event stream's session: the same poll's request budget as the listing.
    pub fn continue_session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.continue_session(stats)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The org's base URL (for resolving a stored System Log cursor).
    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
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
    pub fn user_url(&self, id: &str, tail: &str, query: &[(&str, &str)]) -> Url {
        let mut u = self.url("/api/v1/users", query);
        if let Ok(mut seg) = u.path_segments_mut() {
            seg.push(id).push(tail);
        }
        u
    }

    /// A failed read as the poll's error, with what the admin must change.
    pub fn error(&self, e: &UpstreamError) -> SourceError {
        let label = format!("okta source {} ({})", self.name, self.base.as_str());
        let mut hint = match e {
            UpstreamError::Status {
                status: 401,
                endpoint,
                ..
            } if endpoint != TOKEN => Some(
                "the API token or access token was rejected (expired, revoked, or for another org)"
                    .to_string(),
            ),
            UpstreamError::Status {
                status: 401 | 403,
                endpoint,
                ..
            } => Some(permission_hint(endpoint).to_string()),
            UpstreamError::BudgetExhausted { .. } => Some(
                "raise max_requests_per_poll: the user listing alone needs one request per 200 users"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(code) = e.provider_code() {
            if code == "invalid_dpop_proof" || code == "use_dpop_nonce" {
                hint = Some("the service app requires DPoP, which this exporter does not send: turn off \"Require Demonstrating Proof of Possession (DPoP) header in token requests\" for this app".into());
            }
        }
        SourceError::upstream(&label, e, hint, |m| self.up.redact(m))
    }

    pub async fn fetch_factors(&self, s: &Session<'_>, id: &str) -> Result<Vec<Factor>, UpstreamError> {
        let r = s
            .send(Request::get(self.user_url(id, "factors", &[]), FACTORS))
            .await?;
        Ok(map_factors(r.json::<Vec<OktaFactor>>()?))
    }

    pub async fn fetch_all<T: serde::de::DeserializeOwned>(
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

    pub async fn fetch_admins(
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
            let next = page
                .links
                .as_ref()
                .and_then(|l| l.pointer("/next/href"))
                .and_then(|h| h.as_str())
                .map(str::to_string)
                .or_else(|| crate::upstream::next_link(&r.headers, &r.url).map(|u| u.to_string()));
            pager.set_next(next.map(NextPage::Url).unwrap_or(NextPage::Done))?;
            ids.extend(
                page.value
                    .iter()
                    .filter_map(|v| v.get("id").and_then(|i| i.as_str()))
                    .filter(|i| !i.is_empty())
                    .map(str::to_string),
            );
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
                let mut groups_unknown = false;
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
                        tracing::debug!(source = %self.name, error = %e, "okta: cannot read an admin's groups");
                        groups_unknown = true;
                        Vec::new()
                    }
                    Err(e) => return Err(e),
                };
                Ok((
                    id,
                    AdminInfo {
                        roles,
                        groups,
                        groups_unknown,
                    },
                ))
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

    pub async fn fetch_api_tokens(
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

    pub async fn policies(
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
    pub async fn policy_gaps(&self, s: &Session<'_>) -> Result<Vec<String>, UpstreamError> {
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
    pub async fn factor_events(
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
        // An empty page ends the read: the link after it is not requested ahead.
        let mut pager = Pager::link(req)
            .with_max_pages(50)
            .hold_when(|r| r.body.trim_ascii() == b"[]");
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
