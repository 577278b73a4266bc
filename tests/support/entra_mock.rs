//! An in-process mock of Microsoft Graph v1.0 and the identity platform's token endpoint
//! (axum on 127.0.0.1:0), serving the documented shapes: `@odata.nextLink` paging with
//! `$skiptoken`, `{"error": {code, message, innerError}}` bodies, 429/503 + `Retry-After`.
//! Behaviours (non-premium tenant, missing permissions, throttling) are switches.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::mock::MockServer;

/// A collection served in pages, produced item by item (a 200k-user tenant is generated on
/// the fly, never held in memory).
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
    fn empty() -> Collection {
        Collection::of(Vec::new())
    }
}

/// Permissions the mock app registration may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// AuditLog.Read.All: `signInActivity` and the registration report.
    AuditLog,
    /// RoleManagement.Read.Directory.
    Roles,
    /// Application.Read.All.
    Applications,
    /// Policy.Read.All.
    Policy,
    /// RoleEligibilitySchedule.Read.Directory (PIM).
    Eligibility,
    /// GroupMember.Read.All (members of role-assignable groups).
    GroupMembers,
}

pub struct Tenant {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// PEM public key checking certificate assertions, with the expected `x5t#S256`.
    pub assertion_key: Option<(String, String)>,
    pub users: Collection,
    pub registration: Collection,
    pub role_definitions: Vec<Value>,
    pub role_assignments: Vec<Value>,
    pub role_eligibility: Vec<Value>,
    pub group_members: HashMap<String, Vec<Value>>,
    pub applications: Vec<Value>,
    pub service_principals: Vec<Value>,
    pub ca_policies: Vec<Value>,
    pub security_defaults: bool,
    /// No Entra ID P1/P2: `signInActivity`, the registration report, conditional access and
    /// PIM answer 403 `Authentication_RequestFromNonPremiumTenantOrB2CTenant`.
    pub non_premium: bool,
    pub missing: HashSet<Permission>,
    pub page_size: usize,
    /// The registration report's own page size (Graph chooses it; `$top` is not documented).
    pub registration_page_size: usize,
    /// Answer these (1-based) Graph request numbers with 429 (`Retry-After` seconds).
    pub throttle: HashMap<u64, (u16, u64)>,
    /// Added to every Graph answer (bench: a per-request latency floor).
    pub latency: Duration,
    /// Keep every listing page once built and serve it from memory after that (bench: a
    /// warm-up poll fills it, so the mock's own JSON building, on the client's cores, is not
    /// on the measured polls' chain of pages, as a real Graph's work is inside its latency).
    pub prebuilt_pages: bool,
    /// Registration report pages after the first are answered only once the user listing's
    /// last page was asked for: a client reading the report before the users waits for ever.
    pub registration_after_users: bool,
    /// Token lifetime in seconds.
    pub expires_in: u64,
    /// Graph rejects the first token issued (401), as after a revocation.
    pub revoke_first_token: bool,
    /// The sign-in log (`/auditLogs/signIns`); tests append to it between polls.
    pub sign_ins: Arc<Mutex<Vec<Value>>>,
    /// The query string of every sign-in log request.
    pub sign_in_queries: Arc<Mutex<Vec<String>>>,
    pub sign_in_page_size: usize,
    /// `$skiptoken`s the sign-in log refuses (400, an expired token).
    pub sign_in_expired: Arc<Mutex<HashSet<String>>>,
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            client_secret: "mock-secret-value".into(),
            assertion_key: None,
            users: Collection::empty(),
            registration: Collection::empty(),
            role_definitions: default_role_definitions(),
            role_assignments: Vec::new(),
            role_eligibility: Vec::new(),
            group_members: HashMap::new(),
            applications: Vec::new(),
            service_principals: Vec::new(),
            ca_policies: Vec::new(),
            security_defaults: false,
            non_premium: false,
            missing: HashSet::new(),
            page_size: 999,
            registration_page_size: 999,
            throttle: HashMap::new(),
            latency: Duration::ZERO,
            prebuilt_pages: false,
            registration_after_users: false,
            expires_in: 3599,
            revoke_first_token: false,
            sign_ins: Arc::new(Mutex::new(Vec::new())),
            sign_in_queries: Arc::new(Mutex::new(Vec::new())),
            sign_in_page_size: 1000,
            sign_in_expired: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

pub const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
pub const USER_ADMIN: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
pub const PRIV_ROLE_ADMIN: &str = "e8611ab8-c189-46e8-94e1-60213ab1f814";

pub fn default_role_definitions() -> Vec<Value> {
    [
        (GLOBAL_ADMIN, "Global Administrator"),
        (USER_ADMIN, "User Administrator"),
        (PRIV_ROLE_ADMIN, "Privileged Role Administrator"),
    ]
    .iter()
    .map(|(id, name)| {
        json!({"id": id, "templateId": id, "displayName": name, "isBuiltIn": true, "isEnabled": true})
    })
    .collect()
}

/// What the mock saw.
#[derive(Default)]
pub struct Seen {
    pub graph_requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub paths: Mutex<Vec<String>>,
    pub token_forms: Mutex<Vec<HashMap<String, String>>>,
    /// Per path: pages built and the time spent building them (generating the items and
    /// serialising the page; the injected latency not included). The benchmark reports it:
    /// on the same cores as the client, it is server time on every page's critical path.
    pub page_builds: Mutex<HashMap<String, (u64, Duration)>>,
    /// The user listing's last page was asked for (see `Tenant::registration_after_users`).
    pub users_listed: std::sync::atomic::AtomicBool,
    /// Listing pages by path and query (see `Tenant::prebuilt_pages`).
    page_cache: Mutex<HashMap<String, axum::body::Bytes>>,
    users_listed_now: tokio::sync::Notify,
}

struct Shared {
    tenant: Tenant,
    seen: Arc<Seen>,
    base: String,
}

pub struct MockGraph {
    pub base: String,
    pub seen: Arc<Seen>,
    /// The shared mock base: request log and scripted faults.
    pub server: MockServer,
}

impl MockGraph {
    pub async fn start(tenant: Tenant) -> MockGraph {
        let seen = Arc::new(Seen::default());
        let s2 = seen.clone();
        let token_path = format!("/{}/oauth2/v2.0/token", tenant.tenant_id);
        let server = MockServer::start_with(move |base| {
            let shared = Arc::new(Shared {
                tenant,
                seen: s2,
                base: base.to_string(),
            });
            Router::new()
                .route("/{tenant}/oauth2/v2.0/token", post(token))
                .route("/v1.0/users", get(users))
                .route(
                    "/v1.0/reports/authenticationMethods/userRegistrationDetails",
                    get(registration),
                )
                .route(
                    "/v1.0/roleManagement/directory/roleDefinitions",
                    get(role_definitions),
                )
                .route(
                    "/v1.0/roleManagement/directory/roleAssignments",
                    get(role_assignments),
                )
                .route(
                    "/v1.0/roleManagement/directory/roleEligibilitySchedules",
                    get(role_eligibility),
                )
                .route("/v1.0/groups/{id}/transitiveMembers", get(group_members))
                .route("/v1.0/auditLogs/signIns", get(sign_ins))
                .route("/v1.0/applications", get(applications))
                .route("/v1.0/servicePrincipals", get(service_principals))
                .route(
                    "/v1.0/identity/conditionalAccess/policies",
                    get(ca_policies),
                )
                .route(
                    "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy",
                    get(security_defaults),
                )
                .with_state(shared)
        })
        .await;
        server.set_token_path(&token_path);
        MockGraph {
            base: server.url.clone(),
            seen,
            server,
        }
    }

