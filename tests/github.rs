//! The `github` source end to end against the in-process mock GitHub (tests/support/
//! github_mock.rs), under the public base and under a GHES `/api/v3` base: configuration →
//! token or GitHub App → paged reads → model → checks → published gauges. Every expected
//! number is worked out by hand from the fixture below (NOW = 2026-11-28 12:00 UTC).

mod support;

use identity_posture_exporter::model::{
    AccountType, CredentialType, DataKind, FactorType, Known, Status,
};
use identity_posture_exporter::sources::config_from_toml;
use identity_posture_exporter::sources::github::GithubConfig;
use identity_posture_exporter::upstream::Timer;
use serde_json::{json, Value};
use support::github_mock::*;
use support::harness::{Harness, Logs, NOW};
use support::mock::Fault;

fn at(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

/// The fixture organisation `acme` (pages of two items, so every listing pages):
///
/// | account | listing | 2FA filter | role | audit log (newest) | credentials |
/// |---|---|---|---|---|---|
/// | alice 101 | member | — (secure) | owner | 2026-11-27 | PAT expiring 2026-12-08 |
/// | bob 102 | member | 2fa_disabled | owner | 2026-11-20 | SSH key authorised 2025-01-01 |
/// | carol 103 | member | 2fa_insecure | | none | PAT that never expires |
/// | dave 104 | member | — | | 2026-07-01 (before the window) | PAT expired 2026-11-01 |
/// | ci-bot 105 | member (Bot) | — | | 2026-11-28 | — |
/// | eve 106 | member | — | | 2026-10-01 | PAT authorised 2025-06-01 (stale); an OAuth app token |
/// | frank 201 | outside collaborator | 2fa_disabled | | 2026-11-15 | — |
/// | grace 202 | outside collaborator | — | | 2026-11-26 | — |
/// | invitation 301 | pending invitation | | | | |
///
/// The organisation does not require 2FA.
fn org() -> Org {
    let members = vec![
        user(101, "alice", "User"),
        user(102, "bob", "User"),
        user(103, "carol", "User"),
        user(104, "dave", "User"),
        user(105, "ci-bot", "Bot"),
        user(106, "eve", "User"),
    ];
    Org {
        members,
        owners: vec![101, 102],
        members_2fa_disabled: vec![102],
        members_2fa_insecure: vec![103],
        collaborators: vec![user(201, "frank", "User"), user(202, "grace", "User")],
        collaborators_2fa_disabled: vec![201],
        collaborators_2fa_insecure: vec![],
        invitations: Some(vec![json!({
            "id": 301, "node_id": "MDIyOk9yZ2FuaXphdGlvbkludml0YXRpb24x", "login": null,
            "email": "new.hire@example.com", "role": "direct_member",
            "created_at": "2026-11-25T09:00:00Z", "failed_at": null, "failed_reason": null,
            "inviter": user(101, "alice", "User"), "team_count": 0,
            "invitation_teams_url": "https://api.github.com/organizations/1/invitations/301/teams",
            "invitation_source": "member"
        })]),
        credential_authorizations: Some(vec![
            authorization(
                "alice",
                1,
                "personal access token",
                "2026-10-01T00:00:00Z",
                Some("2026-11-27T10:00:00Z"),
                Some(Some("2026-12-08T00:00:00Z")),
            ),
            authorization(
                "bob",
                2,
                "SSH key",
                "2025-01-01T00:00:00Z",
                Some("2026-11-01T00:00:00Z"),
                None,
            ),
            authorization(
                "carol",
                3,
                "personal access token",
                "2026-11-01T00:00:00Z",
                None,
                Some(None),
            ),
            authorization(
                "dave",
                4,
                "personal access token",
                "2026-05-01T00:00:00Z",
                Some("2026-10-30T00:00:00Z"),
                Some(Some("2026-11-01T00:00:00Z")),
            ),
            authorization(
                "eve",
                5,
                "personal access token",
                "2025-06-01T00:00:00Z",
                Some("2025-07-01T00:00:00Z"),
                Some(Some("2027-01-15T00:00:00Z")),
            ),
            authorization(
                "eve",
                6,
                "OAuth app token",
                "2026-11-01T00:00:00Z",
                Some("2026-11-02T00:00:00Z"),
                None,
            ),
        ]),
        audit: Some(vec![
            event(
                1,
                "ci-bot",
                "workflows.completed_workflow_run",
                at("2026-11-28T08:00:00Z"),
            ),
            event(2, "alice", "org.update_member", at("2026-11-27T10:00:00Z")),
            event(3, "grace", "repo.access", at("2026-11-26T09:00:00Z")),
            event(4, "bob", "team.add_member", at("2026-11-20T15:00:00Z")),
            event(5, "frank", "repo.download_zip", at("2026-11-15T11:00:00Z")),
            event(
                6,
                "eve",
                "protected_branch.update",
                at("2026-10-01T08:00:00Z"),
            ),
            event(7, "alice", "repo.create", at("2026-09-15T08:00:00Z")),
            event(
                8,
                "someone-who-left",
                "repo.destroy",
                at("2026-09-01T08:00:00Z"),
            ),
            event(9, "dave", "repo.create", at("2026-07-01T08:00:00Z")),
        ]),
        page_size: 2,
        ..Org::default()
    }
}

fn toml(api_url: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"gh\"\ntype = \"github\"\norg = \"acme\"\napi_url = \"{api_url}\"\ntoken_file = \"{{dir}}/token\"\ntimeout = \"60s\"\n{extra}"
    )
}

