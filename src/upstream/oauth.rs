//! OAuth 2.0 access tokens for sources that use them: a [`TokenCache`] (refresh before
//! expiry, single flight: concurrent requests wait for one fetch); the client-credentials
//! grant with `client_secret_basic` (SSPM), `client_secret_post` (Entra) or a signed client
//! assertion (Okta service apps, Entra certificates); the JWT-bearer grant (RFC 7523, Google
//! domain-wide delegation); and [`JwtSigner`], the one signed-JWT maker every grant (and
//! GitHub App authentication) uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use serde::Deserialize;
use url::Url;

use super::client::{Request, Session, TokenProvider};
use super::error::UpstreamError;
use super::token::AccessToken;
use crate::config::Secret;

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
    pub async fn drop_token(&self, token: &AccessToken) {
        let mut st = self.state.lock().await;
        if st.token.as_ref().is_some_and(|t| t.value == token.value) {
            st.token = None;
        }
    }
}

impl TokenProvider for TokenCache {
    fn token<'a>(
        &'a self,
        s: &'a Session<'_>,
    ) -> BoxFuture<'a, Result<AccessToken, UpstreamError>> {
        Box::pin(self.get(s))
    }
    fn invalidate<'a>(&'a self, token: &'a AccessToken) -> BoxFuture<'a, ()> {
        Box::pin(self.drop_token(token))
    }
}

/// A token endpoint's answer (RFC 6749 §5.1), the one shape every grant here reads.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    /// A number per RFC 6749; some servers send a string.
    #[serde(default)]
    pub expires_in: Option<serde_json::Value>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl TokenResponse {
    /// The token, its lifetime counted from `now_unix` (unknown lifetimes are taken as five
    /// minutes, so the token is refreshed early rather than used stale).
    pub fn into_token(self, endpoint: &str, now_unix: f64) -> Result<AccessToken, UpstreamError> {
        if self.access_token.is_empty() {
            return Err(UpstreamError::Token(format!(
                "{endpoint}: empty access_token"
            )));
        }
        let expires_in = match &self.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|e| e.is_finite() && *e > 0.0)
        .unwrap_or(300.0)
        .min(86_400.0);
        Ok(AccessToken {
            value: Secret::new(self.access_token),
            token_type: self.token_type.unwrap_or_else(|| "Bearer".into()),
            issued_at_unix: now_unix,
            expires_at_unix: now_unix + expires_in,
            scope: self.scope,
        })
    }
}

/// Posts a token request built by `make` (again for every attempt, so a signed assertion is
/// fresh each time) and reads the standard token response.
async fn token_request(
    s: &Session<'_>,
    endpoint: &str,
    make: impl FnMut() -> Result<Request, UpstreamError>,
) -> Result<AccessToken, UpstreamError> {
    let resp = s.send_with(make).await?;
    let t: TokenResponse = resp.json()?;
    t.into_token(endpoint, s.upstream().timer().now_unix())
}

