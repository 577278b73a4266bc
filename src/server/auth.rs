//! Who may call what. `/api/v1` names vulnerable people, so it needs a bearer token
//! (`server.api_token_file`) or a loopback-only listener; `server.web_config_file`
//! (exporter-toolkit format) adds bcrypt basic auth in front of everything (and TLS, in
//! [`super::tls`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// How `/api/v1` is protected.
#[derive(Debug, Clone)]
pub enum ApiAccess {
    /// `Authorization: Bearer <token>` required.
    Token(Secret),
    /// Bound to loopback only: local callers are trusted.
    Loopback,
    /// Neither: the API is refused (403) so findings never leak by accident.
    Refused,
}

impl ApiAccess {
    pub fn new(token: Option<Secret>, listen: SocketAddr) -> ApiAccess {
        match token {
            Some(t) => ApiAccess::Token(t),
            None if listen.ip().is_loopback() => ApiAccess::Loopback,
            None => ApiAccess::Refused,
        }
    }
}

pub use super::webconfig::{HttpServerConfig, WebConfig};

/// Basic-auth users (bcrypt hashes). Successful checks are remembered, since bcrypt is
/// deliberately slow and Prometheus scrapes with the same credentials every time.
#[derive(Default)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Credentials (user, password) that verified. Bounded.
    verified: Mutex<Vec<(String, Secret)>>,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            users,
            verified: Mutex::new(Vec::new()),
        }
    }
    pub fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    fn check(&self, headers: &HeaderMap) -> bool {
        let Some((user, pass)) = basic_credentials(headers) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        {
            let v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if v.iter().any(|(u, p)| {
                *u == user && bool::from(p.expose().as_bytes().ct_eq(pass.as_bytes()))
            }) {
                return true;
            }
        }
        if bcrypt::verify(&pass, hash).unwrap_or(false) {
            let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if v.len() >= 64 {
                v.remove(0);
            }
            v.push((user, Secret::new(pass)));
            true
        } else {
            false
        }
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
}

pub struct AuthState {
    pub api: ApiAccess,
    pub basic: BasicAuth,
    pub extra_headers: Vec<(header::HeaderName, header::HeaderValue)>,
}

/// Basic auth in front of everything (when configured), plus the configured extra headers.
pub async fn basic_auth_layer(
    State(auth): State<Arc<AuthState>>,
    req: Request,
    next: Next,
) -> Response {
    if auth.basic.enabled() && !auth.basic.check(req.headers()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"identity-posture-exporter\"",
            )],
            "Unauthorized\n",
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    for (k, v) in &auth.extra_headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// The `/api/v1` rule. A request that passed basic auth counts as authenticated too, since
/// basic auth and a bearer token cannot share one `Authorization` header.
pub async fn api_guard(State(auth): State<Arc<AuthState>>, req: Request, next: Next) -> Response {
    let ok = match &auth.api {
        ApiAccess::Token(t) => {
            auth.basic.enabled()
                || bearer(req.headers())
                    .is_some_and(|b| bool::from(b.as_bytes().ct_eq(t.expose().as_bytes())))
        }
        ApiAccess::Loopback => true,
        ApiAccess::Refused => {
            return (
                StatusCode::FORBIDDEN,
                "Forbidden: /api/v1 lists vulnerable accounts; set server.api_token_file (then send Authorization: Bearer) or bind server.listen to loopback\n",
            )
                .into_response();
        }
    };
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "Unauthorized: Authorization: Bearer <token> required\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// The admin endpoints (`/-/reload`, `/-/poll/{source}`): callers on a loopback address, or
/// authenticated ones (basic auth, which the outer layer already checked, or the API token).
pub async fn admin_guard(State(auth): State<Arc<AuthState>>, req: Request, next: Next) -> Response {
    let loopback = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback());
    let token = match &auth.api {
        ApiAccess::Token(t) => bearer(req.headers())
            .is_some_and(|b| bool::from(b.as_bytes().ct_eq(t.expose().as_bytes()))),
        _ => false,
    };
    if loopback || token || auth.basic.enabled() {
        return next.run(req).await;
    }
    (
        StatusCode::FORBIDDEN,
        "Forbidden: admin endpoints answer loopback callers, or authenticated ones (web config basic auth or the API bearer token)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_follows_token_and_bind_address() {
        let lo: SocketAddr = "127.0.0.1:9863".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9863".parse().unwrap();
        let v6: SocketAddr = "[::1]:9863".parse().unwrap();
        assert!(matches!(ApiAccess::new(None, lo), ApiAccess::Loopback));
        assert!(matches!(ApiAccess::new(None, v6), ApiAccess::Loopback));
        assert!(matches!(ApiAccess::new(None, any), ApiAccess::Refused));
        assert!(matches!(
            ApiAccess::new(Some(Secret::new("t")), any),
            ApiAccess::Token(_)
        ));
    }

    #[test]
    fn basic_auth_verifies_bcrypt_and_caches() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let ba = BasicAuth::new([("prom".to_string(), hash)].into());
        let mut h = HeaderMap::new();
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {}", enc("prom:s3cret")).parse().unwrap(),
        );
        assert!(ba.check(&h));
        assert!(ba.check(&h), "cached");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {}", enc("prom:wrong")).parse().unwrap(),
        );
        assert!(!ba.check(&h));
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {}", enc("eve:s3cret")).parse().unwrap(),
        );
        assert!(!ba.check(&h));
    }
}