fn token_harness(mock: &MockGithub, extra: &str) -> Harness {
    Harness::start(
        &[("token", &format!("{TOKEN}\n"))],
        &toml(&mock.api_url, extra),
    )
}

fn g(h: &Harness, name: &str, labels: &[(&str, &str)]) -> f64 {
    h.gauge(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing\n{}", h.metrics()))
}

fn findings(h: &Harness, check: &str) -> f64 {
    g(h, "identity_posture_findings", &[("check", check)])
}

/// The hand-worked numbers of the fixture with everything readable (token auth).
fn assert_fixture_gauges(h: &Harness) {
    // Inventory: 7 active humans (5 members besides the bot, 2 outside collaborators), the
    // bot, and the invitation, staged.
    assert_eq!(
        g(
            h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "active")]
        ),
        7.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_accounts",
            &[("account_type", "service"), ("status", "active")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "staged")]
        ),
        1.0
    );
    // MFA: bob (owner) and frank without 2FA; carol SMS only; the bot's 2FA is not a thing.
    assert_eq!(
        g(
            h,
            "identity_posture_accounts_without_mfa",
            &[("account_type", "human"), ("privileged", "true")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_accounts_without_mfa",
            &[("account_type", "human"), ("privileged", "false")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_accounts_weak_mfa",
            &[("account_type", "human"), ("privileged", "false")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_accounts_mfa_unknown",
            &[("account_type", "human"), ("privileged", "false")]
        ),
        0.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_accounts_mfa_unknown",
            &[("account_type", "service"), ("privileged", "false")]
        ),
        1.0
    );
    // Owners: alice and bob, the super admins (at least two: no tenant finding).
    assert_eq!(
        g(
            h,
            "identity_posture_privileged_accounts",
            &[("role", "owner")]
        ),
        2.0
    );
    assert_eq!(g(h, "identity_posture_super_admins", &[]), 2.0);
    assert_eq!(
        g(
            h,
            "identity_posture_overprivileged_accounts",
            &[("account_type", "human"), ("reason", "no_mfa")]
        ),
        1.0
    );
    // Dormancy: carol has no event since the window began (2026-08-29), dave's last is
    // 2026-07-01, before it.
    assert_eq!(
        g(
            h,
            "identity_posture_dormant_accounts",
            &[
                ("account_type", "human"),
                ("privileged", "false"),
                ("reason", "inactive")
            ]
        ),
        2.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_dormant_accounts",
            &[
                ("account_type", "human"),
                ("privileged", "true"),
                ("reason", "inactive")
            ]
        ),
        0.0
    );
    // Credentials: bob's SSH key and eve's PAT unrotated; dave's PAT expired; alice's
    // expiring in 10 days; carol's never expires.
    assert_eq!(
        g(
            h,
            "identity_posture_unrotated_credentials",
            &[("account_type", "human"), ("credential_type", "ssh_key")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_unrotated_credentials",
            &[("account_type", "human"), ("credential_type", "token")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_expired_credentials",
            &[("account_type", "human"), ("credential_type", "token")]
        ),
        1.0
    );
    assert_eq!(
        g(
            h,
            "identity_posture_expiring_credentials",
            &[("account_type", "human"), ("credential_type", "token")]
        ),
        1.0
    );
    for (check, n) in [
        ("mfa.missing", 2.0),
        ("mfa.weak", 1.0),
        ("privilege.no_mfa", 1.0),
        ("dormant.inactive", 2.0),
        ("credential.unrotated", 2.0),
        ("credential.expired", 1.0),
        ("credential.expiring", 1.0),
        ("credential.no_expiry", 1.0),
        ("tenant.mfa_policy_gap", 1.0),
        ("tenant.too_few_super_admins", 0.0),
        ("privilege.unused", 0.0),
        ("privilege.service_account_admin", 0.0),
        ("dormant.never_logged_in", 0.0),
    ] {
        assert_eq!(findings(h, check), n, "{check}");
    }
    // ci-bot and grace have no finding: 2 of 8 checked accounts.
    assert_eq!(g(h, "identity_posture_compliant_accounts_ratio", &[]), 0.25);
    for d in [DataKind::LastLogin, DataKind::Mfa, DataKind::Roles] {
        assert_eq!(
            g(
                h,
                "identity_posture_source_data_available",
                &[("data", d.as_str())]
            ),
            1.0,
            "{d:?}"
        );
    }
    // A token cannot list fine-grained tokens (GitHub lists them to Apps only): credentials
    // are partly unknown, and say so.
    assert_eq!(
        g(
            h,
            "identity_posture_source_data_available",
            &[("data", "credentials")]
        ),
        0.0
    );
    let why = &h.report().availability.missing[&DataKind::Credentials];
    assert!(
        why.starts_with("partially: fine-grained tokens") && why.contains("GitHub App"),
        "{why}"
    );
    // Read back to the start of the window: 2026-08-29 00:00 UTC.
    assert_eq!(
        g(
            h,
            "identity_posture_github_audit_log_covered_since_timestamp_seconds",
            &[]
        ),
        at("2026-08-29T00:00:00Z") as f64
    );
}

#[tokio::test]
async fn collect_against_the_mock_gives_the_hand_worked_gauges() {
    // The shipped binary, on its own clock: the gauges that do not depend on the date (the
    // audit-log window moves with the clock; the harness tests pin it).
    let mock = MockGithub::start(org(), "").await;
    let text = support::harness::collect_cli(
        &[("token", &format!("{TOKEN}\n"))],
        &toml(&mock.api_url, ""),
    )
    .await
    .unwrap();
    let s = |name: &str, labels: &[(&str, &str)]| support::harness::sample(&text, name, labels);
    let human = |status| [("account_type", "human"), ("status", status)];
    assert_eq!(s("identity_posture_source_up", &[("source", "gh")]), 1.0);
    assert_eq!(s("identity_posture_accounts", &human("active")), 7.0);
    assert_eq!(s("identity_posture_accounts", &human("staged")), 1.0);
    assert_eq!(
        s(
            "identity_posture_accounts",
            &[("account_type", "service"), ("status", "active")]
        ),
        1.0
    );
    let mfa = |privileged| [("account_type", "human"), ("privileged", privileged)];
    assert_eq!(
        s("identity_posture_accounts_without_mfa", &mfa("true")),
        1.0
    );
    assert_eq!(
        s("identity_posture_accounts_without_mfa", &mfa("false")),
        1.0
    );
    assert_eq!(s("identity_posture_accounts_weak_mfa", &mfa("false")), 1.0);
    assert_eq!(
        s("identity_posture_accounts_mfa_unknown", &mfa("false")),
        0.0
    );
    assert_eq!(s("identity_posture_super_admins", &[]), 2.0);
}

#[tokio::test]
async fn public_base_reads_everything_with_hand_worked_gauges() {
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    assert_fixture_gauges(&h);

    // Requests: the organisation 1, owners 1, members' filters 1 + 1, collaborators'
    // filters 1 + 1, invitations 1, credential authorisations 3 (6 items), audit log 4
    // (8 events in the window), members 3, collaborators 1 = 18.
    assert_eq!(mock.server.total(), 18, "{:?}", mock.server.by_path());
    assert_eq!(g(&h, "identity_posture_source_poll_requests", &[]), 18.0);
    assert_eq!(mock.server.hits("/orgs/acme/audit-log"), 4);
    let reqs = mock.server.requests();
    assert!(
        reqs.iter().all(|r| r.authenticated && r.status == 200),
        "{reqs:?}"
    );
    for r in reqs.iter().filter(|r| r.path != "/orgs/acme") {
        assert_eq!(r.param("per_page").as_deref(), Some("100"), "{r:?}");
    }
    let audit = reqs
        .iter()
        .find(|r| r.path == "/orgs/acme/audit-log")
        .unwrap();
    assert_eq!(
        audit.param("phrase").as_deref(),
        Some("created:>=2026-08-29")
    );
    assert_eq!(audit.param("order").as_deref(), Some("desc"));
    assert_eq!(audit.param("include").as_deref(), Some("web"));
    let filters: Vec<String> = reqs.iter().filter_map(|r| r.param("filter")).collect();
    assert_eq!(filters.iter().filter(|f| *f == "2fa_disabled").count(), 2);
    assert_eq!(filters.iter().filter(|f| *f == "2fa_insecure").count(), 2);

    // The accounts as mapped.
    let r = h.report();
    let acct = |id: &str| r.account(r.find_id(id).unwrap()).unwrap();
    let alice = acct("101");
    assert_eq!(alice.login, "alice");
    assert_eq!(alice.roles.as_ref().unwrap()[0].name, "owner");
    assert_eq!(
        alice.mfa.as_ref().unwrap().factors[0].factor_type,
        FactorType::Other
    );
    assert_eq!(
        alice.last_login,
        Known::At(time::macros::datetime!(2026-11-27 10:00 UTC))
    );
    let pat = &alice.credentials.as_ref().unwrap()[0];
    assert_eq!(
        (pat.credential_type, pat.id.as_str()),
        (CredentialType::Token, "pat-1")
    );
    let carol = acct("103");
    assert_eq!(
        carol.mfa.as_ref().unwrap().factors[0].factor_type,
        FactorType::Sms
    );
    // No event since the window began: a lower bound, one second before it.
    assert_eq!(
        carol.last_login,
        Known::At(time::macros::datetime!(2026-08-28 23:59:59 UTC))
    );
    let eve = acct("106");
    assert_eq!(
        eve.credentials.as_ref().unwrap().len(),
        1,
        "the OAuth app token is not eve's credential"
    );
    let bot = acct("105");
    assert_eq!(bot.account_type, AccountType::Service);
    assert_eq!(bot.mfa, None);
    let frank = acct("201");
    assert_eq!(frank.attributes["outside_collaborator"], json!("true"));
    assert_eq!(frank.credentials, Some(vec![]));
    let inv = acct("invitation:301");
    assert_eq!(
        (inv.status, inv.login.as_str()),
        (Status::Staged, "new.hire@example.com")
    );
    assert!(h
        .findings()
        .contains(&("".to_string(), "tenant.mfa_policy_gap")));

    // Second poll 15 minutes later: the audit log is read only where it is new (one page),
    // the rest as before: 18 − 4 + 1 = 15 requests, same numbers.
    let before = mock.server.total();
    let h = h.at(NOW + time::Duration::minutes(15));
    h.poll().await.unwrap();
    assert_eq!(mock.server.total() - before, 15);
    let last = mock
        .server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/orgs/acme/audit-log")
        .unwrap();
    assert_eq!(
        last.param("phrase").as_deref(),
        Some("created:>=2026-11-28")
    );
    assert_fixture_gauges(&h);
}

#[tokio::test]
async fn ghes_base_path_without_saml_or_invitations() {
    // GitHub Enterprise Server: paths below /api/v3; no SAML credential authorisations and no
    // invitation listing (404); the audit log is there.
    let mut o = org();
    o.credential_authorizations = None;
    o.invitations = None;
    let mock = MockGithub::start(o, "/api/v3").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    let by_path = mock.server.by_path();
    assert!(
        by_path.keys().all(|p| p.starts_with("/api/v3/")),
        "{by_path:?}"
    );
    assert_eq!(
        by_path["/api/v3/orgs/acme/members"], 6,
        "owners, 2 filters, 3 pages"
    );
    assert_eq!(
        mock.server
            .hits("/api/v3/orgs/acme/credential-authorizations"),
        1
    );

    // Credentials unknown, with the reason; no credential finding, no false "none".
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "credentials")]
        ),
        0.0
    );
    let why = &h.report().availability.missing[&DataKind::Credentials];
    assert!(why.contains("HTTP 404") && why.contains("SAML"), "{why}");
    for check in [
        "credential.unrotated",
        "credential.expired",
        "credential.expiring",
        "credential.no_expiry",
    ] {
        assert_eq!(findings(&h, check), 0.0, "{check}");
    }
    let r = h.report();
    assert!(r.accounts.iter().all(|a| a.credentials.is_none()));
    // No invitation listing: 8 accounts, none staged; everything else as on github.com.
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "staged")]
        ),
        0.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "active")]
        ),
        7.0
    );
    assert_eq!(findings(&h, "mfa.missing"), 2.0);
    assert_eq!(findings(&h, "dormant.inactive"), 2.0);
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 2.0);
}

