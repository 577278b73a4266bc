//! TLS from `server.web_config_file` (exporter-toolkit `tls_server_config`): the daemon's
//! listener speaks HTTPS with the configured certificate (paths relative to the web config),
//! refuses plain HTTP, and rejects unusable TLS settings at start-up with the file named.

use std::sync::Arc;

use identity_posture_exporter::config;
use identity_posture_exporter::server;
use identity_posture_exporter::sources::config_from_toml;
use identity_posture_exporter::state::AppState;

fn write_cert(dir: &std::path::Path) -> String {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = ck.cert.pem();
    std::fs::write(dir.join("tls.crt"), &pem).unwrap();
    std::fs::write(dir.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    pem
}

fn server_cfg(web: &std::path::Path, port: u16) -> config::Config {
    config_from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nweb_config_file = \"{}\"\n[[sources]]\nname = \"demo\"\ntype = \"file\"\npath = \"examples/demo-identities.json\"\n",
        web.display()
    ))
    .unwrap()
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pem = write_cert(dir.path());
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS12\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = server_cfg(&web, port);
    let state = Arc::new(AppState::new(&cfg.sources));
    identity_posture_exporter::metrics::refresh(&state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server_cfg = cfg.server.clone();
    let task = tokio::spawn(async move {
        server::run(state, &server_cfg, async {
            let _ = rx.await;
        })
        .await
    });
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let mut ok = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("https://localhost:{port}/-/healthy"))
            .send()
            .await
        {
            ok = Some(r.status());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert_eq!(ok, Some(reqwest::StatusCode::OK));
    let body = client
        .get(format!("https://localhost:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("identity_posture_source_up"));
    // Plain HTTP on the TLS port fails.
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true));
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[test]
fn unusable_tls_settings_are_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    write_cert(dir.path());
    let web = dir.path().join("web.yml");
    for (body, needle) in [
        ("tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n", "missing.crt"),
        ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.crt\n", "key_file"),
        ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS10\n", "TLS10"),
        ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: missing-ca.pem\n", "missing-ca.pem"),
        ("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  colour: blue\n", "colour"),
    ] {
        std::fs::write(&web, body).unwrap();
        let cfg = server_cfg(&web, 1);
        let e = server::web_config(&cfg.server).unwrap_err();
        assert!(e.contains("web.yml") && e.contains(needle), "{needle}: {e}");
    }
}
