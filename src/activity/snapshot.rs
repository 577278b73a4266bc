//! What one source's activity looks like to readers: the [`ActivityCell`] holding the engine
//! between polls and the [`Snapshot`] the last read published for `/metrics`, the API and
//! the view (values from the last background poll, never computed at scrape time).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use super::detect::{Detection, Kind};
use super::engine::Engine;
use super::facts::Facts;
use super::health::Health;
use super::policy::ActivityPolicy;
use crate::model::{Severity, Timestamp};

/// One source's activity: the engine (loaded from the store on first use) and what readers see.
#[derive(Default)]
pub struct ActivityCell {
    /// `None` until the first read loads it from the store (or while a read holds it).
    pub engine: tokio::sync::Mutex<Option<Engine>>,
    /// The account facts of the last good listing.
    facts: Mutex<Arc<Facts>>,
    pub snapshot: ArcSwapOption<Snapshot>,
}

/// What the last activity read published (values from the last background poll).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub evaluated_at: Timestamp,
    pub policy: ActivityPolicy,
    pub health: Health,
    /// Every detection kept, oldest first.
    pub detections: Arc<Vec<Detection>>,
    /// Detections inside their window at `evaluated_at`, `[kind][severity]`.
    pub active: Vec<u64>,
    /// The read succeeded (a refusal that makes activity unknown is a success).
    pub up: bool,
    pub last_error: Option<String>,
    /// Activity is unknown for this source, and why (licence, permission).
    pub unavailable: Option<String>,
    /// `evaluated_at` minus the newest event counted.
    pub lag_seconds: Option<f64>,
    /// (accounts, IPs, sessions, window events) held by the detectors.
    pub tracked: (usize, usize, usize, usize),
    /// Upstream requests the read made.
    pub requests: u32,
    /// The read stopped before the end of the stream; the next poll continues.
    pub more: bool,
    pub reads: u64,
    pub read_failures: u64,
}

impl Snapshot {
    pub fn active_at(&self, k: Kind, s: Severity) -> u64 {
        let si = Severity::ALL.iter().position(|x| *x == s).unwrap_or(0);
        self.active[k as usize * Severity::ALL.len() + si]
    }
}

impl ActivityCell {
    pub fn new() -> ActivityCell {
        ActivityCell::default()
    }
    /// The last good listing's facts.
    pub fn facts(&self) -> Arc<Facts> {
        self.facts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replaces the facts with a newer listing's.
    pub fn set_facts(&self, f: Facts) {
        *self.facts.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(f);
    }
}
