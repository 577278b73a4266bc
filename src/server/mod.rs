//! The HTTP server (README "HTTP endpoints"): `/metrics` (ready bytes from the last poll),
//! the findings view in [`views`] (overview at `/`), `/-/healthy`, `/-/ready`, `/-/reload`,
//! `/-/poll/{source}`, and the `/api/v1` views in [`api`]. Scrapes never call upstream.
//! One listener ([`conn`]) serves plain HTTP and TLS with a connection cap and timeouts.

pub mod activity_api;
pub mod api;
pub mod auth;
pub mod compliance;
pub mod conn;
pub mod csv_safe;
pub mod gzip;
pub mod tls;
pub mod views;
pub mod webconfig;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::future::BoxFuture;

use arc_swap::ArcSwap;

use crate::config::ServerConfig;
use crate::metrics;
use crate::state::{AppState, Live};
use auth::{ApiAccess, AuthState, BasicAuth, WebConfig};
pub use conn::HttpStats;

/// Reloads the configuration (`POST /-/reload`, SIGHUP): `Ok` with a summary, or `Err` with
/// the problems, in which case the running configuration stays.
pub type Reloader = Arc<dyn Fn() -> BoxFuture<'static, Result<String, String>> + Send + Sync>;

/// What every handler can reach.
pub struct ServerState {
    pub live: Arc<Live>,
    pub reloader: Option<Reloader>,
    /// `/metrics` compressed once per poll for scrapers that accept gzip.
    pub gzip: gzip::GzipCache,
}

impl ServerState {
    /// The configuration and sources in force now.
    pub fn app(&self) -> Arc<AppState> {
        self.live.load()
    }
}

/// Reads `server.web_config_file`, if any.
pub fn web_config(server: &ServerConfig) -> Result<WebConfig, String> {
    match &server.web_config_file {
        Some(p) => WebConfig::load(p),
        None => Ok(WebConfig::default()),
    }
}

/// Builds the router over fixed state (no reload). `server` decides who may call `/api/v1`.
pub fn app(state: Arc<AppState>, server: &ServerConfig) -> Result<Router, String> {
    let shared = Arc::new(ServerState {
        live: Arc::new(Live::new(state)),
        reloader: None,
        gzip: Default::default(),
    });
    app_with(shared, server, web_config(server)?, Arc::default())
}

/// Builds the router over reloadable state.
pub fn app_live(
    live: Arc<Live>,
    reloader: Option<Reloader>,
    server: &ServerConfig,
) -> Result<Router, String> {
    let shared = Arc::new(ServerState {
        live,
        reloader,
        gzip: Default::default(),
    });
    app_with(shared, server, web_config(server)?, Arc::default())
}

fn app_with(
    state: Arc<ServerState>,
    server: &ServerConfig,
    web: WebConfig,
    stats: Arc<HttpStats>,
) -> Result<Router, String> {
    let mut extra_headers = Vec::new();
    for (k, v) in web.http_server_config.iter().flat_map(|h| h.headers.iter()) {
        let name = header::HeaderName::try_from(k.as_str())
            .map_err(|_| format!("web config: invalid header name {k:?}"))?;
        let value = header::HeaderValue::try_from(v.as_str())
            .map_err(|_| format!("web config: invalid value for header {k:?}"))?;
        extra_headers.push((name, value));
    }
    let limiter = web.limiter().map(Arc::new);
    let auth = Arc::new(AuthState {
        api: ApiAccess::new(server.api_token.clone(), server.listen),
        basic: BasicAuth::new(web.basic_auth_users),
        extra_headers,
        stats,
    });
    Ok(
        router(state, auth).layer(axum::middleware::from_fn_with_state(
            limiter,
            webconfig::rate_limit_layer,
        )),
    )
}

pub fn router(state: Arc<ServerState>, auth: Arc<AuthState>) -> Router {
    let stats = auth.stats.clone();
    // Everything that names people: the API and the source (exceptions, resolved findings'
    // logins), findings and account pages.
    let api = Router::new()
        .route("/api/v1/sources", get(api::sources))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/findings", get(api::findings))
        .route("/api/v1/accounts/{source}/{id}", get(api::account))
        .route("/api/v1/compliance", get(api::compliance))
        .route("/api/v1/activity", get(activity_api::activity))
        .route("/source", get(views::pages::source))
        .route("/findings", get(views::pages::findings))
        .route("/account", get(views::pages::account))
        .route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::api_guard,
        ));
    let admin = Router::new()
        .route("/-/reload", post(reload_handler))
        .route("/-/poll/{source}", post(poll_handler))
        .route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::admin_guard,
        ));
    Router::new()
        .route("/", get(views::pages::overview))
        .route("/compliance", get(views::pages::compliance_page))
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .merge(api)
        .merge(admin)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::basic_auth_layer,
        ))
        .layer(Extension(stats))
        .with_state(state)
}

