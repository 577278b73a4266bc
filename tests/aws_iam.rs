//! The `aws_iam` source end to end on an in-memory IAM (the `IamApi` fake) and on the real
//! AWS SDK against an in-process IAM stub: report → policies → MFA devices → model → checks →
//! gauges and findings, the fault matrix, the request budget and the policy cache. Every
//! expected number is worked out by hand below (NOW = 2026-11-28 12:00 UTC). The same account
//! on moto is tests/aws_iam_moto.rs.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use identity_posture_exporter::config::Secret;
use identity_posture_exporter::model::{FactorType, Known};
use identity_posture_exporter::sources::aws_iam::api::{AttachedPolicy, VirtualMfaDevice};
use identity_posture_exporter::sources::aws_iam::fake::{
    FakeData, FakeFault, FakeGroup, FakeIam, FakePolicy, FakeUser,
};
use identity_posture_exporter::sources::aws_iam::{
    AwsIamConfig, AwsIamSource, CredentialSource, DORMANT_KEYS, MFA_UNREAD, REPORT_AGE,
    ROOT_ACCESS_KEYS, ROOT_LAST_USED, ROOT_MFA,
};
use identity_posture_exporter::sources::{config_from_toml, Source};
use support::harness::{Harness, Logs, NOW};
use support::iam_stub::{error_body, IamStub};

const ACCOUNT: &str = "123456789012";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// `NOW - days`, as the credential report writes dates.
fn ago(days: i64) -> String {
    let t = NOW - time::Duration::days(days);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
        .replace('Z', "+00:00")
}

fn arn(user: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:user/{user}")
}

const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

/// The seeded account of tests/data/aws/seed.py, dated from NOW (ages in days: c created,
/// p password last used, k key created, u key last used).
fn report() -> String {
    let no_keys = "false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A";
    let no_certs = "false,N/A,false,N/A";
    let console = |u: &str, c: i64, p: &str, mfa: bool, keys: &str, certs: &str| {
        format!(
            "{u},{},{},true,{p},{},N/A,{mfa},{keys},{certs}",
            arn(u),
            ago(c),
            ago(c)
        )
    };
    let service = |u: &str, c: i64, keys: &str| {
        format!(
            "{u},{},{},false,N/A,N/A,N/A,false,{keys},{no_certs}",
            arn(u),
            ago(c)
        )
    };
    let rows = [
        format!("<root_account>,arn:aws:iam::{ACCOUNT}:root,{},not_supported,{},not_supported,not_supported,true,{no_keys},{no_certs}", ago(1200), ago(3)),
        console("alice", 400, &ago(1), true, &format!("true,{},{},us-east-1,iam,false,N/A,N/A,N/A,N/A", ago(30), ago(2)), no_certs),
        console("bob", 500, &ago(100), false, &format!("true,{},N/A,N/A,N/A,true,{},N/A,N/A,N/A", ago(200), ago(10)), no_certs),
        console("carol", 300, &ago(50), true, no_keys, no_certs),
        console("dave", 200, "no_information", true, no_keys, no_certs),
        console("erin", 10, "no_information", false, no_keys, no_certs),
        console("frank", 400, &ago(5), false, no_keys, &format!("true,{},false,N/A", ago(400))),
        service("svc-deploy", 800, &format!("true,{},{},us-east-1,iam,false,{},N/A,N/A,N/A", ago(700), ago(300), ago(20))),
        service("svc-inline", 100, &format!("true,{},{},us-east-1,s3,false,N/A,N/A,N/A,N/A", ago(100), ago(1))),
        service("svc-ci", 60, &format!("true,{},{},us-east-1,s3,false,N/A,N/A,N/A,N/A", ago(60), ago(50))),
        service("gina", 1000, no_keys),
    ];
    format!("{HEADER}\n{}\n", rows.join("\n"))
}

