//! `serve` on large organisations (`cargo bench --bench serve`): the release binary runs
//! `serve` as a separate process on one file source of N generated accounts
//! (`generate-demo --accounts N --seed 7 --format ndjson --now 2026-11-28T00:00:00Z`), polls
//! three times (the first at start, the next two asked for with `POST /-/poll/big`), and
//! reports per poll the time it took and the process's RSS, then the peak RSS over the three
//! polls (`VmHWM` from `/proc/PID/status`), the time from start to `/-/ready`, and the latency
//! of `/api/v1/findings` pages (50 findings a page, following `next_cursor`, and filtered
//! pages) and of `/metrics` (plain and gzip).
//!
//! Arguments: account counts (default `100000 1000000`); `IPE_BENCH_SOURCES=K` runs K file
//! sources over the same file instead of one (e.g. `IPE_BENCH_SOURCES=20 cargo bench --bench
//! serve -- 50000`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One HTTP/1.1 request on a fresh connection: (status, headers, body).
fn http(port: u16, method: &str, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(p) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..p]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[p + 2..p + 2 + n]);
        b = &b[p + 4 + n..];
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn json(port: u16, path: &str) -> serde_json::Value {
    let (st, _, body) = http(port, "GET", path, "");
    assert_eq!(st, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// Polls completed so far by every source (`polls` counts started polls).
fn finished_polls(port: u16) -> u64 {
    let v = json(port, "/api/v1/sources");
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let polls = s["polls"].as_u64().unwrap_or(0);
            polls - u64::from(s["polling"].as_bool().unwrap_or(false))
        })
        .min()
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn lat_summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{} requests: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        v.len(),
        pct(&v, 0.5),
        pct(&v, 0.99),
        v.last().unwrap().as_secs_f64() * 1e3
    )
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn generate(n: usize, path: &Path) {
    let t = Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
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
        .stdout(std::fs::File::create(path).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    println!(
        "wrote {n} accounts ({:.0} MB) in {:.1} s",
        std::fs::metadata(path).unwrap().len() as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
}

fn run(n: usize, sources: usize, file: &Path, dir: &Path) {
    let port = free_port();
    let cfg = dir.join(format!("serve-{n}.toml"));
    let mut toml = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n");
    for i in 0..sources {
        let name = if sources == 1 {
            "big".to_string()
        } else {
            format!("big{i:02}")
        };
        toml.push_str(&format!(
            "[[sources]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{}\"\ninterval = \"24h\"\ntimeout = \"30m\"\ntime_anchor = \"2026-11-28T00:00:00Z\"\n",
            file.display()
        ));
    }
    std::fs::write(&cfg, toml).unwrap();
    let log = dir.join(format!("serve-{n}.log"));
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--log-level", "warn"])
        // The exporter refuses unknown IPE_ variables: the benchmark's own are not for it.
        .env_remove("IPE_BENCH_SOURCES")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut server = Server(child);
    // Ready: every source has finished its first poll.
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut b = String::new();
            let _ = s.read_to_string(&mut b);
            if b.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        let exited = server.0.try_wait().ok().flatten();
        assert!(
            exited.is_none() && started.elapsed() < Duration::from_secs(1800),
            "not ready ({exited:?}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ready = started.elapsed().as_secs_f64();
    let rss1 = status_kib(pid, "VmRSS:");
    let hwm1 = status_kib(pid, "VmHWM:");
    println!(
        "{n} accounts x {sources} source(s): ready in {ready:.2} s; after poll 1 RSS {:.0} MiB, peak {:.0} MiB",
        rss1 as f64 / 1024.0,
        hwm1 as f64 / 1024.0
    );
    let names: Vec<String> = json(port, "/api/v1/sources")["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    for poll in 2..=3u64 {
        let t = Instant::now();
        for name in &names {
            let (st, _, body) = http(port, "POST", &format!("/-/poll/{name}"), "");
            assert!(
                st < 300,
                "poll {name}: {st} {}",
                String::from_utf8_lossy(&body)
            );
        }
        while finished_polls(port) < poll {
            std::thread::sleep(Duration::from_millis(20));
        }
        println!(
            "  poll {poll}: {:.2} s; RSS {:.0} MiB, peak so far {:.0} MiB",
            t.elapsed().as_secs_f64(),
            status_kib(pid, "VmRSS:") as f64 / 1024.0,
            status_kib(pid, "VmHWM:") as f64 / 1024.0
        );
    }
    let hwm = status_kib(pid, "VmHWM:");

    // /api/v1/findings: follow the cursor 50 at a time, then filtered pages.
    let mut lat = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/findings?limit=50&cursor={c}"),
            None => "/api/v1/findings?limit=50".to_string(),
        };
        let t = Instant::now();
        let v = json(port, &path);
        lat.push(t.elapsed());
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    for q in [
        "check=mfa.missing",
        "severity=critical",
        "account_type=service",
        "check=credential.expiring&format=csv",
    ] {
        for _ in 0..25 {
            let t = Instant::now();
            let (st, _, _) = http(port, "GET", &format!("/api/v1/findings?limit=50&{q}"), "");
            lat.push(t.elapsed());
            assert_eq!(st, 200);
        }
    }
    let total = json(port, "/api/v1/findings?limit=1")["total"]
        .as_u64()
        .unwrap_or(0);
    println!(
        "  /api/v1/findings ({total} findings), 50 a page: {}",
        lat_summary(lat)
    );

    let mut plain = Vec::new();
    let mut gz = Vec::new();
    let (mut plain_len, mut gz_len) = (0, 0);
    for _ in 0..200 {
        let t = Instant::now();
        let (_, _, b) = http(port, "GET", "/metrics", "");
        plain.push(t.elapsed());
        plain_len = b.len();
        let t = Instant::now();
        let (_, h, b) = http(port, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
        gz.push(t.elapsed());
        gz_len = if h.to_ascii_lowercase().contains("content-encoding: gzip") {
            b.len()
        } else {
            0
        };
    }
    println!(
        "  /metrics plain ({} KB): {}",
        plain_len / 1024,
        lat_summary(plain)
    );
    println!(
        "  /metrics Accept-Encoding: gzip ({}): {}",
        if gz_len > 0 {
            format!("{} KB gzip", gz_len / 1024)
        } else {
            "not compressed".into()
        },
        lat_summary(gz)
    );
    println!(
        "RESULT accounts={n} sources={sources} ready_s={ready:.2} peak_rss_mib={:.0} rss_after_mib={:.0}",
        hwm as f64 / 1024.0,
        status_kib(pid, "VmRSS:") as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let mut ns: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if ns.is_empty() {
        ns = vec![100_000, 1_000_000];
    }
    let sources: usize = std::env::var("IPE_BENCH_SOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // The generated files are large (534 MB for 1M accounts): in memory when /dev/shm is there.
    let dir = if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    for n in ns {
        let file: PathBuf = dir.path().join(format!("accounts-{n}.ndjson"));
        generate(n, &file);
        run(n, sources, &file, dir.path());
        std::fs::remove_file(&file).unwrap();
    }
}
