//! The Entra source's sign-in event stream: `GET /v1.0/auditLogs/signIns` with a
//! `createdDateTime ge …` filter, following `@odata.nextLink` (Graph lists the newest first),
//! and the pure mapping of a `signIn` record into a [`SignInEvent`]. One record is one
//! sign-in attempt (`stage = complete`): `status.errorCode` says how it ended (0 = success;
//! interrupts such as "MFA required next" are not outcomes and are skipped),
//! `clientAppUsed` names legacy protocols, `location` the country and coordinates,
//! `riskLevelDuringSignIn` the risk, `authenticationRequirement` and `mfaDetail` whether and
//! how MFA was done. Records are hostile input: read leniently, never a panic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::activity::event::{ClientKind, FactorKind, Outcome, Reason, Risk, SignInEvent, Stage};
use crate::model::{parse_ts, Timestamp};

/// Where the stream stands between polls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignInCursor {
    /// The newest `createdDateTime` read in a complete pass: the next query's lower bound
    /// (less an overlap for late-arriving records).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<Timestamp>,
    /// A pass cut short (page cap, request budget): the `@odata.nextLink` it stopped at,
    /// followed first by the next poll, and the newest time that pass had read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub pending_newest: Option<Timestamp>,
}

/// What one record is.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    Event(Box<SignInEvent>),
    /// An interrupt (the sign-in continues in another record): not counted.
    Skip,
    Bad(String),
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|x| !x.is_empty())
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::Number(n) => n.as_f64(),
        Value::String(t) => t.trim().parse().ok(),
        _ => None,
    }
}

/// Error codes that interrupt a sign-in which then continues (MFA or consent to come, "keep
/// me signed in", device authentication): not an outcome.
const INTERRUPTS: &[i64] = &[
    50072, 50074, 50076, 50079, 50097, 50125, 50140, 50158, 50199, 16000, 16001, 65001,
];

/// Legacy authentication protocols as `clientAppUsed` names them (they cannot do MFA).
fn is_legacy(app: &str) -> bool {
    let a = app.to_ascii_lowercase();
    [
        "exchange activesync",
        "imap",
        "mapi",
        "smtp",
        "pop",
        "other clients",
        "autodiscover",
        "exchange web services",
        "exchange online powershell",
        "offline address book",
        "outlook anywhere",
        "reporting web services",
        "universal outlook",
    ]
    .iter()
    .any(|l| a.contains(l))
}

fn factor_of(method: &str) -> FactorKind {
    let m = method.to_ascii_lowercase();
    if m.contains("notification") || (m.contains("approval") && m.contains("app")) {
        FactorKind::Push
    } else if m.contains("verification code") || m.contains("oath") || m.contains("software token") {
        FactorKind::Totp
    } else if m.contains("text message") || m.contains("sms") {
        FactorKind::Sms
    } else if m.contains("phone call") || m.contains("voice") {
        FactorKind::Voice
    } else if m.contains("fido") || m.contains("windows hello") || m.contains("passkey") {
        FactorKind::Webauthn
    } else if m.contains("certificate") || m.contains("smart card") {
        FactorKind::SmartCard
    } else if m.contains("hardware") {
        FactorKind::HardwareToken
    } else if m.contains("email") {
        FactorKind::Email
    } else if m.contains("password") {
        FactorKind::Password
    } else if m.is_empty() {
        FactorKind::Unknown
    } else {
        FactorKind::Other
    }
}

