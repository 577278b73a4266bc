//! Pure mapping of Admin SDK data into the model: a Directory user's status, last login (with
//! Google's never-signed-in sentinel), 2-Step Verification refined by the login audit's
//! challenge methods, and admin roles (from role assignments, or the user's own admin flags).

use std::sync::Arc;

use super::wire::User;
use crate::model::{
    parse_ts, Account, AccountType, Factor, FactorStatus, FactorType, Known, Mfa, Role, Status,
    Timestamp,
};

/// Google's built-in super-admin role (`roleName` of the role whose `isSuperAdminRole` is
/// true; in the default `policy.super_admin_roles`).
pub const SUPER_ADMIN_ROLE: &str = "_SEED_ADMIN_ROLE";
/// The role named for `isDelegatedAdmin` when role assignments cannot be read.
pub const DELEGATED_ADMIN_ROLE: &str = "delegated admin (role not readable)";

/// What one `login_challenge_method` value says about the user's second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A second factor of this kind.
    Second(FactorType),
    /// A first-factor value (`password`, `none`): nothing about the second factor.
    FirstFactor,
    /// A value this table does not know: counted, and taken as a factor of type `other`.
    Unrecognised,
}

/// The `login_challenge_method` table (docs/google.md "Factor kinds").
pub fn challenge(value: &str) -> Challenge {
    match value.trim().to_ascii_lowercase().as_str() {
        "security_key" | "passkey" => Challenge::Second(FactorType::Webauthn),
        "google_authenticator" | "totp" => Challenge::Second(FactorType::Totp),
        "google_prompt" | "internal_two_factor" => Challenge::Second(FactorType::Push),
        "idv_preregistered_phone" => Challenge::Second(FactorType::Sms),
        "backup_code" => Challenge::Second(FactorType::Other),
        "password" | "none" => Challenge::FirstFactor,
        _ => Challenge::Unrecognised,
    }
}

/// `suspended` → suspended; `archived` → disabled; otherwise active. An unknown flag counts
/// as not set (the Directory API always sends both with `projection=full`).
pub fn status(u: &User) -> Status {
    if u.suspended == Some(true) {
        Status::Suspended
    } else if u.archived == Some(true) {
        Status::Disabled
    } else {
        Status::Active
    }
}

/// `lastLoginTime`: a real time; the epoch sentinel (`1970-01-01T00:00:00.000Z`, or anything
/// not after it) means never; absent or unreadable is unknown.
pub fn last_login(u: &User) -> Known<Timestamp> {
    match u.last_login_time.as_deref().map(parse_ts) {
        Some(Ok(t)) if t.unix_timestamp() <= 0 => Known::Never,
        Some(Ok(t)) => Known::At(t),
        _ => Known::Unknown,
    }
}

/// The second-factor kinds the login audit showed for one user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenFactors {
    /// Distinct kinds seen in the window (unrecognised values as `other`).
    pub kinds: Vec<FactorType>,
    /// Whether the whole window was read; if not, kinds not yet seen may exist.
    pub complete: bool,
}

/// 2-Step Verification: not enrolled → no factor; enrolled → the kinds the login audit showed,
/// else one factor of type `other` (enrolled, kind unknown); while the audit is incomplete an
/// `other` factor stands for the kinds not yet seen, so a partial read never makes a user
/// look weaker than they are. `isEnforcedIn2Sv` → `enforced`. Enrolment unknown → MFA unknown.
pub fn mfa(u: &User, seen: &SeenFactors) -> Option<Mfa> {
    let enrolled = u.is_enrolled_in_2sv?;
    let mut kinds: Vec<FactorType> = if enrolled {
        seen.kinds.clone()
    } else {
        Vec::new()
    };
    if enrolled && (kinds.is_empty() || !seen.complete) && !kinds.contains(&FactorType::Other) {
        kinds.push(FactorType::Other);
    }
    Some(Mfa {
        factors: kinds
            .into_iter()
            .map(|t| Factor {
                factor_type: t,
                status: FactorStatus::Active,
            })
            .collect(),
        enforced: u.is_enforced_in_2sv,
    })
}

