//! Pure mapping from Graph objects to the normalised model: users → human accounts,
//! `methodsRegistered` → factors, role assignments → roles, app registrations and service
//! principals → service accounts with `client_secret` / `certificate` credentials.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    parse_ts, Account, AccountType, Credential, CredentialType, Factor, FactorStatus, FactorType,
    Known, Mfa, Role, Status, Timestamp,
};

use super::wire::{Application, KeyCredential, PasswordCredential, ServicePrincipal, User};

/// `methodsRegistered` values (userRegistrationDetails) → the model's factor types.
///
/// The values are Graph's `usageAuthMethod`-style names as Microsoft Learn lists them
/// ("usageAuthMethod", "userRegistrationDetails"); `None` means "registered, but not an MFA
/// factor": security questions and app passwords only serve self-service password reset or
/// legacy clients, and a Temporary Access Pass is a time-limited onboarding credential.
/// Values not in this table map to `other` (a new method still counts as *some* MFA).
pub const METHODS: &[(&str, Option<FactorType>)] = &[
    // Phone: a mobile phone can receive SMS or calls; SMS is the weaker reading and both are
    // weak by default. Alternate mobile and office phones take voice calls only.
    ("mobilePhone", Some(FactorType::Sms)),
    ("sms", Some(FactorType::Sms)),
    ("mobileSMS", Some(FactorType::Sms)),
    ("alternateMobilePhone", Some(FactorType::Voice)),
    ("officePhone", Some(FactorType::Voice)),
    ("mobileCall", Some(FactorType::Voice)),
    ("alternateMobileCall", Some(FactorType::Voice)),
    ("email", Some(FactorType::Email)),
    // Microsoft Authenticator: push approval and phone sign-in (number matching) — both are
    // app notifications, not phishing-resistant.
    ("microsoftAuthenticatorPush", Some(FactorType::Push)),
    ("microsoftAuthenticatorPasswordless", Some(FactorType::Push)),
    ("appNotification", Some(FactorType::Push)),
    // One-time passcodes.
    ("softwareOneTimePasscode", Some(FactorType::Totp)),
    ("appCode", Some(FactorType::Totp)),
    ("oneTimePasscode", Some(FactorType::Totp)),
    ("hardwareOneTimePasscode", Some(FactorType::HardwareToken)),
    // FIDO2 / passkeys / platform authenticators: phishing-resistant.
    ("fido2SecurityKey", Some(FactorType::Webauthn)),
    ("fido2", Some(FactorType::Webauthn)),
    ("fido", Some(FactorType::Webauthn)),
    ("passKeyDeviceBound", Some(FactorType::Webauthn)),
    (
        "passKeyDeviceBoundAuthenticator",
        Some(FactorType::Webauthn),
    ),
    ("passKeyDeviceBoundWindowsHello", Some(FactorType::Webauthn)),
    ("passKeySynced", Some(FactorType::Webauthn)),
    ("windowsHelloForBusiness", Some(FactorType::Webauthn)),
    ("macOsSecureEnclaveKey", Some(FactorType::Webauthn)),
    // Certificate-based authentication.
    ("x509Certificate", Some(FactorType::SmartCard)),
    (
        "certificateBasedAuthentication",
        Some(FactorType::SmartCard),
    ),
    ("x509CertificateMultiFactor", Some(FactorType::SmartCard)),
    // Not MFA factors.
    ("securityQuestion", None),
    ("appPassword", None),
    ("temporaryAccessPass", None),
    ("password", None),
];

/// The factor a registered method gives, `None` when it is not an MFA factor.
pub fn factor_for_method(method: &str) -> Option<FactorType> {
    match METHODS.iter().find(|(m, _)| m.eq_ignore_ascii_case(method)) {
        Some((_, f)) => *f,
        None => Some(FactorType::Other),
    }
}

/// A user's registered factor types as a bit set (index = `FactorType as usize`): compact
/// enough to keep for every user of a 200k-user tenant between the report and the user pages.
pub fn factor_bits<'a>(methods: impl IntoIterator<Item = &'a String>) -> u16 {
    methods
        .into_iter()
        .filter_map(|m| factor_for_method(m))
        .fold(0u16, |acc, f| acc | (1 << f as usize))
}

