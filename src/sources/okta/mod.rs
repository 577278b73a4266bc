//! The `okta` source: users (all statuses), MFA factors through a long-lived per-user cache
//! (`factors.rs`), admin roles, API tokens and the sign-on / app sign-in policies' MFA gaps,
//! mapped into the normalised model. All traffic goes through the shared upstream layer.
//!
//! Layout: `config.rs` (keys) · `wire.rs` (API shapes, lenient) · `map.rs` (pure mapping) ·
//! `client.rs` (requests) · `factors.rs` (factor cache). See docs/okta.md.

pub mod client;
pub mod config;
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
    optional, AccountSink, Deps, GaugeDesc, PollContext, PollOutput, Provider, SourceError,
    POLL_REQUESTS,
};
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
            factors: FactorCache::default(),
        })
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
