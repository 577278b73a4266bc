//! Hardening benchmarks (harness-free), recorded in BENCHMARKS.md: `/metrics` latency while
//! thousands of slow clients hold connections open, and authenticated-scrape latency while
//! clients hammer basic auth with wrong passwords against a cost-13 bcrypt hash. The release
//! binary runs `serve` as a child process; this process is the attacker and the scraper.
//!     cargo bench --bench hardening               # both
//!     cargo bench --bench hardening -- slow       # IPE_BENCH_SLOW_CLIENTS (default 5000)
//!     cargo bench --bench hardening -- bcrypt     # IPE_BENCH_ATTACKERS (50), IPE_BENCH_BCRYPT_COST (13)

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env_n(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        r.rlim_cur
    }
}

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(dir: &Path, server_extra: &str) -> Server {
    let port = free_port();
    let demo = std::fs::canonicalize("examples/demo-identities.json").unwrap();
    let cfg = dir.join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{server_extra}\n[[sources]]\nname = \"demo\"\ntype = \"file\"\npath = \"{}\"\ntime_anchor = \"2026-11-28T00:00:00Z\"\ninterval = \"1m\"\n",
            demo.display()
        ),
    )
    .unwrap();
    let log = dir.join(format!("serve-{port}.log"));
    // The usual default open-file limit, as the issue measured it (IPE_BENCH_SERVER_NOFILE).
    let nofile = env_n("IPE_BENCH_SERVER_NOFILE", 1024) as libc::rlim_t;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"));
    // SAFETY: setrlimit is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            Ok(())
        });
    }
    let child = cmd
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Server { child, port, log }
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn summary(mut lat: Vec<Duration>) -> String {
    if lat.is_empty() {
        return "n 0 (every request failed)".into();
    }
    lat.sort();
    format!(
        "n {}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        lat.last().unwrap().as_secs_f64() * 1e3
    )
}

/// Scrapes `url` `n` times from a thread of its own (its own runtime, so attacker tasks
/// cannot starve it), one request every `gap`; returns latencies and failures.
fn scrape(
    url: String,
    n: usize,
    gap: Duration,
    fresh_connections: bool,
    auth: Option<(&'static str, &'static str)>,
) -> (Vec<Duration>, usize) {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut b = reqwest::Client::builder().timeout(Duration::from_secs(2));
            if fresh_connections {
                b = b.pool_max_idle_per_host(0);
            }
            let client = b.build().unwrap();
            let mut lat = Vec::with_capacity(n);
            let mut failed = 0;
            for _ in 0..n {
                let t = Instant::now();
                let mut req = client.get(&url);
                if let Some((u, p)) = auth {
                    req = req.basic_auth(u, Some(p));
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
                tokio::time::sleep(gap).await;
            }
            (lat, failed)
        })
    })
    .join()
    .unwrap()
}

async fn wait_ready(port: u16) {
    let url = format!("http://127.0.0.1:{port}/-/ready");
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status().is_success() || r.status() == 401 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server not ready");
}

