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
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let (code, out, _) = run(&[
        "generate-demo",
        "--accounts",
        "500",
        "--seed",
        "1",
        "--now",
        "2026-11-28T00:00:00Z",
        "--events",
        events.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string("examples/demo-identities.json").unwrap();
    assert!(
        out == committed,
        "regenerate examples/demo-identities.json with the command in examples/demo.toml"
    );
    let committed = std::fs::read_to_string("examples/demo-events.ndjson").unwrap();
    assert!(
        std::fs::read_to_string(&events).unwrap() == committed,
        "regenerate examples/demo-events.ndjson with the command in examples/demo.toml"
    );
    let (code, _, err) = run(&[
        "generate-demo",
        "--accounts",
        "5",
        "--events",
        dir.path().join("no/such/dir/e.ndjson").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--events"), "{err}");
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

/// A config file in `dir` over the demo organisation (absolute paths), plus `extra` TOML.
fn demo_config(dir: &std::path::Path, name: &str, extra: &str) -> std::path::PathBuf {
    let demo = std::fs::canonicalize("examples/demo-identities.json").unwrap();
    let f = dir.join(name);
    std::fs::write(
        &f,
        format!(
            "{extra}\n[[sources]]\nname = \"demo\"\ntype = \"file\"\npath = \"{}\"\ntime_anchor = \"2026-11-28T00:00:00Z\"\n",
            demo.display()
        ),
    )
    .unwrap();
    f
}

#[test]
fn check_config_refuses_everything_serve_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(d.join("tls.crt"), ck.cert.pem()).unwrap();
    std::fs::write(d.join("tls.key"), ck.signing_key.serialize_pem()).unwrap();
    let good_hash = bcrypt::hash("pw", 4).unwrap();
    let web = |name: &str, body: &str| {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        format!("[server]\nweb_config_file = \"{}\"\n", p.display())
    };
    let not_a_dir = d.join("plain-file");
    std::fs::write(&not_a_dir, "").unwrap();
    // File-source files that do not exist: serve only warns (a cron job may write them
    // later), check-config fails, naming the key path and the file.
    let absent = d.join("absent-identities.json");
    let absent_events = d.join("absent-events.ndjson");
    let demo = std::fs::canonicalize("examples/demo-identities.json").unwrap();
    let missing_path = format!(
        "sources[0] (gone).path: {} does not exist",
        absent.display()
    );
    let missing_events = format!(
        "sources[0] (ev).events_path: {} does not exist",
        absent_events.display()
    );
    // Private keys that do not parse: an Okta service app's PEM, a Google service-account
    // JSON key whose private_key is no key.
    let bad_pem = d.join("bad.pem");
    std::fs::write(
        &bad_pem,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let bad_json = d.join("bad-key.json");
    std::fs::write(
        &bad_json,
        r#"{"type":"service_account","client_email":"ipe@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#,
    )
    .unwrap();
    let token = d.join("token");
    std::fs::write(&token, "00abc\n").unwrap();
    let bad_okta_key = format!("sources[0] (okta).private_key_file: {}", bad_pem.display());
    let bad_google_key = format!(
        "sources[0] (gw).credentials_file: credentials_file ({})",
        bad_json.display()
    );
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "[[sources]]\nname = \"gone\"\ntype = \"file\"\npath = \"{}\"\n",
                absent.display()
            ),
            missing_path.as_str(),
        ),
        (
            format!(
                "[[sources]]\nname = \"ev\"\ntype = \"file\"\npath = \"{}\"\nactivity = true\nevents_path = \"{}\"\n",
                demo.display(),
                absent_events.display()
            ),
            missing_events.as_str(),
        ),
        (
            format!(
                "[[sources]]\nname = \"okta\"\ntype = \"okta\"\nurl = \"https://acme.okta.com\"\nclient_id = \"0oa1\"\nprivate_key_file = \"{}\"\n",
                bad_pem.display()
            ),
            bad_okta_key.as_str(),
        ),
        (
            format!(
                "[[sources]]\nname = \"gw\"\ntype = \"google\"\nadmin_email = \"admin@example.com\"\ncredentials_file = \"{}\"\n",
                bad_json.display()
            ),
            bad_google_key.as_str(),
        ),
        (
            format!(
                "[[sources]]\nname = \"okta\"\ntype = \"okta\"\nurl = \"https://acme.okta.com/api/v1\"\ntoken_file = \"{}\"\n",
                token.display()
            ),
            "sources[0] (okta).url: \"https://acme.okta.com/api/v1\" ends in /api/v1",
        ),
        (
            format!("[server]\nweb_config_file = \"{}\"\n", d.join("absent.yml").display()),
            "server.web_config_file",
        ),
        (
            web("hash.yml", "basic_auth_users:\n  prometheus: $2y$10$tooshort\n"),
            "basic_auth_users.prometheus: not a bcrypt hash",
        ),
        (
            web(
                "tls.yml",
                "tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n",
            ),
            "missing.crt",
        ),
        (
            web(
                "keys.yml",
                "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.crt\n",
            ),
            "key_file",
        ),
        (
            web("unknown.yml", "tls_server_config:\n  cert_filse: tls.crt\n"),
            "cert_filse",
        ),
        (
            "[policy.checks.\"mfa.nope\"]\nenabled = false\n".into(),
            "policy.checks.\"mfa.nope\": unknown check",
        ),
        (
            "[policy.checks.\"mfa.weak\"]\nseverity = \"urgent\"\n".into(),
            "unknown severity \"urgent\"",
        ),
        (
            "[[policy.exceptions]]\ncheck = \"mfa.missing\"\naccount = \"kiosk-*\"\nowner = \"it\"\nexpires = \"2027-01-01\"\n".into(),
            "policy.exceptions[0].reason: missing required key",
        ),
        (
            "[[policy.exceptions]]\ncheck = \"mfa.missing\"\naccount = \"kiosk-*\"\nreason = \"r\"\nowner = \"it\"\nexpires = \"soon\"\n".into(),
            "policy.exceptions[0].expires: invalid date",
        ),
        (
            "[server]\nexternal_url = \"ipe.example.com\"\n".into(),
            "server.external_url",
        ),
        (
            format!("[storage]\nstate_dir = \"{}\"\n", not_a_dir.display()),
            "storage.state_dir",
        ),
    ];
    for (i, (extra, needle)) in cases.iter().enumerate() {
        let f = demo_config(d, &format!("c{i}.toml"), extra);
        let (code, out, err) = run(&["check-config", "--config", f.to_str().unwrap()]);
        assert_eq!(code, 1, "{needle}: {out}{err}");
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    // And the good web config passes, as does --web.config.file pointing at it.
    let ok = web(
        "ok.yml",
        &format!("basic_auth_users:\n  prometheus: {good_hash}\ntls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"),
    );
    let f = demo_config(d, "ok.toml", &ok);
    let (code, out, err) = run(&["check-config", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let plain = demo_config(d, "plain.toml", "");
    let (code, _, err) = run(&[
        "check-config",
        "--config",
        plain.to_str().unwrap(),
        "--web.config.file",
        d.join("hash.yml").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("not a bcrypt hash"), "{err}");
}

#[test]
fn hash_password_makes_a_hash_the_web_config_accepts() {
    use std::io::Write as _;
    let mut child = bin()
        .args(["hash-password", "--cost", "4"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(bcrypt::verify("correct horse", &hash).unwrap(), "{hash}");
    assert!(!bcrypt::verify("correct horse\n", &hash).unwrap());
}

#[test]
fn every_flag_has_help_and_belongs_to_its_subcommands() {
    for sub in [
        vec![],
        vec!["serve"],
        vec!["collect"],
        vec!["check-config"],
        vec!["generate-demo"],
        vec!["hash-password"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let (code, out, _) = run(&args);
        assert_eq!(code, 0, "{sub:?}");
        for line in out.lines().filter(|l| l.trim_start().starts_with('-')) {
            // "  -c, --config <FILE>   Configuration file …": the help follows two spaces.
            let l = line.trim_start();
            let help = l.find("  ").map(|i| l[i..].trim()).unwrap_or("");
            assert!(help.len() > 3, "{sub:?}: flag without help text: {line:?}");
        }
    }
    // Flags a subcommand does not use are refused there.
    for args in [
        vec!["generate-demo", "--config", "x.toml"],
        vec!["generate-demo", "--listen", ":1"],
        vec!["hash-password", "--log-level", "debug"],
        vec!["check-config", "--log-format", "json"],
        vec!["collect", "--listen", ":1"],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, 2, "{args:?} accepted");
        assert!(err.contains("unexpected argument"), "{args:?}: {err}");
    }
    // exporter-toolkit's spelling of the listen flag.
    let (_, out, _) = run(&["--help"]);
    assert!(out.contains("--web.listen-address") && out.contains("--web.config.file"));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn sources_of(port: u16) -> Option<Vec<String>> {
    let v: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/sources"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        v["sources"]
            .as_array()?
            .iter()
            .map(|s| s["name"].as_str().unwrap_or("").to_string())
            .collect(),
    )
}

#[test]
fn sighup_and_post_reload_apply_a_good_config_and_keep_the_old_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let f = demo_config(dir.path(), "c.toml", "");
    let err_log = dir.path().join("stderr.log");
    let mut child = bin()
        .args([
            "--config",
            f.to_str().unwrap(),
            "--web.listen-address",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let wait_for = |want: Vec<&str>| {
        rt.block_on(async {
            for _ in 0..400 {
                if sources_of(port)
                    .await
                    .as_deref()
                    .map(|v| v.iter().map(String::as_str).collect::<Vec<_>>())
                    == Some(want.clone())
                {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        })
    };
    let ok_start = wait_for(vec!["demo"]);

    // A second source, then SIGHUP.
    let demo = std::fs::canonicalize("examples/demo-identities.json").unwrap();
    let two = format!(
        "\n[[sources]]\nname = \"second\"\ntype = \"file\"\npath = \"{}\"\n",
        demo.display()
    );
    let base = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("{base}{two}")).unwrap();
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let ok_reload = wait_for(vec!["demo", "second"]);

    // A broken file: SIGHUP and POST /-/reload both keep the running configuration.
    std::fs::write(
        &f,
        format!("{base}{two}\n[policy]\ndormant_after_days = \"x\"\n"),
    )
    .unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let post = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/-/reload"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    let still = wait_for(vec!["demo", "second"]);
    // And a good file through POST /-/reload.
    std::fs::write(&f, &base).unwrap();
    let post_ok = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/-/reload"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let back = wait_for(vec!["demo"]);
    let poll = rt.block_on(async {
        let c = reqwest::Client::new();
        let ok = c
            .post(format!("http://127.0.0.1:{port}/-/poll/demo"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let missing = c
            .post(format!("http://127.0.0.1:{port}/-/poll/nope"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (ok, missing)
    });
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let log = std::fs::read_to_string(&err_log).unwrap();
    assert!(ok_start, "never served the first configuration: {log}");
    assert!(ok_reload, "SIGHUP did not apply the new source: {log}");
    assert_eq!(post.0, 400, "{}", post.1);
    assert!(post.1.contains("policy.dormant_after_days"), "{}", post.1);
    assert!(still, "a bad configuration replaced the running one");
    assert!(log.contains("configuration reload failed"), "{log}");
    assert_eq!(post_ok, 200);
    assert!(back, "POST /-/reload did not apply the configuration");
    assert_eq!(poll, (202, 404));
    assert!(
        !log.contains('\u{1b}'),
        "ANSI colours in a log that is not a terminal"
    );
}

#[test]
fn a_port_in_use_is_reported_once_before_any_poll() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let f = demo_config(dir.path(), "c.toml", "");
    let (code, _, err) = run(&[
        "--config",
        f.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(code, 1);
    assert_eq!(err.matches("cannot listen on").count(), 1, "{err}");
    assert!(
        !err.contains("poll succeeded"),
        "polled before binding: {err}"
    );
}

#[test]
fn source_and_ipe_sources_run_a_subset_and_refuse_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("shards.toml");
    let demo = format!(
        "{}/examples/demo-identities.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::write(
        &f,
        format!(
            "[[sources]]\nname = \"a\"\ntype = \"file\"\npath = \"{demo}\"\n[[sources]]\nname = \"b\"\ntype = \"file\"\npath = \"{demo}\"\n[[sources]]\nname = \"c\"\ntype = \"file\"\npath = \"/nonexistent/c.json\"\n"
        ),
    )
    .unwrap();
    let f = f.to_str().unwrap();
    let up = |out: &str, s: &str| {
        out.contains(&format!(
            "identity_posture_source_up{{provider=\"file\",source=\"{s}\"}} 1"
        ))
    };
    let named = |out: &str, s: &str| out.contains(&format!("source=\"{s}\""));

    // Every source: c fails, so collect fails.
    let (code, out, _) = run(&["collect", "--config", f]);
    assert_eq!(code, 1);
    assert!(up(&out, "a") && up(&out, "b"));

    // --source, repeatable: only those run (c is left out, so collect succeeds).
    let (code, out, err) = run(&["collect", "--config", f, "--source", "a", "--source", "b"]);
    assert_eq!(code, 0, "{err}");
    assert!(up(&out, "a") && up(&out, "b") && !named(&out, "c"), "{out}");

    // IPE_SOURCES, comma-separated (spaces and empty items tolerated).
    let out = bin()
        .args(["collect", "--config", f])
        .env("IPE_SOURCES", "b, ,")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        up(&text, "b") && !named(&text, "a") && !named(&text, "c"),
        "{text}"
    );

    // check-config validates the shard.
    let (code, out, _) = run(&["check-config", "--config", f, "--source", "a"]);
    assert_eq!(code, 0);
    assert!(out.contains("1 source(s): a (file)"), "{out}");

    // An unknown name is an error that lists the configured sources, in every command.
    for cmd in ["collect", "check-config", "serve"] {
        let (code, _, err) = run(&[cmd, "--config", f, "--source", "a", "--source", "nope"]);
        assert_ne!(code, 0, "{cmd}");
        assert!(err.contains("\"nope\""), "{cmd}: {err}");
        assert!(err.contains("configured: a, b, c"), "{cmd}: {err}");
    }
    let out = bin()
        .args(["check-config", "--config", f])
        .env("IPE_SOURCES", "typo")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("configured: a, b, c"));
}
