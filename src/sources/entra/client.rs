//! The Entra source's seam to the shared upstream layer (`crate::upstream`): the app-only
//! token (client secret, or a PS256 client assertion with `x5t#S256`) in a [`TokenCache`],
//! Graph `GET`s through a per-poll [`Session`] (retries, 429 `Retry-After`, budget,
//! concurrency, counting, redaction) and `@odata.nextLink` paging with a body-cursor [`Pager`].

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use url::Url;

use super::graph::Page;
use crate::config::{EntraAuth, EntraConfig, UpstreamLimits};
use crate::sources::SourceStats;
use crate::upstream::{
    AccessToken, Auth, ClientAuth, ClientCredentials, NextPage, Pager, Request, Session,
    TokenCache, TokenSource, Upstream, UpstreamError, UpstreamOptions,
};

/// Scope of an app-only Graph token (`{graph}/.default`).
pub fn scope(graph_url: &str) -> String {
    format!("{}/.default", graph_url.trim_end_matches('/'))
}

/// Tokens are renewed this long before they expire (at most half their lifetime early).
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// A failed Graph read, classified the way the Entra source needs: refused for want of a
/// licence or permission (the data is unknown, the poll goes on) or failed (the poll fails).
#[derive(Debug, Clone)]
pub struct FetchError(pub UpstreamError);

impl From<UpstreamError> for FetchError {
    fn from(e: UpstreamError) -> FetchError {
        FetchError(e)
    }
}

impl FetchError {
    pub fn status(&self) -> Option<u16> {
        self.0.status()
    }
    /// Graph's `error.code` (or the token endpoint's `error`).
    pub fn code(&self) -> Option<&str> {
        self.0.provider_code()
    }
    /// The endpoint (path template) the error is about.
    pub fn what(&self) -> &str {
        match &self.0 {
            UpstreamError::Status { endpoint, .. }
            | UpstreamError::Transport { endpoint, .. }
            | UpstreamError::TooLarge { endpoint, .. }
            | UpstreamError::Decode { endpoint, .. }
            | UpstreamError::PaginationLoop { endpoint, .. }
            | UpstreamError::TooManyPages { endpoint, .. }
            | UpstreamError::ForeignLink { endpoint, .. } => endpoint,
            _ => "",
        }
    }
    /// Refused for want of a licence or a permission: 403, or a 400 naming a licence.
    pub fn is_refusal(&self) -> bool {
        match self.status() {
            Some(403) => true,
            Some(400) => self.code().is_some_and(|c| {
                c.contains("Premium") || c.contains("License") || c.contains("NonPremium")
            }),
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
        self.0.fmt(f)
    }
}

/// The certificate credential: a fresh PS256 assertion with `x5t#S256` per token request,
/// sent through the upstream session (so it is counted, retried and budgeted).
struct CertificateGrant {
    token_url: Url,
    endpoint: String,
    client_id: String,
    scope: String,
    certificate_pem: String,
    private_key_pem: crate::config::Secret,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<f64>,
}

impl CertificateGrant {
    fn request(&self) -> Result<Request, UpstreamError> {
        let jwt = client_assertion(
            &self.client_id,
            self.token_url.as_str(),
            &self.certificate_pem,
            self.private_key_pem.expose(),
        )
        .map_err(UpstreamError::Token)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("scope", self.scope.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ];
        Ok(
            Request::post_form(self.token_url.clone(), &self.endpoint, &form)
                .without_auth()
                .retry_transient(true),
        )
    }
}

impl TokenSource for CertificateGrant {
    fn fetch<'a>(
        &'a self,
        s: &'a Session<'_>,
    ) -> BoxFuture<'a, Result<AccessToken, UpstreamError>> {
        Box::pin(async move {
            let resp = s.send_with(|| self.request()).await?;
            let t: TokenResponse = resp.json()?;
            let now = s.upstream().timer().now_unix();
            let lifetime = t
                .expires_in
                .filter(|e| e.is_finite() && *e > 0.0)
                .unwrap_or(300.0)
                .min(86_400.0);
            Ok(AccessToken {
                value: crate::config::Secret::new(t.access_token),
                token_type: t.token_type.unwrap_or_else(|| "Bearer".into()),
                issued_at_unix: now,
                expires_at_unix: now + lifetime,
                scope: None,
            })
        })
    }
}

/// A long-lived Graph client for one source.
pub struct GraphClient {
    up: Upstream,
    tokens: Arc<TokenCache>,
    graph_url: String,
}

impl GraphClient {
    pub fn new(
        cfg: &EntraConfig,
        name: &str,
        timeout: Duration,
        limits: UpstreamLimits,
    ) -> Result<GraphClient, String> {
        let token_url = Url::parse(&format!(
            "{}/{}/oauth2/v2.0/token",
            cfg.authority_url.trim_end_matches('/'),
            cfg.tenant_id
        ))
        .map_err(|e| format!("invalid token URL: {e}"))?;
        let scope = scope(&cfg.graph_url);
        let source: Box<dyn TokenSource> = match &cfg.auth {
            EntraAuth::ClientSecret(secret) => {
                let mut cc = ClientCredentials::new(
                    token_url,
                    cfg.client_id.clone(),
                    ClientAuth::SecretPost(secret.clone()),
                );
                cc.scope = Some(scope);
                Box::new(cc)
            }
            EntraAuth::Certificate {
                certificate_pem,
                private_key,
            } => {
                // Checked once here, so a bad key or certificate is reported at start-up.
                client_assertion(
                    &cfg.client_id,
                    token_url.as_str(),
                    certificate_pem,
                    private_key.expose(),
                )?;
                Box::new(CertificateGrant {
                    endpoint: token_url.path().to_string(),
                    token_url,
                    client_id: cfg.client_id.clone(),
                    scope,
                    certificate_pem: certificate_pem.clone(),
                    private_key_pem: private_key.clone(),
                })
            }
        };
        let tokens = Arc::new(TokenCache::new(source).with_refresh_before(REFRESH_BEFORE));
        let mut opts = UpstreamOptions::new(name, limits);
        // Graph's directory APIs publish no remaining-budget headers: 429 + Retry-After only.
        opts.rate_limit_headers = None;
        opts.request_timeout = timeout.min(Duration::from_secs(120));
        let up = Upstream::new(opts, Auth::OAuth(tokens.clone())).map_err(|e| e.to_string())?;
        if let EntraAuth::ClientSecret(s) = &cfg.auth {
            up.add_secret(s.expose());
        }
        Ok(GraphClient {
            up,
            tokens,
            graph_url: cfg.graph_url.clone(),
        })
    }

