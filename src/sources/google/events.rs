//! The Google source's sign-in event stream: the Reports API login audit (`activities.list`
//! with `userKey=all`, `applicationName=login`, every event name) read window by window, and
//! the pure mapping of its activities into [`SignInEvent`]s (docs/activity.md "Google mapping").
//!
//! Mapped events (Google's login audit appendix): `login_success` (a whole web sign-in;
//! `login_challenge_method` gives the factor and whether 2SV was done), `login_failure` (by
//! `login_failure_type`), `login_challenge` and `login_verification` that failed (a failed
//! Google prompt is an MFA push denied), `suspicious_login`, `suspicious_login_less_secure_app`
//! and `suspicious_programmatic_login` (Google blocked the sign-in) and `account_disabled_*`
//! (Google disabled the account). Passed challenges and verifications are counted by the
//! sign-in's `login_success`; everything else in the log (logout, 2SV and password changes …)
//! is skipped. Google gives no coordinates, only a country (`networkInfo.regionCode`).

use serde::{Deserialize, Serialize};

use super::map::{challenge, Challenge};
use super::wire::{Activity, Event};
use crate::activity::event::{ClientKind, FactorKind, Outcome, Reason, Risk, SignInEvent, Stage};
use crate::model::{parse_ts, Timestamp};

/// `actor.profileId` Google uses as a placeholder for actors that are no Workspace user
/// (the discovery document's `Activity.actor.profileId`).
pub const PLACEHOLDER_PROFILE: &str = "105250506097979753968";

/// Where the stream stands between polls (persisted with the activity engine's state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamCursor {
    /// The newest `id.time` read by a complete pass: the next pass re-reads from here less
    /// the overlap (late events), never from before the look-back.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<Timestamp>,
    /// A pass cut short (page cap, request budget), finished first by the next poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

/// A pass cut short: its window (the same query must go with its `pageToken`), the token,
/// and the newest event it had read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    #[serde(with = "time::serde::rfc3339")]
    pub start: Timestamp,
    #[serde(with = "time::serde::rfc3339")]
    pub end: Timestamp,
    pub page_token: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub newest: Option<Timestamp>,
}

/// What one event of an activity is.
#[derive(Debug, PartialEq)]
pub enum Mapped {
    Event(Box<SignInEvent>),
    /// Not a sign-in outcome (most of the log), or counted by another event.
    Skip,
    /// Unreadable (no time or `uniqueQualifier`, an outcome that cannot be told).
    Bad(String),
}

/// What an event name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Success,
    Failure,
    /// `login_challenge`, `login_verification`: a step with `login_challenge_status`.
    Challenge,
    /// Google blocked a sign-in it found suspicious; the client kind.
    Suspicious(ClientKind),
    /// Google disabled the account.
    Disabled,
    Skip,
}

fn classify(name: &str) -> Class {
    match name {
        "login_success" => Class::Success,
        "login_failure" => Class::Failure,
        "login_challenge" | "login_verification" => Class::Challenge,
        "suspicious_login" => Class::Suspicious(ClientKind::Other),
        "suspicious_login_less_secure_app" => Class::Suspicious(ClientKind::Legacy),
        "suspicious_programmatic_login" => Class::Suspicious(ClientKind::Other),
        n if n.starts_with("account_disabled_") => Class::Disabled,
        _ => Class::Skip,
    }
}

/// The event kind of one `login_challenge_method` value: the login audit table of
/// docs/google.md, then the other documented values (`idv_any_phone`, `security_key_otp`,
/// `offline_otp`, `knowledge_*`, `login_location`, `other`). `None`: a first-factor value.
fn factor_of(value: &str) -> Option<FactorKind> {
    match challenge(value) {
        Challenge::Second(t) => Some(FactorKind::of(t)),
        Challenge::FirstFactor => None,
        Challenge::Unrecognised => {
            let v = value.trim().to_ascii_lowercase();
            Some(match v.as_str() {
                "idv_any_phone" => FactorKind::Sms,
                "security_key_otp" => FactorKind::HardwareToken,
                "offline_otp" => FactorKind::Totp,
                k if k.starts_with("knowledge_") => FactorKind::Question,
                _ => FactorKind::Other,
            })
        }
    }
}

