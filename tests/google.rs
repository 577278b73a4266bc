//! The `google` source end to end against the in-process mock of Google's token endpoint and
//! the Admin SDK Directory and Reports APIs: configuration → signed JWT-bearer assertion →
//! paged reads → model → checks → published gauges. Every expected number is worked out by
//! hand from the fixture below (NOW = 2026-11-28 12:00 UTC, default policy).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use identity_posture_exporter::model::{DataKind, FactorType, Known, Status};
use serde_json::{json, Value};
use support::google_mock::{
    not_authorized, throttled, Activities, Api, Collection, MockGoogle, PageSizes, Workspace,
    LOGINS, SCOPES, USERS,
};
use support::harness::{Harness, NOW};
use support::mock::Fault;

const SA_ROLE: &str = "91447453409034752";
const GROUPS_ROLE: &str = "91447453409034753";
const HELPDESK_ROLE: &str = "91447453409034754";

fn user(id: &str, email: &str, extra: Value) -> Value {
    let local = email.split('@').next().unwrap();
    let mut u = json!({
        "kind": "admin#directory#user", "id": id, "etag": "\"etag-u\"",
        "primaryEmail": email,
        "name": {"givenName": local, "familyName": "Example", "fullName": format!("{local} Example")},
        "isAdmin": false, "isDelegatedAdmin": false,
        "lastLoginTime": "2026-11-27T08:00:00.000Z", "creationTime": "2024-01-10T08:00:00.000Z",
        "agreedToTerms": true, "suspended": false, "archived": false,
        "changePasswordAtNextLogin": false, "ipWhitelisted": false,
        "emails": [{"address": email, "primary": true}],
        "languages": [{"languageCode": "en", "preference": "preferred"}],
        "nonEditableAliases": [format!("{local}@example.com.test-google-a.com")],
        "customerId": "C03az79cb", "orgUnitPath": "/", "isMailboxSetup": true,
        "isEnrolledIn2Sv": true, "isEnforcedIn2Sv": true, "includeInGlobalAddressList": true,
        "thumbnailPhotoUrl": "https://lh3.googleusercontent.com/a/photo", "customSchemas": {"HR": {"costCenter": "42"}}
    });
    for (k, v) in extra.as_object().unwrap() {
        u[k] = v.clone();
    }
    u
}

/// A `login_success` activity. `profile` `None`: the actor carries only an email.
fn login(profile: Option<&str>, email: &str, time: &str, methods: &[&str], n: u32) -> Value {
    let mut actor = json!({"email": email, "callerType": "USER"});
    if let Some(p) = profile {
        actor["profileId"] = json!(p);
    }
    json!({
        "kind": "admin#reports#activity",
        "id": {"time": time, "uniqueQualifier": format!("-{}", 7_000_000_000u64 + u64::from(n)),
               "applicationName": "login", "customerId": "C03az79cb"},
        "etag": "\"etag-a\"",
        "actor": actor,
        "ipAddress": "203.0.113.9",
        "networkInfo": {"ipAsn": [64496], "regionCode": "DE"},
        "events": [{"type": "login", "name": "login_success", "parameters": [
            {"name": "login_type", "value": "google_password"},
            {"name": "login_challenge_method", "multiValue": methods},
            {"name": "is_suspicious", "boolValue": false}
        ]}]
    })
}

fn role(id: &str, name: &str, super_admin: bool, system: bool) -> Value {
    json!({"kind": "admin#directory#role", "etag": "\"etag-r\"", "roleId": id, "roleName": name,
           "roleDescription": name, "isSuperAdminRole": super_admin, "isSystemRole": system,
           "rolePrivileges": [{"privilegeName": "USERS_RETRIEVE", "serviceId": "00haapch16h1ysv"}]})
}

fn assignment(id: &str, role: &str, to: &str, kind: &str, scope: &str) -> Value {
    let mut a = json!({"kind": "admin#directory#roleAssignment", "etag": "\"etag-ra\"",
           "roleAssignmentId": id, "roleId": role, "assignedTo": to, "assigneeType": kind,
           "scopeType": scope});
    if scope == "ORG_UNIT" {
        a["orgUnitId"] = json!("03ph8a2z1xk2f4r");
    }
    a
}

fn member(id: &str, email: &str, kind: &str) -> Value {
    json!({"kind": "admin#directory#member", "etag": "\"etag-m\"", "id": id, "email": email,
           "role": "MEMBER", "type": kind, "status": "ACTIVE"})
}

