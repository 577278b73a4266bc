//! Who may call what. `/api/v1` names vulnerable people, so it needs a bearer token
//! (`server.api_token_file`), the web config's basic auth, or a loopback-only listener;
//! `server.web_config_file` (exporter-toolkit format) adds bcrypt basic auth in front of
//! everything (and TLS, in [`super::tls`]).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::conn::HttpStats;

use crate::config::Secret;

/// How `/api/v1` is protected.
#[derive(Debug, Clone)]
pub enum ApiAccess {
    /// `Authorization: Bearer <token>` required.
    Token(Secret),
    /// Bound to loopback only: local callers are trusted.
    Loopback,
    /// Neither: the API is refused (403) so findings never leak by accident, unless the web
    /// config's basic auth admits the request.
    Refused,
}

impl ApiAccess {
    pub fn new(token: Option<Secret>, listen: SocketAddr) -> ApiAccess {
        match token {
            Some(t) => ApiAccess::Token(t),
            None if listen.ip().is_loopback() => ApiAccess::Loopback,
            None => ApiAccess::Refused,
        }
    }
}

pub use super::webconfig::{HttpServerConfig, WebConfig};

/// How long a verified (user, password) pair is remembered after its last use. Prometheus
/// scrapes with the same credentials every few seconds to minutes, so a scraper stays cached.
pub const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// At most this many verified pairs are remembered (the least recently used goes first).
pub const VERIFIED_MAX: usize = 256;

/// Outcome of a basic-auth check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicOutcome {
    Allowed,
    Denied,
    /// Every password-check slot is busy: answer 503 at once rather than queue CPU work.
    Busy,
}

/// Basic-auth users (bcrypt hashes). bcrypt is deliberately slow (cost 10 ≈ 50 ms, cost 13
/// ≈ 0.5 s of CPU), so a check runs on the blocking pool, at most [`BasicAuth::slots`] at a
/// time, and a successful one is remembered under a keyed hash of the credentials (never
/// the password itself) for [`VERIFIED_TTL`] after its last use.
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// HMAC-SHA256 key for the cache keys, random per process.
    key: ring::hmac::Key,
    /// Cache key → last use.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    slots: Arc<Semaphore>,
    /// A hash to check unknown users against, so timing does not reveal which users exist.
    decoy: Arc<OnceLock<String>>,
}

impl Default for BasicAuth {
    fn default() -> BasicAuth {
        BasicAuth::new(BTreeMap::new())
    }
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let slots = std::thread::available_parallelism()
            .map(|n| n.get() / 2)
            .unwrap_or(1)
            .max(1);
        BasicAuth::with_slots(users, slots)
    }

    /// `slots`: concurrent bcrypt checks at most (the default is half the CPUs, at least 1,
    /// so password guessing can never take every core from the scrapes).
    pub fn with_slots(users: BTreeMap<String, String>, slots: usize) -> BasicAuth {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &nonce_fallback()));
        BasicAuth {
            users,
            key,
            verified: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(slots.max(1))),
            decoy: Arc::new(OnceLock::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    fn cache_key(&self, user: &str, pass: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_le_bytes());
        ctx.update(user.as_bytes());
        ctx.update(pass.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Checks the request's basic-auth credentials.
    pub async fn check(&self, headers: &HeaderMap) -> BasicOutcome {
        let Some((user, pass)) = basic_credentials(headers) else {
            return BasicOutcome::Denied;
        };
        let key = self.cache_key(&user, &pass);
        let now = Instant::now();
        {
            let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            match v.get_mut(&key) {
                Some(last) if now.duration_since(*last) < VERIFIED_TTL => {
                    *last = now;
                    return BasicOutcome::Allowed;
                }
                Some(_) => {
                    v.remove(&key);
                }
                None => {}
            }
        }
        // The slot is held by the blocking task itself, so a client that hangs up cannot
        // free it while its bcrypt still runs.
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return BasicOutcome::Busy;
        };
        let known = self.users.get(&user).cloned();
        let cost = self.max_cost();
        let decoy = self.decoy.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match known {
                Some(hash) => bcrypt::verify(&pass, &hash).unwrap_or(false),
                None => {
                    let d = decoy.get_or_init(|| {
                        bcrypt::hash("identity-posture-exporter decoy", cost).unwrap_or_default()
                    });
                    let _ = bcrypt::verify(&pass, d);
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        if !ok {
            return BasicOutcome::Denied;
        }
        let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() >= VERIFIED_MAX {
            v.retain(|_, last| now.duration_since(*last) < VERIFIED_TTL);
        }
        if v.len() >= VERIFIED_MAX {
            if let Some(oldest) = v.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                v.remove(&oldest);
            }
        }
        v.insert(key, now);
        BasicOutcome::Allowed
    }

    /// The highest bcrypt cost among the configured hashes (for the decoy).
    fn max_cost(&self) -> u32 {
        self.users
            .values()
            .filter_map(|h| h.get(4..6)?.parse::<u32>().ok())
            .max()
            .unwrap_or(10)
            .clamp(4, 31)
    }
}

/// Only if the system random source fails (it does not on Linux): a key from the clock and
/// the address space, still unknown to a remote client.
fn nonce_fallback() -> Vec<u8> {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let p = &t as *const u128 as usize;
    [t.to_le_bytes().as_slice(), p.to_le_bytes().as_slice()].concat()
}

/// The credentials of an `Authorization` header whose scheme is `scheme` (compared without
/// regard to case, RFC 9110 §11.1), trimmed.
fn auth_param<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (s, rest) = v.trim_start().split_once([' ', '\t'])?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let b64 = auth_param(headers, "Basic")?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    auth_param(headers, "Bearer")
}

