//! The activity thresholds (`[activity]`, overridable per source with `activity_policy = {…}`)
//! and the per-source stream keys (`activity`, `activity_lookback`): their raw form, defaults
//! and validation. The detectors read [`ActivityPolicy`]; nothing here does I/O.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::detect::Kind;

/// `[activity]` (and a source's `activity_policy`), as written.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawActivityPolicy {
    pub password_spray_accounts: Option<u32>,
    pub password_spray_window: Option<String>,
    pub brute_force_failures: Option<u32>,
    pub brute_force_window: Option<String>,
    pub mfa_fatigue_denials: Option<u32>,
    pub mfa_fatigue_window: Option<String>,
    pub new_country_days: Option<u32>,
    pub impossible_travel_kmh: Option<f64>,
    pub impossible_travel_min_km: Option<f64>,
    pub detection_window: Option<String>,
    pub max_clock_skew: Option<String>,
    pub disabled_detectors: Option<Vec<String>>,
}

/// The thresholds the detectors apply (issue 13's numbers are the defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityPolicy {
    /// One IP failing against at least this many distinct accounts …
    pub password_spray_accounts: u32,
    /// … within any span this long: `password_spray`.
    pub password_spray_window: Duration,
    /// At least this many failures on one account …
    pub brute_force_failures: u32,
    /// … within any span this long: `brute_force`.
    pub brute_force_window: Duration,
    /// At least this many MFA challenges denied or unanswered for one account …
    pub mfa_fatigue_denials: u32,
    /// … within any span this long: `mfa_fatigue`.
    pub mfa_fatigue_window: Duration,
    /// A country counts as seen for an account for this many days.
    pub new_country_days: u32,
    /// Two successes faster apart than this (great-circle km per hour) …
    pub impossible_travel_kmh: f64,
    /// … and at least this far apart: `impossible_travel` (IP geolocation is city-level and
    /// mobile carriers route through distant gateways; nearby jumps are noise).
    pub impossible_travel_min_km: f64,
    /// How long a single-event detection (new country, travel, inactive account, privileged
    /// without MFA) stays active, and the span in which the same kind and account count as one.
    pub detection_window: Duration,
    /// Events dated further than this into the future are dropped (`reason="clock_skew"`).
    pub max_clock_skew: Duration,
    /// Detectors turned off.
    pub disabled: Vec<Kind>,
}

pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

impl Default for ActivityPolicy {
    fn default() -> Self {
        ActivityPolicy {
            password_spray_accounts: 10,
            password_spray_window: Duration::from_secs(3600),
            brute_force_failures: 10,
            brute_force_window: Duration::from_secs(15 * 60),
            mfa_fatigue_denials: 3,
            mfa_fatigue_window: Duration::from_secs(10 * 60),
            new_country_days: 30,
            impossible_travel_kmh: 1000.0,
            impossible_travel_min_km: 500.0,
            detection_window: Duration::from_secs(3600),
            max_clock_skew: Duration::from_secs(300),
            disabled: Vec::new(),
        }
    }
}

impl ActivityPolicy {
    pub fn enabled(&self, k: Kind) -> bool {
        !self.disabled.contains(&k)
    }

    /// The span a detection of `k` covers: its sliding window, or `detection_window`.
    pub fn window(&self, k: Kind) -> Duration {
        match k {
            Kind::PasswordSpray => self.password_spray_window,
            Kind::BruteForce => self.brute_force_window,
            Kind::MfaFatigue => self.mfa_fatigue_window,
            _ => self.detection_window,
        }
    }

    /// The longest window any detector keeps events for.
    pub fn longest_window(&self) -> Duration {
        Kind::ALL
            .iter()
            .map(|k| self.window(*k))
            .max()
            .unwrap_or(self.detection_window)
    }