/// Twelve users in pages of three:
///
/// | user | state | 2SV enrolled / enforced | login audit (30 days) | roles |
/// |---|---|---|---|---|
/// | u1 alice | active | yes / yes | security_key | super admin (direct) |
/// | u2 bob | active | yes / **no** | phone only (+ a key 39 days ago: too old) | — |
/// | u3 carol | active, last login 58 days ago | **no** / no | password, none | — |
/// | u4 dave | **suspended** | no / no | — | — |
/// | u5 erin | **archived** | yes / yes | — | — |
/// | u6 frank | never signed in (sentinel), created 88 days ago | **no** / no | — | — |
/// | u7 grace | active, OU /IT/Admins, isDelegatedAdmin | yes / yes | google_authenticator, totp | Groups Admin via g-admins |
/// | u8 heidi | active, isDelegatedAdmin | yes / yes | google_prompt, **carrier_pigeon** | Helpdesk Custom (OU scope) |
/// | u9 ivan | active | yes / yes | passkey | super admin (direct) |
/// | u10 judy | active, **guest** | yes / yes | backup_code | — |
/// | u11 mallory | last login 180 days ago | yes / yes | none (180 days ago: too old) | — |
/// | u12 niaj | active | yes / yes | internal_two_factor, events by email only | Groups Admin via g-nested ⊂ g-admins |
fn workspace() -> Workspace {
    let users = vec![
        user("u1", "alice@example.com", json!({"isAdmin": true})),
        user(
            "u2",
            "bob@example.com",
            json!({"isEnforcedIn2Sv": false, "lastLoginTime": "2026-11-20T10:00:00.000Z"}),
        ),
        user(
            "u3",
            "carol@example.com",
            json!({"isEnrolledIn2Sv": false, "isEnforcedIn2Sv": false, "lastLoginTime": "2026-10-01T09:00:00.000Z"}),
        ),
        user(
            "u4",
            "dave@example.com",
            json!({"suspended": true, "suspensionReason": "ADMIN", "isEnrolledIn2Sv": false, "isEnforcedIn2Sv": false}),
        ),
        user("u5", "erin@example.com", json!({"archived": true})),
        user(
            "u6",
            "frank@example.com",
            json!({"isEnrolledIn2Sv": false, "isEnforcedIn2Sv": false,
            "lastLoginTime": "1970-01-01T00:00:00.000Z", "creationTime": "2026-09-01T12:00:00.000Z", "agreedToTerms": false}),
        ),
        user(
            "u7",
            "grace@example.com",
            json!({"orgUnitPath": "/IT/Admins", "isDelegatedAdmin": true, "lastLoginTime": "2026-11-28T07:00:00.000Z"}),
        ),
        user("u8", "heidi@example.com", json!({"isDelegatedAdmin": true})),
        user(
            "u9",
            "ivan@example.com",
            json!({"isAdmin": true, "lastLoginTime": "2026-11-26T08:00:00.000Z"}),
        ),
        user(
            "u10",
            "judy@partner.example",
            json!({"isGuestUser": true, "lastLoginTime": "2026-11-25T08:00:00.000Z"}),
        ),
        user(
            "u11",
            "mallory@example.com",
            json!({"lastLoginTime": "2026-06-01T08:00:00.000Z"}),
        ),
        user("u12", "niaj@example.com", json!({})),
    ];
    let activities = vec![
        login(
            Some("u1"),
            "alice@example.com",
            "2026-11-20T08:00:00.000Z",
            &["password", "security_key"],
            1,
        ),
        login(
            Some("u1"),
            "alice@example.com",
            "2026-11-27T08:00:00.000Z",
            &["none"],
            2,
        ),
        login(
            Some("u2"),
            "bob@example.com",
            "2026-11-20T10:00:00.000Z",
            &["password", "idv_preregistered_phone"],
            3,
        ),
        login(
            Some("u2"),
            "bob@example.com",
            "2026-11-02T10:00:00.000Z",
            &["idv_preregistered_phone"],
            4,
        ),
        login(
            Some("u2"),
            "bob@example.com",
            "2026-10-20T10:00:00.000Z",
            &["security_key"],
            5,
        ),
        login(
            Some("u3"),
            "carol@example.com",
            "2026-10-30T09:00:00.000Z",
            &["password"],
            6,
        ),
        login(
            Some("u3"),
            "carol@example.com",
            "2026-11-01T09:00:00.000Z",
            &["none"],
            7,
        ),
        login(
            Some("u7"),
            "grace@example.com",
            "2026-11-28T07:00:00.000Z",
            &["google_authenticator"],
            8,
        ),
        login(
            Some("u7"),
            "grace@example.com",
            "2026-11-10T07:00:00.000Z",
            &["totp"],
            9,
        ),
        login(
            Some("u8"),
            "heidi@example.com",
            "2026-11-27T08:00:00.000Z",
            &["google_prompt"],
            10,
        ),
        login(
            Some("u8"),
            "heidi@example.com",
            "2026-11-15T08:00:00.000Z",
            &["carrier_pigeon"],
            11,
        ),
        login(
            Some("u9"),
            "ivan@example.com",
            "2026-11-26T08:00:00.000Z",
            &["passkey"],
            12,
        ),
        login(
            Some("u10"),
            "judy@partner.example",
            "2026-11-25T08:00:00.000Z",
            &["backup_code"],
            13,
        ),
        login(
            Some("u11"),
            "mallory@example.com",
            "2026-06-01T08:00:00.000Z",
            &["none"],
            14,
        ),
        login(
            None,
            "Niaj@Example.com",
            "2026-11-27T08:00:00.000Z",
            &["internal_two_factor"],
            15,
        ),
        // A user deleted since: joins no one.
        login(
            Some("u99"),
            "gone@example.com",
            "2026-11-21T08:00:00.000Z",
            &["totp"],
            16,
        ),
    ];
    let mut groups = HashMap::new();
    groups.insert(
        "g-admins".to_string(),
        vec![
            member("u7", "grace@example.com", "USER"),
            member("g-nested", "nested@example.com", "GROUP"),
        ],
    );
    groups.insert(
        "g-nested".to_string(),
        vec![member("u12", "niaj@example.com", "USER")],
    );
    Workspace {
        users: Collection::of(users),
        roles: vec![
            role(SA_ROLE, "_SEED_ADMIN_ROLE", true, true),
            role(GROUPS_ROLE, "_GROUPS_ADMIN_ROLE", false, true),
            role(HELPDESK_ROLE, "Helpdesk Custom", false, false),
            role("91447453409034755", "_HELP_DESK_ADMIN_ROLE", false, true),
        ],
        role_assignments: vec![
            assignment("ra1", SA_ROLE, "u1", "user", "CUSTOMER"),
            assignment("ra2", SA_ROLE, "u9", "user", "CUSTOMER"),
            assignment("ra3", GROUPS_ROLE, "g-admins", "group", "CUSTOMER"),
            assignment("ra4", HELPDESK_ROLE, "u8", "user", "ORG_UNIT"),
        ],
        groups,
        activities: Activities::of(activities),
        page: PageSizes {
            users: 3,
            roles: 2,
            assignments: 3,
            members: 200,
            activities: 1000,
        },
        ..Workspace::default()
    }
}

