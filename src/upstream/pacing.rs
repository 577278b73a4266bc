//! Proactive rate-limit pacing and the per-poll request budget. Providers report each
//! bucket's `limit`, `remaining` and reset time; the exporter stops using a bucket once it
//! has used its share (`max_rate_limit_share`) and waits for the reset, so the org's other
//! integrations keep the rest. Providers that document a quota but send no headers get a
//! [`RateCap`]: a sliding window that never lets more requests start than the quota allows.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::error::UpstreamError;

/// How a provider's reset header counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    /// Unix epoch seconds (Okta `X-Rate-Limit-Reset`, GitHub `X-RateLimit-Reset`).
    EpochSeconds,
    /// Seconds from now (IETF `RateLimit-Reset`).
    DeltaSeconds,
}

/// The names of a provider's rate-limit headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub limit: &'static str,
    pub remaining: &'static str,
    pub reset: &'static str,
    pub reset_kind: ResetKind,
    /// The header naming the bucket a response counted against (GitHub's
    /// `X-RateLimit-Resource`: `core`, `search`, `audit_log`…), if the provider sends one.
    /// Without it, buckets are per endpoint.
    pub resource: Option<&'static str>,
}

impl RateLimitHeaders {
    /// Okta: `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining`, `X-Rate-Limit-Reset` (epoch s).
    pub const OKTA: RateLimitHeaders = RateLimitHeaders {
        limit: "x-rate-limit-limit",
        remaining: "x-rate-limit-remaining",
        reset: "x-rate-limit-reset",
        reset_kind: ResetKind::EpochSeconds,
        resource: None,
    };
    /// GitHub: `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (epoch s),
    /// and `X-RateLimit-Resource`: every endpoint metered by `core` shares one bucket.
    /// (`X-RateLimit-Used` is `limit - remaining`.)
    pub const GITHUB: RateLimitHeaders = RateLimitHeaders {
        limit: "x-ratelimit-limit",
        remaining: "x-ratelimit-remaining",
        reset: "x-ratelimit-reset",
        reset_kind: ResetKind::EpochSeconds,
        resource: Some("x-ratelimit-resource"),
    };
    /// IETF draft `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (delta s).
    pub const IETF: RateLimitHeaders = RateLimitHeaders {
        limit: "ratelimit-limit",
        remaining: "ratelimit-remaining",
        reset: "ratelimit-reset",
        reset_kind: ResetKind::DeltaSeconds,
        resource: None,
    };

    /// Reads the three headers. `None` unless limit and remaining are both plain numbers.
    pub fn read(&self, headers: &HeaderMap, now_unix: f64) -> Option<RateLimitSnapshot> {
        let num = |name: &str| -> Option<f64> {
            let v = headers.get(name)?.to_str().ok()?.trim();
            // Some providers send "600, 600;w=60" (IETF); the first number is the limit.
            let first = v.split([',', ';']).next()?.trim();
            let n = first.parse::<f64>().ok()?;
            (n.is_finite() && n >= 0.0).then_some(n)
        };
        let limit = num(self.limit)?;
        let remaining = num(self.remaining)?;
        let reset_at_unix = num(self.reset).map(|r| match self.reset_kind {
            ResetKind::EpochSeconds => r,
            ResetKind::DeltaSeconds => now_unix + r,
        });
        let resource = self
            .resource
            .and_then(|h| headers.get(h)?.to_str().ok())
            .map(str::trim)
            .filter(|r| !r.is_empty() && r.len() <= 64)
            .map(str::to_string);
        Some(RateLimitSnapshot {
            limit,
            remaining,
            reset_at_unix,
            resource,
        })
    }

    /// The reset time as a wait from now, if the header is there.
    pub fn reset_wait(&self, headers: &HeaderMap, now_unix: f64) -> Option<Duration> {
        let v = headers
            .get(self.reset)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()?;
        if !v.is_finite() {
            return None;
        }
        let secs = match self.reset_kind {
            ResetKind::EpochSeconds => v - now_unix,
            ResetKind::DeltaSeconds => v,
        };
        Some(Duration::from_secs_f64(secs.clamp(0.0, 1e9)))
    }
}

/// One response's view of a rate-limit bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitSnapshot {
    pub limit: f64,
    pub remaining: f64,
    pub reset_at_unix: Option<f64>,
    /// The bucket the provider named (see [`RateLimitHeaders::resource`]).
    pub resource: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    limit: f64,
    /// Our estimate: the provider's last figure minus the requests sent since.
    remaining: f64,
    reset_at_unix: Option<f64>,
}

