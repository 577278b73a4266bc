//! End to end: the real server on 127.0.0.1:0 over a small organisation whose every answer
//! is worked out by hand below (not by the code under test), then the API, auth, pagination
//! and "a failed poll keeps the last good numbers".

use std::collections::BTreeMap;
use std::sync::Arc;

use identity_posture_exporter::config::Config;
use identity_posture_exporter::poller::{poll_and_publish, Clock};
use identity_posture_exporter::server;
use identity_posture_exporter::sources::Source;
use identity_posture_exporter::sources::{config_from_toml, Deps};
use identity_posture_exporter::state::AppState;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn clock() -> Clock {
    Arc::new(|| NOW)
}

fn config(path: &str, extra_server: &str) -> Config {
    config_from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
{extra_server}
[policy]
exclude_accounts = ["breakglass-*@example.com"]
service_account_patterns = ["svc-*"]
[[policy.privilege_rules]]
role = "SUPER_ADMIN"
allow_groups = ["it-admins"]
[[sources]]
name = "org"
type = "file"
path = "{path}"
"#
    ))
    .unwrap()
}

struct Running {
    base: String,
    state: Arc<AppState>,
    cfg: Config,
    source: Source,
}

impl Running {
    async fn poll(&self) -> Result<(), String> {
        poll_and_publish(
            &self.cfg.sources[0],
            &self.source,
            &self.state.sources[0],
            &self.state,
            &clock(),
        )
        .await
    }
}

async fn start(cfg: Config) -> Running {
    let state = Arc::new(AppState::new(&cfg.sources));
    identity_posture_exporter::metrics::refresh(&state);
    let app = server::app(state.clone(), &cfg.server).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    Running {
        base: format!("http://{addr}"),
        state,
        cfg,
        source,
    }
}

/// Parses exposition text into "name{a="x",b="y"}" (labels sorted) → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        m.insert(series.to_string(), value.parse().unwrap());
    }
    m
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<(&str, &str)> = labels.to_vec();
    l.push(("source", "org"));
    l.push(("provider", "file"));
    l.sort();
    let inner: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

