//! Wire types of the SaaS Security (SSPM) Identity API, as in pan.dev
//! `openapi-specs/sase/identity-sspm/latest_identity-sspm.yaml` (spec dated 2025-07-01).
//! Defensive by design: every field is optional, unknown fields are ignored, and a value of the
//! wrong type reads as absent instead of failing the page.
//!
//! Confirmed against that file: `ListResponse*` = `{total: int64, items: [...]}`;
//! `SaaSInstanceInfo {displayName, saasInstanceId, appType}`; `IdpInfo {displayName, idpId,
//! appType}`; `SaaSAccount` (28 properties, `roles` and `linkedHumanAccounts` are plain
//! strings, booleans `isLocal`/`isOrphaned`/`isElevated`/`isNonHuman`); `MfaActivity`
//! (`mfaStrength`, `mfaFactors` strings, `admin` boolean, `timestamp`); `FeatureState
//! {status, lastScannedAt}`. Date-times are `Instant` strings whose own example is
//! `2022-03-10 16:15:50+00:00` (a space, not `T`), so [`parse_instant`] accepts both.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::sources::lenient::{count, flag, text};

/// A field that may be absent, explicitly `null`, or carry a value. Absent means "the API does
/// not say" (unknown); `null` means "none" (e.g. never logged in).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Tri<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Tri<T> {
    pub fn value(&self) -> Option<&T> {
        match self {
            Tri::Value(v) => Some(v),
            _ => None,
        }
    }
    pub fn is_absent(&self) -> bool {
        matches!(self, Tri::Absent)
    }
}

/// A date-time kept raw (parsed by the mapping, which counts what it cannot read):
/// absent, `null`, or the string/number as given.
pub fn instant<'de, D: Deserializer<'de>>(d: D) -> Result<Tri<RawInstant>, D::Error> {
    // Only called when the key is present; absent keys take `Tri::Absent` by default.
    Ok(match Value::deserialize(d)? {
        Value::Null => Tri::Null,
        Value::String(s) if s.trim().is_empty() => Tri::Null,
        Value::String(s) => Tri::Value(RawInstant::Text(s)),
        Value::Number(n) => match n.as_f64() {
            Some(f) => Tri::Value(RawInstant::Number(f)),
            None => Tri::Value(RawInstant::Text(n.to_string())),
        },
        other => Tri::Value(RawInstant::Text(other.to_string())),
    })
}

/// A date-time as the API sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawInstant {
    Text(String),
    Number(f64),
}

impl RawInstant {
    /// The instant, if it can be read.
    pub fn parse(&self) -> Option<OffsetDateTime> {
        match self {
            RawInstant::Text(s) => parse_instant(s),
            RawInstant::Number(n) => epoch(*n),
        }
    }
}

/// Epoch seconds, or milliseconds when the number is too large to be seconds.
fn epoch(n: f64) -> Option<OffsetDateTime> {
    if !n.is_finite() || n <= 0.0 {
        return None;
    }
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    OffsetDateTime::from_unix_timestamp(secs as i64).ok()
}

/// Reads the API's `Instant` strings: RFC 3339 (`2026-01-02T03:04:05.123Z`), the spec's own
/// example form with a space (`2022-03-10 16:15:50+00:00`), no offset (read as UTC), a bare
/// date, or digits (epoch seconds / milliseconds).
pub fn parse_instant(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 9 {
        return s.parse::<f64>().ok().and_then(epoch);
    }
    let mut t = s.replacen(' ', "T", 1);
    // `+0000` / `+00` offsets → `+00:00`.
    if let Some(pos) = t.rfind(['+', '-']).filter(|p| *p > 10) {
        let off = &t[pos + 1..];
        if off.len() == 4 && off.bytes().all(|b| b.is_ascii_digit()) {
            t = format!("{}{}:{}", &t[..=pos], &off[..2], &off[2..]);
        } else if off.len() == 2 && off.bytes().all(|b| b.is_ascii_digit()) {
            t = format!("{t}:00");
        }
    }
    if let Ok(v) = OffsetDateTime::parse(&t, &Rfc3339) {
        return Some(v);
    }
    // No offset at all: UTC.
    let has_offset = t.ends_with(['Z', 'z']) || t.rfind(['+', '-']).is_some_and(|p| p > 10);
    if !has_offset && t.len() > 10 {
        if let Ok(v) = OffsetDateTime::parse(&format!("{t}Z"), &Rfc3339) {
            return Some(v);
        }
        // `2026-01-02T03:04` (no seconds).
        if t.len() == 16 {
            if let Ok(v) = OffsetDateTime::parse(&format!("{t}:00Z"), &Rfc3339) {
                return Some(v);
            }
        }
    }
    if t.len() == 10 {
        return crate::model::parse_ts(&t).ok();
    }
    None
}

/// One page of a list endpoint (`ListResponse*`). Items stay raw JSON so that one malformed
/// item is skipped (and counted), not a failed page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Page {
    #[serde(deserialize_with = "count")]
    pub total: Option<u64>,
    pub items: Option<Vec<Value>>,
}

/// `SaaSInstanceInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SaasInstance {
    #[serde(deserialize_with = "text")]
    pub display_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub saas_instance_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub app_type: Option<String>,
}

/// `IdpInfo`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Idp {
    #[serde(deserialize_with = "text")]
    pub display_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub idp_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub app_type: Option<String>,
}

