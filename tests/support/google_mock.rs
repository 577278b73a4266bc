//! An in-process mock of Google's OAuth 2.0 token endpoint and the Admin SDK Directory and
//! Reports APIs (axum on 127.0.0.1:0, behind the kit's `MockServer`). The token endpoint checks
//! the JWT-bearer assertion as Google does (RS256 signature against the service account's
//! public key, `kid`, `iss`, `sub`, `aud`, `scope`, `exp - iat <= 3600`) and answers with
//! Google's error bodies; the APIs serve the discovery documents' shapes with `pageToken`
//! paging, `{"error": {code, message, errors[]}}` bodies and per-API refusals. The login
//! audit serves either a large generated `login_success` listing (`activities`) or a live,
//! mutable stream of every login event (`stream`, for the sign-in event stream: tests add
//! late events between polls).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::mock::MockServer;

/// The scopes the exporter asks for (what a correctly configured delegation grants).
pub const SCOPES: [&str; 4] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.rolemanagement.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.reports.audit.readonly",
];

pub const USERS: &str = "/admin/directory/v1/users";
pub const LOGINS: &str = "/admin/reports/v1/activity/users/all/applications/login";
pub const TOKEN: &str = "/token";

/// The test service account's key (checked in; the public half verifies assertions).
pub const PRIVATE_KEY: &str = include_str!("test-service-app-key.pem");
pub const PUBLIC_KEY: &str = include_str!("test-service-app-key.pub.pem");

/// Items served in pages, produced one by one (a 100k-user account is never held in memory).
#[derive(Clone)]
pub struct Collection {
    pub len: usize,
    pub item: Arc<dyn Fn(usize) -> Value + Send + Sync>,
}

impl Collection {
    pub fn of(items: Vec<Value>) -> Collection {
        let items = Arc::new(items);
        Collection {
            len: items.len(),
            item: Arc::new(move |i| items[i].clone()),
        }
    }
    pub fn generated(len: usize, f: impl Fn(usize) -> Value + Send + Sync + 'static) -> Collection {
        Collection {
            len,
            item: Arc::new(f),
        }
    }
}

/// Login audit activities, newest first (as the Reports API lists them): `time(i)` must not
/// increase with `i`.
#[derive(Clone)]
pub struct Activities {
    pub items: Collection,
    pub time: Arc<dyn Fn(usize) -> i64 + Send + Sync>,
}

impl Activities {
    /// From activities in any order (sorted here, newest first).
    pub fn of(mut items: Vec<Value>) -> Activities {
        let t = |v: &Value| {
            time::OffsetDateTime::parse(
                v["id"]["time"].as_str().unwrap_or("1970-01-01T00:00:00Z"),
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| t.unix_timestamp())
            .unwrap_or(0)
        };
        items.sort_by_key(|v| std::cmp::Reverse(t(v)));
        let times: Arc<Vec<i64>> = Arc::new(items.iter().map(t).collect());
        Activities {
            items: Collection::of(items),
            time: Arc::new(move |i| times[i]),
        }
    }
    pub fn generated(
        len: usize,
        time: impl Fn(usize) -> i64 + Send + Sync + 'static,
        item: impl Fn(usize) -> Value + Send + Sync + 'static,
    ) -> Activities {
        Activities {
            items: Collection::generated(len, item),
            time: Arc::new(time),
        }
    }
}

/// Page sizes the mock serves at most (Google may return fewer items than `maxResults`).
#[derive(Debug, Clone, Copy)]
pub struct PageSizes {
    pub users: usize,
    pub roles: usize,
    pub assignments: usize,
    pub members: usize,
    pub activities: usize,
}

impl Default for PageSizes {
    fn default() -> Self {
        // The discovery documents' maxima.
        PageSizes {
            users: 500,
            roles: 100,
            assignments: 200,
            members: 200,
            activities: 1000,
        }
    }
}

/// An API the impersonated admin may be refused (403 "Not Authorized to access this
/// resource/api": no admin privilege for it, or the API not enabled in the project).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Users,
    Roles,
    Members,
    Reports,
}

