//! MFA checks: `mfa.missing`, `mfa.weak`, `mfa.not_enforced`, and the MFA class behind the
//! coverage gauges. Only active factors count; an account whose `mfa` is absent is unknown
//! and never flagged.

use super::{CheckId, Finding, MfaClass, Verdict};
use crate::config::Policy;
use crate::model::Account;

/// Classifies an account's MFA from its active factors.
pub fn classify(a: &Account, p: &Policy) -> MfaClass {
    let Some(mfa) = &a.mfa else {
        return MfaClass::Unknown;
    };
    let mut any = false;
    let mut strong = false;
    for f in mfa.active_factors() {
        any = true;
        if f.is_phishing_resistant() {
            return MfaClass::PhishingResistant;
        }
        if !p.is_weak(f) {
            strong = true;
        }
    }
    match (any, strong) {
        (false, _) => MfaClass::None,
        (true, false) => MfaClass::Weak,
        (true, true) => MfaClass::Strong,
    }
}

pub fn check(a: &Account, v: &Verdict, out: &mut Vec<Finding>) {
    match v.mfa {
        MfaClass::Unknown => return,
        MfaClass::None => out.push(Finding::new(CheckId::MfaMissing)),
        MfaClass::Weak => out.push(Finding::new(CheckId::MfaWeak)),
        MfaClass::Strong | MfaClass::PhishingResistant => {}
    }
    let enrolled = !matches!(v.mfa, MfaClass::None);
    if enrolled && a.mfa.as_ref().and_then(|m| m.enforced) == Some(false) {
        out.push(Finding::new(CheckId::MfaNotEnforced));
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::testutil::*;
    use crate::checks::{CheckId, MfaClass};
    use crate::config::Policy;
    use crate::model::*;

    fn with_factors(fs: &[(FactorType, FactorStatus)]) -> Account {
        let mut a = active("a");
        a.mfa = Some(Mfa {
            factors: fs
                .iter()
                .map(|&(t, s)| Factor {
                    factor_type: t,
                    status: s,
                })
                .collect(),
            enforced: None,
        });
        a
    }

    #[test]
    fn missing_weak_strong_and_phishing_resistant() {
        use FactorStatus::*;
        use FactorType::*;
        assert_eq!(checks(&with_factors(&[])), vec![CheckId::MfaMissing]);
        // Pending or inactive factors do not count.
        assert_eq!(
            checks(&with_factors(&[(Push, Pending), (Webauthn, Inactive)])),
            vec![CheckId::MfaMissing]
        );
        assert_eq!(
            checks(&with_factors(&[
                (Sms, Active),
                (Email, Active),
                (Voice, Active),
                (Question, Active)
            ])),
            vec![CheckId::MfaWeak]
        );
        assert!(checks(&with_factors(&[(Sms, Active), (Totp, Active)])).is_empty());
        let (_, v) = run(
            &with_factors(&[(Sms, Active), (Totp, Active)]),
            &Policy::default(),
        );
        assert_eq!(v.mfa, MfaClass::Strong);
        let (_, v) = run(
            &with_factors(&[(Push, Active), (SmartCard, Active)]),
            &Policy::default(),
        );
        assert_eq!(v.mfa, MfaClass::PhishingResistant);
    }

    #[test]
    fn unknown_mfa_is_never_a_finding() {
        let mut a = active("a");
        a.mfa = None;
        assert!(checks(&a).is_empty());
        let (_, v) = run(&a, &Policy::default());
        assert_eq!(v.mfa, MfaClass::Unknown);
    }

    #[test]
    fn not_enforced_needs_an_enrolled_factor() {
        let mut a = with_factors(&[(FactorType::Push, FactorStatus::Active)]);
        a.mfa.as_mut().unwrap().enforced = Some(false);
        assert_eq!(checks(&a), vec![CheckId::MfaNotEnforced]);
        let mut b = with_factors(&[]);
        b.mfa.as_mut().unwrap().enforced = Some(false);
        assert_eq!(checks(&b), vec![CheckId::MfaMissing]);
    }
}