/// Where a user's roles come from this poll.
#[derive(Debug, Clone, Copy)]
pub enum RoleSource<'a> {
    /// Role assignments were read. `held`: roles assigned to the user, to a group the user is
    /// in, or to everyone; `groups_known`: whether group members could be read.
    Assignments {
        held: &'a [Arc<str>],
        groups_known: bool,
    },
    /// Role assignments were refused: only `isAdmin` / `isDelegatedAdmin`.
    Flags,
}

/// The user's admin roles. With every assignment read the list is complete (empty = not an
/// admin). Without group members, roles held through groups are unknown: a user with no role
/// of their own is unknown, not "no role"; the user's admin flags still add what they prove.
/// With only the flags, `isAdmin` is the super-admin role and `isDelegatedAdmin` another one.
pub fn roles<'a>(u: &User, src: RoleSource<'a>, super_admin: &'a str) -> Option<Vec<Role>> {
    fn push<'a>(names: &mut Vec<&'a str>, n: &'a str) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let mut names: Vec<&str> = Vec::new();
    let complete = match src {
        RoleSource::Assignments { held, groups_known } => {
            for n in held {
                push(&mut names, n);
            }
            if !groups_known {
                if u.is_admin == Some(true) && !names.contains(&super_admin) {
                    push(&mut names, super_admin);
                }
                if u.is_delegated_admin == Some(true) && names.iter().all(|n| *n == super_admin) {
                    push(&mut names, DELEGATED_ADMIN_ROLE);
                }
            }
            groups_known
        }
        RoleSource::Flags => {
            if u.is_admin.is_none() && u.is_delegated_admin.is_none() {
                return None;
            }
            if u.is_admin == Some(true) {
                push(&mut names, super_admin);
            }
            if u.is_delegated_admin == Some(true) {
                push(&mut names, DELEGATED_ADMIN_ROLE);
            }
            true
        }
    };
    if names.is_empty() && !complete {
        return None;
    }
    Some(
        names
            .into_iter()
            .map(|n| Role {
                name: n.to_string(),
                last_used: Known::Unknown,
            })
            .collect(),
    )
}

/// What mapping one user needs besides the user.
pub struct UserContext<'a> {
    pub seen: SeenFactors,
    pub roles: RoleSource<'a>,
    /// The super-admin role's name as the policy knows it.
    pub super_admin: &'a str,
}

