//! Property tests: a bounded fuzzing harness for every parser here that reads outside
//! input (file-source JSON and NDJSON, the TOML configuration, the exporter-toolkit web
//! config, and the HTTP server's request handling). Each must answer with a value or an
//! error, never panic, and allocate in proportion to its input (checked with a per-thread
//! counting allocator). `cargo test` runs 64 cases per property; a longer campaign:
//!     PROPTEST_CASES=20000 cargo test --release --test fuzz
//! Provider wire types (Okta, Entra, Google, GitHub, SSPM pages and their map functions, the
//! AWS credential report CSV) get random bytes, byte- and value-mutated valid pages.

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

/// `peak` bytes allocated while reading `input_len` bytes stay within [`budget`].
fn assert_within_budget(peak: usize, input_len: usize) {
    assert!(
        peak <= budget(input_len),
        "{peak} bytes allocated for {input_len} bytes of input"
    );
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
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8)
        .prop_map(move |edits| byte_mutations(&base, edits))
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
    assert_within_budget(peak, bytes.len());
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

// ---------------------------------------------------------------------------------------
// Provider wire types: each provider's response decoding and mapping, and the AWS
// credential report's CSV parser, fed random bytes, byte-mutated and value-mutated valid
// pages. Errors are fine; a panic is not.
// ---------------------------------------------------------------------------------------

mod wire {
    use std::collections::{HashMap, HashSet};

    use identity_posture_exporter::model::Known;
    use identity_posture_exporter::sources::{entra, github, google, okta, sspm};
    use serde_json::Value;
    use time::macros::datetime;

    pub const OKTA_USERS: &str = r#"[{"id":"00u1","status":"ACTIVE","created":"2024-01-01T00:00:00.000Z","lastLogin":"2026-01-01T00:00:00.000Z","passwordChanged":null,"profile":{"login":"a@x.com","email":"a@x.com","firstName":"A","lastName":"B","userType":"service","terminated":"true"},"credentials":{"provider":{"type":"OKTA","name":"OKTA"}}},{"id":"00u2","status":"DEPROVISIONED","profile":{"login":"b@x.com"}}]"#;
    pub const OKTA_FACTORS: &str = r#"[{"factorType":"webauthn","status":"ACTIVE"},{"factorType":"sms","status":"PENDING_ACTIVATION"},{"factorType":"token:software:totp","status":"ACTIVE"}]"#;
    pub const ENTRA_USERS: &str = r#"{"value":[{"id":"11111111-1111-1111-1111-111111111111","userPrincipalName":"a@x.onmicrosoft.com","displayName":"A","accountEnabled":true,"userType":"Guest","createdDateTime":"2024-01-01T00:00:00Z","lastPasswordChangeDateTime":"2025-01-01T00:00:00Z","signInActivity":{"lastSignInDateTime":"2026-01-01T00:00:00Z","lastNonInteractiveSignInDateTime":null,"lastSuccessfulSignInDateTime":"2026-01-02T00:00:00Z"},"employeeLeaveDateTime":null,"onPremisesSyncEnabled":false}],"@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=X"}"#;
    pub const ENTRA_REGISTRATION: &str = r#"{"value":[{"id":"1","userPrincipalName":"a@x","isMfaRegistered":true,"isMfaCapable":true,"methodsRegistered":["microsoftAuthenticatorPush","fido2","sms","mobilePhone"]}]}"#;
    pub const ENTRA_APPS: &str = r#"{"value":[{"id":"a1","appId":"b1","displayName":"App","createdDateTime":"2024-01-01T00:00:00Z","passwordCredentials":[{"keyId":"k1","displayName":"s","startDateTime":"2025-01-01T00:00:00Z","endDateTime":"2027-01-01T00:00:00Z"}],"keyCredentials":[{"keyId":"k2","startDateTime":"2025-01-01T00:00:00Z","endDateTime":"2026-01-01T00:00:00Z","type":"AsymmetricX509Cert","usage":"Verify"}]}]}"#;
    pub const GOOGLE_USERS: &str = r#"{"users":[{"id":"101","primaryEmail":"a@x.com","name":{"fullName":"A B","givenName":"A","familyName":"B"},"isAdmin":true,"isDelegatedAdmin":false,"isEnrolledIn2Sv":true,"isEnforcedIn2Sv":false,"lastLoginTime":"2026-01-01T00:00:00.000Z","creationTime":"2024-01-01T00:00:00.000Z","suspended":false,"archived":false,"orgUnitPath":"/","isGuestUser":false},{"id":"102","primaryEmail":"b@x.com","lastLoginTime":"1970-01-01T00:00:00.000Z","deletionTime":null}],"nextPageToken":"t"}"#;
    pub const GOOGLE_ROLES: &str = r#"{"items":[{"roleId":"1","roleName":"_SEED_ADMIN_ROLE","isSuperAdminRole":true,"isSystemRole":true}],"nextPageToken":null}"#;
    pub const GOOGLE_MEMBERS: &str =
        r#"{"members":[{"id":"101","email":"a@x.com","type":"USER","status":"ACTIVE"}]}"#;
    pub const GITHUB_MEMBERS: &str = r#"[{"login":"octo","id":1,"type":"User","site_admin":false,"name":"Octo","email":null},{"login":"bot","id":"2","type":"Bot"}]"#;
    pub const GITHUB_INVITATIONS: &str = r#"[{"id":7,"login":null,"email":"c@x.com","role":"direct_member","created_at":"2026-01-01T00:00:00Z","failed_at":null}]"#;
    pub const GITHUB_AUTHORIZATIONS: &str = r#"[{"login":"octo","credential_id":9,"credential_type":"personal access token","credential_authorized_at":"2025-01-01T00:00:00Z","credential_accessed_at":"2026-01-01T00:00:00Z","authorized_credential_expires_at":null}]"#;
    pub const GITHUB_TOKENS: &str = r#"[{"id":3,"owner":{"login":"octo","id":1},"token_id":4,"access_granted_at":"2025-01-01T00:00:00Z","token_expired":false,"token_expires_at":null,"token_last_used_at":"2026-01-01T00:00:00Z"}]"#;
    pub const GITHUB_AUDIT: &str = r#"[{"@timestamp":1767225600000,"created_at":1767225600000,"actor":"octo","_document_id":"d1","action":"user.login"}]"#;
    pub const SSPM_ACCOUNTS: &str = r#"{"total":2,"items":[{"id":"s1","saasInstanceId":"inst","appType":"github","accountType":"user","accountName":"octo","email":"o@x.com","isLocal":true,"isOrphaned":false,"isElevated":true,"roles":"admin, member","lastLoginTime":"2026-01-01T00:00:00Z","isNonHuman":false,"createdTime":1700000000,"lastCredentialsRotated":null,"credentialsExpiresAt":"2027-01-01"},"not an object"]}"#;
    pub const SSPM_MFA: &str = r#"{"total":1,"items":[{"id":"m1","userId":"u1","idpId":"okta","idpType":"okta","mfaStrength":"strong","admin":true,"timestamp":"2026-01-01T00:00:00Z","mfaFactors":"push, sms","email":"a@x.com","fullName":"A"}]}"#;
    pub const AWS_REPORT: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n<root_account>,arn:aws:iam::123456789012:root,2020-01-01T00:00:00+00:00,not_supported,2026-01-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\nalice,arn:aws:iam::123456789012:user/alice,2021-01-01T00:00:00+00:00,true,no_information,2024-01-01T00:00:00+00:00,N/A,false,true,2023-01-01T00:00:00+00:00,2026-01-01T00:00:00+00:00,us-east-1,iam,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n";

