//! exporter-toolkit compatibility: the toolkit's own web-config test corpus
//! (tests/data/exporter-toolkit, copied from prometheus/exporter-toolkit web/testdata, see
//! its NOTICE). Every `*.good.*` file starts a server that answers the client the toolkit's
//! tests use; every `*.bad.*` file is refused, at start-up or, where the toolkit refuses at
//! the connection, for that client. Every file of the corpus must be listed below, so a new
//! one cannot slip through untested. One deliberate difference is listed with its reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use identity_posture_exporter::config::ServerConfig;
use identity_posture_exporter::server;
use identity_posture_exporter::state::{AppState, Live};

const DIR: &str = "tests/data/exporter-toolkit";

#[derive(Debug, Clone, Copy)]
enum Client {
    Plain,
    Tls,
    /// TLS presenting this certificate and key from the corpus.
    TlsWith(&'static str),
}

#[derive(Debug)]
enum Expect {
    /// Starts; the client gets 200 from /-/healthy.
    Serves(Client),
    /// Starts with basic auth: 401 without credentials, 200 as dave (password dave123).
    ServesWithAuth(Client),
    /// Refused at start-up with a message containing this.
    Refused(&'static str),
    /// Starts, but refuses this client at the connection.
    RefusesClient(Client),
    /// Starts; every request is answered 429.
    RateLimited,
    /// We refuse a file the toolkit accepts, with a message naming what is unsupported.
    Unsupported(&'static str, &'static str),
}

fn expectations() -> Vec<(&'static str, Expect)> {
    use Client::*;
    use Expect::*;
    vec![
        (
            "tls_config_noAuth.requireandverifyclientcert.good.yml",
            Serves(TlsWith("client_selfsigned")),
        ),
        (
            "tls_config_noAuth.requireanyclientcert.good.yml",
            Serves(TlsWith("client_selfsigned")),
        ),
        (
            "tls_config_noAuth.requireanyclientcertkeyinline.good.yml",
            Serves(TlsWith("client_selfsigned")),
        ),
        (
            "web_config_auth_clientCAs_invalid.bad.yml",
            Refused("somefile"),
        ),
        // Identical to web_config_noAuth.good.blocking.yml, which the toolkit starts: a
        // client without a certificate is refused ("blocking").
        (
            "web_config_auth_clientCAs_missing.bad.yml",
            RefusesClient(Tls),
        ),
        (
            "web_config_auth_client_san.bad.yaml",
            RefusesClient(TlsWith("client2_selfsigned")),
        ),
        (
            "web_config_auth_client_san.good.yaml",
            Serves(TlsWith("client2_selfsigned")),
        ),
        (
            "web_config_auth_user_list_invalid.bad.yml",
            Refused("basic_auth_users.john: not a bcrypt hash"),
        ),
        ("web_config_empty.yml", Serves(Plain)),
        ("web_config_headers.good.yml", Serves(Plain)),
        (
            "web_config_headers_content_type_options.bad.yml",
            Refused("invalid value for X-Content-Type-Options"),
        ),
        (
            "web_config_headers_extra_header.bad.yml",
            Refused("\"Content-Type\" can not be configured"),
        ),
        (
            "web_config_headers_frame_options.bad.yml",
            Refused("invalid value for X-Frame-Options"),
        ),
        ("web_config_junk.yml", Refused("web_config_junk.yml")),
        ("web_config_junk_key.yml", Refused("cert_filse")),
        (
            "web_config_noAuth.bad.yml",
            Refused("client_auth_type is NoClientCert"),
        ),
        ("web_config_noAuth.good.blocking.yml", RefusesClient(Tls)),
        ("web_config_noAuth.good.yml", Serves(Tls)),
        ("web_config_noAuth_allCiphers.good.yml", Serves(Tls)),
        ("web_config_noAuth_allCurves.good.yml", Serves(Tls)),
        (
            "web_config_noAuth_certPath_empty.bad.yml",
            Refused("missing one of cert or cert_file"),
        ),
        (
            "web_config_noAuth_certPath_invalid.bad.yml",
            Refused("somefile"),
        ),
        (
            "web_config_noAuth_certPath_keyPath_empty.bad.yml",
            Refused("missing one of cert or cert_file"),
        ),
        (
            "web_config_noAuth_certPath_keyPath_invalid.bad.yml",
            Refused("somefile"),
        ),
        (
            "web_config_noAuth_cert_empty.bad.yml",
            Refused("missing one of cert or cert_file"),
        ),
        (
            "web_config_noAuth_inventedCiphers.bad.yml",
            Refused("unknown cipher suite"),
        ),
        (
            "web_config_noAuth_inventedCurves.bad.yml",
            Refused("unknown curve"),
        ),
        (
            "web_config_noAuth_keyPath_empty.bad.yml",
            Refused("missing one of key or key_file"),
        ),
        (
            "web_config_noAuth_keyPath_invalid.bad.yml",
            Refused("server.cert"),
        ),
        (
            "web_config_noAuth_key_empty.bad.yml",
            Refused("missing one of key or key_file"),
        ),
        ("web_config_noAuth_noHTTP2.good.yml", Serves(Tls)),
        ("web_config_noAuth_noHTTP2Cipher.bad.yml", Refused("HTTP/2")),
        ("web_config_noAuth_someCiphers.good.yml", Serves(Tls)),
        (
            "web_config_noAuth_someCiphers_noOrder.good.yml",
            Serves(Tls),
        ),
        // rustls (with ring) has no P-521 key exchange, and this file allows nothing else.
        (
            "web_config_noAuth_someCurves.good.yml",
            Unsupported(
                "CurveP521 is not supported",
                "no P-521 key exchange in rustls",
            ),
        ),
        ("web_config_noAuth_tlsInline.good.yml", Serves(Tls)),
        (
            "web_config_noAuth_wrongTLSVersion.bad.yml",
            Refused("TLS111"),
        ),
        ("web_config_rate_limiter_nonblocking.yaml", Serves(Plain)),
        ("web_config_rate_limiter_one_second.yaml", RateLimited),
        ("web_config_users.good.yml", ServesWithAuth(Tls)),
        ("web_config_users_noTLS.good.yml", ServesWithAuth(Plain)),
    ]
}

fn corpus() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    v.sort();
    v
}

fn server_cfg(web: &Path, listen: SocketAddr) -> ServerConfig {
    ServerConfig {
        listen,
        web_config_file: Some(web.to_path_buf()),
        api_token: None,
        external_url: None,
        limits: Default::default(),
    }
}

fn client(kind: Client, addr: SocketAddr) -> (reqwest::Client, String) {
    let ca = std::fs::read(Path::new(DIR).join("tls-ca-chain.pem")).unwrap();
    let mut b = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .resolve("localhost", addr);
    match kind {
        Client::Plain => {
            return (
                b.build().unwrap(),
                format!("http://127.0.0.1:{}", addr.port()),
            )
        }
        Client::Tls => {}
        Client::TlsWith(name) => {
            let mut pem = std::fs::read(Path::new(DIR).join(format!("{name}.pem"))).unwrap();
            pem.extend(std::fs::read(Path::new(DIR).join(format!("{name}.key"))).unwrap());
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
    }
    b = b.add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    (
        b.build().unwrap(),
        format!("https://localhost:{}", addr.port()),
    )
}

/// Starts the server with `web`; returns its address and a stopper.
async fn start(web: &Path) -> Result<(SocketAddr, tokio::sync::oneshot::Sender<()>), String> {
    let listener = server::bind("127.0.0.1:0".parse().unwrap())?;
    let addr = listener.local_addr().unwrap();
    let cfg = server_cfg(web, addr);
    server::web_config(&cfg)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let live = Arc::new(Live::new(Arc::new(AppState::new(&[]))));
    tokio::spawn(async move {
        let _ = server::serve(listener, live, None, &cfg, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok((addr, tx))
}

async fn status(c: &reqwest::Client, url: &str, auth: Option<(&str, &str)>) -> Result<u16, String> {
    let mut r = c.get(format!("{url}/-/healthy"));
    if let Some((u, p)) = auth {
        r = r.basic_auth(u, Some(p));
    }
    match r.send().await {
        Ok(resp) => {
            let code = resp.status().as_u16();
            // A TLS 1.3 server refuses a client certificate after the handshake: the body
            // read fails then.
            resp.text().await.map_err(|e| e.to_string())?;
            Ok(code)
        }
        Err(e) => Err(format!("{e:?}")),
    }
}

#[test]
fn every_file_of_the_corpus_has_an_expectation() {
    let listed: Vec<String> = {
        let mut v: Vec<String> = expectations().iter().map(|(f, _)| f.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(corpus(), listed);
    assert!(Path::new(DIR).join("NOTICE").exists());
}

#[tokio::test]
async fn the_toolkit_corpus_behaves_as_the_toolkit_says() {
    let mut agree = 0;
    let mut problems = Vec::new();
    for (file, expect) in expectations() {
        let path: PathBuf = Path::new(DIR).join(file);
        let started = start(&path).await;
        let outcome: Result<(), String> = match (&expect, &started) {
            (Expect::Refused(needle), Err(e)) | (Expect::Unsupported(needle, _), Err(e)) => {
                if let Expect::Unsupported(_, why) = &expect {
                    eprintln!("known difference from exporter-toolkit: {file}: {why}");
                }
                if e.contains(needle) && e.contains(file) {
                    Ok(())
                } else {
                    Err(format!("refused, but the message lacks {needle:?}: {e}"))
                }
            }
            (Expect::Refused(_) | Expect::Unsupported(..), Ok(_)) => Err("accepted".into()),
            (_, Err(e)) => Err(format!("refused: {e}")),
            (Expect::Serves(c), Ok((addr, _))) => {
                let (cl, url) = client(*c, *addr);
                match status(&cl, &url, None).await {
                    Ok(200) => Ok(()),
                    other => Err(format!("{c:?} got {other:?}")),
                }
            }
            (Expect::ServesWithAuth(c), Ok((addr, _))) => {
                let (cl, url) = client(*c, *addr);
                let anon = status(&cl, &url, None).await;
                let dave = status(&cl, &url, Some(("dave", "dave123"))).await;
                let wrong = status(&cl, &url, Some(("dave", "nope"))).await;
                if (anon.clone(), dave.clone(), wrong.clone()) == (Ok(401), Ok(200), Ok(401)) {
                    Ok(())
                } else {
                    Err(format!(
                        "anonymous {anon:?}, dave {dave:?}, wrong password {wrong:?}"
                    ))
                }
            }
            (Expect::RefusesClient(c), Ok((addr, _))) => {
                let (cl, url) = client(*c, *addr);
                match status(&cl, &url, None).await {
                    Ok(200) => Err(format!("{c:?} was served")),
                    _ => Ok(()),
                }
            }
            (Expect::RateLimited, Ok((addr, _))) => {
                let (cl, url) = client(Client::Plain, *addr);
                let mut codes = Vec::new();
                for _ in 0..3 {
                    codes.push(status(&cl, &url, None).await);
                }
                if codes.iter().all(|c| c == &Ok(429)) {
                    Ok(())
                } else {
                    Err(format!("{codes:?}"))
                }
            }
        };
        if let Ok((_, stop)) = started {
            let _ = stop.send(());
        }
        match outcome {
            Ok(()) => agree += 1,
            Err(e) => problems.push(format!("{file} ({expect:?}): {e}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(agree, expectations().len());
}

#[tokio::test]
async fn the_rate_limit_lets_a_burst_through_then_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "rate_limit:\n  interval: 1h\n  burst: 3\n").unwrap();
    let (addr, _stop) = start(&web).await.unwrap();
    let (cl, url) = client(Client::Plain, addr);
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(status(&cl, &url, None).await.unwrap());
    }
    assert_eq!(codes, vec![200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn the_example_web_config_is_valid_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("examples/web-config.yml", dir.path().join("web.yml")).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    let (addr, _stop) = start(&dir.path().join("web.yml")).await.unwrap();
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ck.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}", addr.port());
    assert_eq!(status(&c, &url, None).await, Ok(401));
    assert_eq!(
        status(&c, &url, Some(("prometheus", "change-me"))).await,
        Ok(200)
    );
}
