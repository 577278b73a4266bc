//! The `sspm` source end to end against the in-process mock of the SASE auth service and the
//! SaaS Security Identity API: configuration → token → paged reads → model → checks →
//! findings and metrics. Expected answers are worked out by hand (NOW = 2026-11-28 12:00 UTC).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use identity_posture_exporter::config::Config;
use identity_posture_exporter::model::{
    AccountType, CredentialType, DataKind, FactorType, Known, Status,
};
use identity_posture_exporter::poller::{poll_once, Clock};
use identity_posture_exporter::report::Report;
use identity_posture_exporter::sources::sspm::SspmConfig;
use identity_posture_exporter::sources::{config_from_toml, Deps, Source};
use identity_posture_exporter::state::AppState;
use identity_posture_exporter::upstream::ManualTimer;
use serde_json::{json, Value};
use support::sspm_mock::{Fault, MockSspm, Paging, Tenant};
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

fn clock() -> Clock {
    Arc::new(|| NOW)
}

fn mfa(id: &str, user: &str, ts: &str, strength: &str, factors: &str, admin: bool) -> Value {
    json!({
        "id": id, "tenant": "t1", "userId": user, "idpId": "idp-1", "idpType": "OKTA",
        "mfaStrength": strength, "admin": admin, "appType": "github", "appId": "app-9",
        "timestamp": ts, "mfaFactors": factors, "saasProviderMfaType": "okta",
        "fullName": format!("{} Example", &user[2..]), "email": format!("{}@example.com", &user[2..]),
        "ipAddress": "192.0.2.1", "location": "Berlin", "ticketKey": null, "ticketUrl": null
    })
}