/// Slows a source down before it uses more than its share of a bucket.
///
/// The provider's `remaining / limit` covers every client of the org. Once `remaining` falls
/// to `limit * (1 - share)`, the exporter has (together with the others) used its share, and
/// requests to that bucket wait until the window resets. Buckets are keyed by the caller's
/// endpoint label (e.g. `/api/v1/users/{id}/factors`), as providers meter per endpoint family,
/// unless the provider names the bucket (GitHub's resource): then every endpoint it named
/// shares that bucket, and a request to any of them counts against it.
#[derive(Debug)]
pub struct Pacer {
    share: f64,
    max_wait: Duration,
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_key: HashMap<String, Bucket>,
    /// Endpoint → the provider's bucket name its last response gave.
    resource_of: HashMap<String, String>,
}

impl Buckets {
    fn key<'a>(&'a self, endpoint: &'a str) -> &'a str {
        self.resource_of
            .get(endpoint)
            .map(String::as_str)
            .unwrap_or(endpoint)
    }
}

impl Pacer {
    pub fn new(share: f64, max_wait: Duration) -> Pacer {
        let share = if share.is_finite() {
            share.clamp(0.01, 1.0)
        } else {
            0.5
        };
        Pacer {
            share,
            max_wait,
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// The share of each bucket the source may use.
    pub fn share(&self) -> f64 {
        self.share
    }

    /// Called before a request to `bucket`: how long to wait first (if at all). Counts the
    /// request against the local estimate so concurrent requests do not all slip through.
    pub fn before_request(&self, bucket: &str, now_unix: f64) -> Option<Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = buckets.key(bucket).to_string();
        let b = buckets.by_key.get_mut(&key)?;
        if let Some(reset) = b.reset_at_unix {
            if now_unix >= reset {
                // The window has reset: assume a full one until the next response says more.
                b.remaining = b.limit;
                b.reset_at_unix = None;
            }
        }
        let floor = b.limit * (1.0 - self.share);
        if b.remaining <= floor && b.limit > 0.0 {
            let wait = match b.reset_at_unix {
                Some(reset) => Duration::from_secs_f64((reset - now_unix).clamp(0.0, 1e9)),
                // No reset time known: a short pause, then trust the next response.
                None => Duration::from_secs(1),
            };
            let wait = wait.min(self.max_wait);
            // Whoever waits for the reset, waits for everyone: the next caller starts afresh.
            b.remaining = b.limit;
            b.reset_at_unix = None;
            return Some(wait);
        }
        b.remaining -= 1.0;
        None
    }

    /// Records what a response said about `bucket`. The provider's figure replaces the local
    /// estimate (which only bridges the requests sent since): it is off by at most the
    /// requests in flight, and never drifts.
    pub fn observe(&self, bucket: &str, snap: RateLimitSnapshot) {
        // Okta's concurrency-limit 429 reports limit 0 / remaining 0: not a window.
        if snap.limit <= 0.0 {
            return;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = match snap.resource {
            Some(r) => {
                let key = format!("resource:{r}");
                buckets.resource_of.insert(bucket.to_string(), key.clone());
                key
            }
            None => {
                buckets.resource_of.remove(bucket);
                bucket.to_string()
            }
        };
        // Only named buckets some endpoint still points to are kept (a server inventing a
        // name per response cannot grow the map).
        let Buckets {
            by_key,
            resource_of,
        } = &mut *buckets;
        by_key.retain(|k, _| !k.starts_with("resource:") || resource_of.values().any(|v| v == k));
        buckets.by_key.insert(
            key,
            Bucket {
                limit: snap.limit,
                remaining: snap.remaining,
                reset_at_unix: snap.reset_at_unix,
            },
        );
    }
}

/// A documented request quota the provider does not report in headers (Google Admin SDK:
/// 2,400 queries per minute), of which the source may use its share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestQuota {
    pub requests: u32,
    pub per: Duration,
}

/// Keeps the requests started in any sliding window of `window` at or below `max`: each
/// request reserves a start time, waiting when the window is full. Concurrent callers get
/// successive slots, so they cannot all slip through at once.
#[derive(Debug)]
pub struct RateCap {
    max: usize,
    window: f64,
    /// Reserved start times (unix seconds), non-decreasing; older than a window are dropped.
    starts: Mutex<VecDeque<f64>>,
}

impl RateCap {
    /// `share` of `quota` (at least one request per window).
    pub fn new(quota: RequestQuota, share: f64) -> RateCap {
        let share = if share.is_finite() {
            share.clamp(0.01, 1.0)
        } else {
            0.5
        };
        RateCap {
            max: ((f64::from(quota.requests) * share).floor() as usize).max(1),
            window: quota.per.as_secs_f64().max(0.001),
            starts: Mutex::new(VecDeque::new()),
        }
    }

