//! The GitHub source's requests, on the shared upstream layer: the client (a token, or a GitHub
//! App whose RS256 JWT is exchanged for installation tokens through the shared token cache),
//! URLs joined below the API base path (GHES `…/api/v3`), the version headers, GitHub's
//! rate-limit rule (403/429 with `retry-after` or `x-ratelimit-remaining: 0`), Link paging.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::Method;
use serde::de::DeserializeOwned;
use url::Url;

use super::config::{GithubAuth, GithubConfig};
use super::wire::InstallationToken;
use crate::config::{Secret, SourceConfig};
use crate::model::parse_ts;
use crate::sources::{Deps, SourceError};
use crate::upstream::{
    next_link, paging::parse_link_headers, AccessToken, Auth, Claims, JwtSigner, NextPage, Pager,
    RateLimitHeaders, Request, RequestStats, Response, Session,
    Throttled, TokenCache, TokenSource, Upstream, UpstreamError, UpstreamOptions,
};

// Endpoint labels: log and error names, and the pacing buckets.
pub const ORG: &str = "/orgs/{org}";
pub const MEMBERS: &str = "/orgs/{org}/members";
pub const OUTSIDE_COLLABORATORS: &str = "/orgs/{org}/outside_collaborators";
pub const INVITATIONS: &str = "/orgs/{org}/invitations";
pub const CREDENTIAL_AUTHORIZATIONS: &str = "/orgs/{org}/credential-authorizations";
pub const PERSONAL_ACCESS_TOKENS: &str = "/orgs/{org}/personal-access-tokens";
pub const AUDIT_LOG: &str = "/orgs/{org}/audit-log";
pub const ACCESS_TOKENS: &str = "/app/installations/{installation_id}/access_tokens";

/// `Accept` GitHub documents for its REST API.
pub const MEDIA_TYPE: &str = "application/vnd.github+json";
/// The REST API version the wire shapes are read from.
pub const API_VERSION: &str = "2022-11-28";

/// Items per page: the documented maximum of every listing read here.
pub const PER_PAGE: &str = "100";

/// The GitHub App JWT: `iat` 60 s in the past against clock drift, `exp` at most ten
/// minutes ahead (GitHub refuses more); nine leave room for a clock running fast.
pub const APP_JWT_BACKDATE: Duration = Duration::from_secs(60);
pub const APP_JWT_LIFETIME: Duration = Duration::from_secs(9 * 60);

/// Wait after a secondary rate limit that names no time: GitHub asks for at least a minute.
pub const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// What a permission error on each endpoint means, for the error message.
pub fn permission_hint(endpoint: &str) -> &'static str {
    match endpoint {
        ORG | MEMBERS | OUTSIDE_COLLABORATORS => "the token needs read:org (fine-grained or App: organisation Members read) and must belong to the organisation",
        INVITATIONS => "pending invitations are listed to organisation owners only (read:org of an owner, or App: organisation Members read)",
        CREDENTIAL_AUTHORIZATIONS => "SAML SSO credential authorisations are listed to organisation owners only (read:org of an owner, or App: organisation Administration read)",
        PERSONAL_ACCESS_TOKENS => "fine-grained tokens are listed to GitHub Apps only, with the organisation permission Personal access tokens (read)",
        AUDIT_LOG => "the audit log is read by organisation owners only (read:audit_log, or App: organisation Administration read) on GitHub Enterprise Cloud or Server",
        ACCESS_TOKENS => "check app_id, installation_id and that private_key is the App's current key",
        _ => "check the token's permissions",
    }
}

/// GitHub's rate-limit answers besides 429 (rate-limit docs and `github/docs` "Troubleshooting
/// the REST API"): a 403 or 429 with `retry-after` waits that long; with
/// `x-ratelimit-remaining: 0` (the primary limit) until `x-ratelimit-reset`; a secondary-limit
/// message without either waits a minute. Any other 403 is a refusal.
pub fn rate_limit_rule(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: f64,
) -> Option<Throttled> {
    rate_limit_wait(status, headers, body, now_unix).map(|(d, until_reset)| Throttled {
        wait: Some(d),
        until_reset,
    })
}

