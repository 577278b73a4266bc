//! The Entra source's narrow HTTP seam: an app-only token (client secret or certificate
//! assertion) cached until shortly before expiry, and `GET`s with Graph's throttling rules
//! (429/503/504 + `Retry-After`), paging via `@odata.nextLink`, and request counting.
//! It is deliberately small so it can be swapped for the shared `upstream` layer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::de::DeserializeOwned;

use super::graph::{ErrorBody, Page, TokenError, TokenResponse};
use crate::config::{EntraAuth, EntraConfig};
use crate::sources::SourceStats;

/// Scope of an app-only Graph token (`{graph}/.default`).
pub fn scope(graph_url: &str) -> String {
    format!("{}/.default", graph_url.trim_end_matches('/'))
}

/// A refused or failed request, with what Graph said. Never holds a secret or a token.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchError {
    /// An HTTP error answer (after retries, for the retryable ones).
    Http {
        status: u16,
        /// Graph's `error.code` (or the token endpoint's `error`).
        code: Option<String>,
        message: Option<String>,
        request_id: Option<String>,
        /// Path and query of the request (no host, so no tenant-specific secret either).
        what: String,
    },
    /// Connection, TLS, timeout or unreadable body.
    Transport { what: String, detail: String },
    /// `max_requests_per_poll` reached.
    Budget { limit: u32 },
}

impl FetchError {
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The request's path and query.
    pub fn what(&self) -> &str {
        match self {
            FetchError::Http { what, .. } | FetchError::Transport { what, .. } => what,
            FetchError::Budget { .. } => "",
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            FetchError::Http { code, .. } => code.as_deref(),
            _ => None,
        }
    }
    /// Refused for want of a licence or a permission: the data is unknown, the poll goes on.
    pub fn is_refusal(&self) -> bool {
        match self {
            FetchError::Http { status, code, .. } => {
                *status == 403
                    || (*status == 400
                        && code.as_deref().is_some_and(|c| {
                            c.contains("Premium")
                                || c.contains("License")
                                || c.contains("NonPremium")
                        }))
            }
            _ => false,
        }
    }
    /// Graph's answer for a tenant without Entra ID P1/P2 (or a B2C tenant).
    pub fn is_non_premium(&self) -> bool {
        self.code().is_some_and(|c| {
            c == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
                || c.contains("PremiumLicense")
                || c.contains("NonPremium")
        })
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Http {
                status,
                code,
                message,
                request_id,
                what,
            } => {
                write!(f, "GET {what}: HTTP {status}")?;
                if let Some(c) = code {
                    write!(f, " {c}")?;
                }
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
                if let Some(r) = request_id {
                    write!(f, " (request-id {r})")?;
                }
                Ok(())
            }
            FetchError::Transport { what, detail } => write!(f, "{what}: {detail}"),
            FetchError::Budget { limit } => write!(
                f,
                "max_requests_per_poll ({limit}) reached before the poll completed"
            ),
        }
    }
}

struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// Retry policy for throttling and transient errors.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// First backoff when the answer carries no `Retry-After`; doubles per attempt.
    pub base_backoff: Duration,
    /// Upper bound on any single wait, `Retry-After` included.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(120),
        }
    }
}

pub struct GraphClient {
    http: reqwest::Client,
    cfg: EntraConfig,
    token_url: String,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    retry: RetryPolicy,
    /// Requests made in the current poll (reset by [`GraphClient::start_poll`]).
    requests: AtomicU32,
    max_requests: Option<u32>,
    /// Requests in flight at once (`concurrency`).
    in_flight: tokio::sync::Semaphore,
}

fn class(status: u16) -> String {
    match status {
        429 => "429".to_string(),
        s => format!("{}xx", s / 100),
    }
}

