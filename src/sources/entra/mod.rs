//! The `entra` source: Microsoft Entra ID (Azure AD / Office 365) through Microsoft Graph
//! v1.0 with app-only credentials. Users, MFA registration, directory roles (active, PIM
//! eligible, via groups), app credentials and the tenant's MFA policy, mapped into the model.
//!
//! Layout: `config.rs` (keys) · `wire.rs` (Graph shapes, lenient) · `map.rs` (pure
//! mapping) · `policy.rs` (MFA policy gaps) · `client.rs` (token + GET + paging; the seam to
//! the shared upstream layer). See docs/entra.md.

pub mod client;
pub mod config;
pub mod events;
pub mod map;
pub mod policy;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use crate::upstream::{Session, UpstreamError};
use client::{is_non_premium, is_refusal, GraphClient};
pub use config::{EntraAuth, EntraConfig, RawEntraConfig};
use map::{IdMap, RoleGrant, UserContext};
use wire::{
    Application, ConditionalAccessPolicy, DirectoryObject, RoleAssignment, RoleDefinition,
    SecurityDefaults, ServicePrincipal, User, UserRegistrationDetails,
};

use super::{
    optional, AccountSink, ActivityContext, ActivityOutput, Deps, GaugeDesc, PollContext,
    PollOutput, Provider, SourceError, POLL_REQUESTS,
};
use crate::activity::event::EventSink;
use crate::config::{SourceConfig, Validator};
use crate::model::{DataAvailability, DataKind, TenantFacts};

pub const PIM_ELIGIBILITY_AVAILABLE: GaugeDesc = GaugeDesc::new(
    "identity_posture_entra_pim_eligibility_available",
    "1 if PIM-eligible role assignments could be read (they count as privileged), 0 if not (licence or permission); from the last background poll.",
);

/// `$top` for every collection that accepts it (999 is the documented maximum for users,
/// applications and service principals, also with `signInActivity` selected).
pub const PAGE_SIZE: u32 = 999;

/// Users `$select`: only what the checks need.
const USER_FIELDS: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "accountEnabled",
    "userType",
    "createdDateTime",
    "lastPasswordChangeDateTime",
    "employeeLeaveDateTime",
    "department",
    "jobTitle",
    "onPremisesSyncEnabled",
    "signInActivity",
];

/// The sign-in log endpoint (its name in logs and errors).
const SIGN_INS: &str = "/v1.0/auditLogs/signIns";
/// Records per page (Graph's maximum and default for sign-ins).
const SIGN_IN_PAGE: u32 = 1000;
/// Pages read per poll at most; a longer pass continues next poll from its nextLink.
pub const SIGN_IN_MAX_PAGES: u32 = 20;
/// Sign-in records reach the log minutes late: each pass re-reads this much before the
/// newest record of the last one (the engine drops the repeats by id).
const SIGN_IN_OVERLAP: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub struct EntraSource {
    client: GraphClient,
}

/// Who holds which directory role, keyed by principal id (users and service principals).
type RoleIndex = IdMap<Vec<RoleGrant>>;

struct Roles {
    index: RoleIndex,
    /// PIM eligibility could not be read (licence or permission): why.
    eligibility_missing: Option<String>,
}

/// Users waiting for their registration row at most (about 10 pages of 999; ~7 MB): past
/// this the user listing waits for the registration report to catch up.
pub const HOLD_MAX: usize = 10_000;

/// What mapping a user needs besides its registration row.
struct JoinContext {
    /// `None` when roles could not be read.
    roles: Option<Roles>,
    mfa_enforced: Option<bool>,
}

/// The user listing joined with the registration report (and roles and policy), both read
/// at once: a user is mapped and handed on as soon as all it needs is known — roles and
/// policy read, its registration row read (or the whole report read, or refused) — and is
/// held until then. In Graph's order (both listings by object id) few users wait at all.
struct UserJoin<'s> {
    sink: &'s mut dyn AccountSink,
    availability: DataAvailability,
    /// Roles and MFA policy, once read.
    context: Option<JoinContext>,
    /// Registered MFA factors per user id, as factor bit sets.
    factors: IdMap<u16>,
    /// `None` while the report is being read; then whether it could be read.
    report: Option<bool>,
    sign_in_known: bool,
    /// Users read and not mapped yet, by id.
    held: IdMap<Vec<User>>,
    held_count: usize,
}

