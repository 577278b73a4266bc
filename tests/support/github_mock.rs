//! A mock GitHub REST API (version 2022-11-28) for one organisation, on the shared
//! `MockServer`: served under the public base or a GHES-style `/api/v3` prefix, with the
//! documented paths, `simple-user` / invitation / credential-authorization / fine-grained
//! token / audit-log shapes, `page`+`per_page` Link paging (audit log: `after` cursors),
//! `x-ratelimit-*` headers, GitHub's error bodies, and the App installation-token exchange
//! (the RS256 JWT verified with the App's public key).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use super::mock::{Fault, MockServer};

/// The classic personal access token the mock accepts.
pub const TOKEN: &str = "ghp_MockClassicToken0123456789abcdefXYZ";
pub const APP_ID: &str = "424242";
pub const INSTALLATION_ID: u64 = 777;
/// The App's private key (PKCS#1, as GitHub hands it out) and its public key.
pub const APP_KEY: &str = include_str!("test-github-app-key.pem");
pub const APP_PUBLIC_KEY: &str = include_str!("test-github-app-key.pub.pem");

/// What GitHub answers a non-owner using the 2FA filters: 422 (GitHub documents 200/422 for
/// the endpoint and that the filters are owner-only; the body text is an assumption).
pub fn non_owner_filter_body() -> Value {
    json!({
        "message": "Only organization owners can filter by two-factor authentication status.",
        "documentation_url": "https://docs.github.com/rest/orgs/members#list-organization-members",
        "status": "422"
    })
}

/// GitHub's secondary-limit body (github/docs, go-github's test fixtures).
pub fn secondary_limit_body() -> Value {
    json!({
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 1234:5678.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        "status": "403"
    })
}

/// GitHub's primary-limit body.
pub fn primary_limit_body() -> Value {
    json!({
        "message": "API rate limit exceeded for user ID 1.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-the-primary-rate-limit",
        "status": "403"
    })
}

/// GitHub's answer when the primary limit is spent: 403, `x-ratelimit-remaining: 0` and the
/// window's reset (unix seconds) on the `core` resource.
pub fn primary_limit_fault(reset: i64) -> Fault {
    Fault::Status {
        status: 403,
        body: primary_limit_body().to_string(),
        headers: vec![
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("x-ratelimit-limit".into(), "5000".into()),
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-used".into(), "5000".into()),
            ("x-ratelimit-reset".into(), reset.to_string()),
            ("x-ratelimit-resource".into(), "core".into()),
        ],
    }
}

pub fn not_found_body() -> Value {
    json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"})
}

pub fn bad_credentials_body() -> Value {
    json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
}

/// A `simple-user` as GitHub lists it.
pub fn user(id: u64, login: &str, kind: &str) -> Value {
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "gravatar_id": "", "url": format!("https://api.github.com/users/{login}"),
        "html_url": format!("https://github.com/{login}"),
        "followers_url": format!("https://api.github.com/users/{login}/followers"),
        "following_url": format!("https://api.github.com/users/{login}/following{{/other_user}}"),
        "gists_url": format!("https://api.github.com/users/{login}/gists{{/gist_id}}"),
        "starred_url": format!("https://api.github.com/users/{login}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("https://api.github.com/users/{login}/subscriptions"),
        "organizations_url": format!("https://api.github.com/users/{login}/orgs"),
        "repos_url": format!("https://api.github.com/users/{login}/repos"),
        "events_url": format!("https://api.github.com/users/{login}/events{{/privacy}}"),
        "received_events_url": format!("https://api.github.com/users/{login}/received_events"),
        "type": kind, "user_view_type": "public", "site_admin": false
    })
}

/// A `credential-authorization`.
pub fn authorization(
    login: &str,
    id: u64,
    kind: &str,
    authorized: &str,
    accessed: Option<&str>,
    expires: Option<Option<&str>>,
) -> Value {
    let mut v = json!({
        "login": login, "credential_id": id, "credential_type": kind,
        "credential_authorized_at": authorized, "credential_accessed_at": accessed,
        "authorized_credential_id": id * 10
    });
    if kind == "personal access token" {
        v["token_last_eight"] = json!("71c3fc11");
        v["scopes"] = json!(["repo", "read:org"]);
        v["authorized_credential_note"] = json!("laptop");
    } else {
        v["fingerprint"] = json!("jklmnop12345678");
        v["authorized_credential_title"] = json!("work laptop");
    }
    if let Some(e) = expires {
        v["authorized_credential_expires_at"] = json!(e);
    }
    v
}