    /// Requests allowed to start in one window.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Reserves the next start time for a request made at `now_unix`; returns how long to wait
    /// for it (zero when the window has room).
    pub fn reserve(&self, now_unix: f64) -> Duration {
        let mut q = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        while q.front().is_some_and(|t| *t <= now_unix - self.window) {
            q.pop_front();
        }
        let mut at = now_unix;
        if q.len() >= self.max {
            // The window ending at `at` must not hold `max` earlier starts.
            at = at.max(q[q.len() - self.max] + self.window);
        }
        if let Some(last) = q.back() {
            at = at.max(*last);
        }
        q.push_back(at);
        Duration::from_secs_f64((at - now_unix).max(0.0))
    }
}

/// The per-poll request budget (`max_requests_per_poll`).
#[derive(Debug)]
pub struct Budget {
    max: Option<u32>,
    used: AtomicU32,
}

impl Budget {
    pub fn new(max: Option<u32>) -> Budget {
        Budget {
            max,
            used: AtomicU32::new(0),
        }
    }
    /// Takes one request from the budget, or fails when it is spent.
    pub fn take(&self) -> Result<(), UpstreamError> {
        let used = self.used.fetch_add(1, Ordering::Relaxed);
        match self.max {
            Some(max) if used >= max => {
                self.used.fetch_sub(1, Ordering::Relaxed);
                Err(UpstreamError::BudgetExhausted { max })
            }
            _ => Ok(()),
        }
    }
    /// Requests made so far.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }
    /// Requests left; `None` = unbounded.
    pub fn remaining(&self) -> Option<u32> {
        self.max.map(|m| m.saturating_sub(self.used()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(limit: &str, remaining: &str, reset: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from_str(limit).unwrap());
        h.insert(
            "x-rate-limit-remaining",
            HeaderValue::from_str(remaining).unwrap(),
        );
        h.insert("x-rate-limit-reset", HeaderValue::from_str(reset).unwrap());
        h
    }

    #[test]
    fn reads_okta_headers() {
        let s = RateLimitHeaders::OKTA
            .read(&headers("600", "599", "1000060"), 1_000_000.0)
            .unwrap();
        assert_eq!(s.limit, 600.0);
        assert_eq!(s.remaining, 599.0);
        assert_eq!(s.reset_at_unix, Some(1_000_060.0));
        assert!(RateLimitHeaders::OKTA
            .read(&headers("lots", "1", "2"), 0.0)
            .is_none());
        assert_eq!(
            RateLimitHeaders::OKTA.reset_wait(&headers("1", "1", "1000030"), 1_000_000.0),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn uses_only_its_share_then_waits_for_the_reset() {
        let p = Pacer::new(0.5, Duration::from_secs(90));
        let now = 1_000_000.0;
        // 100 per window, 52 left: 2 more requests are within our half.
        p.observe(
            "b",
            RateLimitSnapshot {
                limit: 100.0,
                remaining: 52.0,
                reset_at_unix: Some(now + 40.0),
                resource: None,
            },
        );
        assert_eq!(p.before_request("b", now), None);
        assert_eq!(p.before_request("b", now), None);
        assert_eq!(
            p.before_request("b", now),
            Some(Duration::from_secs(40)),
            "at the floor, wait until the reset"
        );
        // Other buckets are unaffected.
        assert_eq!(p.before_request("other", now), None);
    }

    #[test]
    fn pacing_wait_is_clamped_and_stale_windows_reset() {
        let p = Pacer::new(0.5, Duration::from_secs(90));
        p.observe(
            "b",
            RateLimitSnapshot {
                limit: 10.0,
                remaining: 0.0,
                reset_at_unix: Some(1e12),
                resource: None,
            },
        );
        assert_eq!(p.before_request("b", 0.0), Some(Duration::from_secs(90)));
        p.observe(
            "c",
            RateLimitSnapshot {
                limit: 10.0,
                remaining: 0.0,
                reset_at_unix: Some(50.0),
                resource: None,
            },
        );
        assert_eq!(p.before_request("c", 60.0), None, "window already over");
    }

    #[test]
    fn the_providers_figure_replaces_the_local_estimate() {
        let p = Pacer::new(0.5, Duration::from_secs(90));
        let snap = |r| RateLimitSnapshot {
            limit: 10.0,
            remaining: r,
            reset_at_unix: Some(60.0),
            resource: None,
        };
        // Many requests sent, but the provider keeps saying 9 left: no pacing.
        for _ in 0..20 {
            p.observe("b", snap(9.0));
            assert_eq!(p.before_request("b", 0.0), None);
        }
        p.observe("b", snap(5.0));
        assert_eq!(p.before_request("b", 0.0), Some(Duration::from_secs(60)));
    }

    #[test]
    fn endpoints_of_one_named_resource_share_its_bucket() {
        let p = Pacer::new(0.5, Duration::from_secs(90));
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-ratelimit-limit", "100"),
            ("x-ratelimit-remaining", "51"),
            ("x-ratelimit-used", "49"),
            ("x-ratelimit-reset", "1000040"),
            ("x-ratelimit-resource", "core"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        let snap = RateLimitHeaders::GITHUB.read(&h, 1_000_000.0).unwrap();
        assert_eq!(snap.resource.as_deref(), Some("core"));
        p.observe("/orgs/{org}/members", snap.clone());
        p.observe("/orgs/{org}/outside_collaborators", snap);
        // One request left within our half of `core`, whichever endpoint sends it.
        assert_eq!(p.before_request("/orgs/{org}/members", 1_000_000.0), None);
        assert_eq!(
            p.before_request("/orgs/{org}/outside_collaborators", 1_000_000.0),
            Some(Duration::from_secs(40)),
            "the other endpoint's request counted against the same bucket"
        );
        // Another resource is another bucket.
        h.insert(
            "x-ratelimit-resource",
            HeaderValue::from_static("audit_log"),
        );
        p.observe(
            "/orgs/{org}/audit-log",
            RateLimitHeaders::GITHUB.read(&h, 1_000_000.0).unwrap(),
        );
        assert_eq!(p.before_request("/orgs/{org}/audit-log", 1_000_000.0), None);
    }

    #[test]
    fn named_buckets_nobody_points_to_are_dropped() {
        let p = Pacer::new(0.5, Duration::from_secs(90));
        for i in 0..1000 {
            p.observe(
                "e",
                RateLimitSnapshot {
                    limit: 10.0,
                    remaining: 9.0,
                    reset_at_unix: None,
                    resource: Some(format!("r{i}")),
                },
            );
        }
        assert_eq!(p.buckets.lock().unwrap().by_key.len(), 1);
    }

    #[test]
    fn concurrency_429_headers_are_not_a_window() {
        let p = Pacer::new(0.5, Duration::from_secs(90));
        p.observe(
            "b",
            RateLimitSnapshot {
                limit: 0.0,
                remaining: 0.0,
                reset_at_unix: Some(100.0),
                resource: None,
            },
        );
        assert_eq!(p.before_request("b", 0.0), None);
    }

    #[test]
    fn the_rate_cap_never_lets_more_than_its_share_start_in_a_window() {
        let quota = RequestQuota {
            requests: 10,
            per: Duration::from_secs(60),
        };
        let cap = RateCap::new(quota, 0.5);
        assert_eq!(cap.max(), 5);
        // Five start at once; the next five wait for the first five to leave the window.
        let mut starts = Vec::new();
        for _ in 0..10 {
            let wait = cap.reserve(1000.0);
            starts.push(1000.0 + wait.as_secs_f64());
        }
        assert_eq!(&starts[..5], &[1000.0; 5]);
        assert_eq!(&starts[5..], &[1060.0; 5]);
        // Later, once the window has moved on, no wait at all.
        assert_eq!(cap.reserve(1200.0), Duration::ZERO);
        // Whatever the arrival pattern, no 60 s window holds more than 5 starts.
        let cap = RateCap::new(quota, 0.5);
        let mut all = Vec::new();
        for i in 0..200 {
            let now = 2000.0 + f64::from(i) * 3.7;
            all.push(now + cap.reserve(now).as_secs_f64());
        }
        for (i, t) in all.iter().enumerate() {
            let in_window = all[i..].iter().filter(|u| **u < t + 60.0).count();
            assert!(in_window <= 5, "{in_window} starts in the window from {t}");
        }
        // A share too small for one request still allows one.
        assert_eq!(RateCap::new(quota, 0.01).max(), 1);
    }

    #[test]
    fn budget_runs_out() {
        let b = Budget::new(Some(2));
        assert!(b.take().is_ok());
        assert!(b.take().is_ok());
        assert!(matches!(
            b.take(),
            Err(UpstreamError::BudgetExhausted { max: 2 })
        ));
        assert_eq!(b.used(), 2);
        assert_eq!(b.remaining(), Some(0));
        let u = Budget::new(None);
        assert!(u.take().is_ok());
        assert_eq!(u.remaining(), None);
    }
}