/// The wait a GitHub rate-limit answer asks for (see [`rate_limit_rule`]), and whether it
/// runs until the primary limit's window resets; `None`: not one.
fn rate_limit_wait(
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: f64,
) -> Option<(Duration, bool)> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(d) = headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::upstream::retry::parse_retry_after(v, now_unix))
    {
        return Some((d, false));
    }
    let remaining = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if remaining == Some("0") {
        return Some(
            match RateLimitHeaders::GITHUB.reset_wait(headers, now_unix) {
                Some(d) => (d, true),
                None => (SECONDARY_LIMIT_WAIT, false),
            },
        );
    }
    // go-github: a secondary limit's documentation_url ends in #secondary-rate-limits (or
    // the older #abuse-rate-limits); its message says "secondary rate limit".
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
    if text.contains("secondary rate limit")
        || text.contains("secondary-rate-limits")
        || text.contains("abuse-rate-limits")
        || status == 429
    {
        return Some((SECONDARY_LIMIT_WAIT, false));
    }
    None
}

/// The installation-token exchange: `POST {api_url}/app/installations/{id}/access_tokens`
/// with `Authorization: Bearer <JWT>` (RS256, `iss` = the App id) → `201 {token, expires_at}`.
struct InstallationTokens {
    url: Url,
    signer: JwtSigner,
    claims: Claims,
}

impl InstallationTokens {
    fn request(&self, now_unix: f64) -> Result<Request, UpstreamError> {
        let jwt = self.signer.sign(&self.claims, now_unix)?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {jwt}"))
            .map_err(|_| UpstreamError::Token("the App JWT is not a valid header".into()))?;
        auth.set_sensitive(true);
        Ok(Request {
            method: Method::POST,
            url: self.url.clone(),
            endpoint: ACCESS_TOKENS.into(),
            headers: vec![(AUTHORIZATION, auth)],
            body: None,
            // The JWT is the credential here; a fresh one is signed for every attempt, so a
            // retry is safe.
            auth: false,
            retry_transient: true,
        })
    }
}

impl TokenSource for InstallationTokens {
    fn fetch<'a>(
        &'a self,
        s: &'a Session<'_>,
    ) -> BoxFuture<'a, Result<AccessToken, UpstreamError>> {
        Box::pin(async move {
            let timer = s.upstream().timer().clone();
            let resp = s.send_with(|| self.request(timer.now_unix())).await?;
            let t: InstallationToken = resp.json()?;
            if t.token.is_empty() {
                return Err(UpstreamError::Token(format!("{ACCESS_TOKENS}: empty token")));
            }
            let now = timer.now_unix();
            // One hour, as documented; a missing or odd expiry is read as five minutes, so the
            // token is renewed early rather than used stale.
            let expires = t
                .expires_at
                .as_deref()
                .and_then(|e| parse_ts(e).ok())
                .map(|e| e.unix_timestamp() as f64)
                .filter(|e| *e > now + 60.0)
                .unwrap_or(now + 300.0)
                .min(now + 86_400.0);
            Ok(AccessToken {
                value: Secret::new(t.token),
                token_type: "Bearer".into(),
                issued_at_unix: now,
                expires_at_unix: expires,
                scope: None,
            })
        })
    }
}

/// One organisation's client. Long-lived: pacing state and the installation token persist
/// between polls.
pub struct GithubClient {
    name: String,
    org: String,
    base: Url,
    app: bool,
    /// Pages of one listing fetched at once.
    concurrency: usize,
    up: Upstream,
    tokens: Option<Arc<TokenCache>>,
}