/// An `organization-programmatic-access-grant` (fine-grained token).
pub fn fine_grained(
    id: u64,
    owner: Value,
    granted: &str,
    expires: Option<&str>,
    last_used: Option<&str>,
) -> Value {
    json!({
        "id": id, "owner": owner, "repository_selection": "all",
        "repositories_url": format!("https://api.github.com/organizations/652551/personal-access-tokens/{id}/repositories"),
        "permissions": {"organization": {"members": "read"}, "repository": {"metadata": "read"}},
        "access_granted_at": granted, "token_id": id + 70000, "token_name": format!("token {id}"),
        "token_expired": false, "token_expires_at": expires, "token_last_used_at": last_used
    })
}

/// An `audit-log-event` at `unix_secs`.
pub fn event(n: u64, actor: &str, action: &str, unix_secs: i64) -> Value {
    json!({
        "@timestamp": unix_secs * 1000 + 538, "_document_id": format!("doc-{n}"),
        "action": action, "actor": actor, "actor_id": n, "created_at": unix_secs * 1000 + 538,
        "org": "acme", "org_id": 1, "operation_type": "modify"
    })
}

/// The organisation the mock serves. `None` listings answer 404 (not on this plan/host).
#[derive(Debug, Clone)]
pub struct Org {
    pub login: String,
    pub two_factor_requirement_enabled: Option<bool>,
    pub members: Vec<Value>,
    pub owners: Vec<u64>,
    pub members_2fa_disabled: Vec<u64>,
    pub members_2fa_insecure: Vec<u64>,
    pub collaborators: Vec<Value>,
    pub collaborators_2fa_disabled: Vec<u64>,
    pub collaborators_2fa_insecure: Vec<u64>,
    pub invitations: Option<Vec<Value>>,
    pub credential_authorizations: Option<Vec<Value>>,
    pub fine_grained: Vec<Value>,
    /// Newest first, as GitHub orders them by default.
    pub audit: Option<Vec<Value>>,
    /// The token is an owner's: the 2FA filters answer (otherwise 422).
    pub owner: bool,
    /// Largest page the mock serves, whatever `per_page` asks (so small fixtures page).
    pub page_size: usize,
    /// `rel="last"` names the page before the real last one (a listing that grew after the
    /// first page was served): only `next` links lead to the rest.
    pub understate_last: bool,
}

impl Default for Org {
    fn default() -> Org {
        Org {
            login: "acme".into(),
            two_factor_requirement_enabled: Some(false),
            members: Vec::new(),
            owners: Vec::new(),
            members_2fa_disabled: Vec::new(),
            members_2fa_insecure: Vec::new(),
            collaborators: Vec::new(),
            collaborators_2fa_disabled: Vec::new(),
            collaborators_2fa_insecure: Vec::new(),
            invitations: Some(Vec::new()),
            credential_authorizations: Some(Vec::new()),
            fine_grained: Vec::new(),
            audit: Some(Vec::new()),
            owner: true,
            page_size: 100,
            understate_last: false,
        }
    }
}

/// What the App token exchange saw, for assertions.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    /// Verified JWTs' `iat` and `exp`.
    pub jwt_times: Vec<(i64, i64)>,
    /// Installation tokens issued.
    pub issued: Vec<String>,
    /// JWTs refused (bad signature, issuer or times).
    pub refused: usize,
}

struct Shared {
    org: Mutex<Org>,
    prefix: String,
    base: String,
    exchange: Mutex<Exchange>,
    /// Requests served per rate-limit resource (`core`, `audit_log`) in the current window.
    used: Mutex<HashMap<&'static str, u64>>,
}