fn account(id: &str, inst: &str, app: &str, extra: Value) -> Value {
    let mut a = json!({
        "id": id, "saasProviderId": format!("p-{id}"), "tenant": "t1", "saasInstanceId": inst,
        "jobId": "job-1", "appId": "app-1", "appType": app, "accountType": "USER",
        "accountName": id, "isLocal": false, "isOrphaned": false, "isElevated": false,
        "ticketKey": null, "ticketUrl": null, "roles": "", "creator": null,
        "linkedHumanAccounts": null, "saasProviderNhiName": null,
        "lastModifiedTime": "2026-11-01T00:00:00Z", "lastLoginTime": "2026-11-27T08:00:00Z",
        "isNonHuman": false, "createdTime": "2024-01-01T00:00:00Z",
        "latestScanTime": "2026-11-28 06:00:00+00:00", "lastCredentialsRotated": null,
        "rotatedBy": null, "githubOrgName": null, "credentialsExpiresAt": null
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_string() && v.as_str() == Some("<absent>") {
            a.as_object_mut().unwrap().remove(k);
        } else {
            a[k] = v.clone();
        }
    }
    a
}

/// The fixture: one Okta IdP with MFA activity (several records per user), three SaaS
/// instances (GitHub with five accounts and a junk item, Salesforce with two, Slack that
/// reports no logins), pages of two items.
fn tenant() -> Tenant {
    let gh = |id: &str, extra: Value| account(id, "inst-gh", "github", extra);
    let sf = |id: &str, extra: Value| account(id, "inst-sf", "salesforce", extra);
    let mut accounts = HashMap::new();
    accounts.insert(
        "inst-gh".to_string(),
        vec![
            // Elevated human with named roles, logged in yesterday: privileged, no finding.
            gh(
                "gh-1",
                json!({"email": "alice@example.com", "accountName": "Alice",
                "isElevated": true, "roles": "Owner, Billing Manager"}),
            ),
            // Elevated non-human, no role named, key rotated 18 months ago.
            gh(
                "gh-2",
                json!({"accountName": "deploy-bot", "isNonHuman": true,
                "accountType": "SERVICE_ACCOUNT", "isElevated": true, "roles": "",
                "lastLoginTime": "<absent>", "createdTime": "2025-01-01T00:00:00Z",
                "lastCredentialsRotated": "2025-06-01T00:00:00Z",
                "credentialsExpiresAt": "2027-06-01T00:00:00Z",
                "linkedHumanAccounts": "alice@example.com, bob@example.com"}),
            ),
            // Non-human, fresh key that expired a week ago.
            gh(
                "gh-3",
                json!({"accountName": "ci-bot", "isNonHuman": true,
                "lastLoginTime": "2026-11-25T00:00:00Z",
                "lastCredentialsRotated": "2026-11-01T00:00:00Z",
                "credentialsExpiresAt": "2026-11-20T00:00:00Z"}),
            ),
            // Orphaned (owner left the IdP), still there as of the last scan.
            gh(
                "gh-4",
                json!({"email": "mallory@example.com", "isOrphaned": true,
                "latestScanTime": "2026-11-27T06:00:00Z",
                "lastLoginTime": "2026-11-10T00:00:00Z"}),
            ),
            // Local admin that never logged in.
            gh(
                "gh-5",
                json!({"accountName": "local-admin", "isLocal": true,
                "isElevated": true, "roles": "Admin", "lastLoginTime": null,
                "createdTime": "2025-01-01T00:00:00Z"}),
            ),
            // Not an object: skipped and counted.
            Value::Null,
        ],
    );
    accounts.insert(
        "inst-sf".to_string(),
        vec![
            // Dormant human, password older than a year and expiring in 12 days.
            sf(
                "sf-1",
                json!({"email": "bob@example.com", "roles": "Standard User",
                "lastLoginTime": "2026-05-01T00:00:00Z",
                "lastCredentialsRotated": "2025-01-01T00:00:00Z",
                "credentialsExpiresAt": "2026-12-10T00:00:00Z"}),
            ),
            // Integration user with a fresh credential.
            sf(
                "sf-2",
                json!({"accountName": "integration", "isNonHuman": true,
                "lastLoginTime": "2026-11-28T01:00:00Z",
                "lastCredentialsRotated": "2026-11-01T00:00:00Z",
                "credentialsExpiresAt": "2027-11-01T00:00:00Z"}),
            ),
        ],
    );
    accounts.insert(
        "inst-slack".to_string(),
        vec![account(
            "slack-1",
            "inst-slack",
            "slack",
            json!({"email": "carol@example.com", "lastLoginTime": null,
                   "isElevated": "<absent>", "createdTime": "2020-01-01T00:00:00Z"}),
        )],
    );
    let mut mfa_recs = HashMap::new();
    mfa_recs.insert(
        "idp-1".to_string(),
        vec![
            mfa("m1", "u-alice", "2026-10-01T00:00:00Z", "NONE", "", true),
            mfa(
                "m2",
                "u-bob",
                "2026-11-01T00:00:00Z",
                "STRONG",
                "FIDO2",
                false,
            ),
            mfa(
                "m3",
                "u-alice",
                "2026-11-27 08:00:00+00:00",
                "STRONG",
                "FIDO2, Okta Verify Push",
                true,
            ),
            mfa("m4", "u-bob", "2026-11-26T00:00:00Z", "WEAK", "SMS", false),
            mfa(
                "m5",
                "u-carol",
                "2026-11-20T00:00:00Z",
                "STRONG",
                "PUSH",
                false,
            ),
            mfa("m6", "u-carol", "2026-11-25T00:00:00Z", "NONE", "", false),
            // A strength and a factor Palo Alto has not told us about.
            mfa(
                "m7",
                "u-dave",
                "2026-11-24T00:00:00Z",
                "QUANTUM",
                "Telepathy, TOTP",
                true,
            ),
        ],
    );
    let mut features = HashMap::new();
    features.insert(
        ("idp-1".to_string(), "ENROLLMENT".to_string()),
        json!({"status": "COMPLETED", "lastScannedAt": "2026-11-28 06:00:00+00:00"}),
    );
    features.insert(
        ("idp-1".to_string(), "ACTIVITY".to_string()),
        json!({"status": "ENABLED", "lastScannedAt": "2026-11-20T00:00:00Z"}),
    );
    Tenant {
        instances: vec![
            json!({"displayName": "GitHub prod", "saasInstanceId": "inst-gh", "appType": "github"}),
            json!({"displayName": "Salesforce", "saasInstanceId": "inst-sf", "appType": "salesforce"}),
            json!({"displayName": "Slack", "saasInstanceId": "inst-slack", "appType": "slack"}),
        ],
        accounts,
        idps: vec![json!({"displayName": "Okta prod", "idpId": "idp-1", "appType": "okta"})],
        mfa: mfa_recs,
        features,
        max_limit: 2,
        ..Tenant::default()
    }
}

struct Run {
    mock: MockSspm,
    cfg: Config,
    state: Arc<AppState>,
    source: Source,
    timer: ManualTimer,
    _dir: tempfile::TempDir,
}

async fn start(t: Tenant) -> Run {
    start_with(t, None).await
}

/// Starts the mock and a source on a virtual clock (backoff and `Retry-After` take no time).
async fn start_with(t: Tenant, secret: Option<&str>) -> Run {
    let secret = secret.unwrap_or(&t.client_secret).to_string();
    let (client_id, tsg) = (t.client_id.clone(), t.tsg_id.clone());
    let mock = MockSspm::start(t).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let cfg = config_from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[policy]
password_max_age_days = 365   # password age is opt-in; this test maps password rotation
[[sources]]
name = "sspm-test"
type = "sspm"
client_id = "{client_id}"
client_secret_file = "{}"
tsg_id = "{tsg}"
auth_url = "{base}"
api_url = "{base}/"
timeout = "60s"
"#,
        secret_file.display(),
        base = mock.base
    ))
    .unwrap();
    let state = Arc::new(AppState::new(&cfg.sources));
    let timer = ManualTimer::starting_now();
    let source =
        Source::build(&cfg.sources[0], &Deps::with_timer(Arc::new(timer.clone()))).unwrap();
    Run {
        mock,
        cfg,
        state,
        source,
        timer,
        _dir: dir,
    }
}