/// Binds the listen address, so that a port in use is reported before anything else starts.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    Ok(l)
}

/// Binds `server.listen` and serves fixed state (see [`serve`]).
pub async fn run(
    state: Arc<AppState>,
    server: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let listener = bind(server.listen)?;
    serve(listener, Arc::new(Live::new(state)), None, server, shutdown).await
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight responses finish
/// (at most [`conn::SHUTDOWN_GRACE`]). Plain HTTP, or TLS when the web config has
/// `tls_server_config` (certificates re-read when they change). Either way the connection
/// cap and timeouts of `server.limits` apply ([`conn`]), and handlers see the peer address
/// (`ConnectInfo<SocketAddr>`, which the admin endpoints' guard reads).
pub async fn serve(
    listener: std::net::TcpListener,
    live: Arc<Live>,
    reloader: Option<Reloader>,
    server: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let addr = server.listen;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    serve_tokio(listener, live, reloader, server, shutdown).await
}

/// [`serve`] of fixed state on a listener that is already bound (tests bind 127.0.0.1:0
/// themselves).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    server: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    serve_tokio(listener, Arc::new(Live::new(state)), None, server, shutdown).await
}

async fn serve_tokio(
    listener: tokio::net::TcpListener,
    live: Arc<Live>,
    reloader: Option<Reloader>,
    server: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let mut web = web_config(server)?;
    let tls_cfg = web.tls_server_config.take();
    let stats = Arc::new(HttpStats::default());
    let shared = Arc::new(ServerState {
        live,
        reloader,
        gzip: Default::default(),
    });
    let router = app_with(shared, server, web, stats.clone())?;
    let tls = match &tls_cfg {
        None => None,
        Some(t) => Some(Arc::new(ArcSwap::new(tls::build(t)?))),
    };
    // Certificates (and client CAs) re-read when their files change; each new handshake
    // takes the configuration in force.
    let cert_reload = match (tls_cfg, &tls) {
        (Some(t), Some(current)) => {
            let current = current.clone();
            Some(tokio::spawn(async move {
                let mut stamp = t.stamp();
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    let now = t.stamp();
                    if now == stamp {
                        continue;
                    }
                    match tls::build(&t) {
                        Ok(c) => {
                            current.store(c);
                            stamp = now;
                            tracing::info!("TLS certificate reloaded");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "TLS files changed but cannot be loaded; keeping the old certificate")
                        }
                    }
                }
            }))
        }
        _ => None,
    };
    conn::serve(listener, router, tls, server.limits, stats, shutdown).await;
    if let Some(r) = cert_reload {
        r.abort();
    }
    Ok(())
}

async fn metrics_handler(
    State(state): State<Arc<ServerState>>,
    Extension(http): Extension<Arc<HttpStats>>,
    headers: header::HeaderMap,
) -> Response {
    let cached = state.app().metrics.load_full();
    let process = metrics::process_metrics();
    let http = http.render();
    let vary = (header::VARY, "Accept-Encoding");
    if gzip::accepts_gzip(&headers) {
        let mut live = http;
        live.extend_from_slice(&process);
        let body = state.gzip.encode(&cached, &live);
        return (
            [
                (header::CONTENT_TYPE, metrics::CONTENT_TYPE),
                (header::CONTENT_ENCODING, "gzip"),
                vary,
            ],
            body,
        )
            .into_response();
    }
    let mut body = Vec::with_capacity(cached.len() + process.len() + http.len());
    body.extend_from_slice(&cached);
    body.extend_from_slice(&http);
    body.extend_from_slice(&process);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE), vary], body).into_response()
}
async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    let state = state.app();
    let waiting: Vec<&str> = state
        .sources
        .iter()
        .filter(|s| !s.status().completed)
        .map(|s| s.name.as_str())
        .collect();
    if waiting.is_empty() {
        (StatusCode::OK, "Ready\n".to_string()).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Not ready: waiting for the first poll of {}\n",
                waiting.join(", ")
            ),
        )
            .into_response()
    }
}

/// `POST /-/reload`: reloads the configuration; the old one stays on any error.
async fn reload_handler(State(state): State<Arc<ServerState>>) -> Response {
    let Some(reload) = &state.reloader else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "Reload is not available in this mode\n",
        )
            .into_response();
    };
    match reload().await {
        Ok(msg) => (StatusCode::OK, format!("{msg}\n")).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("configuration not reloaded, the running one stays:\n{e}\n"),
        )
            .into_response(),
    }
}

/// `POST /-/poll/{source}`: polls the source now (after the poll in flight, if any).
async fn poll_handler(
    State(state): State<Arc<ServerState>>,
    Path(source): Path<String>,
) -> Response {
    let app = state.app();
    match app.source(&source) {
        Some(s) => {
            s.poll_now.notify_one();
            (
                StatusCode::ACCEPTED,
                format!("Poll of {source} requested\n"),
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            format!("No source named {source:?}\n"),
        )
            .into_response(),
    }
}
