//! Tests of the shared upstream HTTP layer against small in-process servers on 127.0.0.1:
//! retries and backoff, 429 waits, pacing, truncated bodies, the body cap, pagination loops,
//! the pager's prefetch (one page ahead, no request more), the request budget, bounded
//! concurrency, redaction, and the OAuth token cache.
//! Every wait goes through a `ManualTimer`, so the tests assert on durations without taking them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use identity_posture_exporter::config::{Secret, UpstreamLimits};
use identity_posture_exporter::upstream::*;
use url::Url;

mod support;
use support::mock::{Fault, MockServer};

async fn serve(app: Router) -> Url {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    Url::parse(&format!("http://{addr}/")).unwrap()
}

fn limits() -> UpstreamLimits {
    UpstreamLimits::default()
}

const T0: f64 = 1_800_000_000.0;

fn client(limits: UpstreamLimits, auth: Auth) -> (Upstream, ManualTimer) {
    let timer = ManualTimer::new(T0);
    let mut opts = UpstreamOptions::new("test", limits);
    opts.rate_limit_headers = Some(RateLimitHeaders::OKTA);
    let up = Upstream::with_timer(opts, auth, Arc::new(timer.clone())).unwrap();
    (up, timer)
}

fn okta_error(status: StatusCode, code: &str, summary: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        format!(
            r#"{{"errorCode":"{code}","errorSummary":"{summary}","errorLink":"{code}","errorId":"oae123","errorCauses":[]}}"#
        ),
    )
        .into_response()
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);
impl Counter {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn retries_5xx_with_growing_backoff_then_succeeds() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/x",
            get(|State(c): State<Counter>| async move {
                if c.next() < 2 {
                    okta_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "E0000009",
                        "Internal Server Error",
                    )
                } else {
                    "[]".into_response()
                }
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let r = s
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"[]");
    assert_eq!(hits.get(), 3);
    let sleeps = timer.sleeps();
    assert_eq!(sleeps.len(), 2);
    assert!(sleeps[0] >= Duration::from_millis(250) && sleeps[0] <= Duration::from_millis(500));
    assert!(sleeps[1] >= Duration::from_millis(500) && sleeps[1] <= Duration::from_millis(1000));
    let req = stats.api_requests();
    assert_eq!(req.get("5xx"), Some(&2));
    assert_eq!(req.get("2xx"), Some(&1));
}

