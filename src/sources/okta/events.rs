//! The Okta source's sign-in event stream: the System Log (`GET /api/v1/logs`) read as a
//! polling query (`since`, then the `after` cursor of `Link: rel="next"`, which Okta sends
//! even on an empty page: an empty page ends the read and its cursor is kept for the next
//! poll), and the pure mapping of log events into [`SignInEvent`]s.
//!
//! Mapped event types: `user.session.start` (the password step), `user.authentication.*`
//! (`auth_via_mfa` is the MFA step; `sso` reaches an app through a session;
//! `auth_via_richclient` is a legacy rich client), `system.push.send_factor_verify_push` (a
//! push sent), `user.mfa.okta_verify.deny_push` (Classic: a push rejected), `auth_via_mfa`
//! with outcome `FAILURE`/`DENY` and a rejected push (Identity Engine; both are
//! `mfa_denied`), `user.account.lock*` (locked out), `security.threat.detected` and
//! `policy.evaluate_sign_on` with `DENY` (blocked). Everything else in the log is skipped.
//! The log is hostile input: every field is read leniently, a missing `uuid` or `published`
//! makes the event unparsable (counted, never a failed poll).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::activity::event::{
    ClientKind, EventKind, FactorKind, Outcome, Reason, Risk, SignInEvent, Stage,
};
use crate::model::{parse_ts, Timestamp};

/// Where the stream stands between polls (persisted with the activity engine's state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogCursor {
    /// The `next` link of the last page read (path and query, without the origin).
    pub next: String,
    /// The newest `published` seen so far: where a fresh query restarts when the cursor is
    /// refused (expired), less a small overlap (the engine drops the repeats by `uuid`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub newest: Option<Timestamp>,
}

/// What one log event is.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    Event(Box<SignInEvent>),
    /// Not an authentication event (most of the log): ignored.
    Skip,
    /// Unreadable (no `uuid`, no `published`): counted as unparsable.
    Bad(String),
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|x| !x.is_empty())
}