impl Run {
    async fn poll(&self) -> Result<Arc<Report>, String> {
        poll_once(
            &self.cfg.sources[0],
            &self.source,
            &self.state.sources[0],
            &clock(),
            true,
        )
        .await?;
        Ok(self.state.sources[0].report.load_full().unwrap())
    }
    fn metrics(&self) -> String {
        identity_posture_exporter::metrics::refresh(&self.state);
        String::from_utf8(self.state.metrics.load().to_vec()).unwrap()
    }
}

fn findings(r: &Report) -> BTreeSet<(String, &'static str)> {
    r.findings
        .iter()
        .map(|f| (r.account_id(f).to_string(), f.check.as_str()))
        .collect()
}

/// The account, decoded from the report's compact form (leaked: tests only).
fn acct(r: &Report, id: &str) -> &'static identity_posture_exporter::model::Account {
    Box::leak(Box::new(r.account(r.find_id(id).unwrap()).unwrap()))
}

fn role_names(a: &identity_posture_exporter::model::Account) -> Vec<&str> {
    a.roles
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.name.as_str())
        .collect()
}

fn factor_types(a: &identity_posture_exporter::model::Account) -> Vec<FactorType> {
    a.mfa
        .as_ref()
        .unwrap()
        .factors
        .iter()
        .map(|f| f.factor_type)
        .collect()
}

