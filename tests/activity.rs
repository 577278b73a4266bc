//! The sign-in event streams end to end: the mock Okta System Log, the mock Graph sign-in log
//! and the mock Google login audit replay scripted sequences through the real poller, engine
//! and /metrics, and the expected detections and counters below are worked out by hand from
//! each script: every attack, the near-misses one event below the threshold, duplicates
//! across pages, clock skew, an expired cursor, a licence or permission refusal, a pass
//! stopped by the request budget, and a restart in the middle of a stream that loses and
//! duplicates nothing.

mod support;

use serde_json::{json, Value};
use support::harness::{Harness, NOW};
use support::okta_mock::{log_event, MockOkta, TOKEN};

/// `2026-11-28T11:MM:SSZ` for `s` seconds after 11:00 (the harness polls at 12:00).
fn at(s: i64) -> String {
    let t = time::macros::datetime!(2026-11-28 11:00 UTC) + time::Duration::seconds(s);
    identity_posture_exporter::model::format_ts(t)
}

fn okta_toml(url: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"okta-act\"\ntype = \"okta\"\nurl = \"{url}\"\ntoken_file = \"{{dir}}/token\"\ntimeout = \"60s\"\nactivity = true\n{extra}"
    )
}

fn okta(mock: &MockOkta, extra: &str) -> Harness {
    Harness::start(
        &[("token", &format!("{TOKEN}\n"))],
        &okta_toml(&mock.url, extra),
    )
}

fn okta_at(mock: &MockOkta, state: &std::path::Path) -> Harness {
    Harness::start_with_state(
        &[("token", &format!("{TOKEN}\n"))],
        &okta_toml(&mock.url, ""),
        state,
    )
}

fn failure(uuid: &str, s: i64, user: &str, ip: &str) -> Value {
    log_event(
        uuid,
        &at(s),
        "user.session.start",
        &format!("00u{user}"),
        &format!("{user}@example.com"),
        ip,
        "FAILURE",
        Some("INVALID_CREDENTIALS"),
    )
}

fn mfa(
    uuid: &str,
    s: i64,
    user: &str,
    event_type: &str,
    result: &str,
    reason: Option<&str>,
) -> Value {
    let mut e = log_event(
        uuid,
        &at(s),
        event_type,
        &format!("00u{user}"),
        &format!("{user}@example.com"),
        "192.0.2.44",
        result,
        reason,
    );
    e["debugContext"]["debugData"]["factor"] = json!("OKTA_VERIFY_PUSH");
    e
}

/// The Okta script, in System Log persistence order.
fn okta_script() -> Vec<Value> {
    let mut v = Vec::new();
    // A spray: 198.51.100.7 fails against ten distinct accounts in nine minutes → one
    // password_spray (high) when the tenth fails.
    for i in 0..10 {
        v.push(failure(
            &format!("spray-{i}"),
            i * 60,
            &format!("s{i}"),
            "198.51.100.7",
        ));
    }
    // The near-miss: 198.51.100.8 against nine accounts → nothing.
    for i in 0..9 {
        v.push(failure(
            &format!("near-{i}"),
            30 + i * 60,
            &format!("n{i}"),
            "198.51.100.8",
        ));
    }
    // The same event listed again on a later page: counted once.
    v.push(failure("spray-3", 180, "s3", "198.51.100.7"));
    // MFA fatigue, Classic: three rejected pushes in four minutes, then the victim approves
    // → mfa_fatigue high, escalated to critical.
    for (k, s) in [(0, 1200), (1, 1320), (2, 1440)] {
        v.push(mfa(
            &format!("cf-push-{k}"),
            s - 5,
            "f1",
            "system.push.send_factor_verify_push",
            "SUCCESS",
            None,
        ));
        v.push(mfa(
            &format!("cf-deny-{k}"),
            s,
            "f1",
            "user.mfa.okta_verify.deny_push",
            "SUCCESS",
            None,
        ));
    }
    v.push(mfa(
        "cf-ok",
        1500,
        "f1",
        "user.authentication.auth_via_mfa",
        "SUCCESS",
        None,
    ));
    // MFA fatigue, Identity Engine: two rejections and one unanswered push in six minutes →
    // mfa_fatigue high (no approval: stays high).
    v.push(mfa(
        "oie-1",
        1800,
        "f2",
        "user.authentication.auth_via_mfa",
        "FAILURE",
        Some("User rejected Okta Verify push"),
    ));
    v.push(mfa(
        "oie-2",
        1980,
        "f2",
        "user.authentication.auth_via_mfa",
        "DENY",
        Some("Push rejected"),
    ));
    v.push(mfa(
        "oie-3",
        2160,
        "f2",
        "user.authentication.auth_via_mfa",
        "UNANSWERED",
        None,
    ));
    // The near-miss: two rejections for f3 → nothing.
    v.push(mfa(
        "near-f3-1",
        1800,
        "f3",
        "user.mfa.okta_verify.deny_push",
        "SUCCESS",
        None,
    ));
    v.push(mfa(
        "near-f3-2",
        1900,
        "f3",
        "user.mfa.okta_verify.deny_push",
        "SUCCESS",
        None,
    ));
    // A lockout of s0 (the target is the user, the actor the system).
    let mut lock = log_event(
        "lock-1",
        &at(700),
        "user.account.lock",
        "0oaSys",
        "system",
        "198.51.100.7",
        "SUCCESS",
        None,
    );
    lock["actor"] = json!({"id": "0oaSys", "type": "PublicClientApp", "alternateId": "system"});
    lock["target"] = json!([{"id": "00us0", "type": "User", "alternateId": "s0@example.com", "displayName": "s0"}]);
    v.push(lock);
    // From a clock 15 minutes ahead (beyond max_clock_skew = 5m): dropped as clock_skew.
    let mut skew = failure("skewed", 0, "z1", "203.0.113.200");
    skew["published"] = json!("2026-11-28T12:15:00.000Z");
    v.push(skew);
    // Not authentication: skipped without a count.
    v.push(log_event(
        "other-1",
        &at(100),
        "user.mfa.factor.activate",
        "00uq",
        "q@example.com",
        "192.0.2.1",
        "SUCCESS",
        None,
    ));
    // No uuid: unparsable.
    v.push(json!({"eventType": "user.session.start", "published": at(50)}));
    v
}