#[tokio::test]
async fn gives_up_after_max_attempts_naming_the_provider_error() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/api/v1/users",
            get(|State(c): State<Counter>| async move {
                c.next();
                okta_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "E0000009",
                    "Internal Server Error",
                )
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let (up, _timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(
            base.join("api/v1/users?limit=200").unwrap(),
            "/api/v1/users",
        ))
        .await
        .unwrap_err();
    assert_eq!(hits.get(), RetryPolicy::default().max_attempts as usize);
    assert_eq!(
        e.to_string(),
        r#"GET /api/v1/users: HTTP 503 E0000009 "Internal Server Error" (errorId oae123)"#
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/x",
            get(|State(c): State<Counter>| async move {
                c.next();
                okta_error(
                    StatusCode::NOT_FOUND,
                    "E0000007",
                    "Not found: Resource not found: x (User)",
                )
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.provider_code(), Some("E0000007"));
    assert_eq!(hits.get(), 1);
    assert!(timer.sleeps().is_empty());
    assert_eq!(stats.api_requests().get("4xx"), Some(&1));
}

/// 429 answers: Retry-After wins, else the reset header, always clamped into the window.
#[tokio::test]
async fn rate_limited_requests_wait_for_retry_after_or_the_reset_clamped() {
    #[derive(Clone)]
    struct S(Counter, &'static str);
    let handler = |State(S(c, mode)): State<S>| async move {
        if c.next() == 0 {
            let mut h = HeaderMap::new();
            h.insert("x-rate-limit-limit", "600".parse().unwrap());
            h.insert("x-rate-limit-remaining", "0".parse().unwrap());
            let reset = match mode {
                "far" => T0 as u64 + 86_400,
                _ => T0 as u64 + 30,
            };
            h.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
            if mode == "retry-after" {
                h.insert("retry-after", "5".parse().unwrap());
            }
            let mut r = okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            );
            r.headers_mut().extend(h);
            r
        } else {
            "{}".into_response()
        }
    };
    for (mode, expected) in [
        ("reset", Duration::from_secs(30)),
        ("retry-after", Duration::from_secs(5)),
        ("far", Duration::from_secs(90)),
    ] {
        let app = Router::new()
            .route("/x", get(handler))
            .with_state(S(Counter::default(), mode));
        let base = serve(app).await;
        let (up, timer) = client(limits(), Auth::None);
        let stats = RequestStats::default();
        up.session(&stats)
            .send(Request::get(base.join("x").unwrap(), "/x"))
            .await
            .unwrap();
        assert_eq!(timer.sleeps(), vec![expected], "mode {mode}");
        assert_eq!(stats.rate_limited(), 1);
        assert_eq!(stats.api_requests().get("429"), Some(&1));
    }
}

#[tokio::test]
async fn persistent_429_gives_up_with_e0000047() {
    let app = Router::new().route(
        "/x",
        get(|| async {
            okta_error(
                StatusCode::TOO_MANY_REQUESTS,
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            )
        }),
    );
    let base = serve(app).await;
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert_eq!(e.provider_code(), Some("E0000047"));
    let max = RetryPolicy::default().max_rate_limited_attempts as u64;
    assert_eq!(stats.rate_limited(), max);
    // No reset header: backoff, clamped to at least the minimum wait.
    assert!(timer.sleeps().iter().all(|d| *d >= Duration::from_secs(1)));
}

/// A provider that throttles with another status (Google's 403 `userRateLimitExceeded`): the
/// source's classifier makes it a rate limit — waited for with growing backoff, retried,
/// counted — while other 403s stay permission errors that are not retried.
#[tokio::test]
async fn a_classified_403_is_a_rate_limit() {
    fn classify(status: u16, _: &HeaderMap, body: &[u8], _now: f64) -> Option<Throttled> {
        (status == 403 && std::str::from_utf8(body).is_ok_and(|b| b.contains("\"usageLimits\"")))
            .then_some(Throttled {
                wait: None,
                until_reset: false,
            })
    }
    let throttle = || {
        (
            StatusCode::FORBIDDEN,
            [("content-type", "application/json")],
            r#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"message":"User Rate Limit Exceeded","domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#,
        )
            .into_response()
    };
    let forbidden = || {
        (
            StatusCode::FORBIDDEN,
            [("content-type", "application/json")],
            r#"{"error":{"code":403,"message":"Not Authorized to access this resource/api","errors":[{"message":"Not Authorized to access this resource/api","domain":"global","reason":"forbidden"}]}}"#,
        )
            .into_response()
    };
    let c = Counter::default();
    let app = Router::new()
        .route(
            "/twice",
            get(move |State(c): State<Counter>| async move {
                if c.next() < 2 {
                    throttle()
                } else {
                    "{}".into_response()
                }
            }),
        )
        .route("/always", get(move || async move { throttle() }))
        .route("/denied", get(move || async move { forbidden() }))
        .with_state(c.clone());
    let base = serve(app).await;
    let make = |classifier: Option<RateLimitRule>| {
        let timer = ManualTimer::new(T0);
        let mut opts = UpstreamOptions::new("test", limits());
        opts.rate_limited = classifier;
        let up = Upstream::with_timer(opts, Auth::None, Arc::new(timer.clone())).unwrap();
        (up, timer)
    };

    let (up, timer) = make(Some(classify));
    let stats = RequestStats::default();
    up.session(&stats)
        .send(Request::get(base.join("twice").unwrap(), "/twice"))
        .await
        .unwrap();
    assert_eq!(c.get(), 3);
    assert_eq!(stats.rate_limited(), 2);
    assert_eq!(stats.api_requests().get("4xx"), Some(&2));
    let sleeps = timer.sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    // Equal-jitter backoff (0.5 s base, doubling), clamped to at least the 1 s minimum wait.
    assert_eq!(sleeps[0], Duration::from_secs(1));
    assert!(sleeps[1] >= Duration::from_secs(1) && sleeps[1] <= Duration::from_secs(2));

    // Throttled through every allowed attempt: a rate-limit error, not a permission error.
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("always").unwrap(), "/always"))
        .await
        .unwrap_err();
    let max = RetryPolicy::default().max_rate_limited_attempts as u64;
    assert_eq!(stats.rate_limited(), max);
    assert!(e.is_rate_limited() && !e.is_permission(), "{e}");
    assert_eq!(e.provider_code(), Some("userRateLimitExceeded"));
    assert_eq!(
        identity_posture_exporter::sources::ErrorKind::of(&e),
        identity_posture_exporter::sources::ErrorKind::RateLimited
    );

    // A 403 the classifier does not recognise fails at once as a permission error.
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("denied").unwrap(), "/denied"))
        .await
        .unwrap_err();
    assert!(e.is_permission() && !e.is_rate_limited(), "{e}");
    assert_eq!(stats.rate_limited(), 0);
    assert_eq!(stats.api_requests().get("4xx"), Some(&1));

    // Without a classifier the throttling 403 is an ordinary 403.
    let (up, _) = make(None);
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("always").unwrap(), "/always"))
        .await
        .unwrap_err();
    assert!(e.is_permission());
    assert_eq!(stats.rate_limited(), 0);
}

/// A documented quota without headers (Google: 2,400 queries a minute): with share 0.5 of
/// 4 per minute, two requests start at once and the next two wait for the window to move.
#[tokio::test]
async fn a_documented_quota_spaces_requests() {
    let c = Counter::default();
    let app = Router::new()
        .route(
            "/x",
            get(|State(c): State<Counter>| async move {
                c.next();
                "{}"
            }),
        )
        .with_state(c.clone());
    let base = serve(app).await;
    let timer = ManualTimer::new(T0);
    let mut opts = UpstreamOptions::new("test", limits());
    opts.quota = Some(RequestQuota {
        requests: 4,
        per: Duration::from_secs(60),
    });
    let up = Upstream::with_timer(opts, Auth::None, Arc::new(timer.clone())).unwrap();
    let stats = RequestStats::default();
    let s = up.session(&stats);
    for _ in 0..4 {
        s.send(Request::get(base.join("x").unwrap(), "/x"))
            .await
            .unwrap();
    }
    assert_eq!(c.get(), 4);
    assert_eq!(timer.sleeps(), vec![Duration::from_secs(60)]);
    assert_eq!(stats.rate_limited(), 0, "pacing is not being rate limited");
}