fn metric(text: &str, series: &str) -> String {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

async fn bench_slow_clients(dir: &Path) {
    let clients = env_n("IPE_BENCH_SLOW_CLIENTS", 5000);
    // Whether a client whose connection the server closed connects again at once.
    let reconnect = env_n("IPE_BENCH_RECONNECT", 1) == 1;
    let attacker_addr: std::net::SocketAddr = "127.0.0.2:0".parse().unwrap();
    let server = start_server(dir, "");
    let port = server.port;
    wait_ready(port).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let base = scrape(url.clone(), 300, Duration::from_millis(5), true, None);
    println!(
        "slow clients: baseline /metrics, fresh connection each: {}",
        summary(base.0)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (stop, connects, open) = (stop.clone(), connects.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            // Slowloris: half a request, then one more header byte every 2 s; reconnect at
            // once when the server closes the connection.
            while !stop.load(Ordering::Relaxed) {
                // From another loopback address than the scraper's, as an attacker is
                // another host than Prometheus.
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                let connected = match sock.bind(attacker_addr) {
                    Ok(()) => sock.connect(([127, 0, 0, 1], port).into()).await,
                    Err(e) => Err(e),
                };
                let Ok(mut s) = connected else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                connects.fetch_add(1, Ordering::Relaxed);
                open.fetch_add(1, Ordering::Relaxed);
                let _ = s
                    .write_all(format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-{i}: ").as_bytes())
                    .await;
                let mut buf = [0u8; 64];
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                        Err(_) => {
                            if s.write_all(b"a").await.is_err() {
                                break;
                            }
                        }
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(_)) => {}
                    }
                }
                open.fetch_sub(1, Ordering::Relaxed);
                if !reconnect {
                    break;
                }
            }
        }));
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // Let every client connect once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!(
        "slow clients: {} attackers ({}), {} held open on the client side, {} connects so far",
        clients,
        if reconnect {
            "reconnecting at once when closed"
        } else {
            "connecting once"
        },
        open.load(Ordering::Relaxed),
        connects.load(Ordering::Relaxed)
    );
    let fresh = scrape(url.clone(), 500, Duration::from_millis(20), true, None);
    let keep = scrape(url.clone(), 500, Duration::from_millis(20), false, None);
    let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
    println!(
        "slow clients: under attack /metrics, fresh connection each: {} ({} failed)",
        summary(fresh.0),
        fresh.1
    );
    println!(
        "slow clients: under attack /metrics, keep-alive: {} ({} failed)",
        summary(keep.0),
        keep.1
    );
    println!(
        "slow clients: attacker connects {}, held open now {}; server: connections {}, evicted {}, header timeouts {}, rejected {}, RSS {:.0} MiB",
        connects.load(Ordering::Relaxed),
        open.load(Ordering::Relaxed),
        metric(&text, "identity_posture_http_connections"),
        metric(&text, "identity_posture_http_connections_closed_total{reason=\"evicted\"}"),
        metric(&text, "identity_posture_http_connections_closed_total{reason=\"header_timeout\"}"),
        metric(&text, "identity_posture_http_connections_rejected_total"),
        rss_mib(server.child.id())
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    println!(
        "slow clients: server log lines about the limit: {}",
        log.lines()
            .filter(|l| l.contains("connection limit reached"))
            .count()
    );
}

async fn bench_bcrypt(dir: &Path) {
    let attackers = env_n("IPE_BENCH_ATTACKERS", 50);
    let cost = env_n("IPE_BENCH_BCRYPT_COST", 13) as u32;
    let t = Instant::now();
    let hash = bcrypt::hash("right-pass", cost).unwrap();
    println!(
        "bcrypt: cost {cost}, one hash takes {:.0} ms here",
        t.elapsed().as_secs_f64() * 1e3
    );
    let web = dir.join("web.yml");
    let mut f = std::fs::File::create(&web).unwrap();
    writeln!(f, "basic_auth_users:\n  prometheus: {hash}").unwrap();
    let server = start_server(dir, &format!("web_config_file = \"{}\"", web.display()));
    let port = server.port;
    wait_ready(port).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let auth = Some(("prometheus", "right-pass"));
    let base = scrape(url.clone(), 500, Duration::from_millis(5), false, auth);
    println!(
        "bcrypt: baseline authenticated scrapes (keep-alive): {} (first one verifies)",
        summary(base.0)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let mut tasks = Vec::new();
    for i in 0..attackers {
        let (stop, counts, url) = (stop.clone(), counts.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let r = c
                    .get(&url)
                    .basic_auth("prometheus", Some(format!("guess-{i}-{n}")))
                    .send()
                    .await;
                let slot = match r.as_ref().map(|r| r.status().as_u16()) {
                    Ok(401) => 0,
                    Ok(503) => 1,
                    _ => 2,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
                if let Ok(r) = r {
                    let _ = r.bytes().await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = Instant::now();
    let before: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let under = scrape(url.clone(), 1000, Duration::from_millis(10), false, auth);
    let secs = t.elapsed().as_secs_f64();
    let after: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    println!(
        "bcrypt: {attackers} wrong-password clients: authenticated scrapes {} ({} failed)",
        summary(under.0),
        under.1
    );
    println!(
        "bcrypt: attackers got {:.0} × 401/s, {:.0} × 503/s, {:.0} errors/s during the measurement; server RSS {:.0} MiB",
        (after[0] - before[0]) as f64 / secs,
        (after[1] - before[1]) as f64 / secs,
        (after[2] - before[2]) as f64 / secs,
        rss_mib(server.child.id())
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let all = args.is_empty();
    let nofile = raise_nofile();
    println!(
        "open-file limit: bench process {nofile}, server {}",
        env_n("IPE_BENCH_SERVER_NOFILE", 1024)
    );
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if all || args.iter().any(|a| a == "slow") {
        rt.block_on(bench_slow_clients(dir.path()));
    }
    if all || args.iter().any(|a| a == "bcrypt") {
        rt.block_on(bench_bcrypt(dir.path()));
    }
}
