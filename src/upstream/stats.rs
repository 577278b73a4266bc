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
    /// Method and endpoint (a path template) of every request sent and not yet answered,
    /// oldest first, each with its id ([`Activity::start`]). Requests run concurrently: one
    /// slot would be overwritten, or cleared by a quick request while a slow one hangs.
    pub in_flight: Vec<(u64, String)>,
    /// The id the next request gets.
    pub next_id: u64,
    /// Waiting before the next request (rate-limit reset, `Retry-After` or backoff) until
    /// this unix time, and why.
    pub waiting_until: Option<(f64, &'static str)>,
    /// Retries in the current poll so far.
    pub retries: u32,
    /// Requests in the current poll so far.
    pub requests: u32,
}

impl Activity {
    /// A request was sent: returns its id, for [`Activity::finish`].
    pub fn start(&mut self, label: String) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.push((id, label));
        id
    }

    /// The request `id` was answered (or abandoned).
    pub fn finish(&mut self, id: u64) {
        self.in_flight.retain(|(i, _)| *i != id);
    }

    /// One line for an error message, e.g. "in flight: GET /api/v1/users; 3 requests, 1 retry"
    /// (the oldest requests first, at most three named).
    pub fn describe(&self, now_unix: f64) -> String {
        let mut parts = Vec::new();
        if !self.in_flight.is_empty() {
            let named: Vec<&str> = self
                .in_flight
                .iter()
                .take(3)
                .map(|(_, l)| l.as_str())
                .collect();
            let more = self.in_flight.len() - named.len();
            let mut s = format!("in flight: {}", named.join(", "));
            if more > 0 {
                s.push_str(&format!(" and {more} more"));
            }
            parts.push(s);
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
    /// Marks a request in flight until [`RequestStats::answered`] with the returned id. A
    /// request whose future is dropped (the poll timed out) stays listed until the next poll:
    /// that is what the timeout error names.
    pub fn in_flight(&self, label: String) -> u64 {
        let mut id = 0;
        self.update_activity(|a| id = a.start(label));
        id
    }

    /// The request `id` was answered (or failed).
    pub fn answered(&self, id: u64) {
        self.update_activity(|a| a.finish(id));
    }

    /// A new poll begins: forget the previous poll's activity.
    pub fn reset_activity(&self) {
        // Ids keep counting: a request of the previous poll still finishing removes only itself.
        self.update_activity(|a| {
            *a = Activity {
                next_id: a.next_id,
                ..Activity::default()
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_names_what_is_in_flight_and_waiting() {
        let mut a = Activity {
            waiting_until: Some((130.0, "the rate-limit reset")),
            retries: 1,
            requests: 3,
            ..Activity::default()
        };
        a.start("GET /api/v1/users".into());
        assert_eq!(
            a.describe(100.0),
            "in flight: GET /api/v1/users; waiting 30s more for the rate-limit reset; 3 requests and 1 retry so far"
        );
        assert_eq!(
            Activity::default().describe(0.0),
            "0 requests and 0 retries so far"
        );
    }

    #[test]
    fn a_quick_request_does_not_hide_a_hung_one() {
        let stats = RequestStats::default();
        let hung = stats.in_flight("GET /users".into());
        for ep in ["GET /groups", "GET /roles", "GET /apps", "GET /keys"] {
            let quick = stats.in_flight(ep.into());
            stats.answered(quick);
        }
        let (b, c, d) = (
            stats.in_flight("GET /b".into()),
            stats.in_flight("GET /c".into()),
            stats.in_flight("GET /d".into()),
        );
        assert_eq!(
            stats.activity().describe(0.0),
            "in flight: GET /users, GET /b, GET /c and 1 more; 0 requests and 0 retries so far"
        );
        for id in [hung, b, c, d] {
            stats.answered(id);
        }
        assert!(stats.activity().in_flight.is_empty());
    }
}