#[tokio::test]
async fn full_tenant_maps_instances_accounts_idp_users_and_findings() {
    let run = start(tenant()).await;
    let r = run.poll().await.unwrap();
    assert!(r.availability.missing.is_empty(), "{:?}", r.availability);
    // 5 + 2 + 1 SaaS accounts (the junk item skipped) and 4 IdP users.
    assert_eq!(r.accounts.len(), 12);

    // Human, elevated with a role string split into roles.
    let a = acct(&r, "inst-gh:gh-1");
    assert_eq!(a.login, "alice@example.com");
    assert_eq!(a.display_name.as_deref(), Some("Alice"));
    assert_eq!(a.account_type, AccountType::Human);
    assert_eq!(a.status, Status::Active);
    assert_eq!(role_names(a), ["Owner", "Billing Manager"]);
    assert_eq!(a.last_login, Known::At(datetime!(2026-11-27 08:00 UTC)));
    assert_eq!(a.created, Some(datetime!(2024-01-01 0:00 UTC)));
    assert_eq!(a.mfa, None, "SaaS accounts carry no MFA state in this API");
    assert_eq!(a.credentials, None, "both credential dates null: unknown");
    assert_eq!(a.attributes["saas_instance"], json!("GitHub prod"));
    assert_eq!(a.attributes["is_local"], json!(false));

    // Non-human, elevated without a role name; old key.
    let a = acct(&r, "inst-gh:gh-2");
    assert_eq!(a.account_type, AccountType::Service);
    assert_eq!(a.login, "deploy-bot");
    assert_eq!(role_names(a), ["elevated"]);
    assert_eq!(a.last_login, Known::Unknown, "lastLoginTime absent");
    let c = &a.credentials.as_ref().unwrap()[0];
    assert_eq!(c.credential_type, CredentialType::ApiKey);
    assert_eq!(c.last_rotated, Known::At(datetime!(2025-06-01 0:00 UTC)));
    assert_eq!(
        a.attributes["linked_human_accounts"],
        json!(["alice@example.com", "bob@example.com"])
    );
    // Orphaned → terminated as of the latest scan.
    let a = acct(&r, "inst-gh:gh-4");
    assert_eq!(a.terminated, Some(datetime!(2026-11-27 06:00 UTC)));
    // Local, never logged in.
    let a = acct(&r, "inst-gh:gh-5");
    assert_eq!(a.attributes["is_local"], json!(true));
    assert_eq!(a.last_login, Known::Never);
    // Human password.
    let a = acct(&r, "inst-sf:sf-1");
    let c = &a.credentials.as_ref().unwrap()[0];
    assert_eq!(c.credential_type, CredentialType::Password);
    assert_eq!(c.expires, Known::At(datetime!(2026-12-10 0:00 UTC)));
    assert_eq!(a.roles, Some(vec![]));
    assert_eq!(a.attributes["saas_roles"], json!(["Standard User"]));
    // Slack reports no login times at all: null is unknown there, not "never".
    let a = acct(&r, "inst-slack:slack-1");
    assert_eq!(a.last_login, Known::Unknown);
    assert_eq!(a.roles, None, "isElevated absent: roles unknown");

    // IdP users: the newest MFA record decides; admin → privileged.
    let a = acct(&r, "idp:idp-1:u-alice");
    assert_eq!(a.login, "alice@example.com");
    assert_eq!(a.display_name.as_deref(), Some("alice Example"));
    assert_eq!(factor_types(a), [FactorType::Webauthn, FactorType::Push]);
    assert_eq!(role_names(a), ["admin"]);
    assert_eq!(a.last_login, Known::Unknown);
    assert_eq!(
        a.attributes["last_mfa_activity"],
        json!("2026-11-27T08:00:00Z")
    );
    assert_eq!(factor_types(acct(&r, "idp:idp-1:u-bob")), [FactorType::Sms]);
    assert_eq!(factor_types(acct(&r, "idp:idp-1:u-carol")), []);
    assert_eq!(acct(&r, "idp:idp-1:u-bob").roles, Some(vec![]));
    // Unknown strength and factor: read from the factors, unknown one as `other`.
    assert_eq!(
        factor_types(acct(&r, "idp:idp-1:u-dave")),
        [FactorType::Other, FactorType::Totp]
    );

    let want: BTreeSet<(String, &str)> = [
        ("idp:idp-1:u-bob", "mfa.weak"),
        ("idp:idp-1:u-carol", "mfa.missing"),
        ("inst-gh:gh-2", "credential.unrotated"),
        ("inst-gh:gh-2", "privilege.service_account_admin"),
        ("inst-gh:gh-3", "credential.expired"),
        ("inst-gh:gh-4", "dormant.terminated"),
        ("inst-gh:gh-5", "dormant.never_logged_in"),
        ("inst-gh:gh-5", "privilege.unused"),
        ("inst-sf:sf-1", "dormant.inactive"),
        ("inst-sf:sf-1", "credential.unrotated"),
        ("inst-sf:sf-1", "credential.expiring"),
    ]
    .into_iter()
    .map(|(a, c)| (a.to_string(), c))
    .collect();
    assert_eq!(findings(&r), want);

    // Upstream cost: one token; /idps, 4 MFA pages (7 records / 2), 5 feature states,
    // /saas_instances, GitHub 4 pages (3 full + the empty page that ends it: the junk item
    // keeps the unique count below `total`), Salesforce 1, Slack 1.
    assert_eq!(run.mock.token_requests(), 1);
    assert_eq!(run.mock.count("/mfa_activity"), 4);
    assert_eq!(run.mock.count("/feature_state"), 5);
    assert_eq!(run.mock.count("/inst-gh/saas_accounts"), 4);
    assert_eq!(run.mock.count("/inst-sf/saas_accounts"), 1);
    assert_eq!(run.mock.count("/inst-slack/saas_accounts"), 1);
    assert_eq!(run.mock.api_requests(), 17);
    // Read-only: nothing but GETs reached the Identity API; pages asked for 1000 items.
    let log = run.mock.log();
    assert!(log
        .iter()
        .filter(|q| q.path.starts_with("/sspm/"))
        .all(|q| q.method == "GET"));
    let first = log
        .iter()
        .find(|q| q.path.ends_with("/saas_accounts"))
        .unwrap();
    assert_eq!(first.query["limit"], "1000");
    assert_eq!(first.query["page"], "0");
    let form = &run.mock.token_forms()[0];
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "tsg_id:1234567890");

    // Source gauges (labels render sorted by name).
    let m = run.metrics();
    let has = |name: &str, labels: &[(&str, &str)], value: &str| {
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        l.extend([("source", "sspm-test"), ("provider", "sspm")]);
        l.sort();
        let l: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let line = format!("{name}{{{}}} {value}", l.join(","));
        assert!(m.lines().any(|x| x == line), "missing {line:?} in\n{m}");
    };
    let accounts = |app, t, p, n| {
        has(
            "identity_posture_sspm_accounts",
            &[("app", app), ("account_type", t), ("privileged", p)],
            n,
        )
    };
    accounts("github", "human", "true", "2");
    accounts("github", "human", "false", "1");
    accounts("github", "service", "true", "1");
    accounts("okta", "human", "true", "2");
    accounts("slack", "service", "false", "0");
    for (field, n) in [
        ("mfa_strength", "1"),
        ("mfa_factors", "1"),
        ("item", "1"),
        ("timestamp", "0"),
    ] {
        has(
            "identity_posture_sspm_unrecognized_values",
            &[("field", field)],
            n,
        );
    }
    let idp = [("idp", "idp-1"), ("idp_name", "Okta prod")];
    has(
        "identity_posture_sspm_feature_last_scan_timestamp_seconds",
        &[idp[0], idp[1], ("feature", "enrollment")],
        &datetime!(2026-11-28 06:00 UTC).unix_timestamp().to_string(),
    );
    has(
        "identity_posture_sspm_feature_status",
        &[
            idp[0],
            idp[1],
            ("feature", "activity"),
            ("status", "enabled"),
        ],
        "1",
    );
    assert!(
        !m.contains(r#"feature="logout""#),
        "404 features are left out"
    );
    has(
        "identity_posture_sspm_instance_last_scan_timestamp_seconds",
        &[
            ("saas_instance", "inst-gh"),
            ("saas_instance_name", "GitHub prod"),
            ("app", "github"),
        ],
        &datetime!(2026-11-28 06:00 UTC).unix_timestamp().to_string(),
    );
    // 17 API requests and the token.
    has("identity_posture_source_poll_requests", &[], "18");
    has(
        "identity_posture_dormant_accounts",
        &[
            ("account_type", "human"),
            ("privileged", "false"),
            ("reason", "terminated"),
        ],
        "1",
    );
    // The three features this IdP does not have answered 404.
    let req = run.state.sources[0].stats.api_requests();
    assert_eq!((req.get("2xx"), req.get("4xx")), (Some(&15), Some(&3)));
}

