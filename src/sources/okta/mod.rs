//! The `okta` source: users (all statuses), MFA factors through a long-lived per-user cache
//! (`factors.rs`), admin roles, API tokens and the sign-on / app sign-in policies' MFA gaps,
//! mapped into the normalised model. All traffic goes through the shared upstream layer.
//!
//! Layout: `config.rs` (keys) · `wire.rs` (API shapes, lenient) · `map.rs` (pure mapping) ·
//! `client.rs` (requests) · `factors.rs` (factor cache). See docs/okta.md.

pub mod client;
pub mod config;
pub mod events;
pub mod factors;
pub mod map;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use client::{permission_hint, AdminInfo, OktaClient, USERS};
pub use config::{OktaAuth, OktaConfig, RawOktaConfig};
use factors::{FactorCache, FactorRun};
use map::map_user;

use super::{
    optional, AccountSink, ActivityContext, ActivityOutput, Deps, GaugeDesc, PollContext,
    PollOutput, Provider, SourceError, POLL_REQUESTS,
};
use crate::activity::event::EventSink;
use crate::config::{SourceConfig, Validator};
use crate::model::{Account, Credential, DataKind};
use crate::upstream::{Pager, Request, Session, UpstreamError};

/// Late-arriving System Log events: each query overlaps the previous one by this much.
const LOG_OVERLAP: Duration = Duration::from_secs(300);

pub const FACTOR_CACHE_COVERAGE: GaugeDesc = GaugeDesc::new(
    "identity_posture_okta_factor_cache_coverage_ratio",
    "Share of active accounts whose MFA factors are known (factor cache), as of the last background poll.",
);
pub const FACTOR_CACHE_OLDEST: GaugeDesc = GaugeDesc::new(
    "identity_posture_okta_factor_cache_oldest_timestamp_seconds",
    "When the oldest cached MFA factor list was fetched (unix seconds), as of the last background poll.",
);
pub const FACTOR_REFRESHES: GaugeDesc = GaugeDesc::new(
    "identity_posture_okta_factor_refreshes",
    "Accounts whose MFA factors were fetched in the last background poll.",
);
/// The names these gauges had before they followed `identity_posture_<type>_…`; still
/// emitted for one release so existing queries keep working.
const DEPRECATED: [(GaugeDesc, &str); 3] = [
    (FACTOR_CACHE_COVERAGE, "identity_posture_source_factor_cache_coverage_ratio"),
    (FACTOR_CACHE_OLDEST, "identity_posture_source_factor_cache_oldest_timestamp_seconds"),
    (FACTOR_REFRESHES, "identity_posture_source_factor_refreshes"),
];
const DEPRECATED_HELP: &str =
    "Deprecated: renamed to identity_posture_okta_…; this name goes away in the next release.";

/// Optional Okta data refused: a 403 (a scope or admin role the credential lacks). A 401 is
/// a rejected credential and fails the poll instead.
fn refused(e: &UpstreamError) -> Option<String> {
    (e.status() == Some(403)).then(|| {
        format!(
            "{e} — {}",
            permission_hint(e.endpoint().unwrap_or_default())
        )
    })
}

/// One configured Okta org. Long-lived: keeps the factor cache between polls.
pub struct OktaSource {
    client: OktaClient,
    terminated_attribute: Option<String>,
    factor_refresh_per_poll: Option<u32>,
    factor_max_age: Duration,
    /// Factor refreshes stop once this much of the poll has passed (half the poll timeout),
    /// so the listing always completes.
    factor_time_budget: Duration,
    concurrency: usize,
    factors: FactorCache,
}

impl std::fmt::Debug for OktaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OktaSource")
            .field("name", &self.client.name())
            .finish_non_exhaustive()
    }
}

impl Provider for OktaSource {
    const TYPE: &'static str = "okta";
    type Raw = RawOktaConfig;
    type Config = OktaConfig;

    fn validate(raw: RawOktaConfig, v: &mut Validator<'_>) -> Option<OktaConfig> {
        config::validate(raw, v)
    }

    fn build(cfg: &SourceConfig, okta: &OktaConfig, deps: &Deps) -> Result<Self, SourceError> {
        Ok(OktaSource {
            client: OktaClient::new(cfg, okta, deps)?,
            terminated_attribute: okta.terminated_attribute.clone(),
            factor_refresh_per_poll: okta.factor_refresh_per_poll,
            factor_max_age: okta.factor_max_age,
            factor_time_budget: cfg.timeout / 2,
            concurrency: cfg.limits.concurrency.max(1),
            factors: FactorCache::load(
                deps.store.clone(),
                &cfg.name,
                &okta.url,
                okta.factor_max_age,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            ),
        })
    }