struct Run {
    mock: MockGoogle,
    key: String,
    toml: String,
}

impl Run {
    async fn start(ws: Workspace) -> Run {
        Run::start_with(ws, "").await
    }

    async fn start_with(ws: Workspace, extra: &str) -> Run {
        let mock = MockGoogle::start(ws).await;
        let key = workspace_key(&mock);
        let toml = format!(
            "[[sources]]\nname = \"workspace\"\ntype = \"google\"\nadmin_email = \"admin@example.com\"\ncredentials_file = \"{{dir}}/key.json\"\napi_url = \"{}\"\ntimeout = \"120s\"\n{extra}",
            mock.base
        );
        Run { mock, key, toml }
    }

    fn harness(&self) -> Harness {
        Harness::start(&[("key.json", &self.key)], &self.toml)
    }
}

/// The key file names the mock's token endpoint as `token_uri`, as Google's names its own.
fn workspace_key(mock: &MockGoogle) -> String {
    // The workspace is inside the mock; rebuild its key with the same identifiers.
    let ws = Workspace::default();
    ws.key_file(&mock.token_url())
}

fn g(h: &Harness, name: &str, labels: &[(&str, &str)]) -> f64 {
    h.gauge(name, labels)
        .unwrap_or_else(|| panic!("{name}{labels:?} missing"))
}

fn human(p: &str) -> [(&'static str, &'static str); 2] {
    [
        ("account_type", "human"),
        ("privileged", if p == "true" { "true" } else { "false" }),
    ]
}

fn kinds(h: &Harness, id: &str) -> Option<Vec<FactorType>> {
    let r = h.report();
    let a = r.accounts.iter().find(|a| a.id == id).unwrap();
    a.mfa
        .as_ref()
        .map(|m| m.factors.iter().map(|f| f.factor_type).collect())
}

fn role_names(h: &Harness, id: &str) -> Option<Vec<String>> {
    let r = h.report();
    let a = r.accounts.iter().find(|a| a.id == id).unwrap();
    a.roles
        .as_ref()
        .map(|v| v.iter().map(|r| r.name.clone()).collect())
}

/// Login-audit requests of one poll on a fresh ledger: the 31 UTC days the 30-day window
/// touches, one listing each (every day's events fit one page).
const FIRST_POLL_LOGIN_REQUESTS: usize = 31;

#[tokio::test]
async fn collect_against_the_mock_gives_the_hand_worked_gauges() {
    // The shipped binary, on its own clock: the gauges that do not depend on the date (the
    // login audit's 30 days move with the clock; the harness tests pin it).
    let run = Run::start(workspace()).await;
    let text = support::harness::collect_cli(&[("key.json", &run.key)], &run.toml)
        .await
        .unwrap();
    let s = |name: &str, labels: &[(&str, &str)]| support::harness::sample(&text, name, labels);
    let by_status = |status| [("account_type", "human"), ("status", status)];
    assert_eq!(
        s("identity_posture_source_up", &[("source", "workspace")]),
        1.0
    );
    assert_eq!(s("identity_posture_accounts", &by_status("active")), 10.0);
    assert_eq!(s("identity_posture_accounts", &by_status("suspended")), 1.0);
    assert_eq!(s("identity_posture_accounts", &by_status("disabled")), 1.0);
    // 2-Step Verification: u3 and u6 not enrolled; nobody unknown.
    assert_eq!(
        s("identity_posture_accounts_without_mfa", &human("false")),
        2.0
    );
    assert_eq!(
        s("identity_posture_accounts_without_mfa", &human("true")),
        0.0
    );
    assert_eq!(
        s("identity_posture_accounts_mfa_unknown", &human("false")),
        0.0
    );
}