const STAR: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const NARROW: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::bucket/*"}]}"#;

/// As IAM sends inline documents: URL-encoded.
fn encoded(doc: &str) -> String {
    url::form_urlencoded::byte_serialize(doc.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn aws_managed(name: &str) -> AttachedPolicy {
    AttachedPolicy {
        name: name.into(),
        arn: format!("arn:aws:iam::aws:policy/{name}"),
    }
}

fn customer(name: &str) -> AttachedPolicy {
    AttachedPolicy {
        name: name.into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:policy/{name}"),
    }
}

fn data() -> FakeData {
    let mut d = FakeData {
        report: report().into_bytes(),
        generated: Some(NOW - time::Duration::hours(1)),
        ..FakeData::default()
    };
    let mut user = |name: &str, f: &dyn Fn(&mut FakeUser)| {
        let mut u = FakeUser::default();
        f(&mut u);
        d.users.insert(name.into(), u);
    };
    user("alice", &|u| {
        u.groups = vec!["admins".into()];
        u.mfa = vec![format!("arn:aws:iam::{ACCOUNT}:mfa/alice-phone")];
    });
    user("bob", &|u| {
        u.attached = vec![aws_managed("AdministratorAccess")]
    });
    user("carol", &|u| {
        u.attached = vec![aws_managed("IAMFullAccess")];
        u.mfa = vec!["GAHT12345678".into()];
    });
    user("dave", &|u| {
        u.groups = vec!["readers".into()];
        u.mfa = vec![format!(
            "arn:aws:iam::{ACCOUNT}:u2f/user/dave/fidosecuritykey-ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        )];
    });
    user("erin", &|u| u.groups = vec!["iam-admins".into()]);
    user("frank", &|u| {
        u.inline.insert("read-bucket".into(), encoded(NARROW));
    });
    user("svc-deploy", &|u| u.attached = vec![customer("StarStar")]);
    user("svc-inline", &|u| {
        u.inline.insert("everything".into(), encoded(STAR));
    });
    user("svc-ci", &|u| {
        u.attached = vec![customer("CiLimited")];
        u.groups = vec!["readers".into()];
    });
    user("gina", &|_| {});
    d.groups.insert(
        "admins".into(),
        FakeGroup {
            attached: vec![aws_managed("AdministratorAccess")],
            ..FakeGroup::default()
        },
    );
    d.groups.insert(
        "iam-admins".into(),
        FakeGroup {
            attached: vec![aws_managed("IAMFullAccess")],
            inline: [("group-star".to_string(), encoded(STAR))].into(),
        },
    );
    d.groups.insert(
        "readers".into(),
        FakeGroup {
            attached: vec![aws_managed("ReadOnlyAccess")],
            ..FakeGroup::default()
        },
    );
    // Managed policy versions come raw (moto) or encoded (AWS): one of each.
    d.policies.insert(
        customer("StarStar").arn,
        FakePolicy {
            name: "StarStar".into(),
            default_version: "v2".into(),
            versions: [
                ("v1".to_string(), NARROW.to_string()),
                ("v2".to_string(), STAR.to_string()),
            ]
            .into(),
        },
    );
    d.policies.insert(
        customer("CiLimited").arn,
        FakePolicy {
            name: "CiLimited".into(),
            default_version: "v1".into(),
            versions: [("v1".to_string(), encoded(NARROW))].into(),
        },
    );
    d.virtual_devices = vec![
        VirtualMfaDevice {
            serial: format!("arn:aws:iam::{ACCOUNT}:mfa/alice-phone"),
            user_arn: Some(arn("alice")),
        },
        VirtualMfaDevice {
            serial: format!("arn:aws:iam::{ACCOUNT}:mfa/root-account-mfa-device"),
            user_arn: Some(format!("arn:aws:iam::{ACCOUNT}:root")),
        },
    ];
    d
}

fn fake() -> Arc<FakeIam> {
    Arc::new(FakeIam::new(data()).with_secrets(&[KEY_ID, SECRET]))
}

/// A harness over the fake; `extra` adds keys to the `[[sources]]` table.
fn harness(fake: &Arc<FakeIam>, extra: &str) -> Harness {
    let toml = format!(
        "[[sources]]\nname = \"aws-prod\"\ntype = \"aws_iam\"\ntimeout = \"60s\"\nconcurrency = 1\n{extra}"
    );
    let fake = fake.clone();
    Harness::with_source(&toml, move |sc, deps| {
        let cfg = sc.settings::<AwsIamConfig>().unwrap();
        Source::AwsIam(Box::new(AwsIamSource::with_api(sc, cfg, deps, fake)))
    })
}

fn findings_of(h: &Harness, user: &str) -> BTreeSet<&'static str> {
    let id = if user == "root" {
        format!("arn:aws:iam::{ACCOUNT}:root")
    } else {
        arn(user)
    };
    h.findings()
        .into_iter()
        .filter(|(a, _)| *a == id)
        .map(|(_, c)| c)
        .collect()
}

fn g(h: &Harness, name: &str, labels: &[(&str, &str)]) -> f64 {
    h.gauge(name, labels)
        .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

/// Requests of one poll of [`data`], worked out call by call: report 2; per user (10)
/// ListAttachedUserPolicies, ListUserPolicies, ListGroupsForUser = 30, GetUserPolicy for
/// frank's and svc-inline's inline policies = 2; per group (3) two listings = 6, plus
/// GetGroupPolicy for group-star = 1; customer-managed StarStar and CiLimited: GetPolicy +
/// GetPolicyVersion = 4 (AWS-managed ones are judged by name); ListVirtualMFADevices for root
/// = 1; ListMFADevices for alice, carol and dave = 3.
const REQUESTS: f64 = 2.0 + 30.0 + 2.0 + 6.0 + 1.0 + 4.0 + 1.0 + 3.0;

#[tokio::test]
async fn verdicts_account_by_account() {
    let fake = fake();
    // Password age is judged only when asked for (off by default: NIST SP 800-63B); this
    // account's verdicts are worked out with a 365-day maximum, as CIS AWS 1.x counts it.
    let h = harness(&fake, "policy = { password_max_age_days = 365 }");
    h.poll().await.unwrap();

    let expect: &[(&str, &[&str])] = &[
        // Virtual MFA, privileged; root use is not dormancy data.
        ("root", &[]),
        // Admin through group `admins`; password 400 days old (> 365).
        ("alice", &["credential.unrotated"]),
        (
            "bob",
            &[
                "credential.unrotated",
                "dormant.inactive",
                "mfa.missing",
                "privilege.no_mfa",
                "privilege.unused",
            ],
        ),
        // IAMFullAccess, last console use 50 days ago (> 45); hardware TOTP is MFA.
        ("carol", &["privilege.unused"]),
        // Never signed in, created 200 days ago; FIDO key.
        ("dave", &["dormant.never_logged_in"]),
        // IAMFullAccess + inline `*` on `*` through iam-admins; created 10 days ago (grace).
        ("erin", &["mfa.missing", "privilege.no_mfa"]),
        // Password 400 days, certificate 400 days (> 365).
        ("frank", &["credential.unrotated", "mfa.missing"]),
        // Key 700 days old, last used 300 days ago; StarStar v2 allows `*` on `*`.
        (
            "svc-deploy",
            &[
                "credential.unrotated",
                "dormant.inactive",
                "privilege.service_account_admin",
                "privilege.unused",
            ],
        ),
        (
            "svc-inline",
            &["credential.unrotated", "privilege.service_account_admin"],
        ),
        ("svc-ci", &[]),
        // No password, no key, no certificate: cannot sign in, not checked.
        ("gina", &[]),
    ];
    for (user, checks) in expect {
        let want: BTreeSet<&str> = checks.iter().copied().collect();
        assert_eq!(findings_of(&h, user), want, "{user}");
    }

    let acc = |t: &str, s: &str| {
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", t), ("status", s)],
        )
    };
    assert_eq!(
        (
            acc("human", "active"),
            acc("service", "active"),
            acc("service", "disabled")
        ),
        (7.0, 3.0, 1.0)
    );
    let by = |m: &str, t: &str, p: &str| g(&h, m, &[("account_type", t), ("privileged", p)]);
    assert_eq!(
        by("identity_posture_accounts_without_mfa", "human", "true"),
        2.0,
        "bob, erin"
    );
    assert_eq!(
        by("identity_posture_accounts_without_mfa", "human", "false"),
        1.0,
        "frank"
    );
    assert_eq!(
        by(
            "identity_posture_accounts_phishing_resistant_mfa",
            "human",
            "false"
        ),
        1.0,
        "dave"
    );
    assert_eq!(
        by("identity_posture_accounts_mfa_unknown", "service", "true"),
        2.0,
        "MFA does not apply without a password"
    );
    assert_eq!(
        by("identity_posture_accounts_mfa_unknown", "service", "false"),
        1.0
    );
    let role = |r: &str| g(&h, "identity_posture_privileged_accounts", &[("role", r)]);
    assert_eq!(
        [
            role("root"),
            role("AdministratorAccess"),
            role("IAMFullAccess"),
            role("group-star"),
            role("StarStar"),
            role("everything")
        ],
        [1.0, 2.0, 2.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(
        g(&h, "identity_posture_super_admins", &[]),
        3.0,
        "root, alice, bob"
    );
    let finding = |c: &str| g(&h, "identity_posture_findings", &[("check", c)]);
    assert_eq!(finding("credential.unrotated"), 5.0);
    assert_eq!(finding("mfa.missing"), 3.0);
    assert_eq!(
        finding("tenant.too_few_super_admins"),
        0.0,
        "no minimum for an AWS account"
    );
    assert_eq!(finding("tenant.too_many_super_admins"), 0.0);
    let unrotated = |t: &str, c: &str| {
        g(
            &h,
            "identity_posture_unrotated_credentials",
            &[("account_type", t), ("credential_type", c)],
        )
    };
    assert_eq!(
        [
            unrotated("human", "password"),
            unrotated("human", "access_key"),
            unrotated("human", "certificate"),
            unrotated("service", "access_key")
        ],
        [3.0, 1.0, 1.0, 2.0]
    );
    let dormant = |t: &str, p: &str, r: &str| {
        g(
            &h,
            "identity_posture_dormant_accounts",
            &[("account_type", t), ("privileged", p), ("reason", r)],
        )
    };
    assert_eq!(
        [
            dormant("human", "true", "inactive"),
            dormant("human", "false", "never_logged_in"),
            dormant("service", "true", "inactive")
        ],
        [1.0, 1.0, 1.0]
    );
    let over = |t: &str, r: &str| {
        g(
            &h,
            "identity_posture_overprivileged_accounts",
            &[("account_type", t), ("reason", r)],
        )
    };
    assert_eq!(
        [
            over("human", "unused"),
            over("human", "no_mfa"),
            over("service", "unused"),
            over("service", "service_account_admin")
        ],
        [2.0, 2.0, 1.0, 2.0]
    );

    // The source's own gauges.
    assert_eq!(
        g(&h, DORMANT_KEYS.name, &[("account_type", "human")]),
        1.0,
        "bob's key 1: 200 days, never used"
    );
    assert_eq!(
        g(&h, DORMANT_KEYS.name, &[("account_type", "service")]),
        1.0,
        "svc-deploy: last used 300 days ago"
    );
    assert_eq!(
        g(&h, ROOT_LAST_USED.name, &[]),
        (NOW - time::Duration::days(3)).unix_timestamp() as f64
    );
    assert_eq!(g(&h, ROOT_ACCESS_KEYS.name, &[]), 0.0);
    assert_eq!(g(&h, ROOT_MFA.name, &[("device", "virtual")]), 1.0);
    assert_eq!(g(&h, ROOT_MFA.name, &[("device", "hardware")]), 0.0);
    assert_eq!(g(&h, MFA_UNREAD.name, &[]), 0.0);
    assert_eq!(g(&h, REPORT_AGE.name, &[]), 3600.0);
    assert_eq!(
        g(&h, "identity_posture_source_poll_requests", &[]),
        REQUESTS
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "2xx")]
        ),
        REQUESTS
    );

    // The model: factor kinds, roles via groups, groups, key credentials.
    let r = h.report();
    let account = |u: &str| r.accounts.iter().find(|a| a.login == u).unwrap();
    let factors = |u: &str| -> Vec<FactorType> {
        account(u).mfa.as_ref().unwrap().active_factors().collect()
    };
    assert_eq!(factors("alice"), vec![FactorType::Totp]);
    assert_eq!(factors("carol"), vec![FactorType::HardwareToken]);
    assert_eq!(factors("dave"), vec![FactorType::Webauthn]);
    assert_eq!(factors("<root_account>"), vec![FactorType::Totp]);
    assert_eq!(account("erin").groups, vec!["iam-admins".to_string()]);
    let erin = account("erin");
    let roles: Vec<&str> = erin
        .roles
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(roles, vec!["IAMFullAccess", "group-star"]);
    assert_eq!(
        account("bob").last_login,
        Known::At(NOW - time::Duration::days(100))
    );
    let bob = account("bob");
    let keys: Vec<&str> = bob
        .credentials
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(keys, vec!["password", "access_key_1", "access_key_2"]);
    assert!(
        account("svc-deploy")
            .credentials
            .as_ref()
            .unwrap()
            .iter()
            .all(|c| c.id != "access_key_2"),
        "inactive keys are not checked"
    );
}

/// Customer-managed policy documents are read once per ARN and version: a second poll only
/// asks which version is in force; a new default version is read again.
#[tokio::test]
async fn policy_versions_are_cached_across_polls() {
    let fake = fake();
    let h = harness(&fake, "");
    h.poll().await.unwrap();
    assert_eq!(fake.count("iam:GetPolicyVersion"), 2);
    fake.clear_calls();
    h.poll().await.unwrap();
    assert_eq!(fake.count("iam:GetPolicy"), 2);
    assert_eq!(
        fake.count("iam:GetPolicyVersion"),
        0,
        "both versions cached"
    );
    assert_eq!(
        g(&h, "identity_posture_source_poll_requests", &[]),
        REQUESTS - 2.0
    );
    // StarStar's default goes back to the narrow v1: read, and svc-deploy is no admin.
    fake.data()
        .policies
        .get_mut(&customer("StarStar").arn)
        .unwrap()
        .default_version = "v1".into();
    fake.clear_calls();
    h.poll().await.unwrap();
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.starts_with("iam:GetPolicyVersion"))
            .collect::<Vec<_>>(),
        vec![&format!(
            "iam:GetPolicyVersion {} v1",
            customer("StarStar").arn
        )]
    );
    assert!(!findings_of(&h, "svc-deploy").contains("privilege.service_account_admin"));
    let src = h.source.AwsIam().unwrap();
    assert_eq!(
        src.cached_policy_versions(),
        2,
        "only versions in force are kept"
    );
}

/// `GenerateCredentialReport` is asked again with a growing wait on the injected clock until
/// the report is complete; it gives up after a bounded wait.
#[tokio::test]
async fn report_generation_waits_with_backoff_and_gives_up() {
    let fake = fake();
    fake.data().report_in_progress = 3;
    let h = harness(&fake, "");
    h.poll().await.unwrap();
    assert_eq!(fake.count("iam:GenerateCredentialReport"), 4);
    assert_eq!(
        h.timer.sleeps(),
        vec![
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_secs(2)
        ]
    );

    let fake = self::fake();
    fake.data().report_in_progress = u32::MAX;
    let h = harness(&fake, "");
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("timeout"), "{e}");
    assert!(e.contains("still being generated"), "{e}");
    assert!(
        h.timer.slept() <= Duration::from_secs(130),
        "{:?}",
        h.timer.slept()
    );
    assert!(h
        .timer
        .sleeps()
        .iter()
        .all(|d| *d <= Duration::from_secs(8)));
}

/// `max_requests_per_poll`: the MFA device lookups come last and stop at the budget (their
/// users' MFA is of an unknown kind, said by a gauge); a budget too small for the admin
/// policies fails the poll with the number to raise.
#[tokio::test]
async fn the_request_budget_bounds_mfa_lookups_and_fails_short_polls() {
    let fake = fake();
    let h = harness(
        &fake,
        &format!("max_requests_per_poll = {}", REQUESTS as u32 - 2),
    );
    h.poll().await.expect("MFA device kinds are optional");
    assert_eq!(g(&h, MFA_UNREAD.name, &[]), 2.0);
    assert_eq!(
        fake.count("iam:ListMFADevices"),
        1,
        "concurrency 1: the budget is checked before each call"
    );
    let r = h.report();
    let others = r
        .accounts
        .iter()
        .filter(|a| {
            a.mfa
                .as_ref()
                .is_some_and(|m| m.active_factors().eq([FactorType::Other]))
        })
        .count();
    assert_eq!(others, 2);
    assert_eq!(
        g(&h, "identity_posture_source_poll_requests", &[]),
        REQUESTS - 2.0
    );

    let fake = self::fake();
    let h = harness(&fake, "max_requests_per_poll = 20");
    let e = h.poll().await.unwrap_err();
    assert_eq!(h.status().last_error_kind, Some("budget"), "{e}");
    assert!(e.contains("raise max_requests_per_poll"), "{e}");
    assert_eq!(
        fake.calls().len(),
        21,
        "the refused call is logged by the fake but never metered"
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "2xx")]
        ),
        20.0
    );
}

/// The framework's promises for `aws_iam`. `support::conformance::run` cannot drive this
/// source: its faults are HTTP responses scripted per URL path (429 with `Retry-After`,
/// malformed JSON, Link-header loops), while every IAM call is a signed POST to `/` handled
/// by the AWS SDK (its own retry mode, XML errors, base64 report). The same promises are
/// checked here on the `IamApi` fake (each fake call is one metered attempt, as through the
/// SDK) — optional data refused → unknown with the reason and the poll succeeds; AccessDenied
/// on the report → a permission error naming the IAM action to grant; rejected credentials →
/// auth with a hint; throttling retried and counted, and a throttling storm fails as
/// rate_limited; 5xx and a report that is not CSV fail naming what came, keeping the last good
/// numbers; the standard gauges and the source's own are zero-filled; no credential appears in
/// errors, `/api/v1/sources`, metrics or logs — and on the real SDK against a stub in
/// `sdk_retries_and_counts_throttling_against_a_stub`.
#[tokio::test]
async fn conformance() {
    let (logs, _guard) = Logs::capture();
    let mut texts = Vec::new();
    let leaky = |what: &str| {
        format!("{what} (request signed with Credential={KEY_ID}/20261128/us-east-1/iam/aws4_request, secret {SECRET})")
    };

    // Baseline: every standard series and the source's own, zero-filled.
    let fake = fake();
    let h = harness(&fake, "");
    h.poll().await.expect("baseline");
    support::conformance::zero_filled(
        &h,
        &[
            DORMANT_KEYS.name,
            MFA_UNREAD.name,
            REPORT_AGE.name,
            ROOT_LAST_USED.name,
            ROOT_ACCESS_KEYS.name,
            ROOT_MFA.name,
            "identity_posture_source_poll_requests",
        ],
    );
    let good = h.series("identity_posture_accounts");
    texts.push(h.metrics());

    // Optional data refused: MFA device kinds → `other`, counted; the poll succeeds.
    fake.fail("iam:ListMFADevices", FakeFault::Denied(leaky("User: arn:aws:iam::123456789012:user/exporter is not authorized to perform: iam:ListMFADevices")));
    h.poll()
        .await
        .expect("refused MFA devices must not fail the poll");
    assert_eq!(g(&h, MFA_UNREAD.name, &[]), 3.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "mfa")]
        ),
        1.0,
        "MFA on/off is still known"
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts_phishing_resistant_mfa",
            &[("account_type", "human"), ("privileged", "false")]
        ),
        0.0,
        "dave's FIDO key is not claimed"
    );
    fake.clear_faults();

    // Optional data refused: policies → roles unknown with the action to grant.
    fake.fail(
        "iam:ListAttachedUserPolicies",
        FakeFault::Denied(leaky(
            "not authorized to perform: iam:ListAttachedUserPolicies",
        )),
    );
    h.poll()
        .await
        .expect("refused policies must not fail the poll");
    assert_eq!(
        g(
            &h,
            "identity_posture_source_data_available",
            &[("data", "roles")]
        ),
        0.0
    );
    let reason =
        &h.report().availability.missing[&identity_posture_exporter::model::DataKind::Roles];
    assert!(
        reason.contains("grant iam:ListAttachedUserPolicies"),
        "{reason}"
    );
    assert!(reason.contains("403"), "{reason}");
    assert_eq!(
        g(
            &h,
            "identity_posture_findings",
            &[("check", "tenant.too_many_super_admins")]
        ),
        0.0
    );
    assert!(
        findings_of(&h, "bob")
            .iter()
            .all(|c| !c.starts_with("privilege.")),
        "unknown roles are no privilege findings"
    );
    texts.push(h.sources_json());
    fake.clear_faults();

    // AccessDenied on the report: permission, naming the action; last good numbers kept.
    h.poll().await.unwrap();
    fake.fail(
        "iam:GenerateCredentialReport",
        FakeFault::Denied(leaky(
            "not authorized to perform: iam:GenerateCredentialReport",
        )),
    );
    let e = h.poll().await.expect_err("the report is required");
    assert_eq!(h.status().last_error_kind, Some("permission"), "{e}");
    assert!(
        e.contains("grant the exporter's identity iam:GenerateCredentialReport"),
        "{e}"
    );
    assert_eq!(g(&h, "identity_posture_source_up", &[]), 0.0);
    assert_eq!(
        h.series("identity_posture_accounts"),
        good,
        "last good numbers kept"
    );
    texts.push(e);
    texts.push(h.sources_json());
    fake.clear_faults();

    // Rejected credentials: auth, with where credentials come from.
    fake.fail(
        "iam:GenerateCredentialReport",
        FakeFault::BadCredentials(leaky(
            "The security token included in the request is invalid.",
        )),
    );
    let e = h
        .poll()
        .await
        .expect_err("rejected credentials fail the poll");
    assert_eq!(h.status().last_error_kind, Some("auth"), "{e}");
    assert!(e.contains(" — ") && e.contains("credential chain"), "{e}");
    texts.push(e);
    fake.clear_faults();

    // Throttling within the retries: counted, the poll succeeds with the same numbers.
    let h2 = harness(&fake, "");
    fake.fail_once("iam:GetCredentialReport", FakeFault::Throttled(2));
    fake.fail_once("iam:ListGroupsForUser", FakeFault::Throttled(1));
    h2.poll().await.expect("throttling is retried");
    assert_eq!(
        g(&h2, "identity_posture_source_rate_limited_total", &[]),
        3.0
    );
    assert_eq!(
        g(
            &h2,
            "identity_posture_source_api_requests_total",
            &[("code", "4xx")]
        ),
        3.0
    );
    assert_eq!(h2.series("identity_posture_accounts"), good);
    // A throttling storm: rate_limited, with advice; last good numbers kept.
    fake.fail_once("iam:GetCredentialReport", FakeFault::Throttled(10));
    let e = h2.poll().await.expect_err("throttled after every retry");
    assert_eq!(h2.status().last_error_kind, Some("rate_limited"), "{e}");
    assert!(e.contains("Throttling") && e.contains(" — "), "{e}");
    assert_eq!(h2.series("identity_posture_accounts"), good);
    texts.push(e);
    fake.clear_faults();

    // 5xx after retries, a timeout: named; last good numbers kept.
    fake.fail_once("iam:ListGroupsForUser", FakeFault::Service);
    let e = h2.poll().await.expect_err("5xx fails the poll");
    assert_eq!(h2.status().last_error_kind, Some("transport"), "{e}");
    assert!(
        e.contains("iam:ListGroupsForUser") && e.contains("ServiceFailure"),
        "{e}"
    );
    fake.fail_once("iam:ListMFADevices", FakeFault::Timeout);
    let e = h2
        .poll()
        .await
        .expect_err("a timed-out call fails the poll");
    assert_eq!(h2.status().last_error_kind, Some("timeout"), "{e}");
    assert_eq!(h2.series("identity_posture_accounts"), good);

    // A report that is not the documented CSV (an HTML page, garbage): decode, named.
    for (body, needle) in [
        (
            &b"<html><body>Sign in</body></html>"[..],
            "no \"user\" column",
        ),
        (&[0xff, 0xfe, 0x00][..], "not CSV text"),
        (&b"user,arn\nalice,\n"[..], "line 2"),
    ] {
        let saved = std::mem::replace(&mut fake.data().report, body.to_vec());
        let e = h2.poll().await.expect_err("a broken report fails the poll");
        assert_eq!(h2.status().last_error_kind, Some("decode"), "{e}");
        assert!(
            e.contains("iam:GetCredentialReport") && e.contains(needle),
            "{e}"
        );
        assert_eq!(h2.series("identity_posture_accounts"), good);
        fake.data().report = saved;
        texts.push(e);
    }
    // A policy document that is not JSON: decode, naming the policy.
    let saved = std::mem::replace(
        fake.data()
            .users
            .get_mut("svc-inline")
            .unwrap()
            .inline
            .get_mut("everything")
            .unwrap(),
        "%7Bnot json".into(),
    );
    let e = h2.poll().await.expect_err("a broken policy fails the poll");
    assert!(
        e.contains("\"everything\"") && e.contains("svc-inline"),
        "{e}"
    );
    *fake
        .data()
        .users
        .get_mut("svc-inline")
        .unwrap()
        .inline
        .get_mut("everything")
        .unwrap() = saved;
    h2.poll().await.unwrap();

    // No credential anywhere.
    texts.push(h2.metrics());
    texts.push(h2.sources_json());
    texts.push(logs.text());
    assert!(
        logs.text().contains("ListMFADevices"),
        "the refusal was logged (and redacted)"
    );
    for t in &texts {
        for s in [KEY_ID, SECRET] {
            assert!(!t.contains(s), "a credential leaked into:\n{t}");
        }
    }
}

/// A user deleted between the report and the policy reads is skipped, not counted as an
/// unprivileged account.
#[tokio::test]
async fn users_deleted_during_the_poll_are_skipped() {
    let fake = fake();
    fake.data().users.remove("svc-ci");
    let h = harness(&fake, "");
    h.poll().await.unwrap();
    assert!(h.report().accounts.iter().all(|a| a.login != "svc-ci"));
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "service"), ("status", "active")]
        ),
        2.0
    );
}

/// `admin_policies` adds names (and ARNs); `service_account_patterns` still apply.
#[tokio::test]
async fn admin_policies_and_service_patterns() {
    let fake = fake();
    let h = harness(
        &fake,
        "admin_policies = [\"ReadOnlyAccess\", \"arn:aws:iam::123456789012:policy/CiLimited\"]\npolicy = { service_account_patterns = [\"frank\"] }",
    );
    h.poll().await.unwrap();
    let role = |r: &str| g(&h, "identity_posture_privileged_accounts", &[("role", r)]);
    assert_eq!(
        role("ReadOnlyAccess"),
        2.0,
        "dave and svc-ci through readers"
    );
    assert_eq!(role("CiLimited"), 1.0);
    assert!(findings_of(&h, "svc-ci").contains("privilege.service_account_admin"));
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "service"), ("status", "active")]
        ),
        4.0,
        "frank by pattern"
    );
}

fn stub_toml(url: &str, extra: &str) -> String {
    format!("[[sources]]\nname = \"aws-stub\"\ntype = \"aws_iam\"\nendpoint_url = \"{url}\"\ntimeout = \"60s\"\n{extra}")
}

fn sdk_harness(stub: &IamStub, extra: &str) -> Harness {
    Harness::with_source(&stub_toml(&stub.url, extra), |sc, deps| {
        let cfg = sc.settings::<AwsIamConfig>().unwrap();
        let creds = CredentialSource::Static {
            access_key_id: KEY_ID.into(),
            secret_access_key: Secret::new(SECRET),
        };
        Source::AwsIam(Box::new(AwsIamSource::new(sc, cfg, deps, creds)))
    })
}

/// The real SDK client: `Throttling` answers are retried by the standard retry mode and each
/// attempt is counted by the interceptor (requests by status class, rate-limited); a storm
/// fails as rate_limited; AccessDenied names the action; the budget is enforced per attempt;
/// the credentials in use never appear in what the source says.
#[tokio::test]
async fn sdk_retries_and_counts_throttling_against_a_stub() {
    let (logs, _guard) = Logs::capture();
    let stub = IamStub::start().await;
    let h = sdk_harness(&stub, "");
    let throttling = || error_body("Throttling", "Rate exceeded");
    stub.fault("GetCredentialReport", 400, throttling());
    stub.fault("GetCredentialReport", 400, throttling());
    h.poll().await.expect("two throttles are retried");
    assert_eq!(stub.hits("GetCredentialReport"), 3);
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
    // Generate, Get ×3, 2 users × 3 policy calls.
    assert_eq!(stub.requests(), 1 + 3 + 6);
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "2xx")]
        ),
        8.0
    );
    assert_eq!(g(&h, "identity_posture_source_poll_requests", &[]), 10.0);
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "human"), ("status", "active")]
        ),
        1.0
    );
    assert_eq!(
        h.findings().into_iter().map(|(_, c)| c).collect::<Vec<_>>(),
        vec!["mfa.missing"]
    );

    // More throttles than attempts: rate_limited.
    for _ in 0..6 {
        stub.fault("GetCredentialReport", 400, throttling());
    }
    let e = h.poll().await.expect_err("throttled after every retry");
    assert_eq!(h.status().last_error_kind, Some("rate_limited"), "{e}");
    assert!(e.contains("iam:GetCredentialReport: Throttling"), "{e}");
    stub.clear_faults();

    // AccessDenied with AWS's body: permission, the action named.
    stub.fault("GenerateCredentialReport", 403, error_body("AccessDenied", &format!("User: arn:aws:iam::111122223333:user/exporter is not authorized to perform: iam:GenerateCredentialReport; key {KEY_ID}")));
    let e = h.poll().await.expect_err("denied");
    assert_eq!(h.status().last_error_kind, Some("permission"), "{e}");
    assert!(
        e.contains("grant the exporter's identity iam:GenerateCredentialReport"),
        "{e}"
    );
    // A 403 without a readable code (moto's shape): still a permission error.
    stub.fault(
        "GenerateCredentialReport",
        403,
        "<ErrorResponse><Errors><Error><Code>AccessDenied</Code></Error></Errors></ErrorResponse>"
            .into(),
    );
    let e2 = h.poll().await.expect_err("denied");
    assert_eq!(h.status().last_error_kind, Some("permission"), "{e2}");
    assert!(e2.contains("iam:GenerateCredentialReport"), "{e2}");

    // The budget is enforced on attempts, before they are sent.
    // One request at a time, so the refused one is the fourth (with more in flight, a
    // refusal ends the poll and drops requests that passed the meter but were not yet sent).
    let h3 = sdk_harness(&stub, "max_requests_per_poll = 3\nconcurrency = 1");
    let before = stub.requests();
    let e3 = h3.poll().await.expect_err("3 requests cannot read 2 users");
    assert_eq!(h3.status().last_error_kind, Some("budget"), "{e3}");
    assert_eq!(
        stub.requests() - before,
        3,
        "nothing sent beyond the budget: {e3}"
    );
    assert!(
        e3.contains(
            "iam:ListUserPolicies: request budget exhausted: max_requests_per_poll reached"
        ),
        "{e3}"
    );
    assert_eq!(
        g(
            &h3,
            "identity_posture_source_api_requests_total",
            &[("code", "error")]
        ),
        0.0,
        "refused attempts are not requests"
    );

    for t in [e, e2, e3, h.metrics(), h.sources_json(), logs.text()] {
        assert!(
            !t.contains(KEY_ID) && !t.contains(SECRET),
            "a credential leaked into:\n{t}"
        );
    }
}

/// Nothing listening: a transport error naming IAM, never a panic or a hang.
#[tokio::test]
async fn sdk_unreachable_endpoint_is_a_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let toml = stub_toml(&format!("http://127.0.0.1:{port}"), "");
    let h = Harness::with_source(&toml, |sc, deps| {
        let cfg = sc.settings::<AwsIamConfig>().unwrap();
        let creds = CredentialSource::Static {
            access_key_id: KEY_ID.into(),
            secret_access_key: Secret::new(SECRET),
        };
        Source::AwsIam(Box::new(AwsIamSource::new(sc, cfg, deps, creds)))
    });
    let e = h.poll().await.expect_err("connection refused");
    assert_eq!(h.status().last_error_kind, Some("transport"), "{e}");
    assert!(
        e.contains("iam:GenerateCredentialReport") && e.contains("network access"),
        "{e}"
    );
    assert!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "error")]
        ) >= 1.0
    );
}

#[test]
fn config_keys_are_validated() {
    let ok = config_from_toml("[[sources]]\nname = \"a\"\ntype = \"aws_iam\"\n").unwrap();
    let c = ok.sources[0].settings::<AwsIamConfig>().unwrap();
    assert_eq!(c.region, "us-east-1");
    assert_eq!(
        (c.endpoint_url.as_deref(), c.profile.as_deref()),
        (None, None)
    );
    let full = config_from_toml(
        "[[sources]]\nname = \"a\"\ntype = \"aws_iam\"\nregion = \"us-gov-west-1\"\nendpoint_url = \"https://iam.us-gov.amazonaws.com/\"\nprofile = \"audit\"\nadmin_policies = [\"OrgAdmin\"]\n",
    )
    .unwrap();
    let c = full.sources[0].settings::<AwsIamConfig>().unwrap();
    assert_eq!(
        c.endpoint_url.as_deref(),
        Some("https://iam.us-gov.amazonaws.com")
    );
    assert_eq!(c.admin_policies, vec!["OrgAdmin".to_string()]);
    for (keys, needle) in [
        ("endpoint_url = \"\"", "endpoint_url: must not be empty"),
        (
            "endpoint_url = \"http://iam.example.com\"",
            "must use https://",
        ),
        (
            "endpoint_url = \"ftp://127.0.0.1\"",
            "unsupported URL scheme",
        ),
        (
            "region = \"US-East-1\"",
            "region: \"US-East-1\" is not an AWS region name",
        ),
        ("profile = \" \"", "profile:"),
        (
            "admin_policies = [\"\"]",
            "admin_policies[0]: must not be empty",
        ),
        (
            "admin_policies = [\"arn:aws:iam::1:user/x\"]",
            "is not a policy ARN",
        ),
        ("access_key_id = \"AKIA\"", "access_key_id"),
    ] {
        let e = config_from_toml(&format!(
            "[[sources]]\nname = \"a\"\ntype = \"aws_iam\"\n{keys}\n"
        ))
        .unwrap_err();
        assert!(
            e.problems.iter().any(|p| p.contains(needle)),
            "{keys}: {:?}",
            e.problems
        );
    }
    // http:// is fine for a loopback test server (moto, LocalStack).
    config_from_toml(
        "[[sources]]\nname = \"a\"\ntype = \"aws_iam\"\nendpoint_url = \"http://127.0.0.1:5000\"\n",
    )
    .unwrap();
}

/// The commented example in examples/full.toml is valid once uncommented.
#[test]
fn full_toml_example_is_valid() {
    let full = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/full.toml"))
        .unwrap();
    let block = &full[full.find("# AWS IAM users of one account").unwrap()..];
    let toml: String = block
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("# #"))
        .map(|l| l.trim_start_matches("# ").to_string() + "\n")
        .collect();
    let c = config_from_toml(&toml).unwrap_or_else(|e| panic!("{:?}\n{toml}", e.problems));
    assert_eq!(c.sources[0].provider(), "aws_iam");
    let s = c.sources[0].settings::<AwsIamConfig>().unwrap();
    assert_eq!(s.region, "us-east-1");
    assert!(!s.admin_policies.is_empty());
}
