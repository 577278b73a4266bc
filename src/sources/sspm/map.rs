//! Pure mapping of SSPM Identity API records into the model: `SaaSAccount` → an account of a
//! SaaS instance, the newest `MfaActivity` of an IdP user → an IdP account with its MFA state,
//! plus the tallies behind the source's own gauges (accounts per app, unrecognised values).
//! No I/O here; every rule below is documented in docs/sspm.md.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::wire::{MfaActivity, RawInstant, SaasAccount, Tri};
use crate::model::{
    Account, AccountType, Credential, CredentialType, Factor, FactorStatus, FactorType, Known, Mfa,
    Role, Status, Timestamp,
};

/// Role name for an elevated account whose `roles` names nothing.
pub const ELEVATED_ROLE: &str = "elevated";
/// Role name for an IdP user whose MFA activity says `admin: true`.
pub const IDP_ADMIN_ROLE: &str = "admin";
/// At most this many distinct `app` label values per source; the rest are summed as `other`.
pub const MAX_APPS: usize = 20;

/// Fields whose values the source reads against a fixed table; a value outside the table is
/// counted under its field (`identity_posture_sspm_unrecognized_values{field}`).
pub const TALLY_FIELDS: [&str; 4] = ["mfa_strength", "mfa_factors", "timestamp", "item"];