    pub fn graph_requests(&self) -> u64 {
        self.seen.graph_requests.load(Ordering::Relaxed)
    }
    pub fn token_requests(&self) -> u64 {
        self.seen.token_requests.load(Ordering::Relaxed)
    }
    pub fn paths(&self) -> Vec<String> {
        self.seen.paths.lock().unwrap().clone()
    }
    /// Pages built at `path` so far and the time spent building them.
    pub fn page_build(&self, path: &str) -> (u64, Duration) {
        self.seen
            .page_builds
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or_default()
    }
}

type Q = Query<HashMap<String, String>>;
type S = State<Arc<Shared>>;

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-11-28T12:00:00",
                "request-id": "00000000-aaaa-bbbb-cccc-000000000001",
                "client-request-id": "00000000-aaaa-bbbb-cccc-000000000002"
            }
        }})),
    )
        .into_response()
}

fn non_premium() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
        "Neither tenant is B2C or tenant doesn't have premium license",
    )
}

fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// Common gate for Graph requests: bearer token, counting, scripted throttling, latency.
async fn gate(s: &Shared, headers: &HeaderMap, path: &str) -> Option<Response> {
    let n = s.seen.graph_requests.fetch_add(1, Ordering::Relaxed) + 1;
    s.seen.paths.lock().unwrap().push(path.to_string());
    if !s.tenant.latency.is_zero() {
        tokio::time::sleep(s.tenant.latency).await;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !auth.starts_with("Bearer mock-token-")
        || (s.tenant.revoke_first_token && auth == "Bearer mock-token-1")
    {
        return Some(graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    }
    if let Some((status, after)) = s.tenant.throttle.get(&n) {
        let mut r = graph_error(
            StatusCode::from_u16(*status).unwrap(),
            if *status == 429 {
                "TooManyRequests"
            } else {
                "ServiceUnavailable"
            },
            "Too many requests",
        );
        r.headers_mut()
            .insert("retry-after", after.to_string().parse().unwrap());
        return Some(r);
    }
    None
}

/// The items a page request asks for: from `$skiptoken`, `$top` of them (at most `size`).
fn window(q: &HashMap<String, String>, size: usize, len: usize) -> (usize, usize) {
    let size = q
        .get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(size)
        .clamp(1, size.max(1));
    let start: usize = q
        .get("$skiptoken")
        .and_then(|t| t.strip_prefix("X'"))
        .and_then(|t| t.strip_suffix('\''))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (start, (start + size).min(len))
}

/// One page of `c` from `$skiptoken` (an offset here; opaque to clients), with a nextLink
/// that keeps the other query parameters, as Graph's do.
fn page(
    s: &Shared,
    path: &str,
    q: &HashMap<String, String>,
    c: &Collection,
    size: usize,
    map: impl Fn(Value) -> Value,
) -> Response {
    let started = std::time::Instant::now();
    let cache_key = s.tenant.prebuilt_pages.then(|| {
        let mut pairs: Vec<_> = q.iter().collect();
        pairs.sort();
        format!("{path}?{pairs:?}")
    });
    if let Some(key) = &cache_key {
        if let Some(body) = s.seen.page_cache.lock().unwrap().get(key).cloned() {
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
    }
    let (start, end) = window(q, size, c.len);
    let value: Vec<Value> = (start..end).map(|i| map((c.item)(i))).collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#{}", s.base, path.trim_start_matches("/v1.0/")),
        "value": value,
    });
    if end < c.len {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in q {
            if k != "$skiptoken" {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("$skiptoken", &format!("X'{end}'"));
        body["@odata.nextLink"] = json!(format!("{}{}?{}", s.base, path, ser.finish()));
    }
    let r = match cache_key {
        Some(key) => {
            let bytes = axum::body::Bytes::from(serde_json::to_vec(&body).unwrap());
            s.seen.page_cache.lock().unwrap().insert(key, bytes.clone());
            ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
        }
        None => Json(body).into_response(),
    };
    let mut builds = s.seen.page_builds.lock().unwrap();
    let b = builds.entry(path.to_string()).or_default();
    b.0 += 1;
    b.1 += started.elapsed();
    r
}

/// `/auditLogs/signIns`: `$filter=createdDateTime ge <instant>` (the only filter the mock
/// understands; anything else is 400 as Graph answers an unsupported filter), newest first,
/// `$skiptoken` paging. Entra ID P1 and AuditLog.Read.All are required.
async fn sign_ins(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = gate(&s, &headers, "/v1.0/auditLogs/signIns").await {
        return r;
    }
    let mut keys: Vec<_> = q.iter().collect();
    keys.sort();
    s.tenant.sign_in_queries.lock().unwrap().push(
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(keys)
            .finish(),
    );
    if s.tenant.non_premium {
        return non_premium();
    }
    if s.tenant.missing.contains(&Permission::AuditLog) {
        return denied();
    }
    if let Some(t) = q.get("$skiptoken") {
        if s.tenant.sign_in_expired.lock().unwrap().contains(t) {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "Invalid or expired skip token.",
            );
        }
    }
    let since = match q.get("$filter").map(|f| f.trim()) {
        None => String::new(),
        Some(f) => match f.strip_prefix("createdDateTime ge ") {
            Some(t) => t.trim().to_string(),
            None => {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_UnsupportedQuery",
                    "Unsupported filter.",
                )
            }
        },
    };
    let mut items: Vec<Value> = s
        .tenant
        .sign_ins
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["createdDateTime"].as_str().unwrap_or("") >= since.as_str())
        .cloned()
        .collect();
    items.sort_by(|a, b| {
        b["createdDateTime"]
            .as_str()
            .cmp(&a["createdDateTime"].as_str())
    });
    page(
        &s,
        "/v1.0/auditLogs/signIns",
        &q,
        &Collection::of(items),
        s.tenant.sign_in_page_size,
        |v| v,
    )
}

