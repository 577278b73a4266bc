//! The activity families of `/metrics`, from each source's last [`Snapshot`]: sign-ins by
//! result, factor and client kind; failures by reason; MFA challenges; privileged sign-ins
//! without MFA; legacy-protocol and inactive-account sign-ins; events read, dropped and the
//! lag; detections fired (counter) and inside their window (gauge). Every label combination
//! is zero-filled once the source's stream has been read. `crate::metrics` encodes them.

use super::detect::Kind;
use super::event::{ClientKind, FactorKind, Outcome, Reason};
use super::health::{Dropped, CHALLENGE_OUTCOMES, INACTIVE_REASONS};
use super::Snapshot;

/// One family: name, help, labels beyond `source` and `provider`, counter or gauge, samples
/// (label values beyond `source`/`provider` are prefixed by the caller).
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    pub counter: bool,
    /// (source, provider, other label values, value).
    pub samples: Vec<(Vec<String>, f64)>,
}

pub const SIGNINS: &str = "identity_posture_signins_total";
pub const DETECTIONS_TOTAL: &str = "identity_posture_activity_detections_total";
pub const DETECTIONS: &str = "identity_posture_activity_detections";

fn fam(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    counter: bool,
) -> Family {
    Family {
        name,
        help,
        labels,
        counter,
        samples: Vec::new(),
    }
}

