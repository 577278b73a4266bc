//! The `google` source: Google Workspace through the Admin SDK, as a service account with
//! domain-wide delegation. Users and their 2-Step Verification (Directory API), the second
//! factors they sign in with (Reports API login audit), and admin roles (role assignments,
//! group-held ones expanded), mapped into the model.
//!
//! Layout: `config.rs` (keys, the JSON key file) · `wire.rs` (Admin SDK shapes, lenient) ·
//! `map.rs` (pure mapping, the challenge-method table) · `logins.rs` (the login audit ledger
//! kept between polls) · `client.rs` (token, requests, paging, throttling, error hints).
//! See docs/google.md.

pub mod client;
pub mod config;
pub mod events;
pub mod logins;
pub mod map;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};

use client::{GoogleClient, LOGINS};
pub use config::{GoogleConfig, RawGoogleConfig, ServiceAccountKey};
use logins::LoginLedger;
use map::{map_user, RoleSource, SeenFactors, UserContext, SUPER_ADMIN_ROLE};
use wire::{Activity, ItemsPage, UsersPage};

use super::{
    optional, AccountSink, ActivityContext, ActivityOutput, Deps, GaugeDesc, PollContext,
    PollOutput, Provider, SourceError, POLL_REQUESTS,
};
use crate::activity::event::EventSink;
use crate::config::{SourceConfig, Validator};
use crate::model::DataKind;
use crate::upstream::{Session, UpstreamError};

pub const LOGIN_AUDIT_COVERAGE: GaugeDesc = GaugeDesc::new(
    "identity_posture_google_login_audit_coverage_ratio",
    "Share of the last 30 days of the Reports API login audit read (factor kinds come from it; 0 when the audit is refused), as of the last background poll.",
);
pub const UNRECOGNISED_CHALLENGES: GaugeDesc = GaugeDesc::new(
    "identity_posture_google_unrecognized_challenge_methods",
    "Users whose sign-ins in the last 30 days passed a login_challenge_method the exporter does not recognise (taken as factor type other; the values are logged), as of the last background poll.",
);
pub const ROLE_ASSIGNMENTS_AVAILABLE: GaugeDesc = GaugeDesc::new(
    "identity_posture_google_role_assignments_available",
    "1 if admin role assignments could be read, 0 if only the users' isAdmin / isDelegatedAdmin flags were (role management scope or privilege refused), as of the last background poll.",
);

/// Who holds which role, from the role assignments.
#[derive(Debug, Default)]
struct RoleIndex {
    /// By user id: roles assigned to the user or to a group the user is in.
    by_user: HashMap<String, Vec<Arc<str>>>,
    /// Roles held by every user (a group with the whole account as a `CUSTOMER` member).
    everyone: Vec<Arc<str>>,
    /// Group members could not be read: why.
    groups_unknown: Option<String>,
}

enum RolesRead {
    Assignments(RoleIndex),
    /// Role assignments refused: why.
    Flags(String),
}

/// A refusal of optional data: 403 that is not throttling.
fn refused(e: &UpstreamError) -> bool {
    e.status() == Some(403) && !e.is_rate_limited()
}

/// One configured Workspace account. Long-lived: keeps the login audit ledger.
pub struct GoogleSource {
    client: GoogleClient,
    ledger: LoginLedger,
    /// Role names `policy.super_admin_roles` counts.
    super_admin_names: Vec<String>,
    concurrency: usize,
    /// The login audit stops reading older days once this much of the poll has passed (half
    /// the poll timeout), so the user listing always has time.
    audit_time_budget: Duration,
    /// Requests the last successful poll spent outside the login audit, kept back from a
    /// bounded request budget; 0 = not known yet.
    directory_requests: AtomicU32,
}

impl std::fmt::Debug for GoogleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleSource")
            .field("name", &self.client.name())
            .finish_non_exhaustive()
    }
}

impl Provider for GoogleSource {
    const TYPE: &'static str = "google";
    type Raw = RawGoogleConfig;
    type Config = GoogleConfig;

    fn validate(raw: RawGoogleConfig, v: &mut Validator<'_>) -> Option<GoogleConfig> {
        config::validate(raw, v)
    }

