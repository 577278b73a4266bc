//! Activity benchmarks (harness-free; `cargo bench --bench activity`), recorded in
//! BENCHMARKS.md:
//! 1. detector throughput: a realistic mixed stream (successes with locations, failures,
//!    pushes denied, a spray and a fatigue attack mixed in) through the whole engine
//!    (sorting, de-duplication, every detector, the counters), one core, in poll-sized
//!    batches;
//! 2. memory with 1M events held in the sliding windows (failures spread so that no
//!    threshold is reached and nothing is pruned): RSS before and after, and what the
//!    detectors hold.
//!
//! `IPE_BENCH_EVENTS` changes the 2M events of the throughput run.

use std::time::{Duration, Instant};

use identity_posture_exporter::activity::engine::Engine;
use identity_posture_exporter::activity::event::{
    ClientKind, EventBatch, EventKind, FactorKind, Outcome, Reason, SignInEvent, Stage,
};
use identity_posture_exporter::activity::facts::Facts;
use identity_posture_exporter::activity::policy::ActivityPolicy;
use time::macros::datetime;
use time::OffsetDateTime;

const START: OffsetDateTime = datetime!(2026-11-28 00:00 UTC);

fn rss_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

const PLACES: &[(&str, f64, f64)] = &[
    ("Netherlands", 52.37, 4.90),
    ("Germany", 52.52, 13.40),
    ("United Kingdom", 51.51, -0.13),
    ("France", 48.86, 2.35),
    ("United States", 40.71, -74.01),
    ("Japan", 35.68, 139.69),
];

/// A deterministic mixed stream of `n` events over `hours` hours: 50k accounts, each with a
/// home; 88 % successes (push MFA), 9 % wrong passwords, 2 % pushes denied, 1 % pushes
/// sent; every 10,000th event starts a small spray.
fn mixed(n: usize, hours: i64) -> Vec<SignInEvent> {
    let span_ms = hours * 3_600_000;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|k| {
            let r = rnd();
            let acct = (r % 50_000) as usize;
            let t = START + time::Duration::milliseconds(span_ms * k as i64 / n as i64);
            let kind = (r >> 40) & 0xff; // 0..=255
            let (result, stage, factor, ek) = match kind {
                0..=224 => (
                    Outcome::Success,
                    Stage::Complete,
                    FactorKind::Push,
                    EventKind::Auth,
                ),
                225..=247 => (
                    Outcome::Failure,
                    Stage::Primary,
                    FactorKind::Password,
                    EventKind::Auth,
                ),
                248..=252 => (
                    Outcome::MfaDenied,
                    Stage::Mfa,
                    FactorKind::Push,
                    EventKind::Auth,
                ),
                _ => (
                    Outcome::Success,
                    Stage::Mfa,
                    FactorKind::Push,
                    EventKind::MfaChallenge,
                ),
            };
            let mut e = SignInEvent::new(format!("ev-{k}"), t, result);
            e.kind = ek;
            e.stage = stage;
            e.factor = factor;
            e.reason = if result == Outcome::Failure {
                Reason::InvalidCredentials
            } else {
                result.default_reason()
            };
            e.client = if acct % 3 == 0 {
                ClientKind::Mobile
            } else {
                ClientKind::Browser
            };
            e.account_id = Some(format!("00u{acct:08}"));
            e.login = Some(format!("user{acct}@example.com"));
            let spray = k % 10_000 < 12 && result == Outcome::Failure;
            e.ip = Some(if spray {
                format!("203.0.113.{}", k / 10_000 % 250)
            } else {
                format!("10.{}.{}.{}", acct >> 16, (acct >> 8) & 0xff, acct & 0xff)
            });
            let (c, lat, lon) = PLACES[acct % PLACES.len()];
            e.country = Some(c.to_string());
            e.lat = Some(lat);
            e.lon = Some(lon);
            e.mfa = (result == Outcome::Success && stage == Stage::Complete).then_some(true);
            e
        })
        .collect()
}

