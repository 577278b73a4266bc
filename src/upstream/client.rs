//! The upstream client: one per configured source, long-lived. Every request of a poll goes
//! through a [`Session`], which paces, budgets, bounds concurrency, authenticates, retries,
//! caps the body, counts the request into [`RequestStats`] and logs it — in this one place.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;
use url::Url;

use futures_util::future::BoxFuture;

use super::error::{ProviderError, UpstreamError};
use super::pacing::{Budget, Pacer, RateCap, RateLimitHeaders, RequestQuota};
use super::redact::{redact_url, Redactor};
use super::retry::{parse_retry_after, RetryPolicy};
use super::stats::RequestStats;
use super::timer::{Timer, TokioTimer};
use super::token::AccessToken;
use crate::config::{Secret, UpstreamLimits};

/// Everything that shapes a source's upstream traffic.
#[derive(Debug, Clone)]
pub struct UpstreamOptions {
    /// The source's name, for logs.
    pub name: String,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout (headers and body) of one attempt.
    pub request_timeout: Duration,
    /// Largest response body accepted (after decompression).
    pub max_body_bytes: usize,
    pub retry: RetryPolicy,
    /// Share, budget and concurrency (the source's `[[sources]]` keys).
    pub limits: UpstreamLimits,
    /// The provider's rate-limit headers, for pacing and 429 waits; `None` = not paced.
    pub rate_limit_headers: Option<RateLimitHeaders>,
    /// The provider's own rate-limit answers besides HTTP 429 (see [`RateLimitRule`]).
    pub rate_limited: Option<RateLimitRule>,
    /// A quota the provider documents but does not report in headers; requests are spaced so
    /// that at most `max_rate_limit_share` of it starts in any window. `None` = no cap.
    pub quota: Option<RequestQuota>,
    /// Headers sent with every request (e.g. an API version); they replace the default
    /// `Accept: application/json`, and a request's own headers replace them.
    pub default_headers: Vec<(HeaderName, HeaderValue)>,
    pub user_agent: String,
}

/// How a provider says "rate limited" besides HTTP 429 — GitHub answers 403 with
/// `x-ratelimit-remaining: 0`, `retry-after` or a secondary-limit message; Google 403 with a
/// `usageLimits` reason. Called for every error response (429 included, so a rule can name
/// its wait) with the status, headers, raw body and the time now; returns `None` when the
/// response is not a rate limit. Such a response is handled like a 429: counted in
/// `source_rate_limited_total`, retried after the provider's (clamped) wait or a backoff, and
/// once the retries are spent reported as rate limited ([`UpstreamError::is_rate_limited`]),
/// never as a refusal. The body is the unredacted one: a rule must not log it.
pub type RateLimitRule =
    fn(status: u16, headers: &HeaderMap, body: &[u8], now_unix: f64) -> Option<Throttled>;

/// A response a [`RateLimitRule`] recognised as the provider's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The wait the provider asks for, when it says; otherwise the retry backoff applies.
    pub wait: Option<Duration>,
    /// `wait` runs until the provider's rate-limit window resets (a primary limit spent):
    /// when that is beyond the longest wait allowed, no retry before it can succeed, so the
    /// request fails at once (rate limited; the next poll tries again).
    pub until_reset: bool,
}