/// What a poll could not read as documented, for the gauge and one log line per field.
#[derive(Debug, Default)]
pub struct Tally {
    pub counts: BTreeMap<&'static str, u64>,
    /// Up to 10 distinct unrecognised values per field, for the log.
    pub samples: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Tally {
    pub fn note(&mut self, field: &'static str, value: &str) {
        *self.counts.entry(field).or_default() += 1;
        let s = self.samples.entry(field).or_default();
        if s.len() < 10 {
            s.insert(value.chars().take(80).collect());
        }
    }
    pub fn count(&self, field: &str) -> u64 {
        self.counts.get(field).copied().unwrap_or(0)
    }
}

/// Reads an instant, counting one that cannot be parsed.
pub fn instant(t: &Tri<RawInstant>, tally: &mut Tally) -> Tri<Timestamp> {
    match t {
        Tri::Absent => Tri::Absent,
        Tri::Null => Tri::Null,
        Tri::Value(raw) => match raw.parse() {
            Some(v) => Tri::Value(v),
            None => {
                tally.note(
                    "timestamp",
                    &match raw {
                        RawInstant::Text(s) => s.clone(),
                        RawInstant::Number(n) => n.to_string(),
                    },
                );
                // Unreadable is unknown, never "never".
                Tri::Absent
            }
        },
    }
}

fn known(t: Tri<Timestamp>) -> Known<Timestamp> {
    match t {
        Tri::Absent => Known::Unknown,
        Tri::Null => Known::Never,
        Tri::Value(v) => Known::At(v),
    }
}

/// Splits a list the API sends as one string (`roles`, `linkedHumanAccounts`, `mfaFactors`).
/// The separator is not documented: commas, semicolons, pipes and newlines all split, and a
/// JSON-array-looking string (`["Admin","Owner"]`) is read as one. Order kept, duplicates and
/// empties dropped.
pub fn split_list(s: &str) -> Vec<String> {
    let s = s.trim();
    if s.starts_with('[') {
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(s) {
            let mut out: Vec<String> = Vec::new();
            for i in items {
                let t = match i {
                    Value::String(s) => s.trim().to_string(),
                    Value::Null => continue,
                    other => other.to_string(),
                };
                if !t.is_empty() && !out.contains(&t) {
                    out.push(t);
                }
            }
            return out;
        }
    }
    let inner = s.trim_start_matches('[').trim_end_matches(']');
    let mut out: Vec<String> = Vec::new();
    for part in inner.split([',', ';', '|', '\n']) {
        let t = part.trim().trim_matches(['"', '\'']).trim();
        if !t.is_empty() && !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Lower-case, non-alphanumerics as `_`, no leading/trailing/double `_`.
fn norm(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// One `mfaFactors` entry mapped onto the model (see the table in docs/sspm.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorRead {
    /// "none", "password": not a second factor.
    NotAFactor,
    Factor(FactorType),
    /// Not in the table: read as `other` and counted.
    Unrecognized,
}

pub fn read_factor(raw: &str) -> FactorRead {
    let t = norm(raw);
    let words: Vec<&str> = t.split('_').collect();
    let has = |w: &str| words.contains(&w);
    let any = |ws: &[&str]| ws.iter().any(|w| has(w));
    let contains = |ps: &[&str]| ps.iter().any(|p| t.contains(p));
    use FactorType::*;
    let f = if matches!(
        t.as_str(),
        "" | "none" | "no" | "no_mfa" | "nomfa" | "n_a" | "na" | "null" | "password" | "pwd"
    ) || t == "password_only"
    {
        return FactorRead::NotAFactor;
    } else if contains(&[
        "webauthn",
        "fido",
        "passkey",
        "security_key",
        "securitykey",
        "u2f",
        "windows_hello",
        "hello_for_business",
        "platform_authenticator",
    ]) {
        Webauthn
    } else if contains(&["smart_card", "smartcard", "x509", "certificate"]) || any(&["piv", "cac"])
    {
        SmartCard
    } else if has("push") || t.contains("push") {
        Push
    } else if any(&["sms", "text"]) || t.contains("text_message") {
        Sms
    } else if any(&["voice", "call"]) {
        Voice
    } else if any(&["email", "mail"]) || t.contains("email") {
        Email
    } else if has("question") || has("questions") || has("kba") {
        Question
    } else if any(&[
        "hardware", "hotp", "securid", "rsa", "yubikey", "yubico", "hard",
    ]) {
        HardwareToken
    } else if any(&[
        "totp",
        "otp",
        "authenticator",
        "token",
        "soft",
        "software",
        "duo",
    ]) || contains(&["authenticator", "okta_verify", "google_auth"])
    {
        Totp
    } else if has("phone") {
        Sms
    } else {
        return FactorRead::Unrecognized;
    };
    FactorRead::Factor(f)
}

/// `mfaStrength` read against a small table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// No MFA (whatever `mfaFactors` lists).
    None,
    /// Some MFA (weak, medium, strong …): the factor types come from `mfaFactors`.
    Some,
    Unrecognized,
}

pub fn read_strength(raw: &str) -> Strength {
    match norm(raw).as_str() {
        "none" | "no" | "no_mfa" | "nomfa" | "disabled" | "not_enrolled" | "unenrolled"
        | "not_configured" | "missing" | "off" | "no_factor" | "password" | "password_only"
        | "single_factor" | "sfa" | "false" => Strength::None,
        "weak" | "low" | "poor" | "medium" | "moderate" | "fair" | "strong" | "high"
        | "very_strong" | "phishing_resistant" | "mfa" | "enabled" | "enrolled" | "yes"
        | "multi_factor" | "true" => Strength::Some,
        _ => Strength::Unrecognized,
    }
}

/// The MFA state one `MfaActivity` record tells: `None` when it says nothing readable.
pub fn mfa_of(r: &MfaActivity, tally: &mut Tally) -> Option<Mfa> {
    let strength = r.mfa_strength.as_deref().map(|s| {
        let v = read_strength(s);
        if v == Strength::Unrecognized {
            tally.note("mfa_strength", s);
        }
        v
    });
    if strength == Some(Strength::None) {
        return Some(Mfa {
            factors: Vec::new(),
            enforced: None,
        });
    }
    let mut factors: Vec<Factor> = Vec::new();
    if let Some(list) = &r.mfa_factors {
        for raw in split_list(list) {
            let ft = match read_factor(&raw) {
                FactorRead::NotAFactor => continue,
                FactorRead::Factor(f) => f,
                FactorRead::Unrecognized => {
                    tally.note("mfa_factors", &raw);
                    FactorType::Other
                }
            };
            if !factors.iter().any(|f| f.factor_type == ft) {
                factors.push(Factor {
                    factor_type: ft,
                    status: FactorStatus::Active,
                });
            }
        }
    }
    match (strength, &r.mfa_factors) {
        // MFA present, types not named: one factor of unknown type.
        (Some(Strength::Some), _) if factors.is_empty() => factors.push(Factor {
            factor_type: FactorType::Other,
            status: FactorStatus::Active,
        }),
        // Neither a readable strength nor a factor list: unknown.
        (None | Some(Strength::Unrecognized), None) => return None,
        _ => {}
    }
    Some(Mfa {
        factors,
        enforced: None,
    })
}

/// Keeps the newest `MfaActivity` per IdP user while pages stream by.
#[derive(Debug, Default)]
pub struct NewestPerUser {
    /// Keyed by user id (or lower-cased email when the id is missing).
    pub users: HashMap<String, (Option<Timestamp>, MfaActivity)>,
    pub records: u64,
    pub skipped: u64,
}

impl NewestPerUser {
    pub fn add(&mut self, r: MfaActivity, tally: &mut Tally) {
        self.records += 1;
        let Some(key) = r
            .user_id
            .clone()
            .or_else(|| r.email.as_ref().map(|e| e.to_lowercase()))
        else {
            self.skipped += 1;
            return;
        };
        let ts = instant(&r.timestamp, tally).value().copied();
        match self.users.get(&key) {
            // Newer wins; a record without a timestamp never replaces one with.
            Some((Some(cur), _)) if ts.is_none_or(|t| t <= *cur) => {}
            Some((None, _)) if ts.is_none() => {}
            _ => {
                self.users.insert(key, (ts, r));
            }
        }
    }
}

/// The IdP an MFA record came from.
#[derive(Debug, Clone)]
pub struct IdpCtx<'a> {
    pub idp_id: &'a str,
    pub idp_name: Option<&'a str>,
    pub app_type: Option<&'a str>,
}

/// An IdP user from the newest MFA activity record: human, active, last login unknown (an
/// MFA log is not a complete sign-in history), MFA from `mfaStrength`/`mfaFactors`,
/// `admin: true` → the role `admin`.
pub fn map_idp_user(
    key: &str,
    ts: Option<Timestamp>,
    r: &MfaActivity,
    idp: &IdpCtx<'_>,
    tally: &mut Tally,
) -> Account {
    let login = r.email.clone().unwrap_or_else(|| key.to_string());
    let mut a = Account::new(format!("idp:{}:{key}", idp.idp_id), login);
    a.display_name = r.full_name.clone();
    a.account_type = AccountType::Human;
    a.status = Status::Active;
    a.mfa = mfa_of(r, tally);
    a.roles = r.admin.map(|admin| {
        if admin {
            vec![Role {
                name: IDP_ADMIN_ROLE.into(),
                last_used: Known::Unknown,
            }]
        } else {
            Vec::new()
        }
    });
    let at = &mut a.attributes;
    at.insert("kind".into(), json!("idp_user"));
    at.insert("idp_id".into(), json!(idp.idp_id));
    if let Some(n) = idp.idp_name {
        at.insert("idp".into(), json!(n));
    }
    if let Some(t) = idp.app_type.or(r.idp_type.as_deref()) {
        at.insert("app_type".into(), json!(t));
    }
    if let Some(u) = &r.user_id {
        at.insert("user_id".into(), json!(u));
    }
    for (k, v) in [
        ("mfa_strength", &r.mfa_strength),
        ("mfa_factors", &r.mfa_factors),
        ("saas_provider_mfa_type", &r.saas_provider_mfa_type),
        ("last_mfa_app_type", &r.app_type),
    ] {
        if let Some(v) = v {
            at.insert(k.into(), json!(v));
        }
    }
    if let Some(t) = ts {
        at.insert(
            "last_mfa_activity".into(),
            json!(crate::model::format_ts(t)),
        );
    }
    a
}

/// The SaaS instance an account belongs to, and what the instance as a whole reports.
#[derive(Debug, Clone)]
pub struct InstanceCtx<'a> {
    pub instance_id: &'a str,
    pub instance_name: Option<&'a str>,
    pub app_type: Option<&'a str>,
    /// Whether any account of the instance carries a `lastLoginTime`. When none does, the app
    /// does not report logins to SaaS Security and `null` means "unknown", not "never".
    pub reports_logins: bool,
    pub now: Timestamp,
}