async fn token(State(s): S, Path(tenant): Path<String>, body: String) -> Response {
    s.seen.token_requests.fetch_add(1, Ordering::Relaxed);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    s.seen.token_forms.lock().unwrap().push(form.clone());
    let err = |code: &str, desc: &str| {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({
                "error": code,
                "error_description": format!("{desc}\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2026-11-28 12:00:00Z"),
                "error_codes": [7000215],
                "timestamp": "2026-11-28 12:00:00Z",
                "trace_id": "trace-0001",
                "correlation_id": "corr-0001"
            })),
        )
            .into_response()
    };
    if tenant != s.tenant.tenant_id {
        return err("invalid_request", "AADSTS90002: Tenant not found.");
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_id") != Some(&s.tenant.client_id)
        || form.get("scope") != Some(&format!("{}/.default", s.base))
    {
        return err("invalid_request", "AADSTS900144: bad request parameters.");
    }
    let ok = match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), None) => *secret == s.tenant.client_secret,
        (None, Some(jwt)) => check_assertion(&s, &tenant, form.get("client_assertion_type"), jwt),
        _ => false,
    };
    if !ok {
        return err(
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let n = s.seen.token_requests.load(Ordering::Relaxed);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": s.tenant.expires_in,
        "ext_expires_in": s.tenant.expires_in,
        "access_token": format!("mock-token-{n}"),
    }))
    .into_response()
}

