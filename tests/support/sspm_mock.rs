//! An in-process mock of the SASE authentication service and the SaaS Security (SSPM)
//! Identity API (axum on 127.0.0.1:0) with the pan.dev schemas: `{total, items}` lists with
//! `limit`/`page`, Basic-auth client credentials with `scope=tsg_id:…`, 15-minute tokens.
//! Paging numbering, limit caps, token revocation and scripted faults are switches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::mock::MockServer;

/// How the mock numbers `page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// page 0 is the first page.
    ZeroBased,
    /// page 1 is the first page; page 0 is read as page 1.
    OneBasedClamp,
    /// page 1 is the first page; page 0 is a 400.
    OneBasedReject,
    /// page 1 is the first page; page 0 is an empty page (with the right total).
    OneBasedEmpty,
    /// `page` is ignored: always the first page.
    IgnoresPage,
}

/// A scripted failure, used once by the first request whose path contains its pattern.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Status with an optional `Retry-After` (seconds).
    Status(u16, Option<u64>),
    /// 200 with a body that is not JSON.
    Malformed,
}

pub struct Tenant {
    pub client_id: String,
    pub client_secret: String,
    pub tsg_id: String,
    pub instances: Vec<Value>,
    /// Accounts per `saasInstanceId`.
    pub accounts: HashMap<String, Vec<Value>>,
    pub idps: Vec<Value>,
    /// MFA activity per `idpId`.
    pub mfa: HashMap<String, Vec<Value>>,
    /// `FeatureState` per (`idpId`, feature); absent = 404.
    pub features: HashMap<(String, String), Value>,
    pub paging: Paging,
    /// Items per page at most, whatever `limit` says (a silent server-side cap).
    pub max_limit: usize,
    /// `limit` above this is a 400.
    pub reject_limit_above: Option<usize>,
    pub expires_in: u64,
    /// The API rejects the first token issued (401), as after a revocation.
    pub revoke_first_token: bool,
    /// The API rejects every token (no role on the TSG).
    pub reject_all_tokens: bool,
    pub faults: Vec<(String, Fault)>,
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            client_id: "sa-client-id@1234567890.iam.panserviceaccount.com".into(),
            client_secret: "mock-client-secret-value".into(),
            tsg_id: "1234567890".into(),
            instances: Vec::new(),
            accounts: HashMap::new(),
            idps: Vec::new(),
            mfa: HashMap::new(),
            features: HashMap::new(),
            paging: Paging::ZeroBased,
            max_limit: 1000,
            reject_limit_above: None,
            expires_in: 899,
            revoke_first_token: false,
            reject_all_tokens: false,
            faults: Vec::new(),
        }
    }
}

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
}

struct Shared {
    tenant: Tenant,
    faults: Mutex<Vec<(String, Fault)>>,
    tokens_issued: AtomicU64,
    api_requests: AtomicU64,
    log: Mutex<Vec<Seen>>,
    token_forms: Mutex<Vec<HashMap<String, String>>>,
}

pub struct MockSspm {
    pub base: String,
    shared: Arc<Shared>,
    /// The shared mock base: request log and scripted faults.
    pub server: MockServer,
}

impl MockSspm {
    pub async fn start(mut tenant: Tenant) -> MockSspm {
        let faults = std::mem::take(&mut tenant.faults);
        let shared = Arc::new(Shared {
            tenant,
            faults: Mutex::new(faults),
            tokens_issued: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            token_forms: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(&s, method, uri, headers, body) }
            },
        );
        let server = MockServer::start(app).await;
        server.set_token_path("/auth/v1/oauth2/access_token");
        MockSspm {
            base: server.url.clone(),
            shared,
            server,
        }
    }

    /// Requests to the token endpoint (issued or refused).
    pub fn token_requests(&self) -> usize {
        self.count("/auth/v1/oauth2/access_token")
    }
    pub fn tokens_issued(&self) -> u64 {
        self.shared.tokens_issued.load(Ordering::Relaxed)
    }
    pub fn api_requests(&self) -> u64 {
        self.shared.api_requests.load(Ordering::Relaxed)
    }
    pub fn log(&self) -> Vec<Seen> {
        self.shared.log.lock().unwrap().clone()
    }
    pub fn token_forms(&self) -> Vec<HashMap<String, String>> {
        self.shared.token_forms.lock().unwrap().clone()
    }
    /// Requests whose path ends with `suffix`.
    pub fn count(&self, suffix: &str) -> usize {
        self.log()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count()
    }
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, json!({"message": "Not Found"}))
}

