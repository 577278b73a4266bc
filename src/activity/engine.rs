//! One source's activity engine: takes each poll's events (sorted, de-duplicated by id,
//! checked against the clock and the look-back), feeds the detectors, counts authentication
//! health, and saves everything — the provider's cursor, the counters, the windows, the
//! detections and the changed account histories — in one atomic store write, so that a
//! restart or a crash mid-write resumes exactly where the last committed poll ended.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::detect::{self, Change, Ctx, Detection, Detector, History, Windows};
use super::event::EventBatch;
use super::facts::Facts;
use super::fx::{hash_str, FxHashMap};
use super::health::{Dropped, Health};
use super::policy::ActivityPolicy;
use crate::model::Timestamp;
use crate::store::{Batch, Store};

/// Engine state per source (cursor, counters, windows, detections).
pub const TABLE: &str = "activity";
/// Per-account history (last success, last location, countries), `source\x1faccount`.
pub const ACCOUNTS: &str = "activity_accounts";
/// 2: event ids, accounts and addresses keyed by the full-avalanche `hash_str`.
const VERSION: u16 = 2;
const SEP: char = '\u{1f}';
/// Event ids are remembered this long behind the newest event: a re-read overlapping the
/// last one by less than this (an expired cursor, a restart) counts nothing twice.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(2 * 3600);
/// At most this many event ids are remembered.
pub const MAX_RECENT_IDS: usize = 2_000_000;

/// Event ids already counted, with their times.
#[derive(Debug, Default)]
struct Recent {
    ids: FxHashMap<u64, i64>,
}

impl Recent {
    fn insert(&mut self, id: &str, t: i64) -> bool {
        if self.ids.len() >= MAX_RECENT_IDS {
            // Keep the newest half (a flood of ids must not grow memory).
            let mut ts: Vec<i64> = self.ids.values().copied().collect();
            let mid = ts.len() / 2;
            let (_, cut, _) = ts.select_nth_unstable(mid);
            let cut = *cut;
            self.ids.retain(|_, v| *v >= cut);
        }
        self.ids.insert(hash_str(id), t).is_none()
    }
    fn prune(&mut self, before: i64) {
        self.ids.retain(|_, t| *t >= before);
    }
}

/// What is persisted under [`TABLE`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    cursor: Option<serde_json::Value>,
    baseline_done: bool,
    health: Option<Health>,
    recent: Vec<(u64, i64)>,
    windows: Windows,
    /// Polls whose events were committed (diagnostics).
    polls: u64,
    /// Event ids are remembered from this time on although older than the de-duplication
    /// window: a pass cut short still has older events to hand over (unix ms).
    #[serde(default)]
    hold: Option<i64>,
}

/// The result of one ingest.
#[derive(Debug, Default, Clone)]
pub struct Ingested {
    pub counted: u64,
    pub changes: Vec<Change>,
}

