//! The HTTP server (README "HTTP endpoints"): `/metrics` (ready bytes from the last poll), the landing page,
//! `/-/healthy`, `/-/ready`, and the `/api/v1` views in [`api`]. Scrapes never call upstream.

pub mod api;
pub mod auth;
pub mod tls;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::ServerConfig;
use crate::metrics;
use crate::state::{AppState, BUILD};
use auth::{ApiAccess, AuthState, BasicAuth, WebConfig};

/// Reads `server.web_config_file`, if any.
pub fn web_config(server: &ServerConfig) -> Result<WebConfig, String> {
    match &server.web_config_file {
        Some(p) => WebConfig::load(p),
        None => Ok(WebConfig::default()),
    }
}

/// Builds the router. `server` decides who may call `/api/v1`.
pub fn app(state: Arc<AppState>, server: &ServerConfig) -> Result<Router, String> {
    app_with(state, server, web_config(server)?)
}

fn app_with(state: Arc<AppState>, server: &ServerConfig, web: WebConfig) -> Result<Router, String> {
    let mut extra_headers = Vec::new();
    for (k, v) in web.http_server_config.iter().flat_map(|h| h.headers.iter()) {
        let name = header::HeaderName::try_from(k.as_str())
            .map_err(|_| format!("web config: invalid header name {k:?}"))?;
        let value = header::HeaderValue::try_from(v.as_str())
            .map_err(|_| format!("web config: invalid value for header {k:?}"))?;
        extra_headers.push((name, value));
    }
    let auth = Arc::new(AuthState {
        api: ApiAccess::new(server.api_token.clone(), server.listen),
        basic: BasicAuth::new(web.basic_auth_users),
        extra_headers,
    });
    Ok(router(state, auth))
}

pub fn router(state: Arc<AppState>, auth: Arc<AuthState>) -> Router {
    let api = Router::new()
        .route("/api/v1/sources", get(api::sources))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/findings", get(api::findings))
        .route("/api/v1/accounts/{source}/{id}", get(api::account))
        .route_layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::api_guard,
        ));
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics_handler))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::basic_auth_layer,
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight responses finish. Plain HTTP, or
/// TLS when the web config has `tls_server_config` (certificates re-read when they change).
pub async fn run(
    state: Arc<AppState>,
    server: &ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let mut web = web_config(server)?;
    let tls_cfg = web.tls_server_config.take();
    let router = app_with(state, server, web)?;
    let addr = server.listen;
    match tls_cfg {
        None => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|e| format!("server error: {e}"))
        }
        Some(t) => {
            let rustls = axum_server::tls_rustls::RustlsConfig::from_config(tls::build(&t)?);
            let handle = axum_server::Handle::new();
            let h = handle.clone();
            tokio::spawn(async move {
                shutdown.await;
                h.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
            });
            let reload = rustls.clone();
            tokio::spawn(async move {
                let mut stamp = t.stamp();
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                    let now = t.stamp();
                    if now == stamp {
                        continue;
                    }
                    match tls::build(&t) {
                        Ok(c) => {
                            reload.reload_from_config(c);
                            stamp = now;
                            tracing::info!("TLS certificate reloaded");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "TLS files changed but cannot be loaded; keeping the old certificate")
                        }
                    }
                }
            });
            axum_server::bind_rustls(addr, rustls)
                .handle(handle)
                .serve(router.into_make_service())
                .await
                .map_err(|e| format!("cannot serve TLS on {addr}: {e}"))
        }
    }
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    let cached = state.metrics.load_full();
    let process = metrics::process_metrics();
    let mut body = Vec::with_capacity(cached.len() + process.len());
    body.extend_from_slice(&cached);
    body.extend_from_slice(&process);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn landing(State(state): State<Arc<AppState>>) -> Html<String> {
    let mut rows = String::new();
    for s in &state.sources {
        let st = s.status();
        let r = s.report.load_full();
        let state_txt = st.state();
        let (active, ratio, findings) = match &r {
            Some(r) => (
                (r.tally.active[0] + r.tally.active[1]).to_string(),
                format!("{:.1} %", r.tally.compliant_ratio() * 100.0),
                r.tally.findings.iter().sum::<u64>().to_string(),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let last = st
            .last_success
            .map(crate::model::format_ts)
            .unwrap_or_else(|| "never".into());
        let err = st.last_error.as_deref().filter(|_| !st.up).unwrap_or("");
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"{state_txt}\">{state_txt}</td><td>{active}</td><td>{ratio}</td><td>{findings}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&s.name),
            s.provider,
            esc(&last),
            esc(err)
        ));
    }
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>identity-posture-exporter</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}.ok{{color:#080}}.error{{color:#b00}}.pending{{color:#888}}</style>
</head><body>
<h1>identity-posture-exporter</h1>
<p>Identity posture (MFA, dormant accounts, credential rotation, privilege) per source, from the last background poll. Version {} ({}).</p>
<table><tr><th>source</th><th>provider</th><th>state</th><th>active accounts</th><th>compliant</th><th>findings</th><th>last success</th><th>last error</th></tr>
{rows}</table>
<ul>
<li><a href="metrics">/metrics</a> – Prometheus metrics</li>
<li><a href="api/v1/sources">/api/v1/sources</a> – source state and errors</li>
<li><a href="api/v1/summary">/api/v1/summary</a> – counts per check and severity</li>
<li><a href="api/v1/findings">/api/v1/findings</a> – per-account findings (<a href="api/v1/findings?format=csv">CSV</a>)</li>
<li><a href="-/healthy">/-/healthy</a>, <a href="-/ready">/-/ready</a></li>
</ul>
</body></html>
"#,
        BUILD.version, BUILD.revision
    ))
}
