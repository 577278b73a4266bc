//! What the source framework guarantees whatever the provider: a timed-out poll says what it
//! was waiting for; per-poll limits on bytes and accounts stop a provider that never ends;
//! an account returned twice is counted once; configuration keys are checked per provider.

mod support;

use std::time::Duration;

use support::harness::Harness;
use support::mock::Fault;
use support::okta_mock::{MockOkta, TOKEN};

fn okta_toml(url: &str, extra: &str) -> String {
    format!(
        "[[sources]]\nname = \"o\"\ntype = \"okta\"\nurl = \"{url}\"\ntoken_file = \"{{dir}}/token\"\n{extra}\n"
    )
}

#[tokio::test]
async fn a_timed_out_poll_names_what_was_in_flight() {
    let mock = MockOkta::start(10, 0).await;
    mock.server
        .fault("/api/v1/users", Fault::Hang(Duration::from_secs(30)));
    let h = Harness::start(
        &[("token", TOKEN)],
        &okta_toml(&mock.url, "timeout = \"1s\""),
    );
    let e = h.poll().await.unwrap_err();
    assert!(e.starts_with("poll timed out after 1s"), "{e}");
    assert!(e.contains("in flight: GET /api/v1/users"), "{e}");
    assert!(e.contains("requests and 0 retries so far"), "{e}");
    assert_eq!(h.status().last_error_kind, Some("timeout"));
}

#[tokio::test]
async fn the_byte_budget_stops_a_poll() {
    let mock = MockOkta::start(400, 0).await;
    let h = Harness::start(
        &[("token", TOKEN)],
        &okta_toml(&mock.url, "max_bytes_per_poll = \"64KiB\""),
    );
    let e = h.poll().await.unwrap_err();
    assert!(e.contains("max_bytes_per_poll"), "{e}");
    assert_eq!(h.status().last_error_kind, Some("budget"));
}

fn file_toml(extra: &str) -> String {
    format!("[[sources]]\nname = \"f\"\ntype = \"file\"\npath = \"{{dir}}/org.ndjson\"\n{extra}\n")
}

const A: &str = r#"{"id":"1","login":"a@x","account_type":"human","status":"active","last_login":null,"mfa":{"factors":[]}}"#;
const B: &str = r#"{"id":"2","login":"b@x","account_type":"human","status":"active","last_login":null,"mfa":{"factors":[]}}"#;
const C: &str = r#"{"id":"3","login":"c@x","account_type":"human","status":"active","last_login":null,"mfa":{"factors":[]}}"#;

#[tokio::test]
async fn an_account_listed_twice_is_counted_once() {
    let org = format!("{A}\n{B}\n{A}\n");
    let h = Harness::start(&[("org.ndjson", &org)], &file_toml(""));
    h.poll().await.unwrap();
    assert_eq!(
        h.gauge("identity_posture_source_duplicate_accounts", &[]),
        Some(1.0)
    );
    assert_eq!(
        h.gauge(
            "identity_posture_accounts_without_mfa",
            &[("account_type", "human"), ("privileged", "false")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn more_accounts_than_allowed_fail_the_poll() {
    let org = format!("{A}\n{B}\n{C}\n");
    let h = Harness::start(
        &[("org.ndjson", &org)],
        &file_toml("max_accounts_per_poll = 2"),
    );
    let e = h.poll().await.unwrap_err();
    assert!(
        e.contains("more than 2 accounts in one poll (max_accounts_per_poll)"),
        "{e}"
    );
    assert_eq!(h.status().last_error_kind, Some("budget"));
    let h = Harness::start(
        &[("org.ndjson", &org)],
        &file_toml("max_accounts_per_poll = 3"),
    );
    h.poll().await.unwrap();
}

#[test]
fn provider_keys_are_checked_by_the_provider() {
    let e = Harness::try_start(
        &[],
        "[[sources]]\nname = \"o\"\ntype = \"okta\"\nurl = \"https://x.okta.com/api/v1\"\ntoken_fle = \"t\"\ninterval = \"5s\"\n",
    )
    .err()
    .unwrap();
    for needle in [
        "sources[0] (o).token_fle: not a key of type okta (did you mean `token_file`?)",
        "sources[0] (o).url: \"https://x.okta.com/api/v1\" ends in /api/v1",
        "sources[0] (o).interval: 5s is outside 30s..7days",
        "sources[0] (o).token_file or token_env: required",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in\n{e}");
    }
    let e = Harness::try_start(&[], "[[sources]]\nname = \"x\"\ntype = \"gogle\"\n")
        .err()
        .unwrap();
    assert!(e.contains("unknown source type \"gogle\""), "{e}");
    for t in identity_posture_exporter::sources::TYPES {
        assert!(e.contains(t), "the built types are listed: {e}");
    }
}

#[tokio::test]
async fn a_slow_drip_is_cut_off_by_the_poll_timeout() {
    let mock = MockOkta::start(10, 0).await;
    mock.server
        .fault("/api/v1/users", Fault::Drip(Duration::from_millis(50)));
    let h = Harness::start(
        &[("token", TOKEN)],
        &okta_toml(&mock.url, "timeout = \"1s\""),
    );
    let e = h.poll().await.unwrap_err();
    assert!(e.starts_with("poll timed out after 1s"), "{e}");
    assert!(e.contains("in flight: GET /api/v1/users"), "{e}");
    assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(0.0));
}