pub struct AuthState {
    pub api: ApiAccess,
    pub basic: BasicAuth,
    pub extra_headers: Vec<(header::HeaderName, header::HeaderValue)>,
    /// Counters for `/metrics` (auth failures and throttling, and the listener's).
    pub stats: Arc<HttpStats>,
}

impl AuthState {
    /// The request carries the API token (`Authorization: Bearer`, compared in constant time).
    fn token_ok(&self, headers: &HeaderMap) -> bool {
        match &self.api {
            ApiAccess::Token(t) => bearer(headers)
                .is_some_and(|b| bool::from(b.as_bytes().ct_eq(t.expose().as_bytes()))),
            _ => false,
        }
    }
}

/// How long a request waits before its 503 when every password-check slot is busy (the
/// `Retry-After` it is told).
const BUSY_ANSWER_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Basic auth in front of everything (when configured), plus the configured extra headers.
pub async fn basic_auth_layer(
    State(auth): State<Arc<AuthState>>,
    req: Request,
    next: Next,
) -> Response {
    if auth.basic.enabled() {
        match auth.basic.check(req.headers()).await {
            BasicOutcome::Allowed => {}
            BasicOutcome::Denied => {
                auth.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                return (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        "Basic realm=\"identity-posture-exporter\"",
                    )],
                    "Unauthorized\n",
                )
                    .into_response();
            }
            BasicOutcome::Busy => {
                auth.stats.auth_throttled.fetch_add(1, Ordering::Relaxed);
                // Answer only after the Retry-After it names: a guessing client that ignores
                // it is slowed to one request a second per connection, at no CPU cost (a
                // sleeping task), instead of thousands of instant refusals that compete with
                // real scrapes for the cores. The connection cap bounds the waiting clients.
                tokio::time::sleep(BUSY_ANSWER_DELAY).await;
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    "Too many password checks in progress; retry shortly\n",
                )
                    .into_response();
            }
        }
    }
    let mut resp = next.run(req).await;
    for (k, v) in &auth.extra_headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// The `/api/v1` (and `/findings`, `/account`) rule. A request that passed the web config's