/// The hand-worked totals of [`okta_script`].
fn assert_okta_totals(h: &Harness) {
    let g = |name: &str, labels: &[(&str, &str)]| {
        h.gauge(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing\n{}", h.series(name).join("\n")))
    };
    // 10 spray + 9 near-miss failures (the repeat of spray-3 is not counted).
    assert_eq!(
        g(
            "identity_posture_signins_total",
            &[
                ("result", "failure"),
                ("factor_kind", "password"),
                ("client_kind", "browser")
            ]
        ),
        19.0
    );
    // Denied pushes: three Classic, two OIE, two near-miss = 7; one unanswered.
    assert_eq!(
        g(
            "identity_posture_signins_total",
            &[
                ("result", "mfa_denied"),
                ("factor_kind", "push"),
                ("client_kind", "browser")
            ]
        ),
        7.0
    );
    assert_eq!(
        g(
            "identity_posture_signins_total",
            &[
                ("result", "mfa_timeout"),
                ("factor_kind", "push"),
                ("client_kind", "browser")
            ]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_signins_total",
            &[
                ("result", "success"),
                ("factor_kind", "push"),
                ("client_kind", "browser")
            ]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_signins_total",
            &[("result", "locked_out"), ("factor_kind", "unknown")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_signin_failures_total",
            &[("reason", "invalid_credentials")]
        ),
        19.0
    );
    assert_eq!(
        g(
            "identity_posture_mfa_challenges_total",
            &[("outcome", "sent")]
        ),
        3.0
    );
    assert_eq!(
        g(
            "identity_posture_mfa_challenges_total",
            &[("outcome", "denied")]
        ),
        7.0
    );
    assert_eq!(
        g(
            "identity_posture_mfa_challenges_total",
            &[("outcome", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "clock_skew")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "unparsable")]
        ),
        1.0
    );
    // Detections: one spray, two fatigue (one escalated), nothing from the near-misses.
    assert_eq!(
        g(
            "identity_posture_activity_detections_total",
            &[("kind", "password_spray"), ("severity", "high")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_detections_total",
            &[("kind", "mfa_fatigue"), ("severity", "high")]
        ),
        2.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_detections_total",
            &[("kind", "mfa_fatigue"), ("severity", "critical")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_detections_total",
            &[("kind", "brute_force"), ("severity", "medium")]
        ),
        0.0
    );
    // At 12:00 the spray (window 1 h, last event 11:09) is still open; the fatigue
    // detections (window 10 min) are closed.
    assert_eq!(
        g(
            "identity_posture_activity_detections",
            &[("kind", "password_spray"), ("severity", "high")]
        ),
        1.0
    );
    assert_eq!(
        g(
            "identity_posture_activity_detections",
            &[("kind", "mfa_fatigue"), ("severity", "critical")]
        ),
        0.0
    );
}

#[tokio::test]
async fn okta_system_log_attacks_near_misses_duplicates_and_skew() {
    let mock = MockOkta::start(3, 0).await;
    mock.knobs(|k| k.log_page_size = Some(4));
    let script = okta_script();
    let n = script.len();
    mock.append_stream(script);
    let h = okta(&mock, "");
    h.poll().await.unwrap();
    assert_okta_totals(&h);
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    // The first query starts at now − activity_lookback (24 h), ascending, without `until`;
    // every later one follows `after`; the read stops at the first empty page.
    let q = mock.stream_queries();
    assert!(q[0].contains("since=2026-11-27T12%3A00%3A00Z"), "{}", q[0]);
    assert!(q[0].contains("sortOrder=ASCENDING") && !q[0].contains("until"));
    assert_eq!(
        q.len(),
        n.div_ceil(4) + 1,
        "every page, then one empty page"
    );
    assert!(q[1..].iter().all(|x| x.contains("after=")));

    // The next poll resumes from the kept cursor: one request, an empty page, nothing new.
    h.poll().await.unwrap();
    let q2 = mock.stream_queries();
    assert_eq!(q2.len(), q.len() + 1);
    assert_eq!(q2.last(), q.last(), "the empty page's cursor is kept");
    assert_okta_totals(&h);

    // Events that arrive later are read from there: a brute force that succeeds.
    let mut late = Vec::new();
    for i in 0..10 {
        late.push(failure(
            &format!("bf-{i}"),
            2400 + i * 30,
            "victim",
            "203.0.113.50",
        ));
    }
    late.push(log_event(
        "bf-ok",
        &at(2720),
        "user.session.start",
        "00uvictim",
        "victim@example.com",
        "203.0.113.50",
        "SUCCESS",
        None,
    ));
    mock.append_stream(late);
    h.poll().await.unwrap();
    let g = |k: &str, s: &str| {
        h.gauge(
            "identity_posture_activity_detections_total",
            &[("kind", k), ("severity", s)],
        )
    };
    assert_eq!(g("brute_force", "medium"), Some(1.0));
    assert_eq!(
        g("brute_force", "critical"),
        Some(1.0),
        "a success right after is critical"
    );
    assert_eq!(
        h.gauge(
            "identity_posture_signins_total",
            &[
                ("result", "failure"),
                ("factor_kind", "password"),
                ("client_kind", "browser")
            ]
        ),
        Some(29.0)
    );
}

#[tokio::test]
async fn okta_restart_mid_stream_loses_and_duplicates_nothing() {
    let mock = MockOkta::start(3, 0).await;
    // One event a page: the first poll stops at the page cap (20) in the middle of the stream.
    mock.knobs(|k| k.log_page_size = Some(1));
    mock.append_stream(okta_script());
    let state = tempfile::tempdir().unwrap();
    {
        let h = okta_at(&mock, state.path());
        h.poll().await.unwrap();
        // 20 pages of one event: the spray, the near-miss and the repeat; not the fatigue.
        let g = |r: &str| {
            h.gauge(
                "identity_posture_signins_total",
                &[
                    ("result", r),
                    ("factor_kind", "password"),
                    ("client_kind", "browser"),
                ],
            )
        };
        assert_eq!(g("failure"), Some(19.0));
        assert_eq!(
            h.gauge(
                "identity_posture_mfa_challenges_total",
                &[("outcome", "denied")]
            ),
            Some(0.0),
            "stopped in the middle of the stream"
        );
    }
    // A new process on the same state directory: counters, windows and cursor come back.
    let h = okta_at(&mock, state.path());
    for _ in 0..3 {
        h.poll().await.unwrap();
    }
    assert_okta_totals(&h);
}

#[tokio::test]
async fn okta_expired_cursor_rereads_from_the_newest_event_and_counts_once() {
    let mock = MockOkta::start(3, 0).await;
    mock.knobs(|k| k.log_page_size = Some(5));
    mock.append_stream(okta_script());
    let h = okta(&mock, "");
    h.poll().await.unwrap();
    let cursor = mock.stream_queries().last().unwrap().clone();
    let after = cursor
        .split('&')
        .find_map(|p| p.strip_prefix("after="))
        .unwrap()
        .to_string();
    mock.knobs(|k| {
        k.log_expired_after.insert(after);
    });
    mock.append_stream([failure("after-expiry", 2600, "s1", "192.0.2.9")]);
    h.poll().await.unwrap();
    let q = mock.stream_queries();
    let restart = q.iter().rev().find(|x| x.contains("since=")).unwrap();
    // Restarted 10 minutes before the newest event read (oie-3 at 11:36 → 11:26).
    assert!(
        restart.contains("since=2026-11-28T11%3A26%3A00Z"),
        "{restart}"
    );
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    // The overlap is dropped as duplicates, the new event counted once.
    assert_eq!(
        h.gauge(
            "identity_posture_signins_total",
            &[
                ("result", "failure"),
                ("factor_kind", "password"),
                ("client_kind", "browser")
            ]
        ),
        Some(20.0)
    );
    assert!(
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")]
        )
        .unwrap()
            > 1.0
    );
}

#[tokio::test]
async fn okta_without_logs_scope_leaves_activity_unknown_and_the_poll_up() {
    let mock = MockOkta::start(3, 0).await;
    mock.knobs(|k| k.logs_403 = true);
    let h = okta(&mock, "");
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(1.0));
    assert_eq!(
        h.gauge(
            "identity_posture_source_data_available",
            &[("data", "activity")]
        ),
        Some(0.0)
    );
    let _ = NOW;
}

