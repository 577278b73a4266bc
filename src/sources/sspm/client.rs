//! The SSPM source's seam to the shared upstream layer (`crate::upstream`): the SASE access
//! token (client credentials, HTTP Basic, `scope=tsg_id:<tsg>`) in a [`TokenCache`], `GET`s
//! through a per-poll [`Session`], and `limit`/`page` paging that is safe whichever number
//! the first page has. Read-only: this client has no way to send anything but `GET` to the API.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use super::config::SspmConfig;
use super::wire::Page;
use crate::config::UpstreamLimits;
use crate::upstream::{
    Auth, ClientAuth, ClientCredentials, Request, RequestStats, Session, Timer, TokenCache,
    Upstream, UpstreamError, UpstreamOptions,
};

/// The token endpoint below `auth_url` (pan.dev `AuthService.yaml`:
/// `POST /auth/v1/oauth2/access_token`, Basic auth, form `grant_type=client_credentials`,
/// `scope=tsg_id:<TSG_ID>`; 200 `{access_token, token_type, expires_in, scope}`; 401 invalid
/// client). Tokens live 15 minutes.
pub const TOKEN_PATH: &str = "/auth/v1/oauth2/access_token";

/// The Identity API's prefix below `api_url`.
pub const API_PREFIX: &str = "/sspm/identity/v1";

/// `limit` asked for first. The spec gives no maximum; a server that caps it silently is fine
/// (paging follows what comes back), one that answers 400 gets [`FALLBACK_LIMIT`].
pub const PAGE_LIMIT: u32 = 1000;
pub const FALLBACK_LIMIT: u32 = 100;

/// Hard stop for one listing (also bounded by `max_requests_per_poll`).
pub const MAX_PAGES: u32 = 20_000;

/// Renew tokens this long before they expire (at most half their lifetime early), so a
/// 15-minute token is fetched once per poll interval of 15 minutes.
const REFRESH_BEFORE: Duration = Duration::from_secs(60);

/// A long-lived client of one SSPM tenant.
pub struct SspmClient {
    up: Upstream,
    tokens: Arc<TokenCache>,
    api_url: String,
}

/// What one paged listing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Walk {
    pub pages: u32,
    /// Items the consumer accepted (new ones, after its own de-duplication).
    pub accepted: u64,
    pub total: Option<u64>,
    /// The first page was page 1 (the server refused or ignored page 0).
    pub one_based: bool,
    /// Items that were not JSON objects.
    pub malformed_items: u64,
    /// Stopped on a page that only repeated the previous one (a server ignoring `page`).
    pub stopped_on_repeat: bool,
}

impl SspmClient {
    /// The client for one tenant; `timer` is the clock and sleeper (tests inject a virtual
    /// one, so no test really waits).
    pub fn new(
        cfg: &SspmConfig,
        name: &str,
        timeout: Duration,
        limits: UpstreamLimits,
        timer: Arc<dyn Timer>,
    ) -> Result<SspmClient, String> {
        let token_url = Url::parse(&format!(
            "{}{TOKEN_PATH}",
            cfg.auth_url.trim_end_matches('/')
        ))
        .map_err(|e| format!("invalid auth_url: {e}"))?;
        let mut cc = ClientCredentials::new(
            token_url,
            cfg.client_id.clone(),
            ClientAuth::SecretBasic(cfg.client_secret.clone()),
        );
        cc.scope = Some(format!("tsg_id:{}", cfg.tsg_id));
        let tokens = Arc::new(TokenCache::new(Box::new(cc)).with_refresh_before(REFRESH_BEFORE));
        let mut opts = UpstreamOptions::new(name, limits);
        // The SASE API documents no rate-limit headers: 429 + Retry-After (or backoff) only.
        opts.rate_limit_headers = None;
        opts.request_timeout = timeout.min(Duration::from_secs(120));
        let up = Upstream::with_timer(opts, Auth::OAuth(tokens.clone()), timer)
            .map_err(|e| e.to_string())?;
        up.add_secret(cfg.client_secret.expose());
        Ok(SspmClient {
            up,
            tokens,
            api_url: cfg.api_url.trim_end_matches('/').to_string(),
        })
    }

