//! The `entra` source end to end against the in-process mock Graph: configuration → token →
//! paged Graph reads → model → checks → findings and metrics. Every expected answer below is
//! worked out by hand from the fixture tenant (NOW = 2026-11-28 12:00 UTC).

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use identity_posture_exporter::config::Config;
use identity_posture_exporter::model::{DataKind, FactorType, Known, Status};
use identity_posture_exporter::poller::{poll_once, Clock};
use identity_posture_exporter::report::Report;
use identity_posture_exporter::sources::Source;
use identity_posture_exporter::sources::{config_from_toml, Deps};
use identity_posture_exporter::state::AppState;
use serde_json::{json, Value};
use support::entra_mock::{
    Collection, MockGraph, Permission, Tenant, GLOBAL_ADMIN, PRIV_ROLE_ADMIN, USER_ADMIN,
};
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

const ALICE: &str = "a0000000-0000-0000-0000-000000000001";
const BOB: &str = "a0000000-0000-0000-0000-000000000002";
const GUEST: &str = "a0000000-0000-0000-0000-000000000003";
const CAROL: &str = "a0000000-0000-0000-0000-000000000004";
const DAVE: &str = "a0000000-0000-0000-0000-000000000005";
const ERIN: &str = "a0000000-0000-0000-0000-000000000006";
const HELPDESK_GROUP: &str = "b0000000-0000-0000-0000-000000000001";
const PAYROLL_APP: &str = "c0000000-0000-0000-0000-000000000001";
const PAYROLL_APP_ID: &str = "d0000000-0000-0000-0000-000000000001";
const PAYROLL_SP: &str = "e0000000-0000-0000-0000-000000000001";
const SAML_SP: &str = "e0000000-0000-0000-0000-000000000002";
const MS_SP: &str = "e0000000-0000-0000-0000-000000000003";
const MI_SP: &str = "e0000000-0000-0000-0000-000000000004";

