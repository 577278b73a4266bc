//! MFA policy gap analysis: do security defaults or enabled conditional access policies
//! require MFA (or an authentication strength) for all users and for admin roles?
//! Each gap is a sentence naming what is missing; they become `tenant.mfa_policy_gap` findings.

use super::wire::ConditionalAccessPolicy;

/// Role template id of Global Administrator (the same in every tenant).
pub const GLOBAL_ADMIN_TEMPLATE: &str = "62e90394-69f5-4237-9190-012177145e10";

/// What could be read about the tenant's MFA policy.
#[derive(Debug, Default)]
pub struct PolicyInputs<'a> {
    /// `identitySecurityDefaultsEnforcementPolicy.isEnabled`; `None` when unreadable.
    pub security_defaults: Option<bool>,
    /// Conditional access policies; `None` when unreadable (no permission). A tenant
    /// without Entra ID P1 has none, which the caller passes as `Some(&[])`.
    pub conditional_access: Option<&'a [ConditionalAccessPolicy]>,
    /// Whether conditional access needs a licence the tenant lacks (named in the gap text).
    pub no_premium: bool,
}

/// How far one policy goes in requiring MFA.
struct Coverage {
    all_users: bool,
    global_admin: bool,
    /// A reason the policy falls short of "every sign-in" although it targets the users.
    narrowed_by: Option<&'static str>,
}

fn requires_mfa(p: &ConditionalAccessPolicy) -> bool {
    let Some(g) = &p.grant_controls else {
        return false;
    };
    let mfa = g
        .built_in_controls
        .iter()
        .any(|c| c.eq_ignore_ascii_case("mfa"))
        || g.authentication_strength.is_some();
    if !mfa {
        return false;
    }
    // "MFA OR compliant device" lets a sign-in through without MFA.
    let alternatives = g
        .built_in_controls
        .iter()
        .filter(|c| !c.eq_ignore_ascii_case("mfa"))
        .count();
    let or = g
        .operator
        .as_deref()
        .is_none_or(|o| o.eq_ignore_ascii_case("OR"));
    !(or && alternatives > 0)
}