/// Strongest first, for a sign-in that passed several challenges.
const RANK: [FactorKind; 11] = [
    FactorKind::Webauthn,
    FactorKind::HardwareToken,
    FactorKind::SmartCard,
    FactorKind::Push,
    FactorKind::Totp,
    FactorKind::Sms,
    FactorKind::Voice,
    FactorKind::Email,
    FactorKind::Question,
    FactorKind::Other,
    FactorKind::Password,
];

/// The factor an event used and whether a second factor (2SV) was among its challenges.
fn factors(e: &Event) -> (FactorKind, bool, bool) {
    let mut best: Option<FactorKind> = None;
    let (mut second, mut password) = (false, false);
    for v in e.values("login_challenge_method") {
        if matches!(challenge(v), Challenge::Second(_)) {
            second = true;
        }
        match factor_of(v) {
            Some(k) => {
                let rank = |k: FactorKind| RANK.iter().position(|r| *r == k).unwrap_or(RANK.len());
                if best.is_none_or(|b| rank(k) < rank(b)) {
                    best = Some(k);
                }
            }
            None => password |= v.trim().eq_ignore_ascii_case("password"),
        }
    }
    let kind = best.unwrap_or(if password {
        FactorKind::Password
    } else {
        FactorKind::Unknown
    });
    (kind, second, password)
}

fn first<'a>(e: &'a Event, name: &'a str) -> Option<&'a str> {
    e.values(name).map(str::trim).find(|v| !v.is_empty())
}

/// A `login_challenge_status`: `Some(true)` passed, `Some(false)` failed, `None` unknown
/// (Google: "an empty string indicates an unknown status"; older values read "Challenge
/// Passed." / "Challenge Failed.", newer ones "passed" / "failed").
fn passed(status: &str) -> Option<bool> {
    let s = status.trim().trim_end_matches('.').to_ascii_lowercase();
    if s.contains("pass") {
        Some(true)
    } else if ["fail", "incorrect", "denied", "declined", "timeout", "timed out", "expired"]
        .iter()
        .any(|w| s.contains(w))
    {
        Some(false)
    } else {
        None
    }
}

/// The event id: `id.time` (as milliseconds, so a time written two ways is one id) and
/// `uniqueQualifier` identify an activity; `#n` tells its events apart after the first.
fn event_id(t: Timestamp, uq: &str, index: usize) -> String {
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    if index == 0 {
        format!("{ms}/{uq}")
    } else {
        format!("{ms}/{uq}#{index}")
    }
}

/// Maps one activity: one entry per event it holds (almost always one).
pub fn map_activity(a: &Activity) -> Vec<Mapped> {
    let mut out = Vec::with_capacity(a.events.len());
    for (i, ev) in a.events.iter().enumerate() {
        out.push(map_event(a, ev, i));
    }
    out
}