// ------------------------------------------------------------------------------- Entra

use support::entra_mock::{MockGraph, Tenant};

fn entra_toml(t: &Tenant, base: &str) -> String {
    format!(
        "[[sources]]\nname = \"entra-act\"\ntype = \"entra\"\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"{{dir}}/secret\"\nauthority_url = \"{base}\"\ngraph_url = \"{base}\"\ntimeout = \"60s\"\nactivity = true\n",
        t.tenant_id, t.client_id
    )
}

/// A `signIn` record in the documented shape, `s` seconds after 11:00.
fn sign_in(id: &str, s: i64, upn: &str, ip: &str, code: i64, extra: Value) -> Value {
    let mut v = json!({
        "id": id,
        "createdDateTime": at(s),
        "userDisplayName": upn,
        "userPrincipalName": upn,
        "userId": format!("uid-{upn}"),
        "appId": "de8bc8b5-d9f9-48b1-a8ad-b748da725064",
        "appDisplayName": "Graph Explorer",
        "ipAddress": ip,
        "clientAppUsed": "Browser",
        "correlationId": format!("corr-{id}"),
        "conditionalAccessStatus": "notApplied",
        "isInteractive": true,
        "riskDetail": "none",
        "riskLevelAggregated": "none",
        "riskLevelDuringSignIn": "none",
        "riskState": "none",
        "riskEventTypes_v2": [],
        "resourceDisplayName": "Microsoft Graph",
        "resourceId": "00000003-0000-0000-c000-000000000000",
        "authenticationRequirement": if code == 50126 { "singleFactorAuthentication" } else { "multiFactorAuthentication" },
        "status": {"errorCode": code, "failureReason": if code == 0 { "Other." } else { "Invalid username or password or Invalid on-premise username or password." }, "additionalDetails": null},
        "deviceDetail": {"deviceId": "", "displayName": null, "operatingSystem": "Windows 10", "browser": "Edge 80.0.361",
                         "isCompliant": null, "isManaged": null, "trustType": null},
        "location": {"city": "Redmond", "state": "Washington", "countryOrRegion": "US",
                     "geoCoordinates": {"altitude": null, "latitude": 47.68, "longitude": -122.12}},
        "mfaDetail": if code == 50126 { Value::Null } else { json!({"authMethod": "Mobile app notification", "authDetail": null}) },
        "appliedConditionalAccessPolicies": []
    });
    if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
        for (k, val) in x {
            o.insert(k.clone(), val.clone());
        }
    }
    v
}

fn entra_script() -> Vec<Value> {
    let mut v = Vec::new();
    // A spray: 203.0.113.9 against ten accounts in 18 minutes.
    for i in 0..10 {
        v.push(sign_in(
            &format!("sp-{i}"),
            i * 120,
            &format!("s{i}@contoso.com"),
            "203.0.113.9",
            50126,
            json!({}),
        ));
    }
    // The brute-force near-miss: nine wrong passwords for one account in 13.5 minutes.
    for i in 0..9 {
        v.push(sign_in(
            &format!("nb-{i}"),
            60 + i * 90,
            "nb@contoso.com",
            "198.51.100.30",
            50126,
            json!({}),
        ));
    }
    // MFA fatigue: declined, declined, unanswered, then approved.
    let mfa_fail = |id: &str, s: i64, details: &str| {
        sign_in(
            id,
            s,
            "mf@contoso.com",
            "198.51.100.31",
            500121,
            json!({"status": {"errorCode": 500121,
            "failureReason": "Authentication failed during strong authentication request.", "additionalDetails": details}}),
        )
    };
    v.push(mfa_fail(
        "mf-1",
        1500,
        "MFA denied; user declined the authentication",
    ));
    v.push(mfa_fail(
        "mf-2",
        1620,
        "MFA denied; user declined the authentication",
    ));
    v.push(mfa_fail(
        "mf-3",
        1740,
        "MFA denied; user did not respond to mobile app notification",
    ));
    v.push(sign_in(
        "mf-ok",
        1800,
        "mf@contoso.com",
        "198.51.100.31",
        0,
        json!({}),
    ));
    // IMAP (legacy authentication), successful.
    v.push(sign_in("imap-1", 1000, "legacy@contoso.com", "192.0.2.70", 0,
        json!({"clientAppUsed": "IMAP4", "authenticationRequirement": "singleFactorAuthentication", "mfaDetail": null})));
    // "Strong authentication required next": an interrupt, not an outcome.
    v.push(sign_in(
        "int-1",
        1100,
        "legacy@contoso.com",
        "192.0.2.70",
        50074,
        json!({}),
    ));
    // Redmond, then Amsterdam half an hour later.
    v.push(sign_in(
        "tr-1",
        0,
        "tr@contoso.com",
        "192.0.2.80",
        0,
        json!({}),
    ));
    v.push(sign_in("tr-2", 1800, "tr@contoso.com", "203.0.113.81", 0, json!({"location": {"city": "Amsterdam",
        "state": "North Holland", "countryOrRegion": "NL", "geoCoordinates": {"altitude": null, "latitude": 52.37, "longitude": 4.9}}})));
    v
}

fn assert_entra_totals(h: &Harness) {
    let g = |labels: &[(&str, &str)]| {
        h.gauge("identity_posture_signins_total", labels)
            .unwrap_or(0.0)
    };
    assert_eq!(
        g(&[
            ("result", "failure"),
            ("factor_kind", "password"),
            ("client_kind", "browser")
        ]),
        19.0
    );
    assert_eq!(
        g(&[
            ("result", "mfa_denied"),
            ("factor_kind", "push"),
            ("client_kind", "browser")
        ]),
        2.0
    );
    assert_eq!(
        g(&[
            ("result", "mfa_timeout"),
            ("factor_kind", "push"),
            ("client_kind", "browser")
        ]),
        1.0
    );
    assert_eq!(
        g(&[
            ("result", "success"),
            ("factor_kind", "push"),
            ("client_kind", "browser")
        ]),
        3.0
    );
    assert_eq!(
        g(&[
            ("result", "success"),
            ("factor_kind", "password"),
            ("client_kind", "legacy")
        ]),
        1.0
    );
    assert_eq!(
        h.gauge(
            "identity_posture_legacy_auth_signins_total",
            &[("result", "success")]
        ),
        Some(1.0)
    );
    let d = |k: &str, s: &str| {
        h.gauge(
            "identity_posture_activity_detections_total",
            &[("kind", k), ("severity", s)],
        )
    };
    assert_eq!(d("password_spray", "high"), Some(1.0));
    assert_eq!(d("mfa_fatigue", "high"), Some(1.0));
    assert_eq!(d("mfa_fatigue", "critical"), Some(1.0));
    assert_eq!(d("impossible_travel", "high"), Some(1.0));
    assert_eq!(
        d("brute_force", "medium"),
        Some(0.0),
        "nine failures are one short"
    );
    assert_eq!(
        d("new_country", "low"),
        Some(0.0),
        "the first pass builds the baseline"
    );
}