fn user(id: &str, upn: &str, extra: Value) -> Value {
    let mut u = json!({
        "id": id,
        "userPrincipalName": upn,
        "displayName": upn.split('@').next().unwrap(),
        "accountEnabled": true,
        "userType": "Member",
        "createdDateTime": "2024-01-15T09:00:00Z",
        "lastPasswordChangeDateTime": "2026-06-01T00:00:00Z",
        "employeeLeaveDateTime": null,
        "department": "Engineering",
        "jobTitle": "Engineer",
        "onPremisesSyncEnabled": null,
        "signInActivity": {
            "lastSignInDateTime": "2026-11-27T08:00:00Z",
            "lastSignInRequestId": "r1",
            "lastNonInteractiveSignInDateTime": "2026-11-27T09:00:00Z",
            "lastNonInteractiveSignInRequestId": "r2",
            "lastSuccessfulSignInDateTime": "2026-11-27T09:00:00Z",
            "lastSuccessfulSignInRequestId": "r3"
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        u[k] = v.clone();
    }
    u
}

fn reg(id: &str, methods: &[&str]) -> Value {
    json!({
        "id": id,
        "userPrincipalName": "x",
        "userDisplayName": "x",
        "userType": "member",
        "isAdmin": false,
        "isSsprRegistered": false, "isSsprEnabled": false, "isSsprCapable": false,
        "isMfaRegistered": !methods.is_empty(), "isMfaCapable": !methods.is_empty(),
        "isPasswordlessCapable": false,
        "methodsRegistered": methods,
        "isSystemPreferredAuthenticationMethodEnabled": false,
        "systemPreferredAuthenticationMethods": [],
        "userPreferredMethodForSecondaryAuthentication": "none",
        "lastUpdatedDateTime": "2026-11-01T00:00:00Z"
    })
}

fn assignment(id: &str, principal: &str, kind: &str, role: &str) -> Value {
    json!({
        "id": id, "principalId": principal, "roleDefinitionId": role, "directoryScopeId": "/",
        "principal": {"@odata.type": format!("#microsoft.graph.{kind}"), "id": principal}
    })
}

/// The fixture tenant (see the module comment for what each object is there to prove).
fn tenant() -> Tenant {
    let users = vec![
        // Global Administrator, push + FIDO2, signed in yesterday.
        user(ALICE, "alice@contoso.com", json!({})),
        // Disabled.
        user(
            BOB,
            "bob@contoso.com",
            json!({"accountEnabled": false, "signInActivity": null}),
        ),
        // A guest who never signed in, invited long ago: never logged in, still human.
        user(
            GUEST,
            "gina_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            json!({"userType": "Guest", "signInActivity": null, "createdDateTime": "2025-01-01T00:00:00Z"}),
        ),
        // User Administrator through a group; only SMS; lastSuccessful not backfilled.
        user(
            CAROL,
            "carol@contoso.com",
            json!({"signInActivity": {
                "lastSignInDateTime": "2026-01-10T00:00:00Z",
                "lastNonInteractiveSignInDateTime": "2026-02-20T00:00:00Z",
                "lastSuccessfulSignInDateTime": null
            }}),
        ),
        // PIM-eligible Global Administrator, nothing registered.
        user(DAVE, "dave@contoso.com", json!({})),
        // Not in the registration report yet: MFA unknown.
        user(ERIN, "erin@contoso.com", json!({})),
    ];
    let registration = vec![
        reg(ALICE, &["microsoftAuthenticatorPush", "fido2SecurityKey"]),
        reg(GUEST, &["email"]),
        reg(CAROL, &["mobilePhone"]),
        reg(DAVE, &[]),
    ];
    Tenant {
        users: Collection::of(users),
        registration: Collection::of(registration),
        role_assignments: vec![
            assignment("ra1", ALICE, "user", GLOBAL_ADMIN),
            assignment("ra2", HELPDESK_GROUP, "group", USER_ADMIN),
            assignment("ra3", PAYROLL_SP, "servicePrincipal", PRIV_ROLE_ADMIN),
            assignment("ra4", MI_SP, "servicePrincipal", USER_ADMIN),
        ],
        role_eligibility: vec![json!({
            "id": "es1", "principalId": DAVE, "roleDefinitionId": GLOBAL_ADMIN,
            "directoryScopeId": "/", "memberType": "Direct", "status": "Provisioned",
            "scheduleInfo": {"startDateTime": "2026-01-01T00:00:00Z", "expiration": {"type": "noExpiration"}},
            "principal": {"@odata.type": "#microsoft.graph.user", "id": DAVE}
        })],
        group_members: HashMap::from([(
            HELPDESK_GROUP.to_string(),
            vec![json!({"@odata.type": "#microsoft.graph.user", "id": CAROL})],
        )]),
        applications: vec![json!({
            "id": PAYROLL_APP, "appId": PAYROLL_APP_ID, "displayName": "Payroll sync",
            "createdDateTime": "2024-03-01T00:00:00Z",
            "passwordCredentials": [
                {"customKeyIdentifier": null, "displayName": "old", "endDateTime": "2026-10-01T00:00:00Z",
                 "hint": "abc", "keyId": "k-expired", "secretText": null, "startDateTime": "2025-10-01T00:00:00Z"},
                {"customKeyIdentifier": null, "displayName": "current", "endDateTime": "2026-12-10T00:00:00Z",
                 "hint": "def", "keyId": "k-expiring", "secretText": null, "startDateTime": "2026-06-10T00:00:00Z"},
                {"customKeyIdentifier": null, "displayName": "forever", "endDateTime": "2299-12-31T00:00:00Z",
                 "hint": "ghi", "keyId": "k-forever", "secretText": null, "startDateTime": "2026-09-01T00:00:00Z"}
            ],
            "keyCredentials": [
                {"customKeyIdentifier": "AB", "displayName": "CN=payroll", "endDateTime": "2027-09-01T00:00:00Z",
                 "key": null, "keyId": "c-ok", "startDateTime": "2026-09-01T00:00:00Z",
                 "type": "AsymmetricX509Cert", "usage": "Verify"}
            ]
        })],
        service_principals: vec![
            json!({"id": PAYROLL_SP, "appId": PAYROLL_APP_ID, "displayName": "Payroll sync",
                   "accountEnabled": true, "servicePrincipalType": "Application",
                   "appOwnerOrganizationId": "f0000000-0000-0000-0000-000000000000",
                   "passwordCredentials": [], "keyCredentials": []}),
            // Another organisation's app with a SAML signing certificate of its own here.
            json!({"id": SAML_SP, "appId": "d0000000-0000-0000-0000-000000000002", "displayName": "Vendor SSO",
                   "accountEnabled": true, "servicePrincipalType": "Application",
                   "appOwnerOrganizationId": "f0000000-0000-0000-0000-0000000000ff",
                   "passwordCredentials": [],
                   "keyCredentials": [{"keyId": "saml-1", "displayName": "CN=Vendor SSO", "type": "AsymmetricX509Cert",
                                        "usage": "Sign", "startDateTime": "2023-01-01T00:00:00Z", "endDateTime": "2026-11-30T00:00:00Z"}]}),
            // Microsoft's first-party app: no credentials, no roles → not an account.
            json!({"id": MS_SP, "appId": "00000003-0000-0000-c000-000000000000", "displayName": "Microsoft Graph",
                   "accountEnabled": true, "servicePrincipalType": "Application",
                   "passwordCredentials": [], "keyCredentials": []}),
            // A managed identity holding a role; its platform keys are not checked.
            json!({"id": MI_SP, "appId": "d0000000-0000-0000-0000-000000000004", "displayName": "automation-mi",
                   "accountEnabled": true, "servicePrincipalType": "ManagedIdentity",
                   "passwordCredentials": [],
                   "keyCredentials": [{"keyId": "mi-1", "type": "AsymmetricX509Cert", "usage": "Verify",
                                        "startDateTime": "2026-09-01T00:00:00Z", "endDateTime": "2026-12-01T00:00:00Z"}]}),
        ],
        ca_policies: vec![json!({
            "id": "p1", "displayName": "Require MFA for admins", "state": "enabled",
            "createdDateTime": "2025-01-01T00:00:00Z", "modifiedDateTime": null, "templateId": null,
            "conditions": {
                "users": {"includeUsers": [], "excludeUsers": [], "includeGroups": [], "excludeGroups": [],
                          "includeRoles": [GLOBAL_ADMIN, USER_ADMIN], "excludeRoles": []},
                "applications": {"includeApplications": ["All"], "excludeApplications": []},
                "clientAppTypes": ["all"],
                "locations": null, "platforms": null,
                "userRiskLevels": [], "signInRiskLevels": [], "servicePrincipalRiskLevels": []
            },
            "grantControls": {"operator": "OR", "builtInControls": ["mfa"], "customAuthenticationFactors": [], "termsOfUse": []},
            "sessionControls": null
        })],
        page_size: 2,
        registration_page_size: 3,
        ..Tenant::default()
    }
}

struct Run {
    mock: MockGraph,
    cfg: Config,
    state: Arc<AppState>,
    source: Source,
    _dir: tempfile::TempDir,
}

fn clock() -> Clock {
    Arc::new(|| NOW)
}

async fn start(t: Tenant, auth: &str) -> Run {
    start_with(t, auth, "").await
}

async fn start_with(t: Tenant, auth: &str, extra: &str) -> Run {
    let secret = t.client_secret.clone();
    let (tenant_id, client_id) = (t.tenant_id.clone(), t.client_id.clone());
    let mock = MockGraph::start(t).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let auth = if auth.is_empty() {
        format!("client_secret_file = \"{}\"", secret_file.display())
    } else {
        auth.to_string()
    };
    let cfg = config_from_toml(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[[sources]]
name = "entra-test"
type = "entra"
tenant_id = "{tenant_id}"
client_id = "{client_id}"
{auth}
authority_url = "{base}"
graph_url = "{base}"
timeout = "60s"
{extra}
"#,
        base = mock.base
    ))
    .unwrap();
    let state = Arc::new(AppState::new(&cfg.sources));
    let source = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    Run {
        mock,
        cfg,
        state,
        source,
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
}

/// (account id or "" for tenant, check) of every finding.
/// Requests made for the user listing and for the registration report.
fn listing_requests(mock: &MockGraph) -> (usize, usize) {
    let paths = mock.paths();
    let users = paths.iter().filter(|p| *p == "/v1.0/users").count();
    let registration = paths
        .iter()
        .filter(|p| p.ends_with("userRegistrationDetails"))
        .count();
    (users, registration)
}

fn findings(r: &Report) -> BTreeSet<(String, &'static str)> {
    r.findings
        .iter()
        .map(|f| (r.account_id(f).to_string(), f.check.as_str()))
        .collect()
}

/// The account, decoded from the report's compact form (leaked: tests only).
fn account(r: &Report, id: &str) -> &'static identity_posture_exporter::model::Account {
    Box::leak(Box::new(r.account(r.find_id(id).unwrap()).unwrap()))
}

#[tokio::test]
async fn full_tenant_maps_users_roles_mfa_apps_and_policy() {
    let run = start(tenant(), "").await;
    let r = run.poll().await.unwrap();
    assert!(r.availability.missing.is_empty(), "{:?}", r.availability);

    // Users.
    let alice = account(&r, ALICE);
    assert_eq!(alice.login, "alice@contoso.com");
    assert_eq!(alice.last_login, Known::At(datetime!(2026-11-27 09:00 UTC)));
    let f: Vec<_> = alice.mfa.as_ref().unwrap().active_factors().collect();
    assert_eq!(f, [FactorType::Push, FactorType::Webauthn]);
    assert_eq!(
        alice.roles.as_ref().unwrap()[0].name,
        "Global Administrator"
    );
    assert_eq!(account(&r, BOB).status, Status::Disabled);
    let guest = account(&r, GUEST);
    assert_eq!(guest.attributes["user_type"], "Guest");
    assert_eq!(guest.last_login, Known::Never);
    assert_eq!(guest.credentials, Some(vec![]));
    let carol = account(&r, CAROL);
    assert_eq!(carol.last_login, Known::At(datetime!(2026-02-20 0:00 UTC)));
    assert_eq!(carol.roles.as_ref().unwrap()[0].name, "User Administrator");
    assert_eq!(
        carol.attributes["roles_via_groups"],
        json!([HELPDESK_GROUP])
    );
    let dave = account(&r, DAVE);
    assert_eq!(
        dave.attributes["pim_eligible_roles"],
        json!(["Global Administrator"])
    );
    assert!(dave.mfa.as_ref().unwrap().factors.is_empty());
    assert!(account(&r, ERIN).mfa.is_none());

    // Workloads: the app registration joined with its service principal; the vendor's SP
    // with its own certificate; the managed identity with a role; Microsoft Graph's SP is
    // not an account.
    let payroll = account(&r, PAYROLL_APP);
    assert_eq!(payroll.login, PAYROLL_APP_ID);
    assert_eq!(payroll.credentials.as_ref().unwrap().len(), 4);
    assert_eq!(
        payroll.roles.as_ref().unwrap()[0].name,
        "Privileged Role Administrator"
    );
    assert!(r.find_id(SAML_SP).is_some());
    assert!(r.find_id(MS_SP).is_none());
    assert!(
        r.find_id(PAYROLL_SP).is_none(),
        "joined into the app account"
    );
    assert_eq!(account(&r, MI_SP).credentials, Some(vec![]));

    let got = findings(&r);
    let want: BTreeSet<(String, &str)> = [
        // Tenant: the only MFA policy targets admin roles, not all users.
        ("", "tenant.mfa_policy_gap"),
        // The guest never signed in and was created 2025-01-01 (> 30 days).
        (GUEST, "dormant.never_logged_in"),
        (GUEST, "mfa.weak"),
        // Carol: SMS only, privileged; last sign-in 281 days ago.
        (CAROL, "mfa.weak"),
        (CAROL, "privilege.no_mfa"),
        (CAROL, "dormant.inactive"),
        (CAROL, "privilege.unused"),
        // Dave: eligible Global Administrator with nothing registered.
        (DAVE, "mfa.missing"),
        (DAVE, "privilege.no_mfa"),
        // Payroll: one expired, one expiring in 12 days, one without expiry; admin role.
        (PAYROLL_APP, "credential.expired"),
        (PAYROLL_APP, "credential.expiring"),
        (PAYROLL_APP, "credential.no_expiry"),
        (PAYROLL_APP, "privilege.service_account_admin"),
        // Vendor SSO: signing certificate expiring on 2026-11-30, issued 2023-01-01 (older
        // than the 365-day certificate maximum, and not yet expired).
        (SAML_SP, "credential.expiring"),
        (SAML_SP, "credential.unrotated"),
        // The managed identity holds User Administrator.
        (MI_SP, "privilege.service_account_admin"),
    ]
    .into_iter()
    .map(|(a, c)| (a.to_string(), c))
    .collect();
    assert_eq!(got, want);
    let gap = r
        .subject(r.findings.iter().find(|f| f.account.is_none()).unwrap())
        .unwrap()
        .to_string();
    assert!(
        gap.starts_with("MFA is not required for all users"),
        "{gap}"
    );
    // Two super admins: Alice (active) and Dave (eligible).
    assert_eq!(r.tally.super_admins, 2);

    // Paging: 6 users at 2 per page = 3 requests; one token for the whole poll.
    assert_eq!(listing_requests(&run.mock), (3, 2));
    assert_eq!(run.mock.token_requests(), 1);
    // A second poll reuses the cached token.
    run.poll().await.unwrap();
    assert_eq!(run.mock.token_requests(), 1);
    let form = run.mock.seen.token_forms.lock().unwrap()[0].clone();
    assert_eq!(form["scope"], format!("{}/.default", run.mock.base));
}

#[tokio::test]
async fn non_premium_tenant_makes_last_login_and_mfa_unknown_not_findings() {
    let mut t = tenant();
    t.non_premium = true;
    t.ca_policies.clear();
    let run = start(t, "").await;
    let r = run.poll().await.unwrap();
    let missing: HashSet<DataKind> = r.availability.missing.keys().copied().collect();
    assert_eq!(missing, HashSet::from([DataKind::LastLogin, DataKind::Mfa]));
    for why in r.availability.missing.values() {
        assert!(why.contains("no Entra ID P1/P2 licence"), "{why}");
        assert!(
            why.contains("Authentication_RequestFromNonPremiumTenantOrB2CTenant"),
            "{why}"
        );
    }
    for a in &r.accounts {
        assert!(a.last_login.is_unknown(), "{}", a.id);
        assert!(a.mfa.is_none(), "{}", a.id);
    }
    let checks: BTreeSet<&str> = findings(&r).into_iter().map(|(_, c)| c).collect();
    for c in [
        "mfa.missing",
        "mfa.weak",
        "dormant.inactive",
        "dormant.never_logged_in",
        "privilege.no_mfa",
        "privilege.unused",
    ] {
        assert!(
            !checks.contains(c),
            "{c} reported for unknown data: {checks:?}"
        );
    }
    // Without P1 there is no conditional access; security defaults are off: both gaps.
    let gaps: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.account.is_none() && f.check.as_str() == "tenant.mfa_policy_gap")
        .map(|f| r.subject(f).unwrap().to_string())
        .collect();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert!(gaps[0].contains("no Entra ID P1 licence"), "{gaps:?}");
    // PIM needs P2: eligibility unknown, active roles still read (so only Alice is a super
    // admin, and the lock-out check speaks about active admins).
    assert!(findings(&r).contains(&(String::new(), "tenant.too_few_super_admins")));
    assert!(account(&r, DAVE).roles.as_ref().unwrap().is_empty());
    assert!(r
        .gauges
        .iter()
        .any(|g| g.name == "identity_posture_entra_pim_eligibility_available" && g.value == 0.0));
    // The metric says which data is missing, once for the source.
    identity_posture_exporter::metrics::refresh(&run.state);
    let m = String::from_utf8(run.state.metrics.load().to_vec()).unwrap();
    assert!(
        m.contains(r#"identity_posture_source_data_available{data="last_login",provider="entra",source="entra-test"} 0"#),
        "{m}"
    );
    assert!(m.contains(r#"identity_posture_source_data_available{data="roles",provider="entra",source="entra-test"} 1"#));
}

#[tokio::test]
async fn missing_permissions_are_reported_per_data_class() {
    let mut t = tenant();
    t.missing = HashSet::from([
        Permission::AuditLog,
        Permission::Roles,
        Permission::Applications,
    ]);
    let run = start(t, "").await;
    let r = run.poll().await.unwrap();
    let reasons = &r.availability.missing;
    assert!(reasons[&DataKind::LastLogin].contains("AuditLog.Read.All"));
    assert!(reasons[&DataKind::Mfa].contains("AuditLog.Read.All"));
    assert!(reasons[&DataKind::Roles].contains("RoleManagement.Read.Directory"));
    assert!(reasons[&DataKind::Credentials].contains("Application.Read.All"));
    assert!(reasons[&DataKind::Roles].contains("Authorization_RequestDenied"));
    // No role data: no super-admin count checks, nobody privileged.
    let checks: BTreeSet<&str> = findings(&r).into_iter().map(|(_, c)| c).collect();
    assert!(
        !checks.contains("tenant.too_few_super_admins"),
        "{checks:?}"
    );
    assert!(r.accounts.iter().all(|a| a.roles.is_none()));
    // Users are still there (with passwords), apps are not.
    assert_eq!(r.accounts.len(), 6);
}

#[tokio::test]
async fn group_member_refusal_makes_roles_unknown_not_absent() {
    let mut t = tenant();
    t.missing = HashSet::from([Permission::GroupMembers]);
    let run = start(t, "").await;
    let r = run.poll().await.unwrap();
    let why = &r.availability.missing[&DataKind::Roles];
    assert!(why.contains("GroupMember.Read.All"), "{why}");
    assert!(r.accounts.iter().all(|a| a.roles.is_none()));
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once() {
    let mut t = tenant();
    t.revoke_first_token = true;
    let run = start(t, "").await;
    let r = run.poll().await.unwrap();
    assert_eq!(r.accounts.len(), 9);
    // Concurrent requests rejected with token 1 share one renewal.
    assert_eq!(run.mock.token_requests(), 2);
    assert!(run.state.sources[0].stats.api_requests()["4xx"] >= 1);
}

/// The registration report and the user listing are read side by side. Here the report's
/// second page is answered only once the user listing's last page was asked for: a poll that
/// read the report before the users would wait for ever. Users whose row comes later (Dave,
/// on the report's second page) or never (Bob, Erin) are held until it comes or the report
/// ends, so the poll's accounts and findings are those of a poll where the report came
/// first, at the page minimum.
#[tokio::test]
async fn users_and_registration_report_are_read_side_by_side() {
    let first = start(tenant(), "").await;
    let expected = first.poll().await.unwrap();
    let mut t = tenant();
    t.registration_after_users = true;
    let run = start(t, "").await;
    let r = tokio::time::timeout(std::time::Duration::from_secs(60), run.poll())
        .await
        .expect("the report's second page waits for the user listing to end")
        .unwrap();
    assert!(run
        .mock
        .seen
        .users_listed
        .load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(findings(&r), findings(&expected));
    assert_eq!(r.accounts.len(), expected.accounts.len());
    for id in [ALICE, BOB, GUEST, CAROL, DAVE, ERIN] {
        assert_eq!(account(&r, id), account(&expected, id), "{id}");
    }
    let f: Vec<_> = account(&r, ALICE)
        .mfa
        .as_ref()
        .unwrap()
        .active_factors()
        .collect();
    assert_eq!(f, [FactorType::Push, FactorType::Webauthn]);
    assert!(account(&r, DAVE).mfa.as_ref().unwrap().factors.is_empty());
    assert!(account(&r, ERIN).mfa.is_none());
    // Pages: users 6 at 2 per page, the report 4 rows at 3 per page; nothing twice.
    assert_eq!(listing_requests(&run.mock), (3, 2));
    assert_eq!(run.mock.graph_requests(), first.mock.graph_requests());
}

/// A user page that fails while it is fetched ahead fails the poll when it is reached,
/// naming the source and the endpoint; the last good numbers stay and no request is made
/// after the failure (the retries are the upstream layer's, counted).
#[tokio::test]
async fn a_failing_page_ahead_fails_the_poll_naming_it() {
    let run = start(tenant(), "").await;
    run.poll().await.unwrap();
    let good = run.state.sources[0].report.load_full().unwrap();
    let before = run.mock.server.hits("/v1.0/users");
    // The second page of users (fetched while the first is mapped): 404, not retried.
    run.mock.server.fault_after(
        "/v1.0/users",
        1,
        support::mock::Fault::status(
            404,
            json!({"error": {"code": "Request_ResourceNotFound", "message": "Gone.", "innerError": {"request-id": "r-9"}}}),
        ),
    );
    let e = run.poll().await.unwrap_err();
    assert!(e.contains("entra"), "{e}");
    assert!(e.contains("/v1.0/users") && e.contains("404"), "{e}");
    assert_eq!(
        run.mock.server.hits("/v1.0/users") - before,
        2,
        "the first page and the failing one, nothing after it"
    );
    let kept = run.state.sources[0].report.load_full().unwrap();
    assert!(Arc::ptr_eq(&good, &kept), "the last good report is kept");
}

#[tokio::test]
async fn request_budget_stops_the_poll() {
    let run = start_with(tenant(), "", "max_requests_per_poll = 5\nconcurrency = 1").await;
    let e = run.poll().await.unwrap_err();
    assert!(
        e.contains("request budget of 5 per poll is spent (max_requests_per_poll)"),
        "{e}"
    );
    assert!(run.mock.graph_requests() + run.mock.token_requests() <= 5);
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after() {
    let mut t = tenant();
    // Graph requests are numbered in arrival order; the concurrent reads make the exact
    // endpoint vary, the retry must not care.
    t.throttle = HashMap::from([(2, (429, 1)), (5, (503, 0)), (6, (429, 0))]);
    let run = start(t, "").await;
    let started = std::time::Instant::now();
    let r = run.poll().await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(r.accounts.len(), 9);
    let stats = &run.state.sources[0].stats;
    assert_eq!(stats.rate_limited(), 2);
    let req = stats.api_requests();
    assert_eq!(req.get("429"), Some(&2));
    assert_eq!(req.get("5xx"), Some(&1));
}

#[tokio::test]
async fn graph_errors_name_code_message_and_request_id() {
    let mut t = tenant();
    // A role assigned to a group the directory no longer knows.
    t.group_members.clear();
    let run = start(t, "").await;
    let e = run.poll().await.unwrap_err();
    assert!(
        e.contains("GET /v1.0/groups/{id}/transitiveMembers: HTTP 404 Request_ResourceNotFound"),
        "{e}"
    );
    assert!(e.contains(HELPDESK_GROUP), "{e}");
    assert!(
        e.contains("request-id 00000000-aaaa-bbbb-cccc-000000000001"),
        "{e}"
    );
    let st = run.state.sources[0].status();
    assert!(!st.up);
    assert_eq!(st.last_error.as_deref(), Some(e.as_str()));
}

#[tokio::test]
async fn token_endpoint_error_is_reported_without_the_secret() {
    let t = tenant();
    let mock = MockGraph::start(t).await;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s");
    std::fs::write(&f, "not-the-secret-value").unwrap();
    let cfg = config_from_toml(&format!(
        r#"[[sources]]
name = "e"
type = "entra"
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret_file = "{}"
authority_url = "{b}"
graph_url = "{b}"
"#,
        f.display(),
        b = mock.base
    ))
    .unwrap();
    let state = AppState::new(&cfg.sources);
    let source = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    let e = poll_once(&cfg.sources[0], &source, &state.sources[0], &clock(), false)
        .await
        .unwrap_err();
    assert!(
        e.contains("oauth2/v2.0/token: HTTP 401 invalid_client"),
        "{e}"
    );
    assert!(e.contains("AADSTS7000215"), "{e}");
    assert!(!e.contains("not-the-secret-value"), "{e}");
    assert_eq!(mock.graph_requests(), 0);
}

#[tokio::test]
async fn certificate_assertion_authenticates() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/entra");
    let cert = std::fs::read_to_string(format!("{data}/test-cert.pem")).unwrap();
    let public = std::fs::read_to_string(format!("{data}/test-pub.pem")).unwrap();
    let x5t = identity_posture_exporter::upstream::oauth::x5t_s256(&cert).unwrap();
    // Computed independently: openssl x509 -outform DER | openssl dgst -sha256 -binary | base64url.
    assert_eq!(x5t, "fGOWvm-o_Eg0oeYXeZ54YNRXMFmYXmT-lo2kNR24p04");
    let mut t = tenant();
    t.assertion_key = Some((public, x5t));
    let run = start(
        t,
        &format!(
            "certificate_file = \"{data}/test-cert.pem\"\nprivate_key_file = \"{data}/test-key.pem\""
        ),
    )
    .await;
    let r = run.poll().await.unwrap();
    assert_eq!(r.accounts.len(), 9);
    let form = run.mock.seen.token_forms.lock().unwrap()[0].clone();
    assert!(!form.contains_key("client_secret"));
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
}

#[test]
fn entra_configuration_is_validated() {
    let e = config_from_toml(
        r#"[[sources]]
name = "e"
type = "entra"
client_id = "x"
client_secret_env = "IPE_TEST_SURELY_UNSET_ENTRA"
certificate_file = "/nonexistent.pem"
graph_url = "http://graph.example.com"
token_file = "x"
"#,
    )
    .unwrap_err()
    .problems
    .join("\n");
    for needle in [
        "sources[0] (e).tenant_id: missing required key",
        "use either client_secret_file/client_secret_env or certificate_file + private_key_file, not both",
        "sources[0] (e).graph_url: \"http://graph.example.com\" must use https://",
        "sources[0] (e).token_file: not a key of type entra",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s");
    std::fs::write(&f, "shh\n").unwrap();
    let c = config_from_toml(&format!(
        r#"[[sources]]
name = "e"
type = "entra"
tenant_id = "contoso.onmicrosoft.com"
client_id = "x"
client_secret_file = "{}"
"#,
        f.display()
    ))
    .unwrap();
    let e = c.sources[0]
        .settings::<identity_posture_exporter::sources::entra::EntraConfig>()
        .unwrap();
    assert_eq!(e.authority_url, "https://login.microsoftonline.com");
    assert_eq!(e.graph_url, "https://graph.microsoft.com");
    assert!(!format!("{c:?}").contains("shh"));
    assert_eq!(c.sources[0].provider(), "entra");
}

/// The framework's promises, on the mock Graph (users in pages of two).
#[tokio::test]
async fn conformance() {
    use identity_posture_exporter::sources::entra::PIM_ELIGIBILITY_AVAILABLE;
    use support::conformance::{run, Conformance};
    use support::harness::Harness;
    let t = tenant();
    let (tid, cid, secret) = (
        t.tenant_id.clone(),
        t.client_id.clone(),
        t.client_secret.clone(),
    );
    let mock = MockGraph::start(t).await;
    let toml = format!(
        "[[sources]]\nname = \"entra-conf\"\ntype = \"entra\"\ntenant_id = \"{tid}\"\nclient_id = \"{cid}\"\nclient_secret_file = \"{{dir}}/secret\"\nauthority_url = \"{b}\"\ngraph_url = \"{b}\"\ntimeout = \"60s\"\n",
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
        listing: "/v1.0/users",
        optional: Some((
            "/v1.0/reports/authenticationMethods/userRegistrationDetails",
            DataKind::Mfa,
            json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation.", "innerError": {"request-id": "r-1"}}}),
        )),
        unauthorized: json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token validation failure. Invalid audience.", "innerError": {"request-id": "r-2"}}}),
        numbered_pages: false,
        secrets: &[&secret],
        gauges: &[
            PIM_ELIGIBILITY_AVAILABLE.name,
            "identity_posture_source_poll_requests",
        ],
    })
    .await;
}