    /// Decodes `bytes` as every provider's pages and maps what decodes; never panics.
    pub fn decode_all(bytes: &[u8]) {
        okta_(bytes);
        entra_(bytes);
        google_(bytes);
        github_(bytes);
        sspm_(bytes);
        let _ = identity_posture_exporter::sources::aws_iam::report::parse(bytes);
    }

    fn okta_(bytes: &[u8]) {
        use okta::wire::*;
        if let Ok(users) = serde_json::from_slice::<Vec<OktaUser>>(bytes) {
            for u in users {
                let _ = okta::map::map_user(u, Some("terminated"));
            }
        }
        if let Ok(f) = serde_json::from_slice::<Vec<OktaFactor>>(bytes) {
            let _ = okta::map::map_factors(f);
        }
        let _ = serde_json::from_slice::<Vec<OktaRole>>(bytes);
        let _ = serde_json::from_slice::<Vec<OktaGroup>>(bytes);
        let _ = serde_json::from_slice::<Vec<OktaApiToken>>(bytes);
        let _ = serde_json::from_slice::<Vec<OktaPolicy>>(bytes);
        let _ = serde_json::from_slice::<Vec<OktaRule>>(bytes);
        let _ = serde_json::from_slice::<Vec<LogEvent>>(bytes);
        let _ = serde_json::from_slice::<Assignees>(bytes);
    }

