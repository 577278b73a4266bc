//! Authentication-health counters of one source: sign-ins by result, factor and client kind,
//! failures by reason, MFA challenges, privileged sign-ins without MFA, legacy-protocol and
//! inactive-account sign-ins, events read and dropped, detections fired. Every label is a
//! bounded vocabulary; the counters are persisted with the stream's cursor, so a restart
//! neither loses nor repeats a count.

use serde::{Deserialize, Serialize};

use super::detect::{Change, Inactive, Kind, Verdict};
use super::event::{ClientKind, EventKind, FactorKind, Outcome, Reason, SignInEvent, Stage};
use crate::model::Severity;

/// Why an event was not counted (`identity_posture_activity_events_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The provider sent something that is not an event (bad JSON, no id, no time).
    Unparsable,
    /// The same event id was already counted (pages overlapping, a re-read after a cursor
    /// expired or a restart).
    Duplicate,
    /// Dated further into the future than `max_clock_skew` allows.
    ClockSkew,
    /// Older than the look-back, or than what de-duplication still remembers.
    TooOld,
}

impl Dropped {
    pub const ALL: [Dropped; 4] = [
        Dropped::Unparsable,
        Dropped::Duplicate,
        Dropped::ClockSkew,
        Dropped::TooOld,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::Unparsable => "unparsable",
            Dropped::Duplicate => "duplicate",
            Dropped::ClockSkew => "clock_skew",
            Dropped::TooOld => "too_old",
        }
    }
}

/// `outcome` of `identity_posture_mfa_challenges_total`.
pub const CHALLENGE_OUTCOMES: [&str; 4] = ["sent", "approved", "denied", "timeout"];
/// `reason` of `identity_posture_inactive_account_signins_total`.
pub const INACTIVE_REASONS: [&str; 2] = ["dormant", "terminated"];

const N_RESULT: usize = 6;
const N_FACTOR: usize = 12;
const N_CLIENT: usize = 4;

/// The counters (cumulative since the stream was first read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `[result][factor][client]`, flattened.
    pub signins: Vec<u64>,
    /// Non-successful outcomes by reason (`Reason::ALL` order).
    pub failures: Vec<u64>,
    /// `CHALLENGE_OUTCOMES` order.
    pub mfa_challenges: [u64; 4],
    pub privileged_without_mfa: u64,
    /// Legacy-protocol sign-ins by result.
    pub legacy: [u64; N_RESULT],
    /// `INACTIVE_REASONS` order.
    pub inactive: [u64; 2],
    /// Events counted.
    pub events: u64,
    /// `Dropped::ALL` order.
    pub dropped: [u64; 4],
    /// Detections fired (and escalations), `[kind][severity]` with `Severity::ALL` order.
    pub detections: Vec<u64>,
    /// Newest event time counted (unix ms).
    pub newest_event: Option<i64>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            signins: vec![0; N_RESULT * N_FACTOR * N_CLIENT],
            failures: vec![0; Reason::ALL.len()],
            mfa_challenges: [0; 4],
            privileged_without_mfa: 0,
            legacy: [0; N_RESULT],
            inactive: [0; 2],
            events: 0,
            dropped: [0; 4],
            detections: vec![0; Kind::ALL.len() * Severity::ALL.len()],
            newest_event: None,
        }
    }
}

