//! The Entra source's seam to the shared upstream layer (`crate::upstream`): the app-only
//! token (client secret, or a PS256 client assertion with `x5t#S256`) in a [`TokenCache`],
//! Graph `GET`s through a per-poll [`Session`] (retries, 429 `Retry-After`, budget,
//! concurrency, counting, redaction) and `@odata.nextLink` paging with a body-cursor [`Pager`].

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use super::config::{EntraAuth, EntraConfig};
use super::wire::Page;
use crate::config::UpstreamLimits;
use crate::upstream::{
    Auth, ClientAuth, ClientCredentials, JwtSigner, NextPage, Pager, Request, RequestStats,
    Response, Session, Timer, TokenCache, Upstream, UpstreamError, UpstreamOptions,
};

/// Scope of an app-only Graph token (`{graph}/.default`).
pub fn scope(graph_url: &str) -> String {
    format!("{}/.default", graph_url.trim_end_matches('/'))
}

/// Tokens are renewed this long before they expire (at most half their lifetime early).
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Refused for want of a licence or a permission (the data is unknown, the poll goes on):
/// 403, or a 400 naming a licence.
pub fn is_refusal(e: &UpstreamError) -> bool {
    match e.status() {
        Some(403) => true,
        Some(400) => e.provider_code().is_some_and(|c| {
            c.contains("Premium") || c.contains("License") || c.contains("NonPremium")
        }),
        _ => false,
    }
}

/// Graph's answer for a tenant without Entra ID P1/P2 (or a B2C tenant).
pub fn is_non_premium(e: &UpstreamError) -> bool {
    e.provider_code().is_some_and(|c| {
        c == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"
            || c.contains("PremiumLicense")
            || c.contains("NonPremium")
    })
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
        timer: Arc<dyn Timer>,
    ) -> Result<GraphClient, String> {
        let token_url = Url::parse(&format!(
            "{}/{}/oauth2/v2.0/token",
            cfg.authority_url.trim_end_matches('/'),
            cfg.tenant_id
        ))
        .map_err(|e| format!("invalid token URL: {e}"))?;
        let auth = match &cfg.auth {
            EntraAuth::ClientSecret(secret) => ClientAuth::SecretPost(secret.clone()),
            // Microsoft identity platform "certificate credentials": PS256, `typ` JWT,
            // `x5t#S256`; `aud` = the token endpoint, `iss` = `sub` = the client id. The key
            // and certificate are tried here, so a bad one is reported at start-up.
            EntraAuth::Certificate {
                certificate_pem,
                private_key,
            } => ClientAuth::PrivateKeyJwt(
                JwtSigner::from_key(private_key, None)
                    .and_then(JwtSigner::rsa_pss)
                    .and_then(|s| s.with_typ("JWT").with_certificate(certificate_pem))
                    .map_err(|e| format!("certificate credential: {e}"))?,
            ),
        };
        let with_assertion = matches!(auth, ClientAuth::PrivateKeyJwt(_));
        let mut cc = ClientCredentials::new(token_url, cfg.client_id.clone(), auth);
        cc.scope = Some(scope(&cfg.graph_url));
        if with_assertion {
            // Entra wants the client id beside an assertion too.
            cc.extra_params
                .push(("client_id".into(), cfg.client_id.clone()));
        }
        let tokens = Arc::new(TokenCache::new(Box::new(cc)).with_refresh_before(REFRESH_BEFORE));
        let mut opts = UpstreamOptions::new(name, limits);
        // Graph's directory APIs publish no remaining-budget headers: 429 + Retry-After only.
        opts.rate_limit_headers = None;
        opts.request_timeout = timeout.min(Duration::from_secs(120));
        let up = Upstream::with_timer(opts, Auth::OAuth(tokens.clone()), timer)
            .map_err(|e| e.to_string())?;
        if let EntraAuth::ClientSecret(s) = &cfg.auth {
            up.add_secret(s.expose());
        }
        Ok(GraphClient {
            up,
            tokens,
            graph_url: cfg.graph_url.clone(),
        })
    }

    /// Scrubs the client's known secrets from `text`.
    pub fn redact(&self, text: &str) -> String {
        self.up.redact(text)
    }

    pub fn graph_url(&self) -> &str {
        &self.graph_url
    }

    /// Token fetches so far (for tests and the benchmark).
    pub fn token_fetches(&self) -> u64 {
        self.tokens.fetch_count()
    }

    /// One poll's session: a fresh request budget, counting into `stats`.
    pub fn session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.session(stats)
    }

    /// The sign-in event stream's session: the same poll's request budget as the listing.
    pub fn continue_session<'a>(&'a self, stats: &'a RequestStats) -> Session<'a> {
        self.up.continue_session(stats)
    }

    fn request(&self, url: &str, endpoint: &str) -> Result<Request, UpstreamError> {
        let u = Url::parse(url)
            .map_err(|e| UpstreamError::Url(format!("{endpoint}: invalid URL: {e}")))?;
        Ok(Request::get(u, endpoint))
    }

    /// `GET url` as JSON; `endpoint` is the path template naming it in errors and logs.
    pub async fn get<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        url: &str,
        endpoint: &str,
    ) -> Result<T, UpstreamError> {
        let resp = s.send(self.request(url, endpoint)?).await?;
        resp.json()
    }

    /// Follows `@odata.nextLink` from `first`, handing each page's items to `f` (never
    /// collected here); returns the number of pages. `first_page` is a page already fetched
    /// from `first` (see `stream_users`), if any. `id` names an item, so that a page
    /// repeating items already listed under a fresh `$skiptoken` is caught as a loop.
    pub async fn for_each_page<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        first: &str,
        endpoint: &str,
        first_page: Option<Page<T>>,
        id: fn(&T) -> Option<&str>,
        mut f: impl FnMut(Vec<T>),
    ) -> Result<u32, UpstreamError> {
        let mut pages = self.pages(s, first, endpoint, first_page, id)?;
        while let Some(items) = pages.next(s).await? {
            f(items);
        }
        Ok(pages.count)
    }

    /// The pages of a listing one at a time (see [`GraphPages`]).
    pub fn pages<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        first: &str,
        endpoint: &str,
        first_page: Option<Page<T>>,
        id: fn(&T) -> Option<&str>,
    ) -> Result<GraphPages<T>, UpstreamError> {
        Ok(GraphPages {
            pager: Pager::cursor(self.request(first, endpoint)?, next_link).with_session(s),
            first_page,
            id,
            count: 0,
        })
    }

    /// Every item of a (small) collection.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        s: &Session<'_>,
        first: &str,
        endpoint: &str,
    ) -> Result<Vec<T>, UpstreamError> {
        let mut all = Vec::new();
        self.for_each_page(s, first, endpoint, None, |_| None, |items| all.extend(items))
            .await?;
        Ok(all)
    }
}