    const ACTIVITY: bool = true;

    async fn activity(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> Result<ActivityOutput, SourceError> {
        self.read_stream(ctx, sink).await
    }

    fn build(sc: &SourceConfig, cfg: &GoogleConfig, deps: &Deps) -> Result<Self, SourceError> {
        let names = sc.policy.super_admin_roles.clone();
        if !names.iter().any(|n| n == SUPER_ADMIN_ROLE) {
            tracing::warn!(
                source = %sc.name,
                "policy.super_admin_roles does not name {SUPER_ADMIN_ROLE}: Google super admins will not count for the super-admin checks"
            );
        }
        Ok(GoogleSource {
            client: GoogleClient::new(sc, cfg, deps)?,
            ledger: LoginLedger::default(),
            super_admin_names: names,
            concurrency: sc.limits.concurrency.max(1),
            audit_time_budget: sc.timeout / 2,
            directory_requests: AtomicU32::new(0),
        })
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let c = &self.client;
        let s = c.session(ctx.stats);
        let now = ctx.now.unix_timestamp();
        let fail = |e: UpstreamError| c.error(&e);
        let mut out = PollOutput::default();

        let audit_requests = AtomicU32::new(0);
        let (roles, audit) = tokio::join!(
            self.read_roles(&s),
            self.read_logins(&s, now, &audit_requests)
        );
        let roles = roles.map_err(fail)?;
        let audit = optional(&mut out.availability, Some(DataKind::Mfa), audit, |e| {
            refused(e).then(|| {
                format!(
                    "partially: second-factor kinds are unknown, the login audit was refused ({e} — {}); 2-Step Verification enrolment and enforcement come from the Directory API",
                    c.permission_hint(LOGINS)
                )
            })
        })
        .map_err(fail)?;
        let complete = match audit {
            Some(complete) => {
                self.ledger.prune(now);
                complete
            }
            None => {
                self.ledger.reset();
                false
            }
        };
        let coverage = if audit.is_some() {
            self.ledger.coverage(now)
        } else {
            0.0
        };
        if audit.is_some() && !complete {
            tracing::info!(source = %c.name(), coverage, "google: the login audit's 30 days are not all read yet (large account, first polls); factor kinds not yet seen count as other until they are");
        }

        let (index, assignments_ok) = match &roles {
            RolesRead::Assignments(index) => {
                if let Some(why) = &index.groups_unknown {
                    out.availability.set_missing(
                        DataKind::Roles,
                        format!("partially: roles held through groups are unknown ({why}); roles assigned to users directly, and isAdmin / isDelegatedAdmin, are reported"),
                    );
                }
                (Some(index), true)
            }
            RolesRead::Flags(why) => {
                tracing::warn!(source = %c.name(), reason = %why, "google: admin role assignments not readable; roles come from isAdmin (super admin) and isDelegatedAdmin only");
                (None, false)
            }
        };

        // Users, page by page.
        let mut skipped = 0usize;
        let mut unrecognised_users = 0u64;
        let mut scratch: Vec<Arc<str>> = Vec::new();
        c.each_page(&s, c.users_request(), || true, |p: UsersPage| {
            skipped += p.users.skipped;
            let view = self.ledger.view(now, complete);
            for u in &p.users.items {
                let id = u.id.as_deref().unwrap_or_default();
                let (seen, unrecognised) = if audit.is_some() {
                    view.seen(id, u.primary_email.as_deref())
                } else {
                    (SeenFactors::default(), false)
                };
                let roles = match index {
                    Some(ix) => {
                        let own = ix.by_user.get(id).map(Vec::as_slice).unwrap_or(&[]);
                        let held: &[Arc<str>] = if ix.everyone.is_empty() {
                            own
                        } else {
                            scratch.clear();
                            scratch.extend(own.iter().cloned());
                            scratch.extend(ix.everyone.iter().cloned());
                            &scratch
                        };
                        RoleSource::Assignments {
                            held,
                            groups_known: ix.groups_unknown.is_none(),
                        }
                    }
                    None => RoleSource::Flags,
                };
                let cx = UserContext {
                    seen,
                    roles,
                    super_admin: SUPER_ADMIN_ROLE,
                };
                match map_user(u, &cx) {
                    Some(a) => {
                        unrecognised_users += u64::from(unrecognised);
                        sink.push(a);
                    }
                    None => skipped += usize::from(u.deletion_time.is_none()),
                }
            }
        })
        .await
        .map_err(fail)?;
        if skipped > 0 {
            tracing::warn!(source = %c.name(), skipped, "google: users without an id, or list items that are not users, were skipped");
        }
        if unrecognised_users > 0 {
            tracing::warn!(
                source = %c.name(),
                users = unrecognised_users,
                values = ?self.ledger.unrecognised_values(),
                "google: login_challenge_method values not in the exporter's table were taken as factor type other; please report them"
            );
        }
        out.availability.if_absent(
            DataKind::Credentials,
            "the Directory API reports no password ages, keys or tokens for users",
        );

        self.directory_requests.store(
            s.requests_made()
                .saturating_sub(audit_requests.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        out.gauges.extend([
            LOGIN_AUDIT_COVERAGE.sample(vec![], coverage),
            UNRECOGNISED_CHALLENGES.sample(vec![], unrecognised_users as f64),
            ROLE_ASSIGNMENTS_AVAILABLE.sample(vec![], if assignments_ok { 1.0 } else { 0.0 }),
            POLL_REQUESTS.sample(vec![], f64::from(s.requests_made())),
        ]);
        tracing::info!(
            source = %c.name(),
            requests = s.requests_made(),
            login_audit_coverage = coverage,
            "google poll done"
        );
        Ok(out)
    }
}

/// Sign-in stream pages read per poll at most (1,000 events each); the rest waits for the
/// next poll.
pub const STREAM_MAX_PAGES: u32 = 20;
/// Each pass re-reads this far back from the newest event of the last one, for events that
/// reach the login audit late. Google documents `login` events as available in near real
/// time (a couple of minutes) and other login audit events in tens of minutes, with "a small
/// chance" of more (support.google.com/a/answer/7061566); less than the engine's
/// de-duplication window (2 hours), so every event re-read is recognised.
pub const STREAM_OVERLAP: Duration = Duration::from_secs(3600);

impl GoogleSource {
    pub fn client(&self) -> &GoogleClient {
        &self.client
    }

    /// Reads the login audit as a stream: a pending pass (cut short by the page cap or the
    /// request budget) first, else a pass over `[newest event of the last pass − overlap,
    /// now)`, never from before `ctx.since`. Google lists newest first, so a pass only moves
    /// the cursor once it is complete.
    async fn read_stream(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> Result<ActivityOutput, SourceError> {
        use crate::upstream::{NextPage, Pager};
        use events::{map_activity, Mapped, Pending, StreamCursor};
        let c = &self.client;
        let s = c.continue_session(ctx.stats);
        let mut cur: StreamCursor = ctx
            .cursor
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if cur.since.is_some_and(|t| t < ctx.since) {
            // After a long downtime: catch up from the look-back only.
            cur = StreamCursor::default();
        }
        if cur.pending.as_ref().is_some_and(|p| p.start < ctx.since || p.end > ctx.now) {
            cur.pending = None;
        }
        let lower = cur
            .since
            .map(|t| (t - STREAM_OVERLAP).max(ctx.since))
            .unwrap_or(ctx.since);
        let mut out = ActivityOutput::default();
        let (mut start, mut end, mut token, mut newest) = match &cur.pending {
            Some(p) => (p.start, p.end, Some(p.page_token.clone()), p.newest),
            None => (lower, ctx.now, None, None),
        };
        if start >= end {
            out.cursor = serde_json::to_value(&cur).ok();
            return Ok(out);
        }
        let mut resuming = token.is_some();
        let mut pager = Pager::body(c.stream_request(start, end, token.as_deref()))
            .with_max_pages(STREAM_MAX_PAGES + 1);
        loop {
            if pager.pages() >= STREAM_MAX_PAGES {
                break;
            }
            let resp = match pager.next_page(&s).await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(UpstreamError::BudgetExhausted { .. } | UpstreamError::BytesExhausted { .. }) => {
                    // The request budget is spent: the rest of the pass waits for the next poll.
                    tracing::info!(source = %c.name(), requests = s.requests_made(), "google: the request budget stopped the sign-in stream; the next poll continues where it stopped");
                    out.more = true;
                    break;
                }
                Err(e) if refused(&e) => {
                    // (The hint names the scope and the admin; the text is redacted.)
                    out.unavailable = Some(format!(
                        "the login audit (Reports API) was refused: {}",
                        c.error(&e)
                    ));
                    out.requests = s.requests_made();
                    return Ok(out);
                }
                Err(e) if resuming && pager.pages() == 0 && matches!(e.status(), Some(400 | 404 | 410)) => {
                    // The page token expired: a fresh pass from the last complete one.
                    tracing::warn!(source = %c.name(), error = %c.error(&e), "google: the login audit refused the stored page token; reading again from the last complete pass");
                    resuming = false;
                    (start, end, token, newest) = (lower, ctx.now, None, None);
                    pager = Pager::body(c.stream_request(start, end, None))
                        .with_max_pages(STREAM_MAX_PAGES + 1);
                    continue;
                }
                Err(e) => return Err(c.error(&e)),
            };
            resuming = false;
            // No `note_items` here: a page may list nothing but events already read (the
            // engine counts each once); a repeated page token is refused by the pager, and
            // the page cap bounds a provider that keeps inventing new ones.
            let page: ItemsPage<Activity> = resp.json().map_err(|e| c.error(&e))?;
            for _ in 0..page.items.skipped {
                sink.unparsable("a login audit item that is not an object");
            }
            for a in &page.items.items {
                for m in map_activity(a) {
                    match m {
                        Mapped::Event(e) => {
                            // (An event from a clock far ahead must not move the cursor.)
                            if e.time <= ctx.now && newest.is_none_or(|n| e.time > n) {
                                newest = Some(e.time);
                            }
                            sink.push(*e);
                        }
                        Mapped::Skip => {}
                        Mapped::Bad(why) => sink.unparsable(&why),
                    }
                }
            }
            token = page.next_page_token.filter(|t| !t.is_empty());
            match &token {
                Some(t) => pager
                    .set_next(NextPage::QueryParam {
                        name: "pageToken".into(),
                        value: t.clone(),
                    })
                    .map_err(|e| c.error(&e))?,
                None => pager.set_next(NextPage::Done).map_err(|e| c.error(&e))?,
            }
        }
        out.requests = s.requests_made();
        let next = match token {
            // The pass is complete: the next one starts at its newest event.
            None if pager.pages() > 0 => StreamCursor {
                since: match (cur.since, newest) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b).or(Some(start)),
                },
                pending: None,
            },
            // Nothing was read (the budget was already spent): as it was.
            None => cur,
            Some(page_token) => {
                out.more = true;
                out.pending_from = Some(start);
                StreamCursor {
                    since: cur.since,
                    pending: Some(Pending {
                        start,
                        end,
                        page_token,
                        newest,
                    }),
                }
            }
        };
        out.cursor = serde_json::to_value(next).ok();
        Ok(out)
    }

    /// The name a role is counted under: its `roleName`, except that a super-admin role the
    /// policy does not know by that name is counted as Google's built-in super admin.
    fn role_name(&self, r: &wire::Role) -> Arc<str> {
        let name = r
            .role_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("role {}", r.role_id.as_deref().unwrap_or("?")));
        if r.is_super_admin_role == Some(true) && !self.super_admin_names.contains(&name) {
            return Arc::from(SUPER_ADMIN_ROLE);
        }
        Arc::from(name)
    }