fn sev_index(s: Severity) -> usize {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Health {
    /// Repairs vectors of a persisted value written by another version (lengths differ).
    pub fn normalise(mut self) -> Health {
        let d = Health::default();
        if self.signins.len() != d.signins.len() {
            self.signins = d.signins;
        }
        if self.failures.len() != d.failures.len() {
            self.failures = d.failures;
        }
        if self.detections.len() != d.detections.len() {
            self.detections = d.detections;
        }
        self
    }

    pub fn signins_at(&self, r: Outcome, f: FactorKind, c: ClientKind) -> u64 {
        self.signins[(r.index() * N_FACTOR + f.index()) * N_CLIENT + c.index()]
    }

    pub fn detections_at(&self, k: Kind, s: Severity) -> u64 {
        self.detections[k as usize * Severity::ALL.len() + sev_index(s)]
    }

    pub fn drop(&mut self, why: Dropped, n: u64) {
        self.dropped[why as usize] += n;
    }

    /// Counts one event that the detectors judged (`v`).
    pub fn count(&mut self, e: &SignInEvent, v: Verdict) {
        self.events += 1;
        let t = super::detect::ms(e.time);
        self.newest_event = Some(self.newest_event.map_or(t, |n| n.max(t)));
        if e.kind == EventKind::MfaChallenge {
            self.mfa_challenges[0] += 1;
            return;
        }
        let i = (e.result.index() * N_FACTOR + e.factor.index()) * N_CLIENT + e.client.index();
        self.signins[i] += 1;
        if e.result != Outcome::Success {
            let reason = if e.reason == Reason::None {
                e.result.default_reason()
            } else {
                e.reason
            };
            self.failures[reason.index()] += 1;
        }
        match e.result {
            Outcome::Success
                if e.stage == Stage::Mfa || (e.stage == Stage::Complete && e.mfa == Some(true)) =>
            {
                self.mfa_challenges[1] += 1
            }
            Outcome::MfaDenied => self.mfa_challenges[2] += 1,
            Outcome::MfaTimeout => self.mfa_challenges[3] += 1,
            _ => {}
        }
        if e.client == ClientKind::Legacy {
            self.legacy[e.result.index()] += 1;
        }
        if v.privileged_without_mfa {
            self.privileged_without_mfa += 1;
        }
        match v.inactive {
            Some(Inactive::Dormant) => self.inactive[0] += 1,
            Some(Inactive::Terminated) => self.inactive[1] += 1,
            None => {}
        }
    }

    /// Counts what the detectors fired or escalated.
    pub fn detected(&mut self, changes: &[Change]) {
        for c in changes {
            let (k, s) = match c {
                Change::Fired { kind, severity, .. } | Change::Escalated { kind, severity, .. } => {
                    (*kind, *severity)
                }
            };
            self.detections[k as usize * Severity::ALL.len() + sev_index(s)] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn counts_land_in_their_bounded_cells() {
        let mut h = Health::default();
        let t = datetime!(2026-11-28 10:00 UTC);
        let mut e = SignInEvent::new("1", t, Outcome::Failure);
        e.factor = FactorKind::Password;
        e.client = ClientKind::Legacy;
        e.reason = Reason::InvalidCredentials;
        h.count(&e, Verdict::default());
        let mut d = SignInEvent::new("2", t, Outcome::MfaDenied);
        d.stage = Stage::Mfa;
        d.factor = FactorKind::Push;
        h.count(&d, Verdict::default());
        let mut c = SignInEvent::new("3", t, Outcome::Success);
        c.kind = EventKind::MfaChallenge;
        h.count(&c, Verdict::default());
        let mut s = SignInEvent::new("4", t, Outcome::Success);
        s.stage = Stage::Mfa;
        h.count(
            &s,
            Verdict {
                inactive: Some(Inactive::Terminated),
                privileged_without_mfa: true,
            },
        );
        assert_eq!(
            h.signins_at(Outcome::Failure, FactorKind::Password, ClientKind::Legacy),
            1
        );
        assert_eq!(
            h.signins.iter().sum::<u64>(),
            3,
            "the challenge is not a sign-in"
        );
        assert_eq!(h.failures[Reason::InvalidCredentials.index()], 1);
        assert_eq!(h.failures[Reason::MfaDenied.index()], 1, "default reason");
        assert_eq!(h.mfa_challenges, [1, 1, 1, 0]);
        assert_eq!(h.legacy[Outcome::Failure.index()], 1);
        assert_eq!(h.inactive, [0, 1]);
        assert_eq!(h.privileged_without_mfa, 1);
        assert_eq!(h.events, 4);
        h.detected(&[Change::Escalated {
            id: 1,
            kind: Kind::BruteForce,
            severity: Severity::Critical,
        }]);
        assert_eq!(h.detections_at(Kind::BruteForce, Severity::Critical), 1);
        let round: Health = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(round.normalise(), h);
    }
}
