//! An in-process mock of the Okta Management API (axum on 127.0.0.1:0) serving the documented
//! shapes: Link-paged users (200 per page), factors of every type and status, roles, groups,
//! role assignees, API tokens, policies and rules, System Log events, the OAuth token endpoint
//! (verifying a real signed client assertion), Okta error bodies, and fault knobs (429, 500,
//! truncated body, `next` loop, 401, 403). Users are generated from their index, so 100k cost
//! no memory. Used by tests/okta.rs and benches/okta.rs.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::mock::MockServer;

pub const TOKEN: &str = "00TestApiToken-abcdefghijklmnop";

/// Switches for fault scenarios. `*_once` switches fire on the first matching request only.
#[derive(Debug, Default, Clone)]
pub struct Knobs {
    /// Every API call answers 401 E0000011.
    pub reject_all: bool,
    /// The second users page answers 429 once, with `X-Rate-Limit-Reset` this many seconds ahead.
    pub users_429_once: Option<u64>,
    pub users_500_once: bool,
    pub users_500_always: bool,
    pub users_truncated_once: bool,
    /// The third users page links back to the second.
    pub users_next_loop: bool,
    pub api_tokens_403: bool,
    pub assignees_403: bool,
    /// `/users/{id}/groups` answers 403 E0000006 (no okta.groups.read).
    pub groups_403: bool,
    pub factors_403: bool,
    /// ACCESS_POLICY answers 400 (a Classic engine org).
    pub classic_org: bool,
    /// Users whose factors endpoint answers 500 (persistently).
    pub factors_500_for: HashSet<String>,
    /// System Log polling pages hold at most this many events (default: the `limit`).
    pub log_page_size: Option<usize>,
    /// `after` cursors the System Log refuses with 400 (expired).
    pub log_expired_after: HashSet<String>,
    /// The System Log answers 403 E0000006 (no okta.logs.read).
    pub logs_403: bool,
}

/// What the mock's OAuth token endpoint accepts.
pub struct OAuthMock {
    pub client_id: String,
    pub key: jsonwebtoken::DecodingKey,
    pub kid: Option<String>,
}

pub struct MockState {
    pub n_users: usize,
    pub n_deprovisioned: usize,
    pub knobs: Mutex<Knobs>,
    /// Factor lists that replace the generated ones.
    pub factor_overrides: Mutex<HashMap<String, Value>>,
    pub log_events: Mutex<Vec<Value>>,
    /// The System Log as a polling query sees it, in persistence order (`after` = index).
    pub log_stream: Mutex<Vec<Value>>,
    /// The query string of every polling System Log request.
    pub stream_queries: Mutex<Vec<String>>,
    /// (since, until, filter) of every System Log query.
    pub log_queries: Mutex<Vec<(String, String, String)>>,
    pub hits: Mutex<HashMap<&'static str, usize>>,
    pub factor_calls: Mutex<HashMap<String, usize>>,
    pub oauth: Option<OAuthMock>,
    pub issued: Mutex<Vec<String>>,
    pub jtis: Mutex<HashSet<String>>,
    pub token_requests: AtomicUsize,
    pub base: Mutex<String>,
}

pub struct MockOkta {
    pub url: String,
    pub state: Arc<MockState>,
    /// The shared mock base: request log and scripted faults.
    pub server: MockServer,
}

impl MockOkta {
    pub async fn start(n_users: usize, n_deprovisioned: usize) -> MockOkta {
        MockOkta::start_with(n_users, n_deprovisioned, None).await
    }

