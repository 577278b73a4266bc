//! Time for the upstream layer: the wall clock (provider reset headers are epoch seconds) and
//! sleeping (backoff, pacing). Behind a trait so tests can run every wait instantly and assert
//! on the durations that were asked for, instead of timing anything.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

/// The clock and sleeper the upstream layer uses.
pub trait Timer: Send + Sync + 'static {
    /// Wall-clock time as unix seconds.
    fn now_unix(&self) -> f64;
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// The real clock and `tokio::time::sleep`.
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    fn now_unix(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A virtual clock for tests: `sleep` returns at once, records the duration and moves the
/// clock forward by it, so code that waits "until the reset" sees the reset arrive.
#[derive(Debug, Clone)]
pub struct ManualTimer {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: f64,
    sleeps: Vec<Duration>,
}

impl ManualTimer {
    /// A clock that starts at `start_unix`.
    pub fn new(start_unix: f64) -> ManualTimer {
        ManualTimer {
            inner: Arc::new(Mutex::new(ManualState {
                now: start_unix,
                sleeps: Vec::new(),
            })),
        }
    }
    /// A clock that starts at the real current time (so real reset headers make sense).
    pub fn starting_now() -> ManualTimer {
        ManualTimer::new(TokioTimer.now_unix())
    }
    /// Moves the clock forward without recording a sleep.
    pub fn advance(&self, d: Duration) {
        self.lock().now += d.as_secs_f64();
    }
    /// Every sleep asked for so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }
    /// The sum of all sleeps asked for so far.
    pub fn slept(&self) -> Duration {
        self.lock().sleeps.iter().sum()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Timer for ManualTimer {
    fn now_unix(&self) -> f64 {
        self.lock().now
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        {
            let mut s = self.lock();
            s.now += d.as_secs_f64();
            s.sleeps.push(d);
        }
        // Yield once so concurrent tasks still interleave as they would around a real sleep.
        Box::pin(tokio::task::yield_now())
    }
}