/// The families for `sources` (name, provider, snapshot); empty families are left to the
/// caller to skip. `identity_posture_source_data_available{data="activity"}` comes back as a
/// family of that name for the caller to merge into the existing one.
pub fn families(sources: &[(&str, &str, &Snapshot)]) -> Vec<Family> {
    let mut signins = fam(
        SIGNINS,
        "Authentication steps read from the source's sign-in event stream, by result, factor kind (the credential of the step: password, push, totp …) and client kind (browser, mobile, legacy, other). Okta logs the password and the MFA step separately; Entra logs one record per sign-in",
        &["result", "factor_kind", "client_kind"],
        true,
    );
    let mut failures = fam(
        "identity_posture_signin_failures_total",
        "Authentication steps that did not succeed, by bounded reason",
        &["reason"],
        true,
    );
    let mut challenges = fam(
        "identity_posture_mfa_challenges_total",
        "MFA challenges by outcome: sent (where the provider logs it, e.g. Okta Verify pushes), approved, denied, timeout",
        &["outcome"],
        true,
    );
    let mut priv_no_mfa = fam(
        "identity_posture_privileged_signins_without_mfa_total",
        "Successful sign-ins by accounts holding an administrative role that did not satisfy MFA",
        &[],
        true,
    );
    let mut legacy = fam(
        "identity_posture_legacy_auth_signins_total",
        "Sign-ins over legacy authentication protocols (IMAP, POP, SMTP, Exchange ActiveSync …), which cannot do MFA, by result",
        &["result"],
        true,
    );
    let mut inactive = fam(
        "identity_posture_inactive_account_signins_total",
        "Successful sign-ins by accounts the posture checks call dormant (previous sign-in older than dormant_after_days) or terminated (a leaver)",
        &["reason"],
        true,
    );
    let mut events = fam(
        "identity_posture_activity_events_total",
        "Sign-in events read and counted (each event id once)",
        &[],
        true,
    );
    let mut dropped = fam(
        "identity_posture_activity_events_dropped_total",
        "Sign-in events not counted: unparsable, duplicate (same id again), clock_skew (dated too far ahead), too_old (beyond the look-back)",
        &["reason"],
        true,
    );
    let mut lag = fam(
        "identity_posture_activity_event_lag_seconds",
        "Time between the last poll and the newest sign-in event counted",
        &[],
        false,
    );
    let mut det_total = fam(
        DETECTIONS_TOTAL,
        "Detections fired, by detector kind and severity (an escalation to critical counts once more, as critical)",
        &["kind", "severity"],
        true,
    );
    let mut det_active = fam(
        DETECTIONS,
        "Detections still inside their window (the detector's sliding window, or activity_policy.detection_window), by kind and severity; list them at /api/v1/activity",
        &["kind", "severity"],
        false,
    );
    let mut up = fam(
        "identity_posture_activity_up",
        "1 if the last read of the sign-in event stream succeeded, 0 if it failed",
        &[],
        false,
    );
    let mut tracked = fam(
        "identity_posture_activity_tracked",
        "What the detectors hold in memory: accounts, IPs, sessions and events in windows",
        &["what"],
        false,
    );
    let mut requests = fam(
        "identity_posture_activity_poll_requests",
        "Upstream requests the last read of the sign-in event stream made (part of the poll's request budget)",
        &[],
        false,
    );
    let mut available = fam(
        "identity_posture_source_data_available",
        "1 if the source could read this class of data, 0 if not (see /api/v1/sources for why)",
        &["data"],
        false,
    );
    for (name, provider, s) in sources {
        let l = |extra: &[&str]| -> Vec<String> {
            let mut v = vec![name.to_string(), provider.to_string()];
            v.extend(extra.iter().map(|x| x.to_string()));
            v
        };
        let h = &s.health;
        for r in Outcome::ALL {
            for f in FactorKind::ALL {
                for c in ClientKind::ALL {
                    signins.samples.push((
                        l(&[r.as_str(), f.as_str(), c.as_str()]),
                        h.signins_at(*r, *f, *c) as f64,
                    ));
                }
            }
            legacy
                .samples
                .push((l(&[r.as_str()]), h.legacy[r.index()] as f64));
        }
        for r in Reason::ALL.iter().filter(|r| **r != Reason::None) {
            failures
                .samples
                .push((l(&[r.as_str()]), h.failures[r.index()] as f64));
        }
        for (i, o) in CHALLENGE_OUTCOMES.iter().enumerate() {
            challenges
                .samples
                .push((l(&[o]), h.mfa_challenges[i] as f64));
        }
        priv_no_mfa
            .samples
            .push((l(&[]), h.privileged_without_mfa as f64));
        for (i, r) in INACTIVE_REASONS.iter().enumerate() {
            inactive.samples.push((l(&[r]), h.inactive[i] as f64));
        }
        events.samples.push((l(&[]), h.events as f64));
        for d in Dropped::ALL {
            dropped
                .samples
                .push((l(&[d.as_str()]), h.dropped[d as usize] as f64));
        }
        if let Some(x) = s.lag_seconds {
            lag.samples.push((l(&[]), x));
        }
        for k in Kind::ALL {
            for sv in k.severities() {
                det_total.samples.push((
                    l(&[k.as_str(), sv.as_str()]),
                    h.detections_at(*k, *sv) as f64,
                ));
                det_active
                    .samples
                    .push((l(&[k.as_str(), sv.as_str()]), s.active_at(*k, *sv) as f64));
            }
        }
        // A detection can only be raised to critical; anything else is a bug, not a label.
        debug_assert!(Kind::ALL
            .iter()
            .all(|k| k.severities().contains(&k.severity())));
        up.samples.push((l(&[]), f64::from(u8::from(s.up))));
        let (a, i, se, w) = s.tracked;
        for (what, n) in [
            ("accounts", a),
            ("ips", i),
            ("sessions", se),
            ("window_events", w),
        ] {
            tracked.samples.push((l(&[what]), n as f64));
        }
        requests.samples.push((l(&[]), f64::from(s.requests)));
        available.samples.push((
            l(&["activity"]),
            f64::from(u8::from(s.unavailable.is_none())),
        ));
    }
    vec![
        signins,
        failures,
        challenges,
        priv_no_mfa,
        legacy,
        inactive,
        events,
        dropped,
        lag,
        det_total,
        det_active,
        up,
        tracked,
        requests,
        available,
    ]
}