#[tokio::test]
async fn entra_sign_in_log_attacks_near_misses_and_overlap() {
    let t = Tenant {
        sign_in_page_size: 4,
        ..Tenant::default()
    };
    let (log, queries) = (t.sign_ins.clone(), t.sign_in_queries.clone());
    log.lock().unwrap().extend(entra_script());
    let toml = entra_toml(&t, "{base}");
    let secret = format!("{}\n", t.client_secret);
    let mock = MockGraph::start(t).await;
    let h = Harness::start(&[("secret", &secret)], &toml.replace("{base}", &mock.base));
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    assert_entra_totals(&h);
    let q = queries.lock().unwrap().clone();
    assert!(
        q[0].contains("%24filter=createdDateTime+ge+2026-11-27T12%3A00%3A00Z"),
        "{}",
        q[0]
    );
    assert_eq!(q.len(), 26usize.div_ceil(4));

    // The next pass starts 15 minutes before the newest record read (11:30 → 11:15): the
    // overlap is dropped as duplicates; a late record is counted once.
    log.lock().unwrap().push(sign_in(
        "late-1",
        1900,
        "s1@contoso.com",
        "192.0.2.99",
        50126,
        json!({}),
    ));
    h.poll().await.unwrap();
    let q = queries.lock().unwrap().clone();
    assert!(
        q.last().unwrap().contains("ge+2026-11-28T11%3A15%3A00Z")
            || q.iter().any(|x| x.contains("ge+2026-11-28T11%3A15%3A00Z")),
        "{q:?}"
    );
    assert!(
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")]
        )
        .unwrap()
            >= 5.0
    );
    assert_eq!(
        h.gauge(
            "identity_posture_signins_total",
            &[
                ("result", "failure"),
                ("factor_kind", "password"),
                ("client_kind", "browser")
            ]
        ),
        Some(20.0)
    );
}

#[tokio::test]
async fn entra_pass_cut_short_continues_after_a_restart() {
    let t = Tenant {
        sign_in_page_size: 1,
        ..Tenant::default()
    };
    t.sign_ins.lock().unwrap().extend(entra_script());
    let queries = t.sign_in_queries.clone();
    let toml = entra_toml(&t, "{base}");
    let secret = format!("{}\n", t.client_secret);
    let mock = MockGraph::start(t).await;
    let toml = toml.replace("{base}", &mock.base);
    let state = tempfile::tempdir().unwrap();
    {
        let h = Harness::start_with_state(&[("secret", &secret)], &toml, state.path());
        h.poll().await.unwrap();
        // 20 pages of one record: the newest 20 of 26, one of them the interrupt.
        let total: f64 = h
            .series("identity_posture_signins_total")
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
            .sum();
        assert_eq!(total, 19.0);
    }
    let h = Harness::start_with_state(&[("secret", &secret)], &toml, state.path());
    h.poll().await.unwrap();
    let q = queries.lock().unwrap().clone();
    assert!(
        q[20].contains("skiptoken"),
        "the restarted process follows the pending nextLink: {}",
        q[20]
    );
    h.poll().await.unwrap();
    assert_entra_totals(&h);
}

#[tokio::test]
async fn entra_without_premium_leaves_activity_unknown_with_the_reason() {
    let t = Tenant {
        non_premium: true,
        ..Tenant::default()
    };
    let toml = entra_toml(&t, "{base}");
    let secret = format!("{}\n", t.client_secret);
    let mock = MockGraph::start(t).await;
    let h = Harness::start(&[("secret", &secret)], &toml.replace("{base}", &mock.base));
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(1.0));
    assert_eq!(
        h.gauge(
            "identity_posture_source_data_available",
            &[("data", "activity")]
        ),
        Some(0.0)
    );
    let snap = h.state.sources[0].activity.snapshot.load_full().unwrap();
    assert!(
        snap.unavailable.as_deref().unwrap().contains("P1/P2"),
        "{:?}",
        snap.unavailable
    );
}

// ------------------------------------------------------------------------- /api/v1/activity

/// The demo (file source replaying examples/demo-events.ndjson) behind the real server, with
/// an API token: `/api/v1/activity` lists the detections, filtered, paged, as JSON and CSV.
#[tokio::test]
async fn api_lists_detections_paged_as_json_and_csv_behind_the_api_token() {
    use identity_posture_exporter::poller::poll_and_publish;
    use identity_posture_exporter::sources::{config_from_toml, Deps, Source};
    use identity_posture_exporter::state::AppState;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let tok = dir.path().join("tok");
    std::fs::write(&tok, "s3cret-token\n").unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = config_from_toml(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\napi_token_file = \"{}\"\n[[sources]]\nname = \"demo\"\ntype = \"file\"\npath = \"{root}/examples/demo-identities.json\"\ntime_anchor = \"2026-11-28T00:00:00Z\"\nactivity = true\nevents_path = \"{root}/examples/demo-events.ndjson\"\nactivity_lookback = \"7d\"\n",
        tok.display()
    ))
    .unwrap();
    let state = Arc::new(AppState::new(&cfg.sources));
    let app = identity_posture_exporter::server::app(state.clone(), &cfg.server).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let source = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    let clock: identity_posture_exporter::poller::Clock =
        Arc::new(|| time::macros::datetime!(2026-11-28 00:00 UTC));
    poll_and_publish(&cfg.sources[0], &source, &state.sources[0], &state, &clock)
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let get = |path: &str, auth: bool| {
        let mut r = client.get(format!("{base}{path}"));
        if auth {
            r = r.bearer_auth("s3cret-token");
        }
        r.send()
    };
    assert_eq!(get("/api/v1/activity", false).await.unwrap().status(), 401);
    let v: Value = get("/api/v1/activity", true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The demo's seven detections, all inside their window at the anchor.
    assert_eq!(v["total"], 7, "{v}");
    let kinds: std::collections::BTreeSet<&str> = v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    assert!(v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["active"] == true));
    assert_eq!(v["streams"][0]["up"], true);
    let spray: Value = get("/api/v1/activity?kind=password_spray", true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spray["total"], 1);
    assert_eq!(spray["detections"][0]["ip"], "203.0.113.66");
    assert_eq!(spray["detections"][0]["severity"], "high");
    let crit: Value = get("/api/v1/activity?severity=critical", true)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        crit["total"], 2,
        "fatigue escalated and the admin without MFA"
    );

    // Paging: three pages of three, two and two, no repeats, newest first.
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/activity?limit=3&cursor={c}"),
            None => "/api/v1/activity?limit=3".into(),
        };
        let p: Value = get(&path, true).await.unwrap().json().await.unwrap();
        ids.extend(
            p["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_u64().unwrap()),
        );
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len(), 7);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");

    let r = get("/api/v1/activity?format=csv&limit=2", true)
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["x-total-count"], "7");
    assert!(r.headers().contains_key("x-next-cursor"));
    let body = r.text().await.unwrap();
    let mut lines = body.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("\"source\",\"provider\",\"id\",\"kind\",\"severity\",\"active\""));
    assert_eq!(lines.count(), 2);

    for bad in [
        "kind=nope",
        "severity=urgent",
        "format=xml",
        "cursor=!!",
        "since=yesterday",
    ] {
        let r = get(&format!("/api/v1/activity?{bad}"), true).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    assert_eq!(
        get("/api/v1/activity?source=nope", true)
            .await
            .unwrap()
            .status(),
        404
    );
}