pub struct Workspace {
    pub customer_id: String,
    pub client_email: String,
    pub client_id: String,
    pub private_key_id: String,
    /// Users the service account may act as (`sub`); others are "Invalid email or User ID".
    pub admins: Vec<String>,
    /// Scopes delegated to the service account's client id; `None` = no delegation at all.
    pub delegated: Option<Vec<String>>,
    pub users: Collection,
    pub roles: Vec<Value>,
    pub role_assignments: Vec<Value>,
    /// Group id → direct members (`type` USER, GROUP or CUSTOMER).
    pub groups: HashMap<String, Vec<Value>>,
    pub activities: Activities,
    /// Every login audit event, any order, any name (`activities.list` without `eventName`
    /// lists them all, newest first; with `eventName=login_success` the matching ones when
    /// this is not empty). Shared: a test appends between polls.
    pub stream: Arc<Mutex<Vec<Value>>>,
    /// The query string of every login audit request, in order.
    pub stream_queries: Arc<Mutex<Vec<String>>>,
    pub page: PageSizes,
    pub denied: HashSet<Api>,
    pub expires_in: u64,
    /// Each API request waits this long (a stand-in for Google's latency).
    pub latency: Duration,
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace {
            customer_id: "C03az79cb".into(),
            client_email: "ipe-reader@ipe-project.iam.gserviceaccount.com".into(),
            client_id: "104728303812361853412".into(),
            private_key_id: "9f3e0f1b7c2d4a5e8b6c1d2e3f4a5b6c7d8e9f00".into(),
            admins: vec!["admin@example.com".into()],
            delegated: Some(SCOPES.iter().map(|s| s.to_string()).collect()),
            users: Collection::of(Vec::new()),
            roles: Vec::new(),
            role_assignments: Vec::new(),
            groups: HashMap::new(),
            activities: Activities::of(Vec::new()),
            stream: Arc::new(Mutex::new(Vec::new())),
            stream_queries: Arc::new(Mutex::new(Vec::new())),
            page: PageSizes::default(),
            denied: HashSet::new(),
            expires_in: 3599,
            latency: Duration::ZERO,
        }
    }
}

impl Workspace {
    /// The service account's JSON key file, as Google Cloud hands it out.
    pub fn key_file(&self, token_uri: &str) -> String {
        json!({
            "type": "service_account",
            "project_id": "ipe-project",
            "private_key_id": self.private_key_id,
            "private_key": PRIVATE_KEY,
            "client_email": self.client_email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!("https://www.googleapis.com/robot/v1/metadata/x509/{}", self.client_email),
            "universe_domain": "googleapis.com"
        })
        .to_string()
    }
}

/// What the token endpoint read from one assertion.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub kid: Option<String>,
    pub iss: String,
    pub sub: String,
    pub scope: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

struct Shared {
    ws: Workspace,
    base: Mutex<String>,
    tokens: Mutex<HashSet<String>>,
    issued: AtomicU64,
    assertions: Mutex<Vec<Assertion>>,
}

pub struct MockGoogle {
    pub base: String,
    pub server: MockServer,
    shared: Arc<Shared>,
}

impl MockGoogle {
    pub async fn start(ws: Workspace) -> MockGoogle {
        let shared = Arc::new(Shared {
            ws,
            base: Mutex::new(String::new()),
            tokens: Mutex::new(HashSet::new()),
            issued: AtomicU64::new(0),
            assertions: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(&s, method, uri, headers, body).await }
            },
        );
        let server = MockServer::start(app).await;
        server.set_token_path(TOKEN);
        *shared.base.lock().unwrap() = server.url.clone();
        MockGoogle {
            base: server.url.clone(),
            server,
            shared,
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}{TOKEN}", self.base)
    }

    /// The assertions the token endpoint accepted or refused, in order.
    pub fn assertions(&self) -> Vec<Assertion> {
        self.shared.assertions.lock().unwrap().clone()
    }

    pub fn tokens_issued(&self) -> u64 {
        self.shared.issued.load(Ordering::Relaxed)
    }

    /// Requests to the APIs (not the token endpoint).
    pub fn api_requests(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|l| l.path.starts_with("/admin/"))
            .count()
    }
}

