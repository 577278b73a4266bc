//! The Okta source against the in-process mock Okta (tests/support/okta_mock.rs): a full poll
//! mapped account by account, the factor cache (budget, oldest-first, System Log events, max
//! age), every fault scenario (429, 500, truncated body, `next` loop, 401, 403s) with its
//! expected outcome, and the OAuth service-app flow with a real signed client assertion.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use identity_posture_exporter::config::{Secret, SourceConfig, UpstreamLimits};
use identity_posture_exporter::model::{
    Account, CredentialType, DataKind, FactorStatus, FactorType, Known, Status, Timestamp,
};
use identity_posture_exporter::sources::okta::config::DEFAULT_SCOPES as OKTA_DEFAULT_SCOPES;
use identity_posture_exporter::sources::okta::OktaSource;
use identity_posture_exporter::sources::okta::{OktaAuth, OktaConfig};
use identity_posture_exporter::sources::{Deps, PollContext, PollOutput, Provider, SourceError};
use identity_posture_exporter::store::Store;
use identity_posture_exporter::upstream::{ManualTimer, RequestStats as SourceStats};
use support::okta_mock::*;
use time::OffsetDateTime;

fn config(
    url: &str,
    auth: OktaAuth,
    tweak: impl FnOnce(&mut SourceConfig, &mut OktaConfig),
) -> SourceConfig {
    let mut okta = OktaConfig {
        url: url.to_string(),
        auth,
        terminated_attribute: Some("leaveDate".into()),
        factor_refresh_per_poll: None,
        factor_max_age: Duration::from_secs(24 * 3600),
    };
    let mut cfg = SourceConfig::new("okta-test", "okta", ());
    cfg.limits = UpstreamLimits {
        concurrency: 4,
        ..UpstreamLimits::default()
    };
    tweak(&mut cfg, &mut okta);
    cfg.settings = Arc::new(okta);
    cfg
}

fn token() -> OktaAuth {
    OktaAuth::ApiToken(Secret::new(TOKEN))
}

fn source(cfg: &SourceConfig) -> (OktaSource, ManualTimer) {
    let timer = ManualTimer::starting_now();
    (
        OktaSource::build(
            cfg,
            cfg.settings::<OktaConfig>().unwrap(),
            &Deps::with_timer(Arc::new(timer.clone())),
        )
        .unwrap(),
        timer,
    )
}

async fn poll(
    src: &OktaSource,
    now: Timestamp,
    stats: &SourceStats,
) -> Result<(HashMap<String, Account>, PollOutput), SourceError> {
    let mut sink: Vec<Account> = Vec::new();
    let out = src.poll(&PollContext { now, stats }, &mut sink).await?;
    let n = sink.len();
    let map: HashMap<String, Account> = sink.into_iter().map(|a| (a.id.clone(), a)).collect();
    assert_eq!(map.len(), n, "every account pushed once");
    Ok((map, out))
}

fn gauge(out: &PollOutput, name: &str) -> Option<f64> {
    out.gauges.iter().find(|g| g.name == name).map(|g| g.value)
}

fn active_types(a: &Account) -> BTreeSet<FactorType> {
    a.mfa.as_ref().unwrap().active_factors().collect()
}

