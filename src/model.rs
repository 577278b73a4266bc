//! The normalised identity model every source maps its provider into (README "File format").
//! It is also the on-disk format of the `file` source and of `generate-demo`.
//! "Absent = unknown, null = never" is carried by [`Known`], so it survives parsing and serialising.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// A timestamp in the model: RFC 3339 on the wire, unix seconds in memory.
pub type Timestamp = OffsetDateTime;

/// A field that a source may not be able to know.
///
/// `Unknown` is an absent key (no licence, no permission, not in that API), `Never` is an
/// explicit `null` ("has never logged in", "never expires"), `At` is a real value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Known<T> {
    #[default]
    Unknown,
    Never,
    At(T),
}

impl<T> Known<T> {
    pub fn is_unknown(&self) -> bool {
        matches!(self, Known::Unknown)
    }
    pub fn from_option(v: Option<T>) -> Self {
        match v {
            Some(v) => Known::At(v),
            None => Known::Never,
        }
    }
    pub fn value(&self) -> Option<&T> {
        match self {
            Known::At(v) => Some(v),
            _ => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Known<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only called when the key is present (absent keys use `#[serde(default)]`).
        Ok(Known::from_option(Option::<T>::deserialize(d)?))
    }
}

impl<T: Serialize> Serialize for Known<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Known::At(v) => v.serialize(s),
            // Unknown is skipped by `skip_serializing_if`; if it is serialised anyway, null is
            // the least wrong value.
            _ => s.serialize_none(),
        }
    }
}

/// RFC 3339 timestamps inside [`Known`].
pub mod known_rfc3339 {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Known<Timestamp>, D::Error> {
        let v: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        match v {
            None => Ok(Known::Never),
            Some(s) => super::parse_ts(&s)
                .map(Known::At)
                .map_err(|_| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}"))),
        }
    }

    pub fn serialize<S: Serializer>(v: &Known<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Known::At(t) => {
                s.serialize_str(&t.format(&Rfc3339).map_err(serde::ser::Error::custom)?)
            }
            _ => s.serialize_none(),
        }
    }
}

/// Optional RFC 3339 timestamps where absent and null both mean "none".
pub mod opt_rfc3339 {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let v: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(s) => super::parse_ts(&s)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}"))),
        }
    }

    pub fn serialize<S: Serializer>(v: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => s.serialize_str(&t.format(&Rfc3339).map_err(serde::ser::Error::custom)?),
            None => s.serialize_none(),
        }
    }
}

/// Parses an RFC 3339 timestamp; also accepts a bare date (`2026-01-31`, read as midnight UTC),
/// which HR systems commonly export for leave dates.
pub fn parse_ts(s: &str) -> Result<Timestamp, time::error::Parse> {
    use time::format_description::well_known::Rfc3339;
    match OffsetDateTime::parse(s, &Rfc3339) {
        Ok(t) => Ok(t),
        Err(e) => {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(s, &fmt) {
                Ok(d) => Ok(d.midnight().assume_utc()),
                Err(_) => Err(e),
            }
        }
    }
}

/// Formats a timestamp as RFC 3339 (UTC, seconds precision as given).
pub fn format_ts(t: Timestamp) -> String {
    use time::format_description::well_known::Rfc3339;
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Human,
    Service,
}

