//! The `aws_iam` source against moto's server (a third-party implementation of the IAM query
//! API, from PyPI): the seeded, backdated account of tests/data/aws/seed.py read by the real
//! SDK client — in process, and through the binary's `collect` with the default credential
//! chain (environment, shared profile) — and an authorization-enforcing moto for refusals.
//! Skipped, saying why, only when moto is not installed (`.ci/run` installs it).

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;

use identity_posture_exporter::config::Secret;
use identity_posture_exporter::model::FactorType;
use identity_posture_exporter::sources::aws_iam::{
    AwsIamConfig, AwsIamSource, CredentialSource, DORMANT_KEYS, MFA_UNREAD, ROOT_MFA,
};
use identity_posture_exporter::sources::Source;
use support::harness::{Harness, Logs};
use support::moto::{self, Moto};

/// One seeded moto per test binary (starting it with managed policies takes seconds).
fn seeded() -> Result<&'static Moto, String> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    MOTO.get_or_init(moto::serve_seeded)
        .as_ref()
        .map_err(Clone::clone)
}

fn harness(url: &str, key: &str, secret: &str, extra: &str) -> Harness {
    let toml = format!(
        "[[sources]]\nname = \"aws-moto\"\ntype = \"aws_iam\"\nendpoint_url = \"{url}\"\ntimeout = \"120s\"\n{extra}"
    );
    let (key, secret) = (key.to_string(), secret.to_string());
    Harness::with_source(&toml, move |sc, deps| {
        let cfg = sc.settings::<AwsIamConfig>().unwrap();
        let creds = CredentialSource::Static {
            access_key_id: key,
            secret_access_key: Secret::new(secret),
        };
        Source::AwsIam(Box::new(AwsIamSource::new(sc, cfg, deps, creds)))
    })
    // The seed dates everything relative to the real clock.
    .at(time::OffsetDateTime::now_utc())
}

fn g(h: &Harness, name: &str, labels: &[(&str, &str)]) -> f64 {
    h.gauge(name, labels)
        .unwrap_or_else(|| panic!("no series {name}{labels:?}"))
}

/// The verdicts worked out by hand from the seed's ages (days ago; policy defaults: dormant
/// 90, grace 30, password 365, access key 90, certificate 365, unused privilege 45). They
/// are the same as on the in-memory fake (tests/aws_iam.rs), which is the point: the fake
/// behaves like moto where it matters.
#[tokio::test]
async fn seeded_account_verdicts() {
    let m = match seeded() {
        Ok(m) => m,
        Err(why) => return moto::skip("seeded_account_verdicts", &why),
    };
    // Password age judged at 365 days (off by default), as the fake-IAM test does.
    let h = harness(
        &m.url,
        "testing",
        "testing",
        "concurrency = 2\npolicy = { password_max_age_days = 365 }",
    );
    h.poll().await.unwrap();

    let r = h.report();
    let by_login = |login: &str| -> BTreeSet<&'static str> {
        let a = r
            .accounts
            .iter()
            .find(|a| a.login == login)
            .unwrap_or_else(|| panic!("{login} missing"));
        h.findings()
            .into_iter()
            .filter(|(id, _)| *id == a.id)
            .map(|(_, c)| c)
            .collect()
    };
    let expect: &[(&str, &[&str])] = &[
        ("<root_account>", &[]),
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
        ("carol", &["privilege.unused"]),
        ("dave", &["dormant.never_logged_in"]),
        ("erin", &["mfa.missing", "privilege.no_mfa"]),
        ("frank", &["credential.unrotated", "mfa.missing"]),
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
        ("gina", &[]),
    ];
    for (login, checks) in expect {
        let want: BTreeSet<&str> = checks.iter().copied().collect();
        assert_eq!(by_login(login), want, "{login}");
    }
    let factors = |login: &str| -> Vec<FactorType> {
        r.accounts
            .iter()
            .find(|a| a.login == login)
            .unwrap()
            .mfa
            .as_ref()
            .unwrap()
            .active_factors()
            .collect()
    };
    assert_eq!(factors("alice"), vec![FactorType::Totp]);
    assert_eq!(factors("carol"), vec![FactorType::HardwareToken]);
    assert_eq!(factors("dave"), vec![FactorType::Webauthn]);
    assert_eq!(factors("<root_account>"), vec![FactorType::Totp]);

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
    assert_eq!(
        g(&h, "identity_posture_super_admins", &[]),
        3.0,
        "root, alice (via admins), bob"
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
    assert_eq!(g(&h, DORMANT_KEYS.name, &[("account_type", "human")]), 1.0);
    assert_eq!(
        g(&h, DORMANT_KEYS.name, &[("account_type", "service")]),
        1.0
    );
    assert_eq!(g(&h, ROOT_MFA.name, &[("device", "virtual")]), 1.0);
    assert_eq!(g(&h, MFA_UNREAD.name, &[]), 0.0);
    // As on the fake (49 requests), plus one request for each time moto's
    // GenerateCredentialReport answers STARTED (its report not built yet: none when moto
    // was quick, more when it is slow on a loaded machine); every request answered 2xx.
    let requests = g(&h, "identity_posture_source_poll_requests", &[]);
    assert!((49.0..=55.0).contains(&requests), "{requests} requests");
    assert_eq!(
        g(
            &h,
            "identity_posture_source_api_requests_total",
            &[("code", "2xx")]
        ),
        requests
    );
    assert_eq!(g(&h, "identity_posture_source_up", &[]), 1.0);

    // A second poll reads customer-managed documents from the cache.
    h.poll().await.unwrap();
    assert_eq!(
        g(&h, "identity_posture_source_poll_requests", &[]),
        47.0,
        "no STARTED, 2 versions cached"
    );
}

