//! `collect`: poll every source once and render the result, for cron jobs feeding
//! node_exporter's textfile collector or for a one-off look. Prometheus output does not
//! retain accounts, so memory stays flat however large the source.

use std::sync::Arc;

use serde_json::json;

use crate::config::Config;
use crate::poller::{poll_once, Clock};
use crate::sources::{Deps, Source};
use crate::state::AppState;

/// Polls all sources concurrently. Returns the output and whether every source succeeded.
pub async fn run(cfg: &Config, clock: &Clock, json_findings: bool) -> (Vec<u8>, bool) {
    let state = Arc::new(AppState::new(&cfg.sources));
    let mut tasks = Vec::new();
    for (sc, st) in cfg.sources.iter().zip(state.sources.iter()) {
        let (sc, st, clock) = (sc.clone(), st.clone(), clock.clone());
        tasks.push(tokio::spawn(async move {
            match Source::build(&sc, &Deps::default()) {
                Ok(src) => poll_once(&sc, &src, &st, &clock, json_findings).await,
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
    if !json_findings {
        return (crate::metrics::render(&state.sources, None), ok);
    }
    let mut sources = Vec::new();
    for s in &state.sources {
        let st = s.status();
        let r = s.report.load_full();
        let findings: Vec<crate::report::FindingRecord> = r
            .as_ref()
            .map(|r| {
                r.findings
                    .iter()
                    .map(|f| r.record(&s.name, s.provider, f))
                    .collect()
            })
            .unwrap_or_default();
        sources.push(json!({
            "source": s.name,
            "provider": s.provider,
            "up": st.up,
            "error": st.last_error,
            "compliant_ratio": r.as_ref().map(|r| r.tally.compliant_ratio()),
            "findings": findings,
        }));
    }
    let mut out = serde_json::to_vec_pretty(&json!({"sources": sources})).unwrap_or_default();
    out.push(b'\n');
    (out, ok)
}