/// `SaaSAccount`: one account in one SaaS instance. Fields the exporter does not use
/// (`tenant`, `jobId`, `ticketKey`, `ticketUrl`, `rotatedBy`, …) are not read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SaasAccount {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub saas_provider_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub saas_instance_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub app_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub app_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub account_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub account_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub email: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub is_local: Option<bool>,
    #[serde(deserialize_with = "flag")]
    pub is_orphaned: Option<bool>,
    #[serde(deserialize_with = "flag")]
    pub is_elevated: Option<bool>,
    /// A string, not an array (the separator is not documented).
    #[serde(deserialize_with = "text")]
    pub roles: Option<String>,
    #[serde(deserialize_with = "text")]
    pub creator: Option<String>,
    #[serde(deserialize_with = "text")]
    pub linked_human_accounts: Option<String>,
    #[serde(deserialize_with = "text")]
    pub saas_provider_nhi_name: Option<String>,
    #[serde(deserialize_with = "instant")]
    pub last_login_time: Tri<RawInstant>,
    #[serde(deserialize_with = "flag")]
    pub is_non_human: Option<bool>,
    #[serde(deserialize_with = "instant")]
    pub created_time: Tri<RawInstant>,
    #[serde(deserialize_with = "instant")]
    pub latest_scan_time: Tri<RawInstant>,
    #[serde(deserialize_with = "instant")]
    pub last_credentials_rotated: Tri<RawInstant>,
    #[serde(deserialize_with = "instant")]
    pub credentials_expires_at: Tri<RawInstant>,
    #[serde(deserialize_with = "text")]
    pub github_org_name: Option<String>,
}

/// `MfaActivity`: one MFA event of one IdP user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MfaActivity {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub user_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub idp_id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub idp_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub mfa_strength: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub admin: Option<bool>,
    #[serde(deserialize_with = "text")]
    pub app_type: Option<String>,
    #[serde(deserialize_with = "instant")]
    pub timestamp: Tri<RawInstant>,
    #[serde(deserialize_with = "text")]
    pub mfa_factors: Option<String>,
    #[serde(deserialize_with = "text")]
    pub saas_provider_mfa_type: Option<String>,
    #[serde(deserialize_with = "text")]
    pub full_name: Option<String>,
    #[serde(deserialize_with = "text")]
    pub email: Option<String>,
}

/// `FeatureState` of one IdP feature.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FeatureState {
    #[serde(deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(deserialize_with = "instant")]
    pub last_scanned_at: Tri<RawInstant>,
}

/// The `Feature` enum of the spec: every value `feature_state` is asked about.
pub const FEATURES: [&str; 5] = [
    "ENROLLMENT",
    "ACTIVITY",
    "LOGOUT",
    "IDENTITY_NHI",
    "IDENTITY_ACTIVITY",
];

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants_in_every_shape_seen_or_documented() {
        let want = datetime!(2022-03-10 16:15:50 UTC);
        for s in [
            "2022-03-10 16:15:50+00:00", // the spec's own example
            "2022-03-10T16:15:50Z",
            "2022-03-10T16:15:50.000Z",
            "2022-03-10T16:15:50+0000",
            "2022-03-10T16:15:50",
            "2022-03-10T17:15:50+01:00",
            "1646928950",
            "1646928950000",
        ] {
            assert_eq!(parse_instant(s), Some(want), "{s}");
        }
        assert_eq!(
            parse_instant("2022-03-10"),
            Some(datetime!(2022-03-10 0:00 UTC))
        );
        for bad in ["", "yesterday", "2022-13-45T00:00:00Z", "0"] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
        assert_eq!(RawInstant::Number(1646928950.0).parse(), Some(want));
        assert_eq!(RawInstant::Number(1646928950000.0).parse(), Some(want));
    }

    #[test]
    fn every_field_is_optional_and_wrong_types_read_as_absent() {
        let a: SaasAccount = serde_json::from_str(
            r#"{"id": 42, "isElevated": "true", "isLocal": 1, "isOrphaned": {"x": 1},
                "roles": "Admin, Owner", "lastLoginTime": null, "createdTime": "",
                "latestScanTime": "2026-01-01 00:00:00+00:00", "unknownField": [1, 2],
                "isNonHuman": "maybe", "email": "  "}"#,
        )
        .unwrap();
        assert_eq!(a.id.as_deref(), Some("42"));
        assert_eq!(a.is_elevated, Some(true));
        assert_eq!(a.is_local, Some(true));
        assert_eq!(a.is_orphaned, None);
        assert_eq!(a.is_non_human, None);
        assert_eq!(a.email, None);
        assert_eq!(a.last_login_time, Tri::Null);
        assert_eq!(a.created_time, Tri::Null);
        assert!(a.last_credentials_rotated.is_absent());
        let empty: SaasAccount = serde_json::from_str("{}").unwrap();
        assert!(empty.id.is_none() && empty.last_login_time.is_absent());

        let p: Page = serde_json::from_str(r#"{"total": "3", "items": [{}, null, 7]}"#).unwrap();
        assert_eq!(p.total, Some(3));
        assert_eq!(p.items.unwrap().len(), 3);
        let p: Page = serde_json::from_str(r#"{"items": []}"#).unwrap();
        assert_eq!(p.total, None);
        // A body that is not an object is a decode error (the poll reports it).
        assert!(serde_json::from_str::<Page>("[1, 2]").is_err());
    }
}