impl UpstreamOptions {
    /// Defaults for a source: 10 s connect, 60 s per attempt, 32 MiB bodies.
    pub fn new(name: impl Into<String>, limits: UpstreamLimits) -> UpstreamOptions {
        UpstreamOptions {
            name: name.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_body_bytes: 32 << 20,
            retry: RetryPolicy::default(),
            limits,
            rate_limit_headers: None,
            rate_limited: None,
            quota: None,
            default_headers: Vec::new(),
            user_agent: format!("identity-posture-exporter/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Where a client's access tokens come from (the OAuth token cache implements it). The
/// session asks for a token before each authenticated request, and invalidates one that the
/// server rejected with a 401 before asking again once.
pub trait TokenProvider: Send + Sync {
    fn token<'a>(&'a self, s: &'a Session<'_>)
        -> BoxFuture<'a, Result<AccessToken, UpstreamError>>;
    fn invalidate<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, ()>;
}

/// How requests are authenticated.
pub enum Auth {
    None,
    /// A fixed `Authorization` header value (`SSWS …`, `token …`).
    Header(Secret),
    /// An access token from a shared cache (`Bearer …`); a 401 refreshes it once.
    OAuth(Arc<dyn TokenProvider>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Header(_) => "Auth::Header([redacted])",
            Auth::OAuth(_) => "Auth::OAuth",
        })
    }
}

/// One request, rebuilt for each attempt where needed.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    /// A path template such as `/api/v1/users/{id}/factors`: names the request in logs and
    /// errors, and keys the rate-limit bucket for pacing.
    pub endpoint: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body and its content type.
    pub body: Option<(Bytes, &'static str)>,
    /// Whether the client's [`Auth`] is added.
    pub auth: bool,
    /// Whether transient failures (5xx, timeouts, connection errors) are retried.
    pub retry_transient: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers and body may hold credentials: never printed.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Request {
    pub fn get(url: Url, endpoint: impl Into<String>) -> Request {
        Request {
            method: Method::GET,
            url,
            endpoint: endpoint.into(),
            headers: Vec::new(),
            body: None,
            auth: true,
            retry_transient: true,
        }
    }
    /// A form-encoded POST (token endpoints).
    pub fn post_form(url: Url, endpoint: impl Into<String>, form: &[(&str, &str)]) -> Request {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        Request {
            method: Method::POST,
            url,
            endpoint: endpoint.into(),
            headers: Vec::new(),
            body: Some((Bytes::from(body), "application/x-www-form-urlencoded")),
            auth: true,
            retry_transient: false,
        }
    }
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.push((name, value));
        self
    }
    /// Sends the request without the client's credentials (e.g. to a token endpoint).
    pub fn without_auth(mut self) -> Request {
        self.auth = false;
        self
    }
    pub fn retry_transient(mut self, yes: bool) -> Request {
        self.retry_transient = yes;
        self
    }
}

/// A successful (2xx) response with its body read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The URL that was fetched (for resolving relative links).
    pub url: Url,
    pub endpoint: String,
}

impl Response {
    /// Decodes the body; the error names the endpoint and the JSON path that did not fit, or
    /// the content type when the body is not JSON at all (a proxy's or login page's HTML).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, UpstreamError> {
        // The plain decoder first (the path-tracking one takes about 1.4 times as long on a
        // page of 999 Graph users); only a body that does not fit is decoded again, to name
        // where.
        if let Ok(v) = serde_json::from_slice(&self.body) {
            return Ok(v);
        }
        let de = &mut serde_json::Deserializer::from_slice(&self.body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let ct = self
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
                .unwrap_or_default();
            let starts_like_html = self
                .body
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'<');
            let message = if ct.contains("html") || (starts_like_html && !ct.contains("json")) {
                format!(
                    "expected JSON but got an HTML page (content type {:?}, HTTP {}): a proxy, a login page or a wrong base URL?",
                    if ct.is_empty() { "none" } else { ct.as_str() },
                    self.status.as_u16()
                )
            } else if !ct.is_empty() && !ct.contains("json") {
                format!(
                    "expected JSON but the content type is {ct:?}: {}",
                    super::error::sanitize(&e.to_string())
                )
            } else {
                super::error::sanitize(&e.to_string())
            };
            UpstreamError::Decode {
                endpoint: self.endpoint.clone(),
                message,
            }
        })
    }
}

struct Inner {
    opts: UpstreamOptions,
    http: reqwest::Client,
    auth: Auth,
    pacer: Pacer,
    rate_cap: Option<RateCap>,
    concurrency: Semaphore,
    timer: Arc<dyn Timer>,
    redactor: Redactor,
    /// The request budget of the poll in progress, so a second stream of the same poll
    /// (sign-in events) spends from it too ([`Upstream::continue_session`]).
    poll_budget: std::sync::Mutex<Option<PollBudget>>,
}

