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
use serde::{Deserialize, Serialize};

use crate::config::{Config, SourceConfig};
use crate::poller::{poll_once_with, Clock};
use crate::report::{AccountFindings, FindingRecord, FindingsHook};
use crate::sources::{Deps, Source};
use crate::state::{AppState, SourceState};
use crate::store::Store;

/// With `[storage] state_dir`, state (the sign-in streams' cursors above all) carries over
/// from one run to the next, so a cron job counts each event once; otherwise it lives in
/// memory for this run only.
async fn open_state(cfg: &Config) -> (Arc<AppState>, Arc<Store>) {
    let store = match &cfg.storage.state_dir {
        Some(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || Store::open(Some(&dir)))
                .await
                .unwrap_or_else(|_| Store::in_memory())
        }
        None => Store::in_memory(),
    };
    let store = Arc::new(store);
    let state = Arc::new(AppState::with_store(&cfg.sources, store.clone(), None));
    (state, store)
}

/// Polls all sources concurrently. Returns the Prometheus output and whether every source
/// succeeded.
pub async fn run(cfg: &Config, clock: &Clock) -> (Vec<u8>, bool) {
    let (state, store) = open_state(cfg).await;
    let ok = poll_all(cfg, &state, &store, clock, |_| None).await;
    (crate::metrics::render(&state.sources, None), ok)
}

/// Polls all sources concurrently and writes their findings as JSON to `out`:
/// `{"sources": [{"compliant_ratio", "error", "findings": [...], "provider", "source", "up"}]}`,
/// each finding in the shared shape ([`FindingRecord`], docs/api.md); tenant findings
/// first, then account findings in the order the source delivered the accounts (per
/// account by check, then subject). A source whose poll failed has no findings. Returns
/// whether every source succeeded.
pub async fn run_json(cfg: &Config, clock: &Clock, out: &mut dyn Write) -> io::Result<bool> {
    let (state, store) = open_state(cfg).await;
    let spools: Vec<Arc<Mutex<Spool>>> = cfg
        .sources
        .iter()
        .map(|_| Arc::new(Mutex::new(Spool::new())))
        .collect();
    let ok = poll_all(cfg, &state, &store, clock, |i| {
        Some(spool_hook(
            spools[i].clone(),
            cfg.sources[i].name.clone(),
            state.sources[i].provider,
        ))
    })
    .await;
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
    store: &Arc<Store>,
    clock: &Clock,
    hook: impl Fn(usize) -> Option<FindingsHook>,
) -> bool {
    let mut tasks = Vec::new();
    for (i, (sc, st)) in cfg.sources.iter().zip(state.sources.iter()).enumerate() {
        let (sc, st, clock, hook) = (sc.clone(), st.clone(), clock.clone(), hook(i));
        let deps = Deps::default().with_store(store.clone());
        tasks.push(tokio::spawn(async move {
            poll(&sc, &st, &deps, &clock, hook).await
        }));
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
    deps: &Deps,
    clock: &Clock,
    hook: Option<FindingsHook>,
) -> Result<(), String> {
    match Source::build(sc, deps) {
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

/// A [`FindingRecord`] read back from the spool, owned. Its fields are in the order
/// `serde_json` sorts object keys, so each finding is written as the whole-document
/// rendering (records turned into a `json!` map) wrote it. `deny_unknown_fields` makes a
/// field added to [`FindingRecord`] but not here an error (a unit test writes every field),
/// never a silently dropped key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpooledRecord {
    account_id: Option<String>,
    account_type: Option<String>,
    check: String,
    credential_type: Option<String>,
    days: Option<i64>,
    detail: String,
    display_name: Option<String>,
    excepted: bool,
    exception_expires: Option<String>,
    exception_owner: Option<String>,
    exception_reason: Option<String>,
    excluded: bool,
    first_seen: Option<String>,
    login: Option<String>,
    new: bool,
    privileged: Option<bool>,
    provider: String,
    remediation: String,
    scope: String,
    severity: String,
    source: String,
    status: Option<String>,
    subject: Option<String>,
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

    fn push(&mut self, v: &FindingRecord<'_>) {
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

fn spool_hook(spool: Arc<Mutex<Spool>>, source: String, provider: &'static str) -> FindingsHook {
    Box::new(move |af: &AccountFindings<'_>| {
        let mut s = spool.lock().unwrap_or_else(|e| e.into_inner());
        for r in af.records(&source, provider) {
            s.push(&r);
        }
    })
}

/// The output document. Fields are in the order `serde_json` sorts object keys, so the
/// text is what the earlier whole-document rendering (a `json!` map) produced.
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
    tenant: Vec<SpooledRecord>,
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
                let v: SpooledRecord = serde_json::from_str(&line).map_err(S::Error::custom)?;
                seq.serialize_element(&v)?;
            }
        }
        seq.end()
    }
}

/// A record as the spool keeps it (through its JSON form, so both paths agree).
fn owned(r: &FindingRecord<'_>) -> SpooledRecord {
    serde_json::to_value(r)
        .and_then(serde_json::from_value)
        .expect("a finding record reads back as a spooled record")
}