fn check_assertion(s: &Shared, tenant: &str, kind: Option<&String>, jwt: &str) -> bool {
    if kind.map(String::as_str) != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return false;
    }
    let Some((public_pem, x5t)) = &s.tenant.assertion_key else {
        return false;
    };
    let Ok(header) = jsonwebtoken::decode_header(jwt) else {
        return false;
    };
    if header.alg != jsonwebtoken::Algorithm::PS256 || header.x5t_s256.as_deref() != Some(x5t) {
        return false;
    }
    let aud = format!("{}/{tenant}/oauth2/v2.0/token", s.base);
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
    v.set_audience(&[aud]);
    v.set_issuer(std::slice::from_ref(&s.tenant.client_id));
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub", "nbf"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap();
    match jsonwebtoken::decode::<Value>(jwt, &key, &v) {
        Ok(t) => t.claims["sub"] == json!(s.tenant.client_id) && t.claims["jti"].is_string(),
        Err(_) => false,
    }
}

async fn users(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let path = "/v1.0/users";
    if let Some(r) = gate(&s, &headers, path).await {
        return r;
    }
    let select: Vec<String> = q
        .get("$select")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let wants_sign_in = select.iter().any(|f| f == "signInActivity");
    if wants_sign_in && s.tenant.non_premium {
        return non_premium();
    }
    if wants_sign_in && s.tenant.missing.contains(&Permission::AuditLog) {
        return denied();
    }
    if window(&q, s.tenant.page_size, s.tenant.users.len).1 >= s.tenant.users.len {
        s.seen.users_listed.store(true, Ordering::SeqCst);
        s.seen.users_listed_now.notify_waiters();
    }
    page(
        &s,
        path,
        &q,
        &s.tenant.users,
        s.tenant.page_size,
        |mut u| {
            // Graph returns only the $select'ed properties.
            if let Value::Object(m) = &mut u {
                if !select.is_empty() {
                    m.retain(|k, _| select.iter().any(|f| f == k));
                }
            }
            u
        },
    )
}

