//! OAuth 2.0 access tokens for sources that use them: a [`TokenCache`] (refresh before
//! expiry, single flight: concurrent requests wait for one fetch), and the client-credentials
//! grant with `client_secret_basic` (SSPM), `client_secret_post` (Entra) or a signed
//! `private_key_jwt` assertion (Okta service apps, Entra certificates).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use url::Url;

use super::client::{Request, Session};
use super::error::UpstreamError;
use crate::config::Secret;

/// An access token and when it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: Secret,
    /// As the server spelled it (`Bearer`, `DPoP`).
    pub token_type: String,
    pub issued_at_unix: f64,
    pub expires_at_unix: f64,
    pub scope: Option<String>,
}

impl AccessToken {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        let scheme = if self.token_type.eq_ignore_ascii_case("bearer") || self.token_type.is_empty()
        {
            "Bearer"
        } else {
            self.token_type.as_str()
        };
        format!("{scheme} {}", self.value.expose())
    }
}

/// Something that can fetch a new access token, through the upstream session (so the token
/// request is counted, logged, retried and budgeted like any other).
pub trait TokenSource: Send + Sync {
    fn fetch<'a>(&'a self, s: &'a Session<'_>)
        -> BoxFuture<'a, Result<AccessToken, UpstreamError>>;
}

struct CacheState {
    token: Option<AccessToken>,
    /// The error of the last fetch, shared with callers that queued behind it.
    last_error: Option<UpstreamError>,
}

/// Caches one access token; refreshes it `refresh_before` its expiry (at most half its
/// lifetime early). Concurrent callers that find it stale wait for a single fetch.
pub struct TokenCache {
    source: Box<dyn TokenSource>,
    state: tokio::sync::Mutex<CacheState>,
    /// Completed fetch attempts; lets a queued caller see that a fetch finished meanwhile.
    fetches: AtomicU64,
    refresh_before: Duration,
}

impl TokenCache {
    pub fn new(source: Box<dyn TokenSource>) -> TokenCache {
        TokenCache {
            source,
            state: tokio::sync::Mutex::new(CacheState {
                token: None,
                last_error: None,
            }),
            fetches: AtomicU64::new(0),
            refresh_before: Duration::from_secs(120),
        }
    }

    pub fn with_refresh_before(mut self, d: Duration) -> TokenCache {
        self.refresh_before = d;
        self
    }

    /// Token fetches attempted so far.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn fresh(&self, t: &AccessToken, now: f64) -> bool {
        let lifetime = (t.expires_at_unix - t.issued_at_unix).max(0.0);
        let margin = self.refresh_before.as_secs_f64().min(lifetime / 2.0);
        now < t.expires_at_unix - margin
    }

    /// A valid token, fetching one if needed.
    pub async fn get(&self, s: &Session<'_>) -> Result<AccessToken, UpstreamError> {
        let seen = self.fetches.load(Ordering::Acquire);
        let mut st = self.state.lock().await;
        let now = s.upstream().timer().now_unix();
        if let Some(t) = &st.token {
            if self.fresh(t, now) {
                return Ok(t.clone());
            }
        }
        if self.fetches.load(Ordering::Acquire) != seen {
            // A fetch finished while we waited and did not leave a fresh token: share its error
            // instead of hammering the token endpoint once per queued request.
            if let Some(e) = &st.last_error {
                return Err(e.clone());
            }
        }
        let r = self.source.fetch(s).await;
        self.fetches.fetch_add(1, Ordering::Release);
        match r {
            Ok(t) => {
                s.upstream().add_secret(t.value.expose());
                st.token = Some(t.clone());
                st.last_error = None;
                Ok(t)
            }
            Err(e) => {
                st.last_error = Some(e.clone());
                // A token that is stale but not yet expired still works for now.
                match &st.token {
                    Some(t) if now < t.expires_at_unix => Ok(t.clone()),
                    _ => Err(e),
                }
            }
        }
    }

    /// Drops `token` if it is still the cached one (after the server rejected it).
    pub async fn invalidate(&self, token: &AccessToken) {
        let mut st = self.state.lock().await;
        if st.token.as_ref().is_some_and(|t| t.value == token.value) {
            st.token = None;
        }
    }
}

