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
    optional, AccountSink, Deps, GaugeDesc, PollContext, PollOutput, Provider, SourceError,
    POLL_REQUESTS,
};
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

impl GoogleSource {
    pub fn client(&self) -> &GoogleClient {
        &self.client
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