fn handle(s: &Shared, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    s.log.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
    });
    if path == "/auth/v1/oauth2/access_token" {
        return token(s, &method, &headers, &body);
    }
    let Some(rest) = path.strip_prefix("/sspm/identity/v1") else {
        return not_found();
    };
    s.api_requests.fetch_add(1, Ordering::Relaxed);
    if method != Method::GET {
        // The exporter is read-only: any other method is a test failure (asserted via log).
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "read-only mock"}),
        );
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let valid = auth
        .strip_prefix("Bearer mock-access-token-")
        .and_then(|n| n.parse::<u64>().ok())
        .is_some_and(|n| n >= 1 && n <= s.tokens_issued.load(Ordering::Relaxed));
    if !valid
        || s.tenant.reject_all_tokens
        || (s.tenant.revoke_first_token && auth == "Bearer mock-access-token-1")
    {
        return error(
            StatusCode::UNAUTHORIZED,
            json!({"_errors": [{"code": "E016", "message": "Not Authenticated"}]}),
        );
    }
    if let Some(f) = take_fault(s, &path) {
        return match f {
            Fault::Status(code, after) => {
                let mut r = error(
                    StatusCode::from_u16(code).unwrap(),
                    json!({"message": format!("scripted {code}")}),
                );
                if let Some(a) = after {
                    r.headers_mut()
                        .insert("retry-after", a.to_string().parse().unwrap());
                }
                r
            }
            Fault::Malformed => (
                StatusCode::OK,
                [("content-type", "application/json")],
                "{\"total\": 3, \"items\": [{\"id\": ",
            )
                .into_response(),
        };
    }
    let seg: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let t = &s.tenant;
    match seg.as_slice() {
        ["saas_instances"] => list_all(&t.instances),
        ["saas_instances", id, "saas_accounts"] => match t.accounts.get(*id) {
            Some(items) => paged(s, &query, items),
            None => not_found(),
        },
        ["idps"] => list_all(&t.idps),
        ["idps", id, "mfa_activity"] => match t.mfa.get(*id) {
            Some(items) => paged(s, &query, items),
            None => not_found(),
        },
        ["idps", id, "feature_state"] => {
            let f = query.get("feature").cloned().unwrap_or_default();
            match t.features.get(&(id.to_string(), f)) {
                Some(v) => axum::Json(v.clone()).into_response(),
                None => not_found(),
            }
        }
        _ => not_found(),
    }
}

fn take_fault(s: &Shared, path: &str) -> Option<Fault> {
    let mut f = s.faults.lock().unwrap();
    let i = f.iter().position(|(p, _)| path.contains(p.as_str()))?;
    Some(f.remove(i).1)
}

fn list_all(items: &[Value]) -> Response {
    axum::Json(json!({"total": items.len(), "items": items})).into_response()
}

fn paged(s: &Shared, q: &HashMap<String, String>, items: &[Value]) -> Response {
    let t = &s.tenant;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(50);
    if t.reject_limit_above.is_some_and(|max| limit > max) {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"message": "limit too large"}),
        );
    }
    let limit = limit.clamp(1, t.max_limit.max(1));
    let page: i64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let index = match t.paging {
        Paging::ZeroBased => page,
        Paging::OneBasedClamp => page.max(1) - 1,
        Paging::OneBasedReject if page < 1 => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({"message": "page must be >= 1"}),
            )
        }
        Paging::OneBasedReject => page - 1,
        Paging::OneBasedEmpty if page < 1 => {
            return axum::Json(json!({"total": items.len(), "items": []})).into_response()
        }
        Paging::OneBasedEmpty => page - 1,
        Paging::IgnoresPage => 0,
    };
    let start = (index.max(0) as usize)
        .saturating_mul(limit)
        .min(items.len());
    let end = (start + limit).min(items.len());
    axum::Json(json!({"total": items.len(), "items": &items[start..end]})).into_response()
}

fn token(s: &Shared, method: &Method, headers: &HeaderMap, body: &[u8]) -> Response {
    let t = &s.tenant;
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    s.token_forms.lock().unwrap().push(form.clone());
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", t.client_id, t.client_secret))
    );
    let auth_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == basic);
    let form_ok = *method == Method::POST
        && headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
        && form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("scope") == Some(&format!("tsg_id:{}", t.tsg_id));
    if !form_ok {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": "bad grant or scope"}),
        );
    }
    if !auth_ok {
        return error(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
        );
    }
    let n = s.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
    axum::Json(json!({
        "access_token": format!("mock-access-token-{n}"),
        "token_type": "bearer",
        "expires_in": t.expires_in,
        "scope": format!("tsg_id:{}", t.tsg_id),
    }))
    .into_response()
}
