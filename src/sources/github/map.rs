//! Pure mapping from GitHub's organisation data into the model: members and outside
//! collaborators (type, owner role, 2FA state from the two filters), pending invitations,
//! SAML-authorised credentials and fine-grained tokens, audit-log event times. No I/O here.

use std::collections::{HashMap, HashSet};

use super::wire::{AuditEvent, CredentialAuthorization, FineGrainedToken, Invitation, SimpleUser};
use crate::model::{
    parse_ts, Account, AccountType, Credential, CredentialType, Factor, FactorStatus, FactorType,
    Known, Mfa, Role, Status, Timestamp,
};

/// The organisation owner's role: the organisation's super-admin role.
pub const OWNER_ROLE: &str = "owner";
/// A GitHub Enterprise Server site administrator (every organisation of the instance).
pub const SITE_ADMIN_ROLE: &str = "site_admin";

/// Which listing an account comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Population {
    Member,
    OutsideCollaborator,
}

/// One population's 2FA state, as GitHub's two filters tell it: `None` = that filter was
/// refused (it answers only to organisation owners).
#[derive(Debug, Default)]
pub struct TwoFactor {
    /// Ids listed by `filter=2fa_disabled`.
    pub disabled: Option<HashSet<String>>,
    /// Ids listed by `filter=2fa_insecure` (only insecure methods, e.g. SMS).
    pub insecure: Option<HashSet<String>>,
}

impl TwoFactor {
    /// The account's MFA: none (2FA disabled), `sms` (only insecure methods), `other` (2FA
    /// with a secure method GitHub does not name), or unknown when a filter that would decide
    /// it was refused.
    pub fn mfa(&self, id: &str, enforced: Option<bool>) -> Option<Mfa> {
        let factor = |t| Factor {
            factor_type: t,
            status: FactorStatus::Active,
        };
        let factors = match (&self.disabled, &self.insecure) {
            (Some(d), _) if d.contains(id) => Vec::new(),
            (_, Some(i)) if i.contains(id) => vec![factor(FactorType::Sms)],
            (Some(_), Some(_)) => vec![factor(FactorType::Other)],
            _ => return None,
        };
        Some(Mfa { factors, enforced })
    }
}

/// What the per-organisation reads know about every account.
pub struct Context<'a> {
    /// Ids of the organisation's owners; `None` = the owner listing was refused.
    pub owners: Option<&'a HashSet<String>>,
    pub two_factor: &'a TwoFactor,
    /// `Some(true)` when the organisation requires 2FA; otherwise unknown per account (the
    /// organisation-wide gap is reported once, as a tenant MFA policy gap).
    pub mfa_enforced: Option<bool>,
    /// Credentials by lowercased login; `None` = no credential listing could be read.
    pub credentials: Option<&'a HashMap<String, Vec<Credential>>>,
    /// Last activity by login (the audit log), or unknown.
    pub activity: &'a (dyn Fn(&str) -> Known<Timestamp> + Sync),
}

/// A member or outside collaborator; `None` for an item without an id or login.
pub fn map_user(u: SimpleUser, pop: Population, ctx: &Context<'_>) -> Option<Account> {
    let id = u.id.filter(|i| !i.is_empty())?;
    let login = u.login.filter(|l| !l.trim().is_empty())?;
    let mut a = Account::new(id, login);
    a.display_name = u.name.filter(|n| !n.trim().is_empty());
    let user_type = u.user_type.as_deref().unwrap_or("User");
    // The description's enum is User, Bot, Organization; imports add Mannequin (a placeholder
    // for an imported user, who cannot sign in).
    a.account_type = match user_type {
        "Bot" | "Organization" => AccountType::Service,
        _ => AccountType::Human,
    };
    if user_type == "Mannequin" {
        a.status = Status::Staged;
    }
    if user_type != "User" {
        a.attributes.insert("github_type".into(), user_type.into());
    }
    let site_admin = u.site_admin == Some(true);
    if site_admin {
        a.attributes.insert("site_admin".into(), "true".into());
    }
    let mut roles = match pop {
        Population::Member => ctx.owners.map(|owners| {
            if owners.contains(&a.id) {
                vec![role(OWNER_ROLE)]
            } else {
                Vec::new()
            }
        }),
        // Outside collaborators are never organisation owners.
        Population::OutsideCollaborator => {
            a.attributes
                .insert("outside_collaborator".into(), "true".into());
            Some(Vec::new())
        }
    };
    if site_admin {
        if let Some(r) = roles.as_mut() {
            r.push(role(SITE_ADMIN_ROLE));
        }
    }
    a.roles = roles;
    // 2FA is a person's setting: a bot or organisation account has none to speak of.
    if a.account_type == AccountType::Human {
        a.mfa = ctx.two_factor.mfa(&a.id, ctx.mfa_enforced);
    }
    if let Some(creds) = ctx.credentials {
        a.credentials = Some(
            creds
                .get(&a.login.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default(),
        );
    }
    a.last_login = (ctx.activity)(&a.login);
    Some(a)
}

fn role(name: &str) -> Role {
    Role {
        name: name.into(),
        last_used: Known::Unknown,
    }
}

/// A pending invitation: a staged account (not checked, counted in the inventory).
pub fn map_invitation(i: Invitation) -> Option<Account> {
    let id = i.id.filter(|i| !i.is_empty())?;
    // Invited by email: no login yet.
    let login = i
        .login
        .or(i.email)
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| format!("invitation-{id}"));
    let mut a = Account::new(format!("invitation:{id}"), login);
    a.status = Status::Staged;
    a.created = i.created_at.as_deref().and_then(|t| parse_ts(t).ok());
    if let Some(r) = i.role.filter(|r| !r.is_empty()) {
        a.attributes.insert("invitation_role".into(), r.into());
    }
    if i.failed_at.is_some() {
        a.attributes.insert("invitation_failed".into(), "true".into());
    }
    // Not a member yet: no organisation role until the invitation is accepted.
    a.roles = Some(Vec::new());
    Some(a)
}