/// A poll's request budget and the response bytes it has read.
#[derive(Clone)]
struct PollBudget {
    requests: Arc<Budget>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

/// A source's upstream client. Cheap to clone; clones share pacing state and tokens.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.inner.opts.name)
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

/// `https://`, or `http://` to a loopback host only.
pub fn check_url_scheme(u: &Url) -> Result<(), UpstreamError> {
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match u.scheme() {
        "https" if u.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(UpstreamError::Url(format!(
            "refusing {}: only https:// (or http:// to a loopback host) is allowed",
            redact_url(u)
        ))),
    }
}

impl Upstream {
    /// Builds the client (rustls, gzip, timeouts, no redirects) with the real clock.
    pub fn new(opts: UpstreamOptions, auth: Auth) -> Result<Upstream, UpstreamError> {
        Upstream::with_timer(opts, auth, Arc::new(TokioTimer))
    }

    /// As [`Upstream::new`], with an injected clock/sleeper (tests use
    /// [`super::timer::ManualTimer`] so that backoff and pacing take no real time).
    pub fn with_timer(
        opts: UpstreamOptions,
        auth: Auth,
        timer: Arc<dyn Timer>,
    ) -> Result<Upstream, UpstreamError> {
        let concurrency = opts.limits.concurrency.clamp(1, 256);
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .gzip(true)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            // A redirect could carry our credentials elsewhere; providers' APIs do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .user_agent(opts.user_agent.clone())
            .build()
            .map_err(|e| UpstreamError::Url(format!("cannot build the HTTP client: {e}")))?;
        let redactor = Redactor::default();
        if let Auth::Header(s) = &auth {
            redactor.add(s.expose());
            // The bare token too (after "SSWS " / "Bearer ").
            if let Some((_, tok)) = s.expose().split_once(' ') {
                redactor.add(tok);
            }
        }
        Ok(Upstream {
            inner: Arc::new(Inner {
                pacer: Pacer::new(
                    opts.limits.max_rate_limit_share,
                    opts.retry.max_rate_limit_wait,
                ),
                rate_cap: opts
                    .quota
                    .map(|q| RateCap::new(q, opts.limits.max_rate_limit_share)),
                concurrency: Semaphore::new(concurrency),
                http,
                auth,
                timer,
                redactor,
                opts,
                poll_budget: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn options(&self) -> &UpstreamOptions {
        &self.inner.opts
    }
    pub fn timer(&self) -> &Arc<dyn Timer> {
        &self.inner.timer
    }
    /// Scrubs the client's known secrets from `text`.
    pub fn redact(&self, text: &str) -> String {
        self.inner.redactor.apply(text)
    }
    /// Registers another secret to scrub (e.g. a freshly issued access token).
    pub fn add_secret(&self, secret: &str) {
        self.inner.redactor.add(secret);
    }

    /// Starts a poll: a fresh request and byte budget, counting into `stats`.
    pub fn session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        stats.reset_activity();
        let b = PollBudget {
            requests: Arc::new(Budget::new(self.inner.opts.limits.max_requests_per_poll)),
            bytes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        };
        *self
            .inner
            .poll_budget
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(b.clone());
        Session {
            up: self.clone(),
            stats: stats.clone(),
            budget: b.requests,
            bytes: b.bytes,
            _poll: PhantomData,
        }
    }

    /// A second session in the same poll (the sign-in event stream after the account
    /// listing): it spends from the budget of the last [`Upstream::session`] instead of a
    /// fresh one, so `max_requests_per_poll` bounds both streams together; pacing is shared
    /// anyway. Without an earlier session it starts a fresh budget.
    pub fn continue_session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        let budget = self
            .inner
            .poll_budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match budget {
            Some(b) => Session {
                up: self.clone(),
                stats: stats.clone(),
                budget: b.requests,
                bytes: b.bytes,
                _poll: PhantomData,
            },
            None => self.session(stats),
        }
    }
}

/// One poll's view of the upstream: its request budget and the stats it counts into.
///
/// It holds shared handles (the client, the stats, the poll's budgets), so a copy made with
/// [`Session::detach`] can send a request from a task of its own (the pager's prefetch)
/// and still be paced, budgeted and counted with the poll. The lifetime ties a session to
/// the client and stats it was opened on, as sources use it.
#[derive(Clone)]
pub struct Session<'a> {
    up: Upstream,
    stats: RequestStats,
    budget: Arc<Budget>,
    /// Response bytes read this poll (bounded by `max_bytes_per_poll`).
    bytes: Arc<std::sync::atomic::AtomicU64>,
    _poll: PhantomData<&'a ()>,
}

/// Why an attempt failed, and whether another may help.
enum Attempt {
    Done(Response),
    /// Worth another attempt after `wait`; `err` is returned if no attempt is left.
    Retry {
        wait: Duration,
        err: UpstreamError,
        rate_limited: bool,
    },
    Fail(UpstreamError),
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "error",
    }
}

/// A reqwest error as text, without its URL (which may carry a cursor or a signature).
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response body failed"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut msg = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    let mut depth = 0;
    while let Some(s) = src {
        if depth >= 3 {
            break;
        }
        msg.push_str(&format!(": {s}"));
        src = s.source();
        depth += 1;
    }
    super::error::sanitize(&msg)
}

enum BodyError {
    TooLarge,
    Transport(String),
}

async fn read_body(mut resp: reqwest::Response, cap: usize) -> Result<Bytes, BodyError> {
    if let Some(len) = resp.content_length() {
        if len > cap as u64 {
            return Err(BodyError::TooLarge);
        }
    }
    let mut buf = BytesMut::with_capacity(
        resp.content_length()
            .map(|l| l as usize)
            .unwrap_or(16 << 10)
            .min(cap),
    );
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(describe(e)))?
    {
        if buf.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl<'a> Session<'a> {
    pub fn upstream(&self) -> &Upstream {
        &self.up
    }
    pub fn stats(&self) -> &RequestStats {
        &self.stats
    }
    /// The same session (same budget, pacing, stats), owning its handles: for a request sent
    /// from a spawned task (see [`super::paging::Pager`]'s prefetch).
    pub fn detach(&self) -> Session<'static> {
        Session {
            up: self.up.clone(),
            stats: self.stats.clone(),
            budget: self.budget.clone(),
            bytes: self.bytes.clone(),
            _poll: PhantomData,
        }
    }
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    /// Upstream requests this poll made so far.
    pub fn requests_made(&self) -> u32 {
        self.budget.used()
    }
    /// Response bytes this poll read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends `req`, retrying as the policy allows.
    pub async fn send(&self, req: Request) -> Result<Response, UpstreamError> {
        self.send_with(|| Ok(req.clone())).await
    }

    /// Sends the request `make` builds, calling it again for every attempt (so a signed
    /// client assertion is fresh each time).
    pub async fn send_with(
        &self,
        mut make: impl FnMut() -> Result<Request, UpstreamError>,
    ) -> Result<Response, UpstreamError> {
        let inner = &self.up.inner;
        let policy = &inner.opts.retry;
        let mut transient = 0u32;
        let mut rate_limited = 0u32;
        let mut reauthenticated = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let req = make()?;
            check_url_scheme(&req.url)?;
            if inner.opts.rate_limit_headers.is_some() {
                if let Some(wait) = inner
                    .pacer
                    .before_request(&req.endpoint, inner.timer.now_unix())
                {
                    if !wait.is_zero() {
                        let until = inner.timer.now_unix() + wait.as_secs_f64();
                        self.stats.update_activity(|a| {
                            a.waiting_until =
                                Some((until, "the rate-limit window to reset (pacing)"))
                        });
                        tracing::info!(
                            source = %inner.opts.name,
                            endpoint = %req.endpoint,
                            wait_ms = wait.as_millis() as u64,
                            share = inner.pacer.share(),
                            "upstream pacing: this source used its share of the rate limit, waiting for the window to reset"
                        );
                        inner.timer.sleep(wait).await;
                        self.stats.update_activity(|a| a.waiting_until = None);
                    }
                }
            }
            if let Some(cap) = &inner.rate_cap {
                let wait = cap.reserve(inner.timer.now_unix());
                if !wait.is_zero() {
                    let until = inner.timer.now_unix() + wait.as_secs_f64();
                    self.stats.update_activity(|a| {
                        a.waiting_until = Some((until, "the provider's documented quota (pacing)"))
                    });
                    tracing::debug!(
                        source = %inner.opts.name,
                        endpoint = %req.endpoint,
                        wait_ms = wait.as_millis() as u64,
                        per_window = cap.max(),
                        "upstream pacing: spacing requests to stay within the provider's quota"
                    );
                    inner.timer.sleep(wait).await;
                    self.stats.update_activity(|a| a.waiting_until = None);
                }
            }
            self.budget.take()?;
            let token = match (&inner.auth, req.auth) {
                (Auth::OAuth(cache), true) => Some(cache.token(self).await?),
                _ => None,
            };
            let label = format!("{} {}", req.method, req.endpoint);
            self.stats.update_activity(|a| a.requests += 1);
            let in_flight = self.stats.in_flight(label);
            let outcome = self.attempt(&req, token.as_ref(), attempt).await;
            self.stats.answered(in_flight);
            match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(UpstreamError::Status { status: 401, .. })
                    if token.is_some() && !reauthenticated =>
                {
                    // The access token may have been revoked or rotated: fetch a new one once.
                    reauthenticated = true;
                    if let (Auth::OAuth(cache), Some(t)) = (&inner.auth, &token) {
                        cache.invalidate(t).await;
                    }
                    self.stats.update_activity(|a| a.retries += 1);
                    tracing::info!(source = %inner.opts.name, endpoint = %req.endpoint, "upstream: 401 with an access token, fetching a new token");
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry {
                    wait,
                    err,
                    rate_limited: throttled,
                } => {
                    let (n, max) = if throttled {
                        rate_limited += 1;
                        (rate_limited, policy.max_rate_limited_attempts)
                    } else {
                        transient += 1;
                        (transient, policy.max_attempts)
                    };
                    if n >= max || (!throttled && !req.retry_transient) {
                        return Err(err);
                    }
                    tracing::warn!(
                        source = %inner.opts.name,
                        method = %req.method,
                        endpoint = %req.endpoint,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        reason = %err,
                        "upstream: retrying"
                    );
                    let until = inner.timer.now_unix() + wait.as_secs_f64();
                    let why = if throttled {
                        "the provider's rate limit"
                    } else {
                        "a retry after a transient failure"
                    };
                    self.stats.update_activity(|a| {
                        a.retries += 1;
                        a.waiting_until = Some((until, why));
                    });
                    inner.timer.sleep(wait).await;
                    self.stats.update_activity(|a| a.waiting_until = None);
                }
            }
        }
    }

