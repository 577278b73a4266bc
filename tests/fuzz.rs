//! Property tests: a bounded fuzzing harness for every parser here that reads outside
//! input (file-source JSON and NDJSON, the TOML configuration, the exporter-toolkit web
//! config, and the HTTP server's request handling). Each must answer with a value or an
//! error, never panic, and allocate in proportion to its input (checked with a per-thread
//! counting allocator). `cargo test` runs 64 cases per property; a longer campaign:
//!     PROPTEST_CASES=20000 cargo test --release --test fuzz
//! (provider wire types get their own properties with the source framework).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufReader, Cursor};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use identity_posture_exporter::poller::{poll_and_publish, Clock};
use identity_posture_exporter::server;
use identity_posture_exporter::server::auth::WebConfig;
use identity_posture_exporter::sources::{self, file, Deps, Source};
use identity_posture_exporter::state::AppState;
use proptest::prelude::*;
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------
// Allocation accounting: bytes live on this thread now, and the most since the last reset.
// ---------------------------------------------------------------------------------------

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get() + delta;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note(-(l.size() as isize));
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        note(new as isize - l.size() as isize);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns the most bytes it had allocated at once (on this thread).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(start));
    let out = f();
    let peak = PEAK.with(|p| p.get());
    (out, (peak - start).max(0) as usize)
}

/// What a parser may allocate for `input_len` bytes: buffers plus a generous multiple of the
/// input (parsed strings, vectors, error messages), never more.
fn budget(input_len: usize) -> usize {
    (1 << 20) + 64 * input_len
}

fn config_cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generators.
// ---------------------------------------------------------------------------------------

/// JSON values that look like (parts of) accounts: known keys, wrong types, deep nesting.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z@._-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("2026-01-01T00:00:00Z"),
            Just("9999-12-31T23:59:59Z"),
            Just("0000-01-01T00:00:00Z"),
            Just("2026-02-30T00:00:00Z"),
            Just("active"),
            Just("human"),
            Just("service"),
            Just("webauthn"),
            Just("password"),
            Just(""),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "id",
            "login",
            "display_name",
            "account_type",
            "status",
            "created",
            "last_login",
            "terminated",
            "groups",
            "attributes",
            "mfa",
            "factors",
            "type",
            "enforced",
            "credentials",
            "last_rotated",
            "expires",
            "last_used",
            "roles",
            "name",
            "tenant",
            "accounts",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,8}",
    ]
}

/// A valid account line, then some bytes changed, inserted or removed.
fn mutated_account() -> impl Strategy<Value = Vec<u8>> {
    let base = br#"{"id":"u1","login":"a@x","display_name":"A","account_type":"human","status":"active","created":"2024-01-01T00:00:00Z","last_login":null,"groups":["g"],"attributes":{"k":"v"},"mfa":{"factors":[{"type":"totp","status":"active"}],"enforced":true},"credentials":[{"type":"api_key","id":"k","last_rotated":"2025-01-01T00:00:00Z","expires":null,"last_used":null}],"roles":[{"name":"SUPER_ADMIN","last_used":null}]}"#.to_vec();
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8).prop_map(
        move |edits| {
            let mut b = base.clone();
            for (at, byte, op) in edits {
                let i = at.index(b.len() + 1);
                match op {
                    0 if i < b.len() => b[i] = byte,
                    1 => b.insert(i, byte),
                    _ if i < b.len() => {
                        b.remove(i);
                    }
                    _ => {}
                }
            }
            b
        },
    )
}

fn parse_both(bytes: &[u8]) {
    let path = Path::new("fuzz.json");
    let (_, peak) = peak_of(|| {
        let mut n = 0usize;
        let _ = file::read_ndjson(BufReader::new(Cursor::new(bytes)), path, &mut |_| {
            n += 1;
            true
        });
        let _ = file::read_object(BufReader::new(Cursor::new(bytes)), path, &mut |_| {
            n += 1;
            true
        });
        n
    });
    assert!(
        peak <= budget(bytes.len()),
        "{peak} bytes allocated for {} bytes of input",
        bytes.len()
    );
}

