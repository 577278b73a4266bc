//! The one normalised sign-in event every activity stream maps its provider into (Okta System
//! Log, Entra sign-in logs, SaaS Security activity, the file source's replayed stream), and its
//! bounded vocabularies: outcome, stage, reason, factor kind, client kind, risk level.
//! It is also the on-disk format of the file source's event stream (`generate-demo --events`).

use serde::{Deserialize, Serialize};

use crate::model::{FactorType, Timestamp};

/// Longest string kept from a provider's event (login, IP, country, detail): hostile data
/// must not grow memory without bound.
pub const MAX_TEXT: usize = 256;

/// Trims and caps provider text; empty is `None`.
pub fn clip(s: Option<&str>) -> Option<String> {
    let t = s?.trim();
    if t.is_empty() {
        return None;
    }
    if t.len() <= MAX_TEXT {
        return Some(t.to_string());
    }
    let mut end = MAX_TEXT;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    Some(t[..end].to_string())
}

macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vm])* $variant),*
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),*
                }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($s => Some($name::$variant),)*
                    _ => None,
                }
            }
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

vocabulary! {
    /// What an authentication step came to (the `result` label of
    /// `identity_posture_signins_total`).
    Outcome {
        Success = "success",
        Failure = "failure",
        /// The user rejected an MFA challenge (a push denied).
        MfaDenied = "mfa_denied",
        /// An MFA challenge was not answered in time.
        MfaTimeout = "mfa_timeout",
        /// Refused by policy or threat protection before the credentials were judged.
        Blocked = "blocked",
        /// The account was (or got) locked.
        LockedOut = "locked_out",
    }
}

vocabulary! {
    /// Which step of a sign-in an event reports. Okta logs the password step and the MFA step
    /// as separate events; Entra logs one record per sign-in attempt (`complete`).
    Stage {
        /// The first factor (password, or IdP/federation assertion).
        Primary = "primary",
        /// A second factor.
        Mfa = "mfa",
        /// The whole sign-in (Entra), or access to an app granted by a session (Okta SSO).
        Complete = "complete",
    }
}

vocabulary! {
    /// The event's kind: an authentication step with an outcome, or an MFA challenge sent.
    EventKind {
        Auth = "auth",
        MfaChallenge = "mfa_challenge",
    }
}

vocabulary! {
    /// Why an authentication step did not succeed, bounded (the `reason` label of
    /// `identity_posture_signin_failures_total`); the provider's own words go in `detail`.
    Reason {
        None = "none",
        InvalidCredentials = "invalid_credentials",
        UnknownUser = "unknown_user",
        MfaFailed = "mfa_failed",
        MfaDenied = "mfa_denied",
        MfaTimeout = "mfa_timeout",
        MfaRequired = "mfa_required",
        Policy = "policy",
        Risk = "risk",
        LockedOut = "locked_out",
        AccountDisabled = "account_disabled",
        PasswordExpired = "password_expired",
        Other = "other",
    }
}

vocabulary! {
    /// The credential an authentication step used (the `factor_kind` label).
    FactorKind {
        Password = "password",
        Push = "push",
        Totp = "totp",
        Webauthn = "webauthn",
        SmartCard = "smart_card",
        HardwareToken = "hardware_token",
        Sms = "sms",
        Voice = "voice",
        Email = "email",
        Question = "question",
        Other = "other",
        Unknown = "unknown",
    }
}

vocabulary! {
    /// What kind of client signed in (the `client_kind` label). `legacy` is a legacy
    /// authentication protocol (IMAP, POP, SMTP, Exchange ActiveSync, WS-Trust basic …),
    /// which cannot do MFA.
    ClientKind {
        Browser = "browser",
        Mobile = "mobile",
        Legacy = "legacy",
        Other = "other",
    }
}

vocabulary! {
    /// The provider's risk level for the sign-in, when it gives one.
    Risk {
        None = "none",
        Low = "low",
        Medium = "medium",
        High = "high",
    }
}

impl FactorKind {
    /// The model's factor type as an event factor.
    pub fn of(t: FactorType) -> FactorKind {
        match t {
            FactorType::Push => FactorKind::Push,
            FactorType::Totp => FactorKind::Totp,
            FactorType::Webauthn => FactorKind::Webauthn,
            FactorType::SmartCard => FactorKind::SmartCard,
            FactorType::HardwareToken => FactorKind::HardwareToken,
            FactorType::Sms => FactorKind::Sms,
            FactorType::Voice => FactorKind::Voice,
            FactorType::Email => FactorKind::Email,
            FactorType::Question => FactorKind::Question,
            FactorType::Other => FactorKind::Other,
        }
    }

    /// A second factor (not the password, not unknown).
    pub fn is_mfa(self) -> bool {
        !matches!(
            self,
            FactorKind::Password | FactorKind::Unknown | FactorKind::Other
        )
    }
}

impl Outcome {
    /// The reason an outcome implies when the provider gives none.
    pub fn default_reason(self) -> Reason {
        match self {
            Outcome::Success => Reason::None,
            Outcome::Failure => Reason::Other,
            Outcome::MfaDenied => Reason::MfaDenied,
            Outcome::MfaTimeout => Reason::MfaTimeout,
            Outcome::Blocked => Reason::Policy,
            Outcome::LockedOut => Reason::LockedOut,
        }
    }
}

fn default_kind() -> EventKind {
    EventKind::Auth
}
fn default_stage() -> Stage {
    Stage::Complete
}
fn default_reason() -> Reason {
    Reason::None
}
fn default_factor() -> FactorKind {
    FactorKind::Unknown
}
fn default_client() -> ClientKind {
    ClientKind::Other
}
fn default_outcome() -> Outcome {
    Outcome::Success
}

