//! `generate-demo`: a realistic, seeded synthetic organisation in the file-source format:
//! departments and groups, ~10 % without MFA and ~15 % with only weak factors, dormant and
//! never-logged-in accounts, leavers still active, service accounts with old keys and app
//! secrets (expired, expiring, without expiry), five super admins, admins outside the
//! allowed group. The same seed and `now` always give the same file. With `--events` it also
//! writes a sign-in event stream over those accounts (`generate_events`): a week of ordinary
//! sign-ins, then a password spray, a brute force, an MFA fatigue attack, an impossible trip,
//! a dormant account and a leaver signing in, an administrator without MFA, and — a minute
//! after the anchor — a sign-in from a new country, so every detector has something to show.

use std::collections::BTreeMap;
use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use time::Duration;

use crate::activity::event::{
    ClientKind, EventKind, FactorKind, Outcome, Reason, SignInEvent, Stage,
};
use crate::model::*;

const DEPARTMENTS: &[(&str, &[&str])] = &[
    (
        "Engineering",
        &[
            "Software Engineer",
            "SRE",
            "Engineering Manager",
            "Staff Engineer",
        ],
    ),
    (
        "Sales",
        &["Account Executive", "Sales Manager", "Sales Engineer"],
    ),
    (
        "Marketing",
        &["Marketing Manager", "Content Strategist", "Designer"],
    ),
    (
        "Finance",
        &["Accountant", "Financial Analyst", "Controller"],
    ),
    ("People", &["HR Partner", "Recruiter"]),
    (
        "IT",
        &[
            "IT Administrator",
            "Helpdesk Technician",
            "Security Engineer",
        ],
    ),
    ("Support", &["Support Engineer", "Support Lead"]),
    ("Legal", &["Counsel", "Paralegal"]),
    ("Operations", &["Operations Manager", "Analyst"]),
    ("Product", &["Product Manager", "UX Researcher"]),
];

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yasmin", "zoe",
    "amir", "beatriz", "chen", "dmitri", "esther", "farah", "goran", "hana", "ines", "jonas",
    "kofi", "lena", "mateo", "noor", "oskar", "priya", "quinn", "rosa", "sanjay", "tomas",
];
const LAST: &[&str] = &[
    "smith",
    "jones",
    "garcia",
    "muller",
    "rossi",
    "kim",
    "nguyen",
    "okafor",
    "silva",
    "novak",
    "larsen",
    "dubois",
    "tanaka",
    "haddad",
    "kowalski",
    "schmidt",
    "cohen",
    "ivanova",
    "patel",
    "moreau",
    "costa",
    "fischer",
    "yilmaz",
    "berg",
    "santos",
    "walsh",
    "horvat",
    "lindqvist",
];
const SERVICES: &[&str] = &[
    "backup",
    "ci-deploy",
    "terraform",
    "monitoring",
    "billing-sync",
    "hr-import",
    "ldap-bridge",
    "scim-provisioner",
    "reporting",
    "data-pipeline",
    "crm-sync",
    "log-shipper",
    "vault-auth",
    "jira-bot",
    "slack-bot",
    "payroll-export",
];

/// Options for one generated organisation.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub accounts: usize,
    pub seed: u64,
    pub now: Timestamp,
}