    pub fn graph_url(&self) -> &str {
        &self.graph_url
    }

    /// Token fetches so far (for tests and the benchmark).
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    /// One poll's session: a fresh request budget, counting into `stats`.
    pub fn session<'a>(&'a self, stats: &'a SourceStats) -> Session<'a> {
        self.up.session(stats)
    }

    fn request(&self, url: &str, endpoint: &str) -> Result<Request, FetchError> {
        let u = Url::parse(url)
            .map_err(|e| FetchError(UpstreamError::Url(format!("{endpoint}: invalid URL: {e}"))))?;
        Ok(Request::get(u, endpoint))
    }

    /// `GET url` as JSON; `endpoint` is the path template naming it in errors and logs.
    pub async fn get<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        url: &str,
        endpoint: &str,
    ) -> Result<T, FetchError> {
        let resp = s.send(self.request(url, endpoint)?).await?;
        Ok(resp.json()?)
    }

    /// Follows `@odata.nextLink` from `first`, handing each page's items to `f` (never
    /// collected here); returns the number of pages. `first_page` is a page already fetched
    /// from `first` (see `stream_users`), if any.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        first: &str,
        endpoint: &str,
        first_page: Option<Page<T>>,
        mut f: impl FnMut(Vec<T>),
    ) -> Result<u32, FetchError> {
        let mut pager = Pager::body(self.request(first, endpoint)?);
        let mut pages = 0;
        if let Some(p) = first_page {
            // Already fetched from `first`: continue from its nextLink.
            pages += 1;
            let next = p.next_link.filter(|n| !n.is_empty());
            f(p.value);
            pager.set_next(match next {
                Some(n) => NextPage::Url(n),
                None => NextPage::Done,
            })?;
        }
        while let Some(resp) = pager.next_page(s).await? {
            let page: Page<T> = resp.json()?;
            pages += 1;
            let next = page.next_link.filter(|n| !n.is_empty());
            f(page.value);
            pager.set_next(match next {
                Some(n) => NextPage::Url(n),
                None => NextPage::Done,
            })?;
        }
        Ok(pages)
    }

    /// Every item of a (small) collection.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        first: &str,
        endpoint: &str,
    ) -> Result<Vec<T>, FetchError> {
        let mut all = Vec::new();
        self.for_each_page(s, first, endpoint, None, |items| all.extend(items))
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
    use crate::upstream::ProviderError;

    fn e(status: u16, body: &str) -> FetchError {
        FetchError(UpstreamError::Status {
            method: "GET".into(),
            endpoint: "/v1.0/users".into(),
            status,
            detail: Box::new(ProviderError::parse(body.as_bytes())),
        })
    }

    fn graph(status: u16, code: &str) -> FetchError {
        e(
            status,
            &format!(
                r#"{{"error":{{"code":"{code}","message":"m","innerError":{{"request-id":"rid-1"}}}}}}"#
            ),
        )
    }

    #[test]
    fn refusals_and_failures_are_told_apart() {
        let np = graph(403, "Authentication_RequestFromNonPremiumTenantOrB2CTenant");
        assert!(np.is_refusal() && np.is_non_premium());
        let denied = graph(403, "Authorization_RequestDenied");
        assert!(denied.is_refusal() && !denied.is_non_premium());
        assert!(graph(400, "AadPremiumLicenseRequired").is_refusal());
        assert!(!graph(400, "BadRequest").is_refusal());
        assert!(!graph(500, "InternalServerError").is_refusal());
        assert!(!graph(401, "InvalidAuthenticationToken").is_refusal());
        assert_eq!(denied.what(), "/v1.0/users");
    }

    #[test]
    fn error_text_names_code_message_and_request_id() {
        let e = e(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2026-11-28T12:00:00","request-id":"rid-1","client-request-id":"c"}}}"#,
        );
        assert_eq!(
            e.to_string(),
            r#"GET /v1.0/users: HTTP 403 Authorization_RequestDenied "Insufficient privileges to complete the operation." (request-id rid-1)"#
        );
    }

    #[test]
    fn scope_is_graph_default() {
        assert_eq!(
            scope("https://graph.microsoft.com"),
            "https://graph.microsoft.com/.default"
        );
    }

    #[test]
    fn assertion_has_ps256_and_x5t_s256() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/entra");
        let cert = std::fs::read_to_string(format!("{dir}/test-cert.pem")).unwrap();
        let key = std::fs::read_to_string(format!("{dir}/test-key.pem")).unwrap();
        let jwt = client_assertion(
            "cid",
            "https://login.example/t/oauth2/v2.0/token",
            &cert,
            &key,
        )
        .unwrap();
        let h = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(h.alg, jsonwebtoken::Algorithm::PS256);
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        assert_eq!(h.x5t_s256, Some(x5t_s256(&cert).unwrap()));
        assert!(client_assertion("cid", "u", &cert, "not a key").is_err());
    }
}
