//! Posture checks (README "Checks"): pure functions over one normalised account (or a tenant's
//! counts) with an injected clock. Each family lives in its own file; this module holds the
//! check ids, severities and the per-account entry point [`evaluate_account`].

pub mod catalog;
pub mod credentials;
pub mod dormancy;
pub mod mfa;
pub mod privilege;
pub mod tenant;

use crate::config::Policy;
use crate::model::{Account, AccountType, CredentialType, Timestamp};

/// Check ids and severities live in the model (the configuration names them too).
pub use crate::model::{CheckId, Severity, N_CHECKS};

/// One finding on one account. Kept small: the text is rendered only when the API asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub check: CheckId,
    /// What the finding is about inside the account: a credential id, a role name.
    pub subject: Option<Box<str>>,
    pub credential_type: Option<CredentialType>,
    /// Age in days (dormancy, rotation) or days until expiry (`credential.expiring`), or
    /// days since expiry (`credential.expired`).
    pub days: Option<i64>,
}

impl Finding {
    pub fn new(check: CheckId) -> Finding {
        Finding {
            check,
            subject: None,
            credential_type: None,
            days: None,
        }
    }

    /// A sentence a person can act on.
    pub fn describe(&self) -> String {
        describe(
            self.check,
            self.subject.as_deref(),
            self.credential_type,
            self.days,
        )
    }
}

/// The sentence for a finding of `check` (see [`Finding::describe`]).
pub fn describe(
    check: CheckId,
    subject: Option<&str>,
    credential_type: Option<CredentialType>,
    days: Option<i64>,
) -> String {
    let subj = subject.unwrap_or("");
    let ct = credential_type.map(|c| c.as_str()).unwrap_or("credential");
    let d = days.unwrap_or(0);
    match check {
        CheckId::MfaMissing => "no active MFA factor".into(),
        CheckId::MfaWeak => "only weak MFA factors (e.g. SMS, voice, email)".into(),
        CheckId::MfaNotEnforced => "MFA enrolled but not enforced".into(),
        CheckId::DormantInactive => format!("no login for {d} days"),
        CheckId::DormantNeverLoggedIn => format!("never logged in; created {d} days ago"),
        CheckId::DormantTerminated => {
            format!("left the organisation {d} days ago but the account still exists")
        }
        CheckId::CredentialUnrotated => format!("{ct} {subj:?} not rotated for {d} days"),
        CheckId::CredentialExpired => {
            format!("{ct} {subj:?} expired {d} days ago and is still present")
        }
        CheckId::CredentialExpiring => format!("{ct} {subj:?} expires in {d} days"),
        CheckId::CredentialNoExpiry => format!("{ct} {subj:?} has no expiry date"),
        CheckId::PrivilegeRoleNotAllowed => {
            format!("holds role {subj:?} outside its allowed groups and accounts")
        }
        CheckId::PrivilegeUnused => match days {
            Some(d) => format!("privileged, but no login or role use for {d} days"),
            None => "privileged, but never used".into(),
        },
        CheckId::PrivilegeNoMfa => "privileged without MFA or with only weak MFA".into(),
        CheckId::PrivilegeServiceAccountAdmin => {
            format!("service account holding admin role {subj:?}")
        }
        CheckId::TenantTooManySuperAdmins
        | CheckId::TenantTooFewSuperAdmins
        | CheckId::TenantMfaPolicyGap => subj.to_string(),
    }
}

/// How an account's MFA looks, for the MFA coverage gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaClass {
    /// The source does not know.
    Unknown,
    None,
    /// Only factors from `weak_mfa_factors`.
    Weak,
    /// At least one factor that is not weak, none phishing-resistant.
    Strong,
    PhishingResistant,
}

/// The facts about one account that every check and count needs, derived once.
#[derive(Debug, Clone, Copy)]
pub struct Verdict {
    /// `account_type`, or `service` when the login matches `service_account_patterns`.
    pub account_type: AccountType,
    pub excluded: bool,
    pub privileged: bool,
    /// Active (`active` or `locked`): the only accounts most checks look at.
    pub checked: bool,
    pub mfa: MfaClass,
}

/// Everything a check needs besides the account.
pub struct Ctx<'a> {
    pub policy: &'a Policy,
    pub now: Timestamp,
}