/// Generates the organisation.
pub fn generate(opts: &DemoOptions) -> (Vec<Account>, TenantFacts) {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let now = opts.now;
    let n = opts.accounts.max(1);
    let n_service = (n * 8 / 100).max(usize::from(n >= 20));
    let n_human = n - n_service;
    let mut out = Vec::with_capacity(n);
    let mut used = BTreeMap::new();
    let ago = |d: i64, h: i64| now - Duration::days(d) - Duration::hours(h);

    // One slot is kept for the break-glass account.
    let n_regular = n_human.saturating_sub(1);
    for i in 0..n_regular {
        let (dept, titles) = DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())];
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let base = format!("{first}.{last}");
        let k = used.entry(base.clone()).or_insert(0u32);
        *k += 1;
        let login = if *k == 1 {
            format!("{base}@example.com")
        } else {
            format!("{base}{k}@example.com")
        };
        let mut a = Account::new(format!("00u{:08x}", 0x1000 + i), login);
        a.display_name = Some(format!("{} {}", cap(first), cap(last)));
        a.attributes.insert("department".into(), json!(dept));
        a.attributes.insert(
            "title".into(),
            json!(titles[rng.random_range(0..titles.len())]),
        );
        a.attributes.insert(
            "employee_number".into(),
            json!(format!("E{:05}", 10000 + i)),
        );
        let slug = dept.to_lowercase();
        a.groups = vec!["everyone".into(), slug];
        if rng.random_bool(0.3) {
            a.groups.push("vpn-users".into());
        }
        if rng.random_bool(0.06) {
            a.groups.push("contractors".into());
        }
        let age_days = rng.random_range(20..2000);
        a.created = Some(ago(age_days, rng.random_range(0..24)));

        // Status.
        let s = rng.random_range(0..100);
        a.status = match s {
            0..=87 => Status::Active,
            88..=89 => Status::Locked,
            90..=93 => Status::Suspended,
            94..=97 => Status::Deprovisioned,
            98 => Status::Staged,
            _ => Status::Disabled,
        };

        // Last login.
        let l = rng.random_range(0..100);
        a.last_login = match l {
            0..=74 => Known::At(ago(
                rng.random_range(0..30).min(age_days),
                rng.random_range(0..24),
            )),
            75..=84 => Known::At(ago(rng.random_range(30..89).min(age_days), 3)),
            85..=93 => Known::At(ago(rng.random_range(91..500).min(age_days), 5)),
            94..=97 => Known::Never,
            _ => Known::Unknown,
        };
        if a.last_login == Known::Never && rng.random_bool(0.3) {
            // A recent joiner, still within the grace period.
            a.created = Some(ago(rng.random_range(1..25), 0));
        }

        // Leavers: HR says they left; some accounts are still active.
        if rng.random_range(0..100) < 3 {
            a.terminated = Some(ago(rng.random_range(3..120), 0));
            a.attributes
                .insert("employment_status".into(), json!("terminated"));
        }

        // MFA.
        let m = rng.random_range(0..100);
        let factor = |t: FactorType| Factor {
            factor_type: t,
            status: FactorStatus::Active,
        };
        a.mfa = match m {
            0..=9 => Some(Mfa {
                factors: if rng.random_bool(0.3) {
                    vec![Factor {
                        factor_type: FactorType::Push,
                        status: FactorStatus::Pending,
                    }]
                } else {
                    vec![]
                },
                enforced: Some(false),
            }),
            10..=24 => {
                let weak = [
                    FactorType::Sms,
                    FactorType::Voice,
                    FactorType::Email,
                    FactorType::Question,
                ];
                let mut f = vec![factor(weak[rng.random_range(0..weak.len())])];
                if rng.random_bool(0.3) {
                    f.push(factor(FactorType::Email));
                }
                Some(Mfa {
                    factors: f,
                    enforced: Some(true),
                })
            }
            25..=44 => Some(Mfa {
                factors: vec![
                    factor(if rng.random_bool(0.8) {
                        FactorType::Webauthn
                    } else {
                        FactorType::SmartCard
                    }),
                    factor(FactorType::Push),
                ],
                enforced: Some(true),
            }),
            45..=98 => {
                let strong = [
                    FactorType::Push,
                    FactorType::Totp,
                    FactorType::HardwareToken,
                ];
                let mut f = vec![factor(strong[rng.random_range(0..strong.len())])];
                if rng.random_bool(0.4) {
                    f.push(factor(FactorType::Sms));
                }
                Some(Mfa {
                    factors: f,
                    enforced: Some(!rng.random_bool(0.05)),
                })
            }
            _ => None, // the provider could not say
        };

        // Credentials: the password, sometimes a personal API token.
        let mut creds = vec![Credential {
            credential_type: CredentialType::Password,
            id: "password".into(),
            last_rotated: Known::At(ago(rng.random_range(1..520), 0)),
            expires: Known::Never,
            last_used: Known::Unknown,
        }];
        if dept == "Engineering" && rng.random_bool(0.25) {
            creds.push(Credential {
                credential_type: CredentialType::Token,
                id: format!("pat-{:06x}", rng.random_range(0..0xffffff)),
                last_rotated: Known::At(ago(rng.random_range(1..300), 0)),
                expires: if rng.random_bool(0.5) {
                    Known::At(now + Duration::days(rng.random_range(-20..120)))
                } else {
                    Known::Never
                },
                last_used: Known::At(ago(rng.random_range(0..60), 0)),
            });
        }
        a.credentials = Some(creds);
        a.roles = Some(vec![]);
        out.push(a);
    }

    // Administrators: a few ordinary admins, and exactly five super admins — three in
    // it-admins, one outside it (role_not_allowed) and one break-glass account (excluded).
    let admin_roles = [
        "ORG_ADMIN",
        "APP_ADMIN",
        "HELP_DESK_ADMIN",
        "READ_ONLY_ADMIN",
        "USER_ADMIN",
        "GROUP_MEMBERSHIP_ADMIN",
    ];
    let active_idx: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].status == Status::Active && out[i].terminated.is_none())
        .collect();
    let pick = |rng: &mut ChaCha8Rng, taken: &mut Vec<usize>| -> Option<usize> {
        for _ in 0..1000 {
            let i = active_idx[rng.random_range(0..active_idx.len())];
            if !taken.contains(&i) {
                taken.push(i);
                return Some(i);
            }
        }
        None
    };
    let mut taken = Vec::new();
    if !active_idx.is_empty() {
        for k in 0..(n_human / 25).max(2) {
            let Some(i) = pick(&mut rng, &mut taken) else {
                break;
            };
            let a = &mut out[i];
            let role = admin_roles[k % admin_roles.len()];
            a.roles = Some(vec![Role {
                name: role.into(),
                last_used: Known::At(ago(rng.random_range(0..90), 0)),
            }]);
            if k % 3 == 0 {
                a.groups.push("it-admins".into());
            }
        }
        for k in 0..4 {
            let Some(i) = pick(&mut rng, &mut taken) else {
                break;
            };
            let a = &mut out[i];
            a.roles = Some(vec![Role {
                name: "SUPER_ADMIN".into(),
                last_used: Known::At(ago(rng.random_range(0..20), 0)),
            }]);
            a.last_login = Known::At(ago(rng.random_range(0..5), 0));
            a.attributes.insert("department".into(), json!("IT"));
            if k < 3 {
                a.groups.push("it-admins".into());
                a.mfa = Some(Mfa {
                    factors: vec![factor_active(FactorType::Webauthn)],
                    enforced: Some(true),
                });
            } else {
                // The fourth sits outside it-admins and has only SMS.
                a.mfa = Some(Mfa {
                    factors: vec![factor_active(FactorType::Sms)],
                    enforced: Some(true),
                });
            }
        }
        // One ordinary admin with no MFA at all.
        if let Some(i) = pick(&mut rng, &mut taken) {
            let a = &mut out[i];
            a.roles = Some(vec![Role {
                name: "APP_ADMIN".into(),
                last_used: Known::At(ago(100, 0)),
            }]);
            a.last_login = Known::At(ago(70, 0));
            a.mfa = Some(Mfa {
                factors: vec![],
                enforced: Some(false),
            });
        }
    }
    let mut bg = Account::new("00ubreakglass1", "breakglass-1@example.com");
    bg.display_name = Some("Break-glass administrator".into());
    bg.created = Some(ago(900, 0));
    bg.last_login = Known::At(ago(200, 0));
    bg.groups = vec!["it-admins".into()];
    bg.mfa = Some(Mfa {
        factors: vec![factor_active(FactorType::HardwareToken)],
        enforced: Some(true),
    });
    bg.credentials = Some(vec![Credential {
        credential_type: CredentialType::Password,
        id: "password".into(),
        last_rotated: Known::At(ago(400, 0)),
        expires: Known::Never,
        last_used: Known::Unknown,
    }]);
    bg.roles = Some(vec![Role {
        name: "SUPER_ADMIN".into(),
        last_used: Known::At(ago(200, 0)),
    }]);
    if n_human > 0 {
        out.push(bg);
    }

    // Service accounts.
    for j in 0..n_service {
        let name = SERVICES[j % SERVICES.len()];
        let suffix = if j >= SERVICES.len() {
            format!("-{}", j / SERVICES.len() + 1)
        } else {
            String::new()
        };
        let mut a = Account::new(
            format!("0oa{:08x}", 0x2000 + j),
            format!("svc-{name}{suffix}"),
        );
        a.account_type = if j % 5 == 4 {
            AccountType::Human
        } else {
            AccountType::Service
        }; // some only recognisable by name pattern
        a.display_name = Some(format!("Service: {name}{suffix}"));
        a.status = if j % 11 == 10 {
            Status::Disabled
        } else {
            Status::Active
        };
        a.created = Some(ago(rng.random_range(100..1500), 0));
        a.last_login = if j % 4 == 0 {
            Known::Never
        } else {
            Known::Unknown
        };
        a.groups = vec!["service-accounts".into()];
        a.attributes.insert(
            "owner".into(),
            json!(format!(
                "team-{}",
                ["platform", "data", "it", "finance"][j % 4]
            )),
        );
        let mut creds = vec![Credential {
            credential_type: CredentialType::AccessKey,
            id: format!("AKIA{:016X}", rng.random::<u64>()),
            last_rotated: Known::At(ago(rng.random_range(5..420), 0)),
            expires: Known::Unknown,
            last_used: Known::At(ago(rng.random_range(0..40), 0)),
        }];
        let secret_expiry = match j % 5 {
            0 => Known::At(now - Duration::days(rng.random_range(1..60))), // expired, still present
            1 => Known::At(now + Duration::days(rng.random_range(1..29))), // expiring
            2 => Known::Never,                                             // no expiry
            _ => Known::At(now + Duration::days(rng.random_range(60..700))),
        };
        creds.push(Credential {
            credential_type: CredentialType::ClientSecret,
            id: format!("secret-{:04x}", rng.random_range(0..0xffff)),
            last_rotated: Known::At(ago(rng.random_range(10..400), 0)),
            expires: secret_expiry,
            last_used: Known::Unknown,
        });
        if j % 3 == 0 {
            creds.push(Credential {
                credential_type: CredentialType::Certificate,
                id: format!("cert-{:04x}", rng.random_range(0..0xffff)),
                last_rotated: Known::At(ago(rng.random_range(30..500), 0)),
                expires: if j % 2 == 0 {
                    Known::At(now + Duration::days(rng.random_range(5..400)))
                } else {
                    Known::Never
                },
                last_used: Known::Unknown,
            });
        }
        a.credentials = Some(creds);
        a.roles = Some(if j % 6 == 1 {
            vec![Role {
                name: "APP_ADMIN".into(),
                last_used: Known::At(ago(rng.random_range(0..10), 0)),
            }]
        } else {
            vec![]
        });
        // MFA does not apply to API-only service accounts: left unknown.
        out.push(a);
    }

    let tenant = TenantFacts {
        mfa_policy_gaps: Some(vec![
            "sign-on policy \"Contractors\" rule \"Legacy VPN\" allows access with a password only"
                .into(),
        ]),
        ..TenantFacts::default()
    };
    (out, tenant)
}

