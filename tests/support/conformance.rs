//! The conformance suite every network source's tests call: the contract the framework
//! promises, checked against the source's own mock — the fault matrix. Optional data refused
//! → unknown with the reason and the poll succeeds; a rejected credential (API or token
//! endpoint) fails with a hint; 429 is retried and counted, a huge `Retry-After` is clamped; a
//! truncated body is retried; a 5xx storm, malformed JSON, an HTML page, an off-host redirect
//! and a 100 MB page fail naming what came, keeping the last good numbers; a paging loop is
//! detected; the standard gauges and the source's own are zero-filled; no secret appears in
//! errors, `/api/v1/sources`, metrics or logs.

use identity_posture_exporter::checks::CheckId;
use identity_posture_exporter::model::{AccountType, DataKind, Status};

use super::harness::{Harness, Logs};
use super::mock::{Fault, MockServer};

/// What the suite needs to know about one source and its mock.
pub struct Conformance<'a> {
    pub server: &'a MockServer,
    /// A fresh harness (a new source) over the mock, each call.
    pub make: &'a dyn Fn() -> Harness,
    /// The path of the main listing, which must span at least two pages: the credential,
    /// rate-limit, truncation, malformed-JSON and loop faults are scripted there.
    pub listing: &'a str,
    /// A path whose data is optional, the class it feeds, and the provider's 403 body there;
    /// `None` for a provider whose one role grants everything or nothing (say why in the test).
    pub optional: Option<(&'a str, DataKind, serde_json::Value)>,
    /// The provider's body for a rejected credential (401).
    pub unauthorized: serde_json::Value,
    /// Secrets the configuration holds (tokens, client secrets, private keys).
    pub secrets: &'a [&'a str],
    /// The source's own gauges: present after a good poll.
    pub gauges: &'a [&'a str],
}

const STANDARD_CODES: [&str; 6] = ["2xx", "3xx", "4xx", "429", "5xx", "error"];

