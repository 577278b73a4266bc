//! The conformance suite every network source's tests call: the contract the framework
//! promises, checked against the source's own mock (the fault matrix). Faults are scripted on
//! the main listing (or its token endpoint) with the mock kit; backoff and `Retry-After`
//! waits run on the harness's virtual timer, the hang and drip under a 5 s `timeout`.
//!
//! - a good poll: at least two listing pages, accounts counted, every standard series and
//!   the source's own gauges there (zero-filled);
//! - optional data refused (403): unknown with the reason naming 403, the poll succeeds;
//! - a rejected credential (401 on the listing, and on the token endpoint if there is one):
//!   the poll fails as `auth` with a hint, `source_up` 0;
//! - 429 with `Retry-After`: waited for, retried, counted, same accounts; a huge
//!   `Retry-After` (a day) is clamped to at most 90 s;
//! - a truncated body: retried, same accounts;
//! - then, each after a good poll on the same source, asserting the poll fails, the error
//!   names the cause, `source_up` is 0 and the last good `identity_posture_accounts` series
//!   are kept: malformed JSON and an HTML 200 (`decode`); a hang and a slow drip (`timeout`,
//!   naming the `GET` in flight); a 500 storm (retried, then `HTTP 500`); a page repeating
//!   the items already listed under a fresh cursor (a data loop, `pagination loop`; a
//!   page-numbered listing may instead end there, counting nothing twice); a redirect to
//!   another host (not followed: the error names the 3xx status); a 100 MB page, announced
//!   and chunked (stopped at the body limit, named in the error);
//! - a `next` that leads back (a URL loop): detected, or at least nothing counted twice and
//!   not followed beyond one extra request;
//! - no secret in any error, `/api/v1/sources` text, `/metrics` or log line (debug level).

use std::time::Duration;

use identity_posture_exporter::checks::CheckId;
use identity_posture_exporter::model::{AccountType, DataKind, Status};

use super::harness::{Harness, Logs};
use super::mock::{Fault, MockServer};

/// What the suite needs to know about one source and its mock.
pub struct Conformance<'a> {
    pub server: &'a MockServer,
    /// A fresh harness (a new source) over the mock, each call, with this `timeout`
    /// (`"60s"`, or `"5s"` for the hang and the slow drip).
    pub make: &'a dyn Fn(&str) -> Harness,
    /// The path of the main listing, which must span at least two pages: the credential,
    /// rate-limit, truncation, malformed-JSON and loop faults are scripted there.
    pub listing: &'a str,
    /// A path whose data is optional, the class it feeds, and the provider's 403 body there;
    /// `None` for a provider whose one role grants everything or nothing (say why in the test).
    pub optional: Option<(&'a str, DataKind, serde_json::Value)>,
    /// The provider's body for a rejected credential (401).
    pub unauthorized: serde_json::Value,
    /// The listing is page-numbered (`page=N`, no cursor): a page repeating the items already
    /// listed ends the listing (a server ignoring `page`) instead of failing the poll.
    pub numbered_pages: bool,
    /// Secrets the configuration holds (tokens, client secrets, private keys).
    pub secrets: &'a [&'a str],
    /// The source's own gauges: present after a good poll.
    pub gauges: &'a [&'a str],
}

const STANDARD_CODES: [&str; 6] = ["2xx", "3xx", "4xx", "429", "5xx", "error"];

/// The `timeout` of the sources the hang and the slow drip are played against.
const QUICK: &str = "5s";

/// One poll, its future on the heap: inline, every call site's future would sit in the
/// suite's stack frame (debug builds do not overlap them) and overflow the test thread.
async fn poll(h: &Harness) -> Result<(), String> {
    Box::pin(h.poll()).await
}

/// A good poll; the `identity_posture_accounts` series it published.
async fn good_poll(h: &Harness) -> Vec<String> {
    poll(h).await.expect("good poll first");
    h.series("identity_posture_accounts")
}

/// The next poll fails: `source_up` is 0 and the last good series stay. Returns the error.
async fn fails_keeping_last_good(h: &Harness, good: &[String], what: &str) -> String {
    let e = match poll(h).await {
        Err(e) => e,
        Ok(()) => panic!("{what}: the poll must fail"),
    };
    assert_eq!(
        h.gauge("identity_posture_source_up", &[]),
        Some(0.0),
        "{what}: {e}"
    );
    assert_eq!(
        h.series("identity_posture_accounts"),
        good,
        "{what}: the last good numbers are kept"
    );
    e
}

/// Runs every check; panics naming the first broken promise.
pub async fn run(c: &Conformance<'_>) {
    // Boxed: on the test thread's stack, the suite's future overflows it in debug builds.
    Box::pin(run_all(c)).await
}