/// Home locations of the demo's staff (country as Okta names it, city coordinates).
const HOMES: &[(&str, f64, f64)] = &[
    ("Netherlands", 52.37, 4.90),
    ("Germany", 52.52, 13.40),
    ("United Kingdom", 51.51, -0.13),
    ("France", 48.86, 2.35),
    ("United States", 40.71, -74.01),
];

/// A sign-in event stream over `accounts` (as [`generate`] made them with the same options).
pub fn generate_events(accounts: &[Account], opts: &DemoOptions) -> Vec<SignInEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x0005_1671_AC71_0000);
    let now = opts.now;
    let mut out: Vec<SignInEvent> = Vec::new();
    let mut n = 0u32;
    let mut next_id = || {
        n += 1;
        format!("demo-{n:06}")
    };
    let usable = |a: &Account| {
        a.account_type == AccountType::Human
            && a.status == Status::Active
            && a.terminated.is_none()
            && !a.login.starts_with("breakglass")
            && !a.is_privileged()
            && a.mfa
                .as_ref()
                .is_some_and(|m| m.active_factors().any(|f| f == FactorType::Push))
            && a.last_login
                .value()
                .is_some_and(|t| now - *t < Duration::days(30))
    };
    let staff: Vec<&Account> = accounts.iter().filter(|a| usable(a)).collect();
    let home = |a: &Account| {
        let h =
            a.id.bytes()
                .fold(0usize, |x, b| x.wrapping_mul(31) + b as usize);
        HOMES[h % HOMES.len()]
    };
    let sign_in = |id: String,
                   at: Timestamp,
                   a: &Account,
                   r: Outcome,
                   stage: Stage,
                   ip: &str,
                   place: (&str, f64, f64)| {
        let mut e = SignInEvent::new(id, at, r);
        e.account_id = Some(a.id.clone());
        e.login = Some(a.login.clone());
        e.stage = stage;
        e.ip = Some(ip.to_string());
        e.country = Some(place.0.to_string());
        e.lat = Some(place.1);
        e.lon = Some(place.2);
        e.client = ClientKind::Browser;
        e
    };

    // A week of ordinary sign-ins from home: push MFA, the odd mistyped password, a few
    // mail clients on IMAP (legacy authentication).
    for (i, a) in staff.iter().enumerate() {
        let place = home(a);
        let ip = format!("192.0.2.{}", 1 + i % 250);
        for _ in 0..rng.random_range(1..4) {
            let at = now - Duration::minutes(rng.random_range(120..7 * 24 * 60));
            if rng.random_bool(0.08) {
                let mut f = sign_in(
                    next_id(),
                    at,
                    a,
                    Outcome::Failure,
                    Stage::Complete,
                    &ip,
                    place,
                );
                f.factor = FactorKind::Password;
                f.reason = Reason::InvalidCredentials;
                f.detail = Some("Invalid username or password".into());
                out.push(f);
            }
            let mut ok = sign_in(
                next_id(),
                at + Duration::minutes(1),
                a,
                Outcome::Success,
                Stage::Complete,
                &ip,
                place,
            );
            ok.factor = FactorKind::Push;
            ok.mfa = Some(true);
            if rng.random_bool(0.3) {
                ok.client = ClientKind::Mobile;
            }
            out.push(ok);
        }
        if i % 40 == 7 {
            let at = now - Duration::minutes(rng.random_range(120..3 * 24 * 60));
            let mut imap = sign_in(
                next_id(),
                at,
                a,
                Outcome::Success,
                Stage::Complete,
                &ip,
                place,
            );
            imap.client = ClientKind::Legacy;
            imap.factor = FactorKind::Password;
            imap.mfa = Some(false);
            imap.detail = Some("IMAP4".into());
            out.push(imap);
        }
    }
    if staff.len() < 20 {
        return finish(out);
    }

    // Password spray: one address, fourteen accounts, in 15 minutes.
    let spray = ("Romania", 44.43, 26.10);
    for (k, a) in staff.iter().skip(1).step_by(7).take(14).enumerate() {
        let at = now - Duration::minutes(40) + Duration::seconds(64 * k as i64);
        let mut e = sign_in(
            next_id(),
            at,
            a,
            Outcome::Failure,
            Stage::Primary,
            "203.0.113.66",
            spray,
        );
        e.factor = FactorKind::Password;
        e.reason = Reason::InvalidCredentials;
        e.detail = Some("INVALID_CREDENTIALS".into());
        e.client = ClientKind::Other;
        out.push(e);
    }
    // Brute force on one account: twelve failures in ten minutes, no success. The attacks end
    // shortly before the anchor, so their detections are still active when the demo starts.
    let brute = staff[2];
    for k in 0..12 {
        let at = now - Duration::minutes(12) + Duration::seconds(50 * k);
        let mut e = sign_in(
            next_id(),
            at,
            brute,
            Outcome::Failure,
            Stage::Primary,
            "198.51.100.23",
            spray,
        );
        e.factor = FactorKind::Password;
        e.reason = Reason::InvalidCredentials;
        out.push(e);
    }
    // MFA fatigue: the attacker has the password; four pushes denied or ignored, then the
    // victim gives in.
    let victim = staff[3];
    let session = "102demoFatigueSession";
    let fat_at = now - Duration::minutes(10);
    for k in 0..5i64 {
        let at = fat_at + Duration::minutes(2 * k);
        let mut p = sign_in(
            next_id(),
            at,
            victim,
            Outcome::Success,
            Stage::Primary,
            "198.51.100.77",
            spray,
        );
        p.factor = FactorKind::Password;
        p.session = Some(session.into());
        out.push(p);
        let mut push = sign_in(
            next_id(),
            at + Duration::seconds(5),
            victim,
            Outcome::Success,
            Stage::Mfa,
            "198.51.100.77",
            spray,
        );
        push.kind = EventKind::MfaChallenge;
        push.factor = FactorKind::Push;
        push.session = Some(session.into());
        out.push(push);
        let (r, reason) = match k {
            4 => (Outcome::Success, Reason::None),
            2 => (Outcome::MfaTimeout, Reason::MfaTimeout),
            _ => (Outcome::MfaDenied, Reason::MfaDenied),
        };
        let mut answer = sign_in(
            next_id(),
            at + Duration::seconds(40),
            victim,
            r,
            Stage::Mfa,
            "198.51.100.77",
            spray,
        );
        answer.factor = FactorKind::Push;
        answer.reason = reason;
        answer.session = Some(session.into());
        out.push(answer);
    }
    // Impossible trip: Amsterdam, then Sydney half an hour later.
    let traveller = staff[4];
    let mut a1 = sign_in(
        next_id(),
        now - Duration::minutes(50),
        traveller,
        Outcome::Success,
        Stage::Complete,
        "192.0.2.201",
        ("Netherlands", 52.37, 4.90),
    );
    a1.factor = FactorKind::Push;
    a1.mfa = Some(true);
    out.push(a1);
    let mut a2 = sign_in(
        next_id(),
        now - Duration::minutes(20),
        traveller,
        Outcome::Success,
        Stage::Complete,
        "203.0.113.140",
        ("Australia", -33.87, 151.21),
    );
    a2.factor = FactorKind::Push;
    a2.mfa = Some(true);
    out.push(a2);
    // A dormant account (last sign-in months ago) and a leaver still able to sign in.
    let dormant = accounts.iter().find(|a| {
        a.account_type == AccountType::Human
            && a.status == Status::Active
            && a.terminated.is_none()
            && !a.is_privileged()
            && a.last_login
                .value()
                .is_some_and(|t| now - *t > Duration::days(120))
    });
    let leaver = accounts.iter().find(|a| {
        a.status == Status::Active && a.terminated.is_some_and(|t| t < now) && !a.is_privileged()
    });
    for (a, m) in [(dormant, 15), (leaver, 10)] {
        if let Some(a) = a {
            let place = home(a);
            let mut e = sign_in(
                next_id(),
                now - Duration::minutes(m),
                a,
                Outcome::Success,
                Stage::Complete,
                "192.0.2.250",
                place,
            );
            e.factor = FactorKind::Password;
            e.mfa = Some(false);
            out.push(e);
        }
    }
    // An administrator without MFA signs in with a password only.
    if let Some(admin) = accounts.iter().find(|a| {
        a.is_privileged()
            && a.status == Status::Active
            && a.mfa
                .as_ref()
                .is_some_and(|m| m.active_factors().next().is_none())
    }) {
        let mut e = sign_in(
            next_id(),
            now - Duration::minutes(5),
            admin,
            Outcome::Success,
            Stage::Complete,
            "192.0.2.251",
            home(admin),
        );
        e.factor = FactorKind::Password;
        e.mfa = Some(false);
        out.push(e);
    }
    // A minute after the anchor: a sign-in from a country this account never used.
    let roamer = staff[5];
    let mut e = sign_in(
        next_id(),
        now + Duration::seconds(30),
        roamer,
        Outcome::Success,
        Stage::Complete,
        "203.0.113.180",
        ("Brazil", -23.55, -46.63),
    );
    e.factor = FactorKind::Push;
    e.mfa = Some(true);
    out.push(e);
    // The roamer's baseline: a sign-in from home inside the week.
    let mut b = sign_in(
        next_id(),
        now - Duration::hours(30),
        roamer,
        Outcome::Success,
        Stage::Complete,
        "192.0.2.202",
        home(roamer),
    );
    b.factor = FactorKind::Push;
    b.mfa = Some(true);
    out.push(b);
    finish(out)
}