fn map_event(a: &Activity, ev: &Event, index: usize) -> Mapped {
    let name = ev.name.as_deref().map(str::trim).unwrap_or("");
    let class = classify(name);
    if class == Class::Skip {
        return Mapped::Skip;
    }
    let id = a.id.as_ref();
    let Some(t) = id
        .and_then(|i| i.time.as_deref())
        .and_then(|t| parse_ts(t.trim()).ok())
    else {
        return Mapped::Bad(format!("a login audit {name} event without a valid id.time"));
    };
    let Some(uq) = id
        .and_then(|i| i.unique_qualifier.as_deref())
        .filter(|q| !q.trim().is_empty())
    else {
        return Mapped::Bad(format!("a login audit {name} event without id.uniqueQualifier"));
    };
    let mut e = SignInEvent::new(event_id(t, uq.trim(), index), t, Outcome::Success);
    let actor = a.actor.as_ref();
    let email = actor
        .and_then(|x| x.email.as_deref())
        .map(str::trim)
        .filter(|x| !x.is_empty());
    let profile = actor
        .and_then(|x| x.profile_id.as_deref())
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != PLACEHOLDER_PROFILE);
    e.account_id = profile.map(str::to_string);
    e.login = email.map(str::to_string);
    e.ip = a.ip_address.clone();
    e.country = a
        .network_info
        .as_ref()
        .and_then(|n| n.region_code.as_deref())
        .map(str::trim)
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_uppercase);
    let login_type = first(ev, "login_type").unwrap_or("").to_ascii_lowercase();
    e.client = if login_type == "exchange" {
        ClientKind::Other
    } else {
        // The login audit logs every web sign-in; from mail clients and other
        // non-browser applications only the suspicious ones (Google's Login audit log help).
        ClientKind::Browser
    };
    e.risk = ev
        .flag("is_suspicious")
        .map(|s| if s { Risk::High } else { Risk::None });
    let (factor, second, password) = factors(ev);

    let (result, reason, stage) = match class {
        Class::Skip => return Mapped::Skip,
        Class::Success => {
            e.factor = factor;
            e.mfa = if second {
                Some(true)
            } else if password && login_type == "google_password" && factor == FactorKind::Password
            {
                // Signed in with the Google password and no other challenge at all.
                Some(false)
            } else {
                // SAML (the IdP did any MFA), token exchange, reauth, `none`, unknown values.
                None
            };
            (Outcome::Success, Reason::None, Stage::Complete)
        }
        Class::Failure => {
            let ty = first(ev, "login_failure_type").unwrap_or("");
            e.detail = (!ty.is_empty()).then(|| ty.to_string());
            let password_step = |e: &mut SignInEvent| {
                e.factor = FactorKind::Password;
                Stage::Primary
            };
            match ty.to_ascii_lowercase().as_str() {
                "login_failure_invalid_password" => {
                    let s = password_step(&mut e);
                    (Outcome::Failure, Reason::InvalidCredentials, s)
                }
                "login_failure_account_disabled" => {
                    let s = password_step(&mut e);
                    (Outcome::Failure, Reason::AccountDisabled, s)
                }
                // "The user does not have permission to login to the service."
                "login_failure_access_code_disallowed" => {
                    e.factor = factor;
                    (Outcome::Blocked, Reason::Policy, Stage::Primary)
                }
                "login_failure_invalid_second_factor" => {
                    e.factor = if second { factor } else { FactorKind::Unknown };
                    (Outcome::Failure, Reason::MfaFailed, Stage::Mfa)
                }
                "login_failure_missing_second_factor" => {
                    e.factor = FactorKind::Unknown;
                    (Outcome::Failure, Reason::MfaRequired, Stage::Mfa)
                }
                // `login_failure_unknown`, a value added later, or none at all: a failed
                // sign-in whose reason Google does not say.
                _ => {
                    e.factor = factor;
                    (Outcome::Failure, Reason::Other, Stage::Primary)
                }
            }
        }
        Class::Challenge => {
            let status = first(ev, "login_challenge_status").unwrap_or("");
            match passed(status) {
                // The sign-in's `login_success` counts it (one sign-in, one count).
                Some(true) => return Mapped::Skip,
                None => {
                    return Mapped::Bad(format!(
                        "a {name} event whose login_challenge_status is unknown ({:?})",
                        crate::activity::event::clip(Some(status)).unwrap_or_default()
                    ))
                }
                Some(false) => {}
            }
            e.detail = Some(status.to_string());
            e.factor = factor;
            let s = status.to_ascii_lowercase();
            if factor == FactorKind::Push {
                // A Google prompt not approved: Google does not tell a "No" from no answer
                // unless the status says it timed out.
                if ["timeout", "timed out", "expired"].iter().any(|w| s.contains(w)) {
                    (Outcome::MfaTimeout, Reason::MfaTimeout, Stage::Mfa)
                } else {
                    (Outcome::MfaDenied, Reason::MfaDenied, Stage::Mfa)
                }
            } else {
                (Outcome::Failure, Reason::MfaFailed, Stage::Mfa)
            }
        }
        Class::Suspicious(client) => {
            e.client = client;
            e.risk = Some(Risk::High);
            warning_target(ev, &mut e);
            let login_time = ev
                .parameters
                .iter()
                .filter(|p| p.name.as_deref() == Some("login_timestamp"))
                .find_map(|p| p.int_value.as_deref().or(p.value.as_deref()));
            if let Some(ts) = login_time {
                e.detail = Some(format!("{name}; login_timestamp {ts}"));
            } else {
                e.detail = Some(name.to_string());
            }
            (Outcome::Blocked, Reason::Risk, Stage::Primary)
        }
        Class::Disabled => {
            warning_target(ev, &mut e);
            // Google's action, not a sign-in attempt from this address: no IP, so the
            // spray detector never counts it against an address.
            e.ip = None;
            e.client = ClientKind::Other;
            e.detail = Some(name.to_string());
            (Outcome::LockedOut, Reason::AccountDisabled, Stage::Primary)
        }
    };
    e.result = result;
    e.reason = reason;
    e.stage = stage;
    if result != Outcome::Success {
        e.mfa = None;
    }
    Mapped::Event(Box::new(e.sanitize()))
}

