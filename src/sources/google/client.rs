//! The Google source's seam to the shared upstream layer: the service account's JWT-bearer
//! token (domain-wide delegation) in a [`TokenCache`], Admin SDK `GET`s through a per-poll
//! [`Session`] (403 `usageLimits` reasons and 429 are throttling; the documented 2,400
//! queries a minute are a [`RequestQuota`]), `pageToken` paging, and what each failure means.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use url::Url;

use super::config::GoogleConfig;
use super::wire::{Activity, ItemsPage, MembersPage, Role, RoleAssignment, UsersPage};
use crate::config::SourceConfig;
use crate::sources::{Deps, ErrorKind, SourceError};
use crate::upstream::{
    Auth, Claims, JwtBearer, JwtSigner, NextPage, Pager, Request, RequestQuota, RequestStats,
    Session, Throttled, TokenCache, Upstream, UpstreamError, UpstreamOptions,
};

/// The read-only scopes the service account is delegated, exactly (docs/google.md).
pub const SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.rolemanagement.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.reports.audit.readonly",
];

// Endpoint labels (path templates): log and error names.
pub const USERS: &str = "/admin/directory/v1/users";
pub const ROLES: &str = "/admin/directory/v1/customer/{customer}/roles";
pub const ROLE_ASSIGNMENTS: &str = "/admin/directory/v1/customer/{customer}/roleassignments";
pub const MEMBERS: &str = "/admin/directory/v1/groups/{groupKey}/members";
pub const LOGINS: &str = "/admin/reports/v1/activity/users/all/applications/login";

/// Page sizes: the discovery documents' maxima (`users.list` 500, `roles.list` 100,
/// `roleAssignments.list` 200, `members.list` 200, `activities.list` 1000).
pub const USERS_PAGE: u32 = 500;
pub const ROLES_PAGE: u32 = 100;
pub const ASSIGNMENTS_PAGE: u32 = 200;
pub const MEMBERS_PAGE: u32 = 200;
pub const ACTIVITIES_PAGE: u32 = 1000;

/// The Directory API's documented default quota (per user per Google Cloud project); the
/// source uses `max_rate_limit_share` of it.
pub const QUOTA: RequestQuota = RequestQuota {
    requests: 2_400,
    per: Duration::from_secs(60),
};

/// Google throttles with 403 and one of these `error.errors[].reason`s (domain
/// `usageLimits`), besides 429 (`RESOURCE_EXHAUSTED`).
const THROTTLE_REASONS: [&str; 3] = ["userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded"];

/// The upstream layer's rate-limit rule: a 403 whose reason is one of [`THROTTLE_REASONS`].
/// Google names no wait of its own, so the retry backoff applies.
pub fn is_throttled(status: u16, _: &HeaderMap, body: &[u8], _now: f64) -> Option<Throttled> {
    if status != 403 {
        return None;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return None;
    };
    let err = v.get("error");
    let listed = err
        .and_then(|e| e.get("errors"))
        .and_then(|e| e.as_array())
        .is_some_and(|errors| {
            errors.iter().any(|x| {
                x.get("reason")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| THROTTLE_REASONS.contains(&r))
            })
        });
    // The v2 error format carries the reason in `details[].reason` (ErrorInfo).
    let detailed = err
        .and_then(|e| e.get("details"))
        .and_then(|d| d.as_array())
        .is_some_and(|d| {
            d.iter().any(|x| {
                x.get("reason")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| r == "RATE_LIMIT_EXCEEDED")
            })
        });
    (listed || detailed).then_some(Throttled {
        wait: None,
        until_reset: false,
    })
}

/// One page of a `pageToken` listing: its cursor and the ids of its items (loop detection).
pub trait Paged: DeserializeOwned {
    fn next_token(&self) -> Option<&str>;
    fn ids(&self) -> Vec<Cow<'_, str>>;
}

impl Paged for UsersPage {
    fn next_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
    fn ids(&self) -> Vec<Cow<'_, str>> {
        self.users
            .items
            .iter()
            .filter_map(|u| u.id.as_deref().map(Cow::Borrowed))
            .collect()
    }
}

impl Paged for MembersPage {
    fn next_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
    fn ids(&self) -> Vec<Cow<'_, str>> {
        self.members
            .items
            .iter()
            .filter_map(|m| m.id.as_deref().map(Cow::Borrowed))
            .collect()
    }
}

impl Paged for ItemsPage<Role> {
    fn next_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
    fn ids(&self) -> Vec<Cow<'_, str>> {
        self.items
            .items
            .iter()
            .filter_map(|r| r.role_id.as_deref().map(Cow::Borrowed))
            .collect()
    }
}

impl Paged for ItemsPage<RoleAssignment> {
    fn next_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
    fn ids(&self) -> Vec<Cow<'_, str>> {
        self.items
            .items
            .iter()
            .filter_map(|r| r.role_assignment_id.as_deref().map(Cow::Borrowed))
            .collect()
    }
}