/// Whether the API says anything about an account's login time.
pub fn has_login_time(a: &SaasAccount) -> bool {
    a.last_login_time
        .value()
        .is_some_and(|r| r.parse().is_some())
}

/// Maps one `SaaSAccount`. `None` when it has no `id` (it cannot be told apart from others).
pub fn map_account(a: &SaasAccount, ctx: &InstanceCtx<'_>, tally: &mut Tally) -> Option<Account> {
    let id = a.id.as_deref()?;
    let login = a
        .email
        .clone()
        .or_else(|| a.account_name.clone())
        .or_else(|| a.saas_provider_nhi_name.clone())
        .unwrap_or_else(|| id.to_string());
    let mut acc = Account::new(format!("{}:{id}", ctx.instance_id), login.clone());
    acc.display_name = a
        .account_name
        .clone()
        .filter(|n| *n != login)
        .or_else(|| a.saas_provider_nhi_name.clone().filter(|n| *n != login));
    acc.account_type = if account_is_non_human(a) {
        AccountType::Service
    } else {
        AccountType::Human
    };
    // The API lists the accounts an instance has as of its latest scan: present = active.
    acc.status = Status::Active;
    acc.created = instant(&a.created_time, tally).value().copied();
    let login_time = instant(&a.last_login_time, tally);
    acc.last_login = if ctx.reports_logins {
        known(login_time)
    } else {
        Known::Unknown
    };
    if a.is_orphaned == Some(true) {
        // Orphaned: no owner in the IdP any more — a leaver whose account is still there,
        // as of SaaS Security's latest scan of it.
        acc.terminated = Some(
            instant(&a.latest_scan_time, tally)
                .value()
                .copied()
                .unwrap_or(ctx.now)
                .min(ctx.now),
        );
    }
    let named = a.roles.as_deref().map(split_list).unwrap_or_default();
    acc.roles = match a.is_elevated {
        Some(true) => Some(if named.is_empty() {
            vec![Role {
                name: ELEVATED_ROLE.into(),
                last_used: Known::Unknown,
            }]
        } else {
            named
                .iter()
                .map(|n| Role {
                    name: n.clone(),
                    last_used: Known::Unknown,
                })
                .collect()
        }),
        Some(false) => Some(Vec::new()),
        None => None,
    };
    let rotated = instant(&a.last_credentials_rotated, tally);
    let expires = instant(&a.credentials_expires_at, tally);
    let has_value = |t: &Tri<RawInstant>| t.value().is_some();
    if has_value(&a.last_credentials_rotated) || has_value(&a.credentials_expires_at) {
        let ct = if acc.account_type == AccountType::Service {
            CredentialType::ApiKey
        } else {
            CredentialType::Password
        };
        acc.credentials = Some(vec![Credential {
            credential_type: ct,
            id: ct.as_str().into(),
            last_rotated: known(rotated),
            expires: known(expires),
            last_used: Known::Unknown,
        }]);
    }
    let at = &mut acc.attributes;
    at.insert("kind".into(), json!("saas_account"));
    at.insert("saas_instance_id".into(), json!(ctx.instance_id));
    if let Some(n) = ctx.instance_name {
        at.insert("saas_instance".into(), json!(n));
    }
    if let Some(t) = a.app_type.as_deref().or(ctx.app_type) {
        at.insert("app_type".into(), json!(t));
    }
    if let Some(l) = a.is_local {
        at.insert("is_local".into(), json!(l));
    }
    if let Some(l) = a.is_orphaned {
        at.insert("is_orphaned".into(), json!(l));
    }
    if let Some(l) = &a.linked_human_accounts {
        at.insert("linked_human_accounts".into(), json!(split_list(l)));
    }
    if a.is_elevated != Some(true) && !named.is_empty() {
        // Roles of a non-elevated account are not administrative: kept for the reader only.
        at.insert("saas_roles".into(), json!(named));
    }
    for (k, v) in [
        ("account_type", &a.account_type),
        ("saas_provider_id", &a.saas_provider_id),
        ("app_id", &a.app_id),
        ("creator", &a.creator),
        ("github_org_name", &a.github_org_name),
    ] {
        if let Some(v) = v {
            at.insert(k.into(), json!(v));
        }
    }
    Some(acc)
}

