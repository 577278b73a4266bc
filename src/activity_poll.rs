//! The poller's activity step: records the account facts a poll's listing produced
//! ([`FactsTee`]), reads the source's sign-in events right after the listing (same poll, same
//! request budget), hands them to the source's activity engine off the async workers, commits
//! the result to the store in one write, and publishes a snapshot for `/metrics`, the API and
//! the view. A failed read keeps the last good numbers and says why. The glue between
//! `sources` and `activity`, so neither imports the other's driver.

use std::sync::Arc;
use std::time::Duration;

use crate::activity::detect::{Change, Detection, Kind};
use crate::activity::engine::Engine;
use crate::activity::event::EventBatch;
use crate::activity::facts::{AccountFacts, Facts};
use crate::activity::{ActivityCell, Snapshot};
use crate::config::SourceConfig;
use crate::model::{Account, Severity, Timestamp};
use crate::sources::{AccountSink, ActivityContext, Source};
use crate::store::{Batch, Store};
use crate::upstream::RequestStats;

/// An account sink that also records each account's facts for the detectors.
pub struct FactsTee<'a> {
    pub inner: &'a mut dyn AccountSink,
    pub facts: Option<Facts>,
}

impl AccountSink for FactsTee<'_> {
    fn push(&mut self, account: Account) {
        if let Some(f) = &mut self.facts {
            f.add(AccountFacts::of(&account));
        }
        self.inner.push(account);
    }
}

/// Reads `source`'s sign-in events once and publishes the result in `cell`. `facts` is
/// this poll's listing (`None` when the listing failed: the last good one is used).
#[allow(clippy::too_many_arguments)]
pub async fn poll(
    cfg: &SourceConfig,
    source: &Source,
    cell: &ActivityCell,
    stats: &RequestStats,
    store: &Arc<Store>,
    now: Timestamp,
    facts: Option<Facts>,
    timeout: Duration,
) -> Result<(), String> {
    let mut guard = cell.engine.lock().await;
    let engine = match guard.take() {
        Some(e) => e,
        None => {
            let (st, name) = (store.clone(), cfg.name.clone());
            tokio::task::spawn_blocking(move || Engine::load(&st, &name))
                .await
                .unwrap_or_default()
        }
    };
    if let Some(f) = facts {
        cell.set_facts(f);
    }
    let facts = cell.facts();
    let lookback = cfg.activity.lookback;
    let cursor = engine.cursor.clone();
    let ctx = ActivityContext {
        now,
        stats,
        cursor: cursor.as_ref(),
        since: now - lookback,
    };
    let mut batch = EventBatch::default();
    let read = tokio::time::timeout(timeout, source.activity(&ctx, &mut batch)).await;
    let (out, error) = match read {
        Ok(Ok(o)) => (Some(o), None),
        Ok(Err(e)) => (None, Some(e.to_string())),
        Err(_) => (
            None,
            Some(format!(
                "reading sign-in events timed out after {} (what is left of the poll's timeout); {}",
                humantime::format_duration(timeout),
                stats
                    .activity()
                    .describe(now.unix_timestamp_nanos() as f64 / 1e9)
            )),
        ),
    };
    if batch.unparsable > 0 {
        tracing::warn!(source = %cfg.name, count = batch.unparsable, samples = ?batch.unparsable_samples, "activity: events that could not be read were skipped");
    }
    let previous = cell.snapshot.load_full();
    let policy = cfg.activity.policy.clone();
    let dormant = cfg.policy.dormant_after_days;
    let (st, name) = (store.clone(), cfg.name.clone());
    let new_cursor = out
        .as_ref()
        .filter(|o| o.unavailable.is_none())
        .map(|o| o.cursor.clone());
    let more = out.as_ref().is_some_and(|o| o.more);
    batch.pending_from = out.as_ref().filter(|o| o.more).and_then(|o| o.pending_from);
    let worked = tokio::task::spawn_blocking(move || {
        let mut engine = engine;
        if let Some(c) = new_cursor {
            engine.cursor = c;
        }
        let baseline = !engine.baseline_done;
        let ingested = engine.ingest(batch, &facts, &policy, dormant, lookback, now);
        if baseline && more {
            // The first pass over history is not finished (page cap, request budget): the
            // next read is still part of the baseline, so an older event read later does
            // not count as a new country.
            engine.baseline_done = false;
        }
        let mut b = Batch::default();
        engine.save(&name, &mut b);
        let written = st.write(b);
        let mut active = vec![0u64; Kind::ALL.len() * Severity::ALL.len()];
        for d in engine.active(now, &policy) {
            let si = Severity::ALL
                .iter()
                .position(|x| *x == d.severity)
                .unwrap_or(0);
            active[d.kind as usize * Severity::ALL.len() + si] += 1;
        }
        let detections: Vec<Detection> = engine.detector.detections().iter().cloned().collect();
        (engine, ingested, written, active, detections, policy)
    })
    .await;
    let (engine, ingested, written, active, detections, policy) = match worked {
        Ok(v) => v,
        Err(e) => {
            // The engine is lost with the task; the next poll reloads the committed state.
            return Err(format!("activity processing failed: {e}"));
        }
    };
    if let Err(e) = &written {
        tracing::warn!(source = %cfg.name, error = %e, "activity: cannot persist the stream's state; a restart re-reads from the last committed cursor");
    }
    let fired = ingested
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Fired { .. }))
        .count();
    let unavailable = out.as_ref().and_then(|o| o.unavailable.clone());
    let snapshot = Snapshot {
        evaluated_at: now,
        policy,
        health: engine.health.clone(),
        detections: Arc::new(detections),
        active,
        up: error.is_none(),
        last_error: error.clone(),
        unavailable: unavailable.clone(),
        lag_seconds: engine
            .health
            .newest_event
            .map(|n| ((crate::activity::detect::ms(now) - n) as f64 / 1000.0).max(0.0)),
        tracked: engine.detector.sizes(),
        requests: out.as_ref().map(|o| o.requests).unwrap_or(0),
        more: out.as_ref().is_some_and(|o| o.more),
        reads: previous.as_ref().map_or(0, |p| p.reads) + 1,
        read_failures: previous.as_ref().map_or(0, |p| p.read_failures)
            + u64::from(error.is_some()),
    };
    *guard = Some(engine);
    drop(guard);
    cell.snapshot.store(Some(Arc::new(snapshot)));
    match (&error, &unavailable) {
        (Some(e), _) => {
            tracing::warn!(source = %cfg.name, error = %e, counted = ingested.counted, "activity: reading sign-in events failed; the next poll continues from the last committed cursor");
            Err(e.clone())
        }
        (None, Some(why)) => {
            tracing::warn!(source = %cfg.name, reason = %why, "activity: sign-in events unavailable; activity unknown");
            Ok(())
        }
        (None, None) => {
            tracing::info!(source = %cfg.name, counted = ingested.counted, detections = fired, more, "activity read");
            if more {
                tracing::info!(source = %cfg.name, "activity: the read stopped before the end of the stream (page cap or request budget); the next poll continues from the stored cursor");
            }
            Ok(())
        }
    }
}