    fn entra_(bytes: &[u8]) {
        use entra::map::*;
        use entra::wire::*;
        if let Ok(p) = serde_json::from_slice::<Page<User>>(bytes) {
            for u in &p.value {
                let _ = last_login(u, true);
                let _ = last_login(u, false);
                let _ = is_guest(u);
                let _ = ts(u.created_date_time.as_deref());
                let _ = guid_key(&u.id);
            }
        }
        if let Ok(p) = serde_json::from_slice::<Page<UserRegistrationDetails>>(bytes) {
            for r in &p.value {
                let methods = r.methods_registered.clone().unwrap_or_default();
                let bits = factor_bits(&methods);
                let _ = mfa_from_bits(bits, r.is_mfa_registered);
            }
        }
        if let Ok(p) = serde_json::from_slice::<Page<Application>>(bytes) {
            for a in &p.value {
                a.password_credentials.iter().for_each(|c| {
                    let _ = secret_credential(c);
                });
                a.key_credentials.iter().for_each(|c| {
                    let _ = key_credential(c);
                });
            }
        }
        let _ = serde_json::from_slice::<Page<ServicePrincipal>>(bytes);
        let _ = serde_json::from_slice::<Page<RoleAssignment>>(bytes);
        let _ = serde_json::from_slice::<Page<RoleDefinition>>(bytes);
        let _ = serde_json::from_slice::<Page<ConditionalAccessPolicy>>(bytes);
        let _ = serde_json::from_slice::<SecurityDefaults>(bytes);
    }

    fn google_(bytes: &[u8]) {
        use google::map::*;
        use google::wire::*;
        if let Ok(p) = serde_json::from_slice::<UsersPage>(bytes) {
            let held: Vec<std::sync::Arc<str>> = vec!["_SEED_ADMIN_ROLE".into()];
            for complete in [true, false] {
                let seen = SeenFactors {
                    kinds: vec![],
                    complete,
                };
                for u in &p.users.items {
                    let _ = status(u);
                    let _ = last_login(u);
                    let _ = mfa(u, &seen);
                    for roles in [
                        RoleSource::Flags,
                        RoleSource::Assignments {
                            held: &held,
                            groups_known: complete,
                        },
                    ] {
                        let cx = UserContext {
                            seen: SeenFactors {
                                kinds: vec![],
                                complete,
                            },
                            roles,
                            super_admin: "_SEED_ADMIN_ROLE",
                        };
                        let _ = map_user(u, &cx);
                    }
                }
            }
        }
        let _ = serde_json::from_slice::<ItemsPage<Role>>(bytes);
        let _ = serde_json::from_slice::<ItemsPage<RoleAssignment>>(bytes);
        let _ = serde_json::from_slice::<MembersPage>(bytes);
        let _ = serde_json::from_slice::<ItemsPage<Activity>>(bytes);
    }

    fn github_(bytes: &[u8]) {
        use github::map::*;
        use github::wire::*;
        let Ok(page) = serde_json::from_slice::<Vec<Value>>(bytes) else {
            let _ = serde_json::from_slice::<Organization>(bytes);
            let _ = serde_json::from_slice::<InstallationToken>(bytes);
            return;
        };
        let (users, _) = items::<SimpleUser>(page.clone());
        let owners: HashSet<String> = ["1".to_string()].into();
        let two_factor = TwoFactor {
            disabled: Some(["2".to_string()].into()),
            insecure: None,
        };
        let credentials: HashMap<String, Vec<_>> = HashMap::new();
        let activity = |_: &str| Known::Unknown;
        for (i, u) in users.into_iter().enumerate() {
            let ctx = Context {
                owners: (i % 2 == 0).then_some(&owners),
                two_factor: &two_factor,
                mfa_enforced: (i % 3 == 0).then_some(true),
                credentials: (i % 2 == 1).then_some(&credentials),
                activity: &activity,
            };
            let pop = if i % 2 == 0 {
                Population::Member
            } else {
                Population::OutsideCollaborator
            };
            let _ = map_user(u, pop, &ctx);
        }
        for i in items::<Invitation>(page.clone()).0 {
            let _ = map_invitation(i);
        }
        for c in items::<CredentialAuthorization>(page.clone()).0 {
            let _ = map_authorization(&c);
            let _ = authorized_kind(c.credential_type.as_deref().unwrap_or(""));
        }
        for t in items::<FineGrainedToken>(page.clone()).0 {
            let _ = map_fine_grained(&t);
        }
        for e in items::<AuditEvent>(page).0 {
            let _ = event_time(&e);
        }
    }