// ------------------------------------------------------------------ crash in the middle

/// The exporter is killed (SIGKILL) again and again while its file source releases a
/// stream of 3,000 sign-in events over 15 seconds and every one-second poll commits cursor
/// and counters to the store; each restart resumes from the last commit. At the end every
/// event has been counted exactly once: none lost, none twice.
#[test]
fn killed_mid_write_again_and_again_and_nothing_is_lost_or_counted_twice() {
    use std::io::Write;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    const N: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&events).unwrap());
    let anchor = time::macros::datetime!(2026-11-28 00:00 UTC);
    for k in 0..N {
        let t = anchor + time::Duration::milliseconds(5 * k as i64);
        let result = if k % 7 == 0 { "failure" } else { "success" };
        writeln!(
            f,
            r#"{{"id":"k-{k}","time":"{}","login":"u{}@example.com","result":"{result}","factor":"password","ip":"192.0.2.{}"}}"#,
            identity_posture_exporter::model::format_ts(t),
            k % 300,
            k % 200
        )
        .unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\nstate_dir = \"{state}\"\n[[sources]]\nname = \"k\"\ntype = \"file\"\npath = \"{ids}\"\ntime_anchor = \"2026-11-28T00:00:00Z\"\ninterval = \"1s\"\nactivity = true\nevents_path = \"{ev}\"\nactivity_lookback = \"1h\"\n",
            state = dir.path().join("state").display(),
            ids = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-identities.json"),
            ev = events.display(),
        ),
    )
    .unwrap();
    let start = || -> Child {
        Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
            .args(["--config", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let metrics = || -> Option<String> {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        Some(body)
    };
    let value = |text: &str, series: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
    };
    // Kill it at uneven moments while the stream is being released and committed.
    let mut kills = 0;
    for pause in [700u64, 1300, 450, 2100, 900, 1600, 350, 1200] {
        let mut child = start();
        std::thread::sleep(Duration::from_millis(pause));
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    // Then let it finish.
    let mut child = start();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let counted = loop {
        if let Some(m) = metrics() {
            let n = value(&m, "identity_posture_activity_events_total{");
            last = m;
            if n == Some(N as f64) {
                // One more poll: nothing may be counted twice afterwards either.
                std::thread::sleep(Duration::from_millis(2500));
                last = metrics().unwrap_or(last);
                break value(&last, "identity_posture_activity_events_total{");
            }
        }
        if Instant::now() > deadline {
            break value(&last, "identity_posture_activity_events_total{");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(kills, 8);
    assert_eq!(
        counted,
        Some(N as f64),
        "every event counted once after {kills} kills"
    );
    let signins: f64 = last
        .lines()
        .filter(|l| l.starts_with("identity_posture_signins_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(signins, N as f64);
    assert_eq!(
        value(
            &last,
            "identity_posture_activity_events_dropped_total{provider=\"file\",reason=\"duplicate\""
        ),
        Some(0.0)
    );
}

/// A pass cut short keeps its nextLink; when Graph refuses it (an expired skip token) the
/// next poll starts the pass again from the last complete one, and nothing is counted twice.
#[tokio::test]
async fn entra_expired_next_link_restarts_the_pass_and_counts_once() {
    let t = Tenant {
        sign_in_page_size: 1,
        ..Tenant::default()
    };
    t.sign_ins.lock().unwrap().extend(entra_script());
    let (queries, expired) = (t.sign_in_queries.clone(), t.sign_in_expired.clone());
    let toml = entra_toml(&t, "{base}");
    let secret = format!("{}\n", t.client_secret);
    let mock = MockGraph::start(t).await;
    let h = Harness::start(&[("secret", &secret)], &toml.replace("{base}", &mock.base));
    h.poll().await.unwrap();
    let pending = queries.lock().unwrap().len();
    expired.lock().unwrap().insert("X'20'".to_string());
    h.poll().await.unwrap();
    {
        let q = queries.lock().unwrap();
        assert!(q[pending].contains("skiptoken"), "{}", q[pending]);
        assert!(
            !q[pending + 1].contains("skiptoken"),
            "a fresh pass: {}",
            q[pending + 1]
        );
    }
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    expired.lock().unwrap().clear();
    h.poll().await.unwrap();
    h.poll().await.unwrap();
    assert_entra_totals(&h);
    assert!(
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")]
        )
        .unwrap()
            >= 19.0,
        "the re-read pass is dropped as duplicates"
    );
}

// ------------------------------------------------------------------------------- Google

use support::google_mock::{Api, MockGoogle, PageSizes, Workspace};

/// A login audit activity in the shape the Reports API lists (discovery `Activity`), `s`
/// seconds after 11:00. `params` are the event's parameters; `uq` its `uniqueQualifier`.
fn gw(uq: i64, s: i64, user: &str, ip: Option<&str>, name: &str, params: Value) -> Value {
    let mut a = json!({
        "kind": "admin#reports#activity",
        "id": {"time": at(s), "uniqueQualifier": format!("-{}", 6_410_578_305_296_437_000i64 + uq),
               "applicationName": "login", "customerId": "C03az79cb"},
        "etag": "\"etag-a\"",
        "actor": {"callerType": "USER", "email": format!("{user}@example.com"), "profileId": format!("g-{user}")},
        "networkInfo": {"ipAsn": [64496], "regionCode": "DE"},
        "events": [{"type": if name.starts_with("login") || name == "logout" { "login" } else { "account_warning" },
                    "name": name, "parameters": params}]
    });
    if let Some(ip) = ip {
        a["ipAddress"] = json!(ip);
    }
    a
}

fn gw_fail(uq: i64, s: i64, user: &str, ip: &str) -> Value {
    gw(
        uq,
        s,
        user,
        Some(ip),
        "login_failure",
        json!([{"name": "login_type", "value": "google_password"},
               {"name": "login_challenge_method", "multiValue": ["password"]},
               {"name": "login_failure_type", "value": "login_failure_invalid_password"}]),
    )
}

fn gw_success(uq: i64, s: i64, user: &str, ip: &str, methods: &[&str]) -> Value {
    gw(
        uq,
        s,
        user,
        Some(ip),
        "login_success",
        json!([{"name": "login_type", "value": "google_password"},
               {"name": "login_challenge_method", "multiValue": methods},
               {"name": "is_suspicious", "boolValue": false}]),
    )
}

fn gw_verify(uq: i64, s: i64, user: &str, method: &str, status: &str) -> Value {
    gw(
        uq,
        s,
        user,
        Some("192.0.2.20"),
        "login_verification",
        json!([{"name": "login_type", "value": "google_password"},
               {"name": "login_challenge_method", "multiValue": [method]},
               {"name": "login_challenge_status", "value": status},
               {"name": "is_second_factor", "boolValue": true}]),
    )
}

/// The Google script (any order: the mock lists newest first).
fn google_script() -> Vec<Value> {
    let mut v = Vec::new();
    // A spray: 198.51.100.7 against ten accounts in nine minutes → password_spray (high).
    for i in 0..10 {
        v.push(gw_fail(i, i * 60, &format!("s{i}"), "198.51.100.7"));
    }
    // The near-miss: nine accounts from 198.51.100.8 → nothing.
    for i in 0..9 {
        v.push(gw_fail(
            100 + i,
            30 + i * 60,
            &format!("n{i}"),
            "198.51.100.8",
        ));
    }
    // The same activity listed twice (id.time and uniqueQualifier alike): counted once.
    v.push(gw_fail(3, 180, "s3", "198.51.100.7"));
    // Brute force: ten wrong passwords for bf in nine minutes, then a success (Google
    // prompt) → brute_force (medium), escalated to critical.
    for i in 0..10 {
        v.push(gw_fail(200 + i, 1000 + i * 60, "bf", "192.0.2.10"));
    }
    v.push(gw_success(
        210,
        1600,
        "bf",
        "192.0.2.10",
        &["password", "google_prompt"],
    ));
    // The near-miss: nine for nb in twelve minutes → nothing.
    for i in 0..9 {
        v.push(gw_fail(300 + i, 1000 + i * 90, "nb", "192.0.2.11"));
    }
    // MFA fatigue: three Google prompts not approved in four minutes, the passed one, then
    // the sign-in → mfa_fatigue (high), escalated to critical by the login_success.
    for (k, s) in [(0, 2000), (1, 2120), (2, 2240)] {
        v.push(gw_verify(
            400 + k,
            s,
            "mf",
            "google_prompt",
            "Challenge Failed.",
        ));
    }
    v.push(gw_verify(
        403,
        2290,
        "mf",
        "google_prompt",
        "Challenge Passed.",
    ));
    v.push(gw_success(
        404,
        2300,
        "mf",
        "192.0.2.20",
        &["password", "google_prompt"],
    ));
    // The near-miss: two prompts refused and a wrong authenticator code (a failure, not a
    // denial) for mn → nothing.
    v.push(gw_verify(500, 2000, "mn", "google_prompt", "failed"));
    v.push(gw_verify(501, 2100, "mn", "google_prompt", "failed"));
    v.push(gw_verify(502, 2200, "mn", "google_authenticator", "failed"));
    // Google blocked a suspicious sign-in for s1, and one from a less secure app.
    v.push(gw(
        600,
        600,
        "s1",
        Some("198.51.100.7"),
        "suspicious_login",
        json!([{"name": "affected_email_address", "value": "s1@example.com"},
               {"name": "login_timestamp", "intValue": "1795863000000000"}]),
    ));
    v.push(gw(
        601,
        700,
        "lsa",
        Some("203.0.113.30"),
        "suspicious_login_less_secure_app",
        json!([{"name": "affected_email_address", "value": "lsa@example.com"}]),
    ));
    // Google disabled s2 (hijacked): locked out, no address (not a sign-in from there).
    v.push(gw(
        602,
        800,
        "s2",
        Some("198.51.100.7"),
        "account_disabled_hijacked",
        json!([{"name": "affected_email_address", "value": "s2@example.com"}]),
    ));
    // The super admin signs in with the password alone → privileged_signin_without_mfa.
    v.push(gw_success(700, 2500, "root", "192.0.2.50", &["password"]));
    // Not sign-in outcomes: skipped without a count.
    v.push(gw(
        800,
        2400,
        "mf",
        Some("192.0.2.20"),
        "logout",
        json!([{"name": "login_type", "value": "google_password"}]),
    ));
    v.push(gw(
        801,
        2410,
        "mf",
        Some("192.0.2.20"),
        "2sv_enroll",
        json!([]),
    ));
    // Unreadable: an unknown challenge status, an activity without uniqueQualifier.
    v.push(gw_verify(900, 2420, "mf", "google_prompt", ""));
    let mut no_uq = gw_fail(901, 2430, "x1", "192.0.2.99");
    no_uq["id"]
        .as_object_mut()
        .unwrap()
        .remove("uniqueQualifier");
    v.push(no_uq);
    v
}

/// The directory: the super admin (`g-root`, the built-in super-admin role) whose sign-ins
/// the stream names by `actor.profileId`.
fn google_workspace(script: Vec<Value>, page: usize) -> Workspace {
    let root = json!({"kind": "admin#directory#user", "id": "g-root", "primaryEmail": "root@example.com",
        "name": {"fullName": "Root Example"}, "isAdmin": true, "isDelegatedAdmin": false,
        "lastLoginTime": "2026-11-27T08:00:00.000Z", "creationTime": "2024-01-10T08:00:00.000Z",
        "suspended": false, "archived": false, "orgUnitPath": "/", "isEnrolledIn2Sv": true, "isEnforcedIn2Sv": true});
    let ws = Workspace {
        users: support::google_mock::Collection::of(vec![root]),
        roles: vec![
            json!({"kind": "admin#directory#role", "roleId": "91447453409034240",
            "roleName": "_SEED_ADMIN_ROLE", "isSuperAdminRole": true, "isSystemRole": true}),
        ],
        role_assignments: vec![
            json!({"kind": "admin#directory#roleAssignment", "roleAssignmentId": "1",
            "roleId": "91447453409034240", "assignedTo": "g-root", "assigneeType": "user", "scopeType": "CUSTOMER"}),
        ],
        page: PageSizes {
            activities: page,
            ..PageSizes::default()
        },
        ..Workspace::default()
    };
    ws.stream.lock().unwrap().extend(script);
    ws
}

fn google_toml(mock: &MockGoogle) -> String {
    format!(
        "[[sources]]\nname = \"google-act\"\ntype = \"google\"\nadmin_email = \"admin@example.com\"\ncredentials_file = \"{{dir}}/key.json\"\napi_url = \"{}\"\ntimeout = \"60s\"\nactivity = true\n",
        mock.base
    )
}

fn google_key(mock: &MockGoogle) -> String {
    Workspace::default().key_file(&mock.token_url())
}

/// The stream's queries (the ledger's `eventName=login_success` listings left out).
fn stream_queries(q: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
    q.lock()
        .unwrap()
        .iter()
        .filter(|x| !x.contains("eventName"))
        .cloned()
        .collect()
}

/// The hand-worked counters of [`google_script`].
fn assert_google_totals(h: &Harness) {
    let g = |name: &str, labels: &[(&str, &str)]| {
        h.gauge(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?} missing\n{}", h.series(name).join("\n")))
    };
    let signins = |r: &str, f: &str, c: &str| {
        g(
            "identity_posture_signins_total",
            &[("result", r), ("factor_kind", f), ("client_kind", c)],
        )
    };
    // 10 spray + 9 near-miss + 10 brute force + 9 near-miss wrong passwords (the listed
    // twice one once).
    assert_eq!(signins("failure", "password", "browser"), 38.0);
    // Google prompts not approved: three for mf, two for mn; the wrong code is a failure.
    assert_eq!(signins("mfa_denied", "push", "browser"), 5.0);
    assert_eq!(signins("failure", "totp", "browser"), 1.0);
    // bf's and mf's sign-ins with the prompt; root's with the password alone.
    assert_eq!(signins("success", "push", "browser"), 2.0);
    assert_eq!(signins("success", "password", "browser"), 1.0);
    assert_eq!(signins("blocked", "unknown", "other"), 1.0);
    assert_eq!(signins("blocked", "unknown", "legacy"), 1.0);
    assert_eq!(signins("locked_out", "unknown", "other"), 1.0);
    let total: f64 = h
        .series("identity_posture_signins_total")
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        total, 50.0,
        "nothing else: passed verifications, logout and 2SV changes are not sign-ins"
    );
    let reason = |r: &str| g("identity_posture_signin_failures_total", &[("reason", r)]);
    assert_eq!(reason("invalid_credentials"), 38.0);
    assert_eq!(reason("mfa_denied"), 5.0);
    assert_eq!(reason("mfa_failed"), 1.0);
    assert_eq!(reason("risk"), 2.0);
    assert_eq!(reason("account_disabled"), 1.0);
    let mfa = |o: &str| g("identity_posture_mfa_challenges_total", &[("outcome", o)]);
    assert_eq!(
        (mfa("approved"), mfa("denied"), mfa("timeout")),
        (2.0, 5.0, 0.0)
    );
    assert_eq!(
        g(
            "identity_posture_legacy_auth_signins_total",
            &[("result", "blocked")]
        ),
        1.0
    );
    assert_eq!(
        g("identity_posture_privileged_signins_without_mfa_total", &[]),
        1.0
    );
}

/// The hand-worked detections of [`google_script`] (read in one poll).
fn assert_google_detections(h: &Harness) {
    let d = |k: &str, s: &str| {
        h.gauge(
            "identity_posture_activity_detections_total",
            &[("kind", k), ("severity", s)],
        )
        .unwrap()
    };
    assert_eq!(d("password_spray", "high"), 1.0);
    assert_eq!(d("brute_force", "medium"), 1.0);
    assert_eq!(d("brute_force", "critical"), 1.0);
    assert_eq!(d("mfa_fatigue", "high"), 1.0);
    assert_eq!(d("mfa_fatigue", "critical"), 1.0);
    assert_eq!(d("privileged_signin_without_mfa", "critical"), 1.0);
    assert_eq!(
        d("impossible_travel", "high"),
        0.0,
        "Google gives no coordinates"
    );
    assert_eq!(d("inactive_account_signin", "high"), 0.0);
}

#[tokio::test]
async fn google_login_audit_attacks_near_misses_duplicates_and_overlap() {
    let ws = google_workspace(google_script(), 4);
    let (stream, queries) = (ws.stream.clone(), ws.stream_queries.clone());
    let mock = MockGoogle::start(ws).await;
    let h = Harness::start(&[("key.json", &google_key(&mock))], &google_toml(&mock));
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(1.0));
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    assert_google_totals(&h);
    assert_google_detections(&h);
    let dropped = |r: &str| {
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", r)],
        )
    };
    assert_eq!(dropped("duplicate"), Some(1.0));
    assert_eq!(
        dropped("unparsable"),
        Some(2.0),
        "an unknown challenge status, no uniqueQualifier"
    );
    assert_eq!(
        h.gauge(
            "identity_posture_activity_detections_total",
            &[("kind", "new_country"), ("severity", "low")]
        ),
        Some(0.0),
        "the first pass builds the baseline"
    );
    // One pass over the look-back, every event name, pages of four: 56 activities.
    let q = stream_queries(&queries);
    assert_eq!(q.len(), 56usize.div_ceil(4), "{q:?}");
    assert!(
        q[0].contains("startTime=2026-11-27T12%3A00%3A00Z")
            && q[0].contains("endTime=2026-11-28T12%3A00%3A00Z")
            && q[0].contains("maxResults=1000"),
        "{}",
        q[0]
    );
    assert!(q[1].contains("pageToken="), "{}", q[1]);
    let detections = h.state.sources[0].activity.snapshot.load_full().unwrap();
    let spray = detections
        .detections
        .iter()
        .find(|d| d.kind.as_str() == "password_spray")
        .unwrap();
    assert_eq!(spray.ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(spray.country.as_deref(), Some("DE"));

    // Ten minutes later: the pass re-reads from an hour before the newest event (11:41:40),
    // so an event that reached the audit late (11:30) is counted once and the rest of the
    // overlap is dropped as duplicates; mf signs in from Brazil → new_country.
    stream
        .lock()
        .unwrap()
        .push(gw_fail(1000, 1800, "late", "192.0.2.77"));
    let mut br = gw_success(
        1001,
        3900,
        "mf",
        "198.51.100.90",
        &["password", "google_prompt"],
    );
    br["networkInfo"]["regionCode"] = json!("BR");
    stream.lock().unwrap().push(br);
    let h = h.at(NOW + time::Duration::minutes(10));
    h.poll().await.unwrap();
    let q = stream_queries(&queries);
    let second = &q[56usize.div_ceil(4)];
    assert!(
        second.contains("startTime=2026-11-28T10%3A41%3A40Z")
            && second.contains("endTime=2026-11-28T12%3A10%3A00Z"),
        "{second}"
    );
    let signins = |h: &Harness, r: &str, f: &str| {
        h.gauge(
            "identity_posture_signins_total",
            &[
                ("result", r),
                ("factor_kind", f),
                ("client_kind", "browser"),
            ],
        )
    };
    assert_eq!(signins(&h, "failure", "password"), Some(39.0));
    assert_eq!(signins(&h, "success", "push"), Some(3.0));
    assert_eq!(
        h.gauge(
            "identity_posture_activity_detections_total",
            &[("kind", "new_country"), ("severity", "low")]
        ),
        Some(1.0)
    );
    let dup = h
        .gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")],
        )
        .unwrap();
    // The whole first pass (11:00–11:41:40) is in the overlap: its 51 events (50 counted,
    // the one listed twice) are read again and dropped as duplicates, besides the first
    // poll's one.
    assert_eq!(dup, 1.0 + 51.0, "the re-read overlap counts nothing twice");

    // Nothing new: a third pass changes nothing.
    let h = h.at(NOW + time::Duration::minutes(20));
    h.poll().await.unwrap();
    assert_eq!(signins(&h, "failure", "password"), Some(39.0));
    assert_eq!(signins(&h, "success", "push"), Some(3.0));
}

#[tokio::test]
async fn google_pass_cut_short_continues_after_a_restart_and_loses_nothing() {
    // Pages of one: the pass takes 56 requests, 20 a poll (the page cap).
    let ws = google_workspace(google_script(), 1);
    let queries = ws.stream_queries.clone();
    let mock = MockGoogle::start(ws).await;
    let (key, toml) = (google_key(&mock), google_toml(&mock));
    let state = tempfile::tempdir().unwrap();
    {
        let h = Harness::start_with_state(&[("key.json", &key)], &toml, state.path());
        h.poll().await.unwrap();
        let snap = h.state.sources[0].activity.snapshot.load_full().unwrap();
        assert!(snap.more, "the page cap stopped the pass");
        assert_eq!(stream_queries(&queries).len(), 20);
    }
    // Each poll a restarted process: the pending pass goes on from its page token.
    let mut polls = 0;
    let h = loop {
        let h = Harness::start_with_state(&[("key.json", &key)], &toml, state.path());
        h.poll().await.unwrap();
        polls += 1;
        let snap = h.state.sources[0].activity.snapshot.load_full().unwrap();
        if !snap.more || polls == 5 {
            break h;
        }
    };
    let q = stream_queries(&queries);
    assert_eq!(
        (polls, q.len()),
        (2, 56),
        "20 + 20 + 16 pages, each read once"
    );
    assert!(
        q[20].contains("pageToken=") && q[20].contains("endTime=2026-11-28T12%3A00%3A00Z"),
        "the restarted process continues the pending pass: {}",
        q[20]
    );
    // Every event counted once. (Detections are asserted in the uncut test: a pass cut
    // short hands its newest events over first, and an attack whose events straddle the
    // cut is judged in two halves — docs/activity.md.)
    assert_google_totals(&h);
    let dropped = |r: &str| {
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", r)],
        )
    };
    assert_eq!(
        dropped("duplicate"),
        Some(1.0),
        "a pass resumed, never re-read"
    );
    assert_eq!(dropped("unparsable"), Some(2.0));
    assert_eq!(
        h.gauge(
            "identity_posture_activity_detections_total",
            &[("kind", "new_country"), ("severity", "low")]
        ),
        Some(0.0),
        "the cut first pass stays the baseline"
    );
    // The next pass (from an hour before 11:41:40) re-reads it all: nothing counted twice.
    h.poll().await.unwrap();
    h.poll().await.unwrap();
    h.poll().await.unwrap();
    assert_google_totals(&h);
}

#[tokio::test]
async fn google_without_the_reports_privilege_leaves_activity_unknown_with_the_reason() {
    let mut ws = google_workspace(google_script(), 1000);
    ws.denied.insert(Api::Reports);
    let mock = MockGoogle::start(ws).await;
    let h = Harness::start(&[("key.json", &google_key(&mock))], &google_toml(&mock));
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(1.0));
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    assert_eq!(
        h.gauge(
            "identity_posture_source_data_available",
            &[("data", "activity")]
        ),
        Some(0.0)
    );
    let snap = h.state.sources[0].activity.snapshot.load_full().unwrap();
    let why = snap.unavailable.as_deref().unwrap();
    assert!(
        why.contains("login audit") && why.contains("admin.reports.audit.readonly"),
        "{why}"
    );
    assert_eq!(snap.health.events, 0);
}

