//! The findings view and the counts behind it, end to end on 127.0.0.1:0: the four surfaces
//! (overview page, /api/v1/summary, /api/v1/findings, /metrics) agree on every check;
//! disabled checks, exceptions and their expiry; finding history across a restart;
//! compliance; hostile identity data stays text; the view is guarded like the API.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use identity_posture_exporter::checks::CheckId;
use identity_posture_exporter::config::Config;
use identity_posture_exporter::poller::{poll_and_publish, Clock};
use identity_posture_exporter::server;
use identity_posture_exporter::sources::{config_from_toml, Deps, Source};
use identity_posture_exporter::state::AppState;
use identity_posture_exporter::store::Store;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn config(path: &str, extra: &str) -> Config {
    config_from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[policy]
exclude_accounts = ["breakglass-*@example.com"]
service_account_patterns = ["svc-*"]
{extra}
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
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the server and drops everything, as a process exit would (the store closes).
    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
    }
    async fn poll_at(&self, at: OffsetDateTime) {
        let clock: Clock = Arc::new(move || at);
        poll_and_publish(
            &self.cfg.sources[0],
            &self.source,
            &self.state.sources[0],
            &self.state,
            &clock,
        )
        .await
        .unwrap();
    }
    async fn json(&self, path: &str) -> serde_json::Value {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }
    async fn text(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

async fn start_with(cfg: Config, store: Arc<Store>) -> Running {
    let state = Arc::new(AppState::with_store(&cfg.sources, store, None));
    let app = server::app(state.clone(), &cfg.server).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    Running {
        base: format!("http://{addr}"),
        state,
        cfg,
        source,
        server,
    }
}

async fn start(cfg: Config) -> Running {
    start_with(cfg, Arc::new(Store::in_memory())).await
}

/// `name{labels}` → value, for the series of one source, labels sorted.
fn metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn findings_metric(m: &BTreeMap<String, f64>, check: &str) -> f64 {
    let prefix = format!("identity_posture_findings{{check=\"{check}\",");
    let hits: Vec<f64> = m
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(hits.len(), 1, "{check}: one series per check");
    hits[0]
}

/// The number the overview shows for a check (0 when the check is not listed).
fn overview_number(html: &str, check: &str) -> u64 {
    let link = format!(
        "findings?source=org&amp;check={}&amp;excluded=false&amp;excepted=false\">",
        check
    );
    // The row's "accounts" cell is the second link with this target.
    let mut it = html.match_indices(&link).skip(1);
    match it.next() {
        Some((i, _)) => {
            let rest = &html[i + link.len()..];
            rest[..rest.find('<').unwrap()].parse().unwrap()
        }
        None => 0,
    }
}

/// Every check: /metrics, /api/v1/summary, /api/v1/findings and the overview page agree.
async fn assert_surfaces_agree(r: &Running) {
    let m = metrics(&r.text("/metrics").await.1);
    let summary = r.json("/api/v1/summary").await;
    let overview = r.text("/").await.1;
    let mut nonzero = 0;
    for c in CheckId::ALL {
        let id = c.as_str();
        let metric = findings_metric(&m, id);
        let summary_accounts = summary["overall"]["checks"][id].as_f64().unwrap();
        let summary_findings = summary["overall"]["findings"][id].as_u64().unwrap();
        let api = r
            .json(&format!(
                "/api/v1/findings?check={id}&excluded=false&excepted=false&limit=1"
            ))
            .await;
        assert_eq!(metric, summary_accounts, "{id}: /metrics vs summary");
        assert_eq!(
            api["accounts"].as_f64().unwrap(),
            metric,
            "{id}: findings API accounts vs /metrics"
        );
        assert_eq!(
            api["total"].as_u64().unwrap(),
            summary_findings,
            "{id}: findings API total vs summary findings"
        );
        assert_eq!(api["unit"], "findings");
        assert_eq!(
            overview_number(&overview, id) as f64,
            metric,
            "{id}: overview"
        );
        if metric > 0.0 {
            nonzero += 1;
        }
    }
    assert!(nonzero >= 8, "the comparison must cover real counts");
    assert_eq!(
        summary["units"]["checks"],
        "accounts (tenant checks: findings)"
    );
    assert_eq!(summary["units"]["findings"], "findings");
}

#[tokio::test]
async fn on_the_demo_findings_and_accounts_differ_and_still_agree() {
    let r = start(config("examples/demo-identities.json", "")).await;
    r.poll_at(NOW).await;
    assert_surfaces_agree(&r).await;
    let s = r.json("/api/v1/summary").await;
    let accounts = s["overall"]["checks"]["credential.unrotated"]
        .as_u64()
        .unwrap();
    let findings = s["overall"]["findings"]["credential.unrotated"]
        .as_u64()
        .unwrap();
    assert!(
        findings > accounts,
        "{findings} findings on {accounts} accounts"
    );
}

#[tokio::test]
async fn the_four_surfaces_agree_on_every_count() {
    // An exception and a disabled check make the counts non-trivial.
    let r = start(config(
        "tests/data/org.json",
        r#"[policy.checks."dormant.never_logged_in"]
enabled = false
[policy.checks."mfa.weak"]
severity = "high"
[[policy.exceptions]]
check = "credential.no_expiry"
account = "svc-ci"
reason = "vendor certificate, renewal tracked in CHG-1234"
owner = "platform@example.com"
expires = "2027-06-01"
"#,
    ))
    .await;
    r.poll_at(NOW).await;
    assert_surfaces_agree(&r).await;
    let m = metrics(&r.text("/metrics").await.1);
    let summary = r.json("/api/v1/summary").await;
    // The disabled check: no findings anywhere, listed as disabled.
    assert_eq!(findings_metric(&m, "dormant.never_logged_in"), 0.0);
    assert_eq!(
        summary["overall"]["disabled_checks"],
        serde_json::json!(["dormant.never_logged_in"])
    );
    let dave = r.json("/api/v1/accounts/org/u-dave").await;
    assert!(dave["findings"].as_array().unwrap().is_empty());
    // The severity override shows in /metrics and the API.
    assert!(m.contains_key(
        "identity_posture_findings{check=\"mfa.weak\",provider=\"file\",severity=\"high\",source=\"org\"}"
    ));
    let weak = r.json("/api/v1/findings?check=mfa.weak").await;
    assert_eq!(weak["findings"][0]["severity"], "high");

    // The exception: counted apart, listed with its reason.
    assert_eq!(findings_metric(&m, "credential.no_expiry"), 0.0);
    assert_eq!(
        m["identity_posture_excepted_accounts{check=\"credential.no_expiry\",provider=\"file\",source=\"org\"}"],
        1.0
    );
    let ex = r.json("/api/v1/findings?excepted=true").await;
    assert_eq!(ex["total"], 1);
    let f = &ex["findings"][0];
    assert_eq!(f["login"], "svc-ci");
    assert_eq!(
        f["exception_reason"],
        "vendor certificate, renewal tracked in CHG-1234"
    );
    assert_eq!(f["exception_owner"], "platform@example.com");
    assert_eq!(f["exception_expires"], "2027-06-01T00:00:00Z");
    assert!(f["remediation"].as_str().unwrap().ends_with('.'));
    // Listed in the view too, with its reason.
    let page = r
        .text("/findings?source=org&check=credential.no_expiry")
        .await
        .1;
    assert!(page.contains("excepted: vendor certificate, renewal tracked in CHG-1234"));
    // Not expiring within 14 days.
    assert_eq!(
        m["identity_posture_exceptions_expiring{provider=\"file\",source=\"org\"}"],
        0.0
    );
}

#[tokio::test]
async fn an_exception_comes_back_when_it_expires_and_warns_before() {
    let r = start(config(
        "tests/data/org.json",
        r#"[[policy.exceptions]]
check = "mfa.missing"
account = "bob@*"
reason = "on leave, hardware key on order"
owner = "sec@example.com"
expires = "2026-12-05T00:00:00Z"
"#,
    ))
    .await;
    r.poll_at(NOW).await;
    let m = metrics(&r.text("/metrics").await.1);
    assert_eq!(findings_metric(&m, "mfa.missing"), 0.0);
    assert_eq!(
        m["identity_posture_exceptions_expiring{provider=\"file\",source=\"org\"}"], 1.0,
        "expires in 7 days"
    );
    r.poll_at(datetime!(2026-12-05 00:00 UTC)).await;
    let m = metrics(&r.text("/metrics").await.1);
    assert_eq!(
        findings_metric(&m, "mfa.missing"),
        1.0,
        "expired: counts again"
    );
    assert_eq!(
        m["identity_posture_exceptions_expiring{provider=\"file\",source=\"org\"}"],
        0.0
    );
    let f = r.json("/api/v1/findings?check=mfa.missing").await;
    assert_eq!(f["findings"][0]["excepted"], false);
}

#[tokio::test]
async fn finding_history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("org.json");
    std::fs::copy("tests/data/org.json", &data).unwrap();
    let cfg = || config(data.to_str().unwrap(), "");
    let t1 = NOW;
    let t2 = NOW + time::Duration::hours(1);
    let t3 = NOW + time::Duration::hours(2);
    {
        let r = start_with(cfg(), Arc::new(Store::open(Some(dir.path())))).await;
        r.poll_at(t1).await;
        let s = r.json("/api/v1/summary").await;
        assert!(s["overall"]["new_findings"].as_u64().unwrap() > 10);
        r.stop().await;
    }
    // A new process: the same state_dir.
    let r = start_with(cfg(), Arc::new(Store::open(Some(dir.path())))).await;
    r.poll_at(t2).await;
    let all = r.json("/api/v1/findings?limit=10000").await;
    for f in all["findings"].as_array().unwrap() {
        assert_eq!(f["first_seen"], "2026-11-28T12:00:00Z", "{f}");
        assert_eq!(f["new"], false);
    }
    let m = metrics(&r.text("/metrics").await.1);
    for sev in ["critical", "high", "medium", "low"] {
        let k = format!(
            "identity_posture_findings_new{{provider=\"file\",severity=\"{sev}\",source=\"org\"}}"
        );
        assert_eq!(m[&k], 0.0, "{k}");
    }
    // Privileged findings (critical) have been open for an hour.
    assert_eq!(
        m["identity_posture_oldest_open_critical_finding_age_seconds{provider=\"file\",source=\"org\"}"],
        3600.0
    );

    // bob gets MFA: his finding is resolved; a new leaver appears.
    let text = std::fs::read_to_string(&data)
        .unwrap()
        .replace(
            r#""login": "bob@example.com", "account_type": "human", "status": "active", "created": "2024-01-01T00:00:00Z", "last_login": "2026-05-12T12:00:00Z", "mfa": {"factors": []}"#,
            r#""login": "bob@example.com", "account_type": "human", "status": "active", "created": "2024-01-01T00:00:00Z", "last_login": "2026-05-12T12:00:00Z", "mfa": {"factors": [{"type": "totp"}]}"#,
        );
    assert!(text.contains(r#"{"type": "totp"}]}, "credentials": [], "roles": []},"#));
    std::fs::write(&data, text).unwrap();
    r.poll_at(t3).await;
    let s = r.json("/api/v1/summary").await;
    assert_eq!(s["overall"]["resolved_findings"], 1);
    assert_eq!(s["overall"]["new_findings"], 0);
    let m = metrics(&r.text("/metrics").await.1);
    assert_eq!(
        m["identity_posture_findings_resolved{provider=\"file\",severity=\"high\",source=\"org\"}"],
        1.0
    );
    let page = r.text("/source?name=org").await.1;
    assert!(page.contains("Resolved since the previous poll"));
    assert!(page.contains("bob@example.com"));
}

#[tokio::test]
async fn hostile_identity_data_is_shown_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("evil.ndjson");
    std::fs::write(
        &p,
        r#"{"id":"x\"><script>alert(1)</script>","login":"<img src=x onerror=alert(2)>@evil","display_name":"</td><script>alert(3)</script>","account_type":"human","status":"active","created":"2020-01-01T00:00:00Z","last_login":null,"groups":["<b>g</b>"],"attributes":{"<i>k</i>":"<svg onload=alert(4)>"},"mfa":{"factors":[{"type":"push","status":"<x>"}]},"credentials":[{"type":"api_key","id":"<script>k</script>","last_rotated":"2020-01-01T00:00:00Z"}],"roles":[{"name":"<script>alert(5)</script>"}]}
"#,
    )
    .unwrap();
    let r = start(config(p.to_str().unwrap(), "")).await;
    r.poll_at(NOW).await;
    for path in [
        "/",
        "/source?name=org",
        "/findings?source=org",
        "/account?source=org&login=%3Cimg%20src%3Dx%20onerror%3Dalert(2)%3E@evil",
    ] {
        let (code, html) = r.text(path).await;
        assert_eq!(code, 200, "{path}");
        for bad in ["<script>", "<img", "<svg", "<b>g", "<i>k", "x\"><"] {
            assert!(!html.contains(bad), "{path}: unescaped {bad:?}");
        }
    }
    let (_, acct) = r
        .text("/account?source=org&id=x%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert!(
        acct.contains("&lt;script&gt;alert(5)&lt;/script&gt;"),
        "role name shown as text"
    );
    assert!(acct.contains("&lt;svg onload=alert(4)&gt;"));
    // The unknown factor status did not fail the file, and is not active.
    assert!(acct.contains("unrecognized"));
}

#[tokio::test]
async fn the_view_is_guarded_like_the_api_and_has_its_pages() {
    let mut cfg = config("tests/data/org.json", "");
    cfg.server.listen = "0.0.0.0:9863".parse().unwrap();
    let r = start(cfg).await;
    r.poll_at(NOW).await;
    assert_eq!(r.text("/findings").await.0, 403);
    assert_eq!(r.text("/account?source=org&id=u-bob").await.0, 403);
    assert_eq!(
        r.text("/source?name=org").await.0,
        403,
        "exceptions and resolved findings name accounts"
    );
    assert_eq!(r.text("/").await.0, 200, "counts only, like /metrics");
    assert_eq!(r.text("/compliance").await.0, 200, "counts only");

    let r = start(config("tests/data/org.json", "")).await;
    r.poll_at(NOW).await;
    let (code, acct) = r.text("/account?source=org&login=CAROL@example.com").await;
    assert_eq!(code, 200);
    for want in [
        "carol@example.com",
        "finance",
        "sms",
        "pending",
        "SUPER_ADMIN",
        "privilege.role_not_allowed",
        "Remove the role",
    ] {
        assert!(acct.contains(want), "account page lacks {want:?}");
    }
    assert_eq!(r.text("/account?source=org&id=nobody").await.0, 404);
    assert_eq!(r.text("/findings?check=nope").await.0, 400);
    let (_, empty) = r
        .text("/findings?source=org&check=tenant.mfa_policy_gap")
        .await;
    assert!(empty.contains("class=\"empty\""));
    // Paging: 2 per page is not the page size, but the totals and links are there.
    let (_, list) = r.text("/findings?source=org&excluded=false").await;
    assert!(list.contains("<b class=\"total\">13</b> findings on <b>7</b> accounts"));
    assert!(list.contains("api/v1/findings?source=org&amp;excluded=false&amp;format=csv"));

    let c = r.json("/api/v1/compliance").await;
    let fws = c["frameworks"].as_array().unwrap();
    assert_eq!(fws.len(), 5);
    let nist = fws.iter().find(|f| f["id"] == "nist-800-53").unwrap();
    let ia21 = nist["controls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "IA-2(1)")
        .unwrap();
    // bob (no MFA), carol (privileged, weak MFA) and hank (MFA not enforced) fail IA-2(1).
    assert_eq!(ia21["status"], "fail");
    assert_eq!(ia21["accounts_failing"], 3);
    let (code, csv) = r
        .text("/api/v1/compliance?framework=cis-aws&format=csv")
        .await;
    assert_eq!(code, 200);
    // Every cell quoted (CSV-injection hardening: all CSV goes through server::csv_safe).
    assert!(csv.starts_with(
        "\"framework\",\"control\",\"title\",\"checks\",\"status\",\"accounts_failing\",\"tenant_findings\"\n"
    ));
    assert!(csv.contains("\"cis-aws\",\"1.14\","));
    let (code, html) = r.text("/compliance?framework=cisa-scuba").await;
    assert_eq!(code, 200);
    assert!(html.contains("MS.AAD.3.2v1"));
    assert_eq!(r.text("/compliance?framework=iso").await.0, 400);
}

#[test]
fn the_api_finding_shape_is_the_documented_one() {
    let doc = std::fs::read_to_string(Path::new("docs/api.md")).unwrap();
    for col in identity_posture_exporter::report::FindingRecord::COLUMNS {
        assert!(
            doc.contains(&format!("| `{col}` |")),
            "docs/api.md lacks {col}"
        );
    }
}
