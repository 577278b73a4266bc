//! The login audit ledger: which second-factor kinds each user passed in the last 30 days,
//! from the Reports API's `login_success` events, kept between polls so each poll reads only
//! what is new. Time is split into UTC days: recent days are read incrementally (with a short
//! overlap), and every day is read once more in full when it is two days old (late events), so
//! the first poll on a large account can spread the 30-day backfill over several polls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::map::{challenge, Challenge, SeenFactors};
use super::wire::Activity;
use crate::model::{parse_ts, FactorType};

/// How far back factor kinds count.
pub const WINDOW_SECS: i64 = 30 * DAY;
/// A day is read once more in full this long after it ends, to pick up events that reached
/// the audit late (Google documents lag times per log; older revisions of its table gave
/// login events 1–2 days).
pub const SETTLE_AFTER_SECS: i64 = 2 * DAY;
/// Incremental reads of a recent day start this long before where the last read ended.
pub const OVERLAP_SECS: i64 = 15 * 60;
const DAY: i64 = 86_400;

/// Most distinct unrecognised values remembered (they are logged, not labelled).
const MAX_UNRECOGNISED: usize = 64;

/// Per user: when each kind was last seen (unix seconds, 0 = not seen), in
/// `FactorType::ALL` order, then unrecognised values.
type Slots = [u32; 11];
const UNRECOGNISED: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Day {
    /// Events of the day up to this time were read.
    read_to: i64,
    /// Read in full at least `SETTLE_AFTER_SECS` after the day ended.
    settled: bool,
}

#[derive(Debug, Default)]
struct State {
    /// By UTC day number (unix seconds / 86,400).
    days: BTreeMap<i64, Day>,
    /// By `actor.profileId`, or `email:` + the lower-cased `actor.email` when there is none.
    seen: HashMap<Box<str>, Slots>,
    /// Distinct unrecognised `login_challenge_method` values → last seen.
    unrecognised: BTreeMap<String, u32>,
}

/// One listing of `login_success` events: `[from, to)`, `to` `None` = up to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub day: i64,
    pub from: i64,
    pub to: Option<i64>,
    /// The day is read up to here once the listing completes.
    read_to: i64,
    settles: bool,
}

impl Range {
    /// Whether this is a day's full re-read (or backfill), not a recent day's new events.
    pub fn settles(&self) -> bool {
        self.settles
    }
}

/// The ledger. Long-lived (one per source); observations survive failed polls.
#[derive(Debug, Default)]
pub struct LoginLedger {
    state: Mutex<State>,
}

fn day_start(d: i64) -> i64 {
    d * DAY
}

fn window_days(now: i64) -> std::ops::RangeInclusive<i64> {
    (now - WINDOW_SECS).div_euclid(DAY)..=now.div_euclid(DAY)
}