impl<'s> UserJoin<'s> {
    fn new(sink: &'s mut dyn AccountSink) -> UserJoin<'s> {
        UserJoin {
            sink,
            availability: DataAvailability::default(),
            context: None,
            factors: IdMap::default(),
            report: None,
            sign_in_known: true,
            held: IdMap::default(),
            held_count: 0,
        }
    }

    /// Whether `u` can be mapped now.
    fn ready(&self, u: &User) -> bool {
        self.context.is_some() && (self.report.is_some() || self.factors.get(&u.id).is_some())
    }

    fn push(&mut self, u: &User) {
        let Some(cx) = &self.context else {
            return;
        };
        let account = map::map_user(
            u,
            &UserContext {
                sign_in_known: self.sign_in_known,
                mfa: match self.report {
                    Some(false) => None,
                    _ => Some(self.factors.get(&u.id).copied()),
                },
                mfa_enforced: cx.mfa_enforced,
                roles: cx
                    .roles
                    .as_ref()
                    .map(|r| r.index.get(&u.id).map(Vec::as_slice).unwrap_or(&[])),
            },
        );
        self.sink.push(account);
    }

    /// A page of users: each mapped now, or held.
    fn offer(&mut self, users: Vec<User>) {
        for u in users {
            if self.ready(&u) {
                self.push(&u);
            } else {
                self.held_count += 1;
                self.held.get_mut_or_default(&u.id).push(u);
            }
        }
    }

    /// A page of the registration report: its rows recorded, the users waiting for them
    /// handed on.
    fn registration_rows(&mut self, rows: Vec<UserRegistrationDetails>) {
        for r in rows {
            let bits = map::factor_bits(r.methods_registered.iter().flatten());
            self.factors.insert(&r.id, bits);
            if self.held_count > 0 && self.context.is_some() {
                if let Some(users) = self.held.remove(&r.id) {
                    self.held_count -= users.len();
                    for u in &users {
                        self.push(u);
                    }
                }
            }
        }
    }

    fn set_context(&mut self, cx: JoinContext) {
        self.context = Some(cx);
        self.release();
    }

    /// The report is read (`true`) or refused (`false`): every user can be mapped.
    fn registration_done(&mut self, read: bool) {
        self.report = Some(read);
        self.release();
    }

    /// Hands on every held user that can be mapped now.
    fn release(&mut self) {
        if self.held_count == 0 || self.context.is_none() {
            return;
        }
        let mut still = IdMap::<Vec<User>>::default();
        let held: Vec<Vec<User>> = self.held.drain().collect();
        for users in held {
            if users.first().is_some_and(|u| self.ready(u)) {
                self.held_count -= users.len();
                for u in &users {
                    self.push(u);
                }
            } else if let Some(u) = users.first() {
                let id = u.id.clone();
                *still.get_mut_or_default(&id) = users;
            }
        }
        self.held = still;
    }

    /// Whether the user listing should wait for the report to catch up.
    fn over_hold_limit(&self) -> bool {
        self.held_count > HOLD_MAX && !(self.context.is_some() && self.report.is_some())
    }
}

/// The endpoint name of a Graph URL: its path, with a group id replaced by `{id}` (names
/// requests in logs and errors; keys the upstream layer's per-endpoint state).
fn endpoint(url: &str) -> String {
    let path = url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    match path.strip_prefix("/v1.0/groups/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, tail)) => format!("/v1.0/groups/{{id}}/{tail}"),
            None => "/v1.0/groups/{id}".into(),
        },
        None => path,
    }
}

fn refusal_reason(e: &UpstreamError, what: &str, permission: &str) -> String {
    if is_non_premium(e) {
        format!("{what}: Graph refused — the tenant has no Entra ID P1/P2 licence ({e})")
    } else {
        format!("{what}: Graph refused — grant the application permission {permission} ({e})")
    }
}

/// A refusal of optional data, explained; `None` for any other error.
fn refused(e: &UpstreamError, what: &str, permission: &str) -> Option<String> {
    is_refusal(e).then(|| refusal_reason(e, what, permission))
}