#[tokio::test]
async fn a_non_owner_token_leaves_2fa_unknown_never_missing() {
    // The 2FA filters answer 422 to a non-owner: MFA unknown for every human, with the
    // reason; never "no MFA".
    let mut o = org();
    o.owner = false;
    let mock = MockGithub::start(o, "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    assert_eq!(findings(&h, "mfa.missing"), 0.0);
    assert_eq!(findings(&h, "mfa.weak"), 0.0);
    assert_eq!(findings(&h, "privilege.no_mfa"), 0.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_without_mfa",
            &[("account_type", "human"), ("privileged", "true")]
        ),
        0.0
    );
    // 7 active humans: 2 owners, 5 others, all unknown; the bot too.
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_mfa_unknown",
            &[("account_type", "human"), ("privileged", "true")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_mfa_unknown",
            &[("account_type", "human"), ("privileged", "false")]
        ),
        5.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "mfa")]
        ),
        0.0
    );
    let why = &h.report().availability.missing[&DataKind::Mfa];
    assert!(why.contains("HTTP 422") && why.contains("owners"), "{why}");
    // The rest is unaffected.
    assert_eq!(findings(&h, "dormant.inactive"), 2.0);
    assert_eq!(findings(&h, "credential.expired"), 1.0);
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 2.0);
}

