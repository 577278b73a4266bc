//! Golden-file test of the demo's `/metrics` (node_exporter style): the demo configuration
//! is polled with the clock pinned at its time anchor and the exposition is compared with
//! `tests/golden/demo.metrics`. Volatile values (poll duration, git revision) are masked.
//! Rewrite the golden file after an intended change with:
//!     UPDATE_GOLDEN=1 cargo test --test golden

use std::sync::Arc;

use identity_posture_exporter::metrics;
use identity_posture_exporter::poller::{poll_once, Clock};
use identity_posture_exporter::sources::{load_config, Deps, Source};
use identity_posture_exporter::state::AppState;
use time::macros::datetime;

const GOLDEN: &str = "tests/golden/demo.metrics";

fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = if line.starts_with("identity_posture_source_poll_duration_seconds{") {
            format!("{} <duration>", line.rsplit_once(' ').unwrap().0)
        } else if line.starts_with("identity_posture_exporter_build_info{") {
            let (a, rest) = line.split_once("revision=\"").unwrap();
            let (_, rest) = rest.split_once('"').unwrap();
            format!("{a}revision=\"<revision>\"{rest}")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn demo_metrics_match_the_golden_file() {
    let cfg = load_config(std::path::Path::new("examples/demo.toml")).unwrap();
    let clock: Clock = Arc::new(|| datetime!(2026-11-28 00:00 UTC));
    let state = AppState::new(&cfg.sources);
    let src = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
    poll_once(&cfg.sources[0], &src, &state.sources[0], &clock, false)
        .await
        .unwrap();
    metrics::refresh(&state);
    let got = normalise(std::str::from_utf8(&state.metrics.load()).unwrap());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(GOLDEN, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(GOLDEN)
        .expect("golden file missing: run UPDATE_GOLDEN=1 cargo test --test golden");
    if got != want {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(a, b)| a != b)
            .take(20)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!(
            "/metrics differs from {GOLDEN} ({} vs {} lines); first differences:\n{}\nIf intended: UPDATE_GOLDEN=1 cargo test --test golden",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}