/// Google's JSON error envelope.
pub fn google_error(status: u16, reason: &str, domain: &str, message: &str) -> Value {
    json!({"error": {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}]
    }})
}

/// 403 `userRateLimitExceeded` (domain `usageLimits`), as the Directory API throttles.
pub fn throttled() -> Value {
    google_error(
        403,
        "userRateLimitExceeded",
        "usageLimits",
        "User Rate Limit Exceeded",
    )
}

/// 403 for an admin without the privilege (or an API not enabled).
pub fn not_authorized() -> Value {
    google_error(
        403,
        "forbidden",
        "global",
        "Not Authorized to access this resource/api",
    )
}

/// 401 for a missing or unknown access token.
pub fn unauthenticated() -> Value {
    json!({"error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
                    "location": "Authorization", "locationType": "header"}],
        "status": "UNAUTHENTICATED"
    }})
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn bad_request(message: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        google_error(400, "invalid", "global", message),
    )
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    reply(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn page_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

fn read_page_token(t: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// Reads `maxResults` (1..=max per the discovery document) and `pageToken`.
/// A bad parameter is a 400 with Google's body (the message is the `Err`).
fn paging(q: &HashMap<String, String>, max: usize) -> Result<(usize, usize), &'static str> {
    let size = match q.get("maxResults") {
        None => max.min(100),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => return Err("Invalid value for maxResults"),
        },
    };
    let offset = match q.get("pageToken") {
        None => 0,
        Some(t) => read_page_token(t).ok_or("Invalid page token")?,
    };
    Ok((size, offset))
}

/// One page of `len` items from `offset`, `page` items at most.
fn slice(len: usize, offset: usize, size: usize) -> (std::ops::Range<usize>, Option<String>) {
    let start = offset.min(len);
    let end = (start + size).min(len);
    let next = (end < len).then(|| page_token(end));
    (start..end, next)
}