#[tokio::test]
async fn every_gauge_matches_the_hand_worked_answers() {
    let r = start(config("tests/data/org.json", "")).await;
    assert_eq!(get(&format!("{}/-/ready", r.base)).await.status(), 503);
    r.poll().await.unwrap();
    assert_eq!(get(&format!("{}/-/ready", r.base)).await.status(), 200);
    assert_eq!(get(&format!("{}/-/healthy", r.base)).await.status(), 200);

    let resp = get(&format!("{}/metrics", r.base)).await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("from the last background poll"));
    assert!(text.contains("process_resident_memory_bytes"));
    let m = parse_metrics(&text);

    let mut expected: Vec<(String, f64)> = vec![];
    let mut e = |name: &str, labels: &[(&str, &str)], v: f64| expected.push((key(name, labels), v));
    // Inventory: all statuses; svc-backup is a service account by name pattern.
    e(
        "identity_posture_accounts",
        &[("account_type", "human"), ("status", "active")],
        6.0,
    );
    e(
        "identity_posture_accounts",
        &[("account_type", "human"), ("status", "locked")],
        1.0,
    );
    e(
        "identity_posture_accounts",
        &[("account_type", "human"), ("status", "suspended")],
        1.0,
    );
    e(
        "identity_posture_accounts",
        &[("account_type", "human"), ("status", "deprovisioned")],
        1.0,
    );
    e(
        "identity_posture_accounts",
        &[("account_type", "human"), ("status", "staged")],
        1.0,
    );
    e(
        "identity_posture_accounts",
        &[("account_type", "human"), ("status", "disabled")],
        0.0,
    );
    e(
        "identity_posture_accounts",
        &[("account_type", "service"), ("status", "active")],
        2.0,
    );
    e(
        "identity_posture_active_accounts",
        &[("account_type", "human")],
        6.0,
    );
    e(
        "identity_posture_active_accounts",
        &[("account_type", "service")],
        2.0,
    );
    // MFA: bob none; carol weak (pending webauthn does not count) and privileged; alice
    // phishing-resistant and privileged; break-glass excluded; gina unknown.
    e(
        "identity_posture_accounts_without_mfa",
        &[("account_type", "human"), ("privileged", "false")],
        1.0,
    );
    e(
        "identity_posture_accounts_without_mfa",
        &[("account_type", "human"), ("privileged", "true")],
        0.0,
    );
    e(
        "identity_posture_accounts_weak_mfa",
        &[("account_type", "human"), ("privileged", "true")],
        1.0,
    );
    e(
        "identity_posture_accounts_weak_mfa",
        &[("account_type", "human"), ("privileged", "false")],
        0.0,
    );
    e(
        "identity_posture_accounts_phishing_resistant_mfa",
        &[("account_type", "human"), ("privileged", "true")],
        1.0,
    );
    e(
        "identity_posture_accounts_phishing_resistant_mfa",
        &[("account_type", "service"), ("privileged", "false")],
        0.0,
    );
    // gina's MFA is unknown; the service accounts carry no `mfa` either.
    e(
        "identity_posture_accounts_mfa_unknown",
        &[("account_type", "human"), ("privileged", "false")],
        1.0,
    );
    e(
        "identity_posture_accounts_mfa_unknown",
        &[("account_type", "service"), ("privileged", "false")],
        1.0,
    );
    e(
        "identity_posture_accounts_mfa_unknown",
        &[("account_type", "service"), ("privileged", "true")],
        1.0,
    );
    // Dormancy: bob 200 days; dave created 100 days ago, never; erin left 10 days ago and
    // is suspended (still exists); frank is deprovisioned (not counted).
    e(
        "identity_posture_dormant_accounts",
        &[
            ("account_type", "human"),
            ("privileged", "false"),
            ("reason", "inactive"),
        ],
        1.0,
    );
    e(
        "identity_posture_dormant_accounts",
        &[
            ("account_type", "human"),
            ("privileged", "false"),
            ("reason", "never_logged_in"),
        ],
        1.0,
    );
    e(
        "identity_posture_dormant_accounts",
        &[
            ("account_type", "human"),
            ("privileged", "false"),
            ("reason", "terminated"),
        ],
        1.0,
    );
    e(
        "identity_posture_dormant_accounts",
        &[
            ("account_type", "human"),
            ("privileged", "true"),
            ("reason", "inactive"),
        ],
        0.0,
    );
    // Credentials.
    e(
        "identity_posture_unrotated_credentials",
        &[
            ("account_type", "service"),
            ("credential_type", "access_key"),
        ],
        1.0,
    );
    e(
        "identity_posture_unrotated_credentials",
        &[
            ("account_type", "service"),
            ("credential_type", "client_secret"),
        ],
        0.0,
    );
    e(
        "identity_posture_unrotated_credentials",
        &[("account_type", "human"), ("credential_type", "password")],
        0.0,
    );
    e(
        "identity_posture_expired_credentials",
        &[
            ("account_type", "service"),
            ("credential_type", "client_secret"),
        ],
        1.0,
    );
    e(
        "identity_posture_expiring_credentials",
        &[
            ("account_type", "service"),
            ("credential_type", "client_secret"),
        ],
        1.0,
    );
    e(
        "identity_posture_expiring_credentials",
        &[
            ("account_type", "service"),
            ("credential_type", "certificate"),
        ],
        0.0,
    );
    // Privilege.
    e(
        "identity_posture_overprivileged_accounts",
        &[("account_type", "human"), ("reason", "role_not_allowed")],
        1.0,
    );
    e(
        "identity_posture_overprivileged_accounts",
        &[("account_type", "human"), ("reason", "no_mfa")],
        1.0,
    );
    e(
        "identity_posture_overprivileged_accounts",
        &[("account_type", "human"), ("reason", "unused")],
        0.0,
    );
    e(
        "identity_posture_overprivileged_accounts",
        &[
            ("account_type", "service"),
            ("reason", "service_account_admin"),
        ],
        1.0,
    );
    e(
        "identity_posture_privileged_accounts",
        &[("role", "SUPER_ADMIN")],
        3.0,
    );
    e(
        "identity_posture_privileged_accounts",
        &[("role", "APP_ADMIN")],
        1.0,
    );
    e(
        "identity_posture_privileged_accounts",
        &[("role", "other")],
        0.0,
    );
    e("identity_posture_super_admins", &[], 3.0);
    e("identity_posture_excluded_accounts", &[], 1.0);
    // Findings per check: one account each for these, zero for the rest.
    for (check, sev, n) in [
        ("mfa.missing", "high", 1.0),
        ("mfa.weak", "medium", 1.0),
        ("mfa.not_enforced", "medium", 1.0),
        ("dormant.inactive", "medium", 1.0),
        ("dormant.never_logged_in", "medium", 1.0),
        ("dormant.terminated", "high", 1.0),
        ("credential.unrotated", "medium", 1.0),
        ("credential.expired", "medium", 1.0),
        ("credential.expiring", "low", 1.0),
        ("credential.no_expiry", "low", 1.0),
        ("privilege.role_not_allowed", "critical", 1.0),
        ("privilege.unused", "critical", 0.0),
        ("privilege.no_mfa", "critical", 1.0),
        ("privilege.service_account_admin", "critical", 1.0),
        ("tenant.too_many_super_admins", "critical", 0.0),
        ("tenant.too_few_super_admins", "critical", 0.0),
        ("tenant.mfa_policy_gap", "high", 0.0),
    ] {
        e(
            "identity_posture_findings",
            &[("check", check), ("severity", sev)],
            n,
        );
    }
    // 8 judged accounts (6 human + 2 service), of which alice and gina are clean.
    e("identity_posture_compliant_accounts_ratio", &[], 0.25);
    e("identity_posture_source_up", &[], 1.0);
    e("identity_posture_source_polls_total", &[], 1.0);
    e("identity_posture_source_poll_failures_total", &[], 0.0);
    e("identity_posture_source_interval_seconds", &[], 900.0);
    e(
        "identity_posture_source_last_success_timestamp_seconds",
        &[],
        NOW.unix_timestamp() as f64,
    );
    for d in ["last_login", "mfa", "credentials", "roles"] {
        e(
            "identity_posture_source_data_available",
            &[("data", d)],
            1.0,
        );
    }
    for (k, v) in &expected {
        assert_eq!(m.get(k), Some(v), "{k}");
    }
    // Zero-filling: every account_type × status, privileged, reason and credential type.
    let count = |prefix: &str| {
        m.keys()
            .filter(|k| k.starts_with(&format!("{prefix}{{")))
            .count()
    };
    assert_eq!(count("identity_posture_accounts"), 12);
    assert_eq!(count("identity_posture_accounts_without_mfa"), 4);
    assert_eq!(count("identity_posture_dormant_accounts"), 12);
    assert_eq!(count("identity_posture_unrotated_credentials"), 14);
    assert_eq!(count("identity_posture_overprivileged_accounts"), 8);
    assert_eq!(count("identity_posture_findings"), 17);
    assert!(m
        .keys()
        .any(|k| k.starts_with("identity_posture_exporter_build_info{")));
}