pub fn mfa_from_bits(bits: u16, enforced: Option<bool>) -> Mfa {
    Mfa {
        factors: FactorType::ALL
            .iter()
            .filter(|f| bits & (1 << **f as usize) != 0)
            .map(|f| Factor {
                factor_type: *f,
                status: FactorStatus::Active,
            })
            .collect(),
        enforced,
    }
}

/// Directory object ids are GUIDs; as a `u128` they key the per-user lookups in 16 bytes.
pub fn guid_key(id: &str) -> Option<u128> {
    if id.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    let mut n = 0;
    for b in id.bytes() {
        if b == b'-' {
            continue;
        }
        let d = (b as char).to_digit(16)? as u128;
        v = (v << 4) | d;
        n += 1;
    }
    (n == 32).then_some(v)
}

/// A map keyed by directory object id, GUIDs stored compactly.
#[derive(Debug)]
pub struct IdMap<V> {
    guids: HashMap<u128, V>,
    other: HashMap<String, V>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            guids: HashMap::new(),
            other: HashMap::new(),
        }
    }
}

impl<V> IdMap<V> {
    pub fn insert(&mut self, id: &str, v: V) {
        match guid_key(id) {
            Some(k) => {
                self.guids.insert(k, v);
            }
            None => {
                self.other.insert(id.to_string(), v);
            }
        }
    }
    pub fn get(&self, id: &str) -> Option<&V> {
        match guid_key(id) {
            Some(k) => self.guids.get(&k),
            None => self.other.get(id),
        }
    }
    pub fn get_mut_or_default(&mut self, id: &str) -> &mut V
    where
        V: Default,
    {
        match guid_key(id) {
            Some(k) => self.guids.entry(k).or_default(),
            None => self.other.entry(id.to_string()).or_default(),
        }
    }
    pub fn remove(&mut self, id: &str) -> Option<V> {
        match guid_key(id) {
            Some(k) => self.guids.remove(&k),
            None => self.other.remove(id),
        }
    }
    /// Every value, leaving the map empty.
    pub fn drain(&mut self) -> impl Iterator<Item = V> + '_ {
        self.guids
            .drain()
            .map(|(_, v)| v)
            .chain(self.other.drain().map(|(_, v)| v))
    }
    pub fn len(&self) -> usize {
        self.guids.len() + self.other.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One directory role a principal holds.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleGrant {
    /// The role definition's display name ("Global Administrator").
    pub name: Arc<str>,
    /// PIM-eligible (can activate) rather than active.
    pub eligible: bool,
    /// Held through membership of this group (display id), not directly.
    pub via_group: Option<Arc<str>>,
}

/// Turns a principal's grants into model roles (one per role name, active wins over eligible)
/// and the attributes that explain them.
pub fn roles_from_grants(
    grants: &[RoleGrant],
    attributes: &mut BTreeMap<String, serde_json::Value>,
) -> Vec<Role> {
    let mut by_name: BTreeMap<&str, bool> = BTreeMap::new();
    for g in grants {
        let e = by_name.entry(&g.name).or_insert(true);
        *e = *e && g.eligible;
    }
    let eligible: Vec<serde_json::Value> = by_name
        .iter()
        .filter(|(_, el)| **el)
        .map(|(n, _)| serde_json::Value::String(n.to_string()))
        .collect();
    if !eligible.is_empty() {
        attributes.insert(
            "pim_eligible_roles".into(),
            serde_json::Value::Array(eligible),
        );
    }
    let mut groups: Vec<&str> = grants
        .iter()
        .filter_map(|g| g.via_group.as_deref())
        .collect();
    groups.sort_unstable();
    groups.dedup();
    if !groups.is_empty() {
        attributes.insert(
            "roles_via_groups".into(),
            serde_json::Value::Array(
                groups
                    .into_iter()
                    .map(|g| serde_json::Value::String(g.into()))
                    .collect(),
            ),
        );
    }
    by_name
        .keys()
        .map(|n| Role {
            name: n.to_string(),
            last_used: Known::Unknown,
        })
        .collect()
}

/// Parses a Graph `DateTimeOffset`. Graph writes up to 7 fractional digits; an
/// unparseable value or the `0001-01-01T00:00:00Z` "never" sentinel reads as `None`.
pub fn ts(s: Option<&str>) -> Option<Timestamp> {
    let t = parse_ts(s?).ok()?;
    (t.year() > 1970).then_some(t)
}

/// Secrets and certificates whose end date is this far out are "no expiry" (the portal and
/// Graph refuse a null `endDateTime`, so "never expires" is written as a far-future date,
/// commonly 2299-12-31 or 9999-12-31).
const NO_EXPIRY_YEAR: i32 = 2100;

fn expiry(end: Option<&str>) -> Known<Timestamp> {
    match ts(end) {
        Some(t) if t.year() >= NO_EXPIRY_YEAR => Known::Never,
        Some(t) => Known::At(t),
        None => Known::Never,
    }
}

fn cred_id(kind: &str, key_id: Option<&str>, name: Option<&str>) -> String {
    let key = key_id.unwrap_or("?");
    match name.filter(|n| !n.is_empty()) {
        Some(n) => format!("{kind}:{key} ({n})"),
        None => format!("{kind}:{key}"),
    }
}

pub fn secret_credential(p: &PasswordCredential) -> Credential {
    Credential {
        credential_type: CredentialType::ClientSecret,
        id: cred_id("secret", p.key_id.as_deref(), p.display_name.as_deref()),
        last_rotated: ts(p.start_date_time.as_deref()).map_or(Known::Unknown, Known::At),
        expires: expiry(p.end_date_time.as_deref()),
        last_used: Known::Unknown,
    }
}

/// `keyCredentials`: X.509 certificates (`AsymmetricX509Cert`, `X509CertAndPassword`) are
/// certificates; a `Symmetric` key is a shared secret.
pub fn key_credential(k: &KeyCredential) -> Credential {
    let symmetric = k
        .key_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("Symmetric"));
    Credential {
        credential_type: if symmetric {
            CredentialType::ClientSecret
        } else {
            CredentialType::Certificate
        },
        id: cred_id(
            if symmetric { "key" } else { "cert" },
            k.key_id.as_deref(),
            k.display_name.as_deref(),
        ),
        last_rotated: ts(k.start_date_time.as_deref()).map_or(Known::Unknown, Known::At),
        expires: expiry(k.end_date_time.as_deref()),
        last_used: Known::Unknown,
    }
}