/// Where a page's `@odata.nextLink` points: absent or empty is the last page.
pub(super) fn graph_next(link: Option<String>) -> NextPage {
    match link.filter(|n| !n.is_empty()) {
        Some(n) => NextPage::Url(n),
        None => NextPage::Done,
    }
}

/// A page's `@odata.nextLink` (read as the page arrives; the items are skipped, not built).
fn next_link(r: &Response) -> Result<NextPage, UpstreamError> {
    #[derive(serde::Deserialize)]
    struct Cursor {
        #[serde(rename = "@odata.nextLink", default)]
        next_link: Option<String>,
    }
    Ok(graph_next(r.json::<Cursor>()?.next_link))
}

/// An `@odata.nextLink` listing read page by page. The shared pager reads each page's
/// `@odata.nextLink` as it arrives and requests the next page when this one is handed over
/// (prefetch), so it is on its way while the caller decodes and maps this one; a page that
/// repeats items already listed is refused before it is handed over.
pub struct GraphPages<T> {
    pager: Pager,
    /// A page already fetched from the first URL, handed over first.
    first_page: Option<Page<T>>,
    id: fn(&T) -> Option<&str>,
    /// Pages handed over so far.
    pub count: u32,
}

impl<T: DeserializeOwned> GraphPages<T> {
    /// The next page's items; `None` at the end of the listing.
    pub async fn next(&mut self, s: &Session<'_>) -> Result<Option<Vec<T>>, UpstreamError> {
        let page = match self.first_page.take() {
            Some(p) => {
                // Fetched by the caller: its link is named here.
                self.pager.note_items(p.value.iter().filter_map(self.id))?;
                self.pager.set_next(graph_next(p.next_link))?;
                p.value
            }
            None => match self.pager.next_page(s).await? {
                Some(resp) => {
                    let page = resp.json::<Page<T>>()?.value;
                    self.pager.note_items(page.iter().filter_map(self.id))?;
                    page
                }
                None => return Ok(None),
            },
        };
        self.count += 1;
        Ok(Some(page))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::ProviderError;

    fn e(status: u16, body: &str) -> UpstreamError {
        UpstreamError::Status {
            method: "GET".into(),
            endpoint: "/v1.0/users".into(),
            status,
            detail: Box::new(ProviderError::parse(body.as_bytes())),
        }
    }

    fn graph(status: u16, code: &str) -> UpstreamError {
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
        assert!(is_refusal(&np) && is_non_premium(&np));
        let denied = graph(403, "Authorization_RequestDenied");
        assert!(is_refusal(&denied) && !is_non_premium(&denied));
        assert!(is_refusal(&graph(400, "AadPremiumLicenseRequired")));
        assert!(!is_refusal(&graph(400, "BadRequest")));
        assert!(!is_refusal(&graph(500, "InternalServerError")));
        assert!(!is_refusal(&graph(401, "InvalidAuthenticationToken")));
        assert_eq!(denied.endpoint(), Some("/v1.0/users"));
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
    fn certificate_credentials_sign_ps256_with_the_thumbprint() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/entra");
        let cert = std::fs::read_to_string(format!("{dir}/test-cert.pem")).unwrap();
        let key = std::fs::read_to_string(format!("{dir}/test-key.pem")).unwrap();
        let signer = JwtSigner::from_key(&crate::config::Secret::new(key), None)
            .and_then(JwtSigner::rsa_pss)
            .and_then(|s| s.with_typ("JWT").with_certificate(&cert))
            .unwrap();
        let jwt = signer
            .sign(&crate::upstream::Claims::new("cid").audience("u"), 0.0)
            .unwrap();
        let h = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(h.alg, jsonwebtoken::Algorithm::PS256);
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        assert_eq!(
            h.x5t_s256,
            Some(crate::upstream::oauth::x5t_s256(&cert).unwrap())
        );
    }
}
