//! Pure mapping from credential report rows (plus what the per-user calls found: admin
//! policies, groups, MFA devices) into the normalised model. The tables in docs/aws-iam.md
//! describe the same mapping; the tests below check it row form by row form.

use super::report::{Cell, KeyColumns, ReportRow};
use crate::model::{
    Account, AccountType, Credential, CredentialType, Factor, FactorStatus, FactorType, Known,
    Mfa, Role, Status, Timestamp,
};

/// The role name the root user holds (it counts as a super admin by default).
pub const ROOT_ROLE: &str = "root";

/// What the per-user calls found about one IAM user. `None` fields were not read (refused,
/// over budget) and stay unknown.
#[derive(Debug, Clone, Default)]
pub struct UserFacts {
    /// Names of the admin policies the user holds, directly or through groups.
    pub admin_policies: Option<Vec<String>>,
    pub groups: Vec<String>,
    /// Serial numbers of the user's MFA devices.
    pub mfa_devices: Option<Vec<String>>,
}

/// What is known about the root user's MFA device: `Some(true)` when `ListVirtualMFADevices`
/// lists a virtual device assigned to root, `Some(false)` when the list was read and has
/// none (so root's MFA is a hardware TOTP token or a FIDO key, which IAM does not tell
/// apart for root), `None` when the list could not be read.
pub type RootVirtualMfa = Option<bool>;

/// The factor an MFA device serial number stands for. Virtual devices are ARNs
/// `arn:aws:iam::ACCOUNT:mfa/NAME`, FIDO security keys `…:u2f/…`, SMS (legacy) `…:sms-mfa/…`;
/// a hardware TOTP token is a bare serial number (`GAHT…`).
pub fn factor_for_serial(serial: &str) -> FactorType {
    let s = serial.trim();
    if !s.starts_with("arn:") {
        return if s.is_empty() {
            FactorType::Other
        } else {
            FactorType::HardwareToken
        };
    }
    let resource = s.splitn(6, ':').nth(5).unwrap_or("");
    match resource.split('/').next().unwrap_or("") {
        "mfa" => FactorType::Totp,
        "u2f" => FactorType::Webauthn,
        "sms-mfa" => FactorType::Sms,
        _ => FactorType::Other,
    }
}

fn active(t: FactorType) -> Factor {
    Factor {
        factor_type: t,
        status: FactorStatus::Active,
    }
}

/// A date cell as "last used": a date, or never (`N/A`, `no_information`), else unknown.
fn used(c: Cell) -> Known<Timestamp> {
    match c {
        Cell::At(t) => Known::At(t),
        Cell::NotApplicable | Cell::NoInformation => Known::Never,
        Cell::NotSupported | Cell::Unknown => Known::Unknown,
    }
}

/// Active access keys that are dormant: last used longer than `days` ago, or never used and
/// created longer than `days` ago. Their numbers (1, 2).
pub fn dormant_keys(row: &ReportRow, now: Timestamp, days: u32) -> Vec<usize> {
    let limit = time::Duration::days(i64::from(days));
    row.active_keys()
        .filter(|(_, k)| match (k.last_used, k.last_rotated) {
            (Cell::At(u), _) => now - u > limit,
            (Cell::NotApplicable | Cell::NoInformation, Cell::At(c)) => now - c > limit,
            _ => false,
        })
        .map(|(n, _)| n)
        .collect()
}

/// When a user without a password last authenticated: access keys are its only way in, so
/// the newest use of any of its keys (an inactive key's past use is a past sign-in too);
/// never when it has active keys and none was ever used; unknown otherwise.
fn last_key_use(keys: &[KeyColumns; 2]) -> Known<Timestamp> {
    if let Some(t) = keys.iter().filter_map(|k| k.last_used.date()).max() {
        return Known::At(t);
    }
    let actives: Vec<&KeyColumns> = keys.iter().filter(|k| k.active == Some(true)).collect();
    if !actives.is_empty()
        && actives
            .iter()
            .all(|k| matches!(k.last_used, Cell::NotApplicable | Cell::NoInformation))
    {
        Known::Never
    } else {
        Known::Unknown
    }
}