/// A provider rule for rate limits answered with another status: a 403 carrying the
/// (made-up) `x-slow-down` header is a rate limit with that many seconds to wait.
fn slow_down_rule(
    status: u16,
    h: &reqwest::header::HeaderMap,
    body: &[u8],
    _now: f64,
) -> Option<Throttled> {
    if status != 403 {
        return None;
    }
    let secs = h.get("x-slow-down")?.to_str().ok()?.parse::<u64>().ok()?;
    assert!(!body.is_empty(), "the rule sees the body");
    Some(Throttled {
        wait: Some(Duration::from_secs(secs)),
        until_reset: false,
    })
}

/// `rate_limited` rule with a wait: a 403 the rule calls a rate limit waits as long as it says,
/// is counted as rate limited, and once the retries are spent is a rate-limit error (never a
/// permission refusal); a plain
/// 403 is left alone and fails at once.
#[tokio::test]
async fn a_provider_rate_limit_rule_turns_other_statuses_into_rate_limits() {
    #[derive(Clone)]
    struct S(Counter, usize);
    let handler = |State(S(c, limited)): State<S>| async move {
        let mut r = okta_error(StatusCode::FORBIDDEN, "E0000006", "slow down");
        if c.next() < limited {
            r.headers_mut().insert("x-slow-down", "7".parse().unwrap());
            // Its rate-limit headers must not make the pacer wait a second time.
            r.headers_mut()
                .insert("x-rate-limit-limit", "10".parse().unwrap());
            r.headers_mut()
                .insert("x-rate-limit-remaining", "0".parse().unwrap());
            r.headers_mut().insert(
                "x-rate-limit-reset",
                ((T0 as u64) + 3000).to_string().parse().unwrap(),
            );
            r
        } else if limited == 1 {
            "{}".into_response()
        } else {
            r
        }
    };
    let client_with_rule = || {
        let timer = ManualTimer::new(T0);
        let mut opts = UpstreamOptions::new("test", limits());
        opts.rate_limit_headers = Some(RateLimitHeaders::OKTA);
        opts.rate_limited = Some(slow_down_rule);
        let up = Upstream::with_timer(opts, Auth::None, Arc::new(timer.clone())).unwrap();
        (up, timer)
    };

    // Limited once, then served: one 7 s wait, one rate-limited count.
    let app = Router::new()
        .route("/x", get(handler))
        .with_state(S(Counter::default(), 1));
    let base = serve(app).await;
    let (up, timer) = client_with_rule();
    let stats = RequestStats::default();
    let s = up.session(&stats);
    s.send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap();
    assert_eq!(timer.sleeps(), vec![Duration::from_secs(7)]);
    assert_eq!(stats.rate_limited(), 1);
    assert_eq!(stats.api_requests().get("4xx"), Some(&1));
    // The next request is not paced by the rate-limited answer's headers.
    s.send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap();
    assert_eq!(timer.sleeps().len(), 1);

    // Always limited: every allowed attempt, then a rate-limit error, not a refusal.
    let app = Router::new()
        .route("/x", get(handler))
        .with_state(S(Counter::default(), usize::MAX));
    let base = serve(app).await;
    let (up, _timer) = client_with_rule();
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert!(e.is_rate_limited(), "{e}");
    assert!(!e.is_permission());
    assert!(e.to_string().contains("rate limited (HTTP 403)"), "{e}");
    let max = RetryPolicy::default().max_rate_limited_attempts as u64;
    assert_eq!(stats.rate_limited(), max);

    // A 403 the rule does not claim: a refusal, not retried.
    let app = Router::new()
        .route("/x", get(handler))
        .with_state(S(Counter::default(), 0));
    let base = serve(app).await;
    let (up, timer) = client_with_rule();
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert!(e.is_permission());
    assert!(timer.sleeps().is_empty());
    assert_eq!(stats.rate_limited(), 0);
}

/// `default_headers` go with every request and replace the default `Accept`; a request's own
/// header replaces them in turn. Each header is sent once.
#[tokio::test]
async fn default_headers_replace_the_default_accept() {
    let app = Router::new().route(
        "/h",
        get(|h: HeaderMap| async move {
            let all = |n: &str| {
                h.get_all(n)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join("|")
            };
            format!("{};{}", all("accept"), all("x-api-version"))
        }),
    );
    let base = serve(app).await;
    let timer = ManualTimer::new(T0);
    let mut opts = UpstreamOptions::new("test", limits());
    opts.default_headers = vec![
        (
            reqwest::header::ACCEPT,
            "application/vnd.example+json".parse().unwrap(),
        ),
        (
            "x-api-version".parse().unwrap(),
            "2022-11-28".parse().unwrap(),
        ),
    ];
    let up = Upstream::with_timer(opts, Auth::None, Arc::new(timer)).unwrap();
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let r = s
        .send(Request::get(base.join("h").unwrap(), "/h"))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"application/vnd.example+json;2022-11-28");
    let r = s
        .send(Request::get(base.join("h").unwrap(), "/h").header(
            "x-api-version".parse().unwrap(),
            "2026-03-10".parse().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"application/vnd.example+json;2026-03-10");
}