    const ACTIVITY: bool = true;

    async fn activity(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> Result<ActivityOutput, SourceError> {
        self.read_log(ctx, sink).await
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let started = Instant::now();
        let c = &self.client;
        let s = c.session(ctx.stats);
        let mut out = PollOutput::default();
        let now_unix = ctx.now.unix_timestamp();
        let fail = |e: UpstreamError| c.error(&e);

        // Admins, their roles and groups.
        let admins = optional(
            &mut out.availability,
            Some(DataKind::Roles),
            c.fetch_admins(&s).await,
            refused,
        )
        .map_err(fail)?;
        if let Some(n) = admins
            .as_ref()
            .map(|m| m.values().filter(|a| a.groups_unknown).count())
            .filter(|n| *n > 0)
        {
            tracing::warn!(source = %c.name(), admins = n, "okta: cannot read admins' groups ({}); privilege rules that allow a role by group are not judged for them", permission_hint(client::GROUPS));
        }

        // API tokens → token credentials of their owners.
        let tokens = optional(
            &mut out.availability,
            Some(DataKind::Credentials),
            c.fetch_api_tokens(&s).await,
            |e| {
                refused(e).map(|r| {
                    format!("partially: API tokens could not be read ({r}); password ages are reported")
                })
            },
        )
        .map_err(fail)?
        .unwrap_or_default();

        // MFA policy gaps (tenant data: unknown when refused).
        out.tenant.mfa_policy_gaps =
            optional(&mut out.availability, None, c.policy_gaps(&s).await, |e| {
                refused(e).map(|r| format!("okta: cannot read policies; MFA policy gaps unknown: {r}"))
            })
            .map_err(fail)?;

        // Factor-change events since the last poll.
        let mut wanted: HashSet<String> = HashSet::new();
        if let Some(since) = self.factors.log_since() {
            match c.factor_events(&s, since, ctx.now).await {
                Ok(ids) => wanted = ids,
                Err(e) => {
                    tracing::warn!(source = %c.name(), error = %e, "okta: cannot read factor-change events from the System Log; changes show up when the cache entry is next refreshed")
                }
            }
        }

        let run = self.factors.plan(
            wanted,
            self.factor_refresh_per_poll,
            s.budget().remaining(),
            now_unix,
            self.factor_max_age,
            started + self.factor_time_budget,
        );

        // Users: the default listing (every status but DEPROVISIONED), then DEPROVISIONED.
        let l = Listing {
            admins: admins.as_ref(),
            tokens: &tokens,
            run: &run,
        };
        let mut seen: HashSet<u64> = HashSet::new();
        let first = Request::get(c.url(USERS, &[("limit", "200")]), USERS);
        let (mut active, mut pages) = self
            .list_users(&s, first, &l, sink, &mut seen, false)
            .await?;
        let deprov = Request::get(
            c.url(
                USERS,
                &[("filter", "status eq \"DEPROVISIONED\""), ("limit", "200")],
            ),
            USERS,
        );
        let (n_active, n_pages) = self
            .list_users(&s, deprov, &l, sink, &mut seen, true)
            .await?;
        active += n_active;
        pages += n_pages;

        // Next System Log window starts a little before this poll (late events).
        let cov = self.factors.finish(&run, active, pages, ctx.now - LOG_OVERLAP);
        if let Some(reason) = run.forbidden() {
            out.availability.set_missing(DataKind::Mfa, reason);
        } else if cov.covered == 0 && active > 0 {
            out.availability.set_missing(
                DataKind::Mfa,
                "no user's factors could be fetched yet (request budget or time budget spent)",
            );
        }
        if run.failed() > 0 {
            tracing::warn!(source = %c.name(), failed = run.failed(), "okta: some factor requests failed; those users keep their cached factors (or unknown)");
        }
        let ratio = if active == 0 {
            1.0
        } else {
            cov.covered as f64 / active as f64
        };
        let mut samples = vec![
            (FACTOR_CACHE_COVERAGE, ratio.min(1.0)),
            (FACTOR_REFRESHES, f64::from(run.refreshed())),
        ];
        if let Some(t) = cov.oldest {
            samples.push((FACTOR_CACHE_OLDEST, t as f64));
        }
        for (desc, value) in samples {
            out.gauges.push(desc.sample(Vec::new(), value));
            if let Some((_, old)) = DEPRECATED.iter().find(|(d, _)| *d == desc) {
                out.gauges
                    .push(GaugeDesc::new(old, DEPRECATED_HELP).sample(Vec::new(), value));
            }
        }
        out.gauges
            .push(POLL_REQUESTS.sample(Vec::new(), f64::from(s.requests_made())));
        tracing::info!(
            source = %c.name(),
            active,
            factors_cached = cov.covered,
            factors_refreshed = run.refreshed(),
            requests = s.requests_made(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "okta poll done"
        );
        Ok(out)
    }
}

impl OktaSource {
    /// Pages through one user listing, refreshing factors for each page while the next
    /// page is fetched. Returns (active users, pages).
    async fn list_users(
        &self,
        s: &Session<'_>,
        first: Request,
        l: &Listing<'_>,
        sink: &mut dyn AccountSink,
        seen: &mut HashSet<u64>,
        deprovisioned_pass: bool,
    ) -> Result<(usize, u32), SourceError> {
        let c = &self.client;
        let mut pager = Pager::link(first);
        let mut active = 0usize;
        let mut page = pager.next_page(s).await.map_err(|e| c.error(&e))?;
        while let Some(resp) = page {
            let users: Vec<wire::OktaUser> = resp.json().map_err(|e| c.error(&e))?;
            pager
                .note_items(users.iter().filter_map(|u| u.id.as_deref()))
                .map_err(|e| c.error(&e))?;
            let mut to_fetch = Vec::new();
            for u in users {
                let Some(mut a) = map_user(u, self.terminated_attribute.as_deref()) else {
                    continue;
                };
                let h = id_hash(&a.id);
                if deprovisioned_pass {
                    if seen.contains(&h) {
                        continue; // changed status between the two listings
                    }
                } else {
                    seen.insert(h);
                }
                attach(&mut a, l);
                if a.status.is_active() {
                    active += 1;
                    if self.factors.claim(&a.id, l.run) {
                        to_fetch.push(a);
                        continue;
                    }
                    a.mfa = self.factors.cached(&a.id, l.run.generation);
                }
                sink.push(a);
            }
            let fetches = self
                .factors
                .refresh(c, s, to_fetch, l.run, self.concurrency);
            let (done, next) = futures_util::future::join(fetches, pager.next_page(s)).await;
            for a in done {
                sink.push(a);
            }
            page = next.map_err(|e| c.error(&e))?;
        }
        Ok((active, pager.pages()))
    }
}

/// System Log pages read per poll at most (1,000 events each); the rest waits for the next poll.
pub const LOG_MAX_PAGES: u32 = 20;
/// A refused (expired) cursor restarts the query this long before the newest event seen.
const CURSOR_RESTART_OVERLAP: Duration = Duration::from_secs(600);

impl OktaSource {
    /// Reads the System Log forward from the stored cursor (or `ctx.since`): a polling
    /// query, page by page, until a page is empty (its `next` link is the next poll's
    /// cursor), the page cap, or the request budget.
    async fn read_log(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> Result<ActivityOutput, SourceError> {
        use events::{map_log_event, LogCursor, Mapped};
        let c = &self.client;
        let s = c.continue_session(ctx.stats);
        let stored: Option<LogCursor> = ctx
            .cursor
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let logs_path = c.url(client::LOGS, &[]).path().to_string();
        // A stored cursor is followed unless it is older than the look-back (after downtime
        // the read restarts at `since`, so catching up stays bounded) or not an Okta log link.
        let resume = stored.as_ref().and_then(|cur| {
            if cur.newest.is_some_and(|n| n < ctx.since) {
                return None;
            }
            let u = c.base().join(cur.next.trim_start_matches('/')).ok()?;
            (u.origin() == c.base().origin() && u.path() == logs_path).then_some(u)
        });
        let fresh = |since: crate::model::Timestamp| {
            let since = crate::model::format_ts(since);
            Request::get(
                c.url(
                    client::LOGS,
                    &[
                        ("since", since.as_str()),
                        ("sortOrder", "ASCENDING"),
                        ("limit", "1000"),
                    ],
                ),
                client::LOGS,
            )
        };
        let mut newest = stored.as_ref().and_then(|c| c.newest);
        // Body mode: the `next` link is followed by hand, because on an empty page Okta's
        // `next` repeats the page's own URL (the pager would call that a loop).
        // At most LOG_MAX_PAGES pages: the page after them is not requested ahead.
        let pager_for = |r| {
            Pager::body(r)
                .with_max_pages(LOG_MAX_PAGES + 1)
                .stop_after(LOG_MAX_PAGES)
        };
        let mut pager = pager_for(match &resume {
            Some(u) => Request::get(u.clone(), client::LOGS),
            None => fresh(ctx.since),
        });
        let mut out = ActivityOutput::default();
        let mut next: Option<String> = None;
        let mut restarted = resume.is_none();
        loop {
            if pager.pages() >= LOG_MAX_PAGES {
                out.more = true;
                break;
            }
            let page = match pager.next_page(&s).await {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(UpstreamError::BudgetExhausted { .. } | UpstreamError::BytesExhausted { .. }) => {
                    out.more = true;
                    break;
                }
                Err(e) if !restarted && pager.pages() == 0 && matches!(e.status(), Some(400 | 404 | 410)) => {
                    // The cursor expired or was refused: query again from the newest event
                    // seen (less an overlap), or the look-back.
                    tracing::warn!(source = %c.name(), error = %e, "okta: the System Log cursor was refused; reading again from the newest event seen");
                    restarted = true;
                    let since = newest
                        .map(|n| (n - CURSOR_RESTART_OVERLAP).max(ctx.since))
                        .unwrap_or(ctx.since);
                    pager = pager_for(fresh(since));
                    continue;
                }
                Err(e) if e.status() == Some(403) => {
                    // No okta.logs.read: activity unknown, the poll goes on.
                    out.unavailable = refused(&e);
                    out.requests = s.requests_made();
                    return Ok(out);
                }
                Err(e) => return Err(c.error(&e)),
            };
            restarted = true;
            let this_next = crate::upstream::next_link(&page.headers, &page.url);
            let items: Vec<serde_json::Value> = page.json().map_err(|e| c.error(&e))?;
            if items.is_empty() {
                // The end of the stream for now. Okta's `next` on an empty page is where
                // the following events will be; without one, this page's own URL is.
                next = Some(relative(this_next.as_ref().unwrap_or(&page.url)));
                break;
            }
            // No `note_items` here: a polling page may hold nothing but an event already
            // read (Okta can list one event on two pages); the engine counts it once, and
            // the cursor still moves on (a repeated `next` link is refused by the pager).
            // The next page is named (and so requested, while this one is mapped) first; a
            // refused link fails the read once this page's events are in, as before.
            let named = match &this_next {
                Some(u) => {
                    next = Some(relative(u));
                    pager.set_next(crate::upstream::NextPage::Url(u.to_string()))
                }
                None => {
                    // A bounded answer (no `next`): the stream resumes from this page.
                    next = Some(relative(&page.url));
                    Ok(())
                }
            };
            for v in &items {
                match map_log_event(v) {
                    Mapped::Event(e) => {
                        // (An event from a clock far ahead must not move the restart point.)
                        if e.time <= ctx.now && newest.is_none_or(|n| e.time > n) {
                            newest = Some(e.time);
                        }
                        sink.push(*e);
                    }
                    Mapped::Skip => {}
                    Mapped::Bad(why) => sink.unparsable(&why),
                }
            }
            named.map_err(|e| c.error(&e))?;
            if this_next.is_none() {
                break;
            }
        }
        out.requests = s.requests_made();
        out.cursor = next
            .map(|next| LogCursor { next, newest })
            .or(stored)
            .and_then(|c| serde_json::to_value(c).ok());
        Ok(out)
    }
}

/// A URL's path and query (a cursor never stores the origin: it is re-joined to the base).
fn relative(u: &url::Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}

/// What every page of a listing needs to finish its accounts.
struct Listing<'a> {
    admins: Option<&'a HashMap<String, AdminInfo>>,
    tokens: &'a HashMap<String, Vec<Credential>>,
    run: &'a FactorRun,
}

/// Roles, groups and API tokens.
fn attach(a: &mut Account, l: &Listing<'_>) {
    match l.admins {
        Some(admins) => match admins.get(&a.id) {
            Some(info) => {
                a.roles = Some(info.roles.clone());
                a.groups = info.groups.clone();
                a.groups_unknown = info.groups_unknown;
            }
            None => a.roles = Some(Vec::new()),
        },
        None => a.roles = None,
    }
    if let Some(t) = l.tokens.get(&a.id) {
        a.credentials
            .get_or_insert_with(Vec::new)
            .extend(t.iter().cloned());
    }
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}