fn throughput() {
    let n: usize = std::env::var("IPE_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let hours = 12;
    let events = mixed(n, hours);
    let policy = ActivityPolicy::default();
    let facts = Facts::default();
    let lookback = Duration::from_secs(24 * 3600);
    let batch = 50_000;
    let mut best = f64::MAX;
    let mut detections = 0;
    let mut counted = 0;
    let mut dropped = [0u64; 4];
    for _ in 0..3 {
        let mut engine = Engine::new();
        // Batches as polls would hand them over (the engine sorts each batch).
        let chunks: Vec<Vec<SignInEvent>> = events.chunks(batch).map(|c| c.to_vec()).collect();
        let t = Instant::now();
        for c in chunks {
            let now = c.last().map(|e| e.time).unwrap_or(START);
            engine.ingest(
                EventBatch {
                    events: c,
                    ..EventBatch::default()
                },
                &facts,
                &policy,
                90,
                lookback,
                now,
            );
        }
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        detections = engine.detector.detections().len();
        counted = engine.health.events;
        dropped = engine.health.dropped;
    }
    println!(
        "detector throughput: {n} events over {hours} h in {best:.3} s (best of 3) = {:.0} events/s on one core; {counted} counted, dropped (unparsable, duplicate, clock skew, too old) {dropped:?}; {detections} detections",
        n as f64 / best
    );
}

fn memory() {
    let n = 1_000_000usize;
    let before = rss_kib("VmRSS:");
    // 1M failures within 10 minutes: 200k accounts with 5 each (brute force needs 10) from
    // 111,112 addresses with 9 accounts each (a spray needs 10): everything stays in the
    // windows, nothing fires.
    let mut engine = Engine::new();
    let policy = ActivityPolicy::default();
    let facts = Facts::default();
    let span_ms = 10 * 60 * 1000;
    let chunk = 100_000;
    let t0 = Instant::now();
    for c in 0..n / chunk {
        let events: Vec<SignInEvent> = (c * chunk..(c + 1) * chunk)
            .map(|k| {
                let t = START + time::Duration::milliseconds(span_ms * k as i64 / n as i64);
                let mut e = SignInEvent::new(format!("m-{k}"), t, Outcome::Failure);
                e.stage = Stage::Primary;
                e.factor = FactorKind::Password;
                e.reason = Reason::InvalidCredentials;
                let acct = k % 200_000;
                e.account_id = Some(format!("00u{acct:08}"));
                e.login = Some(format!("user{acct}@example.com"));
                let ip = k / 9 % 111_112;
                e.ip = Some(format!(
                    "10.{}.{}.{}",
                    ip >> 16,
                    (ip >> 8) & 0xff,
                    ip & 0xff
                ));
                e
            })
            .collect();
        let now = events.last().map(|e| e.time).unwrap_or(START);
        engine.ingest(
            EventBatch {
                events,
                ..EventBatch::default()
            },
            &facts,
            &policy,
            90,
            Duration::from_secs(24 * 3600),
            now,
        );
    }
    let after = rss_kib("VmRSS:");
    let (accounts, ips, sessions, window_events) = engine.detector.sizes();
    println!(
        "windows: {window_events} events held ({accounts} accounts, {ips} IPs, {sessions} sessions), {} detections; ingested in {:.2} s",
        engine.detector.detections().len(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "RSS: {:.0} MiB before, {:.0} MiB after ({:.0} MiB for the engine: windows, histories, de-duplication ids), peak {:.0} MiB",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / 1024.0,
        rss_kib("VmHWM:") as f64 / 1024.0
    );
    std::hint::black_box(&engine);
}

fn main() {
    // Memory first, in a fresh process state (the throughput run's allocations would
    // inflate the RSS it reads). IPE_BENCH_ONLY=throughput|memory runs one.
    let only = std::env::var("IPE_BENCH_ONLY").unwrap_or_default();
    if only != "throughput" {
        memory();
    }
    if only != "memory" {
        throughput();
    }
}