#[tokio::test]
async fn github_app_signs_a_jwt_and_reads_fine_grained_tokens() {
    let mut o = org();
    // Fine-grained tokens (listed to Apps only): alice's never expires, frank's expired
    // 2026-11-20, grace's expires 2027-06-01, granted 2026-11-01.
    o.fine_grained = vec![
        fine_grained(
            9001,
            user(101, "alice", "User"),
            "2026-10-01T00:00:00Z",
            None,
            Some("2026-11-27T00:00:00Z"),
        ),
        fine_grained(
            9002,
            user(201, "frank", "User"),
            "2026-06-01T00:00:00Z",
            Some("2026-11-20T00:00:00Z"),
            None,
        ),
        fine_grained(
            9003,
            user(202, "grace", "User"),
            "2026-11-01T00:00:00Z",
            Some("2027-06-01T00:00:00Z"),
            Some("2026-11-27T00:00:00Z"),
        ),
    ];
    let mock = MockGithub::start(o, "").await;
    let toml = format!(
        "[[sources]]\nname = \"gh\"\ntype = \"github\"\norg = \"acme\"\napi_url = \"{}\"\napp_id = {APP_ID}\ninstallation_id = {INSTALLATION_ID}\nprivate_key_file = \"{{dir}}/app.pem\"\ntimeout = \"60s\"\n",
        mock.api_url
    );
    let (logs, _guard) = Logs::capture();
    let h = Harness::start(&[("app.pem", APP_KEY)], &toml);
    h.poll().await.unwrap();
    let ex = mock.exchange();
    assert_eq!(ex.issued.len(), 1, "{ex:?}");
    assert_eq!(ex.refused, 0);
    // The JWT the mock verified with the App's public key: iat 60 s back, exp 9 min ahead.
    let (iat, exp) = ex.jwt_times[0];
    assert_eq!(exp - iat, 600, "iat = now − 60 s, exp = now + 540 s");
    assert_eq!(mock.server.hits("/app/installations/777/access_tokens"), 1);
    assert_eq!(
        mock.server.hits("/orgs/acme/personal-access-tokens"),
        2,
        "3 tokens, pages of 2"
    );
    // Fixture numbers plus the fine-grained tokens: alice's never expires (no_expiry 2),
    // frank's expired (expired 2: dave and frank), grace's is fine.
    assert_eq!(findings(&h, "credential.no_expiry"), 2.0);
    assert_eq!(findings(&h, "credential.expired"), 2.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_expired_credentials",
            &[("account_type", "human"), ("credential_type", "token")]
        ),
        2.0
    );
    assert_eq!(findings(&h, "credential.expiring"), 1.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "credentials")]
        ),
        1.0
    );
    let r = h.report();
    let grace = r.account(r.find_id("202").unwrap()).unwrap();
    assert_eq!(
        grace.credentials.as_ref().unwrap()[0].id,
        "fine-grained-pat-9003"
    );

    // The installation token is cached: a second poll asks for none.
    h.poll().await.unwrap();
    assert_eq!(mock.exchange().issued.len(), 1);
    let text = logs.text() + &h.metrics() + &h.sources_json();
    assert!(
        !text.contains(&mock.exchange().issued[0]),
        "installation token leaked"
    );
    assert!(!text.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_token_does_not_ask_for_fine_grained_tokens() {
    // GitHub lists them to Apps only: with a token the request is not even made (the
    // fixture's gauges above show credentials as partly unknown).
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    assert_eq!(mock.server.hits("/orgs/acme/personal-access-tokens"), 0);
    assert_fixture_gauges(&h);
}

#[tokio::test]
async fn a_secondary_rate_limit_403_waits_for_retry_after() {
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "");
    mock.server.fault(
        "/orgs/acme/outside_collaborators",
        Fault::Status {
            status: 403,
            body: secondary_limit_body().to_string(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/json; charset=utf-8".into(),
                ),
                ("retry-after".into(), "30".into()),
                ("x-ratelimit-limit".into(), "5000".into()),
                ("x-ratelimit-remaining".into(), "4990".into()),
            ],
        },
    );
    h.poll().await.unwrap();
    assert!(
        h.timer
            .sleeps()
            .contains(&std::time::Duration::from_secs(30)),
        "{:?}",
        h.timer.sleeps()
    );
    assert_eq!(
        g(&h, "identity_posture_source_rate_limited_total", &[]),
        1.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "4xx")]
        ),
        1.0
    );
    // Retried, so nothing is lost: the fixture's numbers, 19 requests.
    assert_eq!(g(&h, "identity_posture_source_poll_requests", &[]), 19.0);
    assert_fixture_gauges(&h);
}