#[tokio::test]
async fn a_failed_poll_keeps_the_last_good_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("org.json");
    std::fs::copy("tests/data/org.json", &path).unwrap();
    let r = start(config(path.to_str().unwrap(), "")).await;
    r.poll().await.unwrap();
    let before = parse_metrics(
        &get(&format!("{}/metrics", r.base))
            .await
            .text()
            .await
            .unwrap(),
    );

    std::fs::write(
        &path,
        "{\"accounts\": [{\"id\": \"x\", \"login\": \"x\", \"account_type\": \"robot\"",
    )
    .unwrap();
    let err = r.poll().await.unwrap_err();
    assert!(
        err.contains("org.json") && err.contains("accounts[0].account_type"),
        "{err}"
    );

    let after = parse_metrics(
        &get(&format!("{}/metrics", r.base))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(after[&key("identity_posture_source_up", &[])], 0.0);
    assert_eq!(
        after[&key("identity_posture_source_poll_failures_total", &[])],
        1.0
    );
    assert_eq!(after[&key("identity_posture_source_polls_total", &[])], 2.0);
    for (k, v) in &before {
        if k.contains("_source_") || k.starts_with("process_") {
            continue;
        }
        assert_eq!(after.get(k), Some(v), "{k} changed after a failed poll");
    }
    let s: serde_json::Value = get(&format!("{}/api/v1/sources", r.base))
        .await
        .json()
        .await
        .unwrap();
    let src = &s["sources"][0];
    assert_eq!(src["state"], "error");
    assert!(src["last_error"].as_str().unwrap().contains("org.json"));
    assert!(src["last_success"].is_string());
    // Readiness stays: the source has completed polls.
    assert_eq!(get(&format!("{}/-/ready", r.base)).await.status(), 200);
}