/// Path and query of a URL, for messages (never the host's credentials: there are none in
/// URLs here, but keep messages short and stable).
fn what(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.query() {
            Some(q) => format!("{}?{}", u.path(), q),
            None => u.path().to_string(),
        },
        Err(_) => url.to_string(),
    }
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl GraphClient {
    pub fn new(
        cfg: EntraConfig,
        timeout: Duration,
        max_requests: Option<u32>,
        concurrency: usize,
    ) -> Result<GraphClient, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout.min(Duration::from_secs(120)))
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!(
                "identity-posture-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .gzip(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let token_url = format!(
            "{}/{}/oauth2/v2.0/token",
            cfg.authority_url.trim_end_matches('/'),
            cfg.tenant_id
        );
        Ok(GraphClient {
            http,
            cfg,
            token_url,
            token: tokio::sync::Mutex::new(None),
            retry: RetryPolicy::default(),
            requests: AtomicU32::new(0),
            max_requests,
            in_flight: tokio::sync::Semaphore::new(concurrency.max(1)),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> GraphClient {
        self.retry = retry;
        self
    }

    pub fn graph_url(&self) -> &str {
        &self.cfg.graph_url
    }

    pub fn start_poll(&self) {
        self.requests.store(0, Ordering::Relaxed);
    }

    pub fn requests_this_poll(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    fn spend(&self) -> Result<(), FetchError> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        match self.max_requests {
            Some(limit) if n > limit => Err(FetchError::Budget { limit }),
            _ => Ok(()),
        }
    }

    /// A valid token. The lock is held while fetching, so concurrent callers share one
    /// token request (single flight); tokens are refreshed 5 minutes before they expire.
    /// `rejected`: a token Graph answered 401 to; it is replaced unless another caller has
    /// replaced it already.
    async fn token(
        &self,
        stats: &SourceStats,
        rejected: Option<&str>,
    ) -> Result<String, FetchError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if rejected != Some(t.token.as_str()) && Instant::now() < t.refresh_at {
                return Ok(t.token.clone());
            }
        }
        let (token, lifetime) = self.fetch_token(stats).await?;
        let early = Duration::from_secs(300).min(lifetime / 2);
        *slot = Some(CachedToken {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime - early,
        });
        Ok(token)
    }

    async fn fetch_token(&self, stats: &SourceStats) -> Result<(String, Duration), FetchError> {
        let scope = scope(&self.cfg.graph_url);
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.cfg.client_id.clone()),
            ("scope", scope),
        ];
        match &self.cfg.auth {
            EntraAuth::ClientSecret(s) => form.push(("client_secret", s.expose().to_string())),
            EntraAuth::Certificate {
                certificate_pem,
                private_key,
            } => {
                let jwt = client_assertion(
                    &self.cfg.client_id,
                    &self.token_url,
                    certificate_pem,
                    private_key.expose(),
                )
                .map_err(|detail| FetchError::Transport {
                    what: "client assertion".into(),
                    detail,
                })?;
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", jwt));
            }
        }
        let what = format!("POST {}", what(&self.token_url));
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.spend()?;
            let resp = self.http.post(&self.token_url).form(&form).send().await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    stats.count_request("error");
                    if attempt < self.retry.max_attempts {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(FetchError::Transport {
                        what,
                        detail: e.without_url().to_string(),
                    });
                }
            };
            let status = resp.status().as_u16();
            stats.count_request(&class(status));
            if status == 429 {
                stats.count_rate_limited();
            }
            if matches!(status, 429 | 500 | 502 | 503 | 504) && attempt < self.retry.max_attempts {
                let ra = retry_after(resp.headers());
                tokio::time::sleep(self.backoff(attempt, ra)).await;
                continue;
            }
            let body = resp.bytes().await.map_err(|e| FetchError::Transport {
                what: what.clone(),
                detail: e.without_url().to_string(),
            })?;
            if status != 200 {
                let e: TokenError = serde_json::from_slice(&body).unwrap_or_default();
                // The description starts with the AADSTS code and is safe to show; it never
                // echoes the secret.
                return Err(FetchError::Http {
                    status,
                    code: e.error,
                    message: e
                        .error_description
                        .map(|d| d.lines().next().unwrap_or_default().to_string()),
                    request_id: e.trace_id.or(e.correlation_id),
                    what: what.trim_start_matches("POST ").to_string(),
                });
            }
            let t: TokenResponse =
                serde_json::from_slice(&body).map_err(|e| FetchError::Transport {
                    what: what.clone(),
                    detail: format!("unreadable token response: {e}"),
                })?;
            let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3600).max(60));
            return Ok((t.access_token, lifetime));
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.retry.base_backoff * 2u32.saturating_pow(attempt.saturating_sub(1));
        retry_after.unwrap_or(exp).min(self.retry.max_wait)
    }

    /// `GET url` as JSON, retrying throttling (429, 503, 504 honouring `Retry-After`), other
    /// 5xx and transport errors with exponential backoff, and a 401 once with a new token.
    pub async fn get<T: DeserializeOwned>(
        &self,
        url: &str,
        stats: &SourceStats,
    ) -> Result<T, FetchError> {
        let what = what(url);
        let mut attempt = 0;
        let mut rejected: Option<String> = None;
        let mut reauthed = false;
        loop {
            attempt += 1;
            let token = self.token(stats, rejected.as_deref()).await?;
            self.spend()?;
            let permit = self.in_flight.acquire().await.ok();
            let resp = self
                .http
                .get(url)
                .bearer_auth(&token)
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    stats.count_request("error");
                    if attempt < self.retry.max_attempts {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(FetchError::Transport {
                        what,
                        detail: e.without_url().to_string(),
                    });
                }
            };
            let status = resp.status().as_u16();
            stats.count_request(&class(status));
            if status == 429 {
                stats.count_rate_limited();
            }
            if status == 401 && !reauthed {
                reauthed = true;
                rejected = Some(token);
                continue;
            }
            if matches!(status, 429 | 500 | 502 | 503 | 504) && attempt < self.retry.max_attempts {
                let ra = retry_after(resp.headers());
                tracing::debug!(status, ?ra, url = %what, "graph: retrying");
                tokio::time::sleep(self.backoff(attempt, ra)).await;
                continue;
            }
            let body = resp.bytes().await.map_err(|e| FetchError::Transport {
                what: what.clone(),
                detail: e.without_url().to_string(),
            })?;
            drop(permit);
            if !(200..300).contains(&status) {
                let e = serde_json::from_slice::<ErrorBody>(&body)
                    .ok()
                    .and_then(|b| b.error)
                    .unwrap_or_default();
                return Err(FetchError::Http {
                    status,
                    code: e.code,
                    message: e.message,
                    request_id: e.inner_error.and_then(|i| i.request_id),
                    what,
                });
            }
            return serde_json::from_slice(&body).map_err(|e| FetchError::Transport {
                what,
                detail: format!("unreadable response: {e}"),
            });
        }
    }

    /// Follows `@odata.nextLink` from `first`, handing each page's items to `f`; returns the
    /// number of pages. Items are handed over page by page, never collected here.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        first: &str,
        stats: &SourceStats,
        mut f: impl FnMut(Vec<T>),
    ) -> Result<u32, FetchError> {
        let mut url = first.to_string();
        let mut pages = 0;
        loop {
            let page: Page<T> = self.get(&url, stats).await?;
            pages += 1;
            f(page.value);
            match page.next_link {
                Some(next) if !next.is_empty() => url = next,
                _ => return Ok(pages),
            }
        }
    }

    /// Every item of a (small) collection.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        first: &str,
        stats: &SourceStats,
    ) -> Result<Vec<T>, FetchError> {
        let mut all = Vec::new();
        self.for_each_page(first, stats, |items| all.extend(items))
            .await?;
        Ok(all)
    }
}