impl AccountType {
    pub const ALL: [AccountType; 2] = [AccountType::Human, AccountType::Service];
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Human => "human",
            AccountType::Service => "service",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
    Disabled,
    Deprovisioned,
    Staged,
    Locked,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Active,
        Status::Suspended,
        Status::Disabled,
        Status::Deprovisioned,
        Status::Staged,
        Status::Locked,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Disabled => "disabled",
            Status::Deprovisioned => "deprovisioned",
            Status::Staged => "staged",
            Status::Locked => "locked",
        }
    }
    /// Accounts that can sign in (or will again once unlocked): the only ones checked.
    pub fn is_active(self) -> bool {
        matches!(self, Status::Active | Status::Locked)
    }
    /// Accounts that still exist and could be used or reactivated: a leaver in one of these
    /// states is still a risk (`dormant.terminated`).
    pub fn is_present(self) -> bool {
        !matches!(self, Status::Disabled | Status::Deprovisioned)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorType {
    Push,
    Totp,
    Webauthn,
    SmartCard,
    HardwareToken,
    Sms,
    Voice,
    Email,
    Question,
    #[serde(other)]
    Other,
}

impl FactorType {
    pub const ALL: [FactorType; 10] = [
        FactorType::Push,
        FactorType::Totp,
        FactorType::Webauthn,
        FactorType::SmartCard,
        FactorType::HardwareToken,
        FactorType::Sms,
        FactorType::Voice,
        FactorType::Email,
        FactorType::Question,
        FactorType::Other,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FactorType::Push => "push",
            FactorType::Totp => "totp",
            FactorType::Webauthn => "webauthn",
            FactorType::SmartCard => "smart_card",
            FactorType::HardwareToken => "hardware_token",
            FactorType::Sms => "sms",
            FactorType::Voice => "voice",
            FactorType::Email => "email",
            FactorType::Question => "question",
            FactorType::Other => "other",
        }
    }
    pub fn parse(s: &str) -> Option<FactorType> {
        Some(match s {
            "push" => FactorType::Push,
            "totp" => FactorType::Totp,
            "webauthn" => FactorType::Webauthn,
            "smart_card" => FactorType::SmartCard,
            "hardware_token" => FactorType::HardwareToken,
            "sms" => FactorType::Sms,
            "voice" => FactorType::Voice,
            "email" => FactorType::Email,
            "question" => FactorType::Question,
            "other" => FactorType::Other,
            _ => return None,
        })
    }
    pub fn is_phishing_resistant(self) -> bool {
        matches!(self, FactorType::Webauthn | FactorType::SmartCard)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialType {
    Password,
    ApiKey,
    AccessKey,
    ClientSecret,
    Certificate,
    Token,
    SshKey,
}

impl CredentialType {
    pub const ALL: [CredentialType; 7] = [
        CredentialType::Password,
        CredentialType::ApiKey,
        CredentialType::AccessKey,
        CredentialType::ClientSecret,
        CredentialType::Certificate,
        CredentialType::Token,
        CredentialType::SshKey,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialType::Password => "password",
            CredentialType::ApiKey => "api_key",
            CredentialType::AccessKey => "access_key",
            CredentialType::ClientSecret => "client_secret",
            CredentialType::Certificate => "certificate",
            CredentialType::Token => "token",
            CredentialType::SshKey => "ssh_key",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One enrolled MFA factor. Only `status == "active"` factors count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Factor {
    #[serde(rename = "type")]
    pub factor_type: FactorType,
    #[serde(default = "default_factor_status")]
    pub status: FactorStatus,
}

fn default_factor_status() -> FactorStatus {
    FactorStatus::Active
}

/// Only `Active` counts. A status the format does not know (a provider's own word such as
/// `pending_activation`) is read as `Unrecognized`: not active, counted per source in
/// `identity_posture_factors_unrecognized_status`, never an error that fails the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactorStatus {
    Active,
    Pending,
    Inactive,
    #[serde(other)]
    Unrecognized,
}

/// What the source knows about an account's MFA.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mfa {
    #[serde(default)]
    pub factors: Vec<Factor>,
    /// Whether the provider requires MFA for this account. Absent = not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced: Option<bool>,
}

impl Mfa {
    pub fn active_factors(&self) -> impl Iterator<Item = FactorType> + '_ {
        self.factors
            .iter()
            .filter(|f| f.status == FactorStatus::Active)
            .map(|f| f.factor_type)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    #[serde(rename = "type")]
    pub credential_type: CredentialType,
    /// Identifies the credential within the account (key id, secret id); never the secret.
    #[serde(default)]
    pub id: String,
    /// Absent = unknown, null = never rotated since creation is unknown too; a date is the
    /// creation or last rotation.
    #[serde(
        default,
        with = "known_rfc3339",
        skip_serializing_if = "Known::is_unknown"
    )]
    pub last_rotated: Known<Timestamp>,
    /// Absent = unknown, null = never expires.
    #[serde(
        default,
        with = "known_rfc3339",
        skip_serializing_if = "Known::is_unknown"
    )]
    pub expires: Known<Timestamp>,
    /// Absent = unknown, null = never used.
    #[serde(
        default,
        with = "known_rfc3339",
        skip_serializing_if = "Known::is_unknown"
    )]
    pub last_used: Known<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    /// Absent = unknown, null = never used.
    #[serde(
        default,
        with = "known_rfc3339",
        skip_serializing_if = "Known::is_unknown"
    )]
    pub last_used: Known<Timestamp>,
}