/// Runs every account-level check on `a`, appending findings to `out` (which is not
/// cleared). Excluded accounts are evaluated too (the API shows what they would be flagged
/// for); counting them is the caller's business.
pub fn evaluate_account(a: &Account, ctx: &Ctx<'_>, out: &mut Vec<Finding>) -> Verdict {
    let p = ctx.policy;
    let account_type = if p.service_account_patterns.matches(&a.login) {
        AccountType::Service
    } else {
        a.account_type
    };
    let excluded = p.exclude_accounts.matches(&a.login);
    let privileged = a.is_privileged();
    let checked = a.status.is_active();
    let mfa = mfa::classify(a, p);
    let v = Verdict {
        account_type,
        excluded,
        privileged,
        checked,
        mfa,
    };
    // Leavers are looked at in every state in which the account still exists.
    dormancy::check_terminated(a, ctx, out);
    if checked {
        mfa::check(a, &v, out);
        dormancy::check_activity(a, ctx, out);
        credentials::check(a, ctx, out);
        privilege::check(a, &v, ctx, out);
    }
    v
}

/// Whole days in `d`, rounded down, never negative (a finding's `days`).
pub(crate) fn whole_days(d: time::Duration) -> i64 {
    d.whole_days().max(0)
}

/// `true` when `later - earlier` is strictly longer than `days` days. An `earlier` after
/// `later` (a timestamp in the future: bad data or clock skew) counts as `later`: age zero,
/// never "older than" anything. [`crate::report`] counts such timestamps per source.
pub(crate) fn older_than(earlier: Timestamp, later: Timestamp, days: u32) -> bool {
    later - earlier.min(later) > time::Duration::days(i64::from(days))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::model::*;
    use time::macros::datetime;

    pub const NOW: Timestamp = datetime!(2026-11-28 12:00 UTC);

    pub fn days_ago(d: i64) -> Timestamp {
        NOW - time::Duration::days(d)
    }

    pub fn active(login: &str) -> Account {
        let mut a = Account::new(login, login);
        a.created = Some(days_ago(1000));
        a.last_login = Known::At(days_ago(1));
        a.mfa = Some(Mfa {
            factors: vec![Factor {
                factor_type: FactorType::Webauthn,
                status: FactorStatus::Active,
            }],
            enforced: Some(true),
        });
        a.credentials = Some(vec![]);
        a.roles = Some(vec![]);
        a
    }

    pub fn run(a: &Account, policy: &Policy) -> (Vec<CheckId>, Verdict) {
        let mut out = Vec::new();
        let v = evaluate_account(a, &Ctx { policy, now: NOW }, &mut out);
        (out.iter().map(|f| f.check).collect(), v)
    }

    pub fn checks(a: &Account) -> Vec<CheckId> {
        run(a, &Policy::default()).0
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::config::{LoginMatcher, RawPolicy};
    use crate::model::*;

    #[test]
    fn a_clean_account_has_no_findings() {
        assert!(checks(&active("alice@x")).is_empty());
    }

    #[test]
    fn ids_round_trip_and_severities_follow_the_spec() {
        for c in CheckId::ALL {
            assert_eq!(CheckId::parse(c.as_str()), Some(c));
        }
        assert_eq!(CheckId::MfaMissing.default_severity(), Severity::High);
        assert_eq!(
            CheckId::DormantTerminated.default_severity(),
            Severity::High
        );
        assert_eq!(
            CheckId::PrivilegeNoMfa.default_severity(),
            Severity::Critical
        );
        assert_eq!(
            CheckId::CredentialExpiring.default_severity(),
            Severity::Low
        );
        assert_eq!(
            CheckId::CredentialNoExpiry.default_severity(),
            Severity::Low
        );
        assert_eq!(
            CheckId::DormantInactive.default_severity(),
            Severity::Medium
        );
    }

    #[test]
    fn inactive_statuses_are_not_checked() {
        for s in [
            Status::Suspended,
            Status::Disabled,
            Status::Deprovisioned,
            Status::Staged,
        ] {
            let mut a = active("x");
            a.status = s;
            a.mfa = Some(Mfa::default());
            a.last_login = Known::At(days_ago(900));
            assert!(checks(&a).is_empty(), "{s:?}");
        }
        let mut a = active("x");
        a.status = Status::Locked;
        a.mfa = Some(Mfa::default());
        assert_eq!(checks(&a), vec![CheckId::MfaMissing]);
    }

    #[test]
    fn service_patterns_and_exclusions() {
        let raw = RawPolicy {
            service_account_patterns: Some(vec!["svc-*".into()]),
            exclude_accounts: Some(vec!["breakglass-*@example.com".into()]),
            ..Default::default()
        };
        let mut e = Vec::new();
        let p = Policy::from_raw(&raw, None, "policy", &mut e);
        assert!(e.is_empty());
        let (_, v) = run(&active("svc-backup"), &p);
        assert_eq!(v.account_type, AccountType::Service);
        let mut bg = active("breakglass-1@example.com");
        bg.mfa = Some(Mfa::default());
        let (f, v) = run(&bg, &p);
        assert!(v.excluded);
        // Still evaluated (the API shows it), counted as excluded by the caller.
        assert_eq!(f, vec![CheckId::MfaMissing]);
        assert!(LoginMatcher::new(&["[".into()]).is_err());
    }
}