impl LoginLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What to read at `now`, most urgent first: the recent days' new events (newest day
    /// first), then the days due for their full re-read (newest first).
    pub fn plan(&self, now: i64) -> Vec<Range> {
        let st = self.lock();
        let mut recent = Vec::new();
        let mut settle = Vec::new();
        for d in window_days(now).rev() {
            let (start, end) = (day_start(d), day_start(d + 1));
            let day = st.days.get(&d).copied();
            if day.is_some_and(|x| x.settled) {
                continue;
            }
            if end + SETTLE_AFTER_SECS <= now {
                settle.push(Range {
                    day: d,
                    from: start,
                    to: Some(end),
                    read_to: end,
                    settles: true,
                });
                continue;
            }
            let target = end.min(now);
            let from = match day {
                Some(x) if x.read_to >= target => continue,
                Some(x) => (x.read_to - OVERLAP_SECS).max(start),
                None => start,
            };
            recent.push(Range {
                day: d,
                from,
                to: (end <= now).then_some(end),
                read_to: target,
                settles: false,
            });
        }
        recent.extend(settle);
        recent
    }

    /// Records the events of one page (read at `now`).
    pub fn observe(&self, activities: &[Activity], now: i64) {
        let oldest = now - WINDOW_SECS;
        let mut st = self.lock();
        for a in activities {
            let Some(key) = key(a) else { continue };
            let t = a
                .id
                .as_ref()
                .and_then(|i| i.time.as_deref())
                .and_then(|s| parse_ts(s).ok())
                .map(|t| t.unix_timestamp())
                .unwrap_or(now)
                .min(now);
            if t < oldest || t <= 0 {
                continue;
            }
            let t = u32::try_from(t).unwrap_or(u32::MAX);
            let mut update: Slots = [0; 11];
            for e in &a.events {
                if e.name.as_deref().is_some_and(|n| n != "login_success") {
                    continue;
                }
                for v in e.values("login_challenge_method") {
                    let slot = match challenge(v) {
                        Challenge::FirstFactor => continue,
                        Challenge::Second(f) => f as usize,
                        Challenge::Unrecognised => {
                            let shown = sanitise(v);
                            if st.unrecognised.len() < MAX_UNRECOGNISED
                                || st.unrecognised.contains_key(&shown)
                            {
                                let last = st.unrecognised.entry(shown).or_default();
                                *last = (*last).max(t);
                            }
                            UNRECOGNISED
                        }
                    };
                    update[slot] = t;
                }
            }
            if update.iter().any(|t| *t != 0) {
                let slots = st.seen.entry(key.into_boxed_str()).or_default();
                for (s, u) in slots.iter_mut().zip(update) {
                    *s = (*s).max(u);
                }
            }
        }
    }

    /// A listing of `r` completed.
    pub fn complete(&self, r: &Range) {
        let mut st = self.lock();
        let day = st.days.entry(r.day).or_default();
        day.read_to = day.read_to.max(r.read_to);
        day.settled |= r.settles;
    }

    /// Drops what fell out of the window.
    pub fn prune(&self, now: i64) {
        let oldest = u32::try_from((now - WINDOW_SECS).max(0)).unwrap_or(u32::MAX);
        let first_day = *window_days(now).start();
        let mut st = self.lock();
        st.days.retain(|d, _| *d >= first_day);
        st.seen.retain(|_, slots| {
            for s in slots.iter_mut() {
                if *s < oldest {
                    *s = 0;
                }
            }
            slots.iter().any(|s| *s != 0)
        });
        st.unrecognised.retain(|_, t| *t >= oldest);
    }

    /// Forgets everything (the audit was refused: start afresh once it is granted).
    pub fn reset(&self) {
        *self.lock() = State::default();
    }

    /// The share of the window's days read (recent days up to `now`, older days settled).
    pub fn coverage(&self, now: i64) -> f64 {
        let st = self.lock();
        let days = window_days(now);
        let total = days.clone().count();
        let covered = days
            .filter(|d| {
                st.days.get(d).is_some_and(|x| {
                    x.settled
                        || (day_start(d + 1) + SETTLE_AFTER_SECS > now
                            && x.read_to >= day_start(d + 1).min(now))
                })
            })
            .count();
        covered as f64 / total as f64
    }

    /// Distinct unrecognised values in the window (sanitised), for the log.
    pub fn unrecognised_values(&self) -> Vec<String> {
        self.lock().unrecognised.keys().cloned().collect()
    }

    /// A read-only view for mapping one page of users.
    pub fn view(&self, now: i64, complete: bool) -> LedgerView<'_> {
        LedgerView {
            st: self.lock(),
            oldest: u32::try_from((now - WINDOW_SECS).max(0)).unwrap_or(u32::MAX),
            complete,
        }
    }
}

/// The ledger locked for lookups (held while one page of users is mapped; never across an
/// `await`).
pub struct LedgerView<'a> {
    st: std::sync::MutexGuard<'a, State>,
    oldest: u32,
    complete: bool,
}

impl LedgerView<'_> {
    /// The kinds seen for the user with this id and primary email; whether one of them was
    /// an unrecognised value.
    pub fn seen(&self, id: &str, email: Option<&str>) -> (SeenFactors, bool) {
        let mut slots: Slots = [0; 11];
        let by_email = email.map(|e| format!("email:{}", e.to_ascii_lowercase()));
        for k in [Some(id), by_email.as_deref()].into_iter().flatten() {
            if let Some(s) = self.st.seen.get(k) {
                for (i, t) in s.iter().enumerate() {
                    slots[i] = slots[i].max(*t);
                }
            }
        }
        let live = |i: usize| slots[i] != 0 && slots[i] >= self.oldest;
        let mut kinds: Vec<FactorType> = FactorType::ALL
            .into_iter()
            .filter(|f| live(*f as usize))
            .collect();
        let unrecognised = live(UNRECOGNISED);
        if unrecognised && !kinds.contains(&FactorType::Other) {
            kinds.push(FactorType::Other);
        }
        (
            SeenFactors {
                kinds,
                complete: self.complete,
            },
            unrecognised,
        )
    }
}

fn key(a: &Activity) -> Option<String> {
    let actor = a.actor.as_ref()?;
    if let Some(p) = actor.profile_id.as_deref().filter(|p| !p.is_empty()) {
        return Some(p.to_string());
    }
    actor
        .email
        .as_deref()
        .filter(|e| !e.is_empty())
        .map(|e| format!("email:{}", e.to_ascii_lowercase()))
}