/// A timestamp field: absent = unknown, `null` = never, an unparsable value = unknown.
fn known_ts(v: &Option<Option<serde_json::Value>>) -> Known<Timestamp> {
    match v {
        None => Known::Unknown,
        Some(None) => Known::Never,
        Some(Some(serde_json::Value::String(s))) => parse_ts(s).map(Known::At).unwrap_or_default(),
        Some(Some(_)) => Known::Unknown,
    }
}

fn opt_ts(v: Option<&str>) -> Known<Timestamp> {
    v.and_then(|s| parse_ts(s).ok())
        .map(Known::At)
        .unwrap_or_default()
}

/// What a SAML credential authorisation's `credential_type` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizedKind {
    /// `personal access token` (classic): a `token` credential of the member.
    Token,
    /// `SSH key`: an `ssh_key` credential of the member (SSH keys do not expire).
    SshKey,
    /// `OAuth app token`, `GitHub app token` (user-to-server): short-lived or managed by the
    /// app that holds them, not a credential the member rotates.
    AppManaged,
    /// A type GitHub has not documented.
    Other,
}

pub fn authorized_kind(credential_type: &str) -> AuthorizedKind {
    let t = credential_type.trim().to_ascii_lowercase();
    if t == "personal access token" || t == "personal access token (classic)" {
        AuthorizedKind::Token
    } else if t == "ssh key" {
        AuthorizedKind::SshKey
    } else if t.contains("oauth") || t.contains("app") {
        AuthorizedKind::AppManaged
    } else {
        AuthorizedKind::Other
    }
}

/// A SAML-authorised credential as (lowercased login, credential); `None` for app-managed
/// tokens, unknown types and items without a login or id.
pub fn map_authorization(c: &CredentialAuthorization) -> Option<(String, Credential)> {
    let login = c.login.as_deref().filter(|l| !l.is_empty())?;
    let cid = c.credential_id.as_deref()?;
    let (credential_type, id, expires) = match authorized_kind(c.credential_type.as_deref()?) {
        AuthorizedKind::Token => (
            CredentialType::Token,
            format!("pat-{cid}"),
            known_ts(&c.authorized_credential_expires_at),
        ),
        AuthorizedKind::SshKey => (
            CredentialType::SshKey,
            format!("ssh-key-{cid}"),
            // GitHub SSH keys have no expiry; a date, if GitHub ever sends one, is used.
            match known_ts(&c.authorized_credential_expires_at) {
                Known::At(t) => Known::At(t),
                _ => Known::Never,
            },
        ),
        AuthorizedKind::AppManaged | AuthorizedKind::Other => return None,
    };
    Some((
        login.to_ascii_lowercase(),
        Credential {
            credential_type,
            id,
            last_rotated: opt_ts(c.credential_authorized_at.as_deref()),
            expires,
            last_used: known_ts(&c.credential_accessed_at),
        },
    ))
}

/// A fine-grained personal access token with access to the organisation as (lowercased owner
/// login, credential). GitHub gives no creation date: the organisation's approval
/// (`access_granted_at`) stands in for the last rotation.
pub fn map_fine_grained(t: &FineGrainedToken) -> Option<(String, Credential)> {
    let login = t.owner.as_ref()?.login.as_deref().filter(|l| !l.is_empty())?;
    let id = t.id.as_deref().or(t.token_id.as_deref())?;
    Some((
        login.to_ascii_lowercase(),
        Credential {
            credential_type: CredentialType::Token,
            id: format!("fine-grained-pat-{id}"),
            last_rotated: opt_ts(t.access_granted_at.as_deref()),
            expires: known_ts(&t.token_expires_at),
            last_used: known_ts(&t.token_last_used_at),
        },
    ))
}

