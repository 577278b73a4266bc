//! The background poller: one task per source, polling on its interval with jitter, one poll
//! at a time, with a per-poll timeout and backoff after failures. A successful poll swaps in
//! a new report; a failed one keeps the last good report and marks the source down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use crate::config::SourceConfig;
use crate::model::Timestamp;
use crate::report::{FindingsHook, ReportBuilder};
use crate::sources::{Deps, ErrorKind, PollContext, Source, SourceError};
use crate::state::{AppState, SourceState};

/// The injected clock (checks judge ages against it; tests pin it).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(time::OffsetDateTime::now_utc)
}

/// First retry after a failure; doubles per consecutive failure, capped at the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);

/// Polls `source` once, records the outcome in `state` (not yet `completed`: see
/// [`poll_and_publish`]), and returns the error if any. `retain` keeps accounts and
/// findings for the API.
pub async fn poll_once(
    cfg: &SourceConfig,
    source: &Source,
    state: &SourceState,
    clock: &Clock,
    retain: bool,
) -> Result<(), String> {
    poll_once_with(cfg, source, state, clock, retain, None).await
}

/// [`poll_once`], with `hook` seeing every account's findings as they are produced.
pub async fn poll_once_with(
    cfg: &SourceConfig,
    source: &Source,
    state: &SourceState,
    clock: &Clock,
    retain: bool,
    hook: Option<FindingsHook>,
) -> Result<(), String> {
    let now = clock();
    let started = Instant::now();
    state.update_status(|s| {
        s.polls += 1;
        s.polling = true;
        s.last_attempt = Some(now);
    });
    let mut builder = ReportBuilder::new(cfg.policy.clone(), now, retain)
        .with_max_accounts(cfg.max_accounts_per_poll);
    if let Some(previous) = state.report.load().as_deref() {
        builder = builder.with_size_hint(previous);
    }
    if let Some(h) = hook {
        builder = builder.with_hook(h);
    }
    let limit_hit = builder.limit_hit();
    let ctx = PollContext {
        now,
        stats: &state.stats,
    };
    // With activity on, the listing's account facts are kept for the detectors.
    let mut tee = crate::activity_poll::FactsTee {
        inner: &mut builder,
        facts: cfg
            .activity
            .enabled
            .then(crate::activity::facts::Facts::default),
    };
    let polled = tokio::time::timeout(cfg.timeout, async {
        tokio::select! {
            r = source.poll(&ctx, &mut tee) => Some(r),
            // A source producing more accounts than allowed is stopped at once.
            _ = limit_hit.notified() => None,
        }
    })
    .await;
    let facts = tee.facts;
    let over_limit = || {
        SourceError::new(
            ErrorKind::Budget,
            format!(
                "more than {} accounts in one poll (max_accounts_per_poll): raise it if the organisation really is this large",
                cfg.max_accounts_per_poll
            ),
        )
    };
    let result = match polled {
        Ok(Some(Ok(_))) if builder.over_limit() => Err(over_limit()),
        Ok(Some(Ok(out))) => {
            let mut report = builder.finish(out);
            if report.tally.duplicates > 0 {
                tracing::warn!(source = %cfg.name, duplicates = report.tally.duplicates, "the source returned some accounts more than once (same id); each is counted once");
            }
            if retain {
                // History reads and writes the store: off the async workers.
                let store = state.store.clone();
                let name = cfg.name.clone();
                let previous = state.report.load_full();
                tokio::task::spawn_blocking(move || {
                    crate::history::apply_with_previous(
                        &store,
                        &name,
                        &mut report,
                        previous.as_deref(),
                    );
                    report
                })
                .await
                .map_err(|e| {
                    SourceError::new(ErrorKind::Transport, format!("finding history failed: {e}"))
                })
            } else {
                Ok(report)
            }
        }
        Ok(Some(Err(e))) => Err(e),
        Ok(None) => Err(over_limit()),
        Err(_) => {
            // Say what the poll was doing: the endpoint in flight, a rate-limit wait.
            let now_unix = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
            Err(SourceError::new(
                ErrorKind::Timeout,
                format!(
                    "poll timed out after {} (the source's timeout); {}",
                    humantime::format_duration(cfg.timeout),
                    state.stats.activity().describe(now_unix)
                ),
            ))
        }
    };
    if cfg.activity.enabled {
        // The second stream, in the same poll: what is left of the timeout (at least 10 s).
        // Its failure keeps the last good activity numbers; the account poll stands.
        let left = cfg
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(10));
        let facts = if result.is_ok() { facts } else { None };
        let _ = crate::activity_poll::poll(
            cfg,
            source,
            &state.activity,
            &state.stats,
            &state.store,
            now,
            facts,
            left,
        )
        .await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => {
            let accounts = report.tally.accounts.iter().flatten().sum::<u64>();
            tracing::info!(source = %cfg.name, accounts, seconds = elapsed, "poll succeeded");
            crate::report::log_future_timestamps(&cfg.name, &report.tally);
            state.report.store(Some(Arc::new(report)));
            // The previous report is freed here (unless a request still reads it): give the
            // pages back so they do not add to the next poll's peak.
            crate::retained::release_free_memory();
            state.update_status(|s| {
                s.up = true;
                s.polling = false;
                s.consecutive_failures = 0;
                s.last_success = Some(clock());
                s.last_duration_seconds = Some(elapsed);
            });
            Ok(())
        }
        Err(e) => {
            let kind = e.kind().as_str();
            let e = e.to_string();
            tracing::warn!(source = %cfg.name, error = %e, kind, seconds = elapsed, "poll failed; keeping the last good numbers");
            state.update_status(|s| {
                s.up = false;
                s.polling = false;
                s.failures += 1;
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                s.last_error = Some(e.clone());
                s.last_error_kind = Some(kind);
                s.last_error_at = Some(clock());
                s.last_duration_seconds = Some(elapsed);
            });
            Err(e)
        }
    }
}