/// What the source knows besides the user object itself.
pub struct UserContext<'a> {
    /// `signInActivity` was readable (licence and permission): a missing value means "never".
    pub sign_in_known: bool,
    /// Registered factor bits when the registration report was readable; `None` inside
    /// means the report has no row for this user (unknown).
    pub mfa: Option<Option<u16>>,
    pub mfa_enforced: Option<bool>,
    /// `None` when roles could not be read.
    pub roles: Option<&'a [RoleGrant]>,
}

/// The latest sign-in: `lastSuccessfulSignInDateTime`, or (not backfilled before December
/// 2023) the later of the interactive and non-interactive attempts.
pub fn last_login(u: &User, sign_in_known: bool) -> Known<Timestamp> {
    if !sign_in_known {
        return Known::Unknown;
    }
    let Some(Some(a)) = &u.sign_in_activity else {
        return Known::Never;
    };
    if let Some(t) = ts(a.last_successful_sign_in_date_time.as_deref()) {
        return Known::At(t);
    }
    let i = ts(a.last_sign_in_date_time.as_deref());
    let n = ts(a.last_non_interactive_sign_in_date_time.as_deref());
    match i.max(n) {
        Some(t) => Known::At(t),
        None => Known::Never,
    }
}

pub fn is_guest(u: &User) -> bool {
    u.user_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("guest"))
}