/// `isNonHuman`; when absent, an `accountType` naming a machine identity.
pub fn account_is_non_human(a: &SaasAccount) -> bool {
    if let Some(b) = a.is_non_human {
        return b;
    }
    a.account_type.as_deref().is_some_and(|t| {
        let t = norm(t);
        [
            "service",
            "bot",
            "non_human",
            "nonhuman",
            "machine",
            "integration",
            "application",
            "api",
            "nhi",
        ]
        .iter()
        .any(|w| t.split('_').any(|x| x == *w) || t.contains(w) && w.len() > 4)
    })
}

/// The `app` label value of an app type: lower-case, `unknown` when absent.
pub fn app_label(app_type: Option<&str>) -> String {
    match app_type.map(norm) {
        Some(s) if !s.is_empty() => s,
        _ => "unknown".into(),
    }
}

/// Accounts per (app, account type, privileged), for `identity_posture_sspm_accounts`.
#[derive(Debug, Default)]
pub struct AppCounts {
    counts: HashMap<String, [[u64; 2]; 2]>,
}

impl AppCounts {
    pub fn add(&mut self, app: &str, a: &Account) {
        let e = self.counts.entry(app.to_string()).or_default();
        e[a.account_type as usize][usize::from(a.is_privileged())] += 1;
    }

