//! moto — a third-party implementation of the AWS IAM query API (PyPI `moto[server]`) — for
//! the `aws_iam` integration tests: finds the virtualenv `.ci/run` makes (`TEST_MOTO_VENV`),
//! and starts the seeded server (tests/data/aws/seed.py --serve) or a plain `moto_server`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// moto with managed policies loads ~1,300 AWS policies on its first IAM request; seeding
/// takes 15–30 s on a busy 2-core machine.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A running moto; stopped when dropped (stdin closed, then killed).
pub struct Moto {
    pub url: String,
    /// The seed's JSON summary (users, key ids and moto's fake secrets, policy ARNs).
    pub summary: serde_json::Value,
    child: Child,
    stdin: Option<ChildStdin>,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The virtualenv holding moto and boto3, or why there is none (the caller skips, saying so).
pub fn venv() -> Result<PathBuf, String> {
    let dir = std::env::var_os("TEST_MOTO_VENV")
        .map(PathBuf::from)
        .ok_or(
        "TEST_MOTO_VENV is not set: .ci/run creates a virtualenv with moto[server] and exports it",
    )?;
    if dir.join("bin/python").exists() && dir.join("bin/moto_server").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "TEST_MOTO_VENV={} holds no bin/python and bin/moto_server",
            dir.display()
        ))
    }
}

/// Prints why a moto test does not run. Written to the process's stderr directly: libtest
/// captures `println!`/`eprintln!` of passing tests, and a skip must show in CI's log.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Reads lines from `r` until `find` returns a value, with a deadline; keeps draining the
/// stream afterwards so the child never blocks on a full pipe.
fn wait_for_line<R: std::io::Read + Send + 'static>(
    r: R,
    find: impl Fn(&str) -> Option<String> + Send + 'static,
) -> Result<String, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(v) = find(&line) {
                    let _ = tx.send(v);
                    sent = true;
                }
            }
        }
    });
    rx.recv_timeout(READY_TIMEOUT)
        .map_err(|_| format!("moto was not ready within {}s", READY_TIMEOUT.as_secs()))
}

fn seed_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/aws/seed.py")
}

/// moto in the seed script's process, seeded with the backdated account (`--serve`).
pub fn serve_seeded() -> Result<Moto, String> {
    let venv = venv()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let summary = dir.path().join("summary.json");
    let log = std::fs::File::create(dir.path().join("moto.log")).map_err(|e| e.to_string())?;
    let mut child = Command::new(venv.join("bin/python"))
        .arg(seed_script())
        .args(["--serve", "--port", "0", "--summary"])
        .arg(&summary)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start the seed script: {e}"))?;
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take();
    let url = wait_for_line(stdout, |l| l.strip_prefix("MOTO_URL=").map(str::to_string));
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default();
            return Err(format!("{e}; its log:\n{log}"));
        }
    };
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&summary).map_err(|e| format!("no seed summary: {e}"))?,
    )
    .map_err(|e| format!("bad seed summary: {e}"))?;
    Ok(Moto {
        url,
        summary,
        child,
        stdin,
        _dir: dir,
    })
}

/// A plain `moto_server -H 127.0.0.1 -p 0` with extra environment (e.g.
/// `INITIAL_NO_AUTH_ACTION_COUNT`, which turns IAM authorization on after that many requests).
pub fn moto_server(env: &[(&str, &str)]) -> Result<Moto, String> {
    let venv = venv()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(venv.join("bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start moto_server: {e}"))?;
    let stderr = child.stderr.take().unwrap();
    let stdin = child.stdin.take();
    // Werkzeug prints " * Running on http://127.0.0.1:PORT" on stderr.
    let url = wait_for_line(stderr, |l| {
        let i = l.find("http://127.0.0.1:")?;
        let rest = &l[i..];
        let end = rest
            .char_indices()
            .skip("http://127.0.0.1:".len())
            .find(|(_, c)| !c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        Some(rest[..end].to_string())
    });
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    // The banner comes before the socket accepts: wait until it does.
    let addr = url.trim_start_matches("http://").to_string();
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    while std::net::TcpStream::connect(&addr).is_err() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err("moto_server never accepted a connection".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Moto {
        url,
        summary: serde_json::Value::Null,
        child,
        stdin,
        _dir: dir,
    })
}