/// A value from the audit, safe to log: `[a-z0-9_.-]`, at most 40 characters.
fn sanitise(v: &str) -> String {
    let s: String = v
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase();
    if s.is_empty() {
        "(empty)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-28T12:00:00Z
    const NOW: i64 = 1_795_867_200;

    fn event(profile: &str, email: &str, time: &str, methods: &[&str]) -> Activity {
        serde_json::from_value(serde_json::json!({
            "id": {"time": time, "uniqueQualifier": "1"},
            "actor": {"email": email, "profileId": profile},
            "events": [{"type": "login", "name": "login_success", "parameters": [
                {"name": "login_challenge_method", "multiValue": methods}
            ]}]
        }))
        .unwrap()
    }

    #[test]
    fn the_first_plan_reads_recent_days_then_settles_the_rest() {
        let l = LoginLedger::default();
        let plan = l.plan(NOW);
        // 31 UTC days touch the window; today, yesterday and the day before are recent.
        assert_eq!(plan.len(), 31);
        let today = NOW / DAY;
        assert_eq!(plan[0].day, today);
        assert_eq!((plan[0].from, plan[0].to), (today * DAY, None));
        assert_eq!(plan[1].day, today - 1);
        assert_eq!(plan[1].to, Some(today * DAY));
        assert!(!plan[2].settles);
        assert!(plan[3].settles && plan[3].day == today - 3);
        assert_eq!(plan.last().unwrap().day, (NOW - WINDOW_SECS) / DAY);
        assert_eq!(l.coverage(NOW), 0.0);
        for r in &plan {
            l.complete(r);
        }
        assert_eq!(l.coverage(NOW), 1.0);
        // Fifteen minutes later only today's new events are read, with the overlap.
        let later = NOW + 900;
        let plan = l.plan(later);
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert_eq!(plan[0].from, NOW - OVERLAP_SECS);
        assert!((l.coverage(later) - 30.0 / 31.0).abs() < 1e-9, "today is behind");
        l.complete(&plan[0]);
        // Three days on, the days read while recent are two days old: read once more, in
        // full; older days stay settled.
        let d3 = (today + 3) * DAY + 60;
        let plan = l.plan(d3);
        let settling: Vec<i64> = plan.iter().filter(|r| r.settles).map(|r| r.day).collect();
        assert_eq!(settling, vec![today, today - 1, today - 2], "{plan:?}");
        for r in &plan {
            l.complete(r);
        }
        assert!(l.plan(d3).is_empty());
        assert_eq!(l.coverage(d3), 1.0);
    }

    #[test]
    fn an_unfinished_day_is_read_again() {
        let l = LoginLedger::default();
        let plan = l.plan(NOW);
        l.complete(&plan[0]);
        // The backfill stopped (time budget): the other days stay planned.
        let next = l.plan(NOW + 60);
        assert_eq!(next.len(), 31);
        assert!(next[0].from >= NOW - OVERLAP_SECS);
    }

    #[test]
    fn kinds_join_by_profile_id_then_email_and_age_out() {
        let l = LoginLedger::default();
        l.observe(
            &[
                event("1", "a@x.com", "2026-11-27T08:00:00Z", &["password", "idv_preregistered_phone"]),
                event("1", "a@x.com", "2026-11-01T08:00:00Z", &["security_key"]),
                event("", "B@X.com", "2026-11-20T08:00:00Z", &["google_prompt", "smoke_signal"]),
                event("3", "c@x.com", "2026-10-01T08:00:00Z", &["totp"]),
            ],
            NOW,
        );
        let v = l.view(NOW, true);
        let (a, unrec) = v.seen("1", Some("a@x.com"));
        assert_eq!(a.kinds, vec![FactorType::Webauthn, FactorType::Sms]);
        assert!(!unrec);
        let (b, unrec) = v.seen("2", Some("b@x.com"));
        assert_eq!(b.kinds, vec![FactorType::Push, FactorType::Other]);
        assert!(unrec);
        let (c, _) = v.seen("3", None);
        assert!(c.kinds.is_empty(), "older than 30 days");
        drop(v);
        assert_eq!(l.unrecognised_values(), vec!["smoke_signal".to_string()]);
        // Three weeks later the security key has aged out.
        let later = NOW + 21 * DAY;
        l.prune(later);
        let (a, _) = l.view(later, true).seen("1", None);
        assert_eq!(a.kinds, vec![FactorType::Sms]);
        l.reset();
        assert!(l.view(NOW, true).seen("1", None).0.kinds.is_empty());
    }

    #[test]
    fn hostile_values_are_sanitised_and_bounded() {
        let l = LoginLedger::default();
        let junk: Vec<String> = (0..200).map(|i| format!("x{i}\u{1b}[31m<b>")).collect();
        let refs: Vec<&str> = junk.iter().map(String::as_str).collect();
        l.observe(&[event("1", "a@x.com", "2026-11-27T08:00:00Z", &refs)], NOW);
        let v = l.unrecognised_values();
        assert_eq!(v.len(), MAX_UNRECOGNISED);
        assert!(v.iter().all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))));
        // A time in the future counts as now; no time at all too.
        l.observe(&[event("9", "", "2999-01-01T00:00:00Z", &["totp"])], NOW);
        assert_eq!(l.view(NOW, true).seen("9", None).0.kinds, vec![FactorType::Totp]);
    }
}