#[tokio::test]
async fn full_workspace_maps_users_roles_and_factor_kinds() {
    let run = Run::start(workspace()).await;
    let h = run.harness();
    h.poll().await.unwrap();

    // Accounts: 12 users; u4 suspended, u5 archived (disabled); 10 active.
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "active")]
        ),
        10.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "suspended")]
        ),
        1.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "disabled")]
        ),
        1.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_active_accounts",
            &[("account_type", "human")]
        ),
        10.0
    );

    // MFA among the 10 active accounts (privileged: u1, u7, u8, u9, u12):
    // without: u3, u6 (not enrolled) · weak: u2 (phone only; the key was 39 days ago) ·
    // phishing-resistant: u1 (security key), u9 (passkey), both privileged ·
    // strong: u7 (TOTP), u8 (prompt + an unknown method), u10 (backup code = other),
    // u11 (enrolled, nothing seen in 30 days = other), u12 (internal_two_factor, joined by email).
    assert_eq!(
        g(&h, "identity_posture_accounts_without_mfa", &human("false")),
        2.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_without_mfa", &human("true")),
        0.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_weak_mfa", &human("false")),
        1.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_weak_mfa", &human("true")),
        0.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_phishing_resistant_mfa",
            &human("true")
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_phishing_resistant_mfa",
            &human("false")
        ),
        0.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_mfa_unknown", &human("false")),
        0.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_mfa_unknown", &human("true")),
        0.0
    );
    assert_eq!(kinds(&h, "u1"), Some(vec![FactorType::Webauthn]));
    assert_eq!(kinds(&h, "u2"), Some(vec![FactorType::Sms]));
    assert_eq!(kinds(&h, "u3"), Some(vec![]));
    assert_eq!(kinds(&h, "u7"), Some(vec![FactorType::Totp]));
    assert_eq!(
        kinds(&h, "u8"),
        Some(vec![FactorType::Push, FactorType::Other])
    );
    assert_eq!(kinds(&h, "u10"), Some(vec![FactorType::Other]));
    assert_eq!(kinds(&h, "u11"), Some(vec![FactorType::Other]));
    assert_eq!(kinds(&h, "u12"), Some(vec![FactorType::Push]));

    // Findings: mfa.missing u3, u6 · mfa.weak u2 · mfa.not_enforced u2 (enrolled, not
    // enforced) · dormant.never_logged_in u6 (created 88 > 30 days ago) · dormant.inactive u11
    // (180 > 90 days) · nothing for the suspended or archived users · two super admins is
    // within [2, 4].
    let f = h.findings();
    let expected: HashSet<(String, &str)> = [
        ("u2", "mfa.weak"),
        ("u2", "mfa.not_enforced"),
        ("u3", "mfa.missing"),
        ("u6", "mfa.missing"),
        ("u6", "dormant.never_logged_in"),
        ("u11", "dormant.inactive"),
    ]
    .into_iter()
    .map(|(a, c)| (a.to_string(), c))
    .collect();
    assert_eq!(f.into_iter().collect::<HashSet<_>>(), expected);
    for (check, n) in [
        ("mfa.missing", 2.0),
        ("mfa.weak", 1.0),
        ("mfa.not_enforced", 1.0),
        ("dormant.never_logged_in", 1.0),
        ("dormant.inactive", 1.0),
        ("privilege.no_mfa", 0.0),
        ("privilege.unused", 0.0),
        ("tenant.too_few_super_admins", 0.0),
        ("tenant.too_many_super_admins", 0.0),
    ] {
        assert_eq!(
            g(&h, "identity_posture_findings", &[("check", check)]),
            n,
            "{check}"
        );
    }
    assert_eq!(
        g(
            &h,
            "identity_posture_dormant_accounts",
            &[
                ("account_type", "human"),
                ("privileged", "false"),
                ("reason", "inactive")
            ]
        ),
        1.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_dormant_accounts",
            &[
                ("account_type", "human"),
                ("privileged", "false"),
                ("reason", "never_logged_in")
            ]
        ),
        1.0
    );
    // 6 of the 10 active accounts have no finding.
    assert_eq!(g(&h, "identity_posture_compliant_accounts_ratio", &[]), 0.6);

    // Roles: super admins u1, u9; Groups Admin through g-admins (u7) and, nested, g-nested
    // (u12); Helpdesk Custom assigned directly to u8 (scoped to an OU).
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 2.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_privileged_accounts",
            &[("role", "_SEED_ADMIN_ROLE")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_privileged_accounts",
            &[("role", "_GROUPS_ADMIN_ROLE")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_privileged_accounts",
            &[("role", "Helpdesk Custom")]
        ),
        1.0
    );
    assert_eq!(
        role_names(&h, "u12"),
        Some(vec!["_GROUPS_ADMIN_ROLE".to_string()])
    );
    assert_eq!(role_names(&h, "u2"), Some(vec![]));
    assert_eq!(role_names(&h, "u4"), Some(vec![]));

    // The rest of the mapping.
    let r = h.report();
    let by = |id: &str| r.accounts.iter().find(|a| a.id == id).unwrap();
    assert_eq!(by("u1").login, "alice@example.com");
    assert_eq!(by("u1").display_name.as_deref(), Some("alice Example"));
    assert_eq!(by("u6").last_login, Known::Never);
    assert_eq!(by("u4").status, Status::Suspended);
    assert_eq!(by("u4").attributes["suspension_reason"], "ADMIN");
    assert_eq!(by("u5").status, Status::Disabled);
    assert_eq!(by("u7").groups, vec!["/IT/Admins".to_string()]);
    assert_eq!(by("u10").attributes["user_type"], "Guest");
    assert_eq!(by("u2").mfa.as_ref().unwrap().enforced, Some(false));
    // Data classes: credentials are not in the Directory API (said once, with the reason).
    assert!(r.availability.missing[&DataKind::Credentials].contains("Directory API"));
    for d in [DataKind::LastLogin, DataKind::Mfa, DataKind::Roles] {
        assert!(r.availability.is_available(d), "{d:?}");
    }

    // The source's own gauges.
    assert_eq!(
        g(
            &h,
            "identity_posture_google_login_audit_coverage_ratio",
            &[]
        ),
        1.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_google_unrecognized_challenge_methods",
            &[]
        ),
        1.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_google_role_assignments_available",
            &[]
        ),
        1.0
    );
    // Requests: 1 token + 4 user pages + 2 role pages + 2 assignment pages + 1 member page
    // (g-nested comes with g-admins) + the login audit.
    let expected_requests = 1 + 4 + 2 + 2 + 1 + FIRST_POLL_LOGIN_REQUESTS;
    assert_eq!(
        g(&h, "identity_posture_source_poll_requests", &[]),
        expected_requests as f64
    );
    assert_eq!(run.mock.server.total(), expected_requests);
    assert_eq!(run.mock.server.hits(LOGINS), FIRST_POLL_LOGIN_REQUESTS);
    assert_eq!(
        g(&h, "identity_posture_source_rate_limited_total", &[]),
        0.0
    );

    // What was asked: the documented parameters.
    let log = run.mock.server.requests();
    let users: Vec<_> = log.iter().filter(|l| l.path == USERS).collect();
    assert_eq!(users[0].param("customer").as_deref(), Some("my_customer"));
    assert_eq!(users[0].param("projection").as_deref(), Some("full"));
    assert_eq!(users[0].param("maxResults").as_deref(), Some("500"));
    assert!(users[0].param("pageToken").is_none() && users[1].param("pageToken").is_some());
    let members: Vec<_> = log.iter().filter(|l| l.path.contains("/members")).collect();
    assert_eq!(
        members[0].path,
        "/admin/directory/v1/groups/g-admins/members"
    );
    assert_eq!(
        members[0].param("includeDerivedMembership").as_deref(),
        Some("true")
    );
    let logins: Vec<_> = log.iter().filter(|l| l.path == LOGINS).collect();
    assert!(logins
        .iter()
        .all(|l| l.param("eventName").as_deref() == Some("login_success")));
    assert_eq!(
        logins[0].param("startTime").as_deref(),
        Some("2026-11-28T00:00:00Z")
    );
    assert_eq!(
        logins[0].param("endTime"),
        None,
        "today's read runs up to now"
    );
    assert_eq!(
        logins.last().unwrap().param("startTime").as_deref(),
        Some("2026-10-29T00:00:00Z")
    );
    assert!(log.iter().all(|l| l.authenticated || l.path == "/token"));

    // The assertion: RS256 verified by the mock with the key's public half; kid, iss, sub,
    // aud, the four scopes, one hour.
    let a = &run.mock.assertions()[0];
    let ws = Workspace::default();
    assert_eq!(a.kid.as_deref(), Some(ws.private_key_id.as_str()));
    assert_eq!(a.iss, ws.client_email);
    assert_eq!(a.sub, "admin@example.com");
    assert_eq!(a.aud, run.mock.token_url());
    assert_eq!(a.scope, SCOPES.join(" "));
    assert_eq!(a.exp - a.iat, 3600);
    assert_eq!(run.mock.tokens_issued(), 1);
}

