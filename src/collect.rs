//! `collect`: poll every source once and render the result, for cron jobs feeding
//! node_exporter's textfile collector or for a one-off look. Neither output retains
//! accounts: Prometheus output keeps only counts, and JSON findings are written to a spool
//! (an unlinked temporary file) as the checks produce them, then streamed to stdout, so
//! memory stays flat however large the source.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::sync::{Arc, Mutex};

use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::json;

use crate::checks::{Finding, Verdict};
use crate::config::{Config, SourceConfig};
use crate::model::Account;
use crate::poller::{poll_once_with, Clock};
use crate::report::FindingsHook;
use crate::sources::Source;
use crate::state::{AppState, SourceState};

/// Polls all sources concurrently. Returns the Prometheus output and whether every source
/// succeeded.
pub async fn run(cfg: &Config, clock: &Clock) -> (Vec<u8>, bool) {
    let state = Arc::new(AppState::new(&cfg.sources));
    let ok = poll_all(cfg, &state, clock, |_| None).await;
    (crate::metrics::render(&state.sources), ok)
}

/// Polls all sources concurrently and writes their findings as JSON to `out`:
/// `{"sources": [{"compliant_ratio", "error", "findings": [...], "provider", "source", "up"}]}`,
/// tenant findings first, then account findings in the order the source delivered the
/// accounts (per account by check). A source whose poll failed has no findings. Returns
/// whether every source succeeded.
pub async fn run_json(cfg: &Config, clock: &Clock, out: &mut dyn Write) -> io::Result<bool> {
    let state = Arc::new(AppState::new(&cfg.sources));
    let spools: Vec<Arc<Mutex<Spool>>> = cfg
        .sources
        .iter()
        .map(|_| Arc::new(Mutex::new(Spool::new())))
        .collect();
    let ok = poll_all(cfg, &state, clock, |i| Some(spool_hook(spools[i].clone()))).await;
    let mut sources = Vec::new();
    for (s, spool) in state.sources.iter().zip(spools) {
        let spool = Arc::try_unwrap(spool)
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_else(|_| Spool::new());
        if let Some(e) = &spool.error {
            return Err(io::Error::new(
                e.kind(),
                format!("source {}: cannot spool findings: {e}", s.name),
            ));
        }
        sources.push(source_out(s, spool));
    }
    let mut w = BufWriter::with_capacity(256 * 1024, out);
    let mut ser = serde_json::Serializer::pretty(&mut w);
    Doc { sources }
        .serialize(&mut ser)
        .map_err(io::Error::other)?;
    w.write_all(b"\n")?;
    w.flush()?;
    Ok(ok)
}

/// Runs one poll per source (concurrently), reporting failures on stderr.
async fn poll_all(
    cfg: &Config,
    state: &Arc<AppState>,
    clock: &Clock,
    hook: impl Fn(usize) -> Option<FindingsHook>,
) -> bool {
    let mut tasks = Vec::new();
    for (i, (sc, st)) in cfg.sources.iter().zip(state.sources.iter()).enumerate() {
        let (sc, st, clock, hook) = (sc.clone(), st.clone(), clock.clone(), hook(i));
        tasks.push(tokio::spawn(
            async move { poll(&sc, &st, &clock, hook).await },
        ));
    }
    let mut ok = true;
    for (t, sc) in tasks.into_iter().zip(cfg.sources.iter()) {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                ok = false;
                eprintln!("source {}: {e}", sc.name);
            }
            Err(e) => {
                ok = false;
                eprintln!("source {}: poll task failed: {e}", sc.name);
            }
        }
    }
    ok
}

async fn poll(
    sc: &SourceConfig,
    st: &SourceState,
    clock: &Clock,
    hook: Option<FindingsHook>,
) -> Result<(), String> {
    match Source::new(sc) {
        Ok(src) => poll_once_with(sc, &src, st, clock, false, hook).await,
        Err(e) => {
            let msg = e.to_string();
            st.update_status(|s| {
                s.polls += 1;
                s.failures += 1;
                s.completed = true;
                s.last_error = Some(msg.clone());
            });
            Err(msg)
        }
    }
}