    fn sspm_(bytes: &[u8]) {
        use sspm::map::*;
        use sspm::wire::*;
        let Ok(page) = serde_json::from_slice::<Page>(bytes) else {
            return;
        };
        let mut tally = Tally::default();
        for v in page.items.unwrap_or_default() {
            if let Ok(a) = serde_json::from_value::<SaasAccount>(v.clone()) {
                for reports_logins in [true, false] {
                    let ctx = InstanceCtx {
                        instance_id: "inst",
                        instance_name: Some("GitHub"),
                        app_type: a.app_type.as_deref(),
                        reports_logins,
                        now: datetime!(2026-11-28 12:00 UTC),
                    };
                    let _ = has_login_time(&a);
                    let _ = account_is_non_human(&a);
                    let _ = map_account(&a, &ctx, &mut tally);
                }
                let _ = app_label(a.app_type.as_deref());
            }
            if let Ok(m) = serde_json::from_value::<MfaActivity>(v) {
                let _ = mfa_of(&m, &mut tally);
                let _ = read_factor(m.mfa_factors.as_deref().unwrap_or(""));
                let _ = read_strength(m.mfa_strength.as_deref().unwrap_or(""));
                if let Some(s) = m.email.as_deref() {
                    let _ = parse_instant(s);
                    let _ = split_list(s);
                }
            }
        }
    }

    /// `seed` with values replaced or removed at random places (`edits`: where, what, how).
    pub fn mutate_value(seed: &str, edits: Vec<(proptest::sample::Index, Value, bool)>) -> Vec<u8> {
        let mut v: Value = serde_json::from_str(seed).unwrap();
        for (at, new, remove) in edits {
            let mut paths = Vec::new();
            pointers(&v, String::new(), &mut paths);
            let p = &paths[at.index(paths.len())];
            if remove && !p.is_empty() {
                let (parent, last) = p.rsplit_once('/').unwrap();
                let last = last.replace("~1", "/").replace("~0", "~");
                match v.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&last);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = last.parse::<usize>() {
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            } else if let Some(slot) = v.pointer_mut(p) {
                *slot = new;
            }
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
        out.push(here.clone());
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    pointers(c, format!("{here}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    pointers(c, format!("{here}/{i}"), out);
                }
            }
            _ => {}
        }
    }
}

const WIRE_SEEDS: [&str; 17] = [
    wire::OKTA_USERS,
    wire::OKTA_FACTORS,
    wire::ENTRA_USERS,
    wire::ENTRA_REGISTRATION,
    wire::ENTRA_APPS,
    wire::GOOGLE_USERS,
    wire::GOOGLE_ROLES,
    wire::GOOGLE_MEMBERS,
    wire::GITHUB_MEMBERS,
    wire::GITHUB_INVITATIONS,
    wire::GITHUB_AUTHORIZATIONS,
    wire::GITHUB_TOKENS,
    wire::GITHUB_AUDIT,
    wire::SSPM_ACCOUNTS,
    wire::SSPM_MFA,
    wire::AWS_REPORT,
    "{}",
];

/// Byte edits (overwrite, insert, remove) of `base`.
fn byte_mutations(base: &[u8], edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    let mut b = base.to_vec();
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
}

fn decode_within_budget(bytes: &[u8]) {
    let (_, peak) = peak_of(|| wire::decode_all(bytes));
    assert_within_budget(peak, bytes.len());
}

proptest! {
    #![proptest_config(config_cases())]

    #[test]
    fn provider_wire_types_survive_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        decode_within_budget(&bytes);
    }

    #[test]
    fn provider_wire_types_survive_byte_mutated_pages(
        seed in prop::sample::select(WIRE_SEEDS.to_vec()),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..12),
    ) {
        decode_within_budget(&byte_mutations(seed.as_bytes(), edits));
    }

    #[test]
    fn provider_wire_types_survive_value_mutated_pages(
        seed in prop::sample::select(WIRE_SEEDS[..15].to_vec()),
        edits in prop::collection::vec((any::<prop::sample::Index>(), json_value(), any::<bool>()), 1..6),
    ) {
        decode_within_budget(&wire::mutate_value(seed, edits));
    }

    #[test]
    fn provider_wire_types_survive_json_shaped_pages(v in json_value()) {
        decode_within_budget(v.to_string().as_bytes());
        decode_within_budget(serde_json::json!({"value": [&v], "users": [&v], "items": [&v], "members": [&v], "total": 1}).to_string().as_bytes());
        decode_within_budget(serde_json::json!([&v, &v]).to_string().as_bytes());
    }

    #[test]
    fn aws_credential_report_survives_mutated_csv(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..16),
        cells in prop::collection::vec("[a-zA-Z0-9:+/_<>,.\" -]{0,40}", 0..24),
    ) {
        let mutated = byte_mutations(wire::AWS_REPORT.as_bytes(), edits);
        let _ = identity_posture_exporter::sources::aws_iam::report::parse(&mutated);
        let header = wire::AWS_REPORT.lines().next().unwrap();
        let row = format!("{header}\n{}\n", cells.join(","));
        let _ = identity_posture_exporter::sources::aws_iam::report::parse(row.as_bytes());
    }
}