impl GithubClient {
    pub fn new(
        cfg: &SourceConfig,
        gh: &GithubConfig,
        deps: &Deps,
    ) -> Result<GithubClient, SourceError> {
        let err = |m: String| SourceError::config(format!("github source {}: {m}", cfg.name));
        let base = Url::parse(&format!("{}/", gh.api_url.trim_end_matches('/')))
            .map_err(|e| err(format!("invalid api_url: {e}")))?;
        crate::upstream::check_url_scheme(&base).map_err(|e| err(e.to_string()))?;
        let mut opts = UpstreamOptions::new(&cfg.name, cfg.limits.clone());
        opts.rate_limit_headers = Some(RateLimitHeaders::GITHUB);
        opts.rate_limited = Some(rate_limit_rule);
        opts.request_timeout = opts.request_timeout.min(cfg.timeout);
        opts.default_headers = vec![
            (ACCEPT, HeaderValue::from_static(MEDIA_TYPE)),
            (
                HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static(API_VERSION),
            ),
        ];
        let mut tokens = None;
        let auth = match &gh.auth {
            GithubAuth::Token(t) => Auth::Header(Secret::new(format!("Bearer {}", t.expose()))),
            GithubAuth::App {
                app_id,
                installation_id,
                private_key,
            } => {
                // Tried here, so a key that cannot sign is reported at start-up.
                let signer = JwtSigner::from_key(private_key, None)
                    .map_err(|e| err(format!("private_key: {e}")))?;
                if signer.algorithm() != jsonwebtoken::Algorithm::RS256 {
                    return Err(err(
                        "private_key: a GitHub App key is an RSA key (RS256); this one is not"
                            .into(),
                    ));
                }
                let mut url = base.clone();
                url.path_segments_mut()
                    .map_err(|_| err("api_url cannot be a base".into()))?
                    .pop_if_empty()
                    .extend(["app", "installations", &installation_id.to_string(), "access_tokens"]);
                let claims = Claims::new(app_id.clone())
                    .backdate(APP_JWT_BACKDATE)
                    .lifetime(APP_JWT_LIFETIME)
                    .without_jti();
                let cache = Arc::new(TokenCache::new(Box::new(InstallationTokens {
                    url,
                    signer,
                    claims,
                })));
                tokens = Some(cache.clone());
                Auth::OAuth(cache)
            }
        };
        let up = Upstream::with_timer(opts, auth, deps.timer.clone())
            .map_err(|e| err(e.to_string()))?;
        Ok(GithubClient {
            name: cfg.name.clone(),
            org: gh.org.clone(),
            base,
            app: gh.auth.is_app(),
            concurrency: cfg.limits.concurrency.max(1),
            up,
            tokens,
        })
    }

    /// One poll's session: a fresh request budget, counting into `stats`.
    pub fn session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.session(stats)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    /// Authenticated as a GitHub App (which alone may list fine-grained tokens).
    pub fn is_app(&self) -> bool {
        self.app
    }

