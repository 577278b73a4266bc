//! Okta → the normalised model, as pure functions: user status, factor type and status, the
//! user record (profile, leave date, Okta-mastered password), and names cleaned for messages.
//! The tables are documented in docs/okta.md.

use super::wire::{OktaFactor, OktaUser};
use crate::model::{
    parse_ts, Account, AccountType, Credential, CredentialType, Factor, FactorStatus, FactorType,
    Known, Status, Timestamp,
};

/// Okta user status → model status. `ACTIVE`, `PASSWORD_EXPIRED` and `RECOVERY` users can
/// sign in (or will after a reset), so they are active.
pub fn map_status(s: &str) -> Status {
    match s {
        "ACTIVE" | "PASSWORD_EXPIRED" | "RECOVERY" => Status::Active,
        "LOCKED_OUT" => Status::Locked,
        "SUSPENDED" => Status::Suspended,
        "DEPROVISIONED" => Status::Deprovisioned,
        // STAGED, PROVISIONED (activation pending), ACTIVATING, and anything new.
        _ => Status::Staged,
    }
}

/// Okta `factorType` → model factor type (see docs/okta.md for the table).
pub fn map_factor_type(t: &str) -> FactorType {
    match t {
        "push" => FactorType::Push,
        "token:software:totp" | "token:hotp" => FactorType::Totp,
        "webauthn" | "u2f" | "signed_nonce" => FactorType::Webauthn,
        "token:hardware" | "token" => FactorType::HardwareToken,
        "sms" => FactorType::Sms,
        "call" => FactorType::Voice,
        "email" => FactorType::Email,
        "question" => FactorType::Question,
        // "web" (Duo) and anything new.
        _ => FactorType::Other,
    }
}

/// Okta factor status → model factor status. Only `ACTIVE` counts as MFA.
pub fn map_factor_status(s: &str) -> FactorStatus {
    match s {
        "ACTIVE" => FactorStatus::Active,
        "PENDING_ACTIVATION" | "ENROLLED" => FactorStatus::Pending,
        _ => FactorStatus::Inactive,
    }
}

pub fn ts(v: &serde_json::Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| parse_ts(s).ok())
}

pub fn profile_str<'a>(p: &'a serde_json::Map<String, serde_json::Value>, k: &str) -> Option<&'a str> {
    p.get(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
}

/// A user without factors or roles (those are added later).
pub fn map_user(u: OktaUser, terminated_attribute: Option<&str>) -> Option<Account> {
    let id = u.id.filter(|i| !i.is_empty())?;
    let profile = u.profile.unwrap_or_default();
    let login = profile_str(&profile, "login")
        .or_else(|| profile_str(&profile, "email"))
        .unwrap_or(&id)
        .to_string();
    let mut a = Account::new(id, login);
    a.account_type = AccountType::Human;
    a.status = map_status(u.status.as_deref().unwrap_or(""));
    a.display_name = profile_str(&profile, "displayName")
        .map(str::to_string)
        .or_else(|| {
            let first = profile_str(&profile, "firstName").unwrap_or("");
            let last = profile_str(&profile, "lastName").unwrap_or("");
            let n = format!("{first} {last}").trim().to_string();
            (!n.is_empty()).then_some(n)
        });
    a.created = u.created.as_deref().and_then(|s| parse_ts(s).ok());
    a.last_login = match &u.last_login {
        None => Known::Unknown,
        Some(None) | Some(Some(serde_json::Value::Null)) => Known::Never,
        Some(Some(v)) => ts(v).map(Known::At).unwrap_or(Known::Unknown),
    };
    if let Some(attr) = terminated_attribute {
        a.terminated = profile.get(attr).and_then(ts);
    }
    for (key, attr) in [
        ("email", "email"),
        ("department", "department"),
        ("title", "title"),
        ("employeeNumber", "employee_number"),
    ] {
        if let Some(v) = profile_str(&profile, key) {
            a.attributes
                .insert(attr.to_string(), serde_json::Value::String(v.to_string()));
        }
    }
    if let Some(s) = &u.status {
        a.attributes
            .insert("okta_status".into(), serde_json::Value::String(s.clone()));
    }
    // An Okta-mastered password; federated users (provider type not OKTA) have none.
    let provider = u
        .credentials
        .as_ref()
        .and_then(|c| c.pointer("/provider/type"))
        .and_then(|t| t.as_str());
    let has_password_obj = u
        .credentials
        .as_ref()
        .is_some_and(|c| c.get("password").is_some());
    let mut creds = Vec::new();
    let changed = match &u.password_changed {
        Some(Some(v)) => ts(v),
        _ => None,
    };
    let has_password = changed.is_some() || has_password_obj;
    if has_password && (provider == Some("OKTA") || provider.is_none()) {
        creds.push(Credential {
            credential_type: CredentialType::Password,
            id: "password".into(),
            last_rotated: changed.map(Known::At).unwrap_or(Known::Unknown),
            expires: Known::Unknown,
            last_used: Known::Unknown,
        });
    }
    a.credentials = Some(creds);
    Some(a)
}