/// Account warnings name the user in `affected_email_address`; when that is not the actor,
/// the actor's profile id is not the account's.
fn warning_target(ev: &Event, e: &mut SignInEvent) {
    if let Some(affected) = first(ev, "affected_email_address") {
        let same = e
            .login
            .as_deref()
            .is_some_and(|l| l.eq_ignore_ascii_case(affected));
        if !same {
            e.account_id = None;
            e.login = Some(affected.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn activity(name: &str, params: Value) -> Activity {
        serde_json::from_value(json!({
            "kind": "admin#reports#activity",
            "id": {"time": "2026-11-28T10:00:00.000Z", "uniqueQualifier": "-6410578305296437521",
                   "applicationName": "login", "customerId": "C03az79cb"},
            "actor": {"email": "ann@example.com", "profileId": "104331570604379156316", "callerType": "USER"},
            "ipAddress": "203.0.113.9",
            "networkInfo": {"ipAsn": [64496], "regionCode": "nl"},
            "events": [{"type": "login", "name": name, "parameters": params}]
        }))
        .unwrap()
    }

    fn one(a: &Activity) -> SignInEvent {
        match map_activity(a).pop() {
            Some(Mapped::Event(e)) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn success_with_second_factor_password_only_and_saml() {
        let e = one(&activity(
            "login_success",
            json!([{"name": "login_type", "value": "google_password"},
                   {"name": "login_challenge_method", "multiValue": ["password", "google_prompt"]},
                   {"name": "is_suspicious", "boolValue": false}]),
        ));
        assert_eq!(
            (e.result, e.stage, e.factor, e.mfa),
            (Outcome::Success, Stage::Complete, FactorKind::Push, Some(true))
        );
        assert_eq!(e.account_id.as_deref(), Some("104331570604379156316"));
        assert_eq!(e.login.as_deref(), Some("ann@example.com"));
        assert_eq!(e.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.country.as_deref(), Some("NL"));
        assert_eq!(e.coords(), None, "Google gives no coordinates");
        assert_eq!(e.risk, Some(Risk::None));
        assert_eq!(e.client, ClientKind::Browser);
        assert_eq!(e.id, "1795860000000/-6410578305296437521");

        let e = one(&activity(
            "login_success",
            json!([{"name": "login_type", "value": "google_password"},
                   {"name": "login_challenge_method", "multiValue": ["password"]},
                   {"name": "is_suspicious", "boolValue": true}]),
        ));
        assert_eq!((e.factor, e.mfa, e.risk), (FactorKind::Password, Some(false), Some(Risk::High)));
        // The strongest of several second factors; a passkey alone is MFA.
        let e = one(&activity(
            "login_success",
            json!([{"name": "login_challenge_method", "multiValue": ["idv_preregistered_phone", "security_key"]}]),
        ));
        assert_eq!((e.factor, e.mfa), (FactorKind::Webauthn, Some(true)));
        // SAML: the IdP did any MFA, Google cannot say.
        let e = one(&activity(
            "login_success",
            json!([{"name": "login_type", "value": "saml"}, {"name": "login_challenge_method", "multiValue": []}]),
        ));
        assert_eq!((e.factor, e.mfa), (FactorKind::Unknown, None));
        let e = one(&activity(
            "login_success",
            json!([{"name": "login_type", "value": "exchange"},
                   {"name": "login_challenge_method", "value": "none"}]),
        ));
        assert_eq!((e.client, e.mfa), (ClientKind::Other, None));
        let e = one(&activity(
            "login_success",
            json!([{"name": "login_type", "value": "google_password"},
                   {"name": "login_challenge_method", "multiValue": ["password", "smoke_signal"]}]),
        ));
        assert_eq!((e.factor, e.mfa), (FactorKind::Other, None), "unrecognised: not 'no MFA'");
    }

    #[test]
    fn failures_by_documented_type() {
        let f = |ty: &str| {
            one(&activity(
                "login_failure",
                json!([{"name": "login_type", "value": "google_password"},
                       {"name": "login_challenge_method", "multiValue": ["password"]},
                       {"name": "login_failure_type", "value": ty}]),
            ))
        };
        let e = f("login_failure_invalid_password");
        assert_eq!(
            (e.result, e.reason, e.stage, e.factor),
            (Outcome::Failure, Reason::InvalidCredentials, Stage::Primary, FactorKind::Password)
        );
        assert_eq!(e.detail.as_deref(), Some("login_failure_invalid_password"));
        assert_eq!(f("login_failure_account_disabled").reason, Reason::AccountDisabled);
        let e = f("login_failure_access_code_disallowed");
        assert_eq!((e.result, e.reason), (Outcome::Blocked, Reason::Policy));
        let e = f("login_failure_invalid_second_factor");
        assert_eq!((e.result, e.reason, e.stage), (Outcome::Failure, Reason::MfaFailed, Stage::Mfa));
        let e = f("login_failure_missing_second_factor");
        assert_eq!((e.result, e.reason), (Outcome::Failure, Reason::MfaRequired));
        assert_eq!(f("login_failure_unknown").reason, Reason::Other);
        assert_eq!(f("login_failure_added_next_year").reason, Reason::Other);
        let e = one(&activity("login_failure", json!([])));
        assert_eq!((e.result, e.reason, e.factor), (Outcome::Failure, Reason::Other, FactorKind::Unknown));
        // multiValue, as some exports carry it.
        let e = one(&activity(
            "login_failure",
            json!([{"name": "login_failure_type", "multiValue": ["login_failure_invalid_password"]}]),
        ));
        assert_eq!(e.reason, Reason::InvalidCredentials);
    }

    #[test]
    fn challenges_and_verifications() {
        let v = |name: &str, method: &str, status: &str| {
            map_activity(&activity(
                name,
                json!([{"name": "login_type", "value": "google_password"},
                       {"name": "login_challenge_method", "multiValue": [method]},
                       {"name": "login_challenge_status", "value": status},
                       {"name": "is_second_factor", "boolValue": true}]),
            ))
            .pop()
            .unwrap()
        };
        let ev = |m: Mapped| match m {
            Mapped::Event(e) => *e,
            o => panic!("{o:?}"),
        };
        // A Google prompt not approved is a push denied (MFA fatigue counts it).
        let e = ev(v("login_verification", "google_prompt", "Challenge Failed."));
        assert_eq!(
            (e.result, e.reason, e.stage, e.factor),
            (Outcome::MfaDenied, Reason::MfaDenied, Stage::Mfa, FactorKind::Push)
        );
        assert_eq!(ev(v("login_verification", "internal_two_factor", "failed")).result, Outcome::MfaDenied);
        assert_eq!(ev(v("login_verification", "google_prompt", "timed out")).result, Outcome::MfaTimeout);
        // A wrong code is an MFA failure, not a denial.
        let e = ev(v("login_verification", "totp", "failed"));
        assert_eq!((e.result, e.reason, e.factor), (Outcome::Failure, Reason::MfaFailed, FactorKind::Totp));
        let e = ev(v("login_challenge", "idv_any_phone", "Challenge Failed."));
        assert_eq!((e.result, e.factor), (Outcome::Failure, FactorKind::Sms));
        let e = ev(v("login_challenge", "knowledge_employee_id", "incorrect_answer_entered"));
        assert_eq!((e.result, e.factor), (Outcome::Failure, FactorKind::Question));
        // Passed: the sign-in's login_success counts it.
        assert_eq!(v("login_verification", "google_prompt", "Challenge Passed."), Mapped::Skip);
        assert_eq!(v("login_challenge", "security_key", "passed"), Mapped::Skip);
        // Unknown status: not a success, not a failure, not nothing: unparsable, counted.
        assert!(matches!(v("login_verification", "google_prompt", ""), Mapped::Bad(_)));
        assert!(matches!(v("login_verification", "google_prompt", "maybe"), Mapped::Bad(_)));
    }

    #[test]
    fn account_warnings_blocked_and_disabled() {
        let e = one(&activity(
            "suspicious_login",
            json!([{"name": "affected_email_address", "value": "ann@example.com"},
                   {"name": "login_timestamp", "intValue": "1795859000123456"}]),
        ));
        assert_eq!((e.result, e.reason, e.risk), (Outcome::Blocked, Reason::Risk, Some(Risk::High)));
        assert_eq!(e.account_id.as_deref(), Some("104331570604379156316"));
        assert!(e.detail.unwrap().contains("1795859000123456"));
        let e = one(&activity(
            "suspicious_login_less_secure_app",
            json!([{"name": "affected_email_address", "value": "bo@example.com"}]),
        ));
        assert_eq!((e.result, e.client), (Outcome::Blocked, ClientKind::Legacy));
        assert_eq!((e.account_id, e.login.as_deref()), (None, Some("bo@example.com")), "the affected user, not the actor");
        assert_eq!(one(&activity("suspicious_programmatic_login", json!([]))).result, Outcome::Blocked);
        for n in ["account_disabled_hijacked", "account_disabled_password_leak", "account_disabled_generic",
                  "account_disabled_spamming", "account_disabled_spamming_through_relay"] {
            let e = one(&activity(n, json!([{"name": "affected_email_address", "value": "ann@example.com"}])));
            assert_eq!((e.result, e.reason, e.ip), (Outcome::LockedOut, Reason::AccountDisabled, None), "{n}");
        }
        for n in ["logout", "2sv_enroll", "password_edit", "gov_attack_warning", "risky_sensitive_action_blocked", "passkey_enrolled"] {
            assert_eq!(map_activity(&activity(n, json!([]))), vec![Mapped::Skip], "{n}");
        }
    }

    #[test]
    fn hostile_activities_never_panic_and_ids_are_stable() {
        for v in [
            json!({}),
            json!({"id": "x", "events": [{"name": "login_success"}]}),
            json!({"id": {"time": "soon", "uniqueQualifier": "1"}, "events": [{"name": "login_failure"}]}),
            json!({"id": {"time": "2026-11-28T10:00:00Z"}, "events": [{"name": "login_failure"}]}),
            json!({"id": {"time": "2026-11-28T10:00:00Z", "uniqueQualifier": 5},
                   "actor": {"email": 7, "profileId": "105250506097979753968"},
                   "networkInfo": {"regionCode": "Neverland"}, "ipAddress": ["x"],
                   "events": [{"name": "login_success", "parameters": [{"name": "login_challenge_method", "multiValue": [1, null]}]}, 7]}),
        ] {
            let a: Activity = serde_json::from_value(v).unwrap();
            let _ = map_activity(&a);
        }
        let a: Activity = serde_json::from_value(json!({"id": {"time": "2026-11-28T10:00:00Z"}, "events": [{"name": "login_failure"}]})).unwrap();
        assert!(matches!(map_activity(&a)[0], Mapped::Bad(_)));
        let a: Activity = serde_json::from_value(json!({"id": {"time": "2026-11-28T10:00:00Z", "uniqueQualifier": 5},
            "actor": {"profileId": "105250506097979753968", "email": "x@example.com"},
            "events": [{"name": "login_success"}, {"name": "login_failure"}]})).unwrap();
        let m = map_activity(&a);
        let (Mapped::Event(s), Mapped::Event(f)) = (&m[0], &m[1]) else { panic!("{m:?}") };
        assert_eq!(s.account_id, None, "the placeholder profile id is no account");
        assert_eq!((s.id.as_str(), f.id.as_str()), ("1795860000000/5", "1795860000000/5#1"));
        // The same time written two ways is one id.
        let b: Activity = serde_json::from_value(json!({"id": {"time": "2026-11-28T10:00:00.000Z", "uniqueQualifier": "5"},
            "events": [{"name": "login_success"}]})).unwrap();
        let Mapped::Event(s2) = &map_activity(&b)[0] else { panic!() };
        assert_eq!(s2.id, s.id);
    }
}