pub fn map_user(u: &User, cx: &UserContext<'_>) -> Account {
    let login = u
        .user_principal_name
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| u.id.clone());
    let mut a = Account::new(u.id.clone(), login);
    a.display_name = u.display_name.clone();
    a.account_type = AccountType::Human;
    a.status = if u.account_enabled == Some(false) {
        Status::Disabled
    } else {
        Status::Active
    };
    a.created = ts(u.created_date_time.as_deref());
    a.last_login = last_login(u, cx.sign_in_known);
    a.terminated = ts(u.employee_leave_date_time.as_deref());
    let s = |v: &str| serde_json::Value::String(v.to_string());
    if let Some(t) = &u.user_type {
        a.attributes.insert("user_type".into(), s(t));
    }
    if let Some(d) = &u.department {
        a.attributes.insert("department".into(), s(d));
    }
    if let Some(t) = &u.job_title {
        a.attributes.insert("title".into(), s(t));
    }
    if let Some(sync) = u.on_premises_sync_enabled {
        a.attributes
            .insert("on_premises_sync_enabled".into(), sync.into());
    }
    a.mfa = match cx.mfa {
        Some(Some(bits)) => Some(mfa_from_bits(bits, cx.mfa_enforced)),
        _ => None,
    };
    // Guests authenticate at their home organisation: no password lives in this tenant.
    a.credentials = if is_guest(u) {
        Some(Vec::new())
    } else {
        ts(u.last_password_change_date_time.as_deref()).map(|t| {
            vec![Credential {
                credential_type: CredentialType::Password,
                id: "password".into(),
                last_rotated: Known::At(t),
                expires: Known::Unknown,
                last_used: Known::Unknown,
            }]
        })
    };
    a.roles = cx
        .roles
        .map(|grants| roles_from_grants(grants, &mut a.attributes));
    a
}