pub fn map_factors(list: Vec<OktaFactor>) -> Vec<Factor> {
    list.into_iter()
        .filter_map(|f| {
            Some(Factor {
                factor_type: map_factor_type(f.factor_type.as_deref()?),
                status: map_factor_status(f.status.as_deref().unwrap_or("")),
            })
        })
        .collect()
}

/// Cleans a provider-supplied name for a message: printable, at most 120 characters.
pub fn clean(s: Option<&str>) -> String {
    let s = s.unwrap_or("(unnamed)");
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(120).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::okta::wire::OktaUser;

    fn user(json: &str) -> Account {
        map_user(serde_json::from_str(json).unwrap(), Some("leaveDate")).unwrap()
    }

    #[test]
    fn statuses_map_onto_the_model() {
        for (okta, model) in [
            ("ACTIVE", Status::Active),
            ("PASSWORD_EXPIRED", Status::Active),
            ("RECOVERY", Status::Active),
            ("LOCKED_OUT", Status::Locked),
            ("SUSPENDED", Status::Suspended),
            ("DEPROVISIONED", Status::Deprovisioned),
            ("STAGED", Status::Staged),
            ("PROVISIONED", Status::Staged),
            ("SOMETHING_NEW", Status::Staged),
        ] {
            assert_eq!(map_status(okta), model, "{okta}");
        }
    }

    #[test]
    fn factor_types_map_onto_the_model() {
        for (okta, model) in [
            ("push", FactorType::Push),
            ("token:software:totp", FactorType::Totp),
            ("token:hotp", FactorType::Totp),
            ("webauthn", FactorType::Webauthn),
            ("u2f", FactorType::Webauthn),
            ("signed_nonce", FactorType::Webauthn),
            ("token:hardware", FactorType::HardwareToken),
            ("token", FactorType::HardwareToken),
            ("sms", FactorType::Sms),
            ("call", FactorType::Voice),
            ("email", FactorType::Email),
            ("question", FactorType::Question),
            ("web", FactorType::Other),
            ("carrier_pigeon", FactorType::Other),
        ] {
            assert_eq!(map_factor_type(okta), model, "{okta}");
        }
        assert_eq!(map_factor_status("ACTIVE"), FactorStatus::Active);
        assert_eq!(
            map_factor_status("PENDING_ACTIVATION"),
            FactorStatus::Pending
        );
        for s in ["NOT_SETUP", "INACTIVE", "DISABLED", "EXPIRED", ""] {
            assert_eq!(map_factor_status(s), FactorStatus::Inactive, "{s}");
        }
    }

    #[test]
    fn absent_is_unknown_and_null_is_never() {
        let a = user(r#"{"id":"00u1","status":"ACTIVE","profile":{"login":"a@x"}}"#);
        assert_eq!(a.last_login, Known::Unknown);
        let a =
            user(r#"{"id":"00u1","status":"ACTIVE","lastLogin":null,"profile":{"login":"a@x"}}"#);
        assert_eq!(a.last_login, Known::Never);
        let a = user(
            r#"{"id":"00u1","status":"ACTIVE","lastLogin":"2026-01-02T03:04:05.000Z","profile":{"login":"a@x"}}"#,
        );
        assert!(matches!(a.last_login, Known::At(_)));
        assert!(a.mfa.is_none(), "factors not fetched = unknown");
    }

    #[test]
    fn passwords_for_okta_users_only() {
        let a = user(
            r#"{"id":"1","passwordChanged":"2025-01-01T00:00:00.000Z","credentials":{"password":{},"provider":{"type":"OKTA","name":"OKTA"}},"profile":{"login":"a"}}"#,
        );
        let c = a.credentials.unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].credential_type, CredentialType::Password);
        assert!(matches!(c[0].last_rotated, Known::At(_)));
        let a = user(
            r#"{"id":"1","passwordChanged":null,"credentials":{"provider":{"type":"FEDERATION","name":"FEDERATION"}},"profile":{"login":"a"}}"#,
        );
        assert_eq!(a.credentials, Some(vec![]));
    }

    #[test]
    fn profile_attributes_and_leave_date() {
        let a = user(
            r#"{"id":"1","status":"ACTIVE","profile":{"login":"a@x","firstName":"Ann","lastName":"Lee","department":"Eng","title":"SRE","employeeNumber":"42","leaveDate":"2026-03-01"}}"#,
        );
        assert_eq!(a.display_name.as_deref(), Some("Ann Lee"));
        assert_eq!(a.attributes["department"], "Eng");
        assert_eq!(a.attributes["employee_number"], "42");
        assert_eq!(a.attributes["okta_status"], "ACTIVE");
        assert!(a.terminated.is_some());
    }

    #[test]
    fn hostile_users_are_skipped_not_fatal() {
        let users: Vec<OktaUser> = serde_json::from_str(
            r#"[{"id":42,"status":["x"],"lastLogin":"not a date","profile":{"login":7}},{"profile":{}},{"id":"ok","lastLogin":17}]"#,
        )
        .unwrap();
        let accounts: Vec<Account> = users
            .into_iter()
            .filter_map(|u| map_user(u, None))
            .collect();
        assert_eq!(accounts.len(), 1);
        assert_eq!(accounts[0].id, "ok");
        assert_eq!(accounts[0].login, "ok");
        assert_eq!(accounts[0].last_login, Known::Unknown);
    }
}