async fn handle(s: &Shared, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let q: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    if path == TOKEN {
        return token(s, &method, &body);
    }
    if method != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            google_error(405, "methodNotAllowed", "global", "read-only mock"),
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if !bearer.is_some_and(|t| s.tokens.lock().unwrap().contains(&t)) {
        return reply(StatusCode::UNAUTHORIZED, unauthenticated());
    }
    if !s.ws.latency.is_zero() {
        tokio::time::sleep(s.ws.latency).await;
    }
    let ws = &s.ws;
    let deny = |api| ws.denied.contains(&api);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["admin", "directory", "v1", "users"] => {
            if deny(Api::Users) {
                return reply(StatusCode::FORBIDDEN, not_authorized());
            }
            match q.get("customer").map(String::as_str) {
                Some("my_customer") => {}
                Some(c) if c == ws.customer_id => {}
                Some(_) => return reply(StatusCode::FORBIDDEN, not_authorized()),
                None => return bad_request("Bad Request"),
            }
            let (size, offset) = match paging(&q, 500) {
                Ok(p) => p,
                Err(m) => return bad_request(m),
            };
            let (range, next) = slice(ws.users.len, offset, size.min(ws.page.users));
            let users: Vec<Value> = range.map(|i| (ws.users.item)(i)).collect();
            let mut page =
                json!({"kind": "admin#directory#users", "etag": "\"e1\"", "users": users});
            if let Some(n) = next {
                page["nextPageToken"] = json!(n);
            }
            reply(StatusCode::OK, page)
        }
        ["admin", "directory", "v1", "customer", c, kind @ ("roles" | "roleassignments")] => {
            if deny(Api::Roles) {
                return reply(StatusCode::FORBIDDEN, not_authorized());
            }
            if *c != "my_customer" && *c != ws.customer_id {
                return reply(StatusCode::FORBIDDEN, not_authorized());
            }
            let (items, max, cap, k) = if *kind == "roles" {
                (&ws.roles, 100, ws.page.roles, "admin#directory#roles")
            } else {
                (
                    &ws.role_assignments,
                    200,
                    ws.page.assignments,
                    "admin#directory#roleAssignments",
                )
            };
            let (size, offset) = match paging(&q, max) {
                Ok(p) => p,
                Err(m) => return bad_request(m),
            };
            let (range, next) = slice(items.len(), offset, size.min(cap));
            let mut page = json!({"kind": k, "etag": "\"e2\"", "items": items[range].to_vec()});
            if let Some(n) = next {
                page["nextPageToken"] = json!(n);
            }
            reply(StatusCode::OK, page)
        }
        ["admin", "directory", "v1", "groups", group, "members"] => {
            if deny(Api::Members) {
                return reply(StatusCode::FORBIDDEN, not_authorized());
            }
            let Some(direct) = ws.groups.get(*group) else {
                return reply(
                    StatusCode::NOT_FOUND,
                    google_error(404, "notFound", "global", "Resource Not Found: groupKey"),
                );
            };
            let derived = q.get("includeDerivedMembership").map(String::as_str) == Some("true");
            let members = if derived {
                let mut out = Vec::new();
                let mut seen = HashSet::new();
                expand(ws, direct, &mut out, &mut seen);
                out
            } else {
                direct.clone()
            };
            let (size, offset) = match paging(&q, 200) {
                Ok(p) => p,
                Err(m) => return bad_request(m),
            };
            let (range, next) = slice(members.len(), offset, size.min(ws.page.members));
            let mut page = json!({"kind": "admin#directory#members", "etag": "\"e3\"", "members": members[range].to_vec()});
            if let Some(n) = next {
                page["nextPageToken"] = json!(n);
            }
            reply(StatusCode::OK, page)
        }
        ["admin", "reports", "v1", "activity", "users", "all", "applications", "login"] => {
            if deny(Api::Reports) {
                return reply(StatusCode::FORBIDDEN, not_authorized());
            }
            if let Some(c) = q.get("customerId") {
                if *c != ws.customer_id {
                    return reply(StatusCode::FORBIDDEN, not_authorized());
                }
            }
            let when = |k: &str| -> Result<Option<i64>, String> {
                match q.get(k) {
                    None => Ok(None),
                    Some(v) => time::OffsetDateTime::parse(
                        v,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map(|t| Some(t.unix_timestamp()))
                    .map_err(|_| format!("Invalid value for {k}")),
                }
            };
            let (start, end) = match (when("startTime"), when("endTime")) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(m), _) | (_, Err(m)) => return bad_request(&m),
            };
            ws.stream_queries
                .lock()
                .unwrap()
                .push(uri.query().unwrap_or_default().to_string());
            let name = q.get("eventName").map(String::as_str);
            if name.is_some_and(|n| n != "login_success") {
                return bad_request("the mock serves eventName=login_success or every event");
            }
            if let (Some(st), Some(e)) = (start, end) {
                if st >= e {
                    return bad_request("Start time must be less than end time");
                }
            }
            let (size, offset) = match paging(&q, 1000) {
                Ok(p) => p,
                Err(m) => return bad_request(m),
            };
            let live = ws.stream.lock().unwrap().clone();
            if name.is_none() || !live.is_empty() {
                // The live stream, newest first, in [startTime, endTime).
                let t = |v: &Value| {
                    v["id"]["time"]
                        .as_str()
                        .and_then(|x| {
                            time::OffsetDateTime::parse(
                                x,
                                &time::format_description::well_known::Rfc3339,
                            )
                            .ok()
                        })
                        .map(|t| t.unix_timestamp())
                        .unwrap_or(0)
                };
                let mut items: Vec<Value> = live
                    .into_iter()
                    .filter(|v| {
                        let x = t(v);
                        start.is_none_or(|st| x >= st) && end.is_none_or(|e| x < e)
                    })
                    .filter(|v| {
                        name.is_none_or(|n| {
                            v["events"]
                                .as_array()
                                .is_some_and(|es| es.iter().any(|e| e["name"] == n))
                        })
                    })
                    .collect();
                items.sort_by_key(|v| std::cmp::Reverse(t(v)));
                let (range, next) = slice(items.len(), offset, size.min(ws.page.activities));
                let mut page = json!({"kind": "admin#reports#activities", "etag": "\"e5\"",
                                      "items": items[range].to_vec()});
                if let Some(n) = next {
                    page["nextPageToken"] = json!(n);
                }
                return reply(StatusCode::OK, page);
            }
            // Newest first: the matching events are a contiguous run of indexes.
            let a = &ws.activities;
            let n = a.items.len;
            let lo = match end {
                Some(e) => partition(n, |i| (a.time)(i) >= e),
                None => 0,
            };
            let hi = match start {
                Some(st) => partition(n, |i| (a.time)(i) >= st),
                None => n,
            }
            .max(lo);
            let (range, next) = slice(hi - lo, offset, size.min(ws.page.activities));
            let items: Vec<Value> = range.map(|i| (a.items.item)(lo + i)).collect();
            let mut page =
                json!({"kind": "admin#reports#activities", "etag": "\"e4\"", "items": items});
            if let Some(n) = next {
                page["nextPageToken"] = json!(n);
            }
            reply(StatusCode::OK, page)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            google_error(404, "notFound", "global", "Not Found"),
        ),
    }
}