/// One workload identity: an app registration, its service principal in this tenant, or
/// both (joined on `appId`).
pub fn map_workload(
    app: Option<&Application>,
    sp: Option<&ServicePrincipal>,
    roles: Option<&[RoleGrant]>,
) -> Option<Account> {
    let id = app
        .map(|a| a.id.clone())
        .or_else(|| sp.map(|s| s.id.clone()))?;
    let app_id = app
        .and_then(|a| a.app_id.clone())
        .or_else(|| sp.and_then(|s| s.app_id.clone()));
    let name = app
        .and_then(|a| a.display_name.clone())
        .or_else(|| sp.and_then(|s| s.display_name.clone()));
    let mut a = Account::new(id.clone(), app_id.clone().unwrap_or_else(|| id.clone()));
    a.display_name = name;
    a.account_type = AccountType::Service;
    a.status = if sp.and_then(|s| s.account_enabled) == Some(false) {
        Status::Disabled
    } else {
        Status::Active
    };
    a.created = app.and_then(|a| ts(a.created_date_time.as_deref()));
    let sp_type = sp.and_then(|s| s.service_principal_type.clone());
    let managed = sp_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("ManagedIdentity"));
    let s = |v: &str| serde_json::Value::String(v.to_string());
    a.attributes.insert(
        "kind".into(),
        s(match (app.is_some(), managed) {
            (true, _) => "application",
            (false, true) => "managed_identity",
            (false, false) => "service_principal",
        }),
    );
    if let Some(id) = &app_id {
        a.attributes.insert("app_id".into(), s(id));
    }
    if let Some(sp) = sp {
        a.attributes
            .insert("service_principal_id".into(), s(&sp.id));
        if let Some(org) = &sp.app_owner_organization_id {
            a.attributes
                .insert("app_owner_organization_id".into(), s(org));
        }
    }
    if let Some(t) = &sp_type {
        a.attributes.insert("service_principal_type".into(), s(t));
    }
    let mut creds = Vec::new();
    if let Some(app) = app {
        creds.extend(app.password_credentials.iter().map(secret_credential));
        creds.extend(app.key_credentials.iter().map(key_credential));
    }
    // A managed identity's keys are issued and rotated by Azure: not the owner's to rotate.
    if let Some(sp) = sp.filter(|_| !managed) {
        creds.extend(sp.password_credentials.iter().map(secret_credential));
        creds.extend(sp.key_credentials.iter().map(key_credential));
    }
    a.credentials = Some(creds);
    a.roles = roles.map(|g| roles_from_grants(g, &mut a.attributes));
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::super::wire::SignInActivity;
    use super::*;
    use time::macros::datetime;

    #[test]
    fn methods_table_maps_the_documented_values() {
        assert_eq!(factor_for_method("mobilePhone"), Some(FactorType::Sms));
        assert_eq!(factor_for_method("officePhone"), Some(FactorType::Voice));
        assert_eq!(factor_for_method("email"), Some(FactorType::Email));
        assert_eq!(
            factor_for_method("microsoftAuthenticatorPush"),
            Some(FactorType::Push)
        );
        assert_eq!(
            factor_for_method("microsoftAuthenticatorPasswordless"),
            Some(FactorType::Push)
        );
        assert_eq!(
            factor_for_method("softwareOneTimePasscode"),
            Some(FactorType::Totp)
        );
        assert_eq!(
            factor_for_method("hardwareOneTimePasscode"),
            Some(FactorType::HardwareToken)
        );
        for m in [
            "fido2SecurityKey",
            "passKeyDeviceBound",
            "passKeySynced",
            "windowsHelloForBusiness",
            "macOsSecureEnclaveKey",
        ] {
            assert_eq!(factor_for_method(m), Some(FactorType::Webauthn), "{m}");
        }
        assert_eq!(
            factor_for_method("x509Certificate"),
            Some(FactorType::SmartCard)
        );
        assert_eq!(factor_for_method("securityQuestion"), None);
        assert_eq!(factor_for_method("temporaryAccessPass"), None);
        assert_eq!(
            factor_for_method("someFutureMethod"),
            Some(FactorType::Other)
        );
    }

    #[test]
    fn factor_bits_round_trip() {
        let m = vec![
            "mobilePhone".to_string(),
            "fido2SecurityKey".to_string(),
            "securityQuestion".to_string(),
        ];
        let mfa = mfa_from_bits(factor_bits(&m), None);
        let types: Vec<_> = mfa.active_factors().collect();
        assert_eq!(types, vec![FactorType::Webauthn, FactorType::Sms]);
        assert!(mfa_from_bits(factor_bits(&[]), None).factors.is_empty());
    }

    #[test]
    fn guid_keys() {
        assert_eq!(guid_key("00000000-0000-0000-0000-00000000000a"), Some(10));
        assert_eq!(guid_key("not-a-guid"), None);
        let mut m = IdMap::default();
        m.insert("00000000-0000-0000-0000-00000000000A", 1u8);
        m.insert("odd", 2);
        assert_eq!(m.get("00000000-0000-0000-0000-00000000000a"), Some(&1));
        assert_eq!(m.get("odd"), Some(&2));
        assert_eq!(m.len(), 2);
    }

    fn user(sign_in: Option<Option<SignInActivity>>) -> User {
        User {
            id: "u1".into(),
            user_principal_name: Some("a@contoso.com".into()),
            sign_in_activity: sign_in,
            ..Default::default()
        }
    }

    #[test]
    fn last_login_prefers_successful_then_latest_attempt() {
        let u = user(Some(Some(SignInActivity {
            last_sign_in_date_time: Some("2026-01-02T00:00:00Z".into()),
            last_non_interactive_sign_in_date_time: Some("2026-03-04T00:00:00.1234567Z".into()),
            last_successful_sign_in_date_time: None,
        })));
        assert_eq!(
            last_login(&u, true),
            Known::At(datetime!(2026-03-04 00:00:00.1234567 UTC))
        );
        let u = user(Some(Some(SignInActivity {
            last_sign_in_date_time: Some("2026-05-01T00:00:00Z".into()),
            last_non_interactive_sign_in_date_time: None,
            last_successful_sign_in_date_time: Some("2026-04-01T00:00:00Z".into()),
        })));
        assert_eq!(
            last_login(&u, true),
            Known::At(datetime!(2026-04-01 0:00 UTC))
        );
        // Null activity, or only the 0001-01-01 sentinel: never signed in.
        assert_eq!(last_login(&user(Some(None)), true), Known::Never);
        assert_eq!(last_login(&user(None), true), Known::Never);
        let u = user(Some(Some(SignInActivity {
            last_sign_in_date_time: Some("0001-01-01T00:00:00Z".into()),
            ..Default::default()
        })));
        assert_eq!(last_login(&u, true), Known::Never);
        // Not readable (licence/permission): unknown, never "never".
        assert_eq!(last_login(&user(Some(None)), false), Known::Unknown);
    }

    #[test]
    fn disabled_guest_user_maps() {
        let u = User {
            id: "g1".into(),
            user_principal_name: Some("bob_fabrikam.com#EXT#@contoso.onmicrosoft.com".into()),
            account_enabled: Some(false),
            user_type: Some("Guest".into()),
            last_password_change_date_time: Some("2020-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        let a = map_user(
            &u,
            &UserContext {
                sign_in_known: false,
                mfa: Some(None),
                mfa_enforced: None,
                roles: Some(&[]),
            },
        );
        assert_eq!(a.status, Status::Disabled);
        assert_eq!(a.account_type, AccountType::Human);
        assert_eq!(a.attributes["user_type"], "Guest");
        assert_eq!(a.credentials, Some(vec![]));
        assert!(a.mfa.is_none());
        assert!(a.last_login.is_unknown());
        assert_eq!(a.roles, Some(vec![]));
    }

    #[test]
    fn roles_merge_active_and_eligible() {
        let ga: Arc<str> = "Global Administrator".into();
        let grants = vec![
            RoleGrant {
                name: ga.clone(),
                eligible: true,
                via_group: None,
            },
            RoleGrant {
                name: "User Administrator".into(),
                eligible: true,
                via_group: Some("helpdesk-admins".into()),
            },
            RoleGrant {
                name: ga,
                eligible: false,
                via_group: None,
            },
        ];
        let mut attrs = BTreeMap::new();
        let roles = roles_from_grants(&grants, &mut attrs);
        let names: Vec<_> = roles.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Global Administrator", "User Administrator"]);
        assert_eq!(
            attrs["pim_eligible_roles"],
            serde_json::json!(["User Administrator"])
        );
        assert_eq!(
            attrs["roles_via_groups"],
            serde_json::json!(["helpdesk-admins"])
        );
    }

    #[test]
    fn app_credentials_map_with_expiry_semantics() {
        let app = Application {
            id: "app-obj".into(),
            app_id: Some("app-id".into()),
            display_name: Some("Payroll sync".into()),
            password_credentials: vec![
                PasswordCredential {
                    key_id: Some("k1".into()),
                    display_name: Some("prod".into()),
                    start_date_time: Some("2025-01-01T00:00:00Z".into()),
                    end_date_time: Some("2299-12-31T00:00:00Z".into()),
                },
                PasswordCredential {
                    key_id: Some("k2".into()),
                    start_date_time: Some("2026-01-01T00:00:00Z".into()),
                    end_date_time: Some("2026-12-01T00:00:00Z".into()),
                    ..Default::default()
                },
            ],
            key_credentials: vec![KeyCredential {
                key_id: Some("c1".into()),
                key_type: Some("AsymmetricX509Cert".into()),
                start_date_time: Some("2025-06-01T00:00:00Z".into()),
                end_date_time: Some("2027-06-01T00:00:00Z".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let sp = ServicePrincipal {
            id: "sp-obj".into(),
            app_id: Some("app-id".into()),
            account_enabled: Some(true),
            service_principal_type: Some("Application".into()),
            ..Default::default()
        };
        let a = map_workload(Some(&app), Some(&sp), None).unwrap();
        assert_eq!(a.account_type, AccountType::Service);
        assert_eq!(a.login, "app-id");
        assert_eq!(a.id, "app-obj");
        let c = a.credentials.unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].credential_type, CredentialType::ClientSecret);
        assert_eq!(c[0].id, "secret:k1 (prod)");
        assert_eq!(c[0].expires, Known::Never);
        assert_eq!(c[1].expires, Known::At(datetime!(2026-12-01 0:00 UTC)));
        assert_eq!(c[2].credential_type, CredentialType::Certificate);
        assert_eq!(c[2].last_rotated, Known::At(datetime!(2025-06-01 0:00 UTC)));
        assert!(a.roles.is_none());
    }

    #[test]
    fn managed_identity_keys_are_not_the_owners_to_rotate() {
        let sp = ServicePrincipal {
            id: "mi".into(),
            service_principal_type: Some("ManagedIdentity".into()),
            key_credentials: vec![KeyCredential {
                key_id: Some("auto".into()),
                end_date_time: Some("2026-12-01T00:00:00Z".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let a = map_workload(None, Some(&sp), Some(&[])).unwrap();
        assert_eq!(a.credentials, Some(vec![]));
        assert_eq!(a.attributes["kind"], "managed_identity");
    }
}