fn coverage(p: &ConditionalAccessPolicy) -> Coverage {
    let c = p.conditions.as_ref();
    let users = c.and_then(|c| c.users.as_ref());
    let has = |v: &[String], x: &str| v.iter().any(|s| s.eq_ignore_ascii_case(x));
    let all_users = users.is_some_and(|u| has(&u.include_users, "All"));
    let global_admin = all_users
        || users.is_some_and(|u| {
            has(&u.include_roles, GLOBAL_ADMIN_TEMPLATE)
                && !has(&u.exclude_roles, GLOBAL_ADMIN_TEMPLATE)
        });
    let apps_all = c
        .and_then(|c| c.applications.as_ref())
        .is_some_and(|a| has(&a.include_applications, "All") && a.exclude_applications.is_empty());
    let clients_all = c
        .and_then(|c| c.client_app_types.as_ref())
        .is_none_or(|t| t.is_empty() || has(t, "all"));
    let locations_all = c.and_then(|c| c.locations.as_ref()).is_none_or(|l| {
        (l.include_locations.is_empty() || has(&l.include_locations, "All"))
            && l.exclude_locations.is_empty()
    });
    let platforms_all = c.and_then(|c| c.platforms.as_ref()).is_none_or(|p| {
        (p.include_platforms.is_empty() || has(&p.include_platforms, "all"))
            && p.exclude_platforms.is_empty()
    });
    let risk_free = c.is_none_or(|c| {
        c.user_risk_levels.as_ref().is_none_or(|v| v.is_empty())
            && c.sign_in_risk_levels.as_ref().is_none_or(|v| v.is_empty())
    });
    let narrowed_by = if !apps_all {
        Some("not all cloud apps")
    } else if !clients_all {
        Some("not all client app types")
    } else if !locations_all {
        Some("excluded or selected locations")
    } else if !platforms_all {
        Some("selected device platforms")
    } else if !risk_free {
        Some("only risky sign-ins")
    } else {
        None
    };
    Coverage {
        all_users,
        global_admin,
        narrowed_by,
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tenant's MFA policy gaps; `None` when they cannot be known.
///
/// Exclusions of named users or groups (break-glass accounts) are not gaps: they are the
/// recommended practice, and the accounts themselves are judged by the per-account checks.
pub fn mfa_policy_gaps(inp: &PolicyInputs<'_>) -> Option<Vec<String>> {
    if inp.security_defaults == Some(true) {
        // Security defaults require every user to register MFA and admins to use it at every
        // sign-in; Microsoft allows them only when no conditional access policy exists.
        return Some(Vec::new());
    }
    let policies = inp.conditional_access?;
    let defaults = match inp.security_defaults {
        Some(false) => "security defaults are off",
        _ => "security defaults could not be read",
    };
    let mut all_users = false;
    let mut admins = false;
    let mut narrowed: Vec<(&str, &'static str)> = Vec::new();
    let mut report_only: Vec<&str> = Vec::new();
    let mut disabled: Vec<&str> = Vec::new();
    for p in policies {
        if !requires_mfa(p) {
            continue;
        }
        let cov = coverage(p);
        if !(cov.all_users || cov.global_admin) {
            continue;
        }
        let name = p.display_name.as_deref().unwrap_or(p.id.as_str());
        match p.state.as_deref() {
            Some("enabled") => {}
            Some("enabledForReportingButNotEnforced") => {
                report_only.push(name);
                continue;
            }
            _ => {
                disabled.push(name);
                continue;
            }
        }
        if let Some(why) = cov.narrowed_by {
            narrowed.push((name, why));
            continue;
        }
        all_users |= cov.all_users;
        admins |= cov.global_admin;
    }
    let mut hints = String::new();
    if !narrowed.is_empty() {
        let parts: Vec<String> = narrowed
            .iter()
            .map(|(n, why)| format!("\"{n}\" is limited to {why}"))
            .collect();
        hints.push_str(&format!("; {}", parts.join(", ")));
    }
    if !report_only.is_empty() {
        hints.push_str(&format!("; report-only: {}", quoted(&report_only)));
    }
    if !disabled.is_empty() {
        hints.push_str(&format!("; disabled: {}", quoted(&disabled)));
    }
    let ca = if inp.no_premium {
        "conditional access is not available (no Entra ID P1 licence)".to_string()
    } else {
        "no enabled conditional access policy requires MFA".to_string()
    };
    let mut gaps = Vec::new();
    if !all_users {
        gaps.push(format!(
            "MFA is not required for all users: {ca} for all users and cloud apps, and {defaults}{hints}"
        ));
    }
    if !admins {
        gaps.push(format!(
            "MFA is not required for admin roles: {ca} for the Global Administrator role, and {defaults}{hints}"
        ));
    }
    Some(gaps)
}

#[cfg(test)]
mod tests {
    use super::super::wire::{
        AuthenticationStrength, CaApplications, CaConditions, CaGrantControls, CaLocations, CaUsers,
    };
    use super::*;

    fn policy(
        name: &str,
        state: &str,
        users: CaUsers,
        controls: &[&str],
    ) -> ConditionalAccessPolicy {
        ConditionalAccessPolicy {
            id: name.to_lowercase(),
            display_name: Some(name.into()),
            state: Some(state.into()),
            conditions: Some(CaConditions {
                users: Some(users),
                applications: Some(CaApplications {
                    include_applications: vec!["All".into()],
                    exclude_applications: vec![],
                }),
                client_app_types: Some(vec!["all".into()]),
                ..Default::default()
            }),
            grant_controls: Some(CaGrantControls {
                operator: Some("OR".into()),
                built_in_controls: controls.iter().map(|s| s.to_string()).collect(),
                authentication_strength: None,
            }),
        }
    }

    fn all_users() -> CaUsers {
        CaUsers {
            include_users: vec!["All".into()],
            exclude_users: vec!["breakglass-id".into()],
            ..Default::default()
        }
    }

    fn admins() -> CaUsers {
        CaUsers {
            include_roles: vec![GLOBAL_ADMIN_TEMPLATE.into()],
            ..Default::default()
        }
    }

    #[test]
    fn security_defaults_close_every_gap() {
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(true),
            conditional_access: None,
            no_premium: false,
        });
        assert_eq!(g, Some(vec![]));
    }

    #[test]
    fn unreadable_policy_is_unknown_not_a_gap() {
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(false),
            conditional_access: None,
            no_premium: false,
        });
        assert_eq!(g, None);
    }

    #[test]
    fn enabled_all_users_mfa_policy_covers_everyone() {
        let p = [policy("Require MFA", "enabled", all_users(), &["mfa"])];
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(false),
            conditional_access: Some(&p),
            no_premium: false,
        });
        assert_eq!(g, Some(vec![]));
    }

    #[test]
    fn admin_only_policy_leaves_users_uncovered() {
        let mut p = policy("Admins", "enabled", admins(), &[]);
        p.grant_controls.as_mut().unwrap().authentication_strength = Some(AuthenticationStrength {
            id: Some("00000000-0000-0000-0000-000000000004".into()),
            display_name: Some("Phishing-resistant MFA".into()),
        });
        let r = [
            p,
            policy(
                "Everyone (pilot)",
                "enabledForReportingButNotEnforced",
                all_users(),
                &["mfa"],
            ),
        ];
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(false),
            conditional_access: Some(&r),
            no_premium: false,
        })
        .unwrap();
        assert_eq!(g.len(), 1, "{g:?}");
        assert!(
            g[0].starts_with("MFA is not required for all users"),
            "{g:?}"
        );
        assert!(g[0].contains("report-only: \"Everyone (pilot)\""), "{g:?}");
    }

    #[test]
    fn mfa_or_compliant_device_and_location_exclusions_do_not_count() {
        let mut loc = policy("Outside office", "enabled", all_users(), &["mfa"]);
        loc.conditions.as_mut().unwrap().locations = Some(CaLocations {
            include_locations: vec!["All".into()],
            exclude_locations: vec!["AllTrusted".into()],
        });
        let p = [
            policy(
                "MFA or device",
                "enabled",
                all_users(),
                &["mfa", "compliantDevice"],
            ),
            loc,
        ];
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(false),
            conditional_access: Some(&p),
            no_premium: false,
        })
        .unwrap();
        assert_eq!(g.len(), 2);
        assert!(g[0].contains("\"Outside office\" is limited to excluded or selected locations"));
        assert!(g[1].starts_with("MFA is not required for admin roles"));
    }

    #[test]
    fn mfa_and_compliant_device_counts() {
        let mut p = policy(
            "Strict",
            "enabled",
            all_users(),
            &["mfa", "compliantDevice"],
        );
        p.grant_controls.as_mut().unwrap().operator = Some("AND".into());
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(false),
            conditional_access: Some(std::slice::from_ref(&p)),
            no_premium: false,
        });
        assert_eq!(g, Some(vec![]));
    }

    #[test]
    fn non_premium_tenant_without_defaults_has_both_gaps() {
        let g = mfa_policy_gaps(&PolicyInputs {
            security_defaults: Some(false),
            conditional_access: Some(&[]),
            no_premium: true,
        })
        .unwrap();
        assert_eq!(g.len(), 2);
        assert!(g[0].contains("no Entra ID P1"));
        assert!(g[0].contains("security defaults are off"));
    }
}