#[tokio::test]
async fn later_polls_read_only_new_login_events() {
    let run = Run::start(workspace()).await;
    let h = run.harness();
    h.poll().await.unwrap();
    let first = run.mock.server.total();
    // Same instant: nothing new in the audit; the directory is read again with the same token.
    h.poll().await.unwrap();
    assert_eq!(run.mock.server.total() - first, 4 + 2 + 2 + 1);
    assert_eq!(g(&h, "identity_posture_source_poll_requests", &[]), 9.0);
    assert_eq!(
        g(&h, "identity_posture_findings", &[("check", "mfa.weak")]),
        1.0
    );
    // Fifteen minutes later: today's events since the last read, with the overlap.
    let h = h.at(NOW + time::Duration::minutes(15));
    let before = run.mock.server.hits(LOGINS);
    h.poll().await.unwrap();
    assert_eq!(run.mock.server.hits(LOGINS) - before, 1);
    let last = run
        .mock
        .server
        .requests()
        .into_iter()
        .rev()
        .find(|l| l.path == LOGINS)
        .unwrap();
    assert_eq!(
        last.param("startTime").as_deref(),
        Some("2026-11-28T11:45:00Z")
    );
    assert_eq!(
        run.mock.tokens_issued(),
        1,
        "the token is cached for its hour"
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_phishing_resistant_mfa",
            &human("true")
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_google_login_audit_coverage_ratio",
            &[]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_throttling_403_is_retried_with_backoff_and_counted() {
    let run = Run::start(workspace()).await;
    let h = run.harness();
    run.mock
        .server
        .fault_after(USERS, 1, Fault::status(403, throttled()));
    run.mock
        .server
        .fault_after(LOGINS, 3, Fault::status(403, throttled()));
    h.poll().await.unwrap();
    assert_eq!(
        g(&h, "identity_posture_source_rate_limited_total", &[]),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "4xx")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "429")]
        ),
        0.0
    );
    // Waited (virtual clock) with jittered exponential backoff, at least the minimum second.
    let sleeps = h.timer.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert!(sleeps.iter().all(|d| *d >= Duration::from_secs(1)));
    // Nothing lost: the same numbers as without throttling.
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "active")]
        ),
        10.0
    );
    assert_eq!(
        g(&h, "identity_posture_findings", &[("check", "mfa.weak")]),
        1.0
    );
    assert_eq!(
        g(&h, "identity_posture_source_poll_requests", &[]),
        (1 + 4 + 2 + 2 + 1 + FIRST_POLL_LOGIN_REQUESTS + 2) as f64
    );
}