/// How the client authenticates at the token endpoint.
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:secret)`.
    SecretBasic(Secret),
    /// `client_id` and `client_secret` in the form.
    SecretPost(Secret),
    /// `client_assertion` signed with the client's private key (RFC 7523 §2.2): `iss` = `sub`
    /// = the client id, `aud` = the token URL.
    PrivateKeyJwt(JwtSigner),
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
                let claims = Claims::new(&self.client_id)
                    .subject(&self.client_id)
                    .audience(self.token_url.as_str())
                    .with_nbf();
                form.push(("client_assertion", signer.sign(&claims, now_unix)?));
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

impl TokenSource for ClientCredentials {
    fn fetch<'a>(
        &'a self,
        s: &'a Session<'_>,
    ) -> BoxFuture<'a, Result<AccessToken, UpstreamError>> {
        Box::pin(async move {
            let timer = s.upstream().timer().clone();
            token_request(s, &self.endpoint, || self.request(timer.now_unix())).await
        })
    }
}

/// The JWT-bearer authorization grant (RFC 7523 §2.1): the assertion itself is the grant.
/// Google service accounts with domain-wide delegation use it (`iss` = the service account,
/// `sub` = the user to act as, `scope`, `aud` = the token URL, one hour).
pub struct JwtBearer {
    pub token_url: Url,
    pub signer: JwtSigner,
    /// The claims signed for every request (`iat`/`exp` are set when signing).
    pub claims: Claims,
    pub endpoint: String,
}

impl JwtBearer {
    fn request(&self, now_unix: f64) -> Result<Request, UpstreamError> {
        let jwt = self.signer.sign(&self.claims, now_unix)?;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt.as_str()),
        ];
        Ok(
            Request::post_form(self.token_url.clone(), &self.endpoint, &form)
                .without_auth()
                .retry_transient(true),
        )
    }
}

impl TokenSource for JwtBearer {
    fn fetch<'a>(
        &'a self,
        s: &'a Session<'_>,
    ) -> BoxFuture<'a, Result<AccessToken, UpstreamError>> {
        Box::pin(async move {
            let timer = s.upstream().timer().clone();
            token_request(s, &self.endpoint, || self.request(timer.now_unix())).await
        })
    }
}

/// The claims of a signed JWT: `iss`, optional `sub`, `aud` and `scope`; `iat`, `exp` (and
/// `nbf`, `jti` where asked for) are added when signing.
#[derive(Debug, Clone)]
pub struct Claims {
    pub iss: String,
    pub sub: Option<String>,
    pub aud: Option<String>,
    pub scope: Option<String>,
    /// `exp` = `iat` + this.
    pub lifetime: Duration,
    /// `iat` this far in the past (GitHub asks for 60 s against clock drift).
    pub backdate: Duration,
    /// A random `jti` (servers that reject a reused assertion need one).
    pub jti: bool,
    /// An `nbf` equal to `iat`.
    pub nbf: bool,
}

impl Claims {
    /// `iss` only, five minutes, with a `jti`.
    pub fn new(iss: impl Into<String>) -> Claims {
        Claims {
            iss: iss.into(),
            sub: None,
            aud: None,
            scope: None,
            lifetime: Duration::from_secs(300),
            backdate: Duration::ZERO,
            jti: true,
            nbf: false,
        }
    }
    pub fn subject(mut self, sub: impl Into<String>) -> Claims {
        self.sub = Some(sub.into());
        self
    }
    pub fn audience(mut self, aud: impl Into<String>) -> Claims {
        self.aud = Some(aud.into());
        self
    }
    pub fn scope(mut self, scope: impl Into<String>) -> Claims {
        self.scope = Some(scope.into());
        self
    }
    pub fn lifetime(mut self, d: Duration) -> Claims {
        self.lifetime = d;
        self
    }
    pub fn backdate(mut self, d: Duration) -> Claims {
        self.backdate = d;
        self
    }
    pub fn without_jti(mut self) -> Claims {
        self.jti = false;
        self
    }
    pub fn with_nbf(mut self) -> Claims {
        self.nbf = true;
        self
    }
}

/// Signs JWTs with a private key: RS256 (or PS256) for RSA keys, ES256/ES384 for EC keys, from
/// PEM (PKCS#1 / PKCS#8 RSA, PKCS#8 / SEC1 EC) or a JWK. Optional header fields: `kid`,
/// `typ`, and the certificate thumbprint `x5t#S256`.
pub struct JwtSigner {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
    typ: Option<String>,
    x5t_s256: Option<String>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct ClaimSet<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

impl JwtSigner {
    /// From a private key. `kid` overrides a JWK's own `kid`. The key is tried once here, so a
    /// bad key is a configuration error, not a failed poll.
    pub fn from_key(private_key: &Secret, kid: Option<String>) -> Result<JwtSigner, UpstreamError> {
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
            let s = JwtSigner {
                key,
                alg,
                kid: kid.clone().or_else(|| jwk_kid.clone()),
                typ: None,
                x5t_s256: None,
            };
            if s.sign(&Claims::new("probe"), 0.0).is_ok() {
                signer = Some(s);
                break;
            }
        }
        signer.ok_or_else(|| {
            UpstreamError::Token(
                "private key could not be used for signing (expected an RSA or EC P-256/P-384 private key)".into(),
            )
        })
    }

