//! The command line as a user runs it: `--version`, `check-config` (the shipped examples stay
//! valid; every problem is printed), `collect` exit codes and output, `generate-demo`.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_identity-posture-exporter"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_names_the_revision() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("identity-posture-exporter 0.1.0 (revision "),
        "{out}"
    );
}

#[test]
fn shipped_examples_are_valid() {
    for f in ["examples/demo.toml", "examples/full.toml"] {
        let (code, out, err) = run(&["check-config", "--config", f]);
        assert_eq!(code, 0, "{f}: {out}{err}");
    }
}

#[test]
fn check_config_prints_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "[server]\nlisten = \"x\"\n[policy]\ndormant_after_days = \"ninety\"\n[[sources]]\nname = \"a\"\ntype = \"file\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("server.listen"), "{err}");
    assert!(err.contains("policy.dormant_after_days"), "{err}");
    assert!(
        err.contains("sources[0] (a).path: missing required key"),
        "{err}"
    );
}

#[test]
fn collect_prints_metrics_and_fails_when_a_source_fails() {
    let (code, out, _) = run(&["collect", "--config", "examples/demo.toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("identity_posture_source_up{provider=\"file\",source=\"demo\"} 1"));
    assert!(
        !out.contains("process_"),
        "textfile collector output must not carry process metrics"
    );

    let (code, out, _) = run(&[
        "collect",
        "--config",
        "examples/demo.toml",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["sources"][0]["findings"].as_array().unwrap().len() > 100);

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("c.toml");
    // Relative paths are read from the configuration file's directory: this one is not the
    // repository's, so the demo file is named absolutely.
    std::fs::write(
        &f,
        format!(
            "[[sources]]\nname = \"gone\"\ntype = \"file\"\npath = \"/nonexistent/x.json\"\n[[sources]]\nname = \"demo\"\ntype = \"file\"\npath = \"{}/examples/demo-identities.json\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["collect", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/x.json"), "{err}");
    assert!(out.contains("identity_posture_source_up{provider=\"file\",source=\"gone\"} 0"));
    assert!(out.contains("identity_posture_source_up{provider=\"file\",source=\"demo\"} 1"));
}

#[test]
fn generate_demo_is_seeded_and_readable_in_both_forms() {
    let a = run(&[
        "generate-demo",
        "--accounts",
        "50",
        "--seed",
        "3",
        "--now",
        "2026-01-01T00:00:00Z",
    ]);
    let b = run(&[
        "generate-demo",
        "--accounts",
        "50",
        "--seed",
        "3",
        "--now",
        "2026-01-01T00:00:00Z",
    ]);
    assert_eq!(a.0, 0);
    assert_eq!(a.1, b.1);
    let v: serde_json::Value = serde_json::from_str(&a.1).unwrap();
    assert_eq!(v["accounts"].as_array().unwrap().len(), 50);
    let (code, nd, _) = run(&[
        "generate-demo",
        "--accounts",
        "50",
        "--seed",
        "3",
        "--format",
        "ndjson",
    ]);
    assert_eq!(code, 0);
    assert_eq!(nd.lines().count(), 50);
}

#[test]
fn the_committed_demo_file_is_what_generate_demo_makes() {
    let (code, out, _) = run(&[
        "generate-demo",
        "--accounts",
        "500",
        "--seed",
        "1",
        "--now",
        "2026-11-28T00:00:00Z",
    ]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string("examples/demo-identities.json").unwrap();
    assert!(
        out == committed,
        "regenerate examples/demo-identities.json with the command in examples/demo.toml"
    );
}

#[test]
fn serve_becomes_ready_and_stops_cleanly_on_sigterm() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = bin()
        .args([
            "--config",
            "examples/demo.toml",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ready = rt.block_on(async {
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/-/ready")).await {
                if r.status() == 200 {
                    return true;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    });
    let metrics = rt.block_on(async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    // SAFETY: sending SIGTERM to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut status = None;
    // Generous bounds: CI machines are shared; these only catch a hang, not slowness.
    for _ in 0..300 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = child.kill();
    }
    assert!(ready, "never became ready");
    assert!(metrics.contains("identity_posture_source_up{provider=\"file\",source=\"demo\"} 1"));
    assert!(status
        .expect("did not exit within 15 s of SIGTERM")
        .success());
}