pub struct MockGithub {
    pub server: MockServer,
    /// `api_url` for the configuration: the server, plus the prefix (GHES `/api/v3`).
    pub api_url: String,
    /// The prefix paths are served under (`""` or `/api/v3`).
    pub prefix: String,
    shared: Arc<Shared>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn error(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

impl MockGithub {
    /// Serves `org` under `prefix` (`""` for api.github.com, `"/api/v3"` for GHES).
    pub async fn start(org: Org, prefix: &str) -> MockGithub {
        let prefix = prefix.trim_end_matches('/').to_string();
        let holder: Arc<Mutex<Option<Arc<Shared>>>> = Arc::new(Mutex::new(None));
        let h = holder.clone();
        let p = prefix.clone();
        let server = MockServer::start_with(move |url| {
            let shared = Arc::new(Shared {
                org: Mutex::new(org),
                prefix: p.clone(),
                base: format!("{url}{p}"),
                exchange: Mutex::new(Exchange::default()),
                used: Mutex::new(HashMap::new()),
            });
            *h.lock().unwrap() = Some(shared.clone());
            Router::new().fallback(handle).with_state(shared)
        })
        .await;
        let shared = holder.lock().unwrap().take().unwrap();
        MockGithub {
            api_url: format!("{}{prefix}", server.url),
            server,
            prefix,
            shared,
        }
    }

    /// `prefix` + `path`: the path as the mock server logs it.
    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    pub fn exchange(&self) -> Exchange {
        self.shared.exchange.lock().unwrap().clone()
    }

    /// Starts a new rate-limit window (GitHub's reset after an hour).
    pub fn reset_rate_limits(&self) {
        self.shared.used.lock().unwrap().clear();
    }

    /// Changes the organisation between polls.
    pub fn update(&self, f: impl FnOnce(&mut Org)) {
        f(&mut self.shared.org.lock().unwrap());
    }
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn rate_headers(r: &mut Response, resource: &str, served: u64) {
    // GitHub's limits: 5,000 an hour for a user token, 1,750 for the audit log.
    let limit: u64 = if resource == "audit_log" { 1750 } else { 5000 };
    let h = r.headers_mut();
    for (k, v) in [
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            limit.saturating_sub(served).to_string(),
        ),
        ("x-ratelimit-used", served.to_string()),
        ("x-ratelimit-reset", (now() + 3600).to_string()),
        ("x-ratelimit-resource", resource.to_string()),
        ("x-github-api-version-selected", "2022-11-28".to_string()),
    ] {
        h.insert(k, v.parse().unwrap());
    }
}

/// One page of `items` (1-based `page`, `per_page` capped by the mock's page size) with
/// GitHub's Link header.
fn paged(
    shared: &Shared,
    path: &str,
    q: &HashMap<String, String>,
    items: &[&Value],
    cap: usize,
    understate_last: bool,
) -> Response {
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100)
        .min(cap.max(1));
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let last = items.len().div_ceil(per_page).max(1);
    let start = (page - 1) * per_page;
    let slice: Vec<&Value> = items.iter().skip(start).take(per_page).copied().collect();
    let mut r = (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        serde_json::to_string(&slice).unwrap(),
    )
        .into_response();
    let link_to = |p: usize| {
        let mut q2: Vec<(String, String)> = q.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        q2.retain(|(k, _)| k != "page");
        q2.push(("page".into(), p.to_string()));
        q2.sort();
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q2)
            .finish();
        format!("{}{path}?{qs}", shared.base)
    };
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
        let named = if understate_last {
            (last - 1).max(page + 1)
        } else {
            last
        };
        links.push(format!("<{}>; rel=\"last\"", link_to(named)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to(page - 1)));
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    }
    if !links.is_empty() {
        r.headers_mut()
            .insert("link", links.join(", ").parse().unwrap());
    }
    r
}

fn day(s: &str) -> Option<i64> {
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp())
}

/// The audit-log `phrase`'s `created:` qualifier as an inclusive range of unix seconds:
/// `created:>=DATE`, `created:DATE..DATE`.
fn created_range(phrase: &str) -> Option<(i64, i64)> {
    let c = phrase
        .split_whitespace()
        .find_map(|t| t.strip_prefix("created:"))?;
    if let Some(d) = c.strip_prefix(">=") {
        return Some((day(d)?, i64::MAX));
    }
    let (a, b) = c.split_once("..")?;
    Some((day(a)?, day(b)? + 86_399))
}

fn audit_page(
    shared: &Shared,
    path: &str,
    q: &HashMap<String, String>,
    events: &[Value],
    cap: usize,
) -> Response {
    let Some((from, to)) = q.get("phrase").and_then(|p| created_range(p)) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "the mock needs a created: qualifier", "status": "422"}),
        );
    };
    let mut selected: Vec<&Value> = events
        .iter()
        .filter(|e| {
            let t = e["@timestamp"].as_i64().unwrap_or(0) / 1000;
            t >= from && t <= to
        })
        .collect();
    if q.get("order").map(String::as_str) == Some("asc") {
        selected.reverse();
    }
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(30)
        .min(cap.max(1));
    // The cursor is opaque to clients; here it is the offset, base64-encoded.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let start = q
        .get("after")
        .and_then(|a| b64.decode(a).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let slice: Vec<&Value> = selected
        .iter()
        .skip(start)
        .take(per_page)
        .copied()
        .collect();
    let mut r = (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        serde_json::to_string(&slice).unwrap(),
    )
        .into_response();
    if start + per_page < selected.len() {
        let mut q2: Vec<(String, String)> = q.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        q2.retain(|(k, _)| k != "after" && k != "before");
        q2.push(("after".into(), b64.encode((start + per_page).to_string())));
        q2.sort();
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(q2)
            .finish();
        r.headers_mut().insert(
            "link",
            format!("<{}{path}?{qs}>; rel=\"next\"", shared.base)
                .parse()
                .unwrap(),
        );
    }
    r
}