#[tokio::test]
async fn a_primary_rate_limit_resetting_in_an_hour_fails_now_instead_of_retrying() {
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    let before = mock.server.hits("/orgs/acme/members");
    let reset = h.timer.now_unix() as i64 + 3600;
    for _ in 0..6 {
        mock.server
            .fault("/orgs/acme/members", primary_limit_fault(reset));
    }
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("rate_limited"), "{e}");
    // The members listings (all, 2fa_disabled, 2fa_insecure) run side by side: each asked
    // once, none retried (no retry can succeed before the reset).
    let asked = mock.server.hits("/orgs/acme/members") - before;
    assert!((1..=3).contains(&asked), "{asked}");
    assert!(
        h.timer.sleeps().iter().all(|d| d.as_secs() < 90),
        "{:?}",
        h.timer.sleeps()
    );
    // The last good numbers stay.
    assert_fixture_gauges(&h);
}

#[tokio::test]
async fn a_primary_rate_limit_waits_for_the_reset() {
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "");
    let reset = h.timer.now_unix() as i64 + 40;
    mock.server
        .fault_after("/orgs/acme/members", 4, primary_limit_fault(reset));
    h.poll().await.unwrap();
    let waited = h.timer.sleeps();
    assert_eq!(waited.len(), 1, "{waited:?}");
    assert!(
        (39..=40).contains(&waited[0].as_secs()),
        "waits until x-ratelimit-reset: {waited:?}"
    );
    assert_eq!(
        g(&h, "identity_posture_source_rate_limited_total", &[]),
        1.0
    );
    assert_fixture_gauges(&h);
}

