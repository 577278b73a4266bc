//! `generate-demo`: a realistic, seeded synthetic organisation in the file-source format:
//! departments and groups, ~10 % without MFA and ~15 % with only weak factors, dormant and
//! never-logged-in accounts, leavers still active, service accounts with old keys and app
//! secrets (expired, expiring, without expiry), five super admins, admins outside the
//! allowed group. The same seed and `now` always give the same file.

use std::collections::BTreeMap;
use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use time::Duration;

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
}
