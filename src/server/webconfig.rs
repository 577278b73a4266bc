//! The exporter-toolkit web config (`server.web_config_file`, `--web.config.file`): the
//! whole format of prometheus/exporter-toolkit docs/web-configuration.md, validated as the
//! toolkit does (unknown keys, header names and values, bcrypt hashes, TLS settings, HTTP/2
//! cipher requirements), plus the request rate limit. Users copy their node_exporter
//! `web-config.yml`; tests/exporter_toolkit.rs runs the toolkit's own test corpus.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Deserializer};

use super::tls::TlsServerConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    #[serde(default)]
    pub tls_server_config: Option<TlsServerConfig>,
    #[serde(default)]
    pub http_server_config: Option<HttpServerConfig>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerConfig {
    #[serde(default, deserialize_with = "null_as_default")]
    pub headers: BTreeMap<String, String>,
    /// Default true, as in exporter-toolkit. This server speaks HTTP/1.1; the key still
    /// decides whether a TLS 1.2 cipher list must allow HTTP/2, so configs agree.
    #[serde(default)]
    pub http2: Option<bool>,
}

/// `rate_limit`: at most one request per `interval`, bursts of `burst` (Go's
/// `rate.NewLimiter(rate.Every(interval), burst)`); interval 0 turns it off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    #[serde(default, deserialize_with = "go_duration")]
    pub interval: Duration,
    #[serde(default)]
    pub burst: u32,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A Go duration as YAML carries it: a string (`"1s"`, `"500ms"`) or nanoseconds.
fn go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }
    match Raw::deserialize(d)? {
        Raw::N(n) => Ok(Duration::from_nanos(n)),
        Raw::S(s) if s == "0" => Ok(Duration::ZERO),
        Raw::S(s) => humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}"))),
    }
}

/// The headers exporter-toolkit lets a web config set, with the values it allows (`None`:
/// any value).
const EXTRA_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in headers {
        let Some((_, allowed)) = EXTRA_HEADERS.iter().find(|(name, _)| name == k) else {
            return Err(format!(
                "http_server_config.headers: HTTP header {k:?} can not be configured (allowed: {})",
                EXTRA_HEADERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        if let Some(values) = allowed {
            if !values.contains(&v.as_str()) {
                return Err(format!(
                    "http_server_config.headers: invalid value for {k}: expected one of {values:?}, got {v:?}"
                ));
            }
        }
    }
    Ok(())
}

/// A web config file larger than this is refused.
const MAX_WEB_CONFIG_BYTES: u64 = 1 << 20;

impl WebConfig {
    /// Reads and validates a web config: every error names the file and the key.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        if meta.len() > MAX_WEB_CONFIG_BYTES {
            return Err(format!(
                "{}: too large for a web config ({} bytes)",
                path.display(),
                meta.len()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        WebConfig::from_yaml_str(&text, path)
    }

    /// Parses and validates web config text; `path` names it in errors and anchors relative
    /// TLS file paths. A leading byte-order mark is ignored.
    pub fn from_yaml_str(text: &str, path: &Path) -> Result<WebConfig, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let at = |e: String| format!("{}: {e}", path.display());
        // An empty file is an empty config, as in exporter-toolkit.
        let mut wc: WebConfig = if text.trim().is_empty() {
            WebConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| at(e.to_string()))?
        };
        if let Some(h) = &wc.http_server_config {
            validate_headers(&h.headers).map_err(at)?;
        }
        for (user, hash) in &wc.basic_auth_users {
            // Parsed, not only prefix-checked: a truncated or mistyped hash would otherwise
            // lock the user out at the first request.
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(at(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (make one with `identity-posture-exporter hash-password`)"
                )));
            }
        }
        if let Some(tls) = wc.tls_server_config.take() {
            let base = path.parent().unwrap_or(Path::new("."));
            let tls = tls.resolve(base);
            if tls.is_enabled() {
                // Fail at start-up, not at the first handshake.
                super::tls::build(&tls).map_err(at)?;
                let http2 = wc
                    .http_server_config
                    .as_ref()
                    .and_then(|h| h.http2)
                    .unwrap_or(true);
                let below_13 = tls.min_version.as_deref().unwrap_or("TLS12") != "TLS13";
                if let (true, true, Some(list)) = (http2, below_13, &tls.cipher_suites) {
                    if !list
                        .iter()
                        .any(|c| super::tls::HTTP2_REQUIRED_CIPHERS.contains(&c.as_str()))
                    {
                        return Err(at(format!(
                            "tls_server_config.cipher_suites lacks a suite HTTP/2 requires ({}), and http_server_config.http2 is on (the default): add one, or set http2: false",
                            super::tls::HTTP2_REQUIRED_CIPHERS.join(" or ")
                        )));
                    }
                }
                wc.tls_server_config = Some(tls);
            }
        }
        Ok(wc)
    }

    /// The request rate limiter, when `rate_limit.interval` is set.
    pub fn limiter(&self) -> Option<RateLimiter> {
        self.rate_limit
            .as_ref()
            .filter(|r| !r.interval.is_zero())
            .map(|r| RateLimiter::new(r.interval, r.burst))
    }
}

/// A token bucket: `burst` tokens, one more every `interval`.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    burst: u32,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(interval: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            interval,
            burst,
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() / self.interval.as_secs_f64();
        s.0 = (s.0 + refill).min(f64::from(self.burst));
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Answers 429 when the web config's rate limit is exceeded (before authentication, as in
/// exporter-toolkit).
pub async fn rate_limit_layer(
    State(limiter): State<Option<Arc<RateLimiter>>>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(l) = &limiter {
        if !l.allow() {
            return (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests\n").into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked_like_the_toolkit() {
        let ok: BTreeMap<String, String> = [("X-Frame-Options", "deny"), ("X-XSS-Protection", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(validate_headers(&ok).is_ok());
        for (k, v, needle) in [
            ("Content-Type", "foo", "can not be configured"),
            (
                "X-Frame-Options",
                "foo",
                "invalid value for X-Frame-Options",
            ),
            ("X-Content-Type-Options", "sniff", "invalid value"),
        ] {
            let h = [(k.to_string(), v.to_string())].into_iter().collect();
            let e = validate_headers(&h).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn the_limiter_allows_bursts_then_refuses() {
        let l = RateLimiter::new(Duration::from_secs(3600), 2);
        assert!(l.allow() && l.allow());
        assert!(!l.allow());
        assert!(
            !RateLimiter::new(Duration::from_secs(1), 0).allow(),
            "burst 0 refuses all"
        );
    }
}