/// One account, as every source normalises it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    pub id: String,
    pub login: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub account_type: AccountType,
    pub status: Status,
    /// Absent = unknown.
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Absent = unknown, null = never logged in.
    #[serde(
        default,
        with = "known_rfc3339",
        skip_serializing_if = "Known::is_unknown"
    )]
    pub last_login: Known<Timestamp>,
    /// HR leave date; absent or null = not terminated (as far as the source knows).
    #[serde(default, with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The account's groups could not be read (a refused request): `groups` may be
    /// incomplete, so a privilege rule that allows a role by group cannot be judged for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub groups_unknown: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// Absent = MFA state unknown (or not applicable to this kind of account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<Mfa>,
    /// Absent = credentials unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<Credential>>,
    /// Administrative roles only. Absent = roles unknown; an empty list = not privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Role>>,
}

impl Account {
    /// A minimal active human account; the rest is unknown. Handy for sources and tests.
    pub fn new(id: impl Into<String>, login: impl Into<String>) -> Account {
        Account {
            id: id.into(),
            login: login.into(),
            display_name: None,
            account_type: AccountType::Human,
            status: Status::Active,
            created: None,
            last_login: Known::Unknown,
            terminated: None,
            groups: Vec::new(),
            groups_unknown: false,
            attributes: BTreeMap::new(),
            mfa: None,
            credentials: None,
            roles: None,
        }
    }

    pub fn is_privileged(&self) -> bool {
        self.roles.as_ref().is_some_and(|r| !r.is_empty())
    }
}

/// Facts about the tenant as a whole (not about one account).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFacts {
    /// Descriptions of the ways the provider's policy leaves users without an MFA requirement.
    /// Absent = the source cannot read its MFA policies; empty = no gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_policy_gaps: Option<Vec<String>>,
    /// The provider has no tenant-wide super-admin role (SaaS Security spans many apps,
    /// each with its own role names), so the super-admin count checks do not apply. Set by
    /// sources, never read from a file.
    #[serde(skip)]
    pub no_super_admin_role: bool,
    /// The provider cannot be locked out by having too few super admins, so
    /// `tenant.too_few_super_admins` does not apply (the maximum still does). AWS: the root
    /// user always exists and is recovered by e-mail, and admins normally come through roles
    /// the source does not list. Set by sources, never read from a file.
    #[serde(skip)]
    pub no_super_admin_minimum: bool,
}

/// The data classes a source may be unable to read (`identity_posture_source_data_available`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataKind {
    LastLogin,
    Mfa,
    Credentials,
    Roles,
}

impl DataKind {
    pub const ALL: [DataKind; 4] = [
        DataKind::LastLogin,
        DataKind::Mfa,
        DataKind::Credentials,
        DataKind::Roles,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::LastLogin => "last_login",
            DataKind::Mfa => "mfa",
            DataKind::Credentials => "credentials",
            DataKind::Roles => "roles",
        }
    }
}

/// Which data classes a source could read, and why not where it could not.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DataAvailability {
    /// `None` = available; `Some(reason)` = missing, with the reason shown once in
    /// `/api/v1/sources`.
    pub missing: BTreeMap<DataKind, String>,
    /// How the source explains a class that no account carries (see [`Self::settle`]).
    #[serde(skip)]
    pub if_absent: BTreeMap<DataKind, String>,
}

impl DataAvailability {
    pub fn set_missing(&mut self, kind: DataKind, reason: impl Into<String>) {
        self.missing.insert(kind, reason.into());
    }
    pub fn is_available(&self, kind: DataKind) -> bool {
        !self.missing.contains_key(&kind)
    }
    /// The reason to give if no account turns out to carry `kind`.
    pub fn if_absent(&mut self, kind: DataKind, reason: impl Into<String>) {
        self.if_absent.insert(kind, reason.into());
    }
    /// Worked out once for every source: a class that no account of a non-empty poll carried
    /// is missing (with the source's explanation, or a general one), whatever the source said.
    /// `carried[k]` counts the accounts that carried class `k` (in `DataKind::ALL` order).
    pub fn settle(&mut self, accounts: u64, carried: &[u64; 4]) {
        if accounts == 0 {
            return;
        }
        for (i, kind) in DataKind::ALL.into_iter().enumerate() {
            if carried[i] == 0 && self.is_available(kind) {
                let reason = self.if_absent.get(&kind).cloned().unwrap_or_else(|| {
                    format!("no account read from this source carries {}", kind.as_str())
                });
                self.set_missing(kind, reason);
            }
        }
    }
}

