//! The Okta factor cache: factors are per user (one request each), so they are kept between
//! polls and refreshed oldest-first within a per-poll budget (requests and half the poll's
//! time), plus at once for users named in factor-change System Log events. A user whose
//! factors were never fetched has unknown MFA, never "no MFA". The cache is persisted in the
//! state store (`[storage] state_dir`): a restart does not re-fetch every user's factors.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::client::{permission_hint, OktaClient, FACTORS};
use crate::model::{Account, Factor, Mfa, Timestamp};
use crate::store::{Batch, Store};
use crate::upstream::{Session, UpstreamError};

/// Cached factor lists, keyed `source\x1fuser id`.
pub const TABLE: &str = "okta_factors";
/// Per source: the org the entries came from and what the next poll's plan needs.
pub const META: &str = "okta_factor_meta";
const VERSION: u16 = 1;
const SEP: char = '\u{1f}';

/// One user's entry as stored.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    factors: Vec<Factor>,
    fetched_at: i64,
}

/// The cache's bookkeeping as stored.
#[derive(Serialize, Deserialize)]
struct StoredMeta {
    /// Entries from another org (the source's `url` changed) are dropped.
    org: String,
    /// Unix seconds.
    log_since: Option<i64>,
    last_active: usize,
    last_pages: u32,
}

/// Where the cache is persisted.
struct Persist {
    store: Arc<Store>,
    source: String,
    org: String,
}

impl Persist {
    /// A user's key in [`TABLE`].
    fn key(&self, id: &str) -> String {
        format!("{}{SEP}{id}", self.source)
    }
}

struct CacheEntry {
    factors: Vec<Factor>,
    /// When the factors were fetched (unix seconds).
    fetched_at: i64,
    /// The poll generation that last saw this user active; older entries are pruned.
    seen: u64,
}

#[derive(Default)]
struct State {
    cache: HashMap<String, CacheEntry>,
    generation: u64,
    /// Start of the next System Log window for factor-change events.
    log_since: Option<Timestamp>,
    /// Active users and listing pages at the last poll (to plan the budget).
    last_active: usize,
    last_pages: u32,
    /// Users fetched since the last save.
    dirty: HashSet<String>,
}

/// The cache, long-lived inside the source.
pub struct FactorCache {
    state: Mutex<State>,
    persist: Persist,
}

/// One poll's refresh plan and bookkeeping, shared by the concurrent fetches.
pub struct FactorRun {
    /// Refreshes still allowed this poll.
    left: AtomicUsize,
    deadline: Instant,
    /// Set on a 401/403 from the factors endpoint: no further attempts this poll.
    forbidden: Mutex<Option<String>>,
    stopped: AtomicBool,
    refreshed: AtomicU32,
    failed: AtomicU32,
    /// Users to refresh whatever their cache age: factor-change events, and the oldest entries.
    wanted: HashSet<String>,
    now_unix: i64,
    pub generation: u64,
}