/// Maps one `signIn` record.
pub fn map_sign_in(v: &Value) -> Mapped {
    let Some(id) = s(v, &["id"]) else {
        return Mapped::Bad("a sign-in record without id".into());
    };
    let Some(time) = s(v, &["createdDateTime"]).and_then(|t| parse_ts(t).ok()) else {
        return Mapped::Bad(format!("sign-in {id}: no valid createdDateTime"));
    };
    let code = num(v, &["status", "errorCode"]).map(|c| c as i64);
    let failure = s(v, &["status", "failureReason"]).unwrap_or("");
    let details = s(v, &["status", "additionalDetails"]).unwrap_or("");
    let text = format!("{failure} {details}").to_ascii_lowercase();
    let method = s(v, &["mfaDetail", "authMethod"]).unwrap_or("");
    let mut e = SignInEvent::new(id, time, Outcome::Success);
    e.stage = Stage::Complete;
    let (result, reason) = match code {
        Some(0) => (Outcome::Success, Reason::None),
        Some(c) if INTERRUPTS.contains(&c) => return Mapped::Skip,
        Some(500121) => {
            e.stage = Stage::Mfa;
            if text.contains("did not respond") || text.contains("timed out") || text.contains("timeout") {
                (Outcome::MfaTimeout, Reason::MfaTimeout)
            } else if text.contains("declined") || text.contains("denied") || text.contains("fraud") {
                (Outcome::MfaDenied, Reason::MfaDenied)
            } else {
                (Outcome::Failure, Reason::MfaFailed)
            }
        }
        Some(50126) => (Outcome::Failure, Reason::InvalidCredentials),
        Some(50034) => (Outcome::Failure, Reason::UnknownUser),
        Some(50057) => (Outcome::Failure, Reason::AccountDisabled),
        Some(50055) | Some(50144) => (Outcome::Failure, Reason::PasswordExpired),
        Some(50053) => (Outcome::LockedOut, Reason::LockedOut),
        Some(53003) | Some(530032) | Some(53000) | Some(53001) | Some(50105) => {
            (Outcome::Blocked, Reason::Policy)
        }
        Some(53004) | Some(530034) => (Outcome::Blocked, Reason::Risk),
        Some(_) => (Outcome::Failure, Reason::Other),
        None => return Mapped::Bad(format!("sign-in {id}: no status.errorCode")),
    };
    e.result = result;
    e.reason = reason;
    e.account_id = s(v, &["userId"]).map(str::to_string);
    e.login = s(v, &["userPrincipalName"]).map(str::to_string);
    e.ip = s(v, &["ipAddress"]).map(str::to_string);
    e.country = s(v, &["location", "countryOrRegion"]).map(str::to_string);
    e.lat = num(v, &["location", "geoCoordinates", "latitude"]);
    e.lon = num(v, &["location", "geoCoordinates", "longitude"]);
    e.session = s(v, &["correlationId"]).map(str::to_string);
    e.detail = Some(format!("{} {}", code.unwrap_or_default(), failure.trim()))
        .filter(|_| result != Outcome::Success)
        .or_else(|| (!details.is_empty()).then(|| details.to_string()));
    e.risk = match s(v, &["riskLevelDuringSignIn"]) {
        Some("none") => Some(Risk::None),
        Some("low") => Some(Risk::Low),
        Some("medium") => Some(Risk::Medium),
        Some("high") => Some(Risk::High),
        _ => None,
    };
    let app = s(v, &["clientAppUsed"]).unwrap_or("");
    let os = s(v, &["deviceDetail", "operatingSystem"])
        .unwrap_or("")
        .to_ascii_lowercase();
    e.client = if is_legacy(app) {
        ClientKind::Legacy
    } else if os.contains("ios") || os.contains("android") {
        ClientKind::Mobile
    } else if app.eq_ignore_ascii_case("Browser") {
        ClientKind::Browser
    } else {
        ClientKind::Other
    };
    let requirement = s(v, &["authenticationRequirement"]).unwrap_or("");
    let mfa = match requirement {
        "multiFactorAuthentication" => Some(true),
        "singleFactorAuthentication" => Some(false),
        _ => None,
    };
    e.factor = match (e.result, mfa) {
        (Outcome::MfaDenied | Outcome::MfaTimeout, _) if method.is_empty() => FactorKind::Push,
        (_, Some(true)) | (Outcome::MfaDenied | Outcome::MfaTimeout, _) => factor_of(method),
        (_, Some(false)) => FactorKind::Password,
        _ if e.client == ClientKind::Legacy => FactorKind::Password,
        _ => factor_of(method),
    };
    if e.result == Outcome::Success {
        // A legacy protocol cannot do MFA, whatever else the record says.
        e.mfa = if e.client == ClientKind::Legacy {
            Some(false)
        } else {
            mfa
        };
    }
    Mapped::Event(Box::new(e.sanitize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(code: i64, extra: Value) -> Value {
        let mut v = json!({
            "id": "66ea54eb-6301-4ee5-be62-ff5a759b0100",
            "createdDateTime": "2026-11-28T11:00:00Z",
            "userDisplayName": "Test Contoso",
            "userPrincipalName": "ann@contoso.com",
            "userId": "26be570a-ae82-4189-b4e2-a37c6808512d",
            "appId": "de8bc8b5-d9f9-48b1-a8ad-b748da725064",
            "appDisplayName": "Graph Explorer",
            "ipAddress": "131.107.159.37",
            "clientAppUsed": "Browser",
            "correlationId": "d79f5bee-5860-4832-928f-3133e22ae912",
            "conditionalAccessStatus": "notApplied",
            "isInteractive": true,
            "riskDetail": "none",
            "riskLevelAggregated": "none",
            "riskLevelDuringSignIn": "none",
            "riskState": "none",
            "riskEventTypes_v2": [],
            "resourceDisplayName": "Microsoft Graph",
            "resourceId": "00000003-0000-0000-c000-000000000000",
            "authenticationRequirement": "multiFactorAuthentication",
            "status": {"errorCode": code, "failureReason": "Other.", "additionalDetails": null},
            "deviceDetail": {"deviceId": "", "displayName": null, "operatingSystem": "Windows 10",
                             "browser": "Edge 80.0.361", "isCompliant": null, "isManaged": null, "trustType": null},
            "location": {"city": "Redmond", "state": "Washington", "countryOrRegion": "US",
                         "geoCoordinates": {"altitude": null, "latitude": 47.68050003051758, "longitude": -122.12094116210938}},
            "mfaDetail": {"authMethod": "Mobile app notification", "authDetail": null},
            "appliedConditionalAccessPolicies": []
        });
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in x {
                o.insert(k.clone(), val.clone());
            }
        }
        v
    }

    fn ev(v: Value) -> SignInEvent {
        match map_sign_in(&v) {
            Mapped::Event(e) => *e,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn success_with_mfa_location_and_risk() {
        let e = ev(rec(0, json!({"riskLevelDuringSignIn": "high"})));
        assert_eq!((e.result, e.stage, e.factor), (Outcome::Success, Stage::Complete, FactorKind::Push));
        assert_eq!(e.mfa, Some(true));
        assert_eq!(e.country.as_deref(), Some("US"));
        assert!(e.coords().is_some());
        assert_eq!(e.risk, Some(Risk::High));
        assert_eq!(e.client, ClientKind::Browser);
        assert_eq!(e.login.as_deref(), Some("ann@contoso.com"));
    }

    #[test]
    fn error_codes_map_to_outcomes_and_interrupts_are_skipped() {
        let e = ev(rec(50126, json!({"authenticationRequirement": "singleFactorAuthentication", "mfaDetail": null})));
        assert_eq!((e.result, e.reason, e.factor), (Outcome::Failure, Reason::InvalidCredentials, FactorKind::Password));
        assert_eq!(ev(rec(50053, json!({}))).result, Outcome::LockedOut);
        assert_eq!(ev(rec(53003, json!({}))).result, Outcome::Blocked);
        assert_eq!(ev(rec(50034, json!({}))).reason, Reason::UnknownUser);
        assert_eq!(map_sign_in(&rec(50074, json!({}))), Mapped::Skip);
        let d = ev(rec(500121, json!({"status": {"errorCode": 500121, "failureReason": "Authentication failed during strong authentication request.", "additionalDetails": "MFA denied; user declined the authentication"}})));
        assert_eq!((d.result, d.factor, d.stage), (Outcome::MfaDenied, FactorKind::Push, Stage::Mfa));
        let t = ev(rec(500121, json!({"status": {"errorCode": 500121, "additionalDetails": "MFA denied; user did not respond to mobile app notification"}})));
        assert_eq!(t.result, Outcome::MfaTimeout);
        assert_eq!(ev(rec(9999, json!({}))).reason, Reason::Other);
    }

    #[test]
    fn legacy_protocols_never_count_as_mfa() {
        let e = ev(rec(0, json!({"clientAppUsed": "IMAP4", "authenticationRequirement": "singleFactorAuthentication", "mfaDetail": null})));
        assert_eq!((e.client, e.mfa, e.factor), (ClientKind::Legacy, Some(false), FactorKind::Password));
        let e = ev(rec(0, json!({"clientAppUsed": "Mobile Apps and Desktop clients", "deviceDetail": {"operatingSystem": "iOS 17"}})));
        assert_eq!(e.client, ClientKind::Mobile);
    }

    #[test]
    fn hostile_records_never_panic() {
        for v in [
            json!(null),
            json!({"id": 5}),
            json!({"id": "x", "createdDateTime": "soon"}),
            json!({"id": "x", "createdDateTime": "2026-11-28T11:00:00Z"}),
            json!({"id": "x", "createdDateTime": "2026-11-28T11:00:00Z", "status": {"errorCode": "0"},
                   "location": {"geoCoordinates": {"latitude": "north", "longitude": 1e308}}}),
        ] {
            let _ = map_sign_in(&v);
        }
        assert!(matches!(map_sign_in(&json!({"id": "x", "createdDateTime": "2026-11-28T11:00:00Z"})), Mapped::Bad(_)));
    }
}
