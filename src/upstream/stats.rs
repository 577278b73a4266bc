//! Request statistics the upstream layer keeps for each source: requests by status class,
//! rate-limited responses, bytes read, and what is in flight right now (so a poll that times
//! out can say what it was waiting for). The layer owns them; sources and metrics read them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters one source's upstream traffic feeds; they live as long as the process. Clones
/// share the counters (a request sent from a spawned task counts into the same ones).
#[derive(Debug, Default, Clone)]
pub struct RequestStats {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Upstream requests by status class (`2xx`, `4xx`, `429`, `5xx`, `error` …).
    api_requests: Mutex<BTreeMap<&'static str, u64>>,
    rate_limited: AtomicU64,
    activity: Mutex<Activity>,
}

/// What the source's upstream traffic is doing at this moment.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Activity {
    /// Method and endpoint (a path template) of the newest request sent and not yet answered.
    pub in_flight: Option<String>,
    /// Waiting before the next request (rate-limit reset, `Retry-After` or backoff) until
    /// this unix time, and why.
    pub waiting_until: Option<(f64, &'static str)>,
    /// Retries in the current poll so far.
    pub retries: u32,
    /// Requests in the current poll so far.
    pub requests: u32,
}

impl Activity {
    /// One line for an error message, e.g. "in flight: GET /api/v1/users; 3 requests, 1 retry".
    pub fn describe(&self, now_unix: f64) -> String {
        let mut parts = Vec::new();
        if let Some(r) = &self.in_flight {
            parts.push(format!("in flight: {r}"));
        }
        if let Some((until, why)) = self.waiting_until {
            let left = (until - now_unix).max(0.0);
            parts.push(format!("waiting {left:.0}s more for {why}"));
        }
        parts.push(format!(
            "{} request{} and {} retr{} so far",
            self.requests,
            if self.requests == 1 { "" } else { "s" },
            self.retries,
            if self.retries == 1 { "y" } else { "ies" }
        ));
        parts.join("; ")
    }
}

impl RequestStats {
    pub fn count_request(&self, code: &'static str) {
        let mut m = self
            .inner
            .api_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *m.entry(code).or_default() += 1;
    }
    pub fn count_rate_limited(&self) {
        self.inner.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    pub fn api_requests(&self) -> BTreeMap<String, u64> {
        self.inner
            .api_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect()
    }
    pub fn rate_limited(&self) -> u64 {
        self.inner.rate_limited.load(Ordering::Relaxed)
    }

    /// What is happening now (a copy).
    pub fn activity(&self) -> Activity {
        self.inner
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn update_activity(&self, f: impl FnOnce(&mut Activity)) {
        f(&mut self
            .inner
            .activity
            .lock()
            .unwrap_or_else(|e| e.into_inner()))
    }
    /// A new poll begins: forget the previous poll's activity.
    pub fn reset_activity(&self) {
        self.update_activity(|a| *a = Activity::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_names_what_is_in_flight_and_waiting() {
        let a = Activity {
            in_flight: Some("GET /api/v1/users".into()),
            waiting_until: Some((130.0, "the rate-limit reset")),
            retries: 1,
            requests: 3,
        };
        assert_eq!(
            a.describe(100.0),
            "in flight: GET /api/v1/users; waiting 30s more for the rate-limit reset; 3 requests and 1 retry so far"
        );
        assert_eq!(
            Activity::default().describe(0.0),
            "0 requests and 0 retries so far"
        );
    }
}