    /// `raw` on top of `base` (or the defaults); problems are pushed with `path` as prefix.
    pub fn from_raw(
        raw: &RawActivityPolicy,
        base: Option<&ActivityPolicy>,
        path: &str,
        errors: &mut Vec<String>,
    ) -> ActivityPolicy {
        let d = base.cloned().unwrap_or_default();
        let mut dur = |key: &str, v: &Option<String>, dflt: Duration| -> Duration {
            match v {
                None => dflt,
                Some(s) => match humantime::parse_duration(s) {
                    Ok(x) if !x.is_zero() && x <= Duration::from_secs(7 * 24 * 3600) => x,
                    Ok(_) => {
                        errors.push(format!(
                            "{path}.{key}: must be longer than zero and at most 7d"
                        ));
                        dflt
                    }
                    Err(e) => {
                        errors.push(format!(
                            "{path}.{key}: invalid duration {s:?} ({e}); use e.g. \"10m\", \"1h\""
                        ));
                        dflt
                    }
                },
            }
        };
        let p = ActivityPolicy {
            password_spray_accounts: raw
                .password_spray_accounts
                .unwrap_or(d.password_spray_accounts),
            password_spray_window: dur(
                "password_spray_window",
                &raw.password_spray_window,
                d.password_spray_window,
            ),
            brute_force_failures: raw.brute_force_failures.unwrap_or(d.brute_force_failures),
            brute_force_window: dur(
                "brute_force_window",
                &raw.brute_force_window,
                d.brute_force_window,
            ),
            mfa_fatigue_denials: raw.mfa_fatigue_denials.unwrap_or(d.mfa_fatigue_denials),
            mfa_fatigue_window: dur(
                "mfa_fatigue_window",
                &raw.mfa_fatigue_window,
                d.mfa_fatigue_window,
            ),
            new_country_days: raw.new_country_days.unwrap_or(d.new_country_days),
            impossible_travel_kmh: raw.impossible_travel_kmh.unwrap_or(d.impossible_travel_kmh),
            impossible_travel_min_km: raw
                .impossible_travel_min_km
                .unwrap_or(d.impossible_travel_min_km),
            detection_window: dur(
                "detection_window",
                &raw.detection_window,
                d.detection_window,
            ),
            max_clock_skew: dur("max_clock_skew", &raw.max_clock_skew, d.max_clock_skew),
            disabled: match &raw.disabled_detectors {
                None => d.disabled.clone(),
                Some(list) => list
                    .iter()
                    .filter_map(|n| match Kind::parse(n) {
                        Some(k) => Some(k),
                        None => {
                            errors.push(format!(
                                "{path}.disabled_detectors: unknown detector {n:?} (one of {})",
                                Kind::ALL
                                    .iter()
                                    .map(|k| k.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ));
                            None
                        }
                    })
                    .collect(),
            },
        };
        for (key, v) in [
            ("password_spray_accounts", p.password_spray_accounts),
            ("brute_force_failures", p.brute_force_failures),
            ("mfa_fatigue_denials", p.mfa_fatigue_denials),
            ("new_country_days", p.new_country_days),
        ] {
            if v < 1 {
                errors.push(format!("{path}.{key}: must be at least 1"));
            }
        }
        for (key, v) in [
            ("impossible_travel_kmh", p.impossible_travel_kmh),
            ("impossible_travel_min_km", p.impossible_travel_min_km),
        ] {
            if !(v.is_finite() && v > 0.0) {
                errors.push(format!("{path}.{key}: must be a positive number"));
            }
        }
        if p.new_country_days > 3650 {
            errors.push(format!("{path}.new_country_days: at most 3650"));
        }
        p
    }
}

/// A source's activity stream settings (common `[[sources]]` keys).
#[derive(Debug, Clone, PartialEq)]
pub struct ActivitySettings {
    /// `activity = true`: read the sign-in event stream (off by default: it costs requests).
    pub enabled: bool,
    /// `activity_lookback`: how far back the first read (and catching up after downtime) goes.
    pub lookback: Duration,
    pub policy: ActivityPolicy,
}

impl Default for ActivitySettings {
    fn default() -> Self {
        ActivitySettings {
            enabled: false,
            lookback: DEFAULT_LOOKBACK,
            policy: ActivityPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_thresholds() {
        let p = ActivityPolicy::default();
        assert_eq!(p.password_spray_accounts, 10);
        assert_eq!(p.password_spray_window, Duration::from_secs(3600));
        assert_eq!(p.brute_force_failures, 10);
        assert_eq!(p.brute_force_window, Duration::from_secs(900));
        assert_eq!(p.mfa_fatigue_denials, 3);
        assert_eq!(p.mfa_fatigue_window, Duration::from_secs(600));
        assert_eq!(p.new_country_days, 30);
        assert_eq!(p.impossible_travel_kmh, 1000.0);
        assert_eq!(p.longest_window(), Duration::from_secs(3600));
    }

    #[test]
    fn overrides_merge_on_the_base_and_problems_are_named() {
        let mut errors = Vec::new();
        let base = ActivityPolicy::from_raw(
            &RawActivityPolicy {
                brute_force_failures: Some(5),
                ..Default::default()
            },
            None,
            "activity",
            &mut errors,
        );
        let per_source = ActivityPolicy::from_raw(
            &RawActivityPolicy {
                mfa_fatigue_window: Some("20m".into()),
                disabled_detectors: Some(vec!["new_country".into()]),
                ..Default::default()
            },
            Some(&base),
            "sources[0].activity_policy",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(per_source.brute_force_failures, 5, "inherited");
        assert_eq!(per_source.mfa_fatigue_window, Duration::from_secs(1200));
        assert!(!per_source.enabled(Kind::NewCountry));
        ActivityPolicy::from_raw(
            &RawActivityPolicy {
                brute_force_failures: Some(0),
                brute_force_window: Some("soon".into()),
                impossible_travel_kmh: Some(-1.0),
                disabled_detectors: Some(vec!["telepathy".into()]),
                ..Default::default()
            },
            None,
            "activity",
            &mut errors,
        );
        let all = errors.join("\n");
        for k in [
            "activity.brute_force_failures",
            "activity.brute_force_window",
            "activity.impossible_travel_kmh",
            "activity.disabled_detectors",
        ] {
            assert!(all.contains(k), "{all}");
        }
    }
}