/// basic auth (the outer layer, which answers 401 before this runs) counts as authenticated,
/// whatever the listener and token: basic auth and a bearer token cannot share one
/// `Authorization` header, and it is how people open the findings view in a browser.
pub async fn api_guard(State(auth): State<Arc<AuthState>>, req: Request, next: Next) -> Response {
    let ok = match &auth.api {
        _ if auth.basic.enabled() => true,
        ApiAccess::Token(_) => auth.token_ok(req.headers()),
        ApiAccess::Loopback => true,
        ApiAccess::Refused => {
            return (
                StatusCode::FORBIDDEN,
                "Forbidden: /api/v1 lists vulnerable accounts; set server.api_token_file (then send Authorization: Bearer), basic_auth_users in the web config, or bind server.listen to loopback\n",
            )
                .into_response();
        }
    };
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Unauthorized: Authorization: Bearer <token> required\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// The admin endpoints (`/-/reload`, `/-/poll/{source}`): callers on a loopback address, or
/// authenticated ones (basic auth, which the outer layer already checked with the same
/// bounded, cached bcrypt check, or the API token, scheme name in any case).
pub async fn admin_guard(State(auth): State<Arc<AuthState>>, req: Request, next: Next) -> Response {
    let loopback = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback());
    if loopback || auth.token_ok(req.headers()) || auth.basic.enabled() {
        return next.run(req).await;
    }
    (
        StatusCode::FORBIDDEN,
        "Forbidden: admin endpoints answer loopback callers, or authenticated ones (web config basic auth or the API bearer token)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_token_and_bind_address() {
        let lo: SocketAddr = "127.0.0.1:9863".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9863".parse().unwrap();
        let v6: SocketAddr = "[::1]:9863".parse().unwrap();
        assert!(matches!(ApiAccess::new(None, lo), ApiAccess::Loopback));
        assert!(matches!(ApiAccess::new(None, v6), ApiAccess::Loopback));
        assert!(matches!(ApiAccess::new(None, any), ApiAccess::Refused));
        assert!(matches!(
            ApiAccess::new(Some(Secret::new("t")), any),
            ApiAccess::Token(_)
        ));
    }

    fn basic(user_pass: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::STANDARD.encode(user_pass);
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {enc}").parse().unwrap(),
        );
        h
    }

    #[tokio::test]
    async fn basic_auth_verifies_bcrypt_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let ba = BasicAuth::new([("prom".to_string(), hash)].into());
        let ok = basic("prom:s3cret");
        assert_eq!(ba.check(&ok).await, BasicOutcome::Allowed);
        assert_eq!(ba.verified.lock().unwrap().len(), 1);
        assert_eq!(ba.check(&ok).await, BasicOutcome::Allowed, "cached");
        assert_eq!(ba.check(&basic("prom:wrong")).await, BasicOutcome::Denied);
        assert_eq!(ba.check(&basic("eve:s3cret")).await, BasicOutcome::Denied);
        assert_eq!(ba.check(&HeaderMap::new()).await, BasicOutcome::Denied);
        assert_eq!(
            ba.verified.lock().unwrap().len(),
            1,
            "only successes are remembered"
        );
    }

    #[tokio::test]
    async fn the_cache_holds_keyed_hashes_that_expire() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let ba = BasicAuth::new([("prom".to_string(), hash)].into());
        assert_eq!(ba.check(&basic("prom:s3cret")).await, BasicOutcome::Allowed);
        let key = ba.cache_key("prom", "s3cret");
        assert_ne!(&key[..6], b"s3cret");
        assert_ne!(key, ba.cache_key("prom", "s3creT"));
        assert_ne!(
            ba.cache_key("pro", "ms3cret"),
            ba.cache_key("prom", "s3cret"),
            "user and password are delimited"
        );
        // Expired: the next request verifies again (and, all slots taken, is throttled).
        *ba.verified.lock().unwrap().get_mut(&key).unwrap() -= VERIFIED_TTL;
        let _all = ba
            .slots
            .clone()
            .try_acquire_many_owned(ba.slots.available_permits() as u32);
        assert_eq!(ba.check(&basic("prom:s3cret")).await, BasicOutcome::Busy);
    }

    #[tokio::test]
    async fn full_slots_fail_fast_but_cached_scrapers_pass() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let ba = BasicAuth::with_slots([("prom".to_string(), hash)].into(), 1);
        assert_eq!(ba.check(&basic("prom:s3cret")).await, BasicOutcome::Allowed);
        let held = ba.slots.clone().try_acquire_owned().unwrap();
        assert_eq!(ba.check(&basic("prom:guess")).await, BasicOutcome::Busy);
        assert_eq!(ba.check(&basic("nobody:x")).await, BasicOutcome::Busy);
        assert_eq!(ba.check(&basic("prom:s3cret")).await, BasicOutcome::Allowed);
        drop(held);
        assert_eq!(ba.check(&basic("prom:guess")).await, BasicOutcome::Denied);
    }

    #[test]
    fn scheme_names_are_case_insensitive() {
        let mut h = HeaderMap::new();
        for v in [
            "Bearer t0k",
            "bearer t0k",
            "BEARER t0k",
            "BeArEr   t0k ",
            "Bearer\tt0k",
        ] {
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            assert_eq!(bearer(&h), Some("t0k"), "{v:?}");
        }
        for v in ["Bearert0k", "Basic t0k", "t0k", ""] {
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            assert_eq!(bearer(&h), None, "{v:?}");
        }
        let enc = base64::engine::general_purpose::STANDARD.encode("u:p");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            h.insert(
                header::AUTHORIZATION,
                format!("{scheme} {enc}").parse().unwrap(),
            );
            assert_eq!(
                basic_credentials(&h),
                Some(("u".to_string(), "p".to_string())),
                "{scheme}"
            );
        }
    }
}