    /// Token fetches so far.
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    pub fn session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.session(stats)
    }

    /// Scrubs the client's known secrets from `text`.
    pub fn redact(&self, text: &str) -> String {
        self.up.redact(text)
    }

    /// `{api_url}/sspm/identity/v1/<segments…>?<query>`; ids are percent-encoded as path
    /// segments.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, UpstreamError> {
        let mut u = Url::parse(&format!("{}{API_PREFIX}", self.api_url))
            .map_err(|e| UpstreamError::Url(format!("{API_PREFIX}: invalid URL: {e}")))?;
        u.path_segments_mut()
            .map_err(|_| UpstreamError::Url(format!("{API_PREFIX}: api_url cannot be a base")))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            u.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(u)
    }

    /// `GET {api}/sspm/identity/v1/<segments…>` as JSON. `endpoint` is the path template
    /// (below the prefix) that names the request in logs and errors (ids never appear there).
    pub async fn get<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        segments: &[&str],
        query: &[(&str, String)],
        endpoint: &str,
    ) -> Result<T, UpstreamError> {
        let resp = s
            .send(Request::get(
                self.url(segments, query)?,
                format!("{API_PREFIX}{endpoint}"),
            ))
            .await?;
        resp.json()
    }

    /// Pages through a `limit`/`page` listing, handing each page's items (decoded as `T`;
    /// non-objects skipped and counted) to `accept`, which returns how many of them were new.
    ///
    /// The spec does not say whether `page` counts from 0 or 1, so:
    /// - page 0 is asked first; a 400, or an empty page 0 while `total` > 0, means 1-based;
    /// - if page 1 repeats page 0 exactly, the server read 0 as 1: that page is skipped once;
    /// - any later page that only repeats the previous one ends the listing (a server that
    ///   ignores `page`), as do an empty page and reaching `total` new items; a repeat while
    ///   fewer than `total` items were read fails as a data loop (never a silently short
    ///   listing);
    /// - the consumer de-duplicates by id, so no numbering double-counts.
    pub async fn walk<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        segments: &[&str],
        endpoint: &str,
        id_of: impl Fn(&T) -> Option<String>,
        mut accept: impl FnMut(Vec<T>) -> u64,
    ) -> Result<Walk, UpstreamError> {
        let mut w = Walk::default();
        // (limit, first page) tried in order while the server answers 400 to the first page.
        const OPENINGS: [(u32, u32); 4] = [
            (PAGE_LIMIT, 0),
            (PAGE_LIMIT, 1),
            (FALLBACK_LIMIT, 0),
            (FALLBACK_LIMIT, 1),
        ];
        let mut opening = 0;
        let (mut limit, mut page) = OPENINGS[0];
        let mut negotiating = true;
        let mut prev_ids: HashSet<String> = HashSet::new();
        let mut first_page_no: Option<u32> = None;
        loop {
            if w.pages >= MAX_PAGES {
                return Err(UpstreamError::TooManyPages {
                    endpoint: format!("{API_PREFIX}{endpoint}"),
                    max: MAX_PAGES,
                });
            }
            let q = [("limit", limit.to_string()), ("page", page.to_string())];
            let body: Page = match self.get(s, segments, &q, endpoint).await {
                Ok(p) => p,
                Err(e)
                    if negotiating && e.status() == Some(400) && opening + 1 < OPENINGS.len() =>
                {
                    opening += 1;
                    (limit, page) = OPENINGS[opening];
                    tracing::info!(
                        endpoint,
                        limit,
                        page,
                        "sspm: first page refused (400), trying another limit/page opening"
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            if negotiating {
                w.one_based = page == 1;
            }
            negotiating = false;
            w.pages += 1;
            if body.total.is_some() {
                w.total = body.total;
            }
            let raw = body.items.unwrap_or_default();
            if raw.is_empty() {
                if page == 0 && w.accepted == 0 && w.total.is_some_and(|t| t > 0) {
                    // Page 0 does not exist on a 1-based server that answers it empty.
                    page = 1;
                    w.one_based = true;
                    continue;
                }
                break;
            }
            let mut items = Vec::with_capacity(raw.len());
            for v in raw {
                if !v.is_object() {
                    w.malformed_items += 1;
                    continue;
                }
                match serde_json::from_value::<T>(v) {
                    Ok(t) => items.push(t),
                    Err(_) => w.malformed_items += 1,
                }
            }
            let ids: HashSet<String> = items.iter().filter_map(&id_of).collect();
            let first = *first_page_no.get_or_insert(page);
            let repeat = !ids.is_empty() && ids.iter().all(|i| prev_ids.contains(i));
            if repeat {
                if first == 0 && page == 1 && w.pages == 2 {
                    // 1-based server that read page 0 as page 1: skip the repeat once.
                    w.one_based = true;
                    page += 1;
                    continue;
                }
                if w.total.is_some_and(|t| w.accepted < t) {
                    // Short of the announced total: a server ignoring `page` would otherwise
                    // hand over a silently incomplete listing.
                    return Err(UpstreamError::DataLoop {
                        endpoint: format!("{API_PREFIX}{endpoint}"),
                        page,
                    });
                }
                tracing::warn!(
                    endpoint,
                    page,
                    "sspm: page repeats the previous one; ending the listing"
                );
                w.stopped_on_repeat = true;
                break;
            }
            w.accepted += accept(items);
            prev_ids = ids;
            if w.total.is_some_and(|t| w.accepted >= t) {
                break;
            }
            page += 1;
        }
        if let Some(t) = w.total {
            if w.accepted < t {
                tracing::warn!(
                    endpoint,
                    total = t,
                    read = w.accepted,
                    "sspm: listing ended before its total (records changed while paging?)"
                );
            }
        }
        Ok(w)
    }
}