/// Runs every check; panics naming the first broken promise.
pub async fn run(c: &Conformance<'_>) {
    let (logs, _guard) = Logs::capture();
    let mut texts = Vec::new();

    // A good poll: every standard series there (zero-filled), the source's own gauges too.
    let h = (c.make)();
    let before = c.server.hits(c.listing);
    h.poll().await.expect("baseline poll");
    let pages = c.server.hits(c.listing) - before;
    assert!(
        pages >= 2,
        "the listing {} must span at least two pages for the suite (got {pages})",
        c.listing
    );
    let accounts = h.report().tally.accounts.iter().flatten().sum::<u64>();
    assert!(accounts > 0, "the mock must hold accounts");
    zero_filled(&h, c.gauges);
    texts.push(h.metrics());
    texts.push(h.sources_json());

    // Optional data refused: unknown with the reason; the poll succeeds.
    if let Some((path, kind, body)) = &c.optional {
        let h = (c.make)();
        c.server.fault(path, Fault::status(403, body.clone()));
        h.poll()
            .await
            .unwrap_or_else(|e| panic!("a 403 on optional {path} must not fail the poll: {e}"));
        assert_eq!(
            h.gauge(
                "identity_posture_source_data_available",
                &[("data", kind.as_str())]
            ),
            Some(0.0),
            "a 403 on {path} leaves {} unknown",
            kind.as_str()
        );
        let reason = &h.report().availability.missing[kind];
        assert!(
            reason.contains("403"),
            "the reason names the refusal: {reason}"
        );
        c.server.clear_faults();
        texts.push(h.sources_json());
    }

    // A rejected credential: the poll fails as `auth`, with what to change.
    {
        let h = (c.make)();
        for _ in 0..3 {
            c.server
                .fault(c.listing, Fault::status(401, c.unauthorized.clone()));
        }
        let e = h
            .poll()
            .await
            .expect_err("a 401 on the listing fails the poll");
        assert_eq!(h.status().last_error_kind, Some("auth"), "{e}");
        assert!(
            e.contains(" — "),
            "a rejected credential comes with a hint: {e}"
        );
        assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(0.0));
        c.server.clear_faults();
        texts.push(e);
        texts.push(h.sources_json());
    }

    // 429 with Retry-After: waited for (virtual clock), retried, counted.
    {
        let h = (c.make)();
        c.server
            .fault_after(c.listing, 1, Fault::TooManyRequests { retry_after: 3 });
        h.poll().await.expect("a 429 is retried");
        assert!(
            h.gauge("identity_posture_source_rate_limited_total", &[])
                .unwrap()
                >= 1.0
        );
        assert!(
            h.gauge(
                "identity_posture_source_api_requests_total",
                &[("code", "429")]
            )
            .unwrap()
                >= 1.0
        );
        assert_eq!(
            h.report().tally.accounts.iter().flatten().sum::<u64>(),
            accounts
        );
        assert!(
            h.timer.sleeps().iter().any(|d| d.as_secs() >= 3),
            "Retry-After was honoured: {:?}",
            h.timer.sleeps()
        );
        c.server.clear_faults();
    }

    // A huge Retry-After is clamped, never a poll parked for a day.
    {
        let h = (c.make)();
        c.server.fault_after(
            c.listing,
            1,
            Fault::TooManyRequests {
                retry_after: 86_400,
            },
        );
        h.poll()
            .await
            .expect("a 429 with a huge Retry-After is still retried");
        let longest = h.timer.sleeps().into_iter().max().unwrap_or_default();
        assert!(longest.as_secs() <= 90, "waits are clamped: {longest:?}");
        c.server.clear_faults();
    }

    // A token endpoint refusing the client: fails as `auth`, with what to change.
    if let Some(token) = c.server.token_path() {
        let h = (c.make)();
        for _ in 0..3 {
            c.server.fault(
                &token,
                Fault::status(401, serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed."})),
            );
        }
        let e = h
            .poll()
            .await
            .expect_err("a refused token request fails the poll");
        assert_eq!(h.status().last_error_kind, Some("auth"), "{e}");
        assert!(
            e.contains(" — "),
            "a refused token request comes with a hint: {e}"
        );
        c.server.clear_faults();
        texts.push(e);
    }

    // A body cut off half-way: a transient failure, retried.
    {
        let h = (c.make)();
        c.server.fault_after(c.listing, 1, Fault::Truncated);
        h.poll().await.expect("a truncated body is retried");
        assert_eq!(
            h.report().tally.accounts.iter().flatten().sum::<u64>(),
            accounts
        );
        c.server.clear_faults();
    }

    // Malformed JSON and an HTML page: the poll fails naming what came; the last good
    // numbers stay.
    for (fault, needle) in [
        (Fault::Malformed, "unexpected response body"),
        (Fault::Html, "HTML"),
    ] {
        let h = (c.make)();
        h.poll().await.expect("good poll first");
        let good = h.series("identity_posture_accounts");
        c.server.fault_after(c.listing, 1, fault);
        let e = h
            .poll()
            .await
            .expect_err("a page that is not the documented JSON fails the poll");
        assert_eq!(h.status().last_error_kind, Some("decode"), "{e}");
        assert!(e.contains(needle), "{e}");
        assert_eq!(h.gauge("identity_posture_source_up", &[]), Some(0.0));
        assert_eq!(
            h.series("identity_posture_accounts"),
            good,
            "last good numbers kept"
        );
        c.server.clear_faults();
        texts.push(e);
    }

    // A next page that leads back: detected, never followed for ever, nothing counted twice.
    {
        let h = (c.make)();
        let before = c.server.hits(c.listing);
        c.server.fault_after(c.listing, 1, Fault::RepeatPrevious);
        match h.poll().await {
            Err(e) => {
                assert!(e.contains("loop"), "{e}");
                texts.push(e);
            }
            Ok(()) => {
                let n = h.report().tally.accounts.iter().flatten().sum::<u64>();
                assert!(
                    n <= accounts,
                    "a repeated page is not counted twice ({n} > {accounts})"
                );
            }
        }
        let spent = c.server.hits(c.listing) - before;
        assert!(
            spent <= pages + 1,
            "the loop was not followed ({spent} listing requests, {pages} pages)"
        );
        c.server.clear_faults();
    }

    // No secret anywhere.
    texts.push(logs.text());
    for s in c.secrets {
        for t in &texts {
            assert!(!t.contains(s), "a secret leaked into:\n{t}");
        }
    }
}

/// Every label combination README "Metrics" promises is there once the source has polled
/// (also called by suites for sources the HTTP fault matrix cannot drive, e.g. `aws_iam`).
pub fn zero_filled(h: &Harness, own: &[&str]) {
    for at in AccountType::ALL {
        for st in Status::ALL {
            assert!(
                h.gauge(
                    "identity_posture_accounts",
                    &[("account_type", at.as_str()), ("status", st.as_str())]
                )
                .is_some(),
                "accounts{{{},{}}} missing",
                at.as_str(),
                st.as_str()
            );
        }
        for p in ["false", "true"] {
            for m in [
                "identity_posture_accounts_without_mfa",
                "identity_posture_accounts_weak_mfa",
                "identity_posture_accounts_phishing_resistant_mfa",
                "identity_posture_accounts_mfa_unknown",
            ] {
                assert!(
                    h.gauge(m, &[("account_type", at.as_str()), ("privileged", p)])
                        .is_some(),
                    "{m} missing"
                );
            }
        }
    }
    for c in CheckId::ALL {
        assert!(
            h.gauge("identity_posture_findings", &[("check", c.as_str())])
                .is_some(),
            "findings{{check={}}} missing",
            c.as_str()
        );
    }
    for d in DataKind::ALL {
        assert!(h
            .gauge(
                "identity_posture_source_data_available",
                &[("data", d.as_str())]
            )
            .is_some());
    }
    for code in STANDARD_CODES {
        assert!(h
            .gauge(
                "identity_posture_source_api_requests_total",
                &[("code", code)]
            )
            .is_some());
    }
    for g in own {
        assert!(!h.series(g).is_empty(), "the source's gauge {g} is missing");
    }
}