/// With share 0.5 of a 10-request window, the client stops at remaining = 5 and waits for
/// the reset instead of using the rest.
#[tokio::test]
async fn pacing_uses_only_the_configured_share() {
    let hits = Counter::default();
    let app = Router::new()
        .route(
            "/x",
            get(|State(c): State<Counter>| async move {
                let n = c.next() as i64;
                let mut h = HeaderMap::new();
                h.insert("x-rate-limit-limit", "10".parse().unwrap());
                h.insert(
                    "x-rate-limit-remaining",
                    (9 - n).max(0).to_string().parse().unwrap(),
                );
                h.insert(
                    "x-rate-limit-reset",
                    (T0 as u64 + 45).to_string().parse().unwrap(),
                );
                (h, "[]").into_response()
            }),
        )
        .with_state(hits.clone());
    let base = serve(app).await;
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    for _ in 0..6 {
        s.send(Request::get(base.join("x").unwrap(), "/x"))
            .await
            .unwrap();
    }
    // Responses said remaining 9,8,7,6,5: the sixth request waited for the reset first.
    assert_eq!(timer.sleeps(), vec![Duration::from_secs(45)]);
    assert_eq!(stats.rate_limited(), 0);
}

/// Headers and the start of a body, then the connection drops.
fn truncated_body(prefix: &'static str) -> Body {
    let s = futures_util::stream::unfold(0, move |state| async move {
        match state {
            0 => Some((Ok::<_, std::io::Error>(prefix), 1)),
            1 => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Some((Err(std::io::Error::other("connection dropped")), 2))
            }
            _ => None,
        }
    });
    Body::from_stream(s)
}

#[tokio::test]
async fn truncated_body_is_retried_and_then_reported() {
    #[derive(Clone)]
    struct S(Counter, bool);
    let app = Router::new()
        .route(
            "/x",
            get(|State(S(c, always)): State<S>| async move {
                if c.next() == 0 || always {
                    truncated_body("[{\"id\":\"00u1\",").into_response()
                } else {
                    "[]".into_response()
                }
            }),
        )
        .with_state(S(Counter::default(), false));
    let base = serve(app).await;
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let r = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"[]");
    assert_eq!(timer.sleeps().len(), 1);

    let app = Router::new().route("/x", get(|| async { truncated_body("[{").into_response() }));
    let base = serve(app).await;
    let (up, _timer) = client(limits(), Auth::None);
    let e = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e}");
    assert!(
        e.to_string().contains("reading the response body failed"),
        "{e}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = Router::new().route("/x", get(|| async { "x".repeat(10_000) }));
    let base = serve(app).await;
    let timer = ManualTimer::new(T0);
    let mut opts = UpstreamOptions::new("test", limits());
    opts.max_body_bytes = 1000;
    let up = Upstream::with_timer(opts, Auth::None, Arc::new(timer)).unwrap();
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, UpstreamError::TooLarge { limit: 1000, .. }),
        "{e}"
    );
}

#[derive(serde::Deserialize)]
struct PageQ {
    after: Option<u32>,
}