/// A failed read as the poll's error.
fn fail(e: UpstreamError, client: &GraphClient) -> SourceError {
    let hint = match e.status() {
        Some(401) => Some("the token was rejected: check tenant_id, client_id and that the secret or certificate is current".to_string()),
        Some(400) if e.endpoint().is_some_and(|p| p.ends_with("/token")) => Some(
            "the identity platform refused the client credentials: check tenant_id, client_id and the secret or certificate".to_string(),
        ),
        Some(403) => Some("grant the application the permissions listed in docs/entra.md (admin consent)".to_string()),
        _ => None,
    };
    SourceError::upstream("entra", &e, hint, |m| client.redact(m))
}

impl Provider for EntraSource {
    const TYPE: &'static str = "entra";
    type Raw = RawEntraConfig;
    type Config = EntraConfig;

    fn validate(raw: RawEntraConfig, v: &mut Validator<'_>) -> Option<EntraConfig> {
        config::validate(raw, v)
    }

    fn build(sc: &SourceConfig, cfg: &EntraConfig, deps: &Deps) -> Result<Self, SourceError> {
        let client = GraphClient::new(
            cfg,
            &sc.name,
            sc.timeout,
            sc.limits.clone(),
            deps.timer.clone(),
        )
        .map_err(|e| SourceError::config(format!("entra: {e}")))?;
        Ok(EntraSource { client })
    }

    const ACTIVITY: bool = true;

    async fn activity(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> Result<ActivityOutput, SourceError> {
        self.read_sign_ins(ctx, sink).await
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        self.read(ctx, sink).await
    }
}

impl EntraSource {
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// Every item of a small collection at `path_and_query` (below `/v1.0`).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        s: &Session<'_>,
        path_and_query: &str,
    ) -> Result<Vec<T>, UpstreamError> {
        let url = self.url(path_and_query);
        self.client.collect(s, &url, &endpoint(&url)).await
    }

    async fn get_one<T: serde::de::DeserializeOwned>(
        &self,
        s: &Session<'_>,
        path_and_query: &str,
    ) -> Result<T, UpstreamError> {
        let url = self.url(path_and_query);
        self.client.get(s, &url, &endpoint(&url)).await
    }