    fn transport(&self, req: &Request, message: String) -> UpstreamError {
        UpstreamError::Transport {
            method: req.method.to_string(),
            endpoint: req.endpoint.clone(),
            message,
        }
    }

    async fn attempt(&self, req: &Request, token: Option<&AccessToken>, n: u32) -> Attempt {
        let inner = &self.up.inner;
        let policy = &inner.opts.retry;
        let Ok(_permit) = inner.concurrency.acquire().await else {
            return Attempt::Fail(UpstreamError::Transport {
                method: req.method.to_string(),
                endpoint: req.endpoint.clone(),
                message: "client shut down".into(),
            });
        };
        // The default Accept, then the source's headers, then the request's: later ones replace.
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        for (k, v) in inner.opts.default_headers.iter().chain(&req.headers) {
            headers.insert(k.clone(), v.clone());
        }
        let mut rb = inner
            .http
            .request(req.method.clone(), req.url.clone())
            .headers(headers);
        let auth_value = match (&inner.auth, req.auth) {
            (Auth::Header(s), true) => HeaderValue::from_str(s.expose()).ok(),
            (Auth::OAuth(_), true) => {
                token.and_then(|t| HeaderValue::from_str(&t.authorization()).ok())
            }
            _ => None,
        };
        if let Some(mut v) = auth_value {
            v.set_sensitive(true);
            rb = rb.header(AUTHORIZATION, v);
        }
        if let Some((body, ct)) = &req.body {
            rb = rb.header(CONTENT_TYPE, *ct).body(body.clone());
        }
        let started = Instant::now();
        let url = redact_url(&req.url);
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.count_request("error");
                let msg = inner.redactor.apply(&describe(e));
                tracing::debug!(
                    source = %inner.opts.name, method = %req.method, endpoint = %req.endpoint,
                    url = %url, attempt = n, elapsed_ms = started.elapsed().as_millis() as u64,
                    error = %msg, "upstream request"
                );
                return Attempt::Retry {
                    wait: policy.backoff(n.saturating_sub(1), &mut rand::rng()),
                    err: self.transport(req, msg),
                    rate_limited: false,
                };
            }
        };
        let status = resp.status();
        self.stats.count_request(status_class(status));
        let now = inner.timer.now_unix();
        let headers = resp.headers().clone();
        let rl = inner.opts.rate_limit_headers.as_ref();
        let body = read_body(resp, inner.opts.max_body_bytes).await;
        tracing::debug!(
            source = %inner.opts.name, method = %req.method, endpoint = %req.endpoint,
            url = %url, attempt = n, status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            bytes = body.as_ref().map(|b| b.len()).unwrap_or(0),
            "upstream request"
        );
        let body = match body {
            Ok(b) => {
                let total = self
                    .bytes
                    .fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed)
                    + b.len() as u64;
                let max = inner.opts.limits.max_bytes_per_poll;
                if total > max {
                    return Attempt::Fail(UpstreamError::BytesExhausted { max });
                }
                b
            }
            Err(BodyError::TooLarge) => {
                return Attempt::Fail(UpstreamError::TooLarge {
                    method: req.method.to_string(),
                    endpoint: req.endpoint.clone(),
                    limit: inner.opts.max_body_bytes,
                })
            }
            Err(BodyError::Transport(m)) => {
                return Attempt::Retry {
                    wait: policy.backoff(n.saturating_sub(1), &mut rand::rng()),
                    err: self.transport(req, inner.redactor.apply(&m)),
                    rate_limited: false,
                }
            }
        };
        // The provider's own rate-limit answer (a 429 is one anyway).
        let rule = match inner.opts.rate_limited {
            Some(rule) if !status.is_success() => rule(status.as_u16(), &headers, &body, now),
            _ => None,
        };
        let throttled = status == StatusCode::TOO_MANY_REQUESTS || rule.is_some();
        // A rate limit's own wait (below) covers it; its headers would make the pacer wait twice.
        if !throttled {
            if let Some(snap) = rl.and_then(|h| h.read(&headers, now)) {
                inner.pacer.observe(&req.endpoint, snap);
            }
        }
        if status.is_success() {
            return Attempt::Done(Response {
                status,
                headers,
                body,
                url: req.url.clone(),
                endpoint: req.endpoint.clone(),
            });
        }
        let detail = inner
            .redactor
            .apply(&String::from_utf8_lossy(&body[..body.len().min(4096)]));
        let mut detail = ProviderError::parse(detail.as_bytes());
        detail.rate_limited = throttled;
        let err = UpstreamError::Status {
            method: req.method.to_string(),
            endpoint: req.endpoint.clone(),
            status: status.as_u16(),
            detail: Box::new(detail),
        };
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        if throttled {
            self.stats.count_rate_limited();
            let hinted = rule
                .and_then(|t| t.wait)
                .or(retry_after)
                .or_else(|| rl.and_then(|h| h.reset_wait(&headers, now)));
            if let (Some(t), Some(d)) = (rule, hinted) {
                if t.until_reset && d > policy.max_rate_limit_wait {
                    tracing::warn!(
                        source = %inner.opts.name,
                        endpoint = %req.endpoint,
                        reset_in_s = d.as_secs(),
                        "upstream: the rate limit is spent until its window resets, later than the longest wait; not retrying before then"
                    );
                    return Attempt::Fail(err);
                }
            }
            let wait = match hinted {
                Some(d) => policy.clamp_wait(d),
                None => policy.clamp_wait(policy.backoff(n.saturating_sub(1), &mut rand::rng())),
            };
            return Attempt::Retry {
                wait,
                err,
                rate_limited: true,
            };
        }
        if status.is_server_error() {
            let backoff = policy.backoff(n.saturating_sub(1), &mut rand::rng());
            let wait = match retry_after {
                Some(d) => backoff.max(policy.clamp_wait(d)),
                None => backoff,
            };
            return Attempt::Retry {
                wait,
                err,
                rate_limited: false,
            };
        }
        Attempt::Fail(err)
    }
}