/// One finding as `collect --format json` writes it.
fn finding_json(account: Option<(&Account, &Verdict)>, f: &Finding) -> serde_json::Value {
    json!({
        "account_id": account.map(|(a, _)| &a.id),
        "login": account.map(|(a, _)| &a.login),
        "account_type": account.map(|(_, v)| v.account_type.as_str()),
        "excluded": account.is_some_and(|(_, v)| v.excluded),
        "check": f.check.as_str(),
        "severity": f.check.severity().as_str(),
        "subject": f.subject.as_deref(),
        "days": f.days,
        "detail": f.describe(),
    })
}

/// Where one source's account findings wait, one compact JSON document per line, until
/// the output is written: an unlinked temporary file, or memory if none can be made.
struct Spool {
    sink: SpoolSink,
    error: Option<io::Error>,
}

enum SpoolSink {
    File(BufWriter<File>),
    Memory(Vec<u8>),
}

impl Spool {
    fn new() -> Spool {
        let sink = match tempfile::tempfile() {
            Ok(f) => SpoolSink::File(BufWriter::with_capacity(256 * 1024, f)),
            Err(e) => {
                tracing::warn!(error = %e, "no temporary file for the findings spool; keeping findings in memory");
                SpoolSink::Memory(Vec::new())
            }
        };
        Spool { sink, error: None }
    }

    fn push(&mut self, v: &serde_json::Value) {
        if self.error.is_some() {
            return;
        }
        let r = match &mut self.sink {
            SpoolSink::File(w) => serde_json::to_writer(&mut *w, v)
                .map_err(io::Error::from)
                .and_then(|_| w.write_all(b"\n")),
            SpoolSink::Memory(m) => serde_json::to_writer(&mut *m, v)
                .map_err(io::Error::from)
                .map(|_| m.push(b'\n')),
        };
        match r {
            Ok(()) => {}
            Err(e) => self.error = Some(e),
        }
    }

    /// The spooled lines, from the start.
    fn reader(self) -> io::Result<Box<dyn BufRead>> {
        match self.sink {
            SpoolSink::File(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.rewind()?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
            }
            SpoolSink::Memory(m) => Ok(Box::new(io::Cursor::new(m))),
        }
    }
}

fn spool_hook(spool: Arc<Mutex<Spool>>) -> FindingsHook {
    Box::new(move |a: &Account, v: &Verdict, findings: &[Finding]| {
        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
        for f in findings {
            s.push(&finding_json(Some((a, v)), f));
        }
    })
}

/// The output document. Fields are in the order `serde_json` sorts object keys, so the
/// text is what the earlier whole-document rendering produced.
#[derive(Serialize)]
struct Doc {
    sources: Vec<SourceOut>,
}

#[derive(Serialize)]
struct SourceOut {
    compliant_ratio: Option<f64>,
    error: Option<String>,
    findings: Findings,
    provider: &'static str,
    source: String,
    up: bool,
}

/// A source's findings: its tenant findings, then the spooled account findings, read back
/// one line at a time while the output is written.
struct Findings {
    tenant: Vec<serde_json::Value>,
    spooled: RefCell<Option<Spool>>,
}

impl Serialize for Findings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut seq = s.serialize_seq(None)?;
        for t in &self.tenant {
            seq.serialize_element(t)?;
        }
        if let Some(spool) = self.spooled.borrow_mut().take() {
            let mut r = spool.reader().map_err(S::Error::custom)?;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).map_err(S::Error::custom)? == 0 {
                    break;
                }
                let v: serde_json::Value = serde_json::from_str(&line).map_err(S::Error::custom)?;
                seq.serialize_element(&v)?;
            }
        }
        seq.end()
    }
}

fn source_out(s: &SourceState, spool: Spool) -> SourceOut {
    let st = s.status();
    let r = s.report.load_full();
    // Account findings only count from a poll that succeeded (there is no last good one).
    let tenant: Vec<serde_json::Value> = r
        .as_ref()
        .map(|r| {
            r.findings
                .iter()
                .filter(|f| f.account.is_none())
                .map(|f| finding_json(None, &f.finding))
                .collect()
        })
        .unwrap_or_default();
    SourceOut {
        compliant_ratio: r.as_ref().map(|r| r.tally.compliant_ratio()),
        error: st.last_error.clone(),
        findings: Findings {
            tenant,
            spooled: RefCell::new(r.is_some().then_some(spool)),
        },
        provider: s.provider,
        source: s.name.clone(),
        up: st.up,
    }
}