#[tokio::test]
async fn link_pagination_follows_next_and_detects_loops() {
    // Pages 0..3; in loop mode page 2 links back to page 1.
    #[derive(Clone)]
    struct S(bool);
    let app = Router::new()
        .route(
            "/items",
            get(
                |State(S(looping)): State<S>, Query(q): Query<PageQ>| async move {
                    let page = q.after.unwrap_or(0);
                    let mut h = HeaderMap::new();
                    h.append(
                        "link",
                        format!("</items?after={page}>; rel=\"self\"")
                            .parse()
                            .unwrap(),
                    );
                    let next = if looping && page == 2 {
                        Some(1)
                    } else if page < 3 {
                        Some(page + 1)
                    } else {
                        None
                    };
                    if let Some(n) = next {
                        h.append(
                            "link",
                            format!("</items?after={n}>; rel=\"next\"").parse().unwrap(),
                        );
                    }
                    (h, format!("[{page}]")).into_response()
                },
            ),
        )
        .with_state(S(false));
    let base = serve(app).await;
    let (up, _t) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(Request::get(base.join("items").unwrap(), "/items"));
    let mut got = Vec::new();
    while let Some(r) = p.next_page(&s).await.unwrap() {
        got.extend(r.json::<Vec<u32>>().unwrap());
    }
    assert_eq!(got, vec![0, 1, 2, 3]);

    let app = Router::new().route(
        "/items",
        get(|Query(q): Query<PageQ>| async move {
            let page = q.after.unwrap_or(0);
            let next = if page == 2 { 1 } else { page + 1 };
            let mut h = HeaderMap::new();
            h.append(
                "link",
                format!("</items?after={next}>; rel=\"next\"")
                    .parse()
                    .unwrap(),
            );
            (h, "[]").into_response()
        }),
    );
    let base = serve(app).await;
    let mut p = Pager::link(Request::get(base.join("items").unwrap(), "/items"));
    let mut err = None;
    for _ in 0..10 {
        match p.next_page(&s).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("a loop must be an error");
    assert!(
        matches!(e, UpstreamError::PaginationLoop { page: 3, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn the_request_budget_is_per_poll() {
    let app = Router::new().route("/x", get(|| async { "[]" }));
    let base = serve(app).await;
    let (up, _t) = client(
        UpstreamLimits {
            max_requests_per_poll: Some(3),
            ..limits()
        },
        Auth::None,
    );
    let stats = RequestStats::default();
    let s = up.session(&stats);
    for _ in 0..3 {
        s.send(Request::get(base.join("x").unwrap(), "/x"))
            .await
            .unwrap();
    }
    let e = s
        .send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap_err();
    assert!(matches!(e, UpstreamError::BudgetExhausted { max: 3 }));
    assert_eq!(s.budget().used(), 3);
    // The next poll starts with a fresh budget.
    let s2 = up.session(&stats);
    s2.send(Request::get(base.join("x").unwrap(), "/x"))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrency_is_bounded() {
    #[derive(Clone, Default)]
    struct S {
        now: Arc<AtomicUsize>,
        max: Arc<AtomicUsize>,
    }
    let st = S::default();
    let app = Router::new()
        .route(
            "/x",
            get(|State(s): State<S>| async move {
                let n = s.now.fetch_add(1, Ordering::SeqCst) + 1;
                s.max.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
                s.now.fetch_sub(1, Ordering::SeqCst);
                "[]"
            }),
        )
        .with_state(st.clone());
    let base = serve(app).await;
    let (up, _t) = client(
        UpstreamLimits {
            concurrency: 3,
            ..limits()
        },
        Auth::None,
    );
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let futs = (0..12).map(|_| s.send(Request::get(base.join("x").unwrap(), "/x")));
    for r in futures_util::future::join_all(futs).await {
        r.unwrap();
    }
    let max = st.max.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "max in flight {max}");
}

/// A writer that collects log output for inspection.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide subscriber (scoped ones miss callsites first hit by other test threads).
fn logs() -> &'static LogBuf {
    static LOGS: std::sync::OnceLock<LogBuf> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .init();
        buf
    })
}

#[tokio::test]
async fn secrets_never_reach_errors_logs_or_debug() {
    const TOKEN: &str = "00SuperSecretTokenValue1234";
    let app = Router::new().route(
        "/api/v1/users",
        get(|h: HeaderMap| async move {
            let auth = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            // A hostile server echoing the credential back in its error body.
            okta_error(
                StatusCode::FORBIDDEN,
                "E0000006",
                &format!("You sent {auth}"),
            )
        }),
    );
    let base = serve(app).await;
    let logs = logs();
    let (up, _t) = client(limits(), Auth::Header(Secret::new(format!("SSWS {TOKEN}"))));
    let stats = RequestStats::default();
    let e = up
        .session(&stats)
        .send(Request::get(
            base.join("api/v1/users?limit=200&access_token=leaky")
                .unwrap(),
            "/api/v1/users",
        ))
        .await
        .unwrap_err();
    let text = format!("{e} {e:?} {up:?}");
    assert!(text.contains("E0000006"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("upstream request"), "{logs}");
    assert!(!logs.contains(TOKEN), "{logs}");
    assert!(!logs.contains("leaky"), "{logs}");
}

#[test]
fn plain_http_only_to_loopback() {
    for ok in [
        "https://x.okta.com/",
        "http://127.0.0.1:9/",
        "http://localhost/",
        "http://[::1]/",
    ] {
        assert!(check_url_scheme(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
    }
    for bad in ["http://x.okta.com/", "http://10.0.0.1/", "ftp://127.0.0.1/"] {
        assert!(
            check_url_scheme(&Url::parse(bad).unwrap()).is_err(),
            "{bad}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth token cache.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct TokenServer {
    issued: Counter,
    /// Tokens the API refuses (revoked).
    revoked: Arc<Mutex<Vec<String>>>,
    api_calls: Counter,
    fail: bool,
}

fn token_app(ts: TokenServer) -> Router {
    Router::new()
        .route(
            "/oauth2/v1/token",
            post(
                |State(ts): State<TokenServer>, h: HeaderMap, body: String| async move {
                    let f: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    if ts.fail {
                        ts.issued.next();
                        return (
                            StatusCode::UNAUTHORIZED,
                            [("content-type", "application/json")],
                            r#"{"error":"invalid_client","error_description":"Invalid value for 'client_id' parameter."}"#,
                        )
                            .into_response();
                    }
                    // client_secret_basic: "Basic base64(id:secret)".
                    let ok = h.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Basic Y2xpZW50OnMzY3JldA==");
                    let grant = f.iter().any(|(k, v)| k == "grant_type" && v == "client_credentials");
                    if !ok || !grant {
                        return (StatusCode::BAD_REQUEST, "{\"error\":\"invalid_request\"}").into_response();
                    }
                    // Slow enough that concurrent callers queue behind one fetch.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let n = ts.issued.next();
                    axum::Json(serde_json::json!({
                        "access_token": format!("tok-{n}-abcdefgh"),
                        "token_type": "Bearer",
                        "expires_in": 900,
                    }))
                    .into_response()
                },
            ),
        )
        .route(
            "/api",
            get(|State(ts): State<TokenServer>, h: HeaderMap| async move {
                ts.api_calls.next();
                let auth = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let Some(tok) = auth.strip_prefix("Bearer ") else {
                    return StatusCode::UNAUTHORIZED.into_response();
                };
                if ts.revoked.lock().unwrap().iter().any(|r| r == tok) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                tok.to_string().into_response()
            }),
        )
        .with_state(ts)
}

fn oauth_client(base: &Url) -> (Upstream, ManualTimer) {
    let cc = ClientCredentials::new(
        base.join("oauth2/v1/token").unwrap(),
        "client",
        ClientAuth::SecretBasic(Secret::new("s3cret")),
    );
    let cache = Arc::new(TokenCache::new(Box::new(cc)));
    client(limits(), Auth::OAuth(cache))
}

#[tokio::test]
async fn oauth_single_flight_refresh_before_expiry_and_401_refetch() {
    let ts = TokenServer::default();
    let base = serve(token_app(ts.clone())).await;
    let (up, timer) = oauth_client(&base);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let futs = (0..10).map(|_| s.send(Request::get(base.join("api").unwrap(), "/api")));
    for r in futures_util::future::join_all(futs).await {
        assert_eq!(&r.unwrap().body[..], b"tok-0-abcdefgh");
    }
    assert_eq!(
        ts.issued.get(),
        1,
        "one token fetch for ten concurrent requests"
    );

    // 15-minute tokens are refreshed two minutes before they expire.
    timer.advance(Duration::from_secs(770));
    let r = s
        .send(Request::get(base.join("api").unwrap(), "/api"))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"tok-0-abcdefgh");
    timer.advance(Duration::from_secs(20));
    let r = s
        .send(Request::get(base.join("api").unwrap(), "/api"))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"tok-1-abcdefgh");

    // A revoked token: one 401, a new token, the request succeeds.
    ts.revoked.lock().unwrap().push("tok-1-abcdefgh".into());
    let r = s
        .send(Request::get(base.join("api").unwrap(), "/api"))
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"tok-2-abcdefgh");
    assert_eq!(ts.issued.get(), 3);
    // Token requests are counted like any other.
    assert_eq!(stats.api_requests().get("2xx"), Some(&(3 + 13)));
    assert_eq!(stats.api_requests().get("4xx"), Some(&1));
}

#[tokio::test]
async fn oauth_token_errors_are_shared_and_clear() {
    let ts = TokenServer {
        fail: true,
        ..TokenServer::default()
    };
    let base = serve(token_app(ts.clone())).await;
    let (up, _timer) = oauth_client(&base);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let futs = (0..5).map(|_| s.send(Request::get(base.join("api").unwrap(), "/api")));
    for r in futures_util::future::join_all(futs).await {
        let e = r.unwrap_err();
        assert_eq!(e.status(), Some(401));
        assert!(e.to_string().contains("invalid_client"), "{e}");
        assert!(!e.to_string().contains("s3cret"));
    }
    assert!(ts.issued.get() < 5, "queued callers share the failed fetch");
    assert_eq!(ts.api_calls.get(), 0);
}

// ---- Prefetch: the next page is requested while the caller works on this one ----

/// A `Link`-paged listing of `pages` pages at `/items` on the shared mock base (its fault
/// queue and request log): page `k` answers `[k]` with a `next` link to page `k + 1`. Every
/// request is noted in `events` as it arrives (`req k`), where the test notes its own steps.
#[derive(Clone)]
struct Listing {
    server: MockServer,
    events: Arc<Mutex<Vec<String>>>,
    arrived: Arc<tokio::sync::Notify>,
    base: Url,
}

#[derive(serde::Deserialize)]
struct PageNo {
    page: Option<u32>,
}

impl Listing {
    async fn start(pages: u32) -> Listing {
        Listing::new(pages, |_| Vec::new(), None).await
    }

    /// As `start`, with extra response headers for page `k`.
    async fn with_headers(pages: u32, headers: fn(u32) -> Vec<(&'static str, String)>) -> Listing {
        Listing::new(pages, headers, None).await
    }

    /// As `start`; page `hang` is never answered: its handler waits until the request is
    /// dropped (noted `dropped k`).
    async fn new(
        pages: u32,
        headers: fn(u32) -> Vec<(&'static str, String)>,
        hang: Option<u32>,
    ) -> Listing {
        let events: Arc<Mutex<Vec<String>>> = Arc::default();
        let arrived: Arc<tokio::sync::Notify> = Arc::default();
        let (ev, ar) = (events.clone(), arrived.clone());
        let server = MockServer::start(Router::new().route(
            "/items",
            get(move |Query(q): Query<PageNo>| {
                let (ev, ar) = (ev.clone(), ar.clone());
                async move {
                    let k = q.page.unwrap_or(0);
                    ev.lock().unwrap().push(format!("req {k}"));
                    ar.notify_waiters();
                    if hang == Some(k) {
                        struct Dropped(Arc<Mutex<Vec<String>>>, Arc<tokio::sync::Notify>, u32);
                        impl Drop for Dropped {
                            fn drop(&mut self) {
                                self.0.lock().unwrap().push(format!("dropped {}", self.2));
                                self.1.notify_waiters();
                            }
                        }
                        let _noted = Dropped(ev.clone(), ar.clone(), k);
                        std::future::pending::<()>().await;
                    }
                    let mut h = HeaderMap::new();
                    if k + 1 < pages {
                        h.insert(
                            "link",
                            format!("</items?page={}>; rel=\"next\"", k + 1)
                                .parse()
                                .unwrap(),
                        );
                    }
                    for (name, value) in headers(k) {
                        h.insert(name, value.parse().unwrap());
                    }
                    (h, format!("[{k}]")).into_response()
                }
            }),
        ))
        .await;
        let base = Url::parse(&server.url).unwrap();
        Listing {
            server,
            events,
            arrived,
            base,
        }
    }

    fn first(&self) -> Request {
        Request::get(self.base.join("/items").unwrap(), "/items")
    }

    fn note(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn position(&self, e: &str) -> Option<usize> {
        self.events().iter().position(|x| x == e)
    }

    /// Waits until `e` is noted (a failing test ends after 30 s instead of hanging; nothing
    /// is asserted about how long it took).
    async fn until(&self, e: &str) {
        let wait = async {
            loop {
                let arrived = self.arrived.notified();
                if self.position(e).is_some() {
                    return;
                }
                arrived.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("{e} never came: {:?}", self.events()));
    }
}

/// Lets the runtime run every other task that is ready (the page ahead being read, a task
/// that would request one page more).
async fn settle(stats: &RequestStats, answered: u64) {
    let wait = async {
        while stats.api_requests().values().sum::<u64>() < answered {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("the page ahead was answered");
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn page_of(r: &identity_posture_exporter::upstream::Response) -> u32 {
    r.json::<Vec<u32>>().unwrap()[0]
}

#[tokio::test]
async fn the_next_page_is_requested_while_the_caller_works_on_this_one() {
    let l = Listing::start(4).await;
    let (up, _t) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(l.first());
    for k in 0..4u32 {
        let r = p.next_page(&s).await.unwrap().expect("a page");
        assert_eq!(page_of(&r), k);
        if k < 3 {
            // Page k + 1 is asked for while the caller still has page k …
            l.until(&format!("req {}", k + 1)).await;
            assert!(p.is_ahead());
            // … and once it is in, nothing more is asked for until the caller takes it.
            settle(&stats, u64::from(k) + 2).await;
        } else {
            assert!(!p.is_ahead(), "no next link, nothing ahead");
        }
        l.note(format!("took {k}"));
    }
    assert!(p.next_page(&s).await.unwrap().is_none());
    let at = |e: String| {
        l.position(&e)
            .unwrap_or_else(|| panic!("{e}: {:?}", l.events()))
    };
    for k in 0..3u32 {
        assert!(
            at(format!("req {}", k + 1)) < at(format!("took {k}")),
            "{:?}",
            l.events()
        );
    }
    for k in 0..2u32 {
        assert!(
            at(format!("req {}", k + 2)) > at(format!("took {k}")),
            "two ahead: {:?}",
            l.events()
        );
    }
    // Exactly the page minimum, each page once.
    assert_eq!(l.server.hits("/items"), 4);
    assert_eq!(s.requests_made(), 4);
}

#[tokio::test]
async fn a_caller_stopping_early_costs_no_request_more() {
    let (up, _t) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);

    // A page limit of the caller's: the page after it is not requested ahead.
    let l = Listing::start(5).await;
    let mut p = Pager::link(l.first()).stop_after(2);
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 0);
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 1);
    assert!(!p.is_ahead());
    assert!(p.next_page(&s).await.unwrap().is_none());
    assert!(p.pending().unwrap().as_str().ends_with("/items?page=2"));
    settle(&stats, 2).await;
    assert_eq!(l.server.hits("/items"), 2);

    // A stop rule on the page itself: a held page starts nothing.
    let l = Listing::start(5).await;
    let mut p = Pager::link(l.first()).hold_when(|r| r.body.as_ref() == b"[1]");
    p.next_page(&s).await.unwrap().unwrap();
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 1);
    assert!(!p.is_ahead());
    drop(p);
    settle(&stats, 4).await;
    assert_eq!(l.server.hits("/items"), 2);

    // On demand: never a page ahead.
    let l = Listing::start(5).await;
    let mut p = Pager::link(l.first()).on_demand();
    for _ in 0..3 {
        p.next_page(&s).await.unwrap().unwrap();
        assert!(!p.is_ahead());
    }
    drop(p);
    settle(&stats, 7).await;
    assert_eq!(l.server.hits("/items"), 3);

    // Body cursors: nothing is requested until the caller names the next page.
    let l = Listing::start(5).await;
    let mut p = Pager::body(l.first());
    p.next_page(&s).await.unwrap().unwrap();
    assert!(!p.is_ahead());
    p.set_next(NextPage::Url("/items?page=1".into())).unwrap();
    assert!(p.is_ahead());
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 1);
    drop(p);
    settle(&stats, 9).await;
    assert_eq!(l.server.hits("/items"), 2);
}

#[tokio::test]
async fn the_request_budget_bounds_pages_ahead_and_its_end_comes_with_the_page() {
    let l = Listing::start(5).await;
    let (up, _t) = client(
        UpstreamLimits {
            max_requests_per_poll: Some(2),
            ..limits()
        },
        Auth::None,
    );
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(l.first());
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 0);
    // Page 1 was requested ahead (the budget's second request); page 2 would be the third.
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 1);
    let e = p.next_page(&s).await.unwrap_err();
    assert!(
        matches!(e, UpstreamError::BudgetExhausted { max: 2 }),
        "{e}"
    );
    assert_eq!(l.server.hits("/items"), 2);
    assert_eq!(s.requests_made(), 2);
}

#[tokio::test]
async fn an_error_on_the_page_ahead_comes_when_that_page_is_taken() {
    let l = Listing::start(5).await;
    l.server.fault_after(
        "/items",
        2,
        Fault::status(403, serde_json::json!({"errorCode": "E0000006", "errorSummary": "You do not have permission to perform the requested action"})),
    );
    let (up, _t) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(l.first());
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 0);
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 1);
    // Page 2 has failed by now (it was requested with page 1 handed over) …
    settle(&stats, 3).await;
    assert_eq!(stats.api_requests().get("4xx"), Some(&1));
    // … and its error is the next page's, naming the endpoint and the provider's answer.
    let e = p.next_page(&s).await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.endpoint(), Some("/items"));
    assert!(e.to_string().contains("E0000006"), "{e}");
    // Not retried, nothing after it.
    assert_eq!(l.server.hits("/items"), 3);
}

#[tokio::test]
async fn a_page_ahead_dropped_with_the_pager_is_cancelled_not_retried() {
    // Page 1 is never answered.
    let l = Listing::new(5, |_| Vec::new(), Some(1)).await;
    let (up, _t) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(l.first());
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 0);
    assert!(p.is_ahead());
    l.until("req 1").await;
    // The caller stops (an error of its own, a cancelled poll): the request ahead is
    // cancelled — the server sees it go — and never sent again.
    drop(p);
    l.until("dropped 1").await;
    let mut q = Pager::link(l.first()).stop_after(1);
    assert_eq!(page_of(&q.next_page(&s).await.unwrap().unwrap()), 0);
    assert!(q.next_page(&s).await.unwrap().is_none());
    assert_eq!(
        l.events(),
        ["req 0", "req 1", "dropped 1", "req 0"],
        "page 1 once, nothing after it"
    );
    assert_eq!(s.requests_made(), 3);
    assert_eq!(stats.activity().retries, 0);
}