/// One sign-in event. Absent fields are unknown (a provider that gives no coordinates has
/// `lat`/`lon` absent); the provider's event id identifies it for de-duplication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInEvent {
    /// The provider's event id (Okta `uuid`, Graph `id`): the same id is counted once.
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: Timestamp,
    #[serde(default = "default_kind")]
    pub kind: EventKind,
    #[serde(default = "default_stage")]
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    #[serde(default = "default_outcome")]
    pub result: Outcome,
    #[serde(default = "default_reason")]
    pub reason: Reason,
    /// The provider's own words for the outcome (Okta `outcome.reason`, Graph
    /// `status.failureReason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default = "default_factor")]
    pub factor: FactorKind,
    #[serde(default = "default_client")]
    pub client: ClientKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Country as the provider names it (Okta: full name; Graph: ISO 3166 code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Risk>,
    /// The event itself says the account is an administrator (SaaS Security's `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    /// Whether a successful sign-in satisfied MFA; absent = the provider does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<bool>,
    /// Events of one sign-in share this (Okta `authenticationContext.externalSessionId`,
    /// Graph `correlationId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl SignInEvent {
    /// An authentication event with everything else unknown (mapping and tests start here).
    pub fn new(id: impl Into<String>, time: Timestamp, result: Outcome) -> SignInEvent {
        SignInEvent {
            id: id.into(),
            time,
            kind: EventKind::Auth,
            stage: Stage::Complete,
            account_id: None,
            login: None,
            result,
            reason: result.default_reason(),
            detail: None,
            factor: FactorKind::Unknown,
            client: ClientKind::Other,
            ip: None,
            country: None,
            lat: None,
            lon: None,
            risk: None,
            admin: None,
            mfa: None,
            session: None,
        }
    }

    /// Coordinates when both are present, finite and on the globe.
    pub fn coords(&self) -> Option<(f64, f64)> {
        match (self.lat, self.lon) {
            (Some(la), Some(lo))
                if la.is_finite() && lo.is_finite() && la.abs() <= 90.0 && lo.abs() <= 180.0 =>
            {
                Some((la, lo))
            }
            _ => None,
        }
    }

    /// Caps every text field (see [`MAX_TEXT`]) and drops impossible coordinates: what a
    /// mapping calls last.
    pub fn sanitize(mut self) -> SignInEvent {
        let cap = |s: &mut Option<String>| *s = clip(s.as_deref());
        cap(&mut self.account_id);
        cap(&mut self.login);
        cap(&mut self.detail);
        cap(&mut self.ip);
        cap(&mut self.country);
        cap(&mut self.session);
        if self.id.len() > MAX_TEXT {
            self.id = clip(Some(&self.id)).unwrap_or_default();
        }
        if self.coords().is_none() {
            self.lat = None;
            self.lon = None;
        }
        self
    }
}

/// Receives events as a stream produces them.
pub trait EventSink: Send {
    fn push(&mut self, event: SignInEvent);
    /// An event the provider sent that could not be read (counted, never a failed poll).
    fn unparsable(&mut self, why: &str);
}

/// Collects events (tests, the engine's per-poll batch).
#[derive(Debug, Default)]
pub struct EventBatch {
    pub events: Vec<SignInEvent>,
    pub unparsable: u64,
    /// A few of the reasons, for the log.
    pub unparsable_samples: Vec<String>,
    /// The read stopped in the middle of a pass whose remaining events, still to come in the
    /// next polls, are no older than this (providers that list newest first): the engine
    /// keeps remembering event ids from here on, so they are counted, not dropped as too old.
    pub pending_from: Option<Timestamp>,
}

impl EventSink for EventBatch {
    fn push(&mut self, event: SignInEvent) {
        self.events.push(event.sanitize());
    }
    fn unparsable(&mut self, why: &str) {
        self.unparsable += 1;
        if self.unparsable_samples.len() < 5 {
            self.unparsable_samples
                .push(clip(Some(why)).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn vocabularies_round_trip_and_stay_bounded() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        assert_eq!(Outcome::ALL.len(), 6);
        assert_eq!(FactorKind::ALL.len(), 12);
        assert_eq!(ClientKind::ALL.len(), 4);
        assert_eq!(Outcome::parse("maybe"), None);
        for t in FactorType::ALL {
            assert_eq!(FactorKind::of(t).as_str(), t.as_str());
        }
    }

    #[test]
    fn file_format_defaults_and_round_trip() {
        let e: SignInEvent = serde_json::from_str(
            r#"{"id":"e1","time":"2026-11-28T10:00:00Z","login":"a@x","result":"failure",
                "reason":"invalid_credentials","factor":"password","ip":"203.0.113.7","lat":52.3,"lon":4.9}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::Auth);
        assert_eq!(e.stage, Stage::Complete);
        assert_eq!(e.client, ClientKind::Other);
        assert_eq!(e.coords(), Some((52.3, 4.9)));
        let back: SignInEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert!(serde_json::from_str::<SignInEvent>(
            r#"{"id":"x","time":"2026-11-28T10:00:00Z","bogus":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<SignInEvent>(r#"{"id":"x","time":"yesterday"}"#).is_err());
    }

    #[test]
    fn hostile_text_is_capped_and_bad_coordinates_dropped() {
        let mut e = SignInEvent::new("x", datetime!(2026-11-28 0:00 UTC), Outcome::Success);
        e.login = Some(format!("  {}é  ", "a".repeat(400)));
        e.lat = Some(95.0);
        e.lon = Some(10.0);
        let e = e.sanitize();
        assert!(e.login.as_ref().unwrap().len() <= MAX_TEXT);
        assert_eq!(e.coords(), None);
        assert!(e.lat.is_none());
        assert_eq!(clip(Some("   ")), None);
    }
}