impl Paged for ItemsPage<Activity> {
    fn next_token(&self) -> Option<&str> {
        self.next_page_token.as_deref()
    }
    fn ids(&self) -> Vec<Cow<'_, str>> {
        // `uniqueQualifier` is unique per event only together with its time.
        self.items
            .items
            .iter()
            .filter_map(|a| {
                let id = a.id.as_ref()?;
                let q = id.unique_qualifier.as_deref()?;
                Some(Cow::Owned(format!(
                    "{}/{q}",
                    id.time.as_deref().unwrap_or_default()
                )))
            })
            .collect()
    }
}

/// One Workspace account's client. Long-lived: the token and the quota window persist.
pub struct GoogleClient {
    name: String,
    api: Url,
    customer: String,
    token_endpoint: String,
    client_id: Option<String>,
    admin_email: String,
    tokens: Arc<TokenCache>,
    up: Upstream,
}

impl GoogleClient {
    pub fn new(sc: &SourceConfig, cfg: &GoogleConfig, deps: &Deps) -> Result<GoogleClient, SourceError> {
        let err = |m: String| SourceError::config(format!("google source {}: {m}", sc.name));
        let api = Url::parse(&format!("{}/", cfg.api_url.trim_end_matches('/')))
            .map_err(|e| err(format!("invalid api_url: {e}")))?;
        crate::upstream::check_url_scheme(&api).map_err(|e| err(e.to_string()))?;
        let token_url =
            Url::parse(&cfg.token_url).map_err(|e| err(format!("invalid token_url: {e}")))?;
        crate::upstream::check_url_scheme(&token_url).map_err(|e| err(e.to_string()))?;
        // The key is tried here, so a bad one is reported by check-config and at start-up.
        let signer = JwtSigner::from_key(&cfg.key.private_key, cfg.key.private_key_id.clone())
            .map_err(|e| err(format!("credentials: private_key: {e}")))?;
        if signer.algorithm() != jsonwebtoken::Algorithm::RS256 {
            return Err(err(
                "credentials: private_key is not an RSA key (Google service-account keys are RSA, signed RS256)".into(),
            ));
        }
        // google-auth-library's service-account grant: iss = the service account, sub = the
        // user to act as, scope, aud = the token URL, exp = iat + 3600, no jti.
        let claims = Claims::new(&cfg.key.client_email)
            .subject(&cfg.admin_email)
            .audience(token_url.as_str())
            .scope(SCOPES.join(" "))
            .lifetime(Duration::from_secs(3600))
            .without_jti();
        let token_endpoint = token_url.path().to_string();
        let grant = JwtBearer {
            token_url,
            signer,
            claims,
            endpoint: token_endpoint.clone(),
        };
        let tokens = Arc::new(TokenCache::new(Box::new(grant)));
        let mut opts = UpstreamOptions::new(&sc.name, sc.limits.clone());
        // No rate-limit headers: throttling is a 403 reason or a 429, the quota is documented.
        opts.rate_limit_headers = None;
        opts.rate_limited = Some(is_throttled);
        opts.quota = Some(QUOTA);
        opts.request_timeout = opts.request_timeout.min(sc.timeout);
        let up = Upstream::with_timer(opts, Auth::OAuth(tokens.clone()), deps.timer.clone())
            .map_err(|e| err(e.to_string()))?;
        Ok(GoogleClient {
            name: sc.name.clone(),
            api,
            customer: cfg.customer.clone(),
            token_endpoint,
            client_id: cfg.key.client_id.clone(),
            admin_email: cfg.admin_email.clone(),
            tokens,
            up,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// One poll's session: a fresh request budget, counting into `stats`.
    pub fn session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.session(stats)
    }

    /// The sign-in stream's session: the same poll's request budget (see
    /// [`Upstream::continue_session`]).
    pub fn continue_session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.continue_session(stats)
    }

    /// Token fetches so far (tests, benchmark).
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    pub fn customer(&self) -> &str {
        &self.customer
    }

    /// `{api}/{segments…}?{query}`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut u = self.api.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// The first page of the user listing.
    pub fn users_request(&self) -> Request {
        let max = USERS_PAGE.to_string();
        Request::get(
            self.url(
                &["admin", "directory", "v1", "users"],
                &[
                    ("customer", self.customer.as_str()),
                    ("projection", "full"),
                    ("maxResults", max.as_str()),
                ],
            ),
            USERS,
        )
    }

    /// Walks a `pageToken` listing from `first`, handing every page to `on_page`. Before a
    /// page is handed over, `more` is asked whether to read on (when there is a next page):
    /// `false` stops the walk there, `true` requests the next page at once, so it is fetched
    /// while `on_page` works on this one. Returns whether the listing was read to its end.
    pub async fn each_page<P: Paged>(
        &self,
        s: &Session<'_>,
        first: Request,
        mut more: impl FnMut() -> bool,
        mut on_page: impl FnMut(P),
    ) -> Result<bool, UpstreamError> {
        let mut pager = Pager::body(first);
        let mut complete = true;
        while let Some(resp) = pager.next_page(s).await? {
            let page: P = resp.json()?;
            pager.note_items(page.ids().iter().map(|id| id.as_ref()))?;
            match page.next_token().filter(|t| !t.is_empty()) {
                None => pager.set_next(NextPage::Done)?,
                Some(_) if !more() => complete = false,
                Some(value) => pager.set_next(NextPage::QueryParam {
                    name: "pageToken".into(),
                    value: value.to_string(),
                })?,
            }
            on_page(page);
            if !complete {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every role of the customer.
    pub async fn roles(&self, s: &Session<'_>) -> Result<Vec<Role>, UpstreamError> {
        let max = ROLES_PAGE.to_string();
        let first = Request::get(
            self.url(
                &["admin", "directory", "v1", "customer", &self.customer, "roles"],
                &[("maxResults", max.as_str())],
            ),
            ROLES,
        );
        let mut all = Vec::new();
        self.each_page(s, first, || true, |p: ItemsPage<Role>| {
            all.extend(p.items.items);
        })
        .await?;
        Ok(all)
    }

    /// Every role assignment of the customer.
    pub async fn role_assignments(
        &self,
        s: &Session<'_>,
    ) -> Result<Vec<RoleAssignment>, UpstreamError> {
        let max = ASSIGNMENTS_PAGE.to_string();
        let first = Request::get(
            self.url(
                &["admin", "directory", "v1", "customer", &self.customer, "roleassignments"],
                &[("maxResults", max.as_str())],
            ),
            ROLE_ASSIGNMENTS,
        );
        let mut all = Vec::new();
        self.each_page(s, first, || true, |p: ItemsPage<RoleAssignment>| {
            all.extend(p.items.items);
        })
        .await?;
        Ok(all)
    }

    /// Every member of a group, nested groups' members included (`includeDerivedMembership`).
    pub async fn group_members(
        &self,
        s: &Session<'_>,
        group: &str,
    ) -> Result<Vec<super::wire::Member>, UpstreamError> {
        let max = MEMBERS_PAGE.to_string();
        let first = Request::get(
            self.url(
                &["admin", "directory", "v1", "groups", group, "members"],
                &[
                    ("includeDerivedMembership", "true"),
                    ("maxResults", max.as_str()),
                ],
            ),
            MEMBERS,
        );
        let mut all = Vec::new();
        self.each_page(s, first, || true, |p: MembersPage| {
            all.extend(p.members.items);
        })
        .await?;
        Ok(all)
    }

    /// The first page of `login_success` events in `[from, to)` (`to` `None` = up to now).
    pub fn logins_request(&self, from: i64, to: Option<i64>) -> Request {
        let max = ACTIVITIES_PAGE.to_string();
        let rfc3339 = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default()
        };
        let start = rfc3339(from);
        let end = to.map(rfc3339);
        let mut q: Vec<(&str, &str)> = vec![
            ("eventName", "login_success"),
            ("startTime", start.as_str()),
        ];
        if let Some(e) = &end {
            q.push(("endTime", e.as_str()));
        }
        if self.customer != super::config::DEFAULT_CUSTOMER {
            q.push(("customerId", self.customer.as_str()));
        }
        q.push(("maxResults", max.as_str()));
        Request::get(
            self.url(
                &["admin", "reports", "v1", "activity", "users", "all", "applications", "login"],
                &q,
            ),
            LOGINS,
        )
    }

    /// One page of the sign-in stream: every login audit event in `[start, end)` (no
    /// `eventName`), the page `page_token` names (`None`: the first).
    pub fn stream_request(
        &self,
        start: crate::model::Timestamp,
        end: crate::model::Timestamp,
        page_token: Option<&str>,
    ) -> Request {
        let max = ACTIVITIES_PAGE.to_string();
        let (start, end) = (crate::model::format_ts(start), crate::model::format_ts(end));
        let mut q: Vec<(&str, &str)> = vec![("startTime", start.as_str()), ("endTime", end.as_str())];
        if self.customer != super::config::DEFAULT_CUSTOMER {
            q.push(("customerId", self.customer.as_str()));
        }
        q.push(("maxResults", max.as_str()));
        if let Some(t) = page_token {
            q.push(("pageToken", t));
        }
        Request::get(
            self.url(
                &["admin", "reports", "v1", "activity", "users", "all", "applications", "login"],
                &q,
            ),
            LOGINS,
        )
    }

    /// Why an endpoint was refused, and what to grant.
    pub fn permission_hint(&self, endpoint: &str) -> String {
        let (scope, what) = match endpoint {
            USERS => (SCOPES[0], "read users"),
            ROLES | ROLE_ASSIGNMENTS => (SCOPES[1], "read admin roles"),
            MEMBERS => (SCOPES[2], "read group members"),
            LOGINS => (SCOPES[3], "read the login audit (Reports)"),
            _ => ("", "read this"),
        };
        format!(
            "the delegation must include {scope} and admin_email ({}) must be an admin allowed to {what}",
            self.admin_email
        )
    }

    fn delegation_steps(&self) -> String {
        format!(
            "in the Admin console (Security → Access and data control → API controls → Manage domain-wide delegation) add client ID {} with exactly these scopes: {}",
            self.client_id.as_deref().unwrap_or("(the key's client_id)"),
            SCOPES.join(",")
        )
    }

    /// A failed read as the poll's error, with what the admin must change.
    pub fn error(&self, e: &UpstreamError) -> SourceError {
        let label = format!("google source {}", self.name);
        let at_token = e.endpoint() == Some(self.token_endpoint.as_str());
        let hint = match (e, at_token) {
            (UpstreamError::Status { detail, .. }, true) => {
                let summary = detail.summary.as_deref().unwrap_or_default();
                Some(match e.provider_code().unwrap_or_default() {
                    "unauthorized_client" => format!(
                        "domain-wide delegation is not granted for this service account, or not for all the scopes: {}",
                        self.delegation_steps()
                    ),
                    "invalid_grant" if summary.contains("Invalid email or User ID") => format!(
                        "admin_email ({}) is not a user of this Workspace account: name an existing admin",
                        self.admin_email
                    ),
                    "invalid_grant" if summary.contains("Signature") => {
                        "the key was refused: it may have been deleted or disabled in Google Cloud; create a new key".into()
                    }
                    "invalid_grant" if summary.contains("iat") || summary.contains("timeframe") => {
                        "the assertion's time was refused: check this machine's clock".into()
                    }
                    "invalid_grant" => format!(
                        "the token endpoint refused the assertion: admin_email ({}) must be an existing, active user; the key must be current; the machine's clock must be right",
                        self.admin_email
                    ),
                    "invalid_scope" => format!(
                        "a scope was refused: {}",
                        self.delegation_steps()
                    ),
                    "invalid_client" | "disabled_client" => {
                        "the service account or its key no longer exists or is disabled: create a new key".into()
                    }
                    _ => "check the service-account key, token_url and the domain-wide delegation (docs/google.md)".into(),
                })
            }
            (UpstreamError::Status { status: 401, .. }, false) => Some(
                "the access token was rejected: check that the key and admin_email belong to this Workspace account".into(),
            ),
            (UpstreamError::Status { status: 403, endpoint, .. }, false)
                if !e.is_rate_limited() =>
            {
                Some(self.permission_hint(endpoint))
            }
            (_, _) if e.is_rate_limited() => Some(
                "Google kept throttling (403 usageLimits / 429) after every retry: other integrations of the same Google Cloud project may share the 2,400 queries a minute; raise the interval or lower max_rate_limit_share".into(),
            ),
            (UpstreamError::BudgetExhausted { .. }, _) => Some(
                "raise max_requests_per_poll: the user listing alone needs one request per 500 users, and the login audit one per 1,000 sign-ins".into(),
            ),
            _ => None,
        };
        let err = SourceError::upstream(&label, e, hint, |m| self.up.redact(m));
        if at_token
            && !e.is_rate_limited()
            && matches!(e, UpstreamError::Status { status: 400..=499, .. })
        {
            // The token endpoint refusing the assertion (400 invalid_grant, 401
            // unauthorized_client) is a credential problem, whatever its status.
            return SourceError::new(ErrorKind::Auth, err.to_string());
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reason: &str) -> Vec<u8> {
        format!(
            r#"{{"error":{{"code":403,"message":"m","errors":[{{"message":"m","domain":"usageLimits","reason":"{reason}"}}]}}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn throttling_403s_are_told_from_refusals() {
        let h = HeaderMap::new();
        for r in THROTTLE_REASONS {
            assert!(is_throttled(403, &h, &body(r), 0.0).is_some(), "{r}");
        }
        assert!(is_throttled(403, &h, &body("forbidden"), 0.0).is_none());
        assert!(is_throttled(403, &h, &body("dailyLimitExceeded"), 0.0).is_none());
        assert!(is_throttled(400, &h, &body("rateLimitExceeded"), 0.0).is_none());
        assert!(is_throttled(403, &h, b"<html>403</html>", 0.0).is_none());
        let v2 = br#"{"error":{"code":403,"message":"Quota exceeded","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"googleapis.com"}]}}"#;
        assert!(is_throttled(403, &h, v2, 0.0).is_some());
    }
}