#[tokio::test]
async fn a_second_poll_reuses_the_token_until_it_nears_expiry() {
    let run = start(tenant()).await;
    run.poll().await.unwrap();
    run.poll().await.unwrap();
    assert_eq!(run.mock.token_requests(), 1, "15-minute token reused");
    // 14 minutes later the token is within a minute of expiry: renewed before use.
    run.timer.advance(std::time::Duration::from_secs(14 * 60));
    run.poll().await.unwrap();
    assert_eq!(run.mock.token_requests(), 2);
}

/// Every numbering of `page` gives the same 12 accounts, never a duplicate.
#[tokio::test]
async fn paging_is_safe_whichever_number_the_first_page_has() {
    for (paging, gh_requests) in [
        // 0,1,2,3(empty)
        (Paging::ZeroBased, 4),
        // 0(=1), 1(repeat, skipped), 2, 3, 4(empty)
        (Paging::OneBasedClamp, 5),
        // 0(400) then 1,2,3,4(empty)
        (Paging::OneBasedReject, 5),
        // 0(empty, total 6) then 1,2,3,4(empty)
        (Paging::OneBasedEmpty, 5),
    ] {
        let t = Tenant { paging, ..tenant() };
        let run = start(t).await;
        let r = run
            .poll()
            .await
            .unwrap_or_else(|e| panic!("{paging:?}: {e}"));
        assert_eq!(r.accounts.len(), 12, "{paging:?}");
        let ids: BTreeSet<String> = r.accounts.iter().map(|a| a.id).collect();
        assert_eq!(ids.len(), 12, "{paging:?}: duplicates");
        assert_eq!(
            run.mock.count("/inst-gh/saas_accounts"),
            gh_requests,
            "{paging:?}"
        );
        // Newest-per-user MFA is right whatever the numbering.
        assert_eq!(
            factor_types(acct(&r, "idp:idp-1:u-bob")),
            [FactorType::Sms],
            "{paging:?}"
        );
    }
}