#[tokio::test]
async fn a_page_ahead_honours_retry_after_and_the_pacer() {
    // A 429 with Retry-After on the page requested ahead: waited for, retried, counted.
    let l = Listing::start(4).await;
    l.server
        .fault_after("/items", 1, Fault::TooManyRequests { retry_after: 7 });
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(l.first());
    let mut got = Vec::new();
    while let Some(r) = p.next_page(&s).await.unwrap() {
        got.push(page_of(&r));
    }
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(timer.sleeps(), vec![Duration::from_secs(7)]);
    assert_eq!(stats.rate_limited(), 1);
    assert_eq!(l.server.hits("/items"), 5, "4 pages and the one retry");

    // Page 0 says this client has used its share (5 of 10 left, share 0.5): the page
    // requested ahead waits for the window's reset before it is sent, like any request.
    let l = Listing::with_headers(3, |k| {
        if k == 0 {
            vec![
                ("x-rate-limit-limit", "10".into()),
                ("x-rate-limit-remaining", "5".into()),
                ("x-rate-limit-reset", (T0 as u64 + 30).to_string()),
            ]
        } else {
            Vec::new()
        }
    })
    .await;
    let (up, timer) = client(limits(), Auth::None);
    let stats = RequestStats::default();
    let s = up.session(&stats);
    let mut p = Pager::link(l.first());
    assert_eq!(page_of(&p.next_page(&s).await.unwrap().unwrap()), 0);
    l.until("req 1").await;
    assert_eq!(
        timer.sleeps(),
        vec![Duration::from_secs(30)],
        "paced before it was sent"
    );
    while p.next_page(&s).await.unwrap().is_some() {}
    assert_eq!(l.server.hits("/items"), 3);
    assert_eq!(stats.rate_limited(), 0);
}