fn token_exchange(shared: &Shared, path: &str, headers: &HeaderMap) -> Response {
    let expected = format!("/app/installations/{INSTALLATION_ID}/access_tokens");
    let jwt = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    #[derive(serde::Deserialize)]
    struct AppClaims {
        iss: String,
        iat: i64,
        exp: i64,
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(APP_PUBLIC_KEY.as_bytes()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[APP_ID]);
    v.set_required_spec_claims(&["exp", "iat", "iss"]);
    v.validate_aud = false;
    let claims = match jsonwebtoken::decode::<AppClaims>(jwt, &key, &v) {
        Ok(d) => d.claims,
        Err(_) => {
            shared.exchange.lock().unwrap().refused += 1;
            return error(
                StatusCode::UNAUTHORIZED,
                json!({"message": "A JSON web token could not be decoded", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
            );
        }
    };
    // GitHub: iat may be in the past (60 s is advised), exp at most 10 minutes ahead.
    let n = now();
    let ok_times =
        claims.iat <= n - 55 && claims.iat >= n - 120 && claims.exp <= n + 600 && claims.exp > n;
    if claims.iss != APP_ID || !ok_times {
        shared.exchange.lock().unwrap().refused += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            json!({"message": "'Expiration time' claim ('exp') is too far in the future", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        );
    }
    if path != expected {
        return error(StatusCode::NOT_FOUND, not_found_body());
    }
    let mut ex = shared.exchange.lock().unwrap();
    ex.jwt_times.push((claims.iat, claims.exp));
    let token = format!("ghs_MockInstallationToken{:04}", ex.issued.len() + 1);
    ex.issued.push(token.clone());
    let expires = time::OffsetDateTime::from_unix_timestamp(n + 3600)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    (
        StatusCode::CREATED,
        [("content-type", "application/json; charset=utf-8")],
        json!({
            "token": token, "expires_at": expires,
            "permissions": {"members": "read", "organization_administration": "read", "organization_personal_access_tokens": "read"},
            "repository_selection": "all"
        })
        .to_string(),
    )
        .into_response()
}

fn by_ids<'v>(all: &'v [Value], ids: &[u64]) -> Vec<&'v Value> {
    let ids: HashSet<u64> = ids.iter().copied().collect();
    all.iter()
        .filter(|u| u["id"].as_u64().is_some_and(|i| ids.contains(&i)))
        .collect()
}

fn refs(v: &[Value]) -> Vec<&Value> {
    v.iter().collect()
}

/// `filter=2fa_disabled|2fa_insecure|all`: owner-only, 422 to anyone else.
fn filter<'v>(
    q: &HashMap<String, String>,
    owner: bool,
    all: Vec<&'v Value>,
    disabled: &[u64],
    insecure: &[u64],
) -> Result<Vec<&'v Value>, Box<Response>> {
    match q.get("filter").map(String::as_str) {
        None | Some("all") => Ok(all),
        Some(f @ ("2fa_disabled" | "2fa_insecure")) => {
            if !owner {
                return Err(Box::new(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    non_owner_filter_body(),
                )));
            }
            let ids: HashSet<u64> = if f == "2fa_disabled" {
                disabled
            } else {
                insecure
            }
            .iter()
            .copied()
            .collect();
            Ok(all
                .into_iter()
                .filter(|u| u["id"].as_u64().is_some_and(|i| ids.contains(&i)))
                .collect())
        }
        Some(_) => Err(Box::new(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "Validation Failed", "status": "422"}),
        ))),
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some(path) = uri.path().strip_prefix(shared.prefix.as_str()) else {
        return error(StatusCode::NOT_FOUND, not_found_body());
    };
    let path = path.to_string();
    // The version and media type this source is written against; GitHub answers 400 to an
    // unsupported version. The mock insists on both, so a regression shows.
    let version = headers
        .get("x-github-api-version")
        .and_then(|v| v.to_str().ok());
    let accept = headers.get("accept").and_then(|v| v.to_str().ok());
    if version != Some("2022-11-28") || accept != Some("application/vnd.github+json") {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("mock: expected X-GitHub-Api-Version 2022-11-28 and Accept application/vnd.github+json, got {version:?} / {accept:?}"), "status": "400"}),
        );
    }
    if method == Method::POST && path.starts_with("/app/installations/") {
        return token_exchange(&shared, &path, &headers);
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let installation = shared
        .exchange
        .lock()
        .unwrap()
        .issued
        .iter()
        .any(|t| t == auth);
    if auth != TOKEN && !installation {
        return error(StatusCode::UNAUTHORIZED, bad_credentials_body());
    }
    let q = query_map(&uri);
    // Held while the answer is built (no await below): large fixtures are not copied.
    let org = shared.org.lock().unwrap();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut resource = "core";
    let mut resp = match segs.as_slice() {
        ["orgs", o] if *o == org.login => {
            let mut v = json!({
                "login": org.login, "id": 1, "node_id": "MDEyOk9yZ2FuaXphdGlvbjE=",
                "url": format!("https://api.github.com/orgs/{}", org.login),
                "description": "A great organization", "type": "Organization",
                "plan": {"name": "enterprise", "space": 976562499, "private_repos": 999999}
            });
            if let Some(r) = org.two_factor_requirement_enabled {
                v["two_factor_requirement_enabled"] = json!(r);
            }
            (
                StatusCode::OK,
                [("content-type", "application/json; charset=utf-8")],
                v.to_string(),
            )
                .into_response()
        }
        ["orgs", o, "members"] if *o == org.login => {
            let all = match q.get("role").map(String::as_str) {
                Some("admin") => by_ids(&org.members, &org.owners),
                Some("member") => {
                    let owners: HashSet<u64> = org.owners.iter().copied().collect();
                    org.members
                        .iter()
                        .filter(|u| !u["id"].as_u64().is_some_and(|i| owners.contains(&i)))
                        .collect()
                }
                _ => refs(&org.members),
            };
            match filter(
                &q,
                org.owner,
                all,
                &org.members_2fa_disabled,
                &org.members_2fa_insecure,
            ) {
                Ok(items) => paged(
                    &shared,
                    &path,
                    &q,
                    &items,
                    org.page_size,
                    org.understate_last,
                ),
                Err(r) => *r,
            }
        }
        ["orgs", o, "outside_collaborators"] if *o == org.login => {
            match filter(
                &q,
                org.owner,
                refs(&org.collaborators),
                &org.collaborators_2fa_disabled,
                &org.collaborators_2fa_insecure,
            ) {
                Ok(items) => paged(
                    &shared,
                    &path,
                    &q,
                    &items,
                    org.page_size,
                    org.understate_last,
                ),
                Err(r) => *r,
            }
        }
        ["orgs", o, "invitations"] if *o == org.login => match &org.invitations {
            Some(items) => paged(
                &shared,
                &path,
                &q,
                &refs(items),
                org.page_size,
                org.understate_last,
            ),
            None => error(StatusCode::NOT_FOUND, not_found_body()),
        },
        ["orgs", o, "credential-authorizations"] if *o == org.login => {
            match &org.credential_authorizations {
                Some(items) => paged(
                    &shared,
                    &path,
                    &q,
                    &refs(items),
                    org.page_size,
                    org.understate_last,
                ),
                None => error(StatusCode::NOT_FOUND, not_found_body()),
            }
        }
        ["orgs", o, "personal-access-tokens"] if *o == org.login => {
            if installation {
                paged(
                    &shared,
                    &path,
                    &q,
                    &refs(&org.fine_grained),
                    org.page_size,
                    org.understate_last,
                )
            } else {
                error(
                    StatusCode::FORBIDDEN,
                    json!({"message": "Resource not accessible by personal access token", "documentation_url": "https://docs.github.com/rest/orgs/personal-access-tokens#list-fine-grained-personal-access-tokens-with-access-to-organization-resources", "status": "403"}),
                )
            }
        }
        ["orgs", o, "audit-log"] if *o == org.login => {
            resource = "audit_log";
            match &org.audit {
                Some(events) => audit_page(&shared, &path, &q, events, org.page_size),
                None => error(StatusCode::NOT_FOUND, not_found_body()),
            }
        }
        _ => error(StatusCode::NOT_FOUND, not_found_body()),
    };
    drop(org);
    let served = {
        let mut used = shared.used.lock().unwrap();
        let n = used.entry(resource).or_insert(0);
        *n += 1;
        *n
    };
    rate_headers(&mut resp, resource, served);
    resp
}