#[tokio::test]
async fn google_malformed_page_fails_the_read_naming_the_source_and_loses_nothing() {
    use support::mock::Fault;
    let ws = google_workspace(google_script(), 4);
    let mock = MockGoogle::start(ws).await;
    // The first poll's login audit: 31 daily listings for the factor ledger (one page each),
    // then the stream, newest first: its third page is not JSON.
    mock.server
        .fault_after(support::google_mock::LOGINS, 31 + 2, Fault::Malformed);
    let h = Harness::start(&[("key.json", &google_key(&mock))], &google_toml(&mock));
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(1.0));
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(0.0));
    let snap = h.state.sources[0].activity.snapshot.load_full().unwrap();
    let e = snap.last_error.as_deref().unwrap();
    assert!(
        e.contains("google source google-act") && e.contains(support::google_mock::LOGINS),
        "{e}"
    );
    // What the two good pages held (root's and mf's sign-ins, mf's third denial) is counted;
    // the cursor stayed: the next read starts again and counts each of those once.
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    assert_google_totals(&h);
    assert_eq!(
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")]
        ),
        Some(1.0 + 3.0)
    );
}

/// 97532aa: a sign-in pass stopped by the request budget says so (`more`), keeps its
/// `nextLink` as the cursor, and the next polls finish it: every record counted once.
#[tokio::test]
async fn entra_request_budget_stops_the_pass_keeps_the_cursor_and_loses_nothing() {
    // What the account listing spends (token, users, roles, registration, policies): an
    // empty sign-in log is one more request.
    let listing = {
        let t = Tenant::default();
        let toml = entra_toml(&t, "{base}");
        let secret = format!("{}\n", t.client_secret);
        let mock = MockGraph::start(t).await;
        let h = Harness::start(&[("secret", &secret)], &toml.replace("{base}", &mock.base));
        h.poll().await.unwrap();
        h.gauge("identity_posture_activity_poll_requests", &[])
            .unwrap() as u32
            - 1
    };
    // Pages of one record; the budget leaves three requests for the sign-in log.
    let t = Tenant {
        sign_in_page_size: 1,
        ..Tenant::default()
    };
    t.sign_ins.lock().unwrap().extend(entra_script());
    let queries = t.sign_in_queries.clone();
    let toml = format!(
        "{}max_requests_per_poll = {}\n",
        entra_toml(&t, "{base}"),
        listing + 3
    );
    let secret = format!("{}\n", t.client_secret);
    let mock = MockGraph::start(t).await;
    let h = Harness::start(&[("secret", &secret)], &toml.replace("{base}", &mock.base));
    h.poll().await.unwrap();
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(1.0));
    assert_eq!(h.gauge("identity_posture_activity_up", &[]), Some(1.0));
    assert_eq!(
        queries.lock().unwrap().len(),
        3,
        "the budget left three pages"
    );
    assert_eq!(
        h.gauge("identity_posture_activity_poll_requests", &[]),
        Some(f64::from(listing + 3))
    );
    // The stop is reported (`more`: the poller logs it and the first pass stays the baseline).
    let snap = h.state.sources[0].activity.snapshot.load_full().unwrap();
    assert!(snap.more, "the stop is reported");
    assert_eq!(snap.health.events, 3, "the three records read are counted");
    // The next poll follows the stored nextLink, not a fresh query.
    h.poll().await.unwrap();
    assert!(
        queries.lock().unwrap()[3].contains("skiptoken"),
        "{}",
        queries.lock().unwrap()[3]
    );
    let mut polls = 2;
    while h.state.sources[0]
        .activity
        .snapshot
        .load_full()
        .unwrap()
        .more
    {
        assert!(polls < 15, "the pass never finished");
        h.poll().await.unwrap();
        polls += 1;
    }
    // 27 pages of one record, each read once.
    let q = queries.lock().unwrap().clone();
    let distinct: std::collections::HashSet<&String> = q.iter().collect();
    assert_eq!((q.len(), distinct.len()), (27, 27), "{q:#?}");
    assert_entra_counts(&h);
    assert_eq!(
        h.gauge(
            "identity_posture_activity_events_dropped_total",
            &[("reason", "duplicate")]
        ),
        Some(0.0),
        "nothing read twice"
    );
    // A later pass re-reads its overlap: still nothing counted twice.
    h.poll().await.unwrap();
    h.poll().await.unwrap();
    assert_entra_counts(&h);
}

/// The sign-in counters of [`entra_script`] (every record once: 27 records, the interrupt
/// skipped).
fn assert_entra_counts(h: &Harness) {
    let total: f64 = h
        .series("identity_posture_signins_total")
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 26.0);
    let g = |r: &str, f: &str, c: &str| {
        h.gauge(
            "identity_posture_signins_total",
            &[("result", r), ("factor_kind", f), ("client_kind", c)],
        )
    };
    assert_eq!(g("failure", "password", "browser"), Some(19.0));
    assert_eq!(g("mfa_denied", "push", "browser"), Some(2.0));
    assert_eq!(g("mfa_timeout", "push", "browser"), Some(1.0));
    assert_eq!(g("success", "push", "browser"), Some(3.0));
    assert_eq!(g("success", "password", "legacy"), Some(1.0));
}