proptest! {
    #![proptest_config(config_cases())]

    #[test]
    fn file_source_survives_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        parse_both(&bytes);
    }

    #[test]
    fn file_source_survives_account_shaped_json(v in prop::collection::vec(json_value(), 0..8)) {
        let ndjson: String = v.iter().map(|x| format!("{x}\n")).collect();
        parse_both(ndjson.as_bytes());
        let object = serde_json::json!({ "accounts": v }).to_string();
        parse_both(object.as_bytes());
    }

    #[test]
    fn file_source_survives_mutated_accounts(line in mutated_account(), copies in 1usize..4) {
        let mut nd = Vec::new();
        for _ in 0..copies {
            nd.extend_from_slice(&line);
            nd.push(b'\n');
        }
        parse_both(&nd);
        let mut obj = b"{\"accounts\":[".to_vec();
        obj.extend_from_slice(&line);
        obj.extend_from_slice(b"]}");
        parse_both(&obj);
    }

    #[test]
    fn config_loader_survives_random_text(text in "\\PC{0,400}") {
        let (_, peak) = peak_of(|| sources::config_from_toml(&text).map(|_| ()));
        prop_assert!(peak <= budget(text.len()), "{peak}");
    }

    #[test]
    fn config_loader_survives_config_shaped_toml(lines in prop::collection::vec(toml_line(), 0..24)) {
        let text = lines.concat();
        let (r, peak) = peak_of(|| sources::config_from_toml(&text).map(|_| ()));
        prop_assert!(peak <= budget(text.len()), "{peak}");
        if let Err(e) = r {
            // Errors name keys, never echo arbitrary values back.
            for p in &e.problems {
                prop_assert!(!p.contains("s3cr3t-value"), "{p}");
            }
        }
    }

    #[test]
    fn web_config_survives_random_yaml(text in web_yaml()) {
        let (_, peak) = peak_of(|| WebConfig::from_yaml_str(&text, Path::new("/nonexistent/web.yml")).map(|_| ()));
        prop_assert!(peak <= budget(text.len()), "{peak}");
    }

    #[test]
    fn the_router_answers_any_request_without_a_server_error(req in request()) {
        let (method, uri, headers) = req;
        let mut b = Request::builder().method(method.as_str()).uri(uri.as_str());
        for (k, v) in &headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let Ok(r) = b.body(Body::empty()) else {
            return Ok(()); // not a request hyper would hand over
        };
        let app = router().clone();
        let status = runtime().block_on(async {
            let resp = app.oneshot(r).await.unwrap();
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status
        });
        prop_assert!(!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE, "{method} {uri} {headers:?} → {status}");
    }
}

fn toml_line() -> impl Strategy<Value = String> {
    let section = prop::sample::select(vec![
        "[server]\n",
        "[policy]\n",
        "[[sources]]\n",
        "[[policy.privilege_rules]]\n",
        "[sources.policy]\n",
        "[bogus]\n",
    ])
    .prop_map(str::to_string);
    let k = prop::sample::select(vec![
        "listen",
        "name",
        "type",
        "path",
        "interval",
        "timeout",
        "url",
        "token_env",
        "max_connections",
        "header_read_timeout",
        "idle_timeout",
        "dormant_after_days",
        "exclude_accounts",
        "weak_mfa_factors",
        "role",
        "allow_groups",
        "tenant_id",
        "client_id",
        "max_rate_limit_share",
        "concurrency",
        "api_token_env",
        "time_anchor",
    ]);
    let v = prop_oneof![
        "[a-z0-9:./-]{0,16}".prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1e308".to_string()),
        Just("[\"*\", \"[\", \"svc-*\"]".to_string()),
        Just("{ dormant_after_days = -1 }".to_string()),
        prop::sample::select(vec![
            "\"file\"",
            "\"okta\"",
            "\"entra\"",
            "\"sspm\"",
            "\"google\"",
            "\"1ns\"",
            "\"99999999999h\"",
            "\"127.0.0.1:0\"",
            "\":99999\""
        ])
        .prop_map(str::to_string),
    ];
    // A misplaced secret where it does not belong (wrong type, unknown key, duplicate):
    // the error names the key, never the value. Keys that take free text (listen, url …)
    // do quote what they could not use, by design.
    let misplaced = prop::sample::select(vec![
        "dormant_after_days",
        "max_connections",
        "concurrency",
        "weak_mfa_factors",
        "policy",
        "bogus_key",
        "token",
        "client_secret",
        "privilege_rules",
    ])
    .prop_map(|k| format!("{k} = \"s3cr3t-value\"\n"));
    prop_oneof![
        1 => section,
        4 => (k, v).prop_map(|(k, v)| format!("{k} = {v}\n")),
        1 => misplaced,
    ]
}

fn web_yaml() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "basic_auth_users:\n  prom: $2b$04$abcdefghijklmnopqrstuu5Wc3r7KkN6HqSWl1Bc.4cP9TnN1OB6W\n",
        "basic_auth_users:\n  prom: plaintext\n",
        "basic_auth_users: []\n",
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        "http_server_config:\n  http2: maybe\n",
        "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n",
        "tls_server_config: {}\n",
        "a: &a [1,2]\nb: [*a, *a, *a]\n",
        "--- !!binary AAAA\n",
        "unknown_key: 1\n",
        "? [a]\n: b\n",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        prop::collection::vec(known, 0..4).prop_map(|v| v.concat()),
        "\\PC{0,200}",
    ]
}