fn credentials(row: &ReportRow, with_password: bool) -> Vec<Credential> {
    let mut out = Vec::new();
    if with_password {
        out.push(Credential {
            credential_type: CredentialType::Password,
            id: "password".into(),
            last_rotated: row
                .password_last_changed
                .date()
                .map_or(Known::Unknown, Known::At),
            expires: match row.password_next_rotation {
                Cell::At(t) => Known::At(t),
                // No password expiry policy on the account.
                Cell::NotApplicable => Known::Never,
                _ => Known::Unknown,
            },
            last_used: used(row.password_last_used),
        });
    }
    for (n, k) in row.active_keys() {
        out.push(Credential {
            credential_type: CredentialType::AccessKey,
            id: format!("access_key_{n}"),
            last_rotated: k.last_rotated.date().map_or(Known::Unknown, Known::At),
            // IAM access keys do not expire.
            expires: Known::Never,
            last_used: used(k.last_used),
        });
    }
    for (n, c) in row.active_certs() {
        out.push(Credential {
            credential_type: CredentialType::Certificate,
            id: format!("certificate_{n}"),
            last_rotated: c.last_rotated.date().map_or(Known::Unknown, Known::At),
            // The X.509 validity is not in the report: unknown, never "no expiry".
            expires: Known::Unknown,
            last_used: Known::Unknown,
        });
    }
    out
}

/// Maps the `<root_account>` row. Root is always sign-in capable (its password can be reset
/// by e-mail) and always privileged. Its last use is kept in `attributes`, not in
/// `last_login`: the dormancy and unused-privilege checks would flag a root user that is
/// *not* used, which is what CIS asks for (see docs/aws-iam.md).
pub fn map_root(row: &ReportRow, virtual_mfa: RootVirtualMfa) -> Account {
    let account_id = row.arn.split(':').nth(4).unwrap_or("").to_string();
    let mut a = Account::new(row.arn.clone(), row.user.clone());
    a.display_name = Some(format!("root user of AWS account {account_id}"));
    a.account_type = AccountType::Human;
    a.status = Status::Active;
    a.created = row.user_creation_time.date();
    a.last_login = Known::Unknown;
    a.mfa = row.mfa_active.map(|on| Mfa {
        factors: if on {
            vec![active(match virtual_mfa {
                Some(true) => FactorType::Totp,
                _ => FactorType::Other,
            })]
        } else {
            vec![]
        },
        enforced: None,
    });
    // Root's password columns are `not_supported`: no password credential is claimed.
    a.credentials = Some(credentials(row, false));
    a.roles = Some(vec![Role {
        name: ROOT_ROLE.into(),
        last_used: Known::Unknown,
    }]);
    a.attributes.insert("arn".into(), row.arn.clone().into());
    a.attributes.insert(
        "root_password_last_used".into(),
        match row.password_last_used {
            Cell::At(t) => crate::model::format_ts(t).into(),
            Cell::NotApplicable | Cell::NoInformation => "never".into(),
            _ => serde_json::Value::Null,
        },
    );
    a
}