/// The binary's `collect` with the default credential chain: a shared-credentials profile
/// (`profile = "moto"`), then plain `AWS_*` environment variables.
#[test]
fn collect_with_the_default_credential_chain() {
    let m = match seeded() {
        Ok(m) => m,
        Err(why) => return moto::skip("collect_with_the_default_credential_chain", &why),
    };
    let dir = tempfile::tempdir().unwrap();
    let profile_secret = "moto-profile-secret-0123456789abcdefABCDEF";
    std::fs::write(
        dir.path().join("credentials"),
        format!("[moto]\naws_access_key_id = AKIAMOTOPROFILE00001\naws_secret_access_key = {profile_secret}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config"),
        "[profile moto]\nregion = us-east-1\n",
    )
    .unwrap();
    let config = |extra: &str| {
        let p = dir.path().join(format!("ipe{}.toml", extra.len()));
        std::fs::write(
            &p,
            format!("[[sources]]\nname = \"aws-moto\"\ntype = \"aws_iam\"\nendpoint_url = \"{}\"\n{extra}", m.url),
        )
        .unwrap();
        p
    };
    let run = |cfg: &std::path::Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"));
        cmd.args(["collect", "--config"])
            .arg(cfg)
            .args(["--format", "prometheus"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") || k.starts_with("IPE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", dir.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("credentials"),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let line = |text: &str, series: &str| -> bool { text.lines().any(|l| l.starts_with(series)) };

    let (code, out, err) = run(&config("profile = \"moto\"\n"), &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        line(
            &out,
            "identity_posture_source_up{provider=\"aws_iam\",source=\"aws-moto\"} 1"
        ),
        "{out}"
    );
    assert!(line(&out, "identity_posture_accounts{account_type=\"human\",provider=\"aws_iam\",source=\"aws-moto\",status=\"active\"} 7"), "{out}");
    assert!(
        line(
            &out,
            "identity_posture_super_admins{provider=\"aws_iam\",source=\"aws-moto\"} 3"
        ),
        "{out}"
    );
    assert!(!err.contains(profile_secret) && !out.contains(profile_secret));

    let env_secret = "moto-env-secret-0123456789abcdefABCDEF";
    let (code, out, err) = run(
        &config(""),
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAMOTOENVIRONMENT1"),
            ("AWS_SECRET_ACCESS_KEY", env_secret),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(line(&out, "identity_posture_findings{check=\"mfa.missing\",provider=\"aws_iam\",severity=\"high\",source=\"aws-moto\"} 3"), "{out}");
    assert!(!err.contains(env_secret) && !out.contains(env_secret));

    // No credentials anywhere: collect fails (exit 1) with the chain to check, no hang on
    // instance metadata.
    let (code, _, err) = run(&config(""), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("credential chain"), "{err}");
}

/// moto enforcing IAM authorization (`INITIAL_NO_AUTH_ACTION_COUNT`: the seeding requests
/// pass, every later one is checked against the caller's policies). An auditor allowed the
/// report and policy reads but not `iam:ListMFADevices` polls fine with MFA kinds unknown; a
/// user with no policy is refused the report, and the error names the action to grant.
#[tokio::test]
async fn refusals_on_an_authorizing_moto() {
    let venv = match moto::venv() {
        Ok(v) => v,
        Err(why) => return moto::skip("refusals_on_an_authorizing_moto", &why),
    };
    // Exactly the nine requests of the seeding script below go through unauthenticated.
    let m = match moto::moto_server(&[("INITIAL_NO_AUTH_ACTION_COUNT", "9")]) {
        Ok(m) => m,
        Err(why) => return moto::skip("refusals_on_an_authorizing_moto", &why),
    };
    let seed = r#"
import boto3, json, sys
from botocore.config import Config
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id="testing", aws_secret_access_key="testing",
    config=Config(retries={"mode": "standard", "max_attempts": 1}))
reads = ["iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:ListAttachedUserPolicies",
    "iam:ListUserPolicies", "iam:GetUserPolicy", "iam:ListGroupsForUser", "iam:ListAttachedGroupPolicies",
    "iam:ListGroupPolicies", "iam:GetGroupPolicy", "iam:GetPolicy", "iam:GetPolicyVersion"]
iam.create_user(UserName="auditor")
auditor = iam.create_access_key(UserName="auditor")["AccessKey"]
iam.put_user_policy(UserName="auditor", PolicyName="audit", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": reads, "Resource": "*"}]}))
iam.create_user(UserName="mfa-user")
iam.create_login_profile(UserName="mfa-user", Password="Pa55word!-mfa-user")
dev = iam.create_virtual_mfa_device(VirtualMFADeviceName="mfa-user-phone")["VirtualMFADevice"]
iam.enable_mfa_device(UserName="mfa-user", SerialNumber=dev["SerialNumber"],
    AuthenticationCode1="123456", AuthenticationCode2="654321")
iam.create_user(UserName="nobody")
nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
print(json.dumps({k: [v["AccessKeyId"], v["SecretAccessKey"]] for k, v in (("auditor", auditor), ("nobody", nobody))}))
"#;
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", seed, &m.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = |who: &str, i: usize| keys[who][i].as_str().unwrap().to_string();

    let (logs, _guard) = Logs::capture();
    let h = harness(&m.url, &key("auditor", 0), &key("auditor", 1), "");
    h.poll().await.expect("MFA device kinds are optional");
    assert_eq!(g(&h, MFA_UNREAD.name, &[]), 1.0);
    let r = h.report();
    let mfa_user = r.accounts.iter().find(|a| a.login == "mfa-user").unwrap();
    assert_eq!(
        mfa_user
            .mfa
            .as_ref()
            .unwrap()
            .active_factors()
            .collect::<Vec<_>>(),
        vec![FactorType::Other]
    );
    assert_eq!(
        g(
            &h,
            "identity_posture_accounts",
            &[("account_type", "service"), ("status", "active")]
        ),
        2.0
    );
    assert!(
        logs.text().contains("iam:ListMFADevices"),
        "the refusal is logged"
    );

    let h = harness(&m.url, &key("nobody", 0), &key("nobody", 1), "");
    let e = h.poll().await.expect_err("nobody may not read the report");
    assert_eq!(h.status().last_error_kind, Some("permission"), "{e}");
    assert!(
        e.contains("grant the exporter's identity iam:GenerateCredentialReport"),
        "{e}"
    );

    // A wrong secret: moto answers 403 without a code the SDK can read; the hint says to
    // check the credentials too.
    let h = harness(
        &m.url,
        &key("auditor", 0),
        "wrong-secret-0123456789abcdefABCDEFGH",
        "",
    );
    let e2 = h.poll().await.expect_err("a bad signature is refused");
    assert!(
        matches!(h.status().last_error_kind, Some("permission" | "auth")),
        "{e2}"
    );
    assert!(e2.contains("credential"), "{e2}");

    for t in [e, e2, logs.text(), h.metrics()] {
        for s in [
            key("auditor", 0),
            key("auditor", 1),
            key("nobody", 0),
            key("nobody", 1),
        ] {
            assert!(!t.contains(&s), "a credential leaked into:\n{t}");
        }
    }
}