    /// Roles and their assignments; group assignees expanded to their members.
    async fn read_roles(&self, s: &Session<'_>) -> Result<RolesRead, UpstreamError> {
        let c = &self.client;
        let refusal = |e: &UpstreamError| format!("{e} — {}", c.permission_hint(e.endpoint().unwrap_or_default()));
        let roles = match c.roles(s).await {
            Ok(r) => r,
            Err(e) if refused(&e) => return Ok(RolesRead::Flags(refusal(&e))),
            Err(e) => return Err(e),
        };
        let assignments = match c.role_assignments(s).await {
            Ok(a) => a,
            Err(e) if refused(&e) => return Ok(RolesRead::Flags(refusal(&e))),
            Err(e) => return Err(e),
        };
        let names: HashMap<&str, Arc<str>> = roles
            .iter()
            .filter_map(|r| Some((r.role_id.as_deref()?, self.role_name(r))))
            .collect();
        let mut index = RoleIndex::default();
        let mut groups: HashMap<&str, Vec<Arc<str>>> = HashMap::new();
        for a in &assignments {
            let (Some(target), Some(role)) = (a.assigned_to.as_deref(), a.role_id.as_deref())
            else {
                continue;
            };
            let name = names
                .get(role)
                .cloned()
                .unwrap_or_else(|| Arc::from(format!("role {role}")));
            match a.assignee_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("user") => index.by_user.entry(target.to_string()).or_default().push(name),
                Some("group") => groups.entry(target).or_default().push(name),
                Some(other) => {
                    tracing::warn!(source = %c.name(), assignee_type = %other, "google: role assignment to an assignee that is neither a user nor a group; not an account, skipped");
                }
            }
        }
        let keys: Vec<String> = groups.keys().map(|g| g.to_string()).collect();
        let fetched: Vec<(String, Result<Vec<wire::Member>, UpstreamError>)> =
            stream::iter(keys)
                .map(|g: String| async move {
                    let r = c.group_members(s, &g).await;
                    (g, r)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        for (group, members) in fetched {
            let Some(roles) = groups.get(group.as_str()) else {
                continue;
            };
            let members = match members {
                Ok(m) => m,
                Err(e) if refused(&e) => {
                    index.groups_unknown.get_or_insert_with(|| refusal(&e));
                    continue;
                }
                // An assignment left behind by a deleted group grants nothing.
                Err(e) if e.status() == Some(404) => {
                    tracing::warn!(source = %c.name(), error = %e, "google: a role is assigned to a group that no longer exists");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for m in members {
                match m.member_type.as_deref().map(str::to_ascii_uppercase).as_deref() {
                    Some("USER") => {
                        if let Some(id) = m.id {
                            index.by_user.entry(id).or_default().extend(roles.iter().cloned());
                        }
                    }
                    // The whole account is a member: every user holds the group's roles.
                    Some("CUSTOMER") => index.everyone.extend(roles.iter().cloned()),
                    // Nested groups are listed with their members (derived membership);
                    // external members are no accounts of this directory.
                    _ => {}
                }
            }
        }
        Ok(RolesRead::Assignments(index))
    }

    /// Brings the login audit ledger up to date (recent days first, then older days while
    /// time and request budget last). Returns whether the whole window is read.
    async fn read_logins(
        &self,
        s: &Session<'_>,
        now: i64,
        requests: &AtomicU32,
    ) -> Result<bool, UpstreamError> {
        let c = &self.client;
        let timer = s.upstream().timer().clone();
        let deadline = timer.now_unix() + self.audit_time_budget.as_secs_f64();
        let known = self.directory_requests.load(Ordering::Relaxed);
        let keep_back = known + 1;
        let exhausted = || {
            timer.now_unix() >= deadline
                || s.budget().remaining().is_some_and(|left| left <= keep_back)
        };
        // With a bounded budget and no idea yet what the directory needs, older days wait
        // for the next poll: the user listing comes first.
        let backfill = known > 0 || s.budget().remaining().is_none();
        for range in self.ledger.plan(now) {
            if exhausted() || (range.settles() && !backfill) {
                break;
            }
            let read = c
                .each_page(
                    s,
                    c.logins_request(range.from, range.to),
                    || !exhausted(),
                    |p: ItemsPage<Activity>| {
                        requests.fetch_add(1, Ordering::Relaxed);
                        self.ledger.observe(&p.items.items, now);
                    },
                )
                .await?;
            if !read {
                break;
            }
            self.ledger.complete(&range);
        }
        Ok(self.ledger.coverage(now) >= 1.0)
    }
}