fn f(v: &Value, path: &[&str]) -> Option<f64> {
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

/// Okta's placeholder for "no such value" in ids.
fn real(x: Option<&str>) -> Option<&str> {
    x.filter(|v| !v.eq_ignore_ascii_case("unknown"))
}

/// The factor an MFA event used, from `debugContext.debugData.factor` (Classic and OIE
/// spell it differently) or the credential type.
fn factor_of(e: &Value) -> FactorKind {
    let dd = |k: &str| s(e, &["debugContext", "debugData", k]);
    let raw = dd("factor")
        .or_else(|| dd("factorType"))
        .or_else(|| s(e, &["authenticationContext", "credentialType"]))
        .unwrap_or("")
        .to_ascii_uppercase();
    let has = |k: &str| raw.contains(k);
    if has("PUSH") || has("SIGNED_NONCE") {
        FactorKind::Push
    } else if has("WEBAUTHN") || has("FIDO") || has("U2F") {
        FactorKind::Webauthn
    } else if has("SMS") {
        FactorKind::Sms
    } else if has("CALL") || has("VOICE") {
        FactorKind::Voice
    } else if has("EMAIL") {
        FactorKind::Email
    } else if has("QUESTION") {
        FactorKind::Question
    } else if has("HARDWARE") || has("YUBIKEY") || has("RSA") || has("SYMANTEC") {
        FactorKind::HardwareToken
    } else if has("TOTP") || has("OTP") || has("TOKEN") {
        FactorKind::Totp
    } else if has("PASSWORD") {
        FactorKind::Password
    } else if raw.is_empty() {
        FactorKind::Unknown
    } else {
        FactorKind::Other
    }
}

/// Whether an MFA failure says the user rejected a push (Identity Engine logs it as
/// `auth_via_mfa` with `FAILURE`/`DENY`; the reason or the debug data names the rejection).
fn push_rejected(e: &Value, reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    let dd = |k: &str| {
        s(e, &["debugContext", "debugData", k])
            .unwrap_or("")
            .to_ascii_uppercase()
    };
    r.contains("reject")
        || r.contains("denied")
        || r.contains("deny")
        || r.contains("declin")
        || dd("pushOnlyResponseType").contains("DENY")
        || dd("PushOnlyResponseType").contains("DENY")
        || dd("pushWithNumberChallengeResponseType").contains("DENY")
}

fn timed_out(result: &str, reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    result == "UNANSWERED" || r.contains("timed out") || r.contains("timeout") || r.contains("expired")
}

/// A failure's bounded reason from Okta's `outcome.reason`.
fn reason_of(reason: &str) -> Reason {
    let r = reason.to_ascii_uppercase();
    if r.contains("INVALID_CREDENTIALS") || r.contains("VERIFICATION_ERROR") || r.contains("INVALID PASSWORD") {
        Reason::InvalidCredentials
    } else if r.contains("UNKNOWN_USER") || r.contains("UNKNOWN USER") {
        Reason::UnknownUser
    } else if r.contains("LOCKED") {
        Reason::LockedOut
    } else if r.contains("PASSWORD_EXPIRED") || r.contains("PASSWORD EXPIRED") {
        Reason::PasswordExpired
    } else if r.contains("DEACTIVATED") || r.contains("SUSPENDED") || r.contains("NOT ACTIVE") {
        Reason::AccountDisabled
    } else if r.contains("POLICY") || r.contains("SIGN-ON") || r.contains("NOT ALLOWED") {
        Reason::Policy
    } else {
        Reason::Other
    }
}

/// `debugContext.debugData.risk` reads like `{level=HIGH, reasons=…}`.
fn risk_of(e: &Value) -> Option<Risk> {
    let raw = s(e, &["debugContext", "debugData", "risk"])
        .or_else(|| s(e, &["debugContext", "debugData", "riskLevel"]))?
        .to_ascii_uppercase();
    ["HIGH", "MEDIUM", "LOW", "NONE"]
        .iter()
        .find(|l| raw.contains(&format!("LEVEL={l}")) || raw == **l)
        .and_then(|l| Risk::parse(&l.to_ascii_lowercase()))
}

fn client_of(e: &Value, event_type: &str) -> ClientKind {
    if event_type == "user.authentication.auth_via_richclient" {
        return ClientKind::Legacy;
    }
    let device = s(e, &["client", "device"]).unwrap_or("").to_ascii_lowercase();
    if device.contains("mobile") || device.contains("tablet") {
        return ClientKind::Mobile;
    }
    let browser = s(e, &["client", "userAgent", "browser"]).unwrap_or("");
    if device.contains("computer") || (!browser.is_empty() && !browser.eq_ignore_ascii_case("UNKNOWN")) {
        return ClientKind::Browser;
    }
    ClientKind::Other
}

/// Maps one System Log event.
pub fn map_log_event(e: &Value) -> Mapped {
    let Some(event_type) = s(e, &["eventType"]) else {
        return Mapped::Bad("an event without eventType".into());
    };
    let kind = classify(event_type);
    if matches!(kind, Class::Skip) {
        return Mapped::Skip;
    }
    let Some(id) = s(e, &["uuid"]) else {
        return Mapped::Bad(format!("a {event_type} event without uuid"));
    };
    let Some(time) = s(e, &["published"]).and_then(|t| parse_ts(t).ok()) else {
        return Mapped::Bad(format!("a {event_type} event without a valid published time"));
    };
    let result = s(e, &["outcome", "result"]).unwrap_or("").to_ascii_uppercase();
    let reason_text = s(e, &["outcome", "reason"]).unwrap_or("");

    let mut ev = SignInEvent::new(id, time, Outcome::Success);
    // The account: the actor, unless the event is about a target user (lockouts).
    let user_of = |v: &Value| -> Option<(Option<String>, Option<String>)> {
        (s(v, &["type"]) == Some("User")).then(|| {
            (
                real(s(v, &["id"])).map(str::to_string),
                real(s(v, &["alternateId"])).map(str::to_string),
            )
        })
    };
    let target_user = e
        .get("target")
        .and_then(Value::as_array)
        .and_then(|ts| ts.iter().find_map(&user_of));
    let actor_user = e.get("actor").and_then(user_of);
    let (account_id, login) = match (&kind, target_user, actor_user) {
        (Class::Lock, Some(t), _) => t,
        (_, _, Some(a)) => a,
        (_, Some(t), None) => t,
        _ => (None, None),
    };
    ev.account_id = account_id;
    ev.login = login;
    ev.ip = s(e, &["client", "ipAddress"]).map(str::to_string);
    ev.country = s(e, &["client", "geographicalContext", "country"]).map(str::to_string);
    ev.lat = f(e, &["client", "geographicalContext", "geolocation", "lat"]);
    ev.lon = f(e, &["client", "geographicalContext", "geolocation", "lon"]);
    ev.session = real(s(e, &["authenticationContext", "externalSessionId"])).map(str::to_string);
    ev.client = client_of(e, event_type);
    ev.risk = risk_of(e);
    ev.detail = (!reason_text.is_empty()).then(|| reason_text.to_string());

    let outcome = |ok: Outcome, fail: Outcome| match result.as_str() {
        "SUCCESS" | "ALLOW" => Some(ok),
        "FAILURE" => Some(fail),
        "DENY" => Some(Outcome::Blocked),
        _ => None,
    };
    let (result_out, reason) = match kind {
        Class::Skip => return Mapped::Skip,
        Class::Primary => {
            ev.stage = Stage::Primary;
            ev.factor = match factor_of(e) {
                FactorKind::Unknown | FactorKind::Other => FactorKind::Password,
                k => k,
            };
            match outcome(Outcome::Success, Outcome::Failure) {
                None => return Mapped::Skip,
                Some(Outcome::Failure) => {
                    let r = reason_of(reason_text);
                    if r == Reason::LockedOut {
                        (Outcome::LockedOut, r)
                    } else {
                        (Outcome::Failure, r)
                    }
                }
                Some(Outcome::Blocked) => (Outcome::Blocked, Reason::Policy),
                Some(o) => (o, o.default_reason()),
            }
        }
        Class::Sso => {
            ev.stage = Stage::Complete;
            match outcome(Outcome::Success, Outcome::Failure) {
                None => return Mapped::Skip,
                Some(Outcome::Failure) => (Outcome::Failure, reason_of(reason_text)),
                Some(o) => (o, o.default_reason()),
            }
        }
        Class::Mfa => {
            ev.stage = Stage::Mfa;
            ev.factor = factor_of(e);
            match result.as_str() {
                "SUCCESS" | "ALLOW" => (Outcome::Success, Reason::None),
                "FAILURE" | "DENY" | "UNANSWERED" if timed_out(&result, reason_text) => {
                    (Outcome::MfaTimeout, Reason::MfaTimeout)
                }
                "FAILURE" | "DENY" if push_rejected(e, reason_text) => {
                    ev.factor = FactorKind::Push;
                    (Outcome::MfaDenied, Reason::MfaDenied)
                }
                "FAILURE" | "DENY" => (Outcome::Failure, Reason::MfaFailed),
                _ => return Mapped::Skip,
            }
        }
        Class::DenyPush => {
            ev.stage = Stage::Mfa;
            ev.factor = FactorKind::Push;
            (Outcome::MfaDenied, Reason::MfaDenied)
        }
        Class::PushSent => {
            ev.kind = EventKind::MfaChallenge;
            ev.stage = Stage::Mfa;
            ev.factor = FactorKind::Push;
            (Outcome::Success, Reason::None)
        }
        Class::Lock => {
            ev.stage = Stage::Primary;
            (Outcome::LockedOut, Reason::LockedOut)
        }
        Class::Threat => {
            ev.stage = Stage::Primary;
            (Outcome::Blocked, Reason::Risk)
        }
        Class::Policy => {
            if result != "DENY" {
                return Mapped::Skip;
            }
            ev.stage = Stage::Primary;
            (Outcome::Blocked, Reason::Policy)
        }
    };
    ev.result = result_out;
    ev.reason = reason;
    Mapped::Event(Box::new(ev.sanitize()))
}

enum Class {
    Primary,
    Sso,
    Mfa,
    DenyPush,
    PushSent,
    Lock,
    Threat,
    Policy,
    Skip,
}

fn classify(t: &str) -> Class {
    match t {
        "user.session.start" => Class::Primary,
        "user.authentication.auth_via_mfa" => Class::Mfa,
        "user.mfa.okta_verify.deny_push" => Class::DenyPush,
        "system.push.send_factor_verify_push" => Class::PushSent,
        "user.account.lock" | "user.account.lock.limit" => Class::Lock,
        "security.threat.detected" => Class::Threat,
        "policy.evaluate_sign_on" => Class::Policy,
        "user.authentication.sso" => Class::Sso,
        "user.authentication.auth_via_IDP"
        | "user.authentication.auth_via_richclient"
        | "user.authentication.auth_via_social"
        | "user.authentication.auth_via_AD_agent"
        | "user.authentication.auth_via_LDAP_agent"
        | "user.authentication.auth_via_radius"
        | "user.authentication.auth"
        | "user.authentication.verify" => Class::Primary,
        _ => Class::Skip,
    }
}

/// The value of a query parameter of a URL's query string.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> SignInEvent {
        match map_log_event(&v) {
            Mapped::Event(e) => *e,
            other => panic!("{other:?}"),
        }
    }

    fn base(event_type: &str, result: &str, reason: Option<&str>) -> Value {
        json!({
            "uuid": format!("u-{event_type}-{result}"),
            "published": "2026-11-28T10:00:00.000Z",
            "eventType": event_type,
            "actor": {"id": "00u1", "type": "User", "alternateId": "ann@example.com"},
            "client": {"ipAddress": "203.0.113.9", "device": "Computer",
                       "userAgent": {"browser": "CHROME"},
                       "geographicalContext": {"country": "Netherlands",
                                               "geolocation": {"lat": 52.37, "lon": 4.9}}},
            "authenticationContext": {"externalSessionId": "idxS1"},
            "outcome": {"result": result, "reason": reason},
            "debugContext": {"debugData": {}}
        })
    }

    #[test]
    fn password_step_success_and_failure() {
        let e = ev(base("user.session.start", "SUCCESS", None));
        assert_eq!((e.result, e.stage, e.factor), (Outcome::Success, Stage::Primary, FactorKind::Password));
        assert_eq!(e.login.as_deref(), Some("ann@example.com"));
        assert_eq!(e.coords(), Some((52.37, 4.9)));
        assert_eq!(e.country.as_deref(), Some("Netherlands"));
        assert_eq!(e.session.as_deref(), Some("idxS1"));
        assert_eq!(e.client, ClientKind::Browser);
        let e = ev(base("user.session.start", "FAILURE", Some("INVALID_CREDENTIALS")));
        assert_eq!((e.result, e.reason), (Outcome::Failure, Reason::InvalidCredentials));
        let e = ev(base("user.session.start", "FAILURE", Some("LOCKED_OUT")));
        assert_eq!(e.result, Outcome::LockedOut);
        let e = ev(base("user.session.start", "DENY", None));
        assert_eq!(e.result, Outcome::Blocked);
        assert_eq!(map_log_event(&base("user.session.start", "CHALLENGE", None)), Mapped::Skip);
    }

    #[test]
    fn push_denials_classic_and_identity_engine_are_both_mfa_denied() {
        let e = ev(base("user.mfa.okta_verify.deny_push", "SUCCESS", None));
        assert_eq!((e.result, e.factor, e.stage), (Outcome::MfaDenied, FactorKind::Push, Stage::Mfa));
        let e = ev(base("user.authentication.auth_via_mfa", "FAILURE", Some("User rejected Okta push verify")));
        assert_eq!(e.result, Outcome::MfaDenied);
        let e = ev(base("user.authentication.auth_via_mfa", "DENY", Some("Push rejected")));
        assert_eq!(e.result, Outcome::MfaDenied);
        let mut v = base("user.authentication.auth_via_mfa", "FAILURE", Some("INVALID_CREDENTIALS"));
        v["debugContext"]["debugData"]["pushOnlyResponseType"] = json!("OV_RESPONSE_DENY");
        assert_eq!(ev(v).result, Outcome::MfaDenied);
        // A wrong TOTP code is an MFA failure, not a push denial.
        let mut v = base("user.authentication.auth_via_mfa", "FAILURE", Some("INVALID_CREDENTIALS"));
        v["debugContext"]["debugData"]["factor"] = json!("OKTA_VERIFY_TOTP");
        let e = ev(v);
        assert_eq!((e.result, e.reason, e.factor), (Outcome::Failure, Reason::MfaFailed, FactorKind::Totp));
        let e = ev(base("user.authentication.auth_via_mfa", "UNANSWERED", None));
        assert_eq!(e.result, Outcome::MfaTimeout);
        let mut v = base("user.authentication.auth_via_mfa", "SUCCESS", None);
        v["debugContext"]["debugData"]["factor"] = json!("OKTA_VERIFY_PUSH");
        let e = ev(v);
        assert_eq!((e.result, e.factor), (Outcome::Success, FactorKind::Push));
        let e = ev(base("system.push.send_factor_verify_push", "SUCCESS", None));
        assert_eq!(e.kind, EventKind::MfaChallenge);
    }

    #[test]
    fn lock_threat_policy_and_the_rest() {
        let mut v = base("user.account.lock", "SUCCESS", None);
        v["actor"] = json!({"id": "0oaSystem", "type": "PublicClientApp"});
        v["target"] = json!([{"id": "00u7", "type": "User", "alternateId": "bo@example.com"}]);
        let e = ev(v);
        assert_eq!((e.result, e.account_id.as_deref()), (Outcome::LockedOut, Some("00u7")));
        let mut v = base("security.threat.detected", "DENY", None);
        v["actor"] = json!({"id": "unknown", "type": "User", "alternateId": "unknown"});
        let e = ev(v);
        assert_eq!((e.result, e.reason, e.account_id), (Outcome::Blocked, Reason::Risk, None));
        assert_eq!(ev(base("policy.evaluate_sign_on", "DENY", None)).result, Outcome::Blocked);
        assert_eq!(map_log_event(&base("policy.evaluate_sign_on", "ALLOW", None)), Mapped::Skip);
        assert_eq!(map_log_event(&base("user.mfa.factor.activate", "SUCCESS", None)), Mapped::Skip);
        let e = ev(base("user.authentication.auth_via_richclient", "SUCCESS", None));
        assert_eq!(e.client, ClientKind::Legacy);
        let mut v = base("user.session.start", "SUCCESS", None);
        v["debugContext"]["debugData"]["risk"] = json!("{reasons=Anomalous Device, level=HIGH}");
        assert_eq!(ev(v).risk, Some(Risk::High));
    }

    #[test]
    fn hostile_events_never_panic() {
        for v in [
            json!(null),
            json!([]),
            json!({"eventType": 5}),
            json!({"eventType": "user.session.start"}),
            json!({"eventType": "user.session.start", "uuid": "x", "published": "yesterday"}),
            json!({"eventType": "user.session.start", "uuid": "x", "published": "2026-11-28T10:00:00Z",
                   "actor": "nope", "client": {"geographicalContext": {"geolocation": {"lat": "95", "lon": []}}},
                   "outcome": {"result": 1}}),
        ] {
            let _ = map_log_event(&v);
        }
        assert!(matches!(
            map_log_event(&json!({"eventType": "user.session.start", "published": "2026-11-28T10:00:00Z"})),
            Mapped::Bad(_)
        ));
        let mut v = base("user.session.start", "SUCCESS", None);
        v["client"]["geographicalContext"]["geolocation"] = json!({"lat": 95.0, "lon": 10});
        assert_eq!(ev(v).coords(), None);
        let mut v = base("user.session.start", "SUCCESS", None);
        v["actor"]["alternateId"] = json!("x".repeat(10_000));
        assert!(ev(v).login.unwrap().len() <= crate::activity::event::MAX_TEXT);
    }
}