#[tokio::test]
async fn findings_api_filters_paginates_and_exports_csv() {
    let r = start(config("tests/data/org.json", "")).await;
    r.poll().await.unwrap();
    let all: serde_json::Value = get(&format!("{}/api/v1/findings?limit=10000", r.base))
        .await
        .json()
        .await
        .unwrap();
    let all = all["findings"].as_array().unwrap().clone();
    let excluded: Vec<_> = all.iter().filter(|f| f["excluded"] == true).collect();
    assert!(excluded
        .iter()
        .all(|f| f["login"] == "breakglass-1@example.com"));
    assert!(!excluded.is_empty());
    let not_excluded = all.len() - excluded.len();
    // Counted by hand from tests/data/org.json: bob 2, carol 3, dave 1, erin 1,
    // svc-backup 3 (unrotated key, expired secret, admin), svc-ci 2, hank 1.
    assert_eq!(not_excluded, 13);

    // Pages of 3 add up to the whole list, in order, without repeats.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{}/api/v1/findings?limit=3&cursor={c}", r.base),
            None => format!("{}/api/v1/findings?limit=3", r.base),
        };
        let page: serde_json::Value = get(&url).await.json().await.unwrap();
        paged.extend(page["findings"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all);

    let f: serde_json::Value = get(&format!(
        "{}/api/v1/findings?check=mfa.missing&excluded=false",
        r.base
    ))
    .await
    .json()
    .await
    .unwrap();
    let f = f["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["login"], "bob@example.com");
    assert_eq!(f[0]["severity"], "high");

    let f: serde_json::Value = get(&format!(
        "{}/api/v1/findings?severity=critical&account_type=service",
        r.base
    ))
    .await
    .json()
    .await
    .unwrap();
    let f = f["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["check"], "privilege.service_account_admin");

    let csv = get(&format!(
        "{}/api/v1/findings?format=csv&check=credential.expiring",
        r.base
    ))
    .await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let body = csv.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    // Every cell quoted (CSV-injection hardening, see server::csv_safe).
    assert!(lines[0].starts_with("\"source\",\"provider\",\"scope\",\"account_id\",\"login\""));
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains("svc-ci") && lines[1].contains("s-soon"));

    assert_eq!(
        get(&format!("{}/api/v1/findings?check=nope", r.base))
            .await
            .status(),
        400
    );
    assert_eq!(
        get(&format!("{}/api/v1/findings?source=nope", r.base))
            .await
            .status(),
        404
    );
    assert_eq!(
        get(&format!("{}/api/v1/findings?cursor=!!", r.base))
            .await
            .status(),
        400
    );

    let a: serde_json::Value = get(&format!("{}/api/v1/accounts/org/u-carol", r.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["account"]["login"], "carol@example.com");
    let checks: Vec<&str> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        vec!["mfa.weak", "privilege.role_not_allowed", "privilege.no_mfa"]
    );
    let g: serde_json::Value = get(&format!("{}/api/v1/accounts/org/u-gina", r.base))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        g["account"].get("last_login").is_none(),
        "unknown stays absent"
    );
    let d: serde_json::Value = get(&format!("{}/api/v1/accounts/org/u-dave", r.base))
        .await
        .json()
        .await
        .unwrap();
    assert!(d["account"]["last_login"].is_null(), "never stays null");
    assert_eq!(
        get(&format!("{}/api/v1/accounts/org/nobody", r.base))
            .await
            .status(),
        404
    );

    let s: serde_json::Value = get(&format!("{}/api/v1/summary", r.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["overall"]["compliant_ratio"], 0.25);
    assert_eq!(s["overall"]["checks"]["mfa.missing"], 1);
    assert_eq!(s["overall"]["severities"]["critical"], 3);

    let landing = get(&format!("{}/", r.base)).await.text().await.unwrap();
    assert!(
        landing.contains("identity-posture-exporter")
            && landing.contains("org")
            && landing.contains("/metrics")
    );
}

#[tokio::test]
async fn api_needs_a_token_or_a_loopback_listener() {
    // Configured for all interfaces without a token: the API is refused, metrics are not.
    let mut cfg = config("tests/data/org.json", "");
    cfg.server.listen = "0.0.0.0:9863".parse().unwrap();
    let r = start(cfg).await;
    assert_eq!(
        get(&format!("{}/api/v1/sources", r.base)).await.status(),
        403
    );
    assert_eq!(get(&format!("{}/metrics", r.base)).await.status(), 200);

    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("token");
    std::fs::write(&tok, "t0ken-value\n").unwrap();
    let mut cfg = config(
        "tests/data/org.json",
        &format!("api_token_file = \"{}\"", tok.display()),
    );
    cfg.server.listen = "0.0.0.0:9863".parse().unwrap();
    let r = start(cfg).await;
    let c = reqwest::Client::new();
    let url = format!("{}/api/v1/sources", r.base);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        c.get(&url)
            .bearer_auth("t0ken-value")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn web_config_basic_auth_protects_everything() {
    let dir = tempfile::tempdir().unwrap();
    let wc = dir.path().join("web.yml");
    let hash = bcrypt::hash("scrape-pass", 4).unwrap();
    std::fs::write(&wc, format!("basic_auth_users:\n  prometheus: {hash}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n")).unwrap();
    let r = start(config(
        "tests/data/org.json",
        &format!("web_config_file = \"{}\"", wc.display()),
    ))
    .await;
    let c = reqwest::Client::new();
    let url = format!("{}/metrics", r.base);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    let ok = c
        .get(&url)
        .basic_auth("prometheus", Some("scrape-pass"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-frame-options"], "deny");
    assert_eq!(
        c.get(&url)
            .basic_auth("prometheus", Some("nope"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test]
async fn web_config_basic_auth_opens_the_findings_view_on_any_listener() {
    // Listening on all interfaces, no API token: the web config's basic auth alone opens the
    // findings view, /api/v1 and the admin endpoints to an authenticated caller.
    let dir = tempfile::tempdir().unwrap();
    let wc = dir.path().join("web.yml");
    let hash = bcrypt::hash("view-pass", 4).unwrap();
    std::fs::write(&wc, format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
    let mut cfg = config(
        "tests/data/org.json",
        &format!("web_config_file = \"{}\"", wc.display()),
    );
    cfg.server.listen = "0.0.0.0:9863".parse().unwrap();
    let r = start(cfg).await;
    r.poll().await.unwrap();
    let c = reqwest::Client::new();
    for path in [
        "/findings",
        "/findings?check=mfa.missing",
        "/api/v1/findings",
        "/api/v1/sources",
    ] {
        let url = format!("{}{path}", r.base);
        let anon = c.get(&url).send().await.unwrap();
        assert_eq!(anon.status(), 401, "{path} without credentials");
        assert!(anon.headers().contains_key("www-authenticate"), "{path}");
        let wrong = c.get(&url).basic_auth("alice", Some("nope")).send();
        assert_eq!(wrong.await.unwrap().status(), 401, "{path} wrong password");
        let ok = c.get(&url).basic_auth("alice", Some("view-pass")).send();
        assert_eq!(ok.await.unwrap().status(), 200, "{path} with credentials");
    }
    let page = c
        .get(format!("{}/findings", r.base))
        .basic_auth("alice", Some("view-pass"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<table"), "{page}");
    // The admin endpoints (this test server passes no peer address, so the caller does not
    // count as loopback): basic auth admits a poll request.
    let poll = format!("{}/-/poll/org", r.base);
    assert_eq!(c.post(&poll).send().await.unwrap().status(), 401);
    let ok = c.post(&poll).basic_auth("alice", Some("view-pass")).send();
    assert!(ok.await.unwrap().status().is_success());
}

#[tokio::test]
async fn a_poll_that_hangs_is_cut_off_by_the_timeout() {
    // A FIFO with no writer blocks the file source's open() forever.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stuck.ndjson");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path in our own temporary directory.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut cfg = config(fifo.to_str().unwrap(), "");
    cfg.sources[0].timeout = std::time::Duration::from_millis(300);
    let r = start(cfg).await;
    let err = r.poll().await.unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    let s: serde_json::Value = get(&format!("{}/api/v1/sources", r.base))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["sources"][0]["state"], "error");
    // Release the blocked reader so the runtime can shut down.
    drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
}

#[tokio::test]
async fn metrics_are_gzip_compressed_when_the_scraper_asks() {
    use std::io::Read;
    let r = start(config("tests/data/org.json", "")).await;
    r.poll().await.unwrap();
    let url = format!("{}/metrics", r.base);
    // A client that does not decode by itself, so the wire bytes can be checked.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let plain = raw.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    let plain = plain.text().await.unwrap();
    for _ in 0..2 {
        // Twice: the second reuses the poll's compressed part.
        let resp = raw
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        assert_eq!(resp.headers()["vary"], "Accept-Encoding");
        assert_eq!(
            resp.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let gz = resp.bytes().await.unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(gz.len() < text.len() / 3, "{} of {}", gz.len(), text.len());
        // Everything the poll computed is there, then the live listener and process metrics.
        let posture = |t: &str| -> BTreeMap<String, f64> {
            parse_metrics(t)
                .into_iter()
                .filter(|(k, _)| k.starts_with("identity_posture_") && !k.contains("_http_"))
                .collect()
        };
        assert_eq!(posture(&text), posture(&plain));
        assert!(text.contains("process_resident_memory_bytes"));
        assert!(text.contains("identity_posture_http_connections"));
    }
    // q=0 refuses gzip.
    let resp = raw
        .get(&url)
        .header("accept-encoding", "gzip;q=0")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
}
