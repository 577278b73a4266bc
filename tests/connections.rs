//! The listener under hostile clients (issue #14): connections that never finish their
//! headers or sit idle are closed on time, the connection cap makes room by closing the
//! longest-waiting connection, TLS handshakes are timed too, and `/metrics` counts it all.
//! Real server on 127.0.0.1:0, raw TCP clients.

use std::sync::Arc;
use std::time::Duration;

use identity_posture_exporter::config::Config;
use identity_posture_exporter::server;
use identity_posture_exporter::sources::config_from_toml;
use identity_posture_exporter::state::AppState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(server_extra: &str) -> Config {
    config_from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n[[sources]]\nname = \"demo\"\ntype = \"file\"\npath = \"examples/demo-identities.json\"\n"
    ))
    .unwrap()
}

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

async fn start(cfg: Config) -> Running {
    let state = Arc::new(AppState::new(&cfg.sources));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server_cfg = cfg.server.clone();
    let task = tokio::spawn(async move {
        server::serve_on(listener, state, &server_cfg, async {
            let _ = rx.await;
        })
        .await
    });
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Running {
    async fn metric(&self, series: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} not in /metrics"))
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

/// Waits (bounded) for the server to close `s`: true when it did.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn headers_that_never_finish_are_cut_off() {
    let r = start(config(
        "header_read_timeout = \"300ms\"\nidle_timeout = \"1h\"",
    ))
    .await;
    // Sends nothing at all.
    let mut silent = TcpStream::connect(r.addr).await.unwrap();
    // Sends half a request and stops (slowloris).
    let mut half = TcpStream::connect(r.addr).await.unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(10)).await);
    assert!(closed_by_server(&mut half, Duration::from_secs(10)).await);
    assert_eq!(
        r.metric("identity_posture_http_connections_closed_total{reason=\"header_timeout\"}")
            .await,
        2.0
    );
    r.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let r = start(config(
        "header_read_timeout = \"1h\"\nidle_timeout = \"300ms\"",
    ))
    .await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    c.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_by_server(&mut c, Duration::from_secs(10)).await);
    assert_eq!(
        r.metric("identity_posture_http_connections_closed_total{reason=\"idle_timeout\"}")
            .await,
        1.0
    );
    assert_eq!(
        r.metric("identity_posture_http_connections_closed_total{reason=\"header_timeout\"}")
            .await,
        0.0
    );
    r.stop().await;
}

#[tokio::test]
async fn a_keep_alive_connection_within_its_timeouts_stays_open() {
    let r = start(config(
        "header_read_timeout = \"2s\"\nidle_timeout = \"1h\"",
    ))
    .await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..3 {
        c.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    // Idle longer than the header timeout: still open (idle_timeout governs idleness).
    assert!(!closed_by_server(&mut c, Duration::from_secs(3)).await);
    r.stop().await;
}

#[tokio::test]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let r = start(config("max_connections = 4\nheader_read_timeout = \"1h\"")).await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(r.addr).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A fifth client (the scrape) is served; the oldest idle client was closed for it.
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let resp = c
        .get(format!("http://{}/metrics", r.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("identity_posture_http_connections_max 4\n"),
        "{text}"
    );
    assert!(closed_by_server(&mut idle[0], Duration::from_secs(5)).await);
    assert!(!closed_by_server(&mut idle[3], Duration::from_millis(200)).await);
    assert!(
        r.metric("identity_posture_http_connections_closed_total{reason=\"evicted\"}")
            .await
            >= 1.0
    );
    assert!(r.metric("identity_posture_http_connections").await <= 4.0);
    assert_eq!(
        r.metric("identity_posture_http_connections_rejected_total")
            .await,
        0.0
    );
    r.stop().await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
    )
    .unwrap();
    let r = start(config(&format!(
        "web_config_file = \"{}\"\nheader_read_timeout = \"300ms\"",
        web.display()
    )))
    .await;
    let mut silent = TcpStream::connect(r.addr).await.unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(10)).await);
    // A real client still gets through.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", r.addr)
        .build()
        .unwrap();
    let text = client
        .get(format!("https://localhost:{}/metrics", r.addr.port()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text
        .contains("identity_posture_http_connections_closed_total{reason=\"header_timeout\"} 1\n"));
    r.stop().await;
}

#[tokio::test]
async fn handlers_see_the_peer_address_and_admin_endpoints_answer_loopback_callers() {
    use axum::extract::ConnectInfo;
    // The listener hands every request the peer address, as axum's serve did.
    let router =
        axum::Router::new().route(
            "/",
            axum::routing::get(
                |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                    peer.ip().to_string()
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::conn::serve(
        listener,
        router,
        None,
        Default::default(),
        Arc::default(),
        async {
            let _ = rx.await;
        },
    ));
    let body = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "127.0.0.1");
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("server stops")
        .unwrap();

    // So the admin guard (loopback callers, or authenticated ones) lets a local caller in.
    let r = start(config("")).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/-/poll/demo", r.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    r.stop().await;
}