    /// The samples, capped at [`MAX_APPS`] app values (largest first, ties by name); the rest
    /// are summed as `other`. Every kept app gets all four (account_type, privileged) series.
    pub fn samples(&self) -> Vec<(String, AccountType, bool, u64)> {
        let mut apps: Vec<(&String, u64)> = self
            .counts
            .iter()
            .map(|(k, v)| (k, v.iter().flatten().sum()))
            .collect();
        apps.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut merged: BTreeMap<String, [[u64; 2]; 2]> = BTreeMap::new();
        // `other` is reserved for the overflow, so an app literally named so shares it.
        let keep = if apps.len() > MAX_APPS {
            MAX_APPS
        } else {
            apps.len()
        };
        for (i, (app, _)) in apps.iter().enumerate() {
            let label = if i < keep {
                (*app).clone()
            } else {
                "other".into()
            };
            let dst = merged.entry(label).or_default();
            let src = &self.counts[*app];
            for t in 0..2 {
                for p in 0..2 {
                    dst[t][p] += src[t][p];
                }
            }
        }
        let mut out = Vec::new();
        for (app, c) in merged {
            for t in AccountType::ALL {
                for p in [false, true] {
                    out.push((app.clone(), t, p, c[t as usize][usize::from(p)]));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::sspm::wire::RawInstant;
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-11-28 12:00 UTC);

    fn ctx(reports_logins: bool) -> InstanceCtx<'static> {
        InstanceCtx {
            instance_id: "inst-1",
            instance_name: Some("GitHub prod"),
            app_type: Some("github"),
            reports_logins,
            now: NOW,
        }
    }

    fn acct(v: Value) -> SaasAccount {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn roles_split_on_any_separator_and_json_arrays() {
        assert_eq!(split_list("Admin, Owner"), ["Admin", "Owner"]);
        assert_eq!(
            split_list("Admin;Owner|Billing\nAdmin"),
            ["Admin", "Owner", "Billing"]
        );
        assert_eq!(
            split_list(r#"["Org Admin", "Owner"]"#),
            ["Org Admin", "Owner"]
        );
        assert_eq!(split_list("[Admin, Owner]"), ["Admin", "Owner"]);
        assert_eq!(split_list(" , ;"), Vec::<String>::new());
        assert_eq!(split_list("Super Admin"), ["Super Admin"]);
    }

    #[test]
    fn factor_table() {
        use FactorRead::*;
        use FactorType::*;
        for (raw, want) in [
            ("FIDO2", Factor(Webauthn)),
            ("WebAuthn", Factor(Webauthn)),
            ("Security Key", Factor(Webauthn)),
            ("passkey", Factor(Webauthn)),
            ("Windows Hello for Business", Factor(Webauthn)),
            ("Smart Card", Factor(SmartCard)),
            ("PIV", Factor(SmartCard)),
            ("Okta Verify Push", Factor(Push)),
            ("PUSH", Factor(Push)),
            ("Duo Push", Factor(Push)),
            ("SMS", Factor(Sms)),
            ("sms_otp", Factor(Sms)),
            ("Text Message", Factor(Sms)),
            ("Voice Call", Factor(Voice)),
            ("EMAIL", Factor(Email)),
            ("Email OTP", Factor(Email)),
            ("Security Question", Factor(Question)),
            ("YubiKey OTP", Factor(HardwareToken)),
            ("RSA SecurID", Factor(HardwareToken)),
            ("Hardware Token", Factor(HardwareToken)),
            ("TOTP", Factor(Totp)),
            ("Google Authenticator", Factor(Totp)),
            ("Okta Verify", Factor(Totp)),
            ("software_token", Factor(Totp)),
            ("phone", Factor(Sms)),
            ("NONE", NotAFactor),
            ("Password", NotAFactor),
            ("QUANTUM_ENTANGLEMENT", Unrecognized),
        ] {
            assert_eq!(read_factor(raw), want, "{raw}");
        }
    }

    fn mfa_rec(strength: Option<&str>, factors: Option<&str>) -> MfaActivity {
        MfaActivity {
            user_id: Some("u1".into()),
            mfa_strength: strength.map(Into::into),
            mfa_factors: factors.map(Into::into),
            ..MfaActivity::default()
        }
    }

    fn types(m: &Option<Mfa>) -> Option<Vec<FactorType>> {
        m.as_ref()
            .map(|m| m.factors.iter().map(|f| f.factor_type).collect())
    }

    #[test]
    fn mfa_state_from_strength_and_factors() {
        let mut t = Tally::default();
        // Strength "none" wins over any factor list.
        assert_eq!(
            types(&mfa_of(&mfa_rec(Some("NONE"), Some("SMS")), &mut t)),
            Some(vec![])
        );
        assert_eq!(
            types(&mfa_of(
                &mfa_rec(Some("STRONG"), Some("FIDO2, PUSH")),
                &mut t
            )),
            Some(vec![FactorType::Webauthn, FactorType::Push])
        );
        // MFA without named factors: one factor of unknown type.
        assert_eq!(
            types(&mfa_of(&mfa_rec(Some("WEAK"), None), &mut t)),
            Some(vec![FactorType::Other])
        );
        // Nothing readable: unknown.
        assert_eq!(types(&mfa_of(&mfa_rec(None, None), &mut t)), None);
        assert_eq!(t.count("mfa_strength"), 0);
        assert_eq!(types(&mfa_of(&mfa_rec(Some("ULTRA"), None), &mut t)), None);
        assert_eq!(
            types(&mfa_of(
                &mfa_rec(Some("ULTRA"), Some("SMS|Telepathy")),
                &mut t
            )),
            Some(vec![FactorType::Sms, FactorType::Other])
        );
        assert_eq!(t.count("mfa_strength"), 2);
        assert_eq!(t.count("mfa_factors"), 1);
        assert!(t.samples["mfa_factors"].contains("Telepathy"));
    }

    #[test]
    fn newest_record_per_user_wins() {
        let mut t = Tally::default();
        let mut n = NewestPerUser::default();
        let rec = |id: &str, ts: Option<&str>, s: &str| MfaActivity {
            user_id: Some(id.into()),
            timestamp: ts
                .map(|t| Tri::Value(RawInstant::Text(t.into())))
                .unwrap_or_default(),
            mfa_strength: Some(s.into()),
            ..MfaActivity::default()
        };
        n.add(rec("u1", Some("2026-11-01T00:00:00Z"), "WEAK"), &mut t);
        n.add(
            rec("u1", Some("2026-11-20 00:00:00+00:00"), "STRONG"),
            &mut t,
        );
        n.add(rec("u1", Some("2026-10-01T00:00:00Z"), "NONE"), &mut t);
        n.add(rec("u1", None, "NONE"), &mut t);
        n.add(rec("u2", None, "NONE"), &mut t);
        n.add(rec("u2", Some("2026-01-01T00:00:00Z"), "STRONG"), &mut t);
        n.add(MfaActivity::default(), &mut t);
        assert_eq!(n.users["u1"].1.mfa_strength.as_deref(), Some("STRONG"));
        assert_eq!(n.users["u2"].1.mfa_strength.as_deref(), Some("STRONG"));
        assert_eq!((n.records, n.skipped), (7, 1));
    }

    #[test]
    fn elevated_orphaned_local_non_human_with_expired_key() {
        let mut t = Tally::default();
        let a = acct(json!({
            "id": "a1", "accountName": "deploy-bot", "isNonHuman": true, "isElevated": true,
            "roles": "Owner, Admin", "isOrphaned": true, "isLocal": true,
            "latestScanTime": "2026-11-27 06:00:00+00:00",
            "lastCredentialsRotated": "2025-01-01T00:00:00Z",
            "credentialsExpiresAt": "2026-11-01T00:00:00Z",
            "lastLoginTime": null, "linkedHumanAccounts": "alice@x.com;bob@x.com",
            "createdTime": "2024-05-05T00:00:00Z"
        }));
        let m = map_account(&a, &ctx(true), &mut t).unwrap();
        assert_eq!(m.id, "inst-1:a1");
        assert_eq!(m.login, "deploy-bot");
        assert_eq!(m.account_type, AccountType::Service);
        assert_eq!(m.last_login, Known::Never);
        assert_eq!(m.created, Some(datetime!(2024-05-05 0:00 UTC)));
        assert_eq!(m.terminated, Some(datetime!(2026-11-27 6:00 UTC)));
        let roles: Vec<&str> = m
            .roles
            .as_ref()
            .unwrap()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(roles, ["Owner", "Admin"]);
        let c = &m.credentials.as_ref().unwrap()[0];
        assert_eq!(c.credential_type, CredentialType::ApiKey);
        assert_eq!(c.last_rotated, Known::At(datetime!(2025-01-01 0:00 UTC)));
        assert_eq!(c.expires, Known::At(datetime!(2026-11-01 0:00 UTC)));
        assert_eq!(m.attributes["is_local"], json!(true));
        assert_eq!(m.attributes["app_type"], json!("github"));
        assert_eq!(m.attributes["saas_instance_id"], json!("inst-1"));
        assert_eq!(
            m.attributes["linked_human_accounts"],
            json!(["alice@x.com", "bob@x.com"])
        );
    }

    #[test]
    fn human_defaults_and_unknowns() {
        let mut t = Tally::default();
        // Elevated without a role name; human; credential only with rotation date.
        let a = acct(json!({
            "id": "h1", "email": "carol@x.com", "accountName": "Carol", "isNonHuman": false,
            "isElevated": true, "roles": "", "lastLoginTime": "garbage",
            "lastCredentialsRotated": "2026-06-01T00:00:00Z", "credentialsExpiresAt": null
        }));
        let m = map_account(&a, &ctx(true), &mut t).unwrap();
        assert_eq!(m.login, "carol@x.com");
        assert_eq!(m.display_name.as_deref(), Some("Carol"));
        assert_eq!(m.account_type, AccountType::Human);
        assert_eq!(m.roles.as_ref().unwrap()[0].name, ELEVATED_ROLE);
        // Unparseable: unknown, counted.
        assert_eq!(m.last_login, Known::Unknown);
        assert_eq!(t.count("timestamp"), 1);
        let c = &m.credentials.as_ref().unwrap()[0];
        assert_eq!(c.credential_type, CredentialType::Password);
        assert_eq!(c.expires, Known::Never);
        assert_eq!(m.terminated, None);

        // Not elevated: no admin roles, the named roles kept as an attribute.
        let a = acct(json!({"id": "h2", "isElevated": false, "roles": "Member",
                            "lastLoginTime": null}));
        let m = map_account(&a, &ctx(false), &mut t).unwrap();
        assert_eq!(m.roles, Some(vec![]));
        assert_eq!(m.attributes["saas_roles"], json!(["Member"]));
        // The instance reports no logins: null is unknown, not never.
        assert_eq!(m.last_login, Known::Unknown);
        assert_eq!(m.credentials, None);
        // isElevated absent: roles unknown.
        let a = acct(json!({"id": "h3", "roles": "Admin"}));
        assert_eq!(map_account(&a, &ctx(true), &mut t).unwrap().roles, None);
        // No id: not an account.
        assert!(map_account(&acct(json!({"email": "x@y"})), &ctx(true), &mut t).is_none());
        // accountType when isNonHuman is absent.
        assert!(account_is_non_human(&acct(
            json!({"accountType": "SERVICE_ACCOUNT"})
        )));
        assert!(account_is_non_human(&acct(json!({"accountType": "bot"}))));
        assert!(!account_is_non_human(&acct(json!({"accountType": "USER"}))));
        assert!(!account_is_non_human(&acct(
            json!({"accountType": "Guest"})
        )));
    }

    #[test]
    fn app_label_is_capped() {
        let mut c = AppCounts::default();
        let a = Account::new("1", "x");
        for i in 0..25 {
            for _ in 0..(30 - i) {
                c.add(&app_label(Some(&format!("App {i:02}"))), &a);
            }
        }
        let s = c.samples();
        let apps: BTreeSet<&str> = s.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(apps.len(), MAX_APPS + 1);
        assert!(apps.contains("other") && apps.contains("app_00") && !apps.contains("app_24"));
        let other: u64 = s.iter().filter(|x| x.0 == "other").map(|x| x.3).sum();
        assert_eq!(other, 10 + 9 + 8 + 7 + 6);
        assert_eq!(s.len(), (MAX_APPS + 1) * 4);
        assert_eq!(app_label(None), "unknown");
        assert_eq!(app_label(Some("Google Workspace")), "google_workspace");
    }
}