    /// An RSA key signing with RSASSA-PSS (PS256), as the Microsoft identity platform's
    /// certificate credentials ask.
    pub fn rsa_pss(mut self) -> Result<JwtSigner, UpstreamError> {
        if !matches!(self.alg, Algorithm::RS256 | Algorithm::PS256) {
            return Err(UpstreamError::Token(
                "private key is not an RSA private key".into(),
            ));
        }
        self.alg = Algorithm::PS256;
        Ok(self)
    }
    /// Adds `typ` to the header.
    pub fn with_typ(mut self, typ: &str) -> JwtSigner {
        self.typ = Some(typ.into());
        self
    }
    /// Adds the certificate's `x5t#S256` thumbprint to the header.
    pub fn with_certificate(mut self, certificate_pem: &str) -> Result<JwtSigner, UpstreamError> {
        self.x5t_s256 = Some(x5t_s256(certificate_pem).map_err(UpstreamError::Token)?);
        Ok(self)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Signs `claims` issued at `now_unix`.
    pub fn sign(&self, claims: &Claims, now_unix: f64) -> Result<String, UpstreamError> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        header.typ = self.typ.clone().or(header.typ);
        header.x5t_s256 = self.x5t_s256.clone();
        let iat = (now_unix.max(0.0) as u64).saturating_sub(claims.backdate.as_secs());
        let set = ClaimSet {
            iss: &claims.iss,
            sub: claims.sub.as_deref(),
            aud: claims.aud.as_deref(),
            scope: claims.scope.as_deref(),
            iat,
            nbf: claims.nbf.then_some(iat),
            exp: now_unix.max(0.0) as u64 + claims.lifetime.as_secs(),
            jti: claims
                .jti
                .then(|| format!("{:032x}", rand::random::<u128>())),
        };
        jsonwebtoken::encode(&header, &set, &self.key)
            .map_err(|e| UpstreamError::Token(format!("cannot sign the assertion: {e}")))
    }
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
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
    fn claims_carry_what_each_grant_needs() {
        let key = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/entra/test-key.pem"
        ))
        .unwrap();
        let s = JwtSigner::from_key(&Secret::new(key), Some("k1".into())).unwrap();
        assert_eq!(s.algorithm(), Algorithm::RS256);
        let c = Claims::new("svc@p.iam.gserviceaccount.com")
            .subject("admin@example.com")
            .audience("https://oauth2.googleapis.com/token")
            .scope("a b")
            .lifetime(Duration::from_secs(3600))
            .backdate(Duration::from_secs(60))
            .without_jti();
        let jwt = s.sign(&c, 1_000_000.0).unwrap();
        let h = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(h.kid.as_deref(), Some("k1"));
        let payload = jwt.split('.').nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(v["iss"], "svc@p.iam.gserviceaccount.com");
        assert_eq!(v["sub"], "admin@example.com");
        assert_eq!(v["scope"], "a b");
        assert_eq!(v["iat"], 999_940);
        assert_eq!(v["exp"], 1_003_600);
        assert!(v.get("jti").is_none() && v.get("nbf").is_none());
        let pss = s.rsa_pss().unwrap();
        assert_eq!(pss.algorithm(), Algorithm::PS256);
    }

    #[test]
    fn garbage_keys_are_config_errors() {
        for k in [
            "nope",
            "{\"kty\":\"oct\"}",
            "{\"kty\":\"RSA\",\"n\":\"AQAB\"}",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ] {
            let e = JwtSigner::from_key(&Secret::new(k), None).unwrap_err();
            assert!(matches!(e, UpstreamError::Token(_)), "{k}: {e}");
            assert!(!e.to_string().contains("AAAA"));
        }
    }
}
