//! GitHub source benchmark against the in-process mock GitHub with a 20,000-member
//! organisation: requests per poll and wall time of the first poll, the polls that read the
//! audit log back to the dormancy window, and a steady-state poll, against the fetch floor
//! (the first poll's requests replayed through a plain client, bodies read and dropped).
//! Run: `cargo bench --bench github` (optional arguments: members, concurrency).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use identity_posture_exporter::config::{Secret, SourceConfig, UpstreamLimits};
use identity_posture_exporter::model::Account;
use identity_posture_exporter::sources::github::{GithubConfig, GithubSource};
use identity_posture_exporter::sources::{AccountSink, Deps, PollContext, Provider};
use identity_posture_exporter::upstream::RequestStats;
use serde_json::{json, Value};
use support::github_mock::*;

#[derive(Default)]
struct CountingSink {
    accounts: usize,
    with_mfa: usize,
    with_last_login: usize,
}

impl AccountSink for CountingSink {
    fn push(&mut self, a: Account) {
        self.accounts += 1;
        self.with_mfa += usize::from(a.mfa.is_some());
        self.with_last_login += usize::from(!a.last_login.is_unknown());
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

const T0: i64 = 1_795_867_200; // 2026-11-28 12:00 UTC
const DAY: i64 = 86_400;

/// A 20k-member organisation: 10 owners, 2.5 % without 2FA, 5 % SMS only, 1 bot per 1000,
/// 500 outside collaborators, 50 invitations; SAML authorisations (a classic token for every
/// second member, an SSH key for every third, an OAuth app token for every tenth); 20,000
/// audit-log events over the 90-day window (newest first).
fn organisation(n: u64) -> Org {
    let members: Vec<Value> = (1..=n)
        .map(|i| {
            user(
                i,
                &format!("member-{i}"),
                if i % 1000 == 0 { "Bot" } else { "User" },
            )
        })
        .collect();
    let collaborators: Vec<Value> = (1..=500)
        .map(|i| user(1_000_000 + i, &format!("ext-{i}"), "User"))
        .collect();
    let mut creds = Vec::new();
    for i in 1..=n {
        let login = format!("member-{i}");
        if i % 2 == 0 {
            creds.push(authorization(
                &login,
                i * 10,
                "personal access token",
                "2026-06-01T00:00:00Z",
                Some("2026-11-20T00:00:00Z"),
                Some(if i % 4 == 0 {
                    None
                } else {
                    Some("2027-03-01T00:00:00Z")
                }),
            ));
        }
        if i % 3 == 0 {
            creds.push(authorization(
                &login,
                i * 10 + 1,
                "SSH key",
                "2025-01-01T00:00:00Z",
                Some("2026-11-01T00:00:00Z"),
                None,
            ));
        }
        if i % 10 == 0 {
            creds.push(authorization(
                &login,
                i * 10 + 2,
                "OAuth app token",
                "2026-11-01T00:00:00Z",
                None,
                None,
            ));
        }
    }
    let events: Vec<Value> = (0..20_000u64)
        .map(|k| {
            let actor = format!("member-{}", (k * 7919) % n + 1);
            event(
                k,
                &actor,
                "repo.access",
                T0 - 3600 - (k as i64) * (89 * DAY / 20_000),
            )
        })
        .collect();
    Org {
        members,
        owners: (1..=10).collect(),
        members_2fa_disabled: (1..=n).filter(|i| i % 40 == 0).collect(),
        members_2fa_insecure: (1..=n).filter(|i| i % 20 == 5).collect(),
        collaborators,
        collaborators_2fa_disabled: (1..=500).filter(|i| i % 50 == 0).map(|i| 1_000_000 + i).collect(),
        invitations: Some(
            (1..=50)
                .map(|i| json!({"id": 5_000_000 + i, "login": null, "email": format!("new{i}@example.com"), "role": "direct_member", "created_at": "2026-11-20T00:00:00Z", "failed_at": null}))
                .collect(),
        ),
        credential_authorizations: Some(creds),
        audit: Some(events),
        page_size: 100,
        ..Org::default()
    }
}

fn config(api_url: &str, concurrency: usize) -> SourceConfig {
    let gh = GithubConfig::with_token("acme", api_url, Secret::new(TOKEN));
    let mut c = SourceConfig::new("github-bench", "github", gh);
    c.timeout = Duration::from_secs(3600);
    c.limits = UpstreamLimits {
        concurrency,
        ..UpstreamLimits::default()
    };
    c
}

struct Run {
    label: String,
    requests: usize,
    wall: Duration,
    with_last_login: usize,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let n: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let base_rss = vm_hwm_kib();
        let mock = MockGithub::start(organisation(n), "").await;
        let cfg = config(&mock.api_url, concurrency);
        let src = GithubSource::build(&cfg, cfg.settings().unwrap(), &Deps::default()).unwrap();
        let stats = RequestStats::default();
        let mut runs: Vec<Run> = Vec::new();
        let expected_accounts = n as usize + 500 + 50;

        // First poll, then polls every 15 minutes until the audit log has been read back to
        // the window's start, then one steady-state poll with 100 new events.
        let mut first_requests: Vec<(String, String)> = Vec::new();
        for k in 0..8i64 {
            if k == 5 {
                mock.update(|o| {
                    let new: Vec<Value> = (0..100u64)
                        .map(|j| event(900_000 + j, &format!("member-{}", j * 13 + 1), "repo.access", T0 + k * 900 - 60 - j as i64))
                        .collect();
                    let audit = o.audit.as_mut().unwrap();
                    let old = std::mem::take(audit);
                    *audit = new.into_iter().chain(old).collect();
                });
            }
            // Polls are 15 minutes apart: four of them (about 1,800 core requests, 200
            // audit-log pages) fit GitHub's hourly windows, so each poll here starts with the
            // window the mock reports fresh rather than waiting out a real hour.
            mock.reset_rate_limits();
            let now = time::OffsetDateTime::from_unix_timestamp(T0 + k * 900).unwrap();
            let before = mock.server.total();
            let t = Instant::now();
            let mut sink = CountingSink::default();
            src.poll(&PollContext { now, stats: &stats }, &mut sink).await.unwrap();
            let wall = t.elapsed();
            assert_eq!(sink.accounts, expected_accounts);
            assert_eq!(sink.with_mfa, expected_accounts - 50 - (n as usize / 1000), "humans' 2FA known");
            let requests = mock.server.total() - before;
            if k == 0 {
                first_requests = mock
                    .server
                    .requests()
                    .iter()
                    .map(|r| (r.path.clone(), r.query.clone()))
                    .collect();
            }
            let label = match k {
                0 => "first poll (audit log: the newest 50 pages)".to_string(),
                5 => "steady state (100 new events)".to_string(),
                k if k > 5 => "steady state (no new events)".to_string(),
                k => format!("poll {} (reading the audit log back)", k + 1),
            };
            runs.push(Run { label, requests, wall, with_last_login: sink.with_last_login });
            if k >= 6 {
                break;
            }
        }
        let rss = vm_hwm_kib();

        // Floor: the first poll's requests through a plain client, same concurrency.
        let http = reqwest::Client::builder().gzip(true).build().unwrap();
        let urls: Vec<String> = first_requests
            .iter()
            .map(|(p, q)| if q.is_empty() { format!("{}{p}", mock.server.url) } else { format!("{}{p}?{q}", mock.server.url) })
            .collect();
        let floor_requests = urls.len();
        let t = Instant::now();
        let bytes: usize = futures_util::stream::iter(urls)
            .map(|u| {
                let http = http.clone();
                async move {
                    let r = http
                        .get(u)
                        .header("authorization", format!("Bearer {TOKEN}"))
                        .header("accept", "application/vnd.github+json")
                        .header("x-github-api-version", "2022-11-28")
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

        println!("# GitHub source benchmark");
        println!();
        println!(
            "members: {n} (+500 outside collaborators, 50 invitations), concurrency: {concurrency}, cores: {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!();
        println!("| run | requests | wall time | vs floor | accounts with last activity |");
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| fetch floor (the first poll's requests, no processing; {:.1} MiB of bodies) | {floor_requests} | {:.2} s | 1.00× | — |",
            bytes as f64 / 1048576.0,
            floor.as_secs_f64()
        );
        for r in &runs {
            let vs = if r.requests == floor_requests {
                format!("{:.2}×", r.wall.as_secs_f64() / floor.as_secs_f64())
            } else {
                "—".into()
            };
            println!(
                "| {} | {} | {:.2} s | {vs} | {} |",
                r.label,
                r.requests,
                r.wall.as_secs_f64(),
                r.with_last_login
            );
        }
        println!();
        println!(
            "peak RSS (VmHWM, includes the in-process mock and its fixture): {:.1} MiB; before the mock started: {:.1} MiB",
            rss as f64 / 1024.0,
            base_rss as f64 / 1024.0
        );
        println!("upstream requests counted by the source: {:?}", stats.api_requests());
    });
}