#[tokio::test]
async fn a_server_ignoring_page_fails_as_a_data_loop_never_a_short_listing() {
    let t = Tenant {
        paging: Paging::IgnoresPage,
        ..tenant()
    };
    let run = start(t).await;
    let e = run.poll().await.unwrap_err();
    // Page 1 repeating page 0 is taken for a 1-based server once; page 2 repeating again,
    // with fewer accounts read than the announced `total`, is a data loop: the poll fails
    // (the last good numbers stay) instead of reporting a partial instance as complete.
    assert!(e.contains("pagination loop") && e.contains("page 2"), "{e}");
}

#[tokio::test]
async fn a_refused_limit_falls_back_to_pages_of_100() {
    let t = Tenant {
        reject_limit_above: Some(500),
        max_limit: 1000,
        ..tenant()
    };
    let run = start(t).await;
    let r = run.poll().await.unwrap();
    assert_eq!(r.accounts.len(), 12);
    let limits: Vec<String> = run
        .mock
        .log()
        .iter()
        .filter(|q| q.path.ends_with("/inst-gh/saas_accounts"))
        .map(|q| format!("{}@{}", q.query["limit"], q.query["page"]))
        .collect();
    // 1000@0 and 1000@1 refused, then one page of 100 holds everything (the junk item
    // keeps the count below total, so an empty page ends it).
    assert_eq!(limits, ["1000@0", "1000@1", "100@0", "100@1"]);
}

#[tokio::test]
async fn a_revoked_token_is_cured_by_one_refresh() {
    let t = Tenant {
        revoke_first_token: true,
        ..tenant()
    };
    let run = start(t).await;
    let r = run.poll().await.unwrap();
    assert_eq!(r.accounts.len(), 12);
    assert_eq!(run.mock.token_requests(), 2);
    // The revoked token's 401, and the three 404 feature states.
    let req = run.state.sources[0].stats.api_requests();
    assert_eq!(req.get("4xx"), Some(&4), "{req:?}");
}