/// Every check the exporter runs. The string ids are part of the product contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckId {
    MfaMissing,
    MfaWeak,
    MfaNotEnforced,
    DormantInactive,
    DormantNeverLoggedIn,
    DormantTerminated,
    CredentialUnrotated,
    CredentialExpired,
    CredentialExpiring,
    CredentialNoExpiry,
    PrivilegeRoleNotAllowed,
    PrivilegeUnused,
    PrivilegeNoMfa,
    PrivilegeServiceAccountAdmin,
    TenantTooManySuperAdmins,
    TenantTooFewSuperAdmins,
    TenantMfaPolicyGap,
}

pub const N_CHECKS: usize = 17;

impl CheckId {
    pub const ALL: [CheckId; N_CHECKS] = [
        CheckId::MfaMissing,
        CheckId::MfaWeak,
        CheckId::MfaNotEnforced,
        CheckId::DormantInactive,
        CheckId::DormantNeverLoggedIn,
        CheckId::DormantTerminated,
        CheckId::CredentialUnrotated,
        CheckId::CredentialExpired,
        CheckId::CredentialExpiring,
        CheckId::CredentialNoExpiry,
        CheckId::PrivilegeRoleNotAllowed,
        CheckId::PrivilegeUnused,
        CheckId::PrivilegeNoMfa,
        CheckId::PrivilegeServiceAccountAdmin,
        CheckId::TenantTooManySuperAdmins,
        CheckId::TenantTooFewSuperAdmins,
        CheckId::TenantMfaPolicyGap,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::MfaMissing => "mfa.missing",
            CheckId::MfaWeak => "mfa.weak",
            CheckId::MfaNotEnforced => "mfa.not_enforced",
            CheckId::DormantInactive => "dormant.inactive",
            CheckId::DormantNeverLoggedIn => "dormant.never_logged_in",
            CheckId::DormantTerminated => "dormant.terminated",
            CheckId::CredentialUnrotated => "credential.unrotated",
            CheckId::CredentialExpired => "credential.expired",
            CheckId::CredentialExpiring => "credential.expiring",
            CheckId::CredentialNoExpiry => "credential.no_expiry",
            CheckId::PrivilegeRoleNotAllowed => "privilege.role_not_allowed",
            CheckId::PrivilegeUnused => "privilege.unused",
            CheckId::PrivilegeNoMfa => "privilege.no_mfa",
            CheckId::PrivilegeServiceAccountAdmin => "privilege.service_account_admin",
            CheckId::TenantTooManySuperAdmins => "tenant.too_many_super_admins",
            CheckId::TenantTooFewSuperAdmins => "tenant.too_few_super_admins",
            CheckId::TenantMfaPolicyGap => "tenant.mfa_policy_gap",
        }
    }

    pub fn parse(s: &str) -> Option<CheckId> {
        CheckId::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The documented default severity (policy may override it per check, globally or per source; there is
    /// still one severity per check and source, so `identity_posture_findings{check,
    /// severity}` has one series per check): privileged findings are critical, MFA-less and
    /// leavers high, credential warnings low, everything else medium.
    pub fn default_severity(self) -> Severity {
        match self {
            CheckId::PrivilegeRoleNotAllowed
            | CheckId::PrivilegeUnused
            | CheckId::PrivilegeNoMfa
            | CheckId::PrivilegeServiceAccountAdmin
            | CheckId::TenantTooManySuperAdmins
            | CheckId::TenantTooFewSuperAdmins => Severity::Critical,
            CheckId::MfaMissing | CheckId::DormantTerminated | CheckId::TenantMfaPolicyGap => {
                Severity::High
            }
            CheckId::CredentialExpiring | CheckId::CredentialNoExpiry => Severity::Low,
            _ => Severity::Medium,
        }
    }

    pub fn is_tenant(self) -> bool {
        matches!(
            self,
            CheckId::TenantTooManySuperAdmins
                | CheckId::TenantTooFewSuperAdmins
                | CheckId::TenantMfaPolicyGap
        )
    }
}

impl Serialize for CheckId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}