    pub async fn start_with(
        n_users: usize,
        n_deprovisioned: usize,
        oauth: Option<OAuthMock>,
    ) -> MockOkta {
        let state = Arc::new(MockState {
            n_users,
            n_deprovisioned,
            knobs: Mutex::new(Knobs::default()),
            factor_overrides: Mutex::new(HashMap::new()),
            log_events: Mutex::new(Vec::new()),
            log_stream: Mutex::new(Vec::new()),
            stream_queries: Mutex::new(Vec::new()),
            log_queries: Mutex::new(Vec::new()),
            hits: Mutex::new(HashMap::new()),
            factor_calls: Mutex::new(HashMap::new()),
            oauth,
            issued: Mutex::new(Vec::new()),
            jtis: Mutex::new(HashSet::new()),
            token_requests: AtomicUsize::new(0),
            base: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/api/v1/users", get(users))
            .route("/api/v1/users/{id}/factors", get(factors))
            .route("/api/v1/users/{id}/roles", get(roles))
            .route("/api/v1/users/{id}/groups", get(groups))
            .route("/api/v1/iam/assignees/users", get(assignees))
            .route("/api/v1/api-tokens", get(api_tokens))
            .route("/api/v1/policies", get(policies))
            .route("/api/v1/policies/{id}/rules", get(rules))
            .route("/api/v1/logs", get(logs))
            .route("/oauth2/v1/token", post(token))
            .with_state(state.clone());
        let server = MockServer::start(app).await;
        if state.oauth.is_some() {
            server.set_token_path("/oauth2/v1/token");
        }
        let url = server.url.clone();
        *state.base.lock().unwrap() = url.clone();
        MockOkta { url, state, server }
    }

    pub fn knobs(&self, f: impl FnOnce(&mut Knobs)) {
        f(&mut self.state.knobs.lock().unwrap());
    }
    pub fn hits(&self, endpoint: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(endpoint)
            .copied()
            .unwrap_or(0)
    }
    pub fn total_hits(&self) -> usize {
        self.state.hits.lock().unwrap().values().sum()
    }
    pub fn factor_calls(&self, id: &str) -> usize {
        self.state
            .factor_calls
            .lock()
            .unwrap()
            .get(id)
            .copied()
            .unwrap_or(0)
    }
    pub fn set_factors(&self, id: &str, factors: Value) {
        self.state
            .factor_overrides
            .lock()
            .unwrap()
            .insert(id.into(), factors);
    }
    pub fn push_log_event(&self, e: Value) {
        self.state.log_events.lock().unwrap().push(e);
    }
    /// Appends events to the System Log stream a polling query reads.
    pub fn append_stream(&self, events: impl IntoIterator<Item = Value>) {
        self.state.log_stream.lock().unwrap().extend(events);
    }
    pub fn stream_queries(&self) -> Vec<String> {
        self.state.stream_queries.lock().unwrap().clone()
    }
}

pub fn user_id(i: usize) -> String {
    format!("00u{i:08}")
}
pub fn deprovisioned_id(i: usize) -> String {
    format!("00d{i:08}")
}
fn index_of(id: &str) -> Option<usize> {
    id.strip_prefix("00u")?.parse().ok()
}

/// The generated status of user `i` (the listing without a filter never returns DEPROVISIONED).
pub fn status_of(i: usize) -> &'static str {
    match i % 20 {
        1 => "LOCKED_OUT",
        2 => "SUSPENDED",
        3 => "STAGED",
        4 => "PROVISIONED",
        5 => "PASSWORD_EXPIRED",
        6 => "RECOVERY",
        _ => "ACTIVE",
    }
}

/// Users the checks look at (active or locked) among the first `n`.
pub fn active_count(n: usize) -> usize {
    (0..n)
        .filter(|i| !matches!(status_of(*i), "SUSPENDED" | "STAGED" | "PROVISIONED"))
        .count()
}

fn user_json(i: usize, deprovisioned: bool) -> Value {
    let id = if deprovisioned {
        deprovisioned_id(i)
    } else {
        user_id(i)
    };
    let status = if deprovisioned {
        "DEPROVISIONED"
    } else {
        status_of(i)
    };
    let federated = i % 9 == 8;
    let department = ["Engineering", "Sales", "Finance"][i % 3];
    let mut profile = json!({
        "firstName": format!("First{i}"),
        "lastName": format!("Last{i}"),
        "mobilePhone": null,
        "secondEmail": null,
        "login": format!("user{i}{}@example.com", if deprovisioned { "-gone" } else { "" }),
        "email": format!("user{i}@example.com"),
        "department": department,
        "title": "Staff",
        "employeeNumber": format!("{i}"),
    });
    if i % 50 == 10 {
        profile["leaveDate"] = json!("2026-01-31");
    }
    let mut u = json!({
        "id": id,
        "status": status,
        "created": "2024-04-04T15:56:05.000Z",
        "activated": null,
        "statusChanged": null,
        "lastUpdated": "2026-05-05T18:15:44.000Z",
        "type": {"id": "oty1162QAr8hJjTaq0g4"},
        "profile": profile,
        "credentials": if federated {
            json!({"provider": {"type": "FEDERATION", "name": "FEDERATION"}})
        } else {
            json!({"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}})
        },
        "_links": {"self": {"href": format!("https://example.okta.com/api/v1/users/{id}")}}
    });
    // lastLogin: null (never) for every 7th, absent for every 11th, else a date.
    if i % 11 != 0 {
        u["lastLogin"] = if i % 7 == 0 {
            Value::Null
        } else {
            json!("2026-10-01T08:00:00.000Z")
        };
    }
    u["passwordChanged"] = if federated {
        Value::Null
    } else {
        json!("2025-06-01T00:00:00.000Z")
    };
    u
}

fn factor(id: &str, t: &str, provider: &str, status: &str) -> Value {
    json!({"id": id, "factorType": t, "provider": provider, "vendorName": provider,
           "status": status, "created": "2024-06-27T20:27:26.000Z",
           "lastUpdated": "2024-06-27T20:27:26.000Z", "profile": {}})
}

/// User 0 has every factor type; the others cycle through typical sets.
pub fn generated_factors(i: usize) -> Value {
    if i == 0 {
        return json!([
            factor("f1", "push", "OKTA", "ACTIVE"),
            factor("f2", "token:software:totp", "GOOGLE", "ACTIVE"),
            factor("f3", "webauthn", "FIDO", "ACTIVE"),
            factor("f4", "u2f", "FIDO", "ACTIVE"),
            factor("f5", "signed_nonce", "OKTA", "ACTIVE"),
            factor("f6", "sms", "OKTA", "ACTIVE"),
            factor("f7", "call", "OKTA", "ACTIVE"),
            factor("f8", "email", "OKTA", "ACTIVE"),
            factor("f9", "question", "OKTA", "ACTIVE"),
            factor("f10", "token:hardware", "YUBICO", "ACTIVE"),
            factor("f11", "token", "RSA", "ACTIVE"),
            factor("f12", "token:hotp", "CUSTOM", "ACTIVE"),
            factor("f13", "web", "DUO", "ACTIVE"),
            factor("f14", "push", "OKTA", "PENDING_ACTIVATION"),
            factor("f15", "sms", "OKTA", "NOT_SETUP"),
            factor("f16", "email", "OKTA", "INACTIVE"),
            factor("f17", "webauthn", "FIDO", "DISABLED"),
            factor("f18", "token", "SYMANTEC", "EXPIRED"),
            factor("f19", "question", "OKTA", "ENROLLED"),
        ]);
    }
    match i % 6 {
        0 => json!([factor("a", "push", "OKTA", "ACTIVE")]),
        1 => json!([factor("a", "webauthn", "FIDO", "ACTIVE")]),
        2 => json!([factor("a", "sms", "OKTA", "ACTIVE")]),
        3 => json!([]),
        4 => json!([
            factor("a", "token:software:totp", "OKTA", "ACTIVE"),
            factor("b", "sms", "OKTA", "ACTIVE")
        ]),
        _ => json!([factor("a", "push", "OKTA", "PENDING_ACTIVATION")]),
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    let body = json!({"errorCode": code, "errorSummary": summary, "errorLink": code,
                      "errorId": "oaeMockErrorId123", "errorCauses": []});
    with_headers(status, body.to_string(), HeaderMap::new())
}

fn with_headers(status: StatusCode, body: String, mut h: HeaderMap) -> Response {
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.entry("x-rate-limit-limit")
        .or_insert(HeaderValue::from_static("600"));
    h.entry("x-rate-limit-remaining")
        .or_insert(HeaderValue::from_static("599"));
    h.entry("x-rate-limit-reset")
        .or_insert((now_unix() + 60).to_string().parse().unwrap());
    h.insert("x-okta-request-id", HeaderValue::from_static("mockreq"));
    (status, h, body).into_response()
}

fn ok(body: Value) -> Response {
    with_headers(StatusCode::OK, body.to_string(), HeaderMap::new())
}

fn hit(st: &MockState, endpoint: &'static str) {
    *st.hits.lock().unwrap().entry(endpoint).or_default() += 1;
}

/// `Authorization: SSWS <TOKEN>` or `Bearer <issued token>`, else 401 E0000011.
fn check_auth(st: &MockState, h: &HeaderMap) -> Result<(), Response> {
    let invalid = || {
        okta_error(
            StatusCode::UNAUTHORIZED,
            "E0000011",
            "Invalid token provided",
        )
    };
    if st.knobs.lock().unwrap().reject_all {
        return Err(invalid());
    }
    let a = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(t) = a.strip_prefix("SSWS ") {
        if t == TOKEN && st.oauth.is_none() {
            return Ok(());
        }
    }
    if let Some(t) = a.strip_prefix("Bearer ") {
        if st.issued.lock().unwrap().iter().any(|x| x == t) {
            return Ok(());
        }
    }
    Err(invalid())
}

fn link(base: &str, path: &str, q: &[(String, String)], rel: &str) -> String {
    let qs = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q)
        .finish();
    format!("<{base}{path}?{qs}>; rel=\"{rel}\"")
}

fn truncated(prefix: String) -> Response {
    let s = futures_util::stream::unfold(0, move |state| {
        let prefix = prefix.clone();
        async move {
            match state {
                0 => Some((Ok::<_, std::io::Error>(prefix), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Some((Err(std::io::Error::other("connection dropped")), 2))
                }
                _ => None,
            }
        }
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Body::from_stream(s),
    )
        .into_response()
}

async fn users(
    State(st): State<Arc<MockState>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    hit(&st, "users");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(200)
        .clamp(1, 200);
    let after = q
        .get("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let filter = q.get("filter").cloned();
    let deprov = filter.as_deref() == Some("status eq \"DEPROVISIONED\"");
    if filter.is_some() && !deprov {
        return okta_error(
            StatusCode::BAD_REQUEST,
            "E0000031",
            "Invalid search criteria.",
        );
    }
    let total = if deprov {
        st.n_deprovisioned
    } else {
        st.n_users
    };
    let page_no = after / limit;
    {
        let mut k = st.knobs.lock().unwrap();
        if page_no == 1 && !deprov {
            if let Some(secs) = k.users_429_once.take() {
                let mut hm = HeaderMap::new();
                hm.insert("x-rate-limit-limit", HeaderValue::from_static("600"));
                hm.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
                hm.insert(
                    "x-rate-limit-reset",
                    (now_unix() + secs).to_string().parse().unwrap(),
                );
                let body = json!({"errorCode": "E0000047",
                    "errorSummary": "API call exceeded rate limit due to too many requests.",
                    "errorLink": "E0000047", "errorId": "oaeRate", "errorCauses": []});
                return with_headers(StatusCode::TOO_MANY_REQUESTS, body.to_string(), hm);
            }
            if std::mem::take(&mut k.users_500_once) || k.users_500_always {
                return okta_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "E0000009",
                    "Internal Server Error",
                );
            }
            if std::mem::take(&mut k.users_truncated_once) {
                return truncated("[{\"id\":\"00u0000".into());
            }
        }
    }
    let end = (after + limit).min(total);
    let page: Vec<Value> = (after..end).map(|i| user_json(i, deprov)).collect();
    let base = st.base.lock().unwrap().clone();
    let mut qs: Vec<(String, String)> = Vec::new();
    if let Some(f) = &filter {
        qs.push(("filter".into(), f.clone()));
    }
    qs.push(("limit".into(), limit.to_string()));
    let mut hm = HeaderMap::new();
    let mut self_q = qs.clone();
    if after > 0 {
        self_q.push(("after".into(), after.to_string()));
    }
    hm.append(
        "link",
        link(&base, "/api/v1/users", &self_q, "self")
            .parse()
            .unwrap(),
    );
    let looping = st.knobs.lock().unwrap().users_next_loop;
    let next_after = if looping && page_no == 2 {
        Some(limit)
    } else if end < total {
        Some(end)
    } else {
        None
    };
    if let Some(n) = next_after {
        let mut nq = qs.clone();
        nq.push(("after".into(), n.to_string()));
        hm.append(
            "link",
            link(&base, "/api/v1/users", &nq, "next").parse().unwrap(),
        );
    }
    with_headers(StatusCode::OK, Value::Array(page).to_string(), hm)
}

async fn factors(
    State(st): State<Arc<MockState>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    hit(&st, "factors");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    *st.factor_calls
        .lock()
        .unwrap()
        .entry(id.clone())
        .or_default() += 1;
    {
        let k = st.knobs.lock().unwrap();
        if k.factors_403 {
            return okta_error(
                StatusCode::FORBIDDEN,
                "E0000006",
                "You do not have permission to perform the requested action",
            );
        }
        if k.factors_500_for.contains(&id) {
            return okta_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "E0000009",
                "Internal Server Error",
            );
        }
    }
    if let Some(f) = st.factor_overrides.lock().unwrap().get(&id) {
        return ok(f.clone());
    }
    match index_of(&id) {
        Some(i) if i < st.n_users => ok(generated_factors(i)),
        _ => okta_error(
            StatusCode::NOT_FOUND,
            "E0000007",
            "Not found: Resource not found: user (User)",
        ),
    }
}

/// Admins: user 0 and 2 are super admins; user 1 is an org admin and holds a custom role
/// through a group; user 6 has only an inactive assignment.
pub const ADMINS: [usize; 4] = [0, 1, 2, 6];

async fn roles(State(st): State<Arc<MockState>>, h: HeaderMap, Path(id): Path<String>) -> Response {
    hit(&st, "roles");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    let role = |id: &str, label: &str, t: &str, status: &str, at: &str| {
        json!({"id": id, "label": label, "type": t, "status": status,
               "created": "2019-02-06T16:17:40.000Z", "lastUpdated": "2019-02-06T16:17:40.000Z",
               "assignmentType": at, "_links": {"assignee": {"href": "https://example.okta.com/api/v1/users/x"}}})
    };
    ok(match index_of(&id) {
        Some(0) | Some(2) => json!([role(
            "ra1",
            "Super Administrator",
            "SUPER_ADMIN",
            "ACTIVE",
            "USER"
        )]),
        Some(1) => json!([
            role(
                "ra2",
                "Organization administrator",
                "ORG_ADMIN",
                "ACTIVE",
                "USER"
            ),
            role("ra3", "Help Desk Lite", "CUSTOM", "ACTIVE", "GROUP"),
        ]),
        Some(6) => json!([role(
            "ra4",
            "Report administrator",
            "REPORT_ADMIN",
            "INACTIVE",
            "USER"
        )]),
        _ => json!([]),
    })
}

async fn groups(
    State(st): State<Arc<MockState>>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    hit(&st, "groups");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    if st.knobs.lock().unwrap().groups_403 {
        return okta_error(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
        );
    }
    let g = |name: &str| json!({"id": format!("00g{name}"), "type": "OKTA_GROUP", "profile": {"name": name, "description": null}});
    ok(match index_of(&id) {
        Some(0) => json!([g("Everyone"), g("it-admins")]),
        _ => json!([g("Everyone")]),
    })
}

async fn assignees(
    State(st): State<Arc<MockState>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    hit(&st, "assignees");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    if st.knobs.lock().unwrap().assignees_403 {
        return okta_error(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
        );
    }
    // Two per page, whatever the limit, so the body cursor is exercised.
    let after = q
        .get("after")
        .and_then(|a| a.parse::<usize>().ok())
        .unwrap_or(0);
    let admins: Vec<usize> = ADMINS.iter().copied().filter(|i| *i < st.n_users).collect();
    let end = (after + 2).min(admins.len());
    let base = st.base.lock().unwrap().clone();
    let value: Vec<Value> = admins[after.min(end)..end]
        .iter()
        .map(|i| json!({"id": user_id(*i), "orn": format!("orn:okta:00o1:users:{}", user_id(*i)),
                        "_links": {"self": {"href": format!("{base}/api/v1/users/{}", user_id(*i))}}}))
        .collect();
    let mut body = json!({"value": value});
    if end < admins.len() {
        body["_links"] = json!({"next": {"href": format!("{base}/api/v1/iam/assignees/users?after={end}&limit=2")}});
    }
    ok(body)
}

async fn api_tokens(State(st): State<Arc<MockState>>, h: HeaderMap) -> Response {
    hit(&st, "api_tokens");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    if st.knobs.lock().unwrap().api_tokens_403 {
        return okta_error(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
        );
    }
    ok(json!([
        {"name": "Exporter", "userId": user_id(0), "tokenWindow": "P30D",
         "network": {"connection": "ANYWHERE"}, "id": "00Ttoken0", "clientName": "Okta API",
         "expiresAt": "2026-12-11T20:38:10.000Z", "created": "2024-11-09T20:38:10.000Z",
         "lastUpdated": "2024-11-11T20:38:10.000Z"},
        {"name": "Old script", "userId": user_id(2), "tokenWindow": "P30D",
         "network": {"connection": "ANYWHERE"}, "id": "00Ttoken2", "clientName": "Okta API",
         "expiresAt": "2026-12-01T00:00:00.000Z", "created": "2023-01-01T00:00:00.000Z",
         "lastUpdated": "2023-01-01T00:00:00.000Z"}
    ]))
}

async fn policies(
    State(st): State<Arc<MockState>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    hit(&st, "policies");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    let p = |id: &str, name: &str, t: &str, status: &str| {
        json!({"id": id, "name": name, "type": t, "status": status, "priority": 1, "system": false,
               "conditions": null, "_links": {"rules": {"href": format!("https://x/api/v1/policies/{id}/rules")}}})
    };
    match q.get("type").map(String::as_str) {
        Some("ACCESS_POLICY") => {
            if st.knobs.lock().unwrap().classic_org {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000001",
                    "Api validation failed: type",
                );
            }
            ok(json!([
                p("rst1", "Okta Dashboard", "ACCESS_POLICY", "ACTIVE"),
                p("rst2", "Retired app", "ACCESS_POLICY", "INACTIVE"),
            ]))
        }
        Some("OKTA_SIGN_ON") => ok(json!([p(
            "00p1",
            "Default Policy",
            "OKTA_SIGN_ON",
            "ACTIVE"
        )])),
        Some(_) => ok(json!([])),
        None => okta_error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: type is required",
        ),
    }
}

async fn rules(State(st): State<Arc<MockState>>, h: HeaderMap, Path(id): Path<String>) -> Response {
    hit(&st, "rules");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    let access = |name: &str, status: &str, mode: &str| {
        json!({"id": format!("rul{name}"), "name": name, "status": status, "priority": 0, "system": false,
               "type": "ACCESS_POLICY", "conditions": {"people": {"users": {"exclude": []}}},
               "actions": {"appSignOn": {"access": "ALLOW", "verificationMethod":
                   {"factorMode": mode, "type": "ASSURANCE", "reauthenticateIn": "PT12H", "constraints": []}}}})
    };
    ok(match id.as_str() {
        "rst1" => json!([
            access("Require MFA", "ACTIVE", "2FA"),
            access("Legacy kiosks", "ACTIVE", "1FA"),
            access("Old rule", "INACTIVE", "1FA"),
            {"id": "rulDeny", "name": "Block", "status": "ACTIVE", "type": "ACCESS_POLICY",
             "actions": {"appSignOn": {"access": "DENY"}}}
        ]),
        "rst2" => json!([access("Anything goes", "ACTIVE", "1FA")]),
        "00p1" => json!([
            {"id": "0pr1", "status": "ACTIVE", "name": "Office network, password only", "priority": 0,
             "system": false, "type": "SIGN_ON",
             "conditions": {"people": {"users": {"exclude": []}}, "network": {"connection": "ZONE"}},
             "actions": {"signon": {"requireFactor": false, "access": "ALLOW", "primaryFactor": "PASSWORD_IDP",
                 "session": {"maxSessionIdleMinutes": 720, "maxSessionLifetimeMinutes": 0, "usePersistentCookie": false}}}},
            {"id": "0pr2", "status": "ACTIVE", "name": "Default Rule", "priority": 1, "system": true,
             "type": "SIGN_ON",
             "actions": {"signon": {"requireFactor": true, "factorPromptMode": "ALWAYS", "access": "ALLOW"}}}
        ]),
        _ => json!([]),
    })
}

async fn logs(
    State(st): State<Arc<MockState>>,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    hit(&st, "logs");
    if let Err(r) = check_auth(&st, &h) {
        return r;
    }
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if !q.contains_key("until") && !q.contains_key("filter") {
        return log_stream(&st, &q);
    }
    st.log_queries
        .lock()
        .unwrap()
        .push((get("since"), get("until"), get("filter")));
    // Bounded query: one page, `self` link only.
    let base = st.base.lock().unwrap().clone();
    let mut hm = HeaderMap::new();
    hm.append(
        "link",
        format!("<{base}/api/v1/logs>; rel=\"self\"")
            .parse()
            .unwrap(),
    );
    let events = std::mem::take(&mut *st.log_events.lock().unwrap());
    with_headers(StatusCode::OK, Value::Array(events).to_string(), hm)
}

/// A polling System Log query (no `until`, ascending): `since` or the `after` cursor, one
/// page of the stream, and — as Okta does — a `next` link on every page, even an empty one.
fn log_stream(st: &MockState, q: &HashMap<String, String>) -> Response {
    let qs = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(q.iter().collect::<std::collections::BTreeMap<_, _>>())
        .finish();
    st.stream_queries.lock().unwrap().push(qs);
    let knobs = st.knobs.lock().unwrap().clone();
    if knobs.logs_403 {
        return okta_error(
            StatusCode::FORBIDDEN,
            "E0000006",
            "You do not have permission to perform the requested action",
        );
    }
    let stream = st.log_stream.lock().unwrap().clone();
    let start = match (q.get("after"), q.get("since")) {
        (Some(a), _) if knobs.log_expired_after.contains(a) => {
            return okta_error(
                StatusCode::BAD_REQUEST,
                "E0000001",
                "Api validation failed: after",
            )
        }
        (Some(a), _) => match a.parse::<usize>() {
            Ok(i) => i.min(stream.len()),
            Err(_) => {
                return okta_error(
                    StatusCode::BAD_REQUEST,
                    "E0000031",
                    "Invalid search criteria.",
                )
            }
        },
        (None, Some(since)) => stream
            .iter()
            .position(|e| e["published"].as_str().unwrap_or("") >= since.as_str())
            .unwrap_or(stream.len()),
        (None, None) => 0,
    };
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let size = knobs.log_page_size.unwrap_or(limit).min(limit).max(1);
    let end = (start + size).min(stream.len());
    let page: Vec<Value> = stream[start..end].to_vec();
    let base = st.base.lock().unwrap().clone();
    let mut hm = HeaderMap::new();
    let mut keep: Vec<(String, String)> = vec![
        ("limit".into(), limit.to_string()),
        ("sortOrder".into(), "ASCENDING".into()),
    ];
    hm.append(
        "link",
        link(&base, "/api/v1/logs", &keep, "self").parse().unwrap(),
    );
    keep.push(("after".into(), end.to_string()));
    hm.append(
        "link",
        link(&base, "/api/v1/logs", &keep, "next").parse().unwrap(),
    );
    with_headers(StatusCode::OK, Value::Array(page).to_string(), hm)
}

/// A System Log event of `event_type` by user `id` (`login`) from `ip`, in the documented shape.
#[allow(clippy::too_many_arguments)]
pub fn log_event(
    uuid: &str,
    published: &str,
    event_type: &str,
    id: &str,
    login: &str,
    ip: &str,
    result: &str,
    reason: Option<&str>,
) -> Value {
    json!({
        "uuid": uuid,
        "published": published,
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": "User login to Okta",
        "legacyEventType": "core.user_auth.login_success",
        "actor": {"id": id, "type": "User", "alternateId": login, "displayName": login, "detailEntry": null},
        "client": {"userAgent": {"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "CHROME"},
                   "zone": null, "device": "Computer", "id": null, "ipAddress": ip,
                   "geographicalContext": {"city": "Amsterdam", "state": "North Holland",
                                           "country": "Netherlands", "postalCode": "1011",
                                           "geolocation": {"lat": 52.37, "lon": 4.9}}},
        "authenticationContext": {"authenticationProvider": null, "credentialProvider": null,
                                  "credentialType": null, "issuer": null, "interface": null,
                                  "authenticationStep": 0, "externalSessionId": format!("idx{uuid}")},
        "outcome": {"result": result, "reason": reason},
        "securityContext": {"asNumber": 394089, "asOrg": "ASN 0000", "isp": "google", "domain": null, "isProxy": false},
        "debugContext": {"debugData": {}},
        "transaction": {"type": "WEB", "id": "ab609228fe84ce59cdcbfa690bgce016", "detail": null},
        "target": []
    })
}

/// A factor-change event for user `id` (actor = the user themself).
pub fn factor_event(id: &str, event_type: &str) -> Value {
    json!({
        "uuid": "dc9fd3c0-598c-11ef-8478-2b7584bf8d5a",
        "published": "2026-11-01T08:00:00.000Z",
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": "Activate factor or authenticator",
        "actor": {"id": id, "type": "User", "alternateId": "someone@example.com", "displayName": "Someone"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [{"id": id, "type": "User", "alternateId": "someone@example.com", "displayName": "Someone"}]
    })
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
}

async fn token(State(st): State<Arc<MockState>>, body: String) -> Response {
    hit(&st, "token");
    st.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let oauth_err = |code: &str, desc: &str| {
        let b = json!({"error": code, "error_description": desc});
        with_headers(StatusCode::UNAUTHORIZED, b.to_string(), HeaderMap::new())
    };
    let Some(o) = &st.oauth else {
        return oauth_err("invalid_client", "no service app configured");
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return with_headers(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request"}).to_string(),
            HeaderMap::new(),
        );
    }
    if !form
        .get("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == "okta.users.read"))
    {
        return with_headers(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_scope"}).to_string(),
            HeaderMap::new(),
        );
    }
    let assertion = form.get("client_assertion").cloned().unwrap_or_default();
    let Ok(header) = jsonwebtoken::decode_header(&assertion) else {
        return oauth_err("invalid_client", "The client_assertion is not a JWT.");
    };
    if header.kid != o.kid {
        return oauth_err("invalid_client", "client_assertion_invalid_kid");
    }
    let base = st.base.lock().unwrap().clone();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[format!("{base}/oauth2/v1/token")]);
    v.set_issuer(std::slice::from_ref(&o.client_id));
    let claims = match jsonwebtoken::decode::<AssertionClaims>(&assertion, &o.key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            return oauth_err(
                "invalid_client",
                &format!("The client_assertion is invalid: {e}"),
            )
        }
    };
    if claims.sub != o.client_id || claims.iss != o.client_id || claims.aud.is_empty() {
        return oauth_err("invalid_client", "The client_assertion sub does not match.");
    }
    if claims.exp > claims.iat + 3600 {
        return oauth_err(
            "invalid_client",
            "client_assertion_expires_too_far_in_future",
        );
    }
    if !st.jtis.lock().unwrap().insert(claims.jti) {
        return oauth_err(
            "invalid_client",
            "The client_assertion token has already been used.",
        );
    }
    let n = st.issued.lock().unwrap().len();
    let at = format!("eyMockAccessToken{n}-abcdefgh");
    st.issued.lock().unwrap().push(at.clone());
    ok(
        json!({"token_type": "Bearer", "expires_in": 3600, "access_token": at,
              "scope": form.get("scope").cloned().unwrap_or_default()}),
    )
}
