//! Credential checks: `credential.unrotated` (older than its type's max age, not expired),
//! `credential.expired` (past expiry, still present; reported only as this),
//! `credential.expiring` (within `expiring_within_days`), `credential.no_expiry` (a client
//! secret, certificate or personal access token with an explicit "never expires").

use super::{older_than, whole_days, CheckId, Ctx, Finding};
use crate::config::Policy;
use crate::model::{Account, CredentialType, Known};

/// The maximum age policy for a credential type; 0 means the type is not checked for age
/// (the default for passwords, following NIST SP 800-63B).
pub fn max_age_days(p: &Policy, t: CredentialType) -> u32 {
    match t {
        CredentialType::Password => p.password_max_age_days,
        CredentialType::ApiKey
        | CredentialType::AccessKey
        | CredentialType::Token
        | CredentialType::SshKey => p.access_key_max_age_days,
        CredentialType::ClientSecret => p.secret_max_age_days,
        CredentialType::Certificate => p.certificate_max_age_days,
    }
}

pub fn check(a: &Account, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let Some(creds) = &a.credentials else {
        return;
    };
    let p = ctx.policy;
    let now = ctx.now;
    for c in creds {
        let finding = |check, days| Finding {
            check,
            subject: Some(if c.id.is_empty() {
                c.credential_type.as_str().into()
            } else {
                c.id.as_str().into()
            }),
            credential_type: Some(c.credential_type),
            days,
        };
        match c.expires {
            Known::At(e) if e <= now => {
                out.push(finding(
                    CheckId::CredentialExpired,
                    Some(whole_days(now - e)),
                ));
                continue;
            }
            Known::At(e) => {
                if e - now <= time::Duration::days(i64::from(p.expiring_within_days)) {
                    out.push(finding(
                        CheckId::CredentialExpiring,
                        Some(whole_days(e - now)),
                    ));
                }
            }
            Known::Never => {
                // Credentials that can be given an expiry and were not. Passwords and SSH
                // keys have none by design; a token's "never" is its owner's choice (GitHub
                // personal access tokens, SaaS API tokens).
                if matches!(
                    c.credential_type,
                    CredentialType::ClientSecret
                        | CredentialType::Certificate
                        | CredentialType::Token
                ) {
                    out.push(finding(CheckId::CredentialNoExpiry, None));
                }
            }
            Known::Unknown => {}
        }
        let max_age = max_age_days(p, c.credential_type);
        if let (Known::At(r), true) = (c.last_rotated, max_age > 0) {
            if older_than(r, now, max_age) {
                out.push(finding(
                    CheckId::CredentialUnrotated,
                    Some(whole_days(now - r)),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::testutil::*;
    use crate::checks::CheckId;
    use crate::model::*;
    use time::Duration;

    fn cred(t: CredentialType, rotated: Known<Timestamp>, expires: Known<Timestamp>) -> Account {
        let mut a = active("svc");
        a.credentials = Some(vec![Credential {
            credential_type: t,
            id: "k1".into(),
            last_rotated: rotated,
            expires,
            last_used: Known::Unknown,
        }]);
        a
    }

    #[test]
    fn unrotated_boundary_per_type() {
        use crate::config::{Policy, RawPolicy};
        use CredentialType::*;
        // Password age is opt-in: 365 here, off by default (see below).
        let raw = RawPolicy {
            password_max_age_days: Some(365),
            ..Default::default()
        };
        let p = Policy::from_raw(&raw, None, "policy", &mut Vec::new());
        let checks = |a: &Account| run(a, &p).0;
        for (t, max) in [
            (Password, 365),
            (AccessKey, 90),
            (ApiKey, 90),
            (Token, 90),
            (SshKey, 90),
            (ClientSecret, 180),
            (Certificate, 365),
        ] {
            let a = cred(t, Known::At(days_ago(max)), Known::Unknown);
            assert!(checks(&a).is_empty(), "{t:?} at exactly {max} days");
            let a = cred(
                t,
                Known::At(days_ago(max) - Duration::hours(1)),
                Known::Unknown,
            );
            assert_eq!(checks(&a), vec![CheckId::CredentialUnrotated], "{t:?}");
        }
        assert!(checks(&cred(AccessKey, Known::Unknown, Known::Unknown)).is_empty());
    }

    #[test]
    fn password_age_is_off_by_default_and_zero_turns_any_type_off() {
        use crate::config::{Policy, RawPolicy};
        let ancient = Known::At(days_ago(5000));
        let pw = cred(CredentialType::Password, ancient, Known::Unknown);
        assert!(
            checks(&pw).is_empty(),
            "password_max_age_days = 0 by default"
        );
        let raw = RawPolicy {
            access_key_max_age_days: Some(0),
            ..Default::default()
        };
        let p = Policy::from_raw(&raw, None, "policy", &mut Vec::new());
        let key = cred(CredentialType::AccessKey, ancient, Known::Unknown);
        assert!(run(&key, &p).0.is_empty());
        assert_eq!(checks(&key), vec![CheckId::CredentialUnrotated]);
    }

    #[test]
    fn expired_is_reported_only_as_expired() {
        let a = cred(
            CredentialType::ClientSecret,
            Known::At(days_ago(500)),
            Known::At(days_ago(3)),
        );
        assert_eq!(checks(&a), vec![CheckId::CredentialExpired]);
        let a = cred(
            CredentialType::ClientSecret,
            Known::At(days_ago(1)),
            Known::At(NOW),
        );
        assert_eq!(
            checks(&a),
            vec![CheckId::CredentialExpired],
            "expiry instant has passed"
        );
    }

    #[test]
    fn expiring_window_is_inclusive() {
        let a = cred(
            CredentialType::Certificate,
            Known::At(days_ago(1)),
            Known::At(NOW + Duration::days(30)),
        );
        assert_eq!(checks(&a), vec![CheckId::CredentialExpiring]);
        let a = cred(
            CredentialType::Certificate,
            Known::At(days_ago(1)),
            Known::At(NOW + Duration::days(30) + Duration::seconds(1)),
        );
        assert!(checks(&a).is_empty());
        // Old and about to expire: both.
        let a = cred(
            CredentialType::ClientSecret,
            Known::At(days_ago(400)),
            Known::At(NOW + Duration::days(2)),
        );
        assert_eq!(
            checks(&a),
            vec![CheckId::CredentialExpiring, CheckId::CredentialUnrotated]
        );
    }

    #[test]
    fn no_expiry_for_app_secrets_certificates_and_tokens() {
        let a = cred(
            CredentialType::ClientSecret,
            Known::At(days_ago(1)),
            Known::Never,
        );
        assert_eq!(checks(&a), vec![CheckId::CredentialNoExpiry]);
        // A personal access token without expiry (GitHub classic PAT, fine-grained PAT).
        let a = cred(CredentialType::Token, Known::At(days_ago(1)), Known::Never);
        assert_eq!(checks(&a), vec![CheckId::CredentialNoExpiry]);
        // Old and never expiring: both.
        let a = cred(CredentialType::Token, Known::At(days_ago(91)), Known::Never);
        assert_eq!(
            checks(&a),
            vec![CheckId::CredentialNoExpiry, CheckId::CredentialUnrotated]
        );
        let a = cred(
            CredentialType::Token,
            Known::At(days_ago(1)),
            Known::Unknown,
        );
        assert!(checks(&a).is_empty(), "unknown expiry is not no expiry");
        // Passwords, SSH keys, access keys and API keys: no finding for "never".
        for t in [
            CredentialType::Password,
            CredentialType::SshKey,
            CredentialType::AccessKey,
            CredentialType::ApiKey,
        ] {
            let a = cred(t, Known::At(days_ago(1)), Known::Never);
            assert!(checks(&a).is_empty(), "{t:?}");
        }
        let a = cred(
            CredentialType::Certificate,
            Known::At(days_ago(1)),
            Known::Unknown,
        );
        assert!(checks(&a).is_empty(), "unknown expiry is not no expiry");
    }
}
