//! Tenant-level checks, one result per source: super-admin counts outside
//! `[min_super_admins, max_super_admins]` (the minimum only where a provider can be locked
//! out), and the provider's MFA policy gaps.

use super::{CheckId, Finding};
use crate::config::Policy;
use crate::model::TenantFacts;

/// `super_admins` is `None` when the source could not read roles: then nothing is said.
pub fn check(super_admins: Option<u64>, facts: &TenantFacts, p: &Policy) -> Vec<Finding> {
    let mut out = Vec::new();
    let note = |check, text: String| Finding {
        subject: Some(text.into()),
        ..Finding::new(check)
    };
    if let Some(n) = super_admins {
        if n > u64::from(p.max_super_admins) {
            out.push(note(
                CheckId::TenantTooManySuperAdmins,
                format!(
                    "{n} active super admins, more than the maximum of {}",
                    p.max_super_admins
                ),
            ));
        }
        if n < u64::from(p.min_super_admins) && !facts.no_super_admin_minimum {
            out.push(note(
                CheckId::TenantTooFewSuperAdmins,
                format!(
                    "{n} active super admins, fewer than the minimum of {} (lock-out risk)",
                    p.min_super_admins
                ),
            ));
        }
    }
    for gap in facts.mfa_policy_gaps.iter().flatten() {
        out.push(note(CheckId::TenantMfaPolicyGap, gap.clone()));
    }
    out
}

/// Whether a role name counts as super admin under the policy.
pub fn is_super_admin_role(p: &Policy, role: &str) -> bool {
    p.super_admin_roles.iter().any(|r| r == role)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[Finding]) -> Vec<CheckId> {
        v.iter().map(|f| f.check).collect()
    }

    #[test]
    fn super_admin_range_is_inclusive() {
        let p = Policy::default();
        let t = TenantFacts::default();
        assert!(check(Some(2), &t, &p).is_empty());
        assert!(check(Some(4), &t, &p).is_empty());
        assert_eq!(
            ids(&check(Some(5), &t, &p)),
            vec![CheckId::TenantTooManySuperAdmins]
        );
        assert_eq!(
            ids(&check(Some(1), &t, &p)),
            vec![CheckId::TenantTooFewSuperAdmins]
        );
        assert_eq!(
            ids(&check(Some(0), &t, &p)),
            vec![CheckId::TenantTooFewSuperAdmins]
        );
        assert!(check(None, &t, &p).is_empty(), "roles unknown");
    }

    #[test]
    fn no_minimum_where_the_provider_cannot_be_locked_out() {
        let p = Policy::default();
        let t = TenantFacts {
            no_super_admin_minimum: true,
            ..TenantFacts::default()
        };
        assert!(check(Some(1), &t, &p).is_empty(), "AWS: root alone is fine");
        assert_eq!(
            ids(&check(Some(5), &t, &p)),
            vec![CheckId::TenantTooManySuperAdmins],
            "the maximum still applies"
        );
    }

    #[test]
    fn each_policy_gap_is_a_finding() {
        let t = TenantFacts {
            mfa_policy_gaps: Some(vec!["rule A".into(), "rule B".into()]),
            ..TenantFacts::default()
        };
        let f = check(Some(3), &t, &Policy::default());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].describe(), "rule A");
    }
}