#[tokio::test]
async fn throttled_through_every_retry_fails_as_rate_limited() {
    let run = Run::start(workspace()).await;
    let h = run.harness();
    for _ in 0..6 {
        run.mock
            .server
            .fault(USERS, Fault::status(403, throttled()));
    }
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("rate_limited"), "{e}");
    assert!(
        e.contains("userRateLimitExceeded") && e.contains("2,400"),
        "{e}"
    );
    assert_eq!(
        g(&h, "identity_posture_source_rate_limited_total", &[]),
        6.0
    );
}

#[tokio::test]
async fn a_refused_login_audit_leaves_factor_kinds_unknown_but_2sv_counts() {
    let mut ws = workspace();
    ws.denied.insert(Api::Reports);
    let run = Run::start(ws).await;
    let h = run.harness();
    h.poll().await.unwrap();
    // Enrolment still decides: u3 and u6 have no 2SV; every enrolled user has one factor of
    // unknown kind (other): none weak, none phishing-resistant.
    assert_eq!(
        g(&h, "identity_posture_accounts_without_mfa", &human("false")),
        2.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_weak_mfa", &human("false")),
        0.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_phishing_resistant_mfa",
            &human("true")
        ),
        0.0
    );
    assert_eq!(
        g(&h, "identity_posture_accounts_mfa_unknown", &human("false")),
        0.0
    );
    assert_eq!(kinds(&h, "u1"), Some(vec![FactorType::Other]));
    assert_eq!(kinds(&h, "u2"), Some(vec![FactorType::Other]));
    assert_eq!(
        g(&h, "identity_posture_findings", &[("check", "mfa.missing")]),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_findings",
            &[("check", "mfa.not_enforced")]
        ),
        1.0
    );
    assert_eq!(
        g(&h, "identity_posture_findings", &[("check", "mfa.weak")]),
        0.0
    );
    // Said, with the reason and what to grant.
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "mfa")]
        ),
        0.0
    );
    let why = &h.report().availability.missing[&DataKind::Mfa];
    assert!(
        why.starts_with("partially:") && why.contains("403"),
        "{why}"
    );
    assert!(why.contains("admin.reports.audit.readonly"), "{why}");
    assert_eq!(
        g(
            &h,
            "identity_posture_google_login_audit_coverage_ratio",
            &[]
        ),
        0.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_google_unrecognized_challenge_methods",
            &[]
        ),
        0.0
    );
    // One refused request, then the directory as usual.
    assert_eq!(run.mock.server.hits(LOGINS), 1);
}

#[tokio::test]
async fn refused_group_members_make_group_held_roles_unknown() {
    let mut ws = workspace();
    ws.denied.insert(Api::Members);
    let run = Run::start(ws).await;
    let h = run.harness();
    h.poll().await.unwrap();
    // Direct roles stand; u7's flag proves a delegated role; u12 (no role of its own, no flag)
    // is unknown, not "not an admin"; users without any role are unknown too.
    assert_eq!(
        role_names(&h, "u1"),
        Some(vec!["_SEED_ADMIN_ROLE".to_string()])
    );
    assert_eq!(
        role_names(&h, "u8"),
        Some(vec!["Helpdesk Custom".to_string()])
    );
    assert_eq!(
        role_names(&h, "u7"),
        Some(vec!["delegated admin (role not readable)".to_string()])
    );
    assert_eq!(role_names(&h, "u12"), None);
    assert_eq!(role_names(&h, "u2"), None);
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "roles")]
        ),
        0.0
    );
    let why = &h.report().availability.missing[&DataKind::Roles];
    assert!(
        why.contains("through groups") && why.contains("403"),
        "{why}"
    );
    assert!(
        why.contains("admin.directory.group.member.readonly"),
        "{why}"
    );
    // With roles partly unknown, the super-admin count checks say nothing.
    assert_eq!(
        g(
            &h,
            "identity_posture_findings",
            &[("check", "tenant.too_few_super_admins")]
        ),
        0.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_google_role_assignments_available",
            &[]
        ),
        1.0
    );
}

#[tokio::test]
async fn refused_role_management_falls_back_to_the_admin_flags() {
    let mut ws = workspace();
    ws.denied.insert(Api::Roles);
    let run = Run::start(ws).await;
    let h = run.harness();
    h.poll().await.unwrap();
    // isAdmin → the super-admin role (u1, u9); isDelegatedAdmin → a delegated role (u7, u8);
    // u12's group role is invisible to its flags: not privileged as far as they tell.
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 2.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_privileged_accounts",
            &[("role", "_SEED_ADMIN_ROLE")]
        ),
        2.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_privileged_accounts",
            &[("role", "delegated admin (role not readable)")]
        ),
        2.0
    );
    assert_eq!(role_names(&h, "u12"), Some(vec![]));
    assert_eq!(
        g(
            &h,
            "identity_posture_google_role_assignments_available",
            &[]
        ),
        0.0
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "roles")]
        ),
        1.0
    );
    assert_eq!(run.mock.server.hits("/admin/directory/v1/groups/*"), 0);
}

