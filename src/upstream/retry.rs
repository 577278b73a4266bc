//! Retry policy: exponential backoff with jitter for transient failures (5xx, timeouts,
//! connection errors), and the clamped wait for a 429 taken from `Retry-After` or the
//! provider's reset header.

use std::time::Duration;

use rand::Rng;

/// How a source retries. Every wait is bounded, so a hostile or broken header can never park a
/// poll for longer than [`RetryPolicy::max_rate_limit_wait`].
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per request for transient failures, the first one included.
    pub max_attempts: u32,
    /// Attempts per request when answered 429 (they are not transient failures, so they
    /// have their own allowance).
    pub max_rate_limited_attempts: u32,
    /// Backoff before the first retry; doubled on each further retry.
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    pub max_delay: Duration,
    /// Upper bound of one wait asked for by the provider (429 `Retry-After` / reset header,
    /// and proactive pacing until a rate-limit window resets).
    pub max_rate_limit_wait: Duration,
    /// Lower bound of a 429 wait: a reset "in the past" (clock skew) still waits this long.
    pub min_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_rate_limited_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            // Okta and most providers use one-minute windows.
            max_rate_limit_wait: Duration::from_secs(90),
            min_rate_limit_wait: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0 = first retry): "equal jitter", a random
    /// duration in `[d/2, d]` where `d = min(max_delay, base_delay * 2^retry)`.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)));
        let d = exp.min(self.max_delay);
        let half = d / 2;
        let jitter_ms = half.as_millis() as u64;
        let extra = if jitter_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(rng.random_range(0..=jitter_ms))
        };
        half + extra
    }

    /// Clamps a wait the provider asked for into `[min_rate_limit_wait, max_rate_limit_wait]`.
    pub fn clamp_wait(&self, d: Duration) -> Duration {
        d.max(self.min_rate_limit_wait)
            .min(self.max_rate_limit_wait.max(self.min_rate_limit_wait))
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). `None` when
/// the value is neither (it is then ignored, never trusted).
pub fn parse_retry_after(v: &str, now_unix: f64) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(1e9)));
        }
        return None;
    }
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(v, &fmt).ok()?.assume_utc();
    let delta = at.unix_timestamp() as f64 - now_unix;
    Some(Duration::from_secs_f64(delta.clamp(0.0, 1e9)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let b0 = p.backoff(0, &mut rng);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
            let b2 = p.backoff(2, &mut rng);
            assert!(b2 >= Duration::from_millis(200) && b2 <= Duration::from_millis(400));
            let b30 = p.backoff(30, &mut rng);
            assert!(b30 >= Duration::from_millis(500) && b30 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        assert_eq!(parse_retry_after("7", 0.0), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 ", 0.0),
            Some(Duration::from_millis(1500))
        );
        // 1994-11-06T08:49:37Z = 784111777
        let d = parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770.0);
        assert_eq!(d, Some(Duration::from_secs(7)));
        // A date in the past waits nothing (the clamp adds the minimum).
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800.0),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0.0), None);
        assert_eq!(parse_retry_after("-3", 0.0), None);
        assert_eq!(parse_retry_after("NaN", 0.0), None);
    }

    #[test]
    fn waits_are_clamped() {
        let p = RetryPolicy::default();
        assert_eq!(p.clamp_wait(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            p.clamp_wait(Duration::from_secs(86_400)),
            Duration::from_secs(90)
        );
    }
}