#[tokio::test]
async fn a_rate_limit_that_outlasts_the_retries_fails_the_poll_not_the_data() {
    // Six secondary-limit answers on the credential listing: the poll fails as rate limited
    // and the last good numbers stay; credentials are never reported "refused".
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    let good = h.series("identity_posture_unrotated_credentials");
    for _ in 0..6 {
        mock.server.fault(
            "/orgs/acme/credential-authorizations",
            Fault::Status {
                status: 403,
                body: secondary_limit_body().to_string(),
                headers: vec![("retry-after".into(), "5".into())],
            },
        );
    }
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("rate_limited"), "{e}");
    assert!(e.contains("rate limited (HTTP 403)"), "{e}");
    assert_eq!(g(&h, "identity_posture_source_up", &[]), 0.0);
    assert_eq!(h.series("identity_posture_unrotated_credentials"), good);
    assert_eq!(
        g(&h, "identity_posture_source_rate_limited_total", &[]),
        6.0
    );
}

#[tokio::test]
async fn a_refused_audit_log_leaves_last_login_unknown() {
    // Not an owner, or not Enterprise: the audit log is refused; last login is unknown, so
    // the dormancy checks stay silent, and the availability says why.
    for status in [403u16, 404] {
        let mock = MockGithub::start(org(), "").await;
        let h = token_harness(&mock, "");
        mock.server.fault(
            "/orgs/acme/audit-log",
            Fault::status(status, json!({"message": if status == 403 { "Must have admin rights to Organization." } else { "Not Found" }, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()})),
        );
        h.poll().await.unwrap();
        assert_eq!(findings(&h, "dormant.inactive"), 0.0, "{status}");
        assert_eq!(
            g(
                &h,
                "identity_posture_source_data_available",
                &[("data", "last_login")]
            ),
            0.0
        );
        let why = &h.report().availability.missing[&DataKind::LastLogin];
        assert!(
            why.contains(&format!("HTTP {status}")) && why.contains("no last-login"),
            "{why}"
        );
        assert!(h
            .report()
            .accounts
            .iter()
            .all(|a| a.last_login == Known::Unknown));
        assert_eq!(
            g(
                &h,
                "identity_posture_github_audit_log_covered_since_timestamp_seconds",
                &[]
            ),
            0.0
        );
        // Everything else as in the fixture.
        assert_eq!(findings(&h, "mfa.missing"), 2.0);
    }
}

#[tokio::test]
async fn an_empty_audit_log_is_no_evidence_of_inactivity() {
    // Not one event in 91 days: that cannot tell "nobody did anything" from "the log shows
    // nothing to this credential", so nobody is called dormant on it.
    let mut o = org();
    o.audit = Some(vec![]);
    let mock = MockGithub::start(o, "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    assert_eq!(findings(&h, "dormant.inactive"), 0.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "last_login")]
        ),
        0.0
    );
    let why = &h.report().availability.missing[&DataKind::LastLogin];
    assert!(why.contains("no event of the last 91 days"), "{why}");
    assert!(h
        .report()
        .accounts
        .iter()
        .all(|a| a.last_login == Known::Unknown));
}

#[tokio::test]
async fn the_audit_log_is_read_back_over_polls_within_the_page_budget() {
    // Three pages a poll: the first poll reads the 6 newest events (pages of 2) and cannot
    // yet say who had none, so nobody is dormant and last login is partly known; the
    // second poll reads the one new page and the remaining 2 older pages, and then carol
    // and dave are dormant.
    let mock = MockGithub::start(org(), "").await;
    let h = token_harness(&mock, "audit_log_pages_per_poll = 3\n");
    h.poll().await.unwrap();
    assert_eq!(mock.server.hits("/orgs/acme/audit-log"), 3);
    assert_eq!(findings(&h, "dormant.inactive"), 0.0);
    let why = &h.report().availability.missing[&DataKind::LastLogin];
    assert!(
        why.starts_with("partially") && why.contains("2026-10-01T08:00:00Z"),
        "{why}"
    );
    let r = h.report();
    let acct = |id: &str| r.account(r.find_id(id).unwrap()).unwrap();
    assert_eq!(
        acct("103").last_login,
        Known::Unknown,
        "carol: no event read yet"
    );
    assert_eq!(
        acct("106").last_login,
        Known::At(time::macros::datetime!(2026-10-01 08:00 UTC))
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_github_audit_log_covered_since_timestamp_seconds",
            &[]
        ),
        at("2026-10-01T08:00:00Z") as f64
    );

    let h = h.at(NOW + time::Duration::minutes(15));
    let before = mock.server.hits("/orgs/acme/audit-log");
    h.poll().await.unwrap();
    assert_eq!(mock.server.hits("/orgs/acme/audit-log") - before, 3);
    let backfill = mock
        .server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/orgs/acme/audit-log" && r.param("after").is_none())
        .unwrap();
    assert_eq!(
        backfill.param("phrase").as_deref(),
        Some("created:2026-08-29..2026-10-01")
    );
    assert_eq!(findings(&h, "dormant.inactive"), 2.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "last_login")]
        ),
        1.0
    );
    let r = h.report();
    assert_eq!(
        r.account(r.find_id("101").unwrap()).unwrap().last_login,
        Known::At(time::macros::datetime!(2026-11-27 10:00 UTC))
    );
}

#[tokio::test]
async fn hostile_items_are_skipped_not_fatal() {
    // A members page with items GitHub never sends (null, a number, no id): skipped, the
    // rest mapped.
    let mut o = org();
    o.members.insert(1, Value::Null);
    o.members.insert(3, json!(42));
    o.members
        .insert(5, json!({"login": "no-id", "type": "User"}));
    let mock = MockGithub::start(o, "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "active")]
        ),
        7.0
    );
    assert_eq!(findings(&h, "mfa.missing"), 2.0);
}