#[tokio::test]
async fn any_super_admin_role_counts_as_googles_super_admin() {
    // A super-admin role (isSuperAdminRole) under a name the policy does not list is counted
    // as Google's built-in super admin, so the tenant checks see it.
    let mut ws = workspace();
    ws.roles[0] = role(SA_ROLE, "Workspace Owners", true, false);
    let run = Run::start(ws).await;
    let h = run.harness();
    h.poll().await.unwrap();
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 2.0);
    assert_eq!(
        role_names(&h, "u9"),
        Some(vec!["_SEED_ADMIN_ROLE".to_string()])
    );
    // A policy naming the role itself keeps its name.
    let run = Run::start_with(
        {
            let mut ws = workspace();
            ws.roles[0] = role(SA_ROLE, "Workspace Owners", true, false);
            ws
        },
        "policy = { super_admin_roles = [\"_SEED_ADMIN_ROLE\", \"Workspace Owners\"] }\n",
    )
    .await;
    let h = run.harness();
    h.poll().await.unwrap();
    assert_eq!(g(&h, "identity_posture_super_admins", &[]), 2.0);
    assert_eq!(
        role_names(&h, "u9"),
        Some(vec!["Workspace Owners".to_string()])
    );
}

#[tokio::test]
async fn malformed_login_audit_fails_the_poll_keeping_the_last_numbers() {
    let run = Run::start(workspace()).await;
    let h = run.harness();
    h.poll().await.unwrap();
    let good = h.series("identity_posture_accounts");
    // Fifteen minutes later the one audit read answers with broken JSON.
    let h = h.at(NOW + time::Duration::minutes(15));
    run.mock.server.fault(LOGINS, Fault::Malformed);
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("decode"), "{e}");
    assert!(
        e.contains(LOGINS) && e.contains("unexpected response body"),
        "{e}"
    );
    assert_eq!(h.series("identity_posture_accounts"), good);
    assert_eq!(g(&h, "identity_posture_source_up", &[]), 0.0);
    // The failed read is read again next time.
    h.poll().await.unwrap();
    let last = run
        .mock
        .server
        .requests()
        .into_iter()
        .rev()
        .find(|l| l.path == LOGINS)
        .unwrap();
    assert_eq!(
        last.param("startTime").as_deref(),
        Some("2026-11-28T11:45:00Z")
    );
}

#[tokio::test]
async fn no_delegation_is_unauthorized_client_with_the_fix() {
    let mut ws = workspace();
    ws.delegated = None;
    let run = Run::start(ws).await;
    let h = run.harness();
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("auth"), "{e}");
    assert!(e.contains("unauthorized_client"), "{e}");
    assert!(
        e.contains("domain-wide delegation") && e.contains("104728303812361853412"),
        "{e}"
    );
    for s in SCOPES {
        assert!(e.contains(s), "{e}");
    }
    assert!(!e.contains("PRIVATE KEY") && !e.contains("MIIE"), "{e}");
    assert_eq!(run.mock.api_requests(), 0);
}

#[tokio::test]
async fn a_scope_missing_from_the_delegation_fails_the_token_request() {
    let mut ws = workspace();
    ws.delegated = Some(SCOPES[..3].iter().map(|s| s.to_string()).collect());
    let run = Run::start(ws).await;
    let e = run.harness().poll().await.unwrap_err();
    assert!(
        e.contains("unauthorized_client") && e.contains(SCOPES[3]),
        "{e}"
    );
}

#[tokio::test]
async fn an_unknown_admin_email_is_invalid_grant_naming_it() {
    let run = Run::start(workspace()).await;
    let toml = run.toml.replace("admin@example.com", "someone@example.com");
    let h = Harness::start(&[("key.json", &run.key)], &toml);
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("auth"), "{e}");
    assert!(
        e.contains("invalid_grant") && e.contains("Invalid email or User ID"),
        "{e}"
    );
    assert!(
        e.contains("admin_email (someone@example.com) is not a user"),
        "{e}"
    );
}

#[tokio::test]
async fn a_key_the_service_account_does_not_have_is_refused() {
    // Signed with another RSA key: the mock's signature check fails.
    let run = Run::start(workspace()).await;
    let other = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/entra/test-key.pem"
    ))
    .unwrap();
    let mut key: Value = serde_json::from_str(&run.key).unwrap();
    key["private_key"] = json!(other);
    let h = Harness::start(&[("key.json", &key.to_string())], &run.toml);
    let e = h.poll().await.unwrap_err();
    assert!(
        e.contains("Invalid JWT Signature") && e.contains("create a new key"),
        "{e}"
    );
}

#[tokio::test]
async fn a_bounded_budget_keeps_room_for_the_directory() {
    // 20 requests: the first poll reads only the recent days of the audit (3), then the
    // directory (10 + the token); later polls know what the directory needs and backfill
    // with the rest.
    let run = Run::start_with(workspace(), "max_requests_per_poll = 20\n").await;
    let h = run.harness();
    h.poll().await.unwrap();
    assert_eq!(run.mock.server.hits(LOGINS), 3);
    assert!(
        g(
            &h,
            "identity_posture_google_login_audit_coverage_ratio",
            &[]
        ) < 0.2
    );
    // Not all read: unseen kinds may exist, so u2 is not called weak yet.
    assert_eq!(kinds(&h, "u2"), Some(vec![FactorType::Other]));
    assert_eq!(
        g(&h, "identity_posture_findings", &[("check", "mfa.weak")]),
        0.0
    );
    let mut polls = 1;
    while g(
        &h,
        "identity_posture_google_login_audit_coverage_ratio",
        &[],
    ) < 1.0
    {
        h.poll().await.unwrap();
        polls += 1;
        assert!(polls < 10, "the backfill makes progress");
    }
    assert_eq!(kinds(&h, "u2"), Some(vec![FactorType::Sms]));
    assert_eq!(
        g(&h, "identity_posture_findings", &[("check", "mfa.weak")]),
        1.0
    );
    assert!(g(&h, "identity_posture_source_poll_requests", &[]) <= 20.0);
}