    /// Installation-token fetches so far (tests, benchmark); 0 with a plain token.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.as_ref().map_or(0, |t| t.fetch_count())
    }

    /// `{api_url}/orgs/{org}/<tail…>?query`, joined below the base path (GHES `/api/v3`), the
    /// organisation percent-encoded as one segment.
    pub fn org_url(&self, tail: &[&str], query: &[(&str, &str)]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut seg) = u.path_segments_mut() {
            seg.pop_if_empty().push("orgs").push(&self.org).extend(tail);
        }
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u
    }

    /// A failed read as the poll's error, with what the admin must change.
    pub fn error(&self, e: &UpstreamError) -> SourceError {
        let label = format!(
            "github source {} (organisation {} at {})",
            self.name,
            self.org,
            self.base.as_str().trim_end_matches('/')
        );
        let hint = match e {
            UpstreamError::Status {
                status: 401,
                endpoint,
                ..
            } if endpoint != ACCESS_TOKENS => Some(
                "the token was rejected (Bad credentials: expired, revoked, or for another GitHub host)"
                    .to_string(),
            ),
            UpstreamError::Status {
                status: 404,
                endpoint,
                ..
            } if endpoint == ORG || endpoint == MEMBERS => Some(format!(
                "no organisation {:?} is visible to this token at this api_url (GitHub answers 404 when the token cannot see it)",
                self.org
            )),
            UpstreamError::Status {
                status: 404,
                endpoint,
                ..
            } if endpoint == ACCESS_TOKENS => Some(
                "no such installation of this App: check installation_id (the number in the installation's settings URL) and app_id".into(),
            ),
            UpstreamError::Status {
                status: 401 | 403,
                endpoint,
                ..
            } => Some(permission_hint(endpoint).to_string()),
            UpstreamError::BudgetExhausted { .. } => Some(
                "raise max_requests_per_poll: listing members alone needs one request per 100 members"
                    .to_string(),
            ),
            _ => None,
        };
        SourceError::upstream(&label, e, hint, |m| self.up.redact(m))
    }

    /// `GET` one JSON document.
    pub async fn get<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        url: Url,
        endpoint: &str,
    ) -> Result<T, UpstreamError> {
        s.send(Request::get(url, endpoint)).await?.json()
    }

    /// Every item of a listing (see [`GithubClient::for_each_page`]).
    pub async fn list<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        url: Url,
        endpoint: &str,
        key: impl Fn(&T) -> Option<&str>,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut out = Vec::new();
        self.for_each_page(s, url, endpoint, key, |items| {
            out.extend(items);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Hands every page of a `page`-numbered listing to `f`, in order, each page's items
    /// noted for loop detection by `key` (items that do not decode are skipped and logged).
    /// GitHub's first page names the last one (`Link: rel="last"`), so pages 2..=last are
    /// fetched `concurrency` at a time rather than one after another; a last page that still
    /// links a `next` (the listing grew meanwhile) is followed on, as is a listing without a
    /// `last` link. Memory holds `concurrency` pages, never the listing.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        url: Url,
        endpoint: &str,
        key: impl Fn(&T) -> Option<&str>,
        mut f: impl FnMut(Vec<T>) -> Result<(), UpstreamError>,
    ) -> Result<(), UpstreamError> {
        // A first page naming the last one is followed by page number (below), so its `next`
        // is not requested ahead; after the numbered pages, and in listings without a
        // `last` link, each next page is requested while the caller takes the one before.
        let mut pager = Pager::link(Request::get(url.clone(), endpoint)).hold_when(names_last);
        let Some(first) = pager.next_page(s).await? else {
            return Ok(());
        };
        let last = last_page(&first, &url);
        let items = self.page::<T>(&first)?;
        pager.note_items(items.iter().filter_map(&key))?;
        f(items)?;
        if let Some(last) = last.filter(|l| *l >= 2) {
            if last > MAX_PAGES {
                return Err(UpstreamError::TooManyPages {
                    endpoint: endpoint.to_string(),
                    max: MAX_PAGES,
                });
            }
            let mut pages = stream::iter(2..=last)
                .map(|p| s.send(Request::get(with_page(&url, p), endpoint)))
                .buffered(self.concurrency);
            let mut last_seen = None;
            while let Some(r) = pages.next().await {
                let r = r?;
                let items = self.page::<T>(&r)?;
                pager.note_items(items.iter().filter_map(&key))?;
                f(items)?;
                last_seen = Some(r);
            }
            drop(pages);
            let next = last_seen
                .as_ref()
                .and_then(|r| next_link(&r.headers, &r.url))
                .map(|u| NextPage::Url(u.to_string()))
                .unwrap_or(NextPage::Done);
            pager.set_next(next)?;
        }
        while let Some(r) = pager.next_page(s).await? {
            let items = self.page::<T>(&r)?;
            pager.note_items(items.iter().filter_map(&key))?;
            f(items)?;
        }
        Ok(())
    }

    /// One page's items (see [`super::wire::items`]). The page is decoded straight into
    /// `T` (the wire types are lenient, so only an item that is not an object fails that);
    /// only then is it read item by item.
    pub fn page<T: DeserializeOwned>(&self, r: &Response) -> Result<Vec<T>, UpstreamError> {
        if let Ok(items) = serde_json::from_slice::<Vec<T>>(&r.body) {
            return Ok(items);
        }
        let (items, bad) = super::wire::items(r.json::<Vec<serde_json::Value>>()?);
        if bad > 0 {
            tracing::warn!(source = %self.name, endpoint = %r.endpoint, skipped = bad, "github: items that are not the documented shape were skipped");
        }
        Ok(items)
    }
}

/// Most pages of one listing (10,000 pages of 100: a million items).
pub const MAX_PAGES: u32 = 10_000;