/// Polls once (keeping accounts for the API), re-encodes the metrics, and only then marks
/// the source as having completed a poll, so `/-/ready` never answers before `/metrics`
/// shows the poll.
pub async fn poll_and_publish(
    cfg: &SourceConfig,
    source: &Source,
    state: &SourceState,
    app: &AppState,
    clock: &Clock,
) -> Result<(), String> {
    let r = poll_once(cfg, source, state, clock, true).await;
    crate::metrics::refresh(app);
    state.update_status(|s| s.completed = true);
    r
}

/// The delay before the next poll: the interval plus up to 10 % jitter (at most a minute)
/// after a success; exponential backoff from 10 s, capped at the interval, after failures.
pub fn next_delay(interval: Duration, consecutive_failures: u32, jitter01: f64) -> Duration {
    let base = if consecutive_failures == 0 {
        interval
    } else {
        let exp = consecutive_failures.saturating_sub(1).min(16);
        FIRST_BACKOFF.saturating_mul(1 << exp).min(interval)
    };
    let max_jitter = (base.as_secs_f64() * 0.1).min(60.0);
    base + Duration::from_secs_f64(max_jitter * jitter01.clamp(0.0, 1.0))
}

/// Runs the poll loop of one source until `shutdown` flips. The first poll starts at once.
pub async fn run(
    cfg: SourceConfig,
    source: Source,
    state: Arc<SourceState>,
    app: Arc<AppState>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let polled = tokio::select! {
            r = poll_and_publish(&cfg, &source, &state, &app, &clock) => Some(r),
            _ = shutdown.changed() => None,
        };
        if polled.is_none() {
            tracing::info!(source = %cfg.name, "shutdown: abandoning the poll in flight");
            return;
        }
        let failures = state.status().consecutive_failures;
        let delay = next_delay(cfg.interval, failures, rand::rng().random::<f64>());
        tracing::debug!(source = %cfg.name, delay_seconds = delay.as_secs_f64(), "next poll scheduled");
        let next = clock() + delay;
        state.update_status(|s| s.next_poll = Some(next));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = state.poll_now.notified() => {
                tracing::info!(source = %cfg.name, "poll requested");
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Builds every configured source (no I/O), or says which cannot be built and why.
pub fn build_all(cfgs: &[SourceConfig], deps: &Deps) -> Result<Vec<Source>, String> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for cfg in cfgs {
        match Source::build(cfg, deps) {
            Ok(s) => out.push(s),
            Err(e) => errors.push(format!("source {}: {e}", cfg.name)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors.join("\n"))
    }
}

/// Starts one poll task per source. Returns the join handles.
pub fn spawn_all(
    cfgs: &[SourceConfig],
    app: &Arc<AppState>,
    clock: &Clock,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut deps = Deps::default();
    if let Some(s) = app.sources.first() {
        deps = deps.with_store(s.store.clone());
    }
    let sources = build_all(cfgs, &deps)?;
    let mut handles = Vec::new();
    for ((cfg, state), source) in cfgs.iter().zip(app.sources.iter()).zip(sources) {
        handles.push(tokio::spawn(run(
            cfg.clone(),
            source,
            state.clone(),
            app.clone(),
            clock.clone(),
            shutdown.clone(),
        )));
    }
    Ok(handles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_after_success_is_interval_plus_bounded_jitter() {
        let i = Duration::from_secs(900);
        assert_eq!(next_delay(i, 0, 0.0), i);
        assert_eq!(next_delay(i, 0, 1.0), i + Duration::from_secs(60));
        let small = Duration::from_secs(60);
        assert_eq!(next_delay(small, 0, 1.0), small + Duration::from_secs(6));
    }

    #[test]
    fn backoff_doubles_and_is_capped_by_the_interval() {
        let i = Duration::from_secs(900);
        assert_eq!(next_delay(i, 1, 0.0), Duration::from_secs(10));
        assert_eq!(next_delay(i, 2, 0.0), Duration::from_secs(20));
        assert_eq!(next_delay(i, 4, 0.0), Duration::from_secs(80));
        assert_eq!(next_delay(i, 10, 0.0), i);
        assert_eq!(next_delay(i, u32::MAX, 0.0), i);
    }
}