#[tokio::test]
async fn full_poll_maps_every_account_and_reads_everything() {
    let mock = MockOkta::start(450, 5).await;
    let (src, timer) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let now = OffsetDateTime::now_utc();
    let (acc, out) = poll(&src, now, &stats).await.unwrap();
    // The mock reports 599 of 600 left on every response: no pacing, no retry, no wait.
    assert!(timer.sleeps().is_empty(), "{:?}", timer.sleeps());

    // Inventory: every status, DEPROVISIONED users from their own listing.
    assert_eq!(acc.len(), 455);
    let count = |s: Status| acc.values().filter(|a| a.status == s).count();
    assert_eq!(count(Status::Deprovisioned), 5);
    assert_eq!(count(Status::Locked), 23);
    assert_eq!(count(Status::Suspended), 23);
    assert_eq!(count(Status::Staged), 46);
    let active = active_count(450);
    assert_eq!(count(Status::Active) + count(Status::Locked), active);
    assert_eq!(
        acc[&user_id(5)].attributes["okta_status"],
        "PASSWORD_EXPIRED"
    );

    // Factors: fetched once for each active or locked user, never for the others.
    assert_eq!(mock.hits("factors"), active);
    let u0 = &acc[&user_id(0)];
    assert_eq!(
        active_types(u0),
        BTreeSet::from([
            FactorType::Push,
            FactorType::Totp,
            FactorType::Webauthn,
            FactorType::HardwareToken,
            FactorType::Sms,
            FactorType::Voice,
            FactorType::Email,
            FactorType::Question,
            FactorType::Other,
        ])
    );
    let f = &u0.mfa.as_ref().unwrap().factors;
    assert_eq!(f.len(), 19);
    assert_eq!(
        f.iter()
            .filter(|f| f.status == FactorStatus::Pending)
            .count(),
        2
    );
    assert_eq!(
        f.iter()
            .filter(|f| f.status == FactorStatus::Inactive)
            .count(),
        4
    );
    assert!(acc[&user_id(1)].mfa.is_some(), "locked users are checked");
    assert!(
        acc[&user_id(3)].mfa.is_none(),
        "staged: not fetched = unknown"
    );
    assert!(acc[&deprovisioned_id(0)].mfa.is_none());
    // Known to have no factor at all (not unknown).
    assert_eq!(acc[&user_id(9)].mfa.as_ref().unwrap().factors.len(), 0);
    // Only a pending factor: no active MFA.
    assert_eq!(active_types(&acc[&user_id(11)]).len(), 0);

    // Roles (custom roles by label, inactive assignments ignored) and admins' groups.
    let names = |a: &Account| -> Vec<String> {
        a.roles
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };
    assert_eq!(names(u0), vec!["SUPER_ADMIN"]);
    assert_eq!(u0.groups, vec!["Everyone", "it-admins"]);
    assert_eq!(
        names(&acc[&user_id(1)]),
        vec!["ORG_ADMIN", "CUSTOM:Help Desk Lite"]
    );
    assert_eq!(names(&acc[&user_id(2)]), vec!["SUPER_ADMIN"]);
    assert!(names(&acc[&user_id(6)]).is_empty());
    assert_eq!(acc[&user_id(7)].roles, Some(vec![]));

    // Credentials: Okta passwords, API tokens of their owners; none for federated users.
    let c0 = u0.credentials.as_ref().unwrap();
    assert_eq!(c0.len(), 2);
    assert_eq!(c0[0].credential_type, CredentialType::Password);
    let tok = c0
        .iter()
        .find(|c| c.credential_type == CredentialType::Token)
        .unwrap();
    assert_eq!(tok.id, "00Ttoken0");
    assert_eq!(tok.last_rotated.value().unwrap().year(), 2024);
    assert_eq!(tok.expires, Known::Unknown);
    assert_eq!(acc[&user_id(8)].credentials, Some(vec![]));

    // Absent = unknown, null = never.
    assert_eq!(acc[&user_id(7)].last_login, Known::Never);
    assert_eq!(acc[&user_id(22)].last_login, Known::Unknown);
    assert!(matches!(acc[&user_id(1)].last_login, Known::At(_)));
    assert_eq!(acc[&user_id(10)].terminated.unwrap().year(), 2026);
    assert_eq!(acc[&user_id(1)].login, "user1@example.com");
    assert_eq!(
        acc[&user_id(1)].display_name.as_deref(),
        Some("First1 Last1")
    );

    // Tenant: the active 1FA rule of the active app sign-in policy only.
    assert_eq!(
        out.tenant.mfa_policy_gaps,
        Some(vec![
            "app sign-in policy \"Okta Dashboard\" rule \"Legacy kiosks\" allows access with one factor"
                .to_string()
        ])
    );
    assert!(
        out.availability.missing.is_empty(),
        "{:?}",
        out.availability
    );

    // Gauges and request accounting.
    assert_eq!(
        gauge(&out, "identity_posture_source_factor_cache_coverage_ratio"),
        Some(1.0)
    );
    assert_eq!(
        gauge(
            &out,
            "identity_posture_source_factor_cache_oldest_timestamp_seconds"
        ),
        Some(now.unix_timestamp() as f64)
    );
    assert_eq!(
        gauge(&out, "identity_posture_source_factor_refreshes"),
        Some(active as f64)
    );
    // 3 + 1 user pages, 2 assignee pages, 4 × roles, 4 × groups, tokens, policies, 1 rules.
    let expected = 4 + active + 2 + 4 + 4 + 1 + 1 + 1;
    assert_eq!(mock.total_hits(), expected);
    assert_eq!(
        gauge(&out, "identity_posture_source_poll_requests"),
        Some(expected as f64)
    );
    assert_eq!(stats.api_requests().get("2xx"), Some(&(expected as u64)));
    assert_eq!(stats.rate_limited(), 0);
}