#[test]
fn configuration_is_validated() {
    use identity_posture_exporter::sources::config_from_toml;
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::default();
    let key = dir.path().join("key.json");
    std::fs::write(&key, ws.key_file("https://oauth2.googleapis.com/token")).unwrap();
    let user_creds = dir.path().join("adc.json");
    std::fs::write(&user_creds, r#"{"type":"authorized_user","client_id":"x","client_secret":"s3cr3t-value","refresh_token":"r"}"#).unwrap();
    let base = |extra: &str| {
        format!(
            "[[sources]]\nname = \"w\"\ntype = \"google\"\ncredentials_file = \"{}\"\n{extra}",
            key.display()
        )
    };
    // Defaults: my_customer, the key's token_uri, the Admin SDK host.
    let c = config_from_toml(&base("admin_email = \"admin@example.com\"\n")).unwrap();
    let s = c.sources[0]
        .settings::<identity_posture_exporter::sources::google::GoogleConfig>()
        .unwrap();
    assert_eq!(s.customer, "my_customer");
    assert_eq!(s.token_url, "https://oauth2.googleapis.com/token");
    assert_eq!(s.api_url, "https://admin.googleapis.com");
    assert!(
        !format!("{s:?}").contains("MIIE"),
        "Debug never shows the key"
    );

    for (extra, needle) in [
        ("", "admin_email: missing required key"),
        ("admin_email = \"admin\"\n", "must be the email address"),
        (&format!("admin_email = \"{}\"\n", ws.client_email), "service account"),
        ("admin_email = \"a@example.com\"\ncustomer = \"C03 az\"\n", "customer"),
        ("admin_email = \"a@example.com\"\napi_url = \"https://admin.googleapis.com/admin/directory/v1\"\n", "base URL only"),
        ("admin_email = \"a@example.com\"\napi_url = \"http://admin.example.com\"\n", "api_url"),
        ("admin_email = \"a@example.com\"\ncredentials_env = \"X\"\n", "set only one"),
        ("admin_email = \"a@example.com\"\nsecret = \"x\"\n", "not a key of type google"),
    ] {
        let e = config_from_toml(&base(extra)).unwrap_err().to_string();
        assert!(e.contains(needle), "{extra}: {e}");
    }
    let e = config_from_toml(&format!(
        "[[sources]]\nname = \"w\"\ntype = \"google\"\nadmin_email = \"a@example.com\"\ncredentials_file = \"{}\"\n",
        user_creds.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("\"authorized_user\" credential"), "{e}");
    assert!(!e.contains("s3cr3t-value"), "{e}");
    let e = config_from_toml(
        "[[sources]]\nname = \"w\"\ntype = \"google\"\nadmin_email = \"a@example.com\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("credentials_file or credentials_env"), "{e}");
}

/// The commented example in examples/full.toml is valid once uncommented.
#[test]
fn full_toml_example_is_valid() {
    use identity_posture_exporter::sources::config_from_toml;
    let full = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/full.toml"))
        .unwrap();
    let block = &full[full.find("# Google Workspace").unwrap()..];
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    std::fs::write(
        &key,
        Workspace::default().key_file("https://oauth2.googleapis.com/token"),
    )
    .unwrap();
    let toml: String = block
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("# #"))
        .map(|l| l.trim_start_matches("# ").to_string() + "\n")
        .collect::<String>()
        .replace(
            "/run/secrets/google-service-account.json",
            key.to_str().unwrap(),
        );
    let c = config_from_toml(&toml).unwrap_or_else(|e| panic!("{:?}\n{toml}", e.problems));
    assert_eq!(c.sources[0].provider(), "google");
    // The default super-admin list names Google's built-in role.
    assert!(c.sources[0]
        .policy
        .super_admin_roles
        .iter()
        .any(|r| r == "_SEED_ADMIN_ROLE"));
}

/// The framework's promises, on the mock Workspace (users in pages of three). The optional
/// data is the login audit: refused, factor kinds are unknown and the poll succeeds.
#[tokio::test]
async fn conformance() {
    use identity_posture_exporter::sources::google::{
        LOGIN_AUDIT_COVERAGE, ROLE_ASSIGNMENTS_AVAILABLE, UNRECOGNISED_CHALLENGES,
    };
    use support::conformance::{run, Conformance};
    let r = Run::start(workspace()).await;
    let private_key = support::google_mock::PRIVATE_KEY;
    let key_body: String = private_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()[3]
        .to_string();
    let make = |t: &str| {
        Harness::start(
            &[("key.json", &r.key)],
            &r.toml
                .replace("timeout = \"120s\"", &format!("timeout = \"{t}\"")),
        )
    };
    run(&Conformance {
        server: &r.mock.server,
        make: &make,
        listing: USERS,
        optional: Some((LOGINS, DataKind::Mfa, not_authorized())),
        unauthorized: support::google_mock::unauthenticated(),
        numbered_pages: false,
        secrets: &[&key_body, "ya29.mock-access-token"],
        gauges: &[
            LOGIN_AUDIT_COVERAGE.name,
            UNRECOGNISED_CHALLENGES.name,
            ROLE_ASSIGNMENTS_AVAILABLE.name,
            "identity_posture_source_poll_requests",
        ],
    })
    .await;
}