/// One Directory user as an account; `None` without an id (it could not be joined or
/// reported). Deleted users (`deletionTime`) are not accounts.
pub fn map_user(u: &User, cx: &UserContext<'_>) -> Option<Account> {
    let id = u.id.as_deref().filter(|s| !s.is_empty())?;
    if u.deletion_time.is_some() {
        return None;
    }
    let login = u
        .primary_email
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(id);
    let mut a = Account::new(id, login);
    a.display_name = u.name.as_ref().and_then(|n| {
        n.full_name.clone().filter(|s| !s.is_empty()).or_else(|| {
            let parts: Vec<&str> = [n.given_name.as_deref(), n.family_name.as_deref()]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    });
    a.account_type = AccountType::Human;
    a.status = status(u);
    a.created = u
        .creation_time
        .as_deref()
        .and_then(|s| parse_ts(s).ok())
        .filter(|t| t.unix_timestamp() > 0);
    a.last_login = last_login(u);
    if let Some(ou) = u.org_unit_path.as_deref().filter(|s| !s.is_empty()) {
        a.groups.push(ou.to_string());
    }
    if let Some(guest) = u.is_guest_user {
        a.attributes.insert(
            "user_type".into(),
            if guest { "Guest" } else { "Member" }.into(),
        );
    }
    if a.status == Status::Suspended {
        if let Some(r) = u.suspension_reason.as_deref() {
            a.attributes
                .insert("suspension_reason".into(), r.to_string().into());
        }
    }
    a.mfa = mfa(u, &cx.seen);
    a.roles = roles(u, cx.roles, cx.super_admin);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FactorType::*;

    fn user(json: &str) -> User {
        serde_json::from_str(json).unwrap()
    }

    fn kinds(a: &Option<Mfa>) -> Vec<FactorType> {
        a.as_ref().unwrap().factors.iter().map(|f| f.factor_type).collect()
    }

    #[test]
    fn every_documented_challenge_method_is_mapped() {
        for (v, c) in [
            ("security_key", Challenge::Second(Webauthn)),
            ("passkey", Challenge::Second(Webauthn)),
            ("google_authenticator", Challenge::Second(Totp)),
            ("totp", Challenge::Second(Totp)),
            ("google_prompt", Challenge::Second(Push)),
            ("internal_two_factor", Challenge::Second(Push)),
            ("idv_preregistered_phone", Challenge::Second(Sms)),
            ("backup_code", Challenge::Second(Other)),
            ("password", Challenge::FirstFactor),
            ("none", Challenge::FirstFactor),
            ("Security_Key", Challenge::Second(Webauthn)),
            ("carrier_pigeon", Challenge::Unrecognised),
            ("", Challenge::Unrecognised),
        ] {
            assert_eq!(challenge(v), c, "{v}");
        }
    }

    #[test]
    fn status_and_the_never_signed_in_sentinel() {
        assert_eq!(status(&user(r#"{"suspended":true,"archived":true}"#)), Status::Suspended);
        assert_eq!(status(&user(r#"{"suspended":false,"archived":true}"#)), Status::Disabled);
        assert_eq!(status(&user(r#"{"suspended":false,"archived":false}"#)), Status::Active);
        assert_eq!(
            last_login(&user(r#"{"lastLoginTime":"1970-01-01T00:00:00.000Z"}"#)),
            Known::Never
        );
        assert!(matches!(
            last_login(&user(r#"{"lastLoginTime":"2026-11-01T08:00:00.000Z"}"#)),
            Known::At(_)
        ));
        assert_eq!(last_login(&user("{}")), Known::Unknown, "absent is unknown, not never");
        assert_eq!(last_login(&user(r#"{"lastLoginTime":"yesterday"}"#)), Known::Unknown);
    }

    #[test]
    fn two_step_verification_refined_by_the_login_audit() {
        let done = |k: &[FactorType]| SeenFactors {
            kinds: k.to_vec(),
            complete: true,
        };
        let enrolled = user(r#"{"isEnrolledIn2Sv":true,"isEnforcedIn2Sv":false}"#);
        // Enrolled, nothing seen: one factor of unknown kind.
        assert_eq!(kinds(&mfa(&enrolled, &done(&[]))), vec![Other]);
        assert_eq!(mfa(&enrolled, &done(&[])).unwrap().enforced, Some(false));
        // Seen kinds replace it; a phone-only user is left with SMS only (weak).
        assert_eq!(kinds(&mfa(&enrolled, &done(&[Sms]))), vec![Sms]);
        assert_eq!(kinds(&mfa(&enrolled, &done(&[Sms, Webauthn]))), vec![Sms, Webauthn]);
        // While the window is not fully read, unseen kinds may exist.
        let partial = SeenFactors {
            kinds: vec![Sms],
            complete: false,
        };
        assert_eq!(kinds(&mfa(&enrolled, &partial)), vec![Sms, Other]);
        // Not enrolled: no factor, whatever the audit showed.
        let not = user(r#"{"isEnrolledIn2Sv":false,"isEnforcedIn2Sv":true}"#);
        assert_eq!(kinds(&mfa(&not, &done(&[Totp]))), Vec::<FactorType>::new());
        assert_eq!(mfa(&not, &done(&[])).unwrap().enforced, Some(true));
        // Enrolment unknown: MFA unknown.
        assert_eq!(mfa(&user("{}"), &done(&[Totp])), None);
    }

    #[test]
    fn roles_from_assignments_groups_and_flags() {
        let names = |r: Option<Vec<Role>>| r.map(|v| v.into_iter().map(|r| r.name).collect::<Vec<_>>());
        let plain = user(r#"{"isAdmin":false,"isDelegatedAdmin":false}"#);
        let sa = user(r#"{"isAdmin":true,"isDelegatedAdmin":false}"#);
        let delegated = user(r#"{"isAdmin":false,"isDelegatedAdmin":true}"#);
        let held: Vec<Arc<str>> = vec!["Helpdesk".into(), "Helpdesk".into()];
        let all = |h| RoleSource::Assignments {
            held: h,
            groups_known: true,
        };
        let no_groups = |h| RoleSource::Assignments {
            held: h,
            groups_known: false,
        };
        assert_eq!(names(roles(&plain, all(&[]), SUPER_ADMIN_ROLE)), Some(vec![]));
        assert_eq!(
            names(roles(&plain, all(&held), SUPER_ADMIN_ROLE)),
            Some(vec!["Helpdesk".to_string()])
        );
        // Without group members: no role of one's own is unknown …
        assert_eq!(names(roles(&plain, no_groups(&[]), SUPER_ADMIN_ROLE)), None);
        // … the flags still prove what they can …
        assert_eq!(
            names(roles(&sa, no_groups(&[]), SUPER_ADMIN_ROLE)),
            Some(vec![SUPER_ADMIN_ROLE.to_string()])
        );
        assert_eq!(
            names(roles(&delegated, no_groups(&[]), SUPER_ADMIN_ROLE)),
            Some(vec![DELEGATED_ADMIN_ROLE.to_string()])
        );
        // … and a direct role is known either way.
        assert_eq!(
            names(roles(&delegated, no_groups(&held), SUPER_ADMIN_ROLE)),
            Some(vec!["Helpdesk".to_string()])
        );
        // Assignments refused: the flags alone.
        assert_eq!(names(roles(&plain, RoleSource::Flags, SUPER_ADMIN_ROLE)), Some(vec![]));
        assert_eq!(
            names(roles(&sa, RoleSource::Flags, "Super Admin")),
            Some(vec!["Super Admin".to_string()])
        );
        assert_eq!(names(roles(&user("{}"), RoleSource::Flags, SUPER_ADMIN_ROLE)), None);
    }

    #[test]
    fn a_user_becomes_an_account() {
        let u = user(
            r#"{"id":"1","primaryEmail":"grace@example.com","name":{"givenName":"Grace","familyName":"Hopper"},
                "suspended":true,"suspensionReason":"ADMIN","archived":false,"orgUnitPath":"/IT/Admins",
                "creationTime":"2024-01-10T08:00:00.000Z","lastLoginTime":"1970-01-01T00:00:00.000Z",
                "isGuestUser":true,"isEnrolledIn2Sv":false}"#,
        );
        let cx = UserContext {
            seen: SeenFactors::default(),
            roles: RoleSource::Flags,
            super_admin: SUPER_ADMIN_ROLE,
        };
        let a = map_user(&u, &cx).unwrap();
        assert_eq!((a.id.as_str(), a.login.as_str()), ("1", "grace@example.com"));
        assert_eq!(a.display_name.as_deref(), Some("Grace Hopper"));
        assert_eq!(a.status, Status::Suspended);
        assert_eq!(a.groups, vec!["/IT/Admins".to_string()]);
        assert_eq!(a.attributes["user_type"], "Guest");
        assert_eq!(a.attributes["suspension_reason"], "ADMIN");
        assert_eq!(a.last_login, Known::Never);
        assert!(a.created.is_some());
        assert_eq!(a.roles, None, "no flags, no assignments: unknown");
        assert!(map_user(&user(r#"{"primaryEmail":"x@y"}"#), &cx).is_none());
        assert!(map_user(&user(r#"{"id":"2","deletionTime":"2026-01-01T00:00:00Z"}"#), &cx).is_none());
    }
}