#[tokio::test]
async fn a_token_the_api_keeps_refusing_fails_the_poll_with_a_clear_message() {
    let t = Tenant {
        reject_all_tokens: true,
        ..tenant()
    };
    let run = start(t).await;
    let e = run.poll().await.unwrap_err();
    assert!(e.contains("GET /sspm/identity/v1/idps: HTTP 401"), "{e}");
    assert!(e.contains("role on TSG 1234567890"), "{e}");
    // One refresh, not a loop.
    assert_eq!(run.mock.token_requests(), 2);
    assert!(!run.state.sources[0].status().up);
}

#[tokio::test]
async fn wrong_client_secret_names_the_token_endpoint_never_the_secret() {
    let run = start_with(tenant(), Some("wrong-secret-value-xyz")).await;
    let e = run.poll().await.unwrap_err();
    assert!(
        e.contains("/auth/v1/oauth2/access_token: HTTP 401 invalid_client"),
        "{e}"
    );
    assert!(e.contains("check client_id, the client secret"), "{e}");
    assert!(!e.contains("wrong-secret-value-xyz") && !e.contains("mock-client-secret"));
    assert_eq!(run.mock.api_requests(), 0);
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after() {
    let t = Tenant {
        faults: vec![("/inst-sf/saas_accounts".into(), Fault::Status(429, Some(7)))],
        ..tenant()
    };
    let run = start(t).await;
    let r = run.poll().await.unwrap();
    assert_eq!(r.accounts.len(), 12);
    let st = &run.state.sources[0].stats;
    assert_eq!(st.rate_limited(), 1);
    assert_eq!(st.api_requests().get("429"), Some(&1));
    assert!(
        run.timer
            .sleeps()
            .contains(&std::time::Duration::from_secs(7)),
        "{:?}",
        run.timer.sleeps()
    );
}

#[tokio::test]
async fn a_500_is_retried_and_a_persistent_one_fails_the_poll() {
    let t = Tenant {
        faults: vec![("/saas_instances".into(), Fault::Status(500, None))],
        ..tenant()
    };
    let run = start(t).await;
    assert_eq!(run.poll().await.unwrap().accounts.len(), 12);
    assert_eq!(
        run.state.sources[0].stats.api_requests().get("5xx"),
        Some(&1)
    );

    let t = Tenant {
        faults: (0..4)
            .map(|_| {
                (
                    "/inst-gh/saas_accounts".to_string(),
                    Fault::Status(500, None),
                )
            })
            .collect(),
        ..tenant()
    };
    let run = start(t).await;
    let e = run.poll().await.unwrap_err();
    assert!(
        e.contains(
            "accounts of SaaS instance \"GitHub prod\": GET /sspm/identity/v1/saas_instances/{saasInstanceId}/saas_accounts: HTTP 500"
        ),
        "{e}"
    );
    assert_eq!(
        run.state.sources[0].stats.api_requests().get("5xx"),
        Some(&4)
    );
    // The next poll (faults used up) succeeds.
    assert_eq!(run.poll().await.unwrap().accounts.len(), 12);
}

#[tokio::test]
async fn malformed_json_fails_the_poll_naming_the_endpoint() {
    let t = Tenant {
        faults: vec![("/saas_instances".into(), Fault::Malformed)],
        ..tenant()
    };
    let run = start(t).await;
    let e = run.poll().await.unwrap_err();
    assert!(
        e.contains("SaaS instances: /sspm/identity/v1/saas_instances: unexpected response body"),
        "{e}"
    );
    let st = run.state.sources[0].status();
    assert!(!st.up);
    // Not retried as transient: one request to the list.
    assert_eq!(run.mock.count("/saas_instances"), 1);
}

#[tokio::test]
async fn without_idps_mfa_is_reported_unavailable_once() {
    let t = Tenant {
        idps: Vec::new(),
        ..tenant()
    };
    let run = start(t).await;
    let r = run.poll().await.unwrap();
    assert_eq!(r.accounts.len(), 8);
    assert!(r.availability.missing[&DataKind::Mfa].contains("no identity provider"));
    assert!(r.availability.is_available(DataKind::Roles));
    assert!(r
        .findings
        .iter()
        .all(|f| !f.check.as_str().starts_with("mfa.")));
}

#[tokio::test]
async fn config_validates_keys_urls_tsg_and_secret() {
    let e = config_from_toml(
        r#"[[sources]]
name = "p"
type = "sspm"
tsg_id = "tsg-abc"
api_url = "http://api.example.com"
token_file = "/x"
"#,
    )
    .unwrap_err();
    let text = e.problems.join("\n");
    for want in [
        "sources[0] (p).client_id: missing required key",
        "sources[0] (p).tsg_id: \"tsg-abc\" must be the numeric tenant service group id",
        "sources[0] (p).api_url: \"http://api.example.com\" must use https://",
        "sources[0] (p).client_secret_file or client_secret_env: required",
        "sources[0] (p).token_file: not a key of type sspm",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    std::env::set_var("IPE_TEST_SSPM_SECRET", "s3cr3t");
    let c = config_from_toml(
        r#"[[sources]]
name = "p"
type = "sspm"
client_id = "sa@1.iam.panserviceaccount.com"
client_secret_env = "IPE_TEST_SSPM_SECRET"
tsg_id = "1234567890"
"#,
    )
    .unwrap();
    let s = c.sources[0].settings::<SspmConfig>().unwrap();
    assert_eq!(s.auth_url, "https://auth.apps.paloaltonetworks.com");
    assert_eq!(s.api_url, "https://api.sase.paloaltonetworks.com");
    assert_eq!(s.client_secret.expose(), "s3cr3t");
    assert!(!format!("{s:?}").contains("s3cr3t"));
    assert_eq!(c.sources[0].provider(), "sspm");
}

/// The commented example in examples/full.toml is valid once uncommented.
#[test]
fn full_toml_example_is_valid() {
    let full = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/full.toml"))
        .unwrap();
    let block = &full[full.find("# Palo Alto Networks SaaS Security").unwrap()..];
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "x\n").unwrap();
    let toml: String = block
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("# #"))
        .map(|l| l.trim_start_matches("# ").to_string() + "\n")
        .collect::<String>()
        .replace("/run/secrets/sspm-client-secret", secret.to_str().unwrap());
    let c = config_from_toml(&toml).unwrap_or_else(|e| panic!("{:?}\n{toml}", e.problems));
    assert_eq!(c.sources[0].provider(), "sspm");
    // No super-admin override is needed: the source opts out of the admin-count checks.
    assert_eq!(c.sources[0].policy.min_super_admins, 2);
}