fn request() -> impl Strategy<Value = (String, String, Vec<(String, String)>)> {
    let method = prop::sample::select(vec!["GET", "HEAD", "POST", "OPTIONS", "DELETE", "BREW"])
        .prop_map(str::to_string);
    let path = prop_oneof![
        prop::sample::select(vec![
            "/",
            "/metrics",
            "/-/healthy",
            "/-/ready",
            "/api/v1/sources",
            "/api/v1/summary",
            "/api/v1/findings",
            "/api/v1/accounts/demo/00u00001000",
            "/api/v1/accounts/demo/%ff",
            "/api/v1/accounts/%2e%2e/x",
            "//metrics",
            "/api/v1/../metrics",
        ])
        .prop_map(str::to_string),
        "(/[a-zA-Z0-9%._~-]{0,12}){0,5}",
    ];
    let qkey = prop_oneof![
        prop::sample::select(vec![
            "source",
            "check",
            "severity",
            "account_type",
            "excluded",
            "format",
            "limit",
            "cursor",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,6}",
    ];
    let qval = prop_oneof![
        prop::sample::select(vec![
            "csv",
            "json",
            "0",
            "1",
            "-1",
            "99999999999999999999999",
            "true",
            "maybe",
            "demo",
            "mfa.missing",
            "critical",
            "human",
            "eyJzb3VyY2UiOiJ6In0",
            "!!",
            "%00",
            "%ff",
        ])
        .prop_map(str::to_string),
        "[a-zA-Z0-9%+=._-]{0,24}",
    ];
    let query = prop::collection::vec((qkey, qval), 0..5).prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    });
    let hname = prop_oneof![
        prop::sample::select(vec![
            "authorization",
            "accept",
            "accept-encoding",
            "content-length",
            "content-type",
            "host",
            "x-forwarded-for",
            "range",
            "if-none-match",
        ])
        .prop_map(str::to_string),
        "[a-z-]{1,12}",
    ];
    let hval = prop_oneof![
        prop::sample::select(vec![
            "Bearer x",
            "bearer",
            "Basic !!!!",
            "Basic cHJvbTpwdw==",
            "BASIC Og==",
            "Digest a=b",
            "gzip, br",
            "*/*",
            "text/csv",
            "-1",
            "18446744073709551616",
            "bytes=0-0",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,40}",
    ];
    let headers = prop::collection::vec((hname, hval), 0..6);
    (method, path, query, headers).prop_map(|(m, p, q, h)| {
        let uri = if q.is_empty() { p } else { format!("{p}?{q}") };
        (m, uri, h)
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// The real router over the polled demo, listening on loopback (so the API answers).
fn router() -> &'static axum::Router {
    static R: OnceLock<axum::Router> = OnceLock::new();
    R.get_or_init(|| {
        runtime().block_on(async {
            let cfg = sources::load_config(Path::new("examples/demo.toml")).unwrap();
            let state = Arc::new(AppState::new(&cfg.sources));
            let clock: Clock = Arc::new(|| time::macros::datetime!(2026-11-28 00:00 UTC));
            let src = Source::build(&cfg.sources[0], &Deps::default()).unwrap();
            poll_and_publish(&cfg.sources[0], &src, &state.sources[0], &state, &clock)
                .await
                .unwrap();
            server::app(state, &cfg.server).unwrap()
        })
    })
}

#[test]
fn yaml_alias_bombs_are_refused_not_expanded() {
    let mut doc = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 1..10 {
        let p = i - 1;
        doc.push_str(&format!(
            "a{i}: &a{i} [*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p},*a{p}]\n"
        ));
    }
    doc.push_str("basic_auth_users: *a9\n");
    let (r, peak) = peak_of(|| WebConfig::from_yaml_str(&doc, Path::new("web.yml")).map(|_| ()));
    assert!(r.is_err());
    assert!(
        peak <= budget(doc.len()),
        "{peak} bytes for a {} byte document",
        doc.len()
    );
}

#[test]
fn an_endless_ndjson_line_stops_at_the_line_cap() {
    // 20 MiB without a newline: an error once the 16 MiB line cap is passed, not 20 MiB+.
    let big = vec![b' '; 20 << 20];
    let (r, peak) = peak_of(|| {
        file::read_ndjson(
            BufReader::new(Cursor::new(&big[..])),
            Path::new("x.ndjson"),
            &mut |_| true,
        )
        .map(|_| ())
    });
    assert!(r.unwrap_err().to_string().contains("longer than 16 MiB"));
    assert!(peak < (40 << 20), "{peak}");
}