/// An audit-log event's time in unix seconds: `@timestamp` (Unix milliseconds), else
/// `created_at`; RFC 3339 strings are read too.
pub fn event_time(e: &AuditEvent) -> Option<i64> {
    let read = |v: &serde_json::Value| -> Option<i64> {
        match v {
            serde_json::Value::Number(n) => {
                let ms = n.as_f64()?;
                (ms.is_finite() && ms > 0.0 && ms < 1e16).then(|| (ms / 1000.0).floor() as i64)
            }
            serde_json::Value::String(s) => parse_ts(s).ok().map(|t| t.unix_timestamp()),
            _ => None,
        }
    };
    e.timestamp
        .as_ref()
        .and_then(read)
        .or_else(|| e.created_at.as_ref().and_then(read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn user(v: serde_json::Value) -> SimpleUser {
        serde_json::from_value(v).unwrap()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn never(_: &str) -> Known<Timestamp> {
        Known::Unknown
    }

    #[test]
    fn two_factor_from_the_filters() {
        let tf = TwoFactor {
            disabled: Some(set(&["1"])),
            insecure: Some(set(&["2"])),
        };
        assert!(tf.mfa("1", None).unwrap().factors.is_empty());
        let sms = tf.mfa("2", None).unwrap();
        assert_eq!(sms.factors[0].factor_type, FactorType::Sms);
        let secure = tf.mfa("3", Some(true)).unwrap();
        assert_eq!(secure.factors[0].factor_type, FactorType::Other);
        assert_eq!(secure.enforced, Some(true));
        // 2fa_insecure refused: those without 2FA are still known, the rest are not.
        let tf = TwoFactor {
            disabled: Some(set(&["1"])),
            insecure: None,
        };
        assert!(tf.mfa("1", None).unwrap().factors.is_empty());
        assert_eq!(tf.mfa("3", None), None);
        // Both refused: unknown, never "no MFA".
        let tf = TwoFactor::default();
        assert_eq!(tf.mfa("1", None), None);
    }

    #[test]
    fn members_collaborators_bots_and_owners() {
        let owners = set(&["1"]);
        let tf = TwoFactor {
            disabled: Some(set(&["2"])),
            insecure: Some(HashSet::new()),
        };
        let mut creds = HashMap::new();
        creds.insert(
            "octocat".to_string(),
            vec![Credential {
                credential_type: CredentialType::Token,
                id: "pat-1".into(),
                last_rotated: Known::Unknown,
                expires: Known::Never,
                last_used: Known::Unknown,
            }],
        );
        let seen = |l: &str| {
            if l == "OctoCat" {
                Known::At(datetime!(2026-11-01 00:00 UTC))
            } else {
                Known::Unknown
            }
        };
        let ctx = Context {
            owners: Some(&owners),
            two_factor: &tf,
            mfa_enforced: None,
            credentials: Some(&creds),
            activity: &seen,
        };
        let a = map_user(
            user(json!({"login":"OctoCat","id":1,"type":"User","site_admin":false})),
            Population::Member,
            &ctx,
        )
        .unwrap();
        assert_eq!(a.roles.as_ref().unwrap()[0].name, OWNER_ROLE);
        assert_eq!(a.credentials.as_ref().unwrap().len(), 1, "logins compare without case");
        assert_eq!(a.last_login, Known::At(datetime!(2026-11-01 00:00 UTC)));
        assert_eq!(a.mfa.as_ref().unwrap().factors[0].factor_type, FactorType::Other);
        assert!(a.attributes.is_empty());

        let c = map_user(
            user(json!({"login":"ext","id":2,"type":"User"})),
            Population::OutsideCollaborator,
            &ctx,
        )
        .unwrap();
        assert_eq!(c.attributes["outside_collaborator"], json!("true"));
        assert_eq!(c.roles, Some(vec![]));
        assert!(c.mfa.unwrap().factors.is_empty());
        assert_eq!(c.credentials, Some(vec![]));

        let b = map_user(
            user(json!({"login":"ci[bot]","id":3,"type":"Bot","site_admin":true})),
            Population::Member,
            &ctx,
        )
        .unwrap();
        assert_eq!(b.account_type, AccountType::Service);
        assert_eq!(b.mfa, None, "2FA does not apply to bots");
        assert_eq!(b.attributes["github_type"], json!("Bot"));
        let names: Vec<&str> = b.roles.as_ref().unwrap().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec![SITE_ADMIN_ROLE]);

        let m = map_user(
            user(json!({"login":"imported","id":4,"type":"Mannequin"})),
            Population::Member,
            &ctx,
        )
        .unwrap();
        assert_eq!(m.status, Status::Staged, "a mannequin cannot sign in");

        // Owner listing refused: roles unknown; no credential listing: credentials unknown.
        let ctx = Context {
            owners: None,
            two_factor: &tf,
            mfa_enforced: None,
            credentials: None,
            activity: &never,
        };
        let a = map_user(user(json!({"login":"x","id":5})), Population::Member, &ctx).unwrap();
        assert_eq!(a.roles, None);
        assert_eq!(a.credentials, None);
        assert_eq!(a.account_type, AccountType::Human, "type absent: a user");
        // No id or login: skipped.
        assert!(map_user(user(json!({"login":"x"})), Population::Member, &ctx).is_none());
        assert!(map_user(user(json!({"id":9,"login":" "})), Population::Member, &ctx).is_none());
    }

    #[test]
    fn invitations_are_staged() {
        let i: Invitation = serde_json::from_value(json!({
            "id": 7, "login": null, "email": "new@example.com", "role": "admin",
            "created_at": "2026-11-20T10:00:00Z", "failed_at": null
        }))
        .unwrap();
        let a = map_invitation(i).unwrap();
        assert_eq!(a.id, "invitation:7");
        assert_eq!(a.login, "new@example.com");
        assert_eq!(a.status, Status::Staged);
        assert_eq!(a.created, Some(datetime!(2026-11-20 10:00 UTC)));
        assert_eq!(a.attributes["invitation_role"], json!("admin"));
        assert_eq!(a.roles, Some(vec![]));
    }

    #[test]
    fn authorised_credentials() {
        let c = |v: serde_json::Value| -> CredentialAuthorization { serde_json::from_value(v).unwrap() };
        let (login, pat) = map_authorization(&c(json!({
            "login": "OctoCat", "credential_id": 161195, "credential_type": "personal access token",
            "credential_authorized_at": "2026-01-26T19:06:43Z",
            "credential_accessed_at": null, "authorized_credential_expires_at": null
        })))
        .unwrap();
        assert_eq!(login, "octocat");
        assert_eq!(pat.credential_type, CredentialType::Token);
        assert_eq!(pat.id, "pat-161195");
        assert_eq!(pat.expires, Known::Never);
        assert_eq!(pat.last_used, Known::Never);
        assert_eq!(pat.last_rotated, Known::At(datetime!(2026-01-26 19:06:43 UTC)));
        // Expiry absent: unknown, not "never".
        let (_, pat) = map_authorization(&c(json!({
            "login": "a", "credential_id": 1, "credential_type": "personal access token"
        })))
        .unwrap();
        assert_eq!(pat.expires, Known::Unknown);
        let (_, key) = map_authorization(&c(json!({
            "login": "a", "credential_id": 2, "credential_type": "SSH Key",
            "credential_authorized_at": "2026-01-01T00:00:00Z",
            "credential_accessed_at": "2026-11-01T00:00:00Z"
        })))
        .unwrap();
        assert_eq!(key.credential_type, CredentialType::SshKey);
        assert_eq!(key.expires, Known::Never);
        assert_eq!(key.last_used, Known::At(datetime!(2026-11-01 00:00 UTC)));
        for t in ["OAuth app token", "GitHub app token", "quantum key"] {
            assert!(
                map_authorization(&c(json!({"login": "a", "credential_id": 3, "credential_type": t})))
                    .is_none(),
                "{t}"
            );
        }
        assert_eq!(authorized_kind("GitHub app token"), AuthorizedKind::AppManaged);
        assert_eq!(authorized_kind("quantum key"), AuthorizedKind::Other);
    }

    #[test]
    fn fine_grained_tokens() {
        let t: FineGrainedToken = serde_json::from_value(json!({
            "id": 25381, "owner": {"login": "OctoCat", "id": 1, "type": "User"},
            "access_granted_at": "2023-05-16T08:47:09.000-07:00", "token_id": 98716,
            "token_expired": false, "token_expires_at": null, "token_last_used_at": null
        }))
        .unwrap();
        let (login, c) = map_fine_grained(&t).unwrap();
        assert_eq!(login, "octocat");
        assert_eq!(c.id, "fine-grained-pat-25381");
        assert_eq!(c.expires, Known::Never);
        assert_eq!(c.last_used, Known::Never);
        assert_eq!(c.last_rotated, Known::At(datetime!(2023-05-16 15:47:09 UTC)));
    }

    #[test]
    fn audit_event_times() {
        let e = |v: serde_json::Value| -> AuditEvent { serde_json::from_value(v).unwrap() };
        assert_eq!(event_time(&e(json!({"@timestamp": 1615077308538_i64}))), Some(1615077308));
        assert_eq!(
            event_time(&e(json!({"created_at": "2021-03-07T00:35:08Z"}))),
            Some(1615077308)
        );
        assert_eq!(event_time(&e(json!({"@timestamp": "soon", "created_at": -5}))), None);
    }
}