/// The framework's promises, on the mock SaaS Security (GitHub accounts in pages of two).
/// No optional-data case: one read-only role on the TSG grants every Identity API read or
/// none (a 403 fails the poll with the role to grant).
#[tokio::test]
async fn conformance() {
    use identity_posture_exporter::sources::sspm::{ACCOUNTS, UNRECOGNIZED_VALUES};
    use support::conformance::{run, Conformance};
    use support::harness::Harness;
    let t = tenant();
    let (cid, tsg, secret) = (
        t.client_id.clone(),
        t.tsg_id.clone(),
        t.client_secret.clone(),
    );
    let mock = MockSspm::start(t).await;
    let toml = format!(
        "[[sources]]\nname = \"sspm-conf\"\ntype = \"sspm\"\nclient_id = \"{cid}\"\nclient_secret_file = \"{{dir}}/secret\"\ntsg_id = \"{tsg}\"\nauth_url = \"{b}\"\napi_url = \"{b}\"\ntimeout = \"60s\"\n",
        b = mock.base
    );
    let secret_file = format!("{secret}\n");
    let make = |t: &str| {
        Harness::start(
            &[("secret", &secret_file)],
            &toml.replace("timeout = \"60s\"", &format!("timeout = \"{t}\"")),
        )
    };
    run(&Conformance {
        server: &mock.server,
        make: &make,
        listing: "/sspm/identity/v1/saas_instances/inst-gh/saas_accounts",
        optional: None,
        unauthorized: json!({"_errors": [{"code": "E016", "message": "Not Authenticated"}]}),
        numbered_pages: true,
        secrets: &[&secret],
        gauges: &[
            ACCOUNTS.name,
            UNRECOGNIZED_VALUES.name,
            "identity_posture_source_poll_requests",
        ],
    })
    .await;
}