/// Whether a page's `Link` header has a `rel="last"` (the listing is numbered).
fn names_last(r: &Response) -> bool {
    parse_link_headers(&r.headers)
        .iter()
        .any(|(_, rels)| rels.iter().any(|r| r == "last"))
}

/// The page number of `rel="last"`, when it is the same listing as `first` (same origin and
/// path): GitHub's page-numbered listings name it on every page but the last.
fn last_page(r: &Response, first: &Url) -> Option<u32> {
    let (target, _) = parse_link_headers(&r.headers)
        .into_iter()
        .find(|(_, rels)| rels.iter().any(|r| r == "last"))?;
    let last = r.url.join(&target).ok()?;
    if last.origin() != first.origin() || last.path() != first.path() {
        return None;
    }
    last.query_pairs()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse::<u32>().ok())
}

/// `url` asking for page `page`.
fn with_page(url: &Url, page: u32) -> Url {
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("page", &page.to_string());
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    const NOW: f64 = 1_800_000_000.0;

    #[test]
    fn pages_by_number() {
        let first = Url::parse("https://ghe.example.com/api/v3/orgs/acme/members?per_page=100").unwrap();
        assert_eq!(
            with_page(&first, 3).as_str(),
            "https://ghe.example.com/api/v3/orgs/acme/members?per_page=100&page=3"
        );
        let resp = |link: &str| Response {
            status: reqwest::StatusCode::OK,
            headers: h(&[("link", link)]),
            body: bytes::Bytes::new(),
            url: first.clone(),
            endpoint: MEMBERS.into(),
        };
        let r = resp(r#"<https://ghe.example.com/api/v3/orgs/acme/members?per_page=100&page=2>; rel="next", <https://ghe.example.com/api/v3/orgs/acme/members?per_page=100&page=200>; rel="last""#);
        assert_eq!(last_page(&r, &first), Some(200));
        // Another host or path is not this listing's last page.
        let r = resp(r#"<https://evil.example/api/v3/orgs/acme/members?page=9>; rel="last""#);
        assert_eq!(last_page(&r, &first), None);
        let r = resp(r#"<https://ghe.example.com/api/v3/orgs/other/members?page=9>; rel="last""#);
        assert_eq!(last_page(&r, &first), None);
        let r = resp(r#"<https://ghe.example.com/api/v3/orgs/acme/members?page=x>; rel="last""#);
        assert_eq!(last_page(&r, &first), None);
    }

    #[test]
    fn github_rate_limit_answers() {
        // Secondary limit with retry-after: that long.
        let secondary = br#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}"#;
        assert_eq!(
            rate_limit_wait(403, &h(&[("retry-after", "42")]), secondary, NOW),
            Some((Duration::from_secs(42), false))
        );
        // Primary limit: remaining 0, wait for the reset.
        let primary = br#"{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#;
        let reset = (NOW as u64 + 120).to_string();
        assert_eq!(
            rate_limit_wait(
                403,
                &h(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)]),
                primary,
                NOW
            ),
            Some((Duration::from_secs(120), true)),
            "until the window resets"
        );
        assert_eq!(
            rate_limit_wait(429, &h(&[("x-ratelimit-remaining", "0")]), b"", NOW),
            Some((SECONDARY_LIMIT_WAIT, false)),
            "no reset header: a minute"
        );
        // Secondary limit named only by its message: a minute.
        assert_eq!(
            rate_limit_wait(403, &h(&[("x-ratelimit-remaining", "4000")]), secondary, NOW),
            Some((SECONDARY_LIMIT_WAIT, false))
        );
        // A refusal is not a rate limit, whatever its headers say about the budget.
        let refusal = br#"{"message":"Must have admin rights to Repository.","documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(
            rate_limit_wait(403, &h(&[("x-ratelimit-remaining", "4999")]), refusal, NOW),
            None
        );
        assert_eq!(rate_limit_wait(422, &h(&[("retry-after", "5")]), b"", NOW), None);
        assert_eq!(rate_limit_wait(404, &h(&[("x-ratelimit-remaining", "0")]), b"", NOW), None);
    }
}