fn source_out(s: &SourceState, spool: Spool) -> SourceOut {
    let st = s.status();
    let r = s.report.load_full();
    // Account findings only count from a poll that succeeded (there is no last good one).
    // `collect` polls once, without history: every finding is first seen now, and new.
    let tenant: Vec<SpooledRecord> = r
        .as_ref()
        .map(|r| {
            r.findings
                .iter()
                .filter(|f| f.account.is_none())
                .map(|f| {
                    let mut rec = r.record(&s.name, s.provider, f);
                    rec.first_seen = r.evaluated_at.map(crate::model::format_ts);
                    rec.new = true;
                    owned(&rec)
                })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The streamed document is byte for byte what rendering a retained poll (with finding
    /// history, as a single poll sees it) into one `json!` document gives: the demo is in
    /// account-id order, so delivery order and the API's order agree. An exception, a
    /// disabled check and a failed source are in it too.
    #[tokio::test]
    async fn the_streamed_document_is_the_retained_rendering() {
        let demo = format!(
            "{}/examples/demo-identities.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let cfg = crate::sources::config_from_toml(&format!(
            r#"
[policy]
exclude_accounts = ["breakglass-*@example.com"]
service_account_patterns = ["svc-*"]
[policy.checks."mfa.weak"]
enabled = false
[[policy.exceptions]]
check = "mfa.missing"
account = "*"
reason = "kiosks"
owner = "it-ops@example.com"
expires = "2099-06-30"
[[sources]]
name = "gone"
type = "file"
path = "/nonexistent/x.json"
[[sources]]
name = "demo"
type = "file"
path = "{demo}"
time_anchor = "2026-11-28T00:00:00Z"
"#
        ))
        .unwrap();
        let clock: Clock = Arc::new(|| time::macros::datetime!(2026-11-28 00:00 UTC));
        let mut out = Vec::new();
        assert!(
            !run_json(&cfg, &clock, &mut out).await.unwrap(),
            "gone fails"
        );

        let state = AppState::new(&cfg.sources);
        for (sc, st) in cfg.sources.iter().zip(&state.sources) {
            let src = Source::build(sc, &Deps::default()).unwrap();
            let _ = crate::poller::poll_once(sc, &src, st, &clock, true).await;
        }
        let mut sources = Vec::new();
        for s in &state.sources {
            let st = s.status();
            let r = s.report.load_full();
            let findings: Vec<FindingRecord> = r
                .as_ref()
                .map(|r| {
                    r.findings
                        .iter()
                        .map(|f| r.record(&s.name, s.provider, f))
                        .collect()
                })
                .unwrap_or_default();
            sources.push(serde_json::json!({
                "source": s.name,
                "provider": s.provider,
                "up": st.up,
                "error": st.last_error,
                "compliant_ratio": r.as_ref().map(|r| r.tally.compliant_ratio()),
                "findings": findings,
            }));
        }
        let mut want =
            serde_json::to_vec_pretty(&serde_json::json!({ "sources": sources })).unwrap();
        want.push(b'\n');
        let (got, want) = (
            String::from_utf8(out).unwrap(),
            String::from_utf8(want).unwrap(),
        );
        assert!(got.contains("\"exception_reason\": \"kiosks\""));
        assert!(got.contains("\"scope\": \"tenant\""));
        assert!(!got.contains("\"check\": \"mfa.weak\""));
        assert_eq!(got, want);
    }

    /// Every field of [`FindingRecord`], set, survives the spool unchanged and in order.
    #[test]
    fn a_record_reads_back_from_the_spool_byte_for_byte() {
        let rec = FindingRecord {
            source: "s\"1",
            provider: "file",
            scope: "account",
            account_id: Some("id-1"),
            login: Some("=HYPERLINK(\"x\")"),
            display_name: Some("Dana \u{e9}\n"),
            account_type: Some("human"),
            status: Some("active"),
            privileged: Some(true),
            excluded: false,
            excepted: true,
            exception_reason: Some("reason"),
            exception_owner: Some("owner"),
            exception_expires: Some("2026-12-01T00:00:00Z".into()),
            check: "mfa.missing",
            severity: "critical",
            subject: Some("key-1"),
            credential_type: Some("api_key"),
            days: Some(-3),
            first_seen: Some("2026-11-28T00:00:00Z".into()),
            new: true,
            detail: "a sentence".into(),
            remediation: "do this",
        };
        let mut spool = Spool::new();
        spool.push(&rec);
        assert!(spool.error.is_none());
        let mut line = String::new();
        spool.reader().unwrap().read_line(&mut line).unwrap();
        let back: SpooledRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&back).unwrap(),
            serde_json::to_string_pretty(&serde_json::to_value(&rec).unwrap()).unwrap()
        );
        let mut keys: Vec<String> =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line)
                .unwrap()
                .keys()
                .cloned()
                .collect();
        let mut columns: Vec<String> = FindingRecord::COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect();
        columns.sort();
        keys.sort();
        assert_eq!(keys, columns, "every column is spooled");
    }
}