/// Maps an IAM user's row with what the per-user calls found.
pub fn map_user(row: &ReportRow, facts: &UserFacts, now: Timestamp, dormant_after_days: u32) -> Account {
    let mut a = Account::new(row.arn.clone(), row.user.clone());
    let password = row.password_enabled;
    let console = password == Some(true);
    a.account_type = if console {
        AccountType::Human
    } else {
        AccountType::Service
    };
    // Sign-in capable: a console password, an active access key or an active signing
    // certificate. A user with none of them cannot authenticate at all.
    let capable = password != Some(false)
        || row.active_keys().next().is_some()
        || row.active_certs().next().is_some();
    a.status = if capable {
        Status::Active
    } else {
        Status::Disabled
    };
    a.created = row.user_creation_time.date();
    a.last_login = if console {
        // A console user's sign-in is its password use; `no_information` and `N/A` mean it
        // never signed in (moto writes `not_supported` where AWS writes `N/A`).
        match row.password_last_used {
            Cell::At(t) => Known::At(t),
            Cell::NoInformation | Cell::NotApplicable | Cell::NotSupported => Known::Never,
            Cell::Unknown => Known::Unknown,
        }
    } else if password == Some(false) {
        last_key_use(&row.keys)
    } else {
        Known::Unknown
    };
    a.mfa = match (row.mfa_active, console) {
        (Some(true), _) => Some(Mfa {
            factors: match facts.mfa_devices.as_deref() {
                Some(serials) if !serials.is_empty() => {
                    let mut types: Vec<FactorType> =
                        serials.iter().map(|s| factor_for_serial(s)).collect();
                    types.sort();
                    types.dedup();
                    types.into_iter().map(active).collect()
                }
                // Devices not read (or listed empty while the report says MFA is on): some
                // MFA, of an unknown kind.
                _ => vec![active(FactorType::Other)],
            },
            enforced: None,
        }),
        // CIS asks MFA of console users; for a user without a password MFA does not apply.
        (Some(false), true) => Some(Mfa::default()),
        _ => None,
    };
    a.credentials = Some(credentials(row, console));
    a.roles = facts.admin_policies.as_ref().map(|names| {
        names
            .iter()
            .map(|n| Role {
                name: n.clone(),
                last_used: Known::Unknown,
            })
            .collect()
    });
    a.groups = facts.groups.clone();
    a.attributes.insert("arn".into(), row.arn.clone().into());
    let dormant = dormant_keys(row, now, dormant_after_days);
    if !dormant.is_empty() {
        a.attributes.insert(
            "dormant_access_keys".into(),
            dormant
                .iter()
                .map(|n| serde_json::Value::from(format!("access_key_{n}")))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::aws_iam::report::parse;
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-11-28 12:00 UTC);
    const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    fn row(line: &str) -> ReportRow {
        parse(format!("{HEADER}\n{line}\n").as_bytes()).unwrap().remove(0)
    }

    fn types(a: &Account) -> Vec<FactorType> {
        a.mfa.as_ref().unwrap().active_factors().collect()
    }

    #[test]
    fn serials_tell_the_device_kind() {
        assert_eq!(factor_for_serial("arn:aws:iam::123456789012:mfa/alice-phone"), FactorType::Totp);
        assert_eq!(factor_for_serial("arn:aws:iam::123456789012:mfa/root-account-mfa-device"), FactorType::Totp);
        assert_eq!(
            factor_for_serial("arn:aws:iam::123456789012:u2f/user/dave/fidosecuritykey-ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            FactorType::Webauthn
        );
        assert_eq!(factor_for_serial("arn:aws:iam::123456789012:sms-mfa/x"), FactorType::Sms);
        assert_eq!(factor_for_serial("GAHT12345678"), FactorType::HardwareToken);
        assert_eq!(factor_for_serial("arn:aws:iam::1:something/x"), FactorType::Other);
        assert_eq!(factor_for_serial(""), FactorType::Other);
    }

    #[test]
    fn console_user_with_virtual_mfa_and_a_used_key() {
        let r = row("alice,arn:aws:iam::1:user/alice,2025-10-24T06:34:07+00:00,true,2026-11-27T06:34:10+00:00,2025-10-24T06:34:07+00:00,N/A,true,true,2026-10-29T06:34:07+00:00,2026-11-26T06:34:07+00:00,us-east-1,iam,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A");
        let facts = UserFacts {
            admin_policies: Some(vec!["AdministratorAccess".into()]),
            groups: vec!["admins".into()],
            mfa_devices: Some(vec!["arn:aws:iam::1:mfa/alice-phone".into()]),
        };
        let a = map_user(&r, &facts, NOW, 90);
        assert_eq!((a.id.as_str(), a.login.as_str()), ("arn:aws:iam::1:user/alice", "alice"));
        assert_eq!(a.account_type, AccountType::Human);
        assert_eq!(a.status, Status::Active);
        assert_eq!(a.last_login, Known::At(datetime!(2026-11-27 06:34:10 UTC)));
        assert_eq!(types(&a), vec![FactorType::Totp]);
        let creds = a.credentials.as_ref().unwrap();
        assert_eq!(creds.len(), 2);
        assert_eq!(creds[0].credential_type, CredentialType::Password);
        assert_eq!(creds[0].expires, Known::Never, "N/A next rotation: no expiry policy");
        assert_eq!(creds[1].id, "access_key_1");
        assert_eq!(creds[1].last_used, Known::At(datetime!(2026-11-26 06:34:07 UTC)));
        assert_eq!(a.roles.as_ref().unwrap()[0].name, "AdministratorAccess");
        assert_eq!(a.groups, vec!["admins".to_string()]);
        assert!(!a.attributes.contains_key("dormant_access_keys"));
    }

    #[test]
    fn never_used_password_and_keys() {
        // bob-like: no_information password, two active keys never used (N/A), one old.
        let r = row("bob,arn:aws:iam::1:user/bob,2025-07-18T06:34:07+00:00,true,no_information,2025-07-18T06:34:07+00:00,not_supported,false,true,2026-05-12T06:34:07+00:00,N/A,N/A,N/A,true,2026-11-18T06:34:07+00:00,N/A,N/A,N/A,false,N/A,false,N/A");
        let a = map_user(&r, &UserFacts::default(), NOW, 90);
        assert_eq!(a.last_login, Known::Never);
        assert_eq!(a.mfa, Some(Mfa::default()), "console user without MFA: known none");
        assert_eq!(a.roles, None, "admin policies not read: unknown");
        let creds = a.credentials.as_ref().unwrap();
        assert_eq!(creds[0].expires, Known::Unknown, "not_supported next rotation");
        assert_eq!(creds[1].last_used, Known::Never);
        assert_eq!(creds[2].last_used, Known::Never);
        assert_eq!(dormant_keys(&r, NOW, 90), vec![1], "key 1 is 200 days old and unused");
        assert_eq!(a.attributes["dormant_access_keys"], serde_json::json!(["access_key_1"]));
    }

    #[test]
    fn service_user_is_dormant_by_key_use() {
        // svc-deploy-like: no password (moto's not_supported), key 1 last used 300 days ago,
        // key 2 inactive with a rotation date that is not trusted.
        let r = row("svc-deploy,arn:aws:iam::1:user/svc-deploy,2024-09-21T06:34:08+00:00,false,not_supported,2024-09-21T06:34:08+00:00,not_supported,false,true,2024-12-30T06:34:09+00:00,2026-02-01T06:34:09+00:00,us-east-1,iam,false,2026-11-10T06:34:09+00:00,N/A,N/A,N/A,false,N/A,false,N/A");
        let a = map_user(&r, &UserFacts { admin_policies: Some(vec![]), ..UserFacts::default() }, NOW, 90);
        assert_eq!(a.account_type, AccountType::Service);
        assert_eq!(a.status, Status::Active);
        assert_eq!(a.last_login, Known::At(datetime!(2026-02-01 06:34:09 UTC)));
        assert_eq!(a.mfa, None, "MFA does not apply without a password");
        let creds = a.credentials.as_ref().unwrap();
        assert_eq!(creds.len(), 1, "only the active key; no password credential");
        assert_eq!(creds[0].last_rotated, Known::At(datetime!(2024-12-30 06:34:09 UTC)));
        assert_eq!(a.roles, Some(vec![]));
        assert_eq!(dormant_keys(&r, NOW, 90), vec![1]);
        assert!(dormant_keys(&r, NOW, 400).is_empty());
    }

    #[test]
    fn a_user_without_any_credential_cannot_sign_in() {
        let r = row("gina,arn:aws:iam::1:user/gina,2024-03-04T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A");
        let a = map_user(&r, &UserFacts::default(), NOW, 90);
        assert_eq!(a.status, Status::Disabled);
        assert_eq!(a.last_login, Known::Unknown);
        assert_eq!(a.credentials, Some(vec![]));
        // An active certificate alone makes it sign-in capable (SOAP/legacy APIs).
        let r = row("c,arn:aws:iam::1:user/c,2024-03-04T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,true,2025-01-01T00:00:00+00:00,false,N/A");
        let a = map_user(&r, &UserFacts::default(), NOW, 90);
        assert_eq!(a.status, Status::Active);
        assert_eq!(a.last_login, Known::Unknown, "certificates have no last-used date");
        let c = &a.credentials.as_ref().unwrap()[0];
        assert_eq!((c.credential_type, c.id.as_str()), (CredentialType::Certificate, "certificate_1"));
        assert_eq!(c.expires, Known::Unknown, "never claimed to have no expiry");
    }

    #[test]
    fn mfa_device_kinds_and_unknowns() {
        let line = "d,arn:aws:iam::1:user/d,2026-05-14T06:34:08+00:00,true,no_information,2026-05-14T06:34:08+00:00,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A";
        let r = row(line);
        let with = |serials: Option<Vec<&str>>| {
            map_user(
                &r,
                &UserFacts {
                    mfa_devices: serials.map(|v| v.into_iter().map(String::from).collect()),
                    ..UserFacts::default()
                },
                NOW,
                90,
            )
        };
        assert_eq!(types(&with(Some(vec!["arn:aws:iam::1:u2f/user/d/fidosecuritykey-X"]))), vec![FactorType::Webauthn]);
        assert_eq!(types(&with(Some(vec!["GAHT12345678"]))), vec![FactorType::HardwareToken]);
        assert_eq!(
            types(&with(Some(vec!["arn:aws:iam::1:mfa/p", "arn:aws:iam::1:u2f/user/d/k"]))),
            vec![FactorType::Totp, FactorType::Webauthn]
        );
        assert_eq!(types(&with(None)), vec![FactorType::Other], "devices not read");
        assert_eq!(types(&with(Some(vec![]))), vec![FactorType::Other], "report says MFA is on");
    }

    #[test]
    fn root_row() {
        let r = row("<root_account>,arn:aws:iam::123456789012:root,2023-08-18T06:34:10+00:00,not_supported,2026-11-25T06:34:10+00:00,not_supported,not_supported,true,true,2020-01-01T00:00:00+00:00,2026-01-01T00:00:00+00:00,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A");
        let a = map_root(&r, Some(true));
        assert_eq!(a.login, "<root_account>");
        assert_eq!(a.status, Status::Active);
        assert_eq!(a.account_type, AccountType::Human);
        assert_eq!(a.last_login, Known::Unknown, "root use is not dormancy data");
        assert_eq!(a.attributes["root_password_last_used"], "2026-11-25T06:34:10Z");
        assert_eq!(a.roles.as_ref().unwrap()[0].name, ROOT_ROLE);
        assert_eq!(types(&a), vec![FactorType::Totp]);
        assert_eq!(types(&map_root(&r, Some(false))), vec![FactorType::Other]);
        assert_eq!(types(&map_root(&r, None)), vec![FactorType::Other]);
        let creds = a.credentials.as_ref().unwrap();
        assert_eq!(creds.len(), 1, "a root access key, no password credential");
        assert_eq!(creds[0].credential_type, CredentialType::AccessKey);
        assert!(a.display_name.unwrap().contains("123456789012"));
    }
}
