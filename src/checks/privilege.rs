//! Privilege checks: `privilege.role_not_allowed` (role policy), `privilege.unused`
//! (privileged, no login or role use for `unused_privilege_days`), `privilege.no_mfa`
//! (privileged with no or only weak MFA), `privilege.service_account_admin`.

use super::{older_than, whole_days, CheckId, Ctx, Finding, MfaClass, Verdict};
use crate::model::{Account, AccountType, Known};

pub fn check(a: &Account, v: &Verdict, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    if !v.privileged {
        return;
    }
    let roles = a.roles.as_deref().unwrap_or(&[]);
    let p = ctx.policy;

    for rule in &p.privilege_rules {
        let Some(role) = roles.iter().find(|r| r.name == rule.role) else {
            continue;
        };
        let allowed = a.groups.iter().any(|g| rule.allow_groups.contains(g))
            || rule.allow_accounts.matches(&a.login)
            || rule.allow_accounts.matches(&a.id);
        // Groups not read: an allowing group may be among them (unknown, not "outside").
        let undecided = a.groups_unknown && !rule.allow_groups.is_empty();
        if !allowed && !undecided {
            out.push(Finding {
                subject: Some(role.name.as_str().into()),
                ..Finding::new(CheckId::PrivilegeRoleNotAllowed)
            });
        }
    }

    unused(a, ctx, out);

    if matches!(v.mfa, MfaClass::None | MfaClass::Weak) {
        out.push(Finding::new(CheckId::PrivilegeNoMfa));
    }

    if v.account_type == AccountType::Service {
        out.push(Finding {
            subject: Some(
                roles
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
                    .into(),
            ),
            ..Finding::new(CheckId::PrivilegeServiceAccountAdmin)
        });
    }
}

/// The latest known use of the account or its roles decides; "never" for all of them means
/// the privilege was never used (flagged once the account is older than the threshold);
/// unknown for all of them is no finding.
fn unused(a: &Account, ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let days = ctx.policy.unused_privilege_days;
    let roles = a.roles.as_deref().unwrap_or(&[]);
    let uses = std::iter::once(a.last_login).chain(roles.iter().map(|r| r.last_used));
    let mut latest = None;
    let mut any_known = false;
    for u in uses {
        match u {
            Known::At(t) => {
                any_known = true;
                latest = Some(latest.map_or(t, |l: time::OffsetDateTime| l.max(t)));
            }
            Known::Never => any_known = true,
            Known::Unknown => {}
        }
    }
    match latest {
        Some(t) if older_than(t, ctx.now, days) => {
            out.push(Finding {
                days: Some(whole_days(ctx.now - t)),
                ..Finding::new(CheckId::PrivilegeUnused)
            });
        }
        Some(_) => {}
        None if any_known => {
            if let Some(c) = a.created {
                if older_than(c, ctx.now, days) {
                    out.push(Finding::new(CheckId::PrivilegeUnused));
                }
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::checks::testutil::*;
    use crate::checks::CheckId;
    use crate::config::{Policy, RawPolicy, RawPrivilegeRule};
    use crate::model::*;

    fn admin(login: &str, role: &str) -> Account {
        let mut a = active(login);
        a.roles = Some(vec![Role {
            name: role.into(),
            last_used: Known::Unknown,
        }]);
        a
    }

    fn rule_policy() -> Policy {
        let raw = RawPolicy {
            privilege_rules: Some(vec![RawPrivilegeRule {
                role: "SUPER_ADMIN".into(),
                allow_groups: vec!["it-admins".into()],
                allow_accounts: vec!["root-*@x".into()],
            }]),
            ..Default::default()
        };
        let mut e = Vec::new();
        Policy::from_raw(&raw, None, "policy", &mut e)
    }

    #[test]
    fn role_rules_match_groups_and_accounts() {
        let p = rule_policy();
        let a = admin("bob@x", "SUPER_ADMIN");
        assert_eq!(run(&a, &p).0, vec![CheckId::PrivilegeRoleNotAllowed]);
        let mut g = a.clone();
        g.groups = vec!["it-admins".into()];
        assert!(run(&g, &p).0.is_empty());
        assert!(run(&admin("ROOT-1@x", "SUPER_ADMIN"), &p).0.is_empty());
        // Another role is not governed by the rule.
        assert!(run(&admin("bob@x", "HELP_DESK_ADMIN"), &p).0.is_empty());
    }

    #[test]
    fn unread_groups_leave_a_group_rule_undecided() {
        let p = rule_policy();
        let mut a = admin("bob@x", "SUPER_ADMIN");
        a.groups_unknown = true;
        assert!(run(&a, &p).0.is_empty(), "an allowing group may be unread");
        // A rule that allows by account only does not depend on groups.
        let raw = RawPolicy {
            privilege_rules: Some(vec![RawPrivilegeRule {
                role: "SUPER_ADMIN".into(),
                allow_groups: vec![],
                allow_accounts: vec!["root-*@x".into()],
            }]),
            ..Default::default()
        };
        let accounts_only = Policy::from_raw(&raw, None, "policy", &mut Vec::new());
        assert_eq!(
            run(&a, &accounts_only).0,
            vec![CheckId::PrivilegeRoleNotAllowed]
        );
    }

    #[test]
    fn unused_privilege_boundary_and_unknowns() {
        let mut a = admin("a", "R");
        a.last_login = Known::At(days_ago(45));
        assert!(checks(&a).is_empty());
        a.last_login = Known::At(days_ago(46));
        assert_eq!(checks(&a), vec![CheckId::PrivilegeUnused]);
        // Recent role use counts as use.
        a.roles.as_mut().unwrap()[0].last_used = Known::At(days_ago(2));
        assert!(checks(&a).is_empty());
        // Nothing known: no finding.
        let mut u = admin("u", "R");
        u.last_login = Known::Unknown;
        assert!(checks(&u).is_empty());
        // Never used and old: a finding (plus never-logged-in dormancy).
        u.last_login = Known::Never;
        assert_eq!(
            checks(&u),
            vec![CheckId::DormantNeverLoggedIn, CheckId::PrivilegeUnused]
        );
    }

    #[test]
    fn privileged_without_strong_mfa() {
        let mut a = admin("a", "R");
        a.mfa = Some(Mfa::default());
        assert_eq!(
            checks(&a),
            vec![CheckId::MfaMissing, CheckId::PrivilegeNoMfa]
        );
        a.mfa = Some(Mfa {
            factors: vec![Factor {
                factor_type: FactorType::Sms,
                status: FactorStatus::Active,
            }],
            enforced: None,
        });
        assert_eq!(checks(&a), vec![CheckId::MfaWeak, CheckId::PrivilegeNoMfa]);
        a.mfa = None;
        assert!(checks(&a).is_empty(), "unknown MFA is not no MFA");
    }

    #[test]
    fn service_account_admin() {
        let mut a = admin("svc", "Application Administrator");
        a.account_type = AccountType::Service;
        assert_eq!(checks(&a), vec![CheckId::PrivilegeServiceAccountAdmin]);
    }
}