pub struct Engine {
    pub detector: Detector,
    pub health: Health,
    /// The provider's cursor as its last committed poll left it.
    pub cursor: Option<serde_json::Value>,
    /// The first pass over history has been made (new countries fire from now on).
    pub baseline_done: bool,
    pub polls: u64,
    recent: Recent,
    /// See [`EventBatch::pending_from`]: ids are remembered from here on (unix ms).
    hold: Option<i64>,
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            detector: Detector::new(),
            health: Health::default(),
            cursor: None,
            baseline_done: false,
            polls: 0,
            recent: Recent::default(),
            hold: None,
        }
    }

    /// The engine as `source`'s last committed poll left it, or a fresh one.
    pub fn load(store: &Store, source: &str) -> Engine {
        let Some(saved) = store.get::<Saved>(TABLE, source, VERSION) else {
            return Engine::new();
        };
        let prefix = format!("{source}{SEP}");
        let histories: Vec<(String, History)> = store
            .scan::<History>(ACCOUNTS, &prefix, VERSION)
            .into_iter()
            .map(|(k, h)| (k[prefix.len()..].to_string(), h))
            .collect();
        let mut recent = Recent::default();
        recent.ids.extend(saved.recent);
        Engine {
            detector: Detector::import(saved.windows, histories),
            health: saved.health.unwrap_or_default().normalise(),
            cursor: saved.cursor,
            baseline_done: saved.baseline_done,
            polls: saved.polls,
            recent,
            hold: saved.hold,
        }
    }

    /// Adds this engine's state to `batch` (the changed account histories only).
    pub fn save(&mut self, source: &str, batch: &mut Batch) {
        for (k, h) in self.detector.take_dirty() {
            batch.put(ACCOUNTS, &format!("{source}{SEP}{k}"), VERSION, &h);
        }
        let saved = Saved {
            cursor: self.cursor.clone(),
            baseline_done: self.baseline_done,
            health: Some(self.health.clone()),
            recent: self.recent.ids.iter().map(|(k, v)| (*k, *v)).collect(),
            windows: self.detector.export(),
            polls: self.polls,
            hold: self.hold,
        };
        batch.put(TABLE, source, VERSION, &saved);
    }

    /// Counts and judges one poll's events at `now`. `lookback` bounds how old an event may
    /// be; the first call is the baseline pass.
    #[allow(clippy::too_many_arguments)]
    pub fn ingest(
        &mut self,
        mut batch: EventBatch,
        facts: &Facts,
        policy: &ActivityPolicy,
        dormant_after_days: u32,
        lookback: Duration,
        now: Timestamp,
    ) -> Ingested {
        let mut out = Ingested::default();
        self.health.drop(Dropped::Unparsable, batch.unparsable);
        batch
            .events
            .sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        let now_ms = detect::ms(now);
        let skew = now_ms + ms(policy.max_clock_skew);
        let oldest = now_ms - ms(lookback);
        // Ids older than this may have been forgotten: such an event cannot be told from a
        // repeat, so it is not counted. (Exactly where the last ingest pruned them.)
        let forgotten = self
            .health
            .newest_event
            .map(|n| n - ms(DEDUPE_WINDOW))
            .map(|f| self.hold.map_or(f, |h| f.min(h)));
        let pending_from = batch.pending_from.map(detect::ms);
        let ctx = Ctx {
            policy,
            dormant_after_days,
            baseline: !self.baseline_done,
        };
        for e in &batch.events {
            let t = detect::ms(e.time);
            if t > skew {
                self.health.drop(Dropped::ClockSkew, 1);
                continue;
            }
            if t < oldest || forgotten.is_some_and(|f| t < f) {
                self.health.drop(Dropped::TooOld, 1);
                continue;
            }
            if !self.recent.insert(&e.id, t) {
                self.health.drop(Dropped::Duplicate, 1);
                continue;
            }
            let f = facts.lookup(e.account_id.as_deref(), e.login.as_deref());
            let v = self.detector.process(e, f, &ctx, &mut out.changes);
            self.health.count(e, v);
            out.counted += 1;
        }
        self.health.detected(&out.changes);
        self.detector.prune(now, policy);
        if let Some(n) = self.health.newest_event {
            let cut = n - ms(DEDUPE_WINDOW);
            self.recent.prune(pending_from.map_or(cut, |p| cut.min(p)));
        }
        self.hold = pending_from;
        self.baseline_done = true;
        self.polls += 1;
        out
    }

    /// Detections still inside their window at `now`.
    pub fn active<'a>(
        &'a self,
        now: Timestamp,
        policy: &'a ActivityPolicy,
    ) -> impl Iterator<Item = &'a Detection> + 'a {
        self.detector
            .detections()
            .iter()
            .filter(move |d| d.active(now, policy))
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::event::{Outcome, SignInEvent};
    use time::macros::datetime;

    const NOW: Timestamp = datetime!(2026-11-28 12:00 UTC);

    fn fail(id: &str, min: i64, login: &str, ip: &str) -> SignInEvent {
        let mut e = SignInEvent::new(id, NOW - time::Duration::minutes(min), Outcome::Failure);
        e.stage = crate::activity::event::Stage::Primary;
        e.login = Some(login.into());
        e.ip = Some(ip.into());
        e
    }

    fn batch(events: Vec<SignInEvent>) -> EventBatch {
        EventBatch {
            events,
            ..EventBatch::default()
        }
    }

    #[test]
    fn duplicates_skew_and_old_events_are_dropped_and_counted() {
        let mut e = Engine::new();
        let p = ActivityPolicy::default();
        let lb = Duration::from_secs(24 * 3600);
        let mut future = fail("f", 0, "a@x", "1.1.1.1");
        future.time = NOW + time::Duration::minutes(6);
        let mut slight = fail("s", 0, "a@x", "1.1.1.1");
        slight.time = NOW + time::Duration::minutes(4);
        let mut ancient = fail("old", 0, "a@x", "1.1.1.1");
        ancient.time = NOW - time::Duration::hours(25);
        let r = e.ingest(
            batch(vec![
                fail("1", 5, "a@x", "1.1.1.1"),
                fail("1", 5, "a@x", "1.1.1.1"),
                future,
                slight,
                ancient,
            ]),
            &Facts::default(),
            &p,
            90,
            lb,
            NOW,
        );
        assert_eq!(
            r.counted, 2,
            "the duplicate, the far future and the ancient one are dropped"
        );
        assert_eq!(e.health.dropped, [0, 1, 1, 1]);
        // A re-read of the same events next poll counts nothing.
        let r = e.ingest(
            batch(vec![fail("1", 5, "a@x", "1.1.1.1")]),
            &Facts::default(),
            &p,
            90,
            lb,
            NOW,
        );
        assert_eq!(r.counted, 0);
        assert_eq!(e.health.dropped[Dropped::Duplicate as usize], 2);
    }

    #[test]
    fn a_pass_cut_short_hands_older_events_over_later_and_none_is_lost() {
        // A provider listing newest first: the first poll reads 11:00–11:59, the pass goes
        // on from 08:00; the next poll brings 08:00–10:59, more than the de-duplication
        // window (2 h) older than the newest event counted.
        let p = ActivityPolicy::default();
        let lb = Duration::from_secs(24 * 3600);
        let newest: Vec<SignInEvent> = (0..60)
            .map(|i| fail(&format!("n{i}"), 60 - i, &format!("u{i}@x"), "192.0.2.1"))
            .collect();
        let older: Vec<SignInEvent> = (0..180)
            .map(|i| fail(&format!("o{i}"), 240 - i, &format!("v{i}@x"), "192.0.2.2"))
            .collect();
        let store = Store::in_memory();
        let mut e = Engine::new();
        let mut first = batch(newest.clone());
        first.pending_from = Some(NOW - time::Duration::hours(4));
        assert_eq!(
            e.ingest(first, &Facts::default(), &p, 90, lb, NOW).counted,
            60
        );
        let mut b = Batch::default();
        e.save("s", &mut b);
        store.write(b).unwrap();
        // A restart in between: the engine still remembers from 08:00.
        let mut e = Engine::load(&store, "s");
        let mut rest = batch(older.clone());
        rest.events.extend(newest.iter().take(5).cloned());
        let r = e.ingest(rest, &Facts::default(), &p, 90, lb, NOW);
        assert_eq!(r.counted, 180, "every older event counted");
        assert_eq!(
            e.health.dropped,
            [0, 5, 0, 0],
            "the repeats are still known"
        );
        // Without the hold the same older events would be too old.
        let mut plain = Engine::new();
        plain.ingest(batch(newest), &Facts::default(), &p, 90, lb, NOW);
        let r = plain.ingest(batch(older), &Facts::default(), &p, 90, lb, NOW);
        assert_eq!(r.counted, 61, "only those within two hours of 11:59");
        assert_eq!(plain.health.dropped[Dropped::TooOld as usize], 119);
    }

    #[test]
    fn state_round_trips_through_the_store() {
        let store = Store::in_memory();
        let p = ActivityPolicy::default();
        let lb = Duration::from_secs(24 * 3600);
        let mut e = Engine::new();
        e.cursor = Some(serde_json::json!({"after": "abc"}));
        let events: Vec<SignInEvent> = (0..9)
            .map(|i| fail(&format!("e{i}"), 30 - i, &format!("u{i}@x"), "203.0.113.5"))
            .collect();
        e.ingest(batch(events), &Facts::default(), &p, 90, lb, NOW);
        let mut b = Batch::default();
        e.save("s", &mut b);
        store.write(b).unwrap();

        // A restart: the tenth account's failure completes the spray exactly once.
        let mut again = Engine::load(&store, "s");
        assert_eq!(again.cursor, e.cursor);
        assert_eq!(again.health, e.health);
        assert!(again.baseline_done);
        let r = again.ingest(
            batch(vec![
                fail("e3", 27, "u3@x", "203.0.113.5"),
                fail("e9", 20, "u9@x", "203.0.113.5"),
            ]),
            &Facts::default(),
            &p,
            90,
            lb,
            NOW,
        );
        assert_eq!(r.counted, 1, "e3 was counted before the restart");
        assert_eq!(r.changes.len(), 1);
        assert_eq!(again.detector.detections().len(), 1);
        assert_eq!(
            again.detector.detections()[0].evidence.split(' ').next(),
            Some("10")
        );
    }
}