async fn registration(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let path = "/v1.0/reports/authenticationMethods/userRegistrationDetails";
    if let Some(r) = gate(&s, &headers, path).await {
        return r;
    }
    if s.tenant.non_premium {
        return non_premium();
    }
    if s.tenant.missing.contains(&Permission::AuditLog) {
        return denied();
    }
    if s.tenant.registration_after_users && q.contains_key("$skiptoken") {
        loop {
            let listed = s.seen.users_listed_now.notified();
            if s.seen.users_listed.load(Ordering::SeqCst) {
                break;
            }
            listed.await;
        }
    }
    page(
        &s,
        path,
        &q,
        &s.tenant.registration,
        s.tenant.registration_page_size,
        |v| v,
    )
}

async fn list(
    s: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    path: &str,
    items: &[Value],
    need: Option<Permission>,
    premium: bool,
) -> Response {
    if let Some(r) = gate(s, headers, path).await {
        return r;
    }
    if premium && s.tenant.non_premium {
        return non_premium();
    }
    if need.is_some_and(|p| s.tenant.missing.contains(&p)) {
        return denied();
    }
    page(
        s,
        path,
        q,
        &Collection::of(items.to_vec()),
        s.tenant.page_size,
        |v| v,
    )
}

async fn role_definitions(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let items = s.tenant.role_definitions.clone();
    list(
        &s,
        &headers,
        &q,
        "/v1.0/roleManagement/directory/roleDefinitions",
        &items,
        Some(Permission::Roles),
        false,
    )
    .await
}

async fn role_assignments(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let items = s.tenant.role_assignments.clone();
    list(
        &s,
        &headers,
        &q,
        "/v1.0/roleManagement/directory/roleAssignments",
        &items,
        Some(Permission::Roles),
        false,
    )
    .await
}

async fn role_eligibility(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let items = s.tenant.role_eligibility.clone();
    if s.tenant.missing.contains(&Permission::Eligibility) {
        if let Some(r) = gate(
            &s,
            &headers,
            "/v1.0/roleManagement/directory/roleEligibilitySchedules",
        )
        .await
        {
            return r;
        }
        return denied();
    }
    list(
        &s,
        &headers,
        &q,
        "/v1.0/roleManagement/directory/roleEligibilitySchedules",
        &items,
        Some(Permission::Roles),
        true,
    )
    .await
}

async fn group_members(
    State(s): S,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    let path = format!("/v1.0/groups/{id}/transitiveMembers");
    let Some(items) = s.tenant.group_members.get(&id).cloned() else {
        if let Some(r) = gate(&s, &headers, &path).await {
            return r;
        }
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        );
    };
    list(
        &s,
        &headers,
        &q,
        &path,
        &items,
        Some(Permission::GroupMembers),
        false,
    )
    .await
}

async fn applications(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let items = s.tenant.applications.clone();
    list(
        &s,
        &headers,
        &q,
        "/v1.0/applications",
        &items,
        Some(Permission::Applications),
        false,
    )
    .await
}

async fn service_principals(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let items = s.tenant.service_principals.clone();
    list(
        &s,
        &headers,
        &q,
        "/v1.0/servicePrincipals",
        &items,
        Some(Permission::Applications),
        false,
    )
    .await
}

async fn ca_policies(State(s): S, headers: HeaderMap, Query(q): Q) -> Response {
    let items = s.tenant.ca_policies.clone();
    list(
        &s,
        &headers,
        &q,
        "/v1.0/identity/conditionalAccess/policies",
        &items,
        Some(Permission::Policy),
        true,
    )
    .await
}

async fn security_defaults(State(s): S, headers: HeaderMap) -> Response {
    let path = "/v1.0/policies/identitySecurityDefaultsEnforcementPolicy";
    if let Some(r) = gate(&s, &headers, path).await {
        return r;
    }
    if s.tenant.missing.contains(&Permission::Policy) {
        return denied();
    }
    Json(json!({
        "@odata.context": format!("{}/v1.0/$metadata#policies/identitySecurityDefaultsEnforcementPolicy/$entity", s.base),
        "id": "00000000-0000-0000-0000-000000000005",
        "displayName": "Security Defaults",
        "description": "Security defaults is a set of basic identity security mechanisms recommended by Microsoft.",
        "isEnabled": s.tenant.security_defaults
    }))
    .into_response()
}
