//! Okta source benchmark against the in-process mock Okta with 100k users: requests made,
//! wall time of a cold poll (empty factor cache) and a warm poll (cache fresh) against the pure
//! fetch floor (the same requests, same concurrency, bodies discarded unparsed), and peak RSS.
//! Run: `cargo bench --bench okta` (optional arguments: users, concurrency).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use identity_posture_exporter::config::{Secret, SourceConfig, UpstreamLimits};
use identity_posture_exporter::model::Account;
use identity_posture_exporter::sources::okta::OktaConfig;
use identity_posture_exporter::sources::okta::OktaSource;
use identity_posture_exporter::sources::{AccountSink, Deps, PollContext, Provider};
use identity_posture_exporter::upstream::RequestStats as SourceStats;
use support::okta_mock::*;

/// Counts accounts without keeping them (the checks consume them in the daemon).
#[derive(Default)]
struct CountingSink {
    accounts: usize,
    with_mfa: usize,
}

impl AccountSink for CountingSink {
    fn push(&mut self, a: Account) {
        self.accounts += 1;
        self.with_mfa += usize::from(a.mfa.is_some());
    }
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn config(url: &str, concurrency: usize) -> SourceConfig {
    let mut okta = OktaConfig::with_token(url, Secret::new(TOKEN));
    okta.terminated_attribute = Some("leaveDate".into());
    let mut c = SourceConfig::new("okta-bench", "okta", okta);
    c.timeout = Duration::from_secs(3600);
    c.limits = UpstreamLimits {
        concurrency,
        ..UpstreamLimits::default()
    };
    c
}

/// Every URL a cold poll requests, known in advance from the mock's cursor scheme.
fn all_urls(base: &str, users: usize, deprov: usize) -> Vec<String> {
    let mut v = Vec::new();
    for after in (0..users.max(1)).step_by(200) {
        v.push(format!("{base}/api/v1/users?limit=200&after={after}"));
    }
    for after in (0..deprov.max(1)).step_by(200) {
        v.push(format!(
            "{base}/api/v1/users?filter=status+eq+%22DEPROVISIONED%22&limit=200&after={after}"
        ));
    }
    for i in 0..users {
        if !matches!(status_of(i), "SUSPENDED" | "STAGED" | "PROVISIONED") {
            v.push(format!("{base}/api/v1/users/{}/factors", user_id(i)));
        }
    }
    for i in ADMINS {
        v.push(format!("{base}/api/v1/users/{}/roles", user_id(i)));
        v.push(format!(
            "{base}/api/v1/users/{}/groups?limit=200",
            user_id(i)
        ));
    }
    v.push(format!("{base}/api/v1/iam/assignees/users?limit=100"));
    v.push(format!("{base}/api/v1/iam/assignees/users?after=2&limit=2"));
    v.push(format!("{base}/api/v1/api-tokens"));
    v.push(format!("{base}/api/v1/policies?type=ACCESS_POLICY"));
    v.push(format!("{base}/api/v1/policies/rst1/rules"));
    v
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let users: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let deprov = users / 100;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let base_rss = vm_hwm_kib();
        let mock = MockOkta::start(users, deprov).await;
        let cfg = config(&mock.url, concurrency);
        let src = OktaSource::build(&cfg, cfg.settings().unwrap(), &Deps::default()).unwrap();
        let stats = SourceStats::default();

        // Cold poll: every active user's factors fetched.
        let now = time::OffsetDateTime::now_utc();
        let t = Instant::now();
        let mut sink = CountingSink::default();
        src.poll(&PollContext { now, stats: &stats }, &mut sink).await.unwrap();
        let cold = t.elapsed();
        let cold_requests = mock.total_hits();
        let cold_rss = vm_hwm_kib();
        assert_eq!(sink.accounts, users + deprov);
        assert_eq!(sink.with_mfa, active_count(users));

        // Warm poll 15 minutes later: listing only (plus one System Log query).
        let t = Instant::now();
        let mut sink2 = CountingSink::default();
        src.poll(
            &PollContext {
                now: now + Duration::from_secs(900),
                stats: &stats,
            },
            &mut sink2,
        )
        .await
        .unwrap();
        let warm = t.elapsed();
        let warm_requests = mock.total_hits() - cold_requests;
        let warm_rss = vm_hwm_kib();
        assert_eq!(sink2.with_mfa, active_count(users));

        // Floor: the cold poll's requests, same concurrency, bodies read and dropped.
        let urls = all_urls(&mock.url, users, deprov);
        let floor_requests = urls.len();
        let http = reqwest::Client::builder().gzip(true).build().unwrap();
        let t = Instant::now();
        let bytes: usize = futures_util::stream::iter(urls)
            .map(|u| {
                let http = http.clone();
                async move {
                    let r = http
                        .get(u)
                        .header("authorization", format!("SSWS {TOKEN}"))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap().len()
                }
            })
            .buffer_unordered(concurrency)
            .fold(0usize, |a, b| async move { a + b })
            .await;
        let floor = t.elapsed();

        println!("# Okta source benchmark");
        println!();
        println!(
            "users: {users} (+{deprov} deprovisioned), active/locked: {}, concurrency: {concurrency}, cores: {}",
            active_count(users),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!();
        println!("| run | requests | wall time | vs floor | peak RSS (VmHWM) |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| fetch floor (same requests, no processing; {:.1} MiB of bodies) | {floor_requests} | {:.2} s | 1.00× | — |",
            bytes as f64 / 1048576.0,
            floor.as_secs_f64()
        );
        println!(
            "| cold poll (empty factor cache) | {cold_requests} | {:.2} s | {:.2}× | {:.1} MiB |",
            cold.as_secs_f64(),
            cold.as_secs_f64() / floor.as_secs_f64(),
            cold_rss as f64 / 1024.0
        );
        println!(
            "| warm poll (cache fresh: listing + System Log) | {warm_requests} | {:.2} s | — | {:.1} MiB |",
            warm.as_secs_f64(),
            warm_rss as f64 / 1024.0
        );
        println!();
        println!(
            "baseline RSS before the mock started: {:.1} MiB; peak RSS includes the in-process mock server.",
            base_rss as f64 / 1024.0
        );
        println!(
            "upstream requests counted by the source: {:?}",
            stats.api_requests()
        );
    });
}