/// The first index in `0..n` for which `pred` is false (`pred` true then false).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Derived membership: nested groups' members too (each group once).
fn expand(ws: &Workspace, members: &[Value], out: &mut Vec<Value>, seen: &mut HashSet<String>) {
    for m in members {
        out.push(m.clone());
        if m["type"] == "GROUP" {
            let id = m["id"].as_str().unwrap_or_default().to_string();
            if seen.insert(id.clone()) {
                if let Some(inner) = ws.groups.get(&id) {
                    expand(ws, inner, out, seen);
                }
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct ClaimSet {
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    aud: String,
    iat: i64,
    exp: i64,
}

/// `POST /token` with the JWT-bearer grant.
fn token(s: &Shared, method: &Method, body: &[u8]) -> Response {
    if method != Method::POST {
        return oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "POST only",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        );
    }
    let Some(jwt) = form.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let header = match jsonwebtoken::decode_header(jwt) {
        Ok(h) => h,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid JWT: the assertion is not a JWT.",
            )
        }
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_aud = false;
    v.validate_exp = false;
    v.required_spec_claims = HashSet::new();
    let claims = match jsonwebtoken::decode::<ClaimSet>(jwt, &key, &v) {
        Ok(d) => d.claims,
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid JWT Signature.",
            )
        }
    };
    s.assertions.lock().unwrap().push(Assertion {
        kid: header.kid.clone(),
        iss: claims.iss.clone(),
        sub: claims.sub.clone().unwrap_or_default(),
        scope: claims.scope.clone().unwrap_or_default(),
        aud: claims.aud.clone(),
        iat: claims.iat,
        exp: claims.exp,
    });
    let ws = &s.ws;
    if header.alg != jsonwebtoken::Algorithm::RS256
        || header.kid.as_deref() != Some(ws.private_key_id.as_str())
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT Signature.",
        );
    }
    let base = s.base.lock().unwrap().clone();
    if claims.aud != format!("{base}{TOKEN}") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        );
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if claims.exp - claims.iat > 3600
        || claims.exp <= claims.iat
        || claims.iat > now + 300
        || claims.exp < now
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        );
    }
    if claims.iss != ws.client_email {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    let requested: Vec<&str> = claims
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty())
        .collect();
    let delegated_all = ws.delegated.as_ref().is_some_and(|d| {
        !requested.is_empty() && requested.iter().all(|r| d.iter().any(|x| x == r))
    });
    if !delegated_all {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    match claims.sub.as_deref() {
        Some(sub) if ws.admins.iter().any(|a| a.eq_ignore_ascii_case(sub)) => {}
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid email or User ID",
            )
        }
    }
    let n = s.issued.fetch_add(1, Ordering::Relaxed);
    let t = format!("ya29.mock-access-token-{n}-{}", rand_suffix(n));
    s.tokens.lock().unwrap().insert(t.clone());
    reply(
        StatusCode::OK,
        json!({"access_token": t, "expires_in": ws.expires_in, "token_type": "Bearer"}),
    )
}

fn rand_suffix(n: u64) -> String {
    format!(
        "{:016x}",
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_DEAD_BEEF
    )
}