#[tokio::test]
async fn second_poll_uses_the_cache_and_refreshes_users_named_in_factor_events() {
    let mock = MockOkta::start(120, 0).await;
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let t1 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    poll(&src, t1, &stats).await.unwrap();
    assert!(
        mock.state.log_queries.lock().unwrap().is_empty(),
        "no window before the first poll"
    );

    // User 12 enrols a security key between the polls.
    mock.set_factors(
        &user_id(12),
        serde_json::json!([{"id": "x", "factorType": "webauthn", "provider": "FIDO", "status": "ACTIVE"}]),
    );
    mock.push_log_event(factor_event(&user_id(12), "user.mfa.factor.activate"));
    let t2 = t1 + Duration::from_secs(900);
    let (acc, out) = poll(&src, t2, &stats).await.unwrap();
    assert_eq!(mock.factor_calls(&user_id(12)), 2);
    assert_eq!(
        mock.factor_calls(&user_id(0)),
        1,
        "fresh entries are not refetched"
    );
    assert_eq!(
        active_types(&acc[&user_id(12)]),
        BTreeSet::from([FactorType::Webauthn])
    );
    assert_eq!(
        gauge(&out, "identity_posture_source_factor_refreshes"),
        Some(1.0)
    );
    let q = mock.state.log_queries.lock().unwrap().clone();
    assert_eq!(q.len(), 1);
    let fmt = |t: Timestamp| {
        t.format(&time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap()
    };
    assert_eq!(
        q[0].0,
        fmt(t1 - Duration::from_secs(300)),
        "overlaps the last window"
    );
    assert_eq!(q[0].1, fmt(t2));
    assert_eq!(q[0].2, "eventType sw \"user.mfa.factor\"");

    // A day later every entry is past factor_max_age and refreshed again.
    let t3 = t2 + Duration::from_secs(25 * 3600);
    poll(&src, t3, &stats).await.unwrap();
    assert_eq!(mock.factor_calls(&user_id(0)), 2);
}

fn source_with_store(cfg: &SourceConfig, store: Arc<Store>) -> OktaSource {
    let timer = ManualTimer::starting_now();
    OktaSource::build(
        cfg,
        cfg.settings::<OktaConfig>().unwrap(),
        &Deps::with_timer(Arc::new(timer)).with_store(store),
    )
    .unwrap()
}

#[tokio::test]
async fn the_factor_cache_survives_a_restart_and_resumes_the_system_log_window() {
    let mock = MockOkta::start(120, 0).await;
    let cfg = config(&mock.url, token(), |_, _| {});
    let dir = tempfile::tempdir().unwrap();
    let stats = SourceStats::default();
    let t1 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    {
        let store = Arc::new(Store::open(Some(dir.path())));
        let src = source_with_store(&cfg, store);
        poll(&src, t1, &stats).await.unwrap();
    }
    let first = mock.hits("factors");
    assert!(first > 0);

    // While the exporter is down, user 12 enrols a security key.
    mock.set_factors(
        &user_id(12),
        serde_json::json!([{"id": "x", "factorType": "webauthn", "provider": "FIDO", "status": "ACTIVE"}]),
    );
    mock.push_log_event(factor_event(&user_id(12), "user.mfa.factor.activate"));

    // A new process on the same state directory.
    let src = source_with_store(&cfg, Arc::new(Store::open(Some(dir.path()))));
    let t2 = t1 + Duration::from_secs(900);
    let (acc, out) = poll(&src, t2, &stats).await.unwrap();
    assert_eq!(
        mock.hits("factors"),
        first + 1,
        "only the user named in the System Log is fetched again"
    );
    assert_eq!(mock.factor_calls(&user_id(0)), 1);
    assert_eq!(
        active_types(&acc[&user_id(12)]),
        BTreeSet::from([FactorType::Webauthn])
    );
    assert_eq!(
        gauge(&out, "identity_posture_source_factor_cache_coverage_ratio"),
        Some(1.0)
    );
    let q = mock.state.log_queries.lock().unwrap().clone();
    assert_eq!(q.len(), 1, "the window before the restart is read");
    let since = Timestamp::parse(&q[0].0, &time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(since, t1 - Duration::from_secs(300));
    // Cached users keep their factors (not unknown) after the restart.
    assert!(acc[&user_id(0)].mfa.is_some());
}

#[tokio::test]
async fn a_stored_factor_cache_for_another_org_is_not_used() {
    let mock = MockOkta::start(30, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let stats = SourceStats::default();
    let t1 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    {
        let cfg = config(&mock.url, token(), |_, _| {});
        let src = source_with_store(&cfg, Arc::new(Store::open(Some(dir.path()))));
        poll(&src, t1, &stats).await.unwrap();
    }
    assert!(mock.hits("factors") > 0);
    // Same source name, another org.
    let other = MockOkta::start(30, 0).await;
    let cfg = config(&other.url, token(), |_, _| {});
    let src = source_with_store(&cfg, Arc::new(Store::open(Some(dir.path()))));
    poll(&src, t1 + Duration::from_secs(900), &stats)
        .await
        .unwrap();
    assert_eq!(
        other.hits("factors"),
        mock.hits("factors"),
        "every user fetched: the stored cache belonged to the other org"
    );
    assert!(
        other.state.log_queries.lock().unwrap().is_empty(),
        "no System Log window is resumed for another org"
    );
}

#[tokio::test]
async fn factor_budget_converges_over_polls_oldest_first() {
    let mock = MockOkta::start(450, 0).await;
    let cfg = config(&mock.url, token(), |_, o| {
        o.factor_refresh_per_poll = Some(100);
        o.factor_max_age = Duration::from_secs(1);
    });
    let (src, _t) = source(&cfg);
    let stats = SourceStats::default();
    let active = active_count(450);
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let mut first_batch: Vec<String> = Vec::new();
    let mut polls = 0;
    let mut known = 0;
    while known < active {
        let now = t0 + Duration::from_secs(3600 * polls);
        let (acc, out) = poll(&src, now, &stats).await.unwrap();
        polls += 1;
        let with_mfa: Vec<&Account> = acc.values().filter(|a| a.mfa.is_some()).collect();
        assert_eq!(with_mfa.len(), (100 * polls as usize).min(active));
        assert!(with_mfa.iter().all(|a| a.status.is_active()));
        if polls == 1 {
            first_batch = with_mfa.iter().map(|a| a.id.clone()).collect();
        }
        known = with_mfa.len();
        let ratio = gauge(&out, "identity_posture_source_factor_cache_coverage_ratio").unwrap();
        assert!((ratio - known as f64 / active as f64).abs() < 1e-9);
        assert_eq!(
            gauge(
                &out,
                "identity_posture_source_factor_cache_oldest_timestamp_seconds"
            ),
            Some(t0.unix_timestamp() as f64)
        );
        // Unknown, never "no MFA": nothing else carries an empty factor list it did not fetch.
        if known < active {
            assert!(out.availability.is_available(DataKind::Mfa));
        }
        assert!(polls < 10, "does not converge");
    }
    assert_eq!(polls, active.div_ceil(100) as u64);
    // The last converging poll spent its spare budget on the oldest (stale) entries.
    assert_eq!(mock.hits("factors"), 100 * polls as usize);
    // Fully cached: the next poll refreshes the 100 oldest entries, which finishes the
    // first batch.
    let now = t0 + Duration::from_secs(3600 * polls);
    let (_, out) = poll(&src, now, &stats).await.unwrap();
    assert_eq!(mock.hits("factors"), 100 * (polls as usize + 1));
    for id in &first_batch {
        assert_eq!(mock.factor_calls(id), 2, "{id} is among the oldest");
    }
    assert_eq!(
        gauge(
            &out,
            "identity_posture_source_factor_cache_oldest_timestamp_seconds"
        ),
        Some((t0 + Duration::from_secs(3600)).unix_timestamp() as f64)
    );
}

#[tokio::test]
async fn rate_limited_page_waits_for_the_okta_reset_then_completes() {
    let mock = MockOkta::start(450, 0).await;
    mock.knobs(|k| k.users_429_once = Some(30));
    let (src, timer) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, _) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(acc.len(), 450);
    assert_eq!(stats.rate_limited(), 1);
    assert_eq!(stats.api_requests().get("429"), Some(&1));
    let waits = timer.sleeps();
    // The mock writes the reset from the real clock, while the test's manual clock starts
    // at the real time and then stands still, so on a loaded machine the wait exceeds 30 s
    // by however long the test took to reach page 2 (31.1 s was seen in CI).
    assert!(
        waits
            .iter()
            .any(|d| *d >= Duration::from_secs(28) && *d <= Duration::from_secs(35)),
        "{waits:?}"
    );
}

#[tokio::test]
async fn server_error_and_truncated_body_are_retried() {
    let mock = MockOkta::start(450, 0).await;
    mock.knobs(|k| {
        k.users_500_once = true;
    });
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, _) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(acc.len(), 450);
    assert_eq!(stats.api_requests().get("5xx"), Some(&1));

    mock.knobs(|k| k.users_truncated_once = true);
    let (acc, _) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(acc.len(), 450);
    assert!(!mock.state.knobs.lock().unwrap().users_truncated_once);
}

#[tokio::test]
async fn persistent_server_error_fails_the_poll_with_the_okta_error() {
    let mock = MockOkta::start(450, 0).await;
    mock.knobs(|k| k.users_500_always = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let e = poll(&src, OffsetDateTime::now_utc(), &stats)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("okta source okta-test ("), "{e}");
    assert!(
        e.contains(r#"GET /api/v1/users: HTTP 500 E0000009 "Internal Server Error" (errorId oaeMockErrorId123)"#),
        "{e}"
    );
    assert_eq!(stats.api_requests().get("5xx"), Some(&4));
}

#[tokio::test]
async fn next_link_loop_fails_the_poll_instead_of_paging_forever() {
    let mock = MockOkta::start(1000, 0).await;
    mock.knobs(|k| k.users_next_loop = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let e = poll(&src, OffsetDateTime::now_utc(), &stats)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("/api/v1/users: pagination loop"), "{e}");
    assert_eq!(mock.hits("users"), 3);
}

#[tokio::test]
async fn rejected_token_fails_with_e0000011_and_never_shows_the_token() {
    let mock = MockOkta::start(10, 0).await;
    mock.knobs(|k| k.reject_all = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let e = poll(&src, OffsetDateTime::now_utc(), &stats)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"HTTP 401 E0000011 "Invalid token provided" (errorId oaeMockErrorId123)"#),
        "{e}"
    );
    assert!(e.contains("token was rejected"), "{e}");
    assert!(!e.contains(TOKEN), "{e}");
    assert!(!format!("{src:?}").contains(TOKEN));
}

#[tokio::test]
async fn api_tokens_forbidden_is_partial_credentials_not_a_failed_poll() {
    let mock = MockOkta::start(30, 0).await;
    mock.knobs(|k| k.api_tokens_403 = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, out) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    let reason = &out.availability.missing[&DataKind::Credentials];
    assert!(reason.starts_with("partially"), "{reason}");
    assert!(
        reason.contains("E0000006") && reason.contains("Super Administrators"),
        "{reason}"
    );
    let c0 = acc[&user_id(0)].credentials.as_ref().unwrap();
    assert_eq!(c0.len(), 1);
    assert_eq!(c0[0].credential_type, CredentialType::Password);
}

#[tokio::test]
async fn roles_forbidden_makes_roles_unknown_not_empty() {
    let mock = MockOkta::start(30, 0).await;
    mock.knobs(|k| k.assignees_403 = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, out) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert!(acc.values().all(|a| a.roles.is_none()));
    let reason = &out.availability.missing[&DataKind::Roles];
    assert!(
        reason.contains("okta.roles.read") && reason.contains("E0000006"),
        "{reason}"
    );
}

#[tokio::test]
async fn admin_groups_forbidden_leave_roles_known_and_groups_unknown() {
    let mock = MockOkta::start(30, 0).await;
    mock.knobs(|k| k.groups_403 = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, out) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    let admin = &acc[&user_id(0)];
    assert!(admin.is_privileged(), "roles are still read");
    assert!(admin.groups_unknown && admin.groups.is_empty());
    assert!(
        !acc[&user_id(3)].groups_unknown,
        "only admins' groups are read"
    );
    assert!(!out.availability.missing.contains_key(&DataKind::Roles));
}

#[tokio::test]
async fn factors_forbidden_makes_mfa_unknown_and_stops_asking() {
    let mock = MockOkta::start(450, 0).await;
    mock.knobs(|k| k.factors_403 = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, out) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert!(acc.values().all(|a| a.mfa.is_none()));
    let reason = &out.availability.missing[&DataKind::Mfa];
    assert!(
        reason.contains("okta.users.read") && reason.contains("E0000006"),
        "{reason}"
    );
    // The first page's in-flight requests at most, not one per user.
    assert!(mock.hits("factors") <= 200, "{}", mock.hits("factors"));
    assert!(mock.hits("factors") < active_count(450));
    assert_eq!(
        gauge(&out, "identity_posture_source_factor_cache_coverage_ratio"),
        Some(0.0)
    );
}

#[tokio::test]
async fn failing_factor_refresh_keeps_the_cached_factors() {
    let mock = MockOkta::start(40, 0).await;
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let t1 = OffsetDateTime::now_utc();
    poll(&src, t1, &stats).await.unwrap();
    mock.knobs(|k| {
        k.factors_500_for.insert(user_id(12));
    });
    mock.push_log_event(factor_event(&user_id(12), "user.mfa.factor.deactivate"));
    let (acc, _) = poll(&src, t1 + Duration::from_secs(900), &stats)
        .await
        .unwrap();
    assert_eq!(
        mock.factor_calls(&user_id(12)),
        1 + 4,
        "retried, then given up"
    );
    assert!(
        acc[&user_id(12)].mfa.is_some(),
        "stale but known beats unknown"
    );
}

#[tokio::test]
async fn classic_org_gap_comes_from_the_global_sign_on_policy() {
    let mock = MockOkta::start(5, 0).await;
    mock.knobs(|k| k.classic_org = true);
    let (src, _t) = source(&config(&mock.url, token(), |_, _| {}));
    let stats = SourceStats::default();
    let (_, out) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(
        out.tenant.mfa_policy_gaps,
        Some(vec![
            "global session policy \"Default Policy\" rule \"Office network, password only\" allows sign-in without MFA"
                .to_string()
        ])
    );
}

#[tokio::test]
async fn the_request_budget_is_reported_clearly() {
    let mock = MockOkta::start(450, 0).await;
    let cfg = config(&mock.url, token(), |c, _| {
        c.limits.max_requests_per_poll = Some(5)
    });
    let (src, _t) = source(&cfg);
    let stats = SourceStats::default();
    let e = poll(&src, OffsetDateTime::now_utc(), &stats)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_requests_per_poll"), "{e}");
}

fn service_app(key: &str, key_id: Option<&str>) -> OktaAuth {
    OktaAuth::ServiceApp {
        client_id: "0oaTestClient".into(),
        private_key: Secret::new(key),
        key_id: key_id.map(str::to_string),
        scopes: OKTA_DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
    }
}

async fn oauth_mock(kid: &str) -> MockOkta {
    let public = include_bytes!("support/test-service-app-key.pub.pem");
    MockOkta::start_with(
        50,
        2,
        Some(OAuthMock {
            client_id: "0oaTestClient".into(),
            key: jsonwebtoken::DecodingKey::from_rsa_pem(public).unwrap(),
            kid: Some(kid.into()),
        }),
    )
    .await
}

#[tokio::test]
async fn service_app_signs_a_client_assertion_and_reuses_the_token() {
    let mock = oauth_mock("test-kid").await;
    let pem = include_str!("support/test-service-app-key.pem");
    let (src, _t) = source(&config(
        &mock.url,
        service_app(pem, Some("test-kid")),
        |_, _| {},
    ));
    let stats = SourceStats::default();
    let (acc, out) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(acc.len(), 52);
    assert!(out.availability.missing.is_empty());
    poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(
        mock.state
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let issued = mock.state.issued.lock().unwrap()[0].clone();
    assert!(!format!("{src:?}").contains(&issued));
}

#[tokio::test]
async fn service_app_accepts_a_jwk_private_key_with_its_kid() {
    let mock = oauth_mock("test-kid-jwk").await;
    let jwk = include_str!("support/test-service-app-key.jwk.json");
    let (src, _t) = source(&config(&mock.url, service_app(jwk, None), |_, _| {}));
    let stats = SourceStats::default();
    let (acc, _) = poll(&src, OffsetDateTime::now_utc(), &stats).await.unwrap();
    assert_eq!(acc.len(), 52);
}

#[tokio::test]
async fn service_app_with_the_wrong_key_id_names_the_oauth_error() {
    let mock = oauth_mock("test-kid").await;
    let pem = include_str!("support/test-service-app-key.pem");
    let (src, _t) = source(&config(
        &mock.url,
        service_app(pem, Some("other-kid")),
        |_, _| {},
    ));
    let stats = SourceStats::default();
    let e = poll(&src, OffsetDateTime::now_utc(), &stats)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("POST /oauth2/v1/token: HTTP 401 invalid_client"),
        "{e}"
    );
    assert!(e.contains("public key is registered"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
}

#[test]
fn okta_keys_are_accepted_by_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tok");
    std::fs::write(&f, format!("{TOKEN}\n")).unwrap();
    let c = identity_posture_exporter::sources::config_from_toml(&format!(
        r#"[[sources]]
name = "okta-prod"
type = "okta"
url = "https://example.okta.com"
token_file = "{}"
factor_refresh_per_poll = 5000
factor_max_age = "12h"
terminated_attribute = "leaveDate"
"#,
        f.display()
    ))
    .unwrap();
    let o = c.sources[0].settings::<OktaConfig>().unwrap();
    assert_eq!(o.factor_refresh_per_poll, Some(5000));
    assert_eq!(o.factor_max_age, Duration::from_secs(12 * 3600));
    assert!(
        identity_posture_exporter::sources::Source::build(&c.sources[0], &Deps::default()).is_ok()
    );
}

/// The framework's promises, on the mock Okta (three pages of users).
#[tokio::test]
async fn conformance() {
    use identity_posture_exporter::sources::okta::{FACTOR_CACHE_COVERAGE, FACTOR_REFRESHES};
    use support::conformance::{run, Conformance};
    use support::harness::Harness;
    let mock = MockOkta::start(250, 5).await;
    let toml = format!(
        "[[sources]]\nname = \"okta-conf\"\ntype = \"okta\"\nurl = \"{}\"\ntoken_file = \"{{dir}}/token\"\ntimeout = \"60s\"\n",
        mock.url
    );
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
        listing: "/api/v1/users",
        optional: Some((
            "/api/v1/iam/assignees/users",
            DataKind::Roles,
            serde_json::json!({"errorCode": "E0000006", "errorSummary": "You do not have permission to perform the requested action", "errorLink": "E0000006", "errorId": "oae1", "errorCauses": []}),
        )),
        unauthorized: serde_json::json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided", "errorLink": "E0000011", "errorId": "oae2", "errorCauses": []}),
        numbered_pages: false,
        secrets: &[TOKEN],
        gauges: &[
            FACTOR_CACHE_COVERAGE.name,
            FACTOR_REFRESHES.name,
            "identity_posture_source_poll_requests",
        ],
    })
    .await;
}