/// How the client authenticates at the token endpoint.
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:secret)`.
    SecretBasic(Secret),
    /// `client_id` and `client_secret` in the form.
    SecretPost(Secret),
    /// `client_assertion` signed with the client's private key (RFC 7523).
    PrivateKeyJwt(AssertionSigner),
}

/// The client-credentials grant.
pub struct ClientCredentials {
    pub token_url: Url,
    pub client_id: String,
    pub auth: ClientAuth,
    /// Space-separated scopes, if the server wants them.
    pub scope: Option<String>,
    /// Further form fields (e.g. Entra's `client_id` with a private-key assertion).
    pub extra_params: Vec<(String, String)>,
    /// Name for logs and errors.
    pub endpoint: String,
}

impl ClientCredentials {
    pub fn new(token_url: Url, client_id: impl Into<String>, auth: ClientAuth) -> Self {
        let endpoint = token_url.path().to_string();
        ClientCredentials {
            token_url,
            client_id: client_id.into(),
            auth,
            scope: None,
            extra_params: Vec::new(),
            endpoint,
        }
    }

    fn request(&self, now_unix: f64) -> Result<Request, UpstreamError> {
        let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".into())];
        if let Some(s) = &self.scope {
            form.push(("scope", s.clone()));
        }
        let mut basic = None;
        match &self.auth {
            ClientAuth::SecretBasic(secret) => {
                let raw = format!("{}:{}", self.client_id, secret.expose());
                basic = Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                ));
            }
            ClientAuth::SecretPost(secret) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.expose().to_string()));
            }
            ClientAuth::PrivateKeyJwt(signer) => {
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", signer.sign(&self.client_id, now_unix)?));
            }
        }
        for (k, v) in &self.extra_params {
            form.push((k.as_str(), v.clone()));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // A fresh assertion is signed per attempt, so retrying the POST is safe.
        let mut req = Request::post_form(self.token_url.clone(), &self.endpoint, &pairs)
            .without_auth()
            .retry_transient(true);
        if let Some(b) = basic {
            let mut v = HeaderValue::from_str(&b).map_err(|_| {
                UpstreamError::Token("client id or secret is not valid in a header".into())
            })?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        Ok(req)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
}

impl TokenSource for ClientCredentials {
    fn fetch<'a>(
        &'a self,
        s: &'a Session<'_>,
    ) -> BoxFuture<'a, Result<AccessToken, UpstreamError>> {
        Box::pin(async move {
            let timer = s.upstream().timer().clone();
            let resp = s.send_with(|| self.request(timer.now_unix())).await?;
            let t: TokenResponse = resp.json()?;
            if t.access_token.is_empty() {
                return Err(UpstreamError::Token(format!(
                    "{}: empty access_token",
                    self.endpoint
                )));
            }
            // Numbers per RFC 6749; some servers send strings.
            let expires_in = match &t.expires_in {
                Some(serde_json::Value::Number(n)) => n.as_f64(),
                Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|e| e.is_finite() && *e > 0.0)
            // Unknown lifetime: assume a short one and refresh early.
            .unwrap_or(300.0)
            .min(86_400.0);
            let now = timer.now_unix();
            Ok(AccessToken {
                value: Secret::new(t.access_token),
                token_type: t.token_type.unwrap_or_else(|| "Bearer".into()),
                issued_at_unix: now,
                expires_at_unix: now + expires_in,
                scope: t.scope,
            })
        })
    }
}

/// Signs `private_key_jwt` client assertions.
pub struct AssertionSigner {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
    /// `x5t` header (Entra certificate credentials).
    pub x5t: Option<String>,
    audience: String,
    lifetime: Duration,
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionSigner")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

impl AssertionSigner {
    /// From a private key in PEM (PKCS#1 / PKCS#8 RSA, PKCS#8 / SEC1 EC) or JWK (RSA, EC
    /// P-256/P-384) form. `kid` overrides the JWK's own `kid`. The key is tried once here,
    /// so a bad key is a configuration error, not a failed poll.
    pub fn from_key(
        private_key: &Secret,
        kid: Option<String>,
        audience: impl Into<String>,
    ) -> Result<AssertionSigner, UpstreamError> {
        let text = private_key.expose().trim();
        let (candidates, jwk_kid): (Vec<(EncodingKey, Algorithm)>, Option<String>) =
            if text.starts_with('{') {
                let (k, a, jkid) = jwk_to_key(text)?;
                (vec![(k, a)], jkid)
            } else if text.contains("-----BEGIN") {
                let mut c = Vec::new();
                if let Ok(k) = EncodingKey::from_rsa_pem(text.as_bytes()) {
                    c.push((k.clone(), Algorithm::RS256));
                }
                if let Ok(k) = EncodingKey::from_ec_pem(text.as_bytes()) {
                    c.push((k.clone(), Algorithm::ES256));
                    c.push((k, Algorithm::ES384));
                }
                (c, None)
            } else {
                return Err(UpstreamError::Token(
                    "private key is neither PEM nor JWK".into(),
                ));
            };
        let mut signer = None;
        for (key, alg) in candidates {
            let s = AssertionSigner {
                key,
                alg,
                kid: kid.clone().or_else(|| jwk_kid.clone()),
                x5t: None,
                audience: String::new(),
                lifetime: Duration::from_secs(300),
            };
            if s.sign("probe", 0.0).is_ok() {
                signer = Some(s);
                break;
            }
        }
        let mut s = signer.ok_or_else(|| {
            UpstreamError::Token(
                "private key could not be used for signing (expected an RSA or EC P-256/P-384 private key)".into(),
            )
        })?;
        s.audience = audience.into();
        Ok(s)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// A fresh assertion: `iss` = `sub` = client id, `aud`, `iat`, `exp` (5 minutes), a
    /// random `jti` (servers reject a reused one).
    pub fn sign(&self, client_id: &str, now_unix: f64) -> Result<String, UpstreamError> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        header.x5t = self.x5t.clone();
        let now = now_unix.max(0.0) as u64;
        let jti: u128 = rand::random();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: &self.audience,
            iat: now,
            exp: now + self.lifetime.as_secs(),
            jti: format!("{jti:032x}"),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| UpstreamError::Token(format!("cannot sign the client assertion: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// JWK private keys → DER (jsonwebtoken takes PKCS#1 DER for RSA, PKCS#8 DER for EC).
// ---------------------------------------------------------------------------------------------

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        let mut v = vec![0x80 | bytes.len() as u8];
        v.extend(bytes);
        v
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(content.len()));
    v.extend_from_slice(content);
    v
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut b: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if b.is_empty() || b[0] & 0x80 != 0 {
        b.insert(0, 0);
    }
    der(0x02, &b)
}

fn jwk_to_key(text: &str) -> Result<(EncodingKey, Algorithm, Option<String>), UpstreamError> {
    let bad = |m: &str| UpstreamError::Token(format!("JWK private key: {m}"));
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad("not valid JSON"))?;
    let field = |name: &str| -> Result<Vec<u8>, UpstreamError> {
        let s = v
            .get(name)
            .and_then(|x| x.as_str())
            .ok_or_else(|| bad(&format!("missing \"{name}\"")))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| bad(&format!("\"{name}\" is not base64url")))
    };
    let kid = v.get("kid").and_then(|k| k.as_str()).map(str::to_string);
    match v.get("kty").and_then(|k| k.as_str()) {
        Some("RSA") => {
            let mut seq = der_uint(&[0]);
            for f in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                seq.extend(der_uint(&field(f)?));
            }
            Ok((
                EncodingKey::from_rsa_der(&der(0x30, &seq)),
                Algorithm::RS256,
                kid,
            ))
        }
        Some("EC") => {
            let (curve_oid, alg, len): (&[u8], _, usize) =
                match v.get("crv").and_then(|c| c.as_str()) {
                    Some("P-256") => (
                        &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
                        Algorithm::ES256,
                        32,
                    ),
                    Some("P-384") => (
                        &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
                        Algorithm::ES384,
                        48,
                    ),
                    _ => return Err(bad("only EC curves P-256 and P-384 are supported")),
                };
            let pad = |mut b: Vec<u8>| -> Result<Vec<u8>, UpstreamError> {
                if b.len() > len {
                    return Err(bad("EC coordinate too long"));
                }
                while b.len() < len {
                    b.insert(0, 0);
                }
                Ok(b)
            };
            let (d, x, y) = (pad(field("d")?)?, pad(field("x")?)?, pad(field("y")?)?);
            let mut point = vec![0x00, 0x04];
            point.extend(x);
            point.extend(y);
            let mut ec = der_uint(&[1]);
            ec.extend(der(0x04, &d));
            ec.extend(der(0xa1, &der(0x03, &point)));
            let ec_private_key = der(0x30, &ec);
            let mut alg_id = vec![0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
            alg_id.extend_from_slice(curve_oid);
            let mut pk8 = der_uint(&[0]);
            pk8.extend(der(0x30, &alg_id));
            pk8.extend(der(0x04, &ec_private_key));
            Ok((EncodingKey::from_ec_der(&der(0x30, &pk8)), alg, kid))
        }
        _ => Err(bad("\"kty\" must be RSA or EC")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_helpers() {
        assert_eq!(der_len(5), vec![5]);
        assert_eq!(der_len(300), vec![0x82, 0x01, 0x2c]);
        assert_eq!(der_uint(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_uint(&[0, 0, 1]), vec![0x02, 0x01, 0x01]);
        assert_eq!(der_uint(&[]), vec![0x02, 0x01, 0x00]);
    }

    #[test]
    fn garbage_keys_are_config_errors() {
        for k in [
            "nope",
            "{\"kty\":\"oct\"}",
            "{\"kty\":\"RSA\",\"n\":\"AQAB\"}",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let e = AssertionSigner::from_key(&Secret::new(k), None, "aud").unwrap_err();
            assert!(matches!(e, UpstreamError::Token(_)), "{k}: {e}");
            assert!(!e.to_string().contains("AAAA"));
        }
    }
}