/// The certificate's DER bytes from PEM (the first `CERTIFICATE` block).
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    let start = pem
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or("no PEM certificate")?
        + "-----BEGIN CERTIFICATE-----".len();
    let end = pem[start..]
        .find("-----END CERTIFICATE-----")
        .ok_or("unterminated PEM certificate")?
        + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("invalid PEM certificate: {e}"))
}

/// `x5t#S256`: base64url SHA-256 thumbprint of the certificate's DER encoding.
pub fn x5t_s256(certificate_pem: &str) -> Result<String, String> {
    let der = certificate_der(certificate_pem)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// The signed client assertion for the certificate credential (Microsoft identity platform
/// "certificate credentials": header `alg` PS256, `typ` JWT, `x5t#S256`; claims `aud` = the
/// token endpoint, `iss` = `sub` = client id, `jti`, `nbf`, `iat`, `exp`).
pub fn client_assertion(
    client_id: &str,
    token_url: &str,
    certificate_pem: &str,
    private_key_pem: &str,
) -> Result<String, String> {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256);
    header.typ = Some("JWT".into());
    header.x5t_s256 = Some(x5t_s256(certificate_pem)?);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let jti: u128 = rand::random();
    let claims = serde_json::json!({
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": format!("{jti:032x}"),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .map_err(|_| "private key is not an RSA private key in PEM".to_string())?;
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("cannot sign: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_failures_are_told_apart() {
        let e = |status, code: &str| FetchError::Http {
            status,
            code: Some(code.into()),
            message: None,
            request_id: None,
            what: "/v1.0/x".into(),
        };
        assert!(e(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant").is_refusal());
        assert!(e(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant").is_non_premium());
        assert!(e(403, "Authorization_RequestDenied").is_refusal());
        assert!(!e(403, "Authorization_RequestDenied").is_non_premium());
        assert!(e(400, "AadPremiumLicenseRequired").is_refusal());
        assert!(!e(500, "InternalServerError").is_refusal());
        assert!(!e(401, "InvalidAuthenticationToken").is_refusal());
    }

    #[test]
    fn error_text_names_code_message_and_request_id() {
        let e = FetchError::Http {
            status: 403,
            code: Some("Authorization_RequestDenied".into()),
            message: Some("Insufficient privileges to complete the operation.".into()),
            request_id: Some("rid-1".into()),
            what: "/v1.0/users".into(),
        };
        assert_eq!(
            e.to_string(),
            "GET /v1.0/users: HTTP 403 Authorization_RequestDenied: Insufficient privileges to complete the operation. (request-id rid-1)"
        );
    }

    #[test]
    fn scope_is_graph_default() {
        assert_eq!(
            scope("https://graph.microsoft.com"),
            "https://graph.microsoft.com/.default"
        );
    }
}