fn finish(mut out: Vec<SignInEvent>) -> Vec<SignInEvent> {
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    out
}

/// Writes events as NDJSON (one event per line), the file source's `events_path` format.
pub fn write_events(events: &[SignInEvent], w: &mut dyn Write) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut *w, e)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn factor_active(t: FactorType) -> Factor {
    Factor {
        factor_type: t,
        status: FactorStatus::Active,
    }
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Writes the organisation as the JSON object form (one account per line inside the array)
/// or as NDJSON (accounts only; tenant facts need the object form).
pub fn write(
    accounts: &[Account],
    tenant: &TenantFacts,
    ndjson: bool,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    if ndjson {
        for a in accounts {
            serde_json::to_writer(&mut *w, a)?;
            w.write_all(b"\n")?;
        }
        return Ok(());
    }
    w.write_all(b"{\"accounts\": [\n")?;
    for (i, a) in accounts.iter().enumerate() {
        serde_json::to_writer(&mut *w, a)?;
        w.write_all(if i + 1 < accounts.len() {
            b",\n"
        } else {
            b"\n"
        })?;
    }
    w.write_all(b"],\n\"tenant\": ")?;
    serde_json::to_writer(&mut *w, tenant)?;
    w.write_all(b"}\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::CheckId;
    use crate::report::ReportBuilder;
    use crate::sources::config_from_toml as from_toml_str;
    use crate::sources::PollOutput;
    use time::macros::datetime;

    #[test]
    fn demo_is_deterministic_and_has_every_problem() {
        let opts = DemoOptions {
            accounts: 500,
            seed: 1,
            now: datetime!(2026-11-28 00:00 UTC),
        };
        let (a, t) = generate(&opts);
        assert_eq!(a.len(), 500);
        assert_eq!(generate(&opts).0, a);
        let cfg = from_toml_str(
            include_str!("../examples/demo.toml")
                .replace("examples/", "")
                .as_str(),
        )
        .unwrap();
        let mut b = ReportBuilder::new(cfg.sources[0].policy.clone(), opts.now, false);
        for x in a {
            b.add(x);
        }
        let r = b.finish(PollOutput {
            tenant: t,
            ..Default::default()
        });
        let f = |c: CheckId| r.tally.findings[c as usize];
        for c in CheckId::ALL {
            if c == CheckId::TenantTooFewSuperAdmins {
                assert_eq!(f(c), 0);
            } else {
                assert!(f(c) > 0, "the demo shows no {}", c.as_str());
            }
        }
        assert_eq!(r.tally.super_admins, 5);
        let active = (r.tally.active[0]) as f64;
        let none = r.tally.without_mfa[0].iter().sum::<u64>() as f64;
        let weak = r.tally.weak_mfa[0].iter().sum::<u64>() as f64;
        assert!((0.06..0.15).contains(&(none / active)), "{}", none / active);
        assert!((0.10..0.20).contains(&(weak / active)), "{}", weak / active);
    }

    #[test]
    fn demo_events_show_every_detector() {
        use crate::activity::detect::Kind;
        use crate::activity::engine::Engine;
        use crate::activity::event::EventBatch;
        use crate::activity::facts::{AccountFacts, Facts};
        use crate::activity::policy::ActivityPolicy;
        use crate::model::Severity;
        let opts = DemoOptions {
            accounts: 500,
            seed: 1,
            now: datetime!(2026-11-28 00:00 UTC),
        };
        let (a, _) = generate(&opts);
        let events = generate_events(&a, &opts);
        assert_eq!(generate_events(&a, &opts), events, "deterministic");
        // The committed stream is this one.
        let mut w = Vec::new();
        write_events(&events, &mut w).unwrap();
        assert_eq!(
            String::from_utf8(w).unwrap(),
            include_str!("../examples/demo-events.ndjson"),
            "regenerate examples/demo-events.ndjson (see examples/demo.toml)"
        );
        let mut facts = Facts::default();
        for x in &a {
            facts.add(AccountFacts::of(x));
        }
        let p = ActivityPolicy::default();
        let lookback = std::time::Duration::from_secs(7 * 24 * 3600);
        let (before, after): (Vec<_>, Vec<_>) =
            events.into_iter().partition(|e| e.time <= opts.now);
        let mut engine = Engine::new();
        let batch = |events| EventBatch {
            events,
            ..EventBatch::default()
        };
        engine.ingest(batch(before), &facts, &p, 90, lookback, opts.now);
        let mut first: Vec<(Kind, Severity)> = engine
            .detector
            .detections()
            .iter()
            .map(|d| (d.kind, d.severity))
            .collect();
        first.sort();
        // Every attack is still inside its window at the anchor (the demo shows them at once).
        assert_eq!(engine.active(opts.now, &p).count(), first.len());
        let mut want = vec![
            (Kind::BruteForce, Severity::Medium),
            (Kind::PasswordSpray, Severity::High),
            (Kind::ImpossibleTravel, Severity::High),
            (Kind::MfaFatigue, Severity::Critical),
            (Kind::InactiveAccountSignin, Severity::High),
            (Kind::InactiveAccountSignin, Severity::High),
            (Kind::PrivilegedSigninWithoutMfa, Severity::Critical),
        ];
        want.sort();
        assert_eq!(first, want);
        engine.ingest(
            batch(after),
            &facts,
            &p,
            90,
            lookback,
            opts.now + Duration::minutes(1),
        );
        let last = engine.detector.detections().back().unwrap();
        assert_eq!(
            (last.kind, last.severity),
            (Kind::NewCountry, Severity::Low)
        );
        assert_eq!(last.country.as_deref(), Some("Brazil"));
        assert!(engine.health.legacy.iter().sum::<u64>() > 0);
        assert_eq!(engine.health.inactive, [1, 1]);
    }
}