impl FactorRun {
    /// Why factors could not be read at all this poll, if they could not.
    pub fn forbidden(&self) -> Option<String> {
        self.forbidden
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn refreshed(&self) -> u32 {
        self.refreshed.load(Ordering::Relaxed)
    }
    pub fn failed(&self) -> u32 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// What the cache holds after a poll.
pub struct Coverage {
    pub covered: usize,
    pub oldest: Option<i64>,
}

impl FactorCache {
    /// The cache `source` saved in `store` for the org at `org` (empty if none, or if it was
    /// saved for another org), persisted there after every poll. A System Log window older
    /// than `max_age` is not resumed: every entry is due for a refresh then anyway.
    pub fn load(
        store: Arc<Store>,
        source: &str,
        org: &str,
        max_age: Duration,
        now_unix: i64,
    ) -> FactorCache {
        let prefix = format!("{source}{SEP}");
        let entries = store.scan::<StoredEntry>(TABLE, &prefix, VERSION);
        let mut state = State::default();
        match store.get::<StoredMeta>(META, source, VERSION) {
            Some(meta) if meta.org == org => {
                state.log_since = meta
                    .log_since
                    .filter(|t| *t >= now_unix - max_age.as_secs() as i64)
                    .and_then(|t| Timestamp::from_unix_timestamp(t).ok());
                state.last_active = meta.last_active;
                state.last_pages = meta.last_pages;
                state.cache = entries
                    .into_iter()
                    .map(|(k, e)| {
                        let entry = CacheEntry {
                            factors: e.factors,
                            fetched_at: e.fetched_at,
                            seen: 0,
                        };
                        (k[prefix.len()..].to_string(), entry)
                    })
                    .collect();
                if !state.cache.is_empty() {
                    tracing::info!(source, users = state.cache.len(), "okta: factor cache restored from the state store");
                }
            }
            other => {
                if other.is_some() || !entries.is_empty() {
                    tracing::info!(source, "okta: the stored factor cache is for another org (or incomplete); starting it afresh");
                    let mut batch = Batch::default();
                    for (k, _) in &entries {
                        batch.delete(TABLE, k);
                    }
                    batch.delete(META, source);
                    if let Err(e) = store.write(batch) {
                        tracing::warn!(source, error = %e, "okta: cannot clear the stored factor cache");
                    }
                }
            }
        }
        FactorCache {
            state: Mutex::new(state),
            persist: Persist {
                store,
                source: source.to_string(),
                org: org.to_string(),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the next System Log window starts (`None` before the first poll).
    pub fn log_since(&self) -> Option<Timestamp> {
        self.lock().log_since
    }

    /// Plans this poll's refreshes: the users in `wanted` (factor-change events) and the
    /// entries older than `max_age`, oldest first, within `per_poll` and what the request
    /// budget leaves after the listing.
    pub fn plan(
        &self,
        mut wanted: HashSet<String>,
        per_poll: Option<u32>,
        remaining_requests: Option<u32>,
        now_unix: i64,
        max_age: Duration,
        deadline: Instant,
    ) -> FactorRun {
        let (generation, planned_old, budget) = {
            let mut st = self.lock();
            st.generation += 1;
            let mut budget = per_poll.map(|n| n as usize).unwrap_or(usize::MAX);
            if let Some(rem) = remaining_requests {
                // Keep enough for the listing (last poll's pages, twice over, plus slack).
                let reserve = st.last_pages as usize * 2 + 10;
                budget = budget.min((rem as usize).saturating_sub(reserve));
            }
            // Entries older than max_age, oldest first, leaving room for users not cached yet.
            let uncached = st.last_active.saturating_sub(st.cache.len());
            let room = budget.saturating_sub(wanted.len() + uncached);
            let stale_before = now_unix - max_age.as_secs() as i64;
            let mut old: Vec<(&String, i64)> = st
                .cache
                .iter()
                .filter(|(_, v)| v.fetched_at <= stale_before)
                .map(|(k, v)| (k, v.fetched_at))
                .collect();
            let take = room.min(old.len());
            if take > 0 && take < old.len() {
                old.select_nth_unstable_by_key(take - 1, |(_, t)| *t);
            }
            let planned: Vec<String> = old[..take].iter().map(|(k, _)| (*k).clone()).collect();
            (st.generation, planned, budget)
        };
        wanted.extend(planned_old);
        FactorRun {
            left: AtomicUsize::new(budget),
            deadline,
            forbidden: Mutex::new(None),
            stopped: AtomicBool::new(false),
            refreshed: AtomicU32::new(0),
            failed: AtomicU32::new(0),
            wanted,
            now_unix,
            generation,
        }
    }

    /// Whether this user's factors are fetched now (taking one from the refresh budget).
    pub fn claim(&self, id: &str, run: &FactorRun) -> bool {
        if run.stopped.load(Ordering::Relaxed) {
            return false;
        }
        if Instant::now() >= run.deadline {
            run.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        let needed = run.wanted.contains(id) || !self.lock().cache.contains_key(id);
        if !needed {
            return false;
        }
        run.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The cached factors (marking the entry as still in use), or `None` = unknown.
    pub fn cached(&self, id: &str, generation: u64) -> Option<Mfa> {
        let mut st = self.lock();
        let e = st.cache.get_mut(id)?;
        e.seen = generation;
        Some(Mfa {
            factors: e.factors.clone(),
            enforced: None,
        })
    }

    /// Fetches the factors of `accounts` (concurrently), storing them in the cache; an
    /// account whose fetch failed keeps its cached factors (or unknown).
    pub async fn refresh(
        &self,
        client: &OktaClient,
        s: &Session<'_>,
        accounts: Vec<Account>,
        run: &FactorRun,
        concurrency: usize,
    ) -> Vec<Account> {
        stream::iter(accounts)
            .map(|mut a| async move {
                let r = if run.stopped.load(Ordering::Relaxed) {
                    None
                } else {
                    Some(client.fetch_factors(s, &a.id).await)
                };
                match r {
                    Some(Ok(factors)) => {
                        run.refreshed.fetch_add(1, Ordering::Relaxed);
                        let mut st = self.lock();
                        st.cache.insert(
                            a.id.clone(),
                            CacheEntry {
                                factors: factors.clone(),
                                fetched_at: run.now_unix,
                                seen: run.generation,
                            },
                        );
                        st.dirty.insert(a.id.clone());
                        drop(st);
                        a.mfa = Some(Mfa {
                            factors,
                            enforced: None,
                        });
                        return a;
                    }
                    Some(Err(e)) if e.status() == Some(403) => {
                        run.stopped.store(true, Ordering::Relaxed);
                        let mut f = run.forbidden.lock().unwrap_or_else(|e| e.into_inner());
                        f.get_or_insert_with(|| format!("{e} — {}", permission_hint(FACTORS)));
                    }
                    Some(Err(UpstreamError::BudgetExhausted { .. })) => {
                        run.stopped.store(true, Ordering::Relaxed);
                    }
                    Some(Err(e)) if e.status() == Some(404) => {}
                    Some(Err(e)) => {
                        run.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(source = %client.name(), error = %e, "okta: factor request failed");
                        if matches!(e.status(), Some(401 | 429)) {
                            // Credential rejected, or a rate limit not recovering: leave the
                            // rest for the next poll.
                            run.stopped.store(true, Ordering::Relaxed);
                        }
                    }
                    None => {}
                }
                a.mfa = self.cached(&a.id, run.generation);
                a
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }

    /// Prunes users no longer active, records what the next poll needs, persists what
    /// changed (one atomic write), reports coverage.
    pub fn finish(
        &self,
        run: &FactorRun,
        active: usize,
        pages: u32,
        next_log_since: Timestamp,
    ) -> Coverage {
        let mut st = self.lock();
        let mut pruned = Vec::new();
        st.cache.retain(|id, e| {
            let keep = e.seen == run.generation;
            if !keep {
                pruned.push(id.clone());
            }
            keep
        });
        st.last_active = active;
        st.last_pages = pages;
        st.log_since = Some(next_log_since);
        let dirty = std::mem::take(&mut st.dirty);
        let p = &self.persist;
        let mut batch = Batch::default();
        for id in &pruned {
            batch.delete(TABLE, &p.key(id));
        }
        for id in &dirty {
            if let Some(e) = st.cache.get(id) {
                let stored = StoredEntry {
                    factors: e.factors.clone(),
                    fetched_at: e.fetched_at,
                };
                batch.put(TABLE, &p.key(id), VERSION, &stored);
            }
        }
        let meta = StoredMeta {
            org: p.org.clone(),
            log_since: Some(next_log_since.unix_timestamp()),
            last_active: active,
            last_pages: pages,
        };
        batch.put(META, &p.source, VERSION, &meta);
        if let Err(e) = p.store.write(batch) {
            tracing::warn!(source = %p.source, error = %e, "okta: cannot persist the factor cache; it is kept in memory");
        }
        Coverage {
            covered: st.cache.len(),
            oldest: st.cache.values().map(|e| e.fetched_at).min(),
        }
    }
}