#[tokio::test]
async fn pages_are_fetched_by_number_and_next_links_still_followed() {
    // Pages 2..=last are fetched at once by number; when `last` falls short (the listing grew
    // after the first page), the `next` link of the page it named leads on to the rest.
    for understate in [false, true] {
        let mut o = org();
        o.understate_last = understate;
        let mock = MockGithub::start(o, "").await;
        let h = token_harness(&mock, "");
        h.poll().await.unwrap();
        let pages: Vec<Option<String>> = mock
            .server
            .requests()
            .iter()
            .filter(|r| {
                r.path == "/orgs/acme/members"
                    && r.param("role").is_none()
                    && r.param("filter").is_none()
            })
            .map(|r| r.param("page"))
            .collect();
        assert_eq!(pages.len(), 3, "{pages:?}");
        assert_eq!(
            pages[0], None,
            "the first page is asked for without a number"
        );
        assert_fixture_gauges(&h);
    }
}

#[tokio::test]
async fn a_single_owner_is_too_few_super_admins() {
    // GitHub advises at least two owners; with the default min_super_admins = 2 one owner is
    // a tenant finding, and bob, no longer an owner, is no longer privileged.
    let mut o = org();
    o.owners = vec![101];
    let mock = MockGithub::start(o, "").await;
    let h = token_harness(&mock, "");
    h.poll().await.unwrap();
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 1.0);
    assert_eq!(findings(&h, "tenant.too_few_super_admins"), 1.0);
    assert_eq!(findings(&h, "privilege.no_mfa"), 0.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_privileged_accounts",
            &[("role", "owner")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_wrong_org_or_token_fails_with_a_hint() {
    let mock = MockGithub::start(org(), "").await;
    let h = Harness::start(&[("token", "ghp_wrong\n")], &toml(&mock.api_url, ""));
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("auth"));
    assert!(
        e.contains("Bad credentials") && e.contains("token was rejected"),
        "{e}"
    );
    assert!(!e.contains("ghp_wrong"));

    let toml_other = toml(&mock.api_url, "").replace("org = \"acme\"", "org = \"other\"");
    let h = Harness::start(&[("token", &format!("{TOKEN}\n"))], &toml_other);
    let e = h.poll().await.unwrap_err();
    assert!(
        e.contains("HTTP 404") && e.contains("no organisation \"other\""),
        "{e}"
    );
}

#[test]
fn configuration_is_validated_with_every_problem_named() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t");
    std::fs::write(&token, "x\n").unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, APP_KEY).unwrap();
    let ok = |extra: &str| {
        config_from_toml(&format!(
            "[[sources]]\nname = \"gh\"\ntype = \"github\"\n{extra}"
        ))
    };
    // Token, defaults.
    let c = ok(&format!(
        "org = \"acme\"\ntoken_file = \"{}\"\n",
        token.display()
    ))
    .unwrap();
    let g = c.sources[0].settings::<GithubConfig>().unwrap();
    assert_eq!(g.api_url, "https://api.github.com");
    assert!(g.audit_log);
    // App: ids as numbers or strings.
    let c = ok(&format!(
        "org = \"acme\"\napi_url = \"https://ghe.example.com/api/v3\"\napp_id = \"Iv1.abc\"\ninstallation_id = 12\nprivate_key_file = \"{}\"\n",
        key.display()
    ))
    .unwrap();
    assert!(c.sources[0]
        .settings::<GithubConfig>()
        .unwrap()
        .auth
        .is_app());
    for (extra, needle) in [
        ("token_file = \"/x\"\n", "org: missing required key"),
        ("org = \"a/b\"\ntoken_env = \"X\"\n", "not an organisation login"),
        (&format!("org = \"acme\"\ntoken_file = \"{}\"\napp_id = 1\n", token.display()), "not both"),
        (&format!("org = \"acme\"\napp_id = 1\ninstallation_id = \"abc\"\nprivate_key_file = \"{}\"\n", key.display()), "installation_id"),
        (&format!("org = \"acme\"\ninstallation_id = 1\nprivate_key_file = \"{}\"\n", key.display()), "app_id"),
        ("org = \"acme\"\n", "token_file or token_env"),
        (&format!("org = \"acme\"\ntoken_file = \"{}\"\napi_url = \"http://ghe.example.com/api/v3\"\n", token.display()), "https"),
        (&format!("org = \"acme\"\ntoken_file = \"{}\"\napi_url = \"https://ghe.example.com/api\"\n", token.display()), "/api/v3"),
        (&format!("org = \"acme\"\ntoken_file = \"{}\"\naudit_log_pages_per_poll = 0\n", token.display()), "at least 1"),
        (&format!("org = \"acme\"\ntoken_file = \"{}\"\nenterprise = \"x\"\n", token.display()), "enterprise"),
    ] {
        let e = ok(extra).unwrap_err().to_string();
        assert!(e.contains(needle), "{extra}: {e}");
    }
    // A key that cannot sign is a configuration problem, naming the key path and the file.
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = ok(&format!(
        "org = \"acme\"\napp_id = 1\ninstallation_id = 2\nprivate_key_file = \"{}\"\n",
        bad.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains(".private_key_file: "), "{e}");
    assert!(e.contains("bad.pem"), "{e}");
}