async fn run_all(c: &Conformance<'_>) {
    let (logs, _guard) = Logs::capture();
    let mut texts = Vec::new();

    // A good poll: every standard series there (zero-filled), the source's own gauges too.
    let h = (c.make)("60s");
    let before = c.server.hits(c.listing);
    poll(&h).await.expect("baseline poll");
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
        let h = (c.make)("60s");
        c.server.fault(path, Fault::status(403, body.clone()));
        poll(&h)
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
        let h = (c.make)("60s");
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
        let h = (c.make)("60s");
        c.server
            .fault_after(c.listing, 1, Fault::TooManyRequests { retry_after: 3 });
        poll(&h).await.expect("a 429 is retried");
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
        let h = (c.make)("60s");
        c.server.fault_after(
            c.listing,
            1,
            Fault::TooManyRequests {
                retry_after: 86_400,
            },
        );
        poll(&h)
            .await
            .expect("a 429 with a huge Retry-After is still retried");
        let longest = h.timer.sleeps().into_iter().max().unwrap_or_default();
        assert!(longest.as_secs() <= 90, "waits are clamped: {longest:?}");
        c.server.clear_faults();
    }

    // A token endpoint refusing the client: fails as `auth`, with what to change.
    if let Some(token) = c.server.token_path() {
        let h = (c.make)("60s");
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
        let h = (c.make)("60s");
        c.server.fault_after(c.listing, 1, Fault::Truncated);
        poll(&h).await.expect("a truncated body is retried");
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
        let h = (c.make)("60s");
        poll(&h).await.expect("good poll first");
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

    // The faults that fail the poll.
    Box::pin(failing(c, &mut texts)).await;

    // A next page that leads back: detected, never followed for ever, nothing counted twice.
    {
        let h = (c.make)("60s");
        let before = c.server.hits(c.listing);
        c.server.fault_after(c.listing, 1, Fault::RepeatPrevious);
        match poll(&h).await {
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

/// The faults that fail the poll, each after a good poll on the same source: the error names
/// the cause, `source_up` is 0, the last good numbers stay. Errors are added to `texts`.
async fn failing(c: &Conformance<'_>, texts: &mut Vec<String>) {
    let accounts = {
        let h = (c.make)("60s");
        poll(&h).await.expect("baseline poll");
        h.report().tally.accounts.iter().flatten().sum::<u64>()
    };
    // A listing that never answers, and one whose body trickles in a byte at a time: the
    // source's (short) timeout ends the poll, naming the request in flight.
    for (fault, what) in [
        (
            Fault::Hang(Duration::from_secs(30)),
            "a listing that never answers",
        ),
        (
            Fault::Drip(Duration::from_millis(50)),
            "a body that trickles",
        ),
    ] {
        let h = (c.make)(QUICK);
        let good = good_poll(&h).await;
        c.server.fault_n(c.listing, 8, fault);
        let e = fails_keeping_last_good(&h, &good, what).await;
        assert_eq!(h.status().last_error_kind, Some("timeout"), "{what}: {e}");
        assert!(
            e.contains(&format!("timed out after {QUICK}")) && e.contains("in flight: GET /"),
            "{what}: the timeout names the request in flight: {e}"
        );
        c.server.clear_faults();
        texts.push(e);
    }

    // A 500 storm: every listing request fails; retried (backoff on the virtual clock), then
    // the poll fails naming the status.
    {
        let h = (c.make)("60s");
        let good = good_poll(&h).await;
        let before = c.server.hits(c.listing);
        c.server.fault_n(
            c.listing,
            64,
            Fault::status(500, serde_json::json!({"error": "internal server error"})),
        );
        let e = fails_keeping_last_good(&h, &good, "a 500 storm").await;
        assert!(e.contains("HTTP 500"), "the error names the status: {e}");
        let tried = c.server.hits(c.listing) - before;
        assert!(tried >= 2, "a 500 is retried ({tried} listing requests)");
        assert!(
            !h.timer.sleeps().is_empty(),
            "retries back off (virtual clock)"
        );
        c.server.clear_faults();
        texts.push(e);
    }

    // A data loop: the second page repeats the first page's items under a fresh cursor.
    // Detected as a loop (a page-numbered listing may end there instead); nothing counted
    // twice either way.
    {
        let h = (c.make)("60s");
        let good = good_poll(&h).await;
        c.server.fault_after(c.listing, 1, Fault::RepeatItems);
        if c.numbered_pages {
            match poll(&h).await {
                Err(e) => {
                    assert!(e.contains("loop"), "{e}");
                    texts.push(e);
                }
                Ok(()) => {
                    let n = h.report().tally.accounts.iter().flatten().sum::<u64>();
                    assert!(n <= accounts, "nothing counted twice ({n} > {accounts})");
                    assert_eq!(h.report().tally.duplicates, 0, "nothing counted twice");
                }
            }
        } else {
            let e = fails_keeping_last_good(&h, &good, "a data loop").await;
            assert!(
                e.contains("pagination loop") && e.contains("repeated items already listed"),
                "the error names the data loop: {e}"
            );
            texts.push(e);
        }
        c.server.clear_faults();
    }

    // A redirect to another host: not followed (it would carry the credentials there); the
    // poll fails naming the redirect status.
    {
        let h = (c.make)("60s");
        let good = good_poll(&h).await;
        c.server.fault_n(c.listing, 8, Fault::RedirectOffHost);
        let e = fails_keeping_last_good(&h, &good, "an off-host redirect").await;
        assert!(e.contains("HTTP 302"), "the error names the redirect: {e}");
        assert!(
            !e.contains("timed out") && !e.contains("connection"),
            "the redirect was not followed: {e}"
        );
        c.server.clear_faults();
        texts.push(e);
    }

    // A 100 MB page, announced (`Content-Length`) and not (chunked): refused at the body
    // limit, named in the error; the mock streams it, nothing holds 100 MB.
    for announced in [true, false] {
        let h = (c.make)("60s");
        let good = good_poll(&h).await;
        c.server.fault_n(
            c.listing,
            8,
            Fault::Huge {
                bytes: 100 << 20,
                announced,
            },
        );
        let e = fails_keeping_last_good(&h, &good, "a 100 MB page").await;
        assert!(
            e.contains("response larger than") && e.contains(" bytes"),
            "the error names the body limit (announced: {announced}): {e}"
        );
        c.server.clear_faults();
        texts.push(e);
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
