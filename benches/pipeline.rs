//! Pipeline benchmarks (harness-free; `cargo bench --bench pipeline`), recorded in
//! BENCHMARKS.md: check evaluation rate, NDJSON parse rate, peak RSS of `collect` over a
//! 1M-account file, and `/metrics` latency under load with 20 file sources.
//! Set IPE_BENCH_ACCOUNTS to change the 1M default (e.g. for a quick run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use identity_posture_exporter::config;
use identity_posture_exporter::demo::{self, DemoOptions};
use identity_posture_exporter::model::Account;
use identity_posture_exporter::poller::{poll_once, Clock};
use identity_posture_exporter::report::ReportBuilder;
use identity_posture_exporter::server;
use identity_posture_exporter::sources::{file, Source};
use identity_posture_exporter::state::AppState;
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-28 00:00 UTC);

fn accounts_n() -> usize {
    std::env::var("IPE_BENCH_ACCOUNTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

fn demo_policy() -> config::Policy {
    let cfg =
        identity_posture_exporter::sources::load_config(std::path::Path::new("examples/demo.toml"))
            .unwrap();
    cfg.sources[0].policy.clone()
}

fn bench_checks(accounts: &[Account]) {
    let policy = demo_policy();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut b = ReportBuilder::new(policy.clone(), NOW, false);
        let t = Instant::now();
        for a in accounts {
            std::hint::black_box(b.evaluate(a));
        }
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(&b);
        best = best.min(s);
    }
    println!(
        "checks: {} accounts in {:.3} s (best of 3) = {:.2} M accounts/s on one core",
        accounts.len(),
        best,
        accounts.len() as f64 / best / 1e6
    );
}

fn bench_parse(path: &std::path::Path) {
    let size = std::fs::metadata(path).unwrap().len() as f64;
    let mut best = f64::MAX;
    let mut n = 0u64;
    for _ in 0..3 {
        let t = Instant::now();
        n = 0;
        file::read_path(path, &mut |a| {
            std::hint::black_box(&a);
            n += 1;
            true
        })
        .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "ndjson parse: {n} accounts, {:.0} MB in {:.3} s (best of 3) = {:.0} MB/s, {:.2} M accounts/s",
        size / 1e6,
        best,
        size / 1e6 / best,
        n as f64 / best / 1e6
    );
}

fn bench_collect_rss(path: &std::path::Path, dir: &std::path::Path) {
    let cfg = dir.join("collect.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[sources]]\nname = \"big\"\ntype = \"file\"\npath = \"{}\"\ntimeout = \"10m\"\n",
            path.display()
        ),
    )
    .unwrap();
    let t = Instant::now();
    // Reaped below with wait4, which also returns the child's own rusage.
    #[allow(clippy::zombie_processes)]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
        .args(["collect", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would mix in other children,
    // and a forked child's pages inherited from this large process).
    let mut status = 0;
    // SAFETY: wait4 fills the status and rusage we pass for the child we spawned.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let secs = t.elapsed().as_secs_f64();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "collect failed"
    );
    println!(
        "collect: {} in {:.2} s, peak RSS {:.0} MB",
        path.display(),
        secs,
        ru.ru_maxrss as f64 / 1024.0
    );
}

async fn bench_metrics_latency(path: &std::path::Path) {
    let mut toml = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..20 {
        toml.push_str(&format!(
            "[[sources]]\nname = \"src{i:02}\"\ntype = \"file\"\npath = \"{}\"\n",
            path.display()
        ));
    }
    let cfg = identity_posture_exporter::sources::config_from_toml(&toml).unwrap();
    let state = Arc::new(AppState::new(&cfg.sources));
    let clock: Clock = Arc::new(|| NOW);
    for (sc, st) in cfg.sources.iter().zip(state.sources.iter()) {
        let src = Source::build(sc, &identity_posture_exporter::sources::Deps::default()).unwrap();
        poll_once(sc, &src, st, &clock, true).await.unwrap();
    }
    identity_posture_exporter::metrics::refresh(&state);
    let body_len = state.metrics.load().len();
    let app = server::app(state.clone(), &cfg.server).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/metrics");
    let client = reqwest::Client::new();
    // Warm up.
    for _ in 0..50 {
        client
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let workers = 4;
    let per = 2500;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let s = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                lat.push(s.elapsed());
            }
            lat
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = t.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "/metrics with 20 sources ({} KB body): {} requests, {workers} concurrent, {:.0} req/s; latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        body_len / 1024,
        all.len(),
        all.len() as f64 / wall,
        pct(0.50),
        pct(0.99),
        all.last().unwrap().as_secs_f64() * 1e3
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = accounts_n();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.ndjson");
    println!("writing {n} demo accounts as NDJSON ...");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
        .args([
            "generate-demo",
            "--accounts",
            &n.to_string(),
            "--seed",
            "7",
            "--format",
            "ndjson",
            "--now",
            "2026-11-28T00:00:00Z",
        ])
        .stdout(std::fs::File::create(&path).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    bench_collect_rss(&path, dir.path());
    bench_parse(&path);

    println!("generating {n} demo accounts in memory ...");
    let (accounts, _) = demo::generate(&DemoOptions {
        accounts: n,
        seed: 7,
        now: NOW,
    });
    bench_checks(&accounts);
    drop(accounts);

    let small = dir.path().join("demo500.json");
    let (a, t) = demo::generate(&DemoOptions {
        accounts: 500,
        seed: 1,
        now: NOW,
    });
    let mut w = std::fs::File::create(&small).unwrap();
    demo::write(&a, &t, false, &mut w).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench_metrics_latency(&small));
}