    /// Reads `/auditLogs/signIns` from the stored cursor: a pending `@odata.nextLink` of a
    /// pass cut short first, else a fresh `createdDateTime ge` query from the newest record
    /// of the last complete pass (less [`SIGN_IN_OVERLAP`]), never before `ctx.since`.
    async fn read_sign_ins(
        &self,
        ctx: &ActivityContext<'_>,
        sink: &mut dyn EventSink,
    ) -> Result<ActivityOutput, SourceError> {
        use events::{map_sign_in, Mapped, SignInCursor};
        use crate::upstream::{Pager, Request};
        let c = &self.client;
        let s = c.continue_session(ctx.stats);
        let mut cur: SignInCursor = ctx
            .cursor
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        if cur.since.is_some_and(|t| t < ctx.since) {
            // After a long downtime: catch up from the look-back only.
            cur = SignInCursor::default();
        }
        let lower = cur
            .since
            .map(|t| (t - SIGN_IN_OVERLAP).max(ctx.since))
            .unwrap_or(ctx.since);
        let fresh = self.url(&format!(
            "/auditLogs/signIns?$filter=createdDateTime%20ge%20{}&$top={SIGN_IN_PAGE}",
            crate::model::format_ts(lower)
        ));
        let graph_origin = url::Url::parse(c.graph_url()).ok().map(|u| u.origin());
        let pending = cur.pending.clone().filter(|p| {
            url::Url::parse(p).ok().map(|u| u.origin()) == graph_origin
        });
        let mut following_pending = pending.is_some();
        let first = pending.unwrap_or_else(|| fresh.clone());
        let req = |u: &str| {
            url::Url::parse(u)
                .map(|u| Request::get(u, SIGN_INS))
                .map_err(|e| fail(UpstreamError::Url(format!("{SIGN_INS}: {e}")), c))
        };
        // At most SIGN_IN_MAX_PAGES pages: the page after them is not requested ahead.
        let pager_for = |r| {
            Pager::body(r)
                .with_max_pages(SIGN_IN_MAX_PAGES + 1)
                .stop_after(SIGN_IN_MAX_PAGES)
        };
        let mut pager = pager_for(req(&first)?);
        let mut out = ActivityOutput::default();
        let mut newest = if following_pending { cur.pending_newest } else { None };
        let mut stopped_at: Option<String> = None;
        loop {
            if pager.pages() >= SIGN_IN_MAX_PAGES {
                break;
            }
            let resp = match pager.next_page(&s).await {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(UpstreamError::BudgetExhausted { .. } | UpstreamError::BytesExhausted { .. }) => {
                    // The request budget is spent: the rest of the pass waits for the next poll.
                    out.more = true;
                    break;
                },
                Err(e) if is_refusal(&e) => {
                    out.unavailable = Some(refusal_reason(&e, "sign-in logs (auditLogs/signIns)", "AuditLog.Read.All"));
                    out.requests = s.requests_made();
                    return Ok(out);
                }
                Err(e) if following_pending && pager.pages() == 0 && matches!(e.status(), Some(400 | 404 | 410)) => {
                    // The skip token expired: a fresh pass from the last complete one.
                    tracing::warn!(error = %c.redact(&e.to_string()), "entra: the sign-in log's next link was refused; reading again from the last complete pass");
                    following_pending = false;
                    newest = None;
                    pager = pager_for(req(&fresh)?);
                    continue;
                }
                Err(e) => return Err(fail(e, c)),
            };
            let page: wire::Page<serde_json::Value> = resp.json().map_err(|e| fail(e, c))?;
            // The next page is named (and so requested, while this one is mapped) first; a
            // refused link fails the poll once this page's events are in, as before.
            stopped_at = page.next_link.filter(|n| !n.is_empty());
            let named = pager.set_next(client::graph_next(stopped_at.clone()));
            for v in &page.value {
                match map_sign_in(v) {
                    Mapped::Event(e) => {
                        if e.time <= ctx.now && newest.is_none_or(|n| e.time > n) {
                            newest = Some(e.time);
                        }
                        sink.push(*e);
                    }
                    Mapped::Skip => {}
                    Mapped::Bad(why) => sink.unparsable(&why),
                }
            }
            named.map_err(|e| fail(e, c))?;
        }
        out.requests = s.requests_made();
        let next = match stopped_at {
            // The pass is complete: the next one starts at its newest record.
            None if pager.pages() > 0 => SignInCursor {
                since: match (cur.since, newest) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b).or(Some(lower)),
                },
                pending: None,
                pending_newest: None,
            },
            None => {
                if out.more && cur.pending.is_some() {
                    // Stopped before its first page: the pending pass is still to come.
                    out.pending_from = Some(lower);
                }
                cur
            }
            Some(link) => {
                out.more = true;
                out.pending_from = Some(lower);
                SignInCursor {
                    since: cur.since.or(Some(lower)),
                    pending: Some(link),
                    pending_newest: newest,
                }
            }
        };
        out.cursor = serde_json::to_value(next).ok();
        Ok(out)
    }

    fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}/v1.0{}",
            self.client.graph_url().trim_end_matches('/'),
            path_and_query
        )
    }

    async fn read(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let s = self.client.session(ctx.stats);
        let fail = |e: UpstreamError| fail(e, &self.client);
        // Everything is read at once: roles and the MFA policy (a few requests), app
        // registrations and service principals, and the two long listings — the users and
        // the registration report — side by side, joined user by user as both arrive.
        let join = std::sync::Mutex::new(UserJoin::new(sink));
        let wake = tokio::sync::Notify::new();
        let lock = || join.lock().unwrap_or_else(|e| e.into_inner());
        let prerequisites = async {
            let (roles, tenant) = tokio::join!(self.fetch_roles(&s), self.fetch_policy(&s));
            let tenant = tenant?;
            let mut j = lock();
            let roles = optional(&mut j.availability, Some(DataKind::Roles), roles, |e| {
                // Members of role-assignable groups need a permission of their own; without
                // them group-held roles are unknown, so no role data is claimed at all.
                if e.endpoint().unwrap_or_default().contains("/groups/") {
                    refused(e, "members of role-assignable groups", "GroupMember.Read.All")
                } else {
                    refused(e, "directory role assignments", "RoleManagement.Read.Directory")
                }
            })?;
            // MFA enforcement is known to be on for everyone only under security defaults;
            // per-user legacy MFA and conditional access exclusions are not read per account.
            let mfa_enforced = (tenant.0 == Some(true)).then_some(true);
            j.set_context(JoinContext {
                roles,
                mfa_enforced,
            });
            drop(j);
            wake.notify_one();
            Ok::<_, UpstreamError>(tenant)
        };
        let registration = async {
            let read = self
                .fetch_registration(&s, |rows| {
                    lock().registration_rows(rows);
                    wake.notify_one();
                })
                .await;
            let mut j = lock();
            let read = optional(&mut j.availability, Some(DataKind::Mfa), read, |e| {
                refused(
                    e,
                    "MFA registration report (userRegistrationDetails)",
                    "AuditLog.Read.All",
                )
            })?;
            j.registration_done(read.is_some());
            drop(j);
            wake.notify_one();
            Ok(())
        };
        let users = self.stream_users(&s, &join, &wake);
        let workloads = async {
            match self.fetch_workloads(&s).await {
                Ok(w) => Ok(Ok(w)),
                Err(e) if is_refusal(&e) => Ok(Err(e)),
                Err(e) => Err(e),
            }
        };
        // Boxed: side by side, the four would make one large future of the poll.
        let ((security_defaults, ca), (), (), workloads) = tokio::try_join!(
            Box::pin(prerequisites),
            Box::pin(registration),
            Box::pin(users),
            Box::pin(workloads)
        )
        .map_err(fail)?;
        let UserJoin {
            sink,
            mut availability,
            context,
            held,
            ..
        } = join.into_inner().unwrap_or_else(|e| e.into_inner());
        debug_assert!(held.is_empty(), "every user joined");
        let roles = context.and_then(|c| c.roles);

        let mut gauges = Vec::new();
        if let Some(r) = &roles {
            gauges.push(PIM_ELIGIBILITY_AVAILABLE.sample(
                vec![],
                if r.eligibility_missing.is_some() { 0.0 } else { 1.0 },
            ));
            if let Some(why) = &r.eligibility_missing {
                tracing::warn!(reason = %why, "entra: PIM-eligible roles not read; only active assignments count");
            }
        }
        let gaps = policy::mfa_policy_gaps(&policy::PolicyInputs {
            security_defaults,
            conditional_access: ca.as_ref().map(|(p, _)| p.as_slice()),
            no_premium: ca.as_ref().is_some_and(|(_, np)| *np),
        });

        // Workload identities.
        match workloads {
            Ok((apps, sps)) => {
                let role_of = |id: &str| -> Option<&[RoleGrant]> {
                    roles
                        .as_ref()
                        .map(|r| r.index.get(id).map(Vec::as_slice).unwrap_or(&[]))
                };
                let mut sp_by_app: HashMap<&str, &ServicePrincipal> = HashMap::new();
                for sp in &sps {
                    if let Some(a) = sp.app_id.as_deref() {
                        sp_by_app.insert(a, sp);
                    }
                }
                let mut joined: std::collections::HashSet<&str> = Default::default();
                for app in &apps {
                    let sp = app
                        .app_id
                        .as_deref()
                        .and_then(|a| sp_by_app.get(a).copied());
                    if let Some(sp) = sp {
                        joined.insert(sp.id.as_str());
                    }
                    let grants = match sp {
                        Some(sp) => role_of(&sp.id),
                        None => role_of(""),
                    };
                    if let Some(a) = map::map_workload(Some(app), sp, grants) {
                        sink.push(a);
                    }
                }
                // Service principals without a registration here (other tenants' apps,
                // Microsoft's, managed identities): only those that hold a role or carry
                // credentials of their own are accounts worth checking.
                for sp in &sps {
                    if joined.contains(sp.id.as_str()) {
                        continue;
                    }
                    let grants = role_of(&sp.id);
                    let managed = sp
                        .service_principal_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("ManagedIdentity"));
                    let has_roles = grants.is_some_and(|g| !g.is_empty());
                    let has_creds = !managed
                        && (!sp.password_credentials.is_empty() || !sp.key_credentials.is_empty());
                    if has_roles || has_creds {
                        if let Some(a) = map::map_workload(None, Some(sp), grants) {
                            sink.push(a);
                        }
                    }
                }
            }
            Err(e) if is_refusal(&e) => {
                availability.set_missing(
                    DataKind::Credentials,
                    refusal_reason(
                        &e,
                        "applications and service principals",
                        "Application.Read.All",
                    ),
                );
            }
            Err(e) => return Err(fail(e)),
        }

        gauges.push(POLL_REQUESTS.sample(vec![], f64::from(s.requests_made())));
        Ok(PollOutput {
            availability,
            tenant: TenantFacts {
                mfa_policy_gaps: gaps,
                ..TenantFacts::default()
            },
            gauges,
        })
    }

    /// Streams `/users` into the join, degrading the `$select` when Graph refuses a
    /// property: first `signInActivity` (Entra ID P1 + AuditLog.Read.All), then
    /// `employeeLeaveDateTime` (User-LifeCycleInfo.Read.All). While more than [`HOLD_MAX`]
    /// users wait for their registration row, the listing waits for the report.
    async fn stream_users(
        &self,
        s: &Session<'_>,
        join: &std::sync::Mutex<UserJoin<'_>>,
        wake: &tokio::sync::Notify,
    ) -> Result<(), UpstreamError> {
        let lock = || join.lock().unwrap_or_else(|e| e.into_inner());
        let mut fields: Vec<&str> = USER_FIELDS.to_vec();
        let (url, first) = loop {
            let url = self.url(&format!(
                "/users?$select={}&$top={PAGE_SIZE}",
                fields.join(",")
            ));
            // The first page decides the $select; later pages follow nextLink.
            match self.client.get::<wire::Page<User>>(s, &url, "/v1.0/users").await {
                Ok(page) => break (url, page),
                Err(e) if is_refusal(&e) && fields.contains(&"signInActivity") => {
                    fields.retain(|f| *f != "signInActivity");
                    let mut j = lock();
                    j.sign_in_known = false;
                    j.availability.set_missing(
                        DataKind::LastLogin,
                        refusal_reason(
                            &e,
                            "sign-in activity (signInActivity)",
                            "AuditLog.Read.All",
                        ),
                    );
                }
                Err(e) if is_refusal(&e) && fields.contains(&"employeeLeaveDateTime") => {
                    tracing::warn!(error = %e, "entra: employeeLeaveDateTime refused; leave dates not read (needs User-LifeCycleInfo.Read.All)");
                    fields.retain(|f| *f != "employeeLeaveDateTime");
                }
                Err(e) => return Err(e),
            }
        };
        let mut pages =
            self.client
                .pages::<User>(s, &url, "/v1.0/users", Some(first), |u| Some(u.id.as_str()))?;
        while let Some(users) = pages.next(s).await? {
            lock().offer(users);
            loop {
                let woken = wake.notified();
                if !lock().over_hold_limit() {
                    break;
                }
                woken.await;
            }
        }
        Ok(())
    }

    /// The registration report, page by page to `rows` (MFA factors per user id).
    async fn fetch_registration(
        &self,
        s: &Session<'_>,
        rows: impl FnMut(Vec<UserRegistrationDetails>),
    ) -> Result<(), UpstreamError> {
        // The list documents `$filter` only (no `$select`/`$top`): page size is Graph's.
        let url = self.url("/reports/authenticationMethods/userRegistrationDetails");
        self.client
            .for_each_page::<UserRegistrationDetails>(
                s,
                &url,
                &endpoint(&url),
                None,
                |r| Some(r.id.as_str()),
                rows,
            )
            .await?;
        Ok(())
    }

    async fn fetch_roles(&self, s: &Session<'_>) -> Result<Roles, UpstreamError> {
        let defs: Vec<RoleDefinition> = self
            .list(
                s,
                "/roleManagement/directory/roleDefinitions?$select=id,displayName,templateId",
            )
            .await?;
        let mut names: HashMap<String, Arc<str>> = HashMap::new();
        for d in defs {
            let name: Arc<str> = d
                .display_name
                .clone()
                .unwrap_or_else(|| d.id.clone())
                .into();
            if let Some(t) = &d.template_id {
                names.insert(t.to_ascii_lowercase(), name.clone());
            }
            names.insert(d.id.to_ascii_lowercase(), name);
        }
        let name_of = |id: Option<&str>| -> Arc<str> {
            let id = id.unwrap_or("?");
            names
                .get(&id.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| Arc::from(format!("role {id}")))
        };
        // `$expand=principal` (as in Learn's "List unifiedRoleAssignments" example) brings the
        // principal's `@odata.type`, which tells groups from users and service principals.
        let active: Vec<RoleAssignment> = self
            .list(
                s,
                "/roleManagement/directory/roleAssignments?$expand=principal",
            )
            .await?;
        let (eligible, eligibility_missing) = match self
            .list::<RoleAssignment>(
                s,
                "/roleManagement/directory/roleEligibilitySchedules?$expand=principal",
            )
            .await
        {
            Ok(v) => (v, None),
            Err(e) if is_refusal(&e) => (
                Vec::new(),
                Some(refusal_reason(
                    &e,
                    "PIM-eligible role assignments",
                    "RoleEligibilitySchedule.Read.Directory (needs Entra ID P2)",
                )),
            ),
            Err(e) => return Err(e),
        };
        let mut index: RoleIndex = IdMap::default();
        let mut groups: HashMap<String, Vec<(Arc<str>, bool)>> = HashMap::new();
        for (list, is_eligible) in [(&active, false), (&eligible, true)] {
            for a in list.iter() {
                let Some(pid) = a
                    .principal_id
                    .as_deref()
                    .or(a.principal.as_ref().map(|p| p.id.as_str()))
                else {
                    continue;
                };
                let name = name_of(a.role_definition_id.as_deref());
                let is_group = a
                    .principal
                    .as_ref()
                    .and_then(|p| p.odata_type.as_deref())
                    .is_some_and(|t| t.ends_with(".group"));
                if is_group {
                    groups
                        .entry(pid.to_string())
                        .or_default()
                        .push((name, is_eligible));
                } else {
                    index.get_mut_or_default(pid).push(RoleGrant {
                        name,
                        eligible: is_eligible,
                        via_group: None,
                    });
                }
            }
        }
        // Role-assignable groups: every (transitive) member holds the group's roles.
        for (gid, grants) in groups {
            let group_label: Arc<str> = Arc::from(gid.as_str());
            let members: Vec<DirectoryObject> = self
                .list(s, &format!("/groups/{gid}/transitiveMembers?$select=id"))
                .await?;
            for m in members {
                if m.odata_type
                    .as_deref()
                    .is_some_and(|t| t.ends_with(".group"))
                {
                    continue;
                }
                let held = index.get_mut_or_default(&m.id);
                for (name, eligible) in &grants {
                    held.push(RoleGrant {
                        name: name.clone(),
                        eligible: *eligible,
                        via_group: Some(group_label.clone()),
                    });
                }
            }
        }
        Ok(Roles {
            index,
            eligibility_missing,
        })
    }

    async fn fetch_workloads(
        &self,
        s: &Session<'_>,
    ) -> Result<(Vec<Application>, Vec<ServicePrincipal>), UpstreamError> {
        let apps = self.list(s, &format!(
                    "/applications?$select=id,appId,displayName,createdDateTime,passwordCredentials,keyCredentials&$top={PAGE_SIZE}"
                ))
            .await?;
        let sps = self.list(s, &format!(
                    "/servicePrincipals?$select=id,appId,displayName,accountEnabled,servicePrincipalType,appOwnerOrganizationId,passwordCredentials,keyCredentials&$top={PAGE_SIZE}"
                ))
            .await?;
        Ok((apps, sps))
    }

    /// Security defaults and conditional access policies. `Ok((None, None))` parts mean
    /// "could not be read"; the bool beside the policies says the tenant lacks the licence.
    #[allow(clippy::type_complexity)]
    async fn fetch_policy(
        &self,
        s: &Session<'_>,
    ) -> Result<(Option<bool>, Option<(Vec<ConditionalAccessPolicy>, bool)>), UpstreamError> {
        let defaults = match self
            .get_one::<SecurityDefaults>(s, "/policies/identitySecurityDefaultsEnforcementPolicy")
            .await
        {
            Ok(d) => d.is_enabled,
            Err(e) if is_refusal(&e) => {
                tracing::warn!(error = %e, "entra: security defaults not readable (Policy.Read.All)");
                None
            }
            Err(e) => return Err(e),
        };
        if defaults == Some(true) {
            // Conditional access and security defaults exclude each other.
            return Ok((defaults, Some((Vec::new(), false))));
        }
        let ca = match self
            .list::<ConditionalAccessPolicy>(s, "/identity/conditionalAccess/policies")
            .await
        {
            Ok(p) => Some((p, false)),
            // A tenant without P1 cannot have conditional access policies at all.
            Err(e) if is_non_premium(&e) => Some((Vec::new(), true)),
            Err(e) if is_refusal(&e) => {
                tracing::warn!(error = %e, "entra: conditional access policies not readable (Policy.Read.All)");
                None
            }
            Err(e) => return Err(e),
        };
        Ok((defaults, ca))
    }
}