#[test]
fn full_toml_example_is_valid() {
    let full = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/full.toml"))
        .unwrap();
    let block = &full[full.find("# GitHub organisation").unwrap()..];
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t");
    std::fs::write(&token, "x\n").unwrap();
    let key = dir.path().join("k.pem");
    std::fs::write(&key, APP_KEY).unwrap();
    let lines: Vec<&str> = block
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .collect();
    // As written (token), and with the commented App lines instead of the token.
    let as_written: String = lines
        .iter()
        .filter(|l| !l.starts_with("# #"))
        .map(|l| l.trim_start_matches("# ").to_string() + "\n")
        .collect::<String>()
        .replace("/run/secrets/github-token", token.to_str().unwrap());
    let c =
        config_from_toml(&as_written).unwrap_or_else(|e| panic!("{:?}\n{as_written}", e.problems));
    assert_eq!(c.sources[0].provider(), "github");
    let app_key = |l: &&&str| {
        ["# # app_id", "# # installation_id", "# # private_key_file"]
            .iter()
            .any(|k| l.starts_with(k))
    };
    let app: String = lines
        .iter()
        .filter(|l| !l.contains("token_file") && (!l.starts_with("# #") || app_key(l)))
        .map(|l| l.trim_start_matches("# ").to_string() + "\n")
        .collect::<String>()
        .replace("/run/secrets/github-app.pem", key.to_str().unwrap());
    let c = config_from_toml(&app).unwrap_or_else(|e| panic!("{:?}\n{app}", e.problems));
    assert!(c.sources[0]
        .settings::<GithubConfig>()
        .unwrap()
        .auth
        .is_app());
    // `owner` counts as super admin without any policy override.
    assert!(c.sources[0]
        .policy
        .super_admin_roles
        .iter()
        .any(|r| r == "owner"));
}

#[tokio::test]
async fn conformance() {
    use support::conformance::{run, Conformance};
    let mock = MockGithub::start(org(), "").await;
    let toml = toml(&mock.api_url, "");
    let token_file = format!("{TOKEN}\n");
    let make = |t: &str| {
        Harness::start(
            &[("token", &token_file)],
            &toml.replace("timeout = \"60s\"", &format!("timeout = \"{t}\"")),
        )
    };
    run(&Conformance {
        server: &mock.server,
        make: &make,
        listing: "/orgs/acme/members",
        optional: Some((
            "/orgs/acme/credential-authorizations",
            DataKind::Credentials,
            json!({"message": "Must have admin rights to Organization.", "documentation_url": "https://docs.github.com/rest/orgs/orgs#list-saml-sso-authorizations-for-an-organization", "status": "403"}),
        )),
        unauthorized: bad_credentials_body(),
        numbered_pages: false,
        secrets: &[TOKEN],
        gauges: &[
            "identity_posture_github_audit_log_covered_since_timestamp_seconds",
            "identity_posture_source_poll_requests",
        ],
    })
    .await;
}

/// The suite again with a GitHub App: also the installation-token endpoint refusing the
/// App (a 401 there fails as auth, with what to check), and neither the key nor an
/// installation token anywhere. The faults go to the credential-authorisation listing: with
/// an access token a 401 is answered by fetching a new token and trying once more, so the
/// suite's three 401s must meet one request chain, not the three member queries that run at
/// once (each would spend one and then succeed — which is right for a token the server
/// rejected once).
#[tokio::test]
async fn conformance_as_a_github_app() {
    use support::conformance::{run, Conformance};
    let mock = MockGithub::start(org(), "").await;
    mock.server.set_token_path(&format!(
        "/app/installations/{INSTALLATION_ID}/access_tokens"
    ));
    let toml = format!(
        "[[sources]]\nname = \"gh-app\"\ntype = \"github\"\norg = \"acme\"\napi_url = \"{}\"\napp_id = {APP_ID}\ninstallation_id = {INSTALLATION_ID}\nprivate_key_file = \"{{dir}}/app.pem\"\ntimeout = \"60s\"\n",
        mock.api_url
    );
    let make = |t: &str| {
        Harness::start(
            &[("app.pem", APP_KEY)],
            &toml.replace("timeout = \"60s\"", &format!("timeout = \"{t}\"")),
        )
    };
    let key_line = APP_KEY.lines().nth(1).unwrap();
    run(&Conformance {
        server: &mock.server,
        make: &make,
        listing: "/orgs/acme/credential-authorizations",
        optional: Some((
            "/orgs/acme/audit-log",
            DataKind::LastLogin,
            json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/orgs/orgs#get-the-audit-log-for-an-organization", "status": "403"}),
        )),
        unauthorized: bad_credentials_body(),
        numbered_pages: false,
        secrets: &[key_line, "ghs_MockInstallationToken"],
        gauges: &[
            "identity_posture_github_audit_log_covered_since_timestamp_seconds",
            "identity_posture_source_poll_requests",
        ],
    })
    .await;
    assert!(
        mock.exchange().issued.len() > 1,
        "a fresh App source fetches its own token"
    );
}
