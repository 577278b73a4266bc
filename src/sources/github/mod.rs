//! The `github` source: one GitHub organisation (github.com, GitHub Enterprise Cloud or
//! Server) through the REST API — members and outside collaborators with their 2FA state,
//! owners, pending invitations, SAML-authorised credentials and fine-grained tokens, and last
//! activity from the audit log. See docs/github.md.
//!
//! Layout: `config.rs` (keys) · `wire.rs` (API shapes, lenient) · `map.rs` (pure mapping) ·
//! `client.rs` (auth, URLs, rate-limit rule, paging) · `activity.rs` (audit-log cache).

pub mod activity;
pub mod client;
pub mod config;
pub mod map;
pub mod wire;

use std::collections::{HashMap, HashSet};

use activity::{Activity, ActivityCache};
use client::{
    GithubClient, CREDENTIAL_AUTHORIZATIONS, INVITATIONS, MEMBERS,
    OUTSIDE_COLLABORATORS, PER_PAGE, PERSONAL_ACCESS_TOKENS,
};
pub use config::{GithubAuth, GithubConfig, RawGithubConfig};
use map::{Context, Population, TwoFactor};
use wire::{CredentialAuthorization, FineGrainedToken, Invitation, Organization, SimpleUser};

use super::{
    optional, AccountSink, Deps, GaugeDesc, PollContext, PollOutput, Provider, SourceError,
    POLL_REQUESTS,
};
use crate::config::{SourceConfig, Validator};
use crate::model::{Credential, DataKind, Known, Timestamp};
use crate::upstream::{Session, UpstreamError};

pub const AUDIT_LOG_COVERED_SINCE: GaugeDesc = GaugeDesc::new(
    "identity_posture_github_audit_log_covered_since_timestamp_seconds",
    "Oldest instant from which the organisation audit log has been read without a gap (unix seconds; 0 = not read), as of the last background poll.",
);

/// Optional data refused: a 403 (the credential is not an owner's, or lacks a permission) or
/// a 422 (GitHub's answer to a non-owner using the 2FA filters).
fn refused(e: &UpstreamError) -> Option<String> {
    (matches!(e.status(), Some(403 | 422)) && !e.is_rate_limited()).then(|| {
        format!(
            "{e} — {}",
            client::permission_hint(e.endpoint().unwrap_or_default())
        )
    })
}

/// Refused, or not there at all (404: no SAML SSO, not Enterprise Cloud, GitHub Enterprise
/// Server without the endpoint).
fn refused_or_absent(e: &UpstreamError, absent: &str) -> Option<String> {
    match e.status() {
        Some(404) => Some(format!("{e} — {absent}")),
        _ => refused(e),
    }
}

/// One configured organisation. Long-lived: keeps the audit-log activity cache between polls.
pub struct GithubSource {
    client: GithubClient,
    audit_log: bool,
    audit_log_pages: u32,
    /// How far back last activity matters: the longer of the dormancy and unused-privilege
    /// windows, plus a day.
    activity_window_days: u32,
    activity: ActivityCache,
}

impl std::fmt::Debug for GithubSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubSource")
            .field("name", &self.client.name())
            .field("org", &self.client.org())
            .finish_non_exhaustive()
    }
}

/// The reads that finish every account, made before the listings.
struct Reads {
    owners: Option<HashSet<String>>,
    members_2fa: TwoFactor,
    collaborators_2fa: TwoFactor,
    credentials: Option<HashMap<String, Vec<Credential>>>,
    invitations: Vec<Invitation>,
    activity: Option<Activity>,
}

fn ids(users: Vec<SimpleUser>) -> HashSet<String> {
    users.into_iter().filter_map(|u| u.id).collect()
}

impl Provider for GithubSource {
    const TYPE: &'static str = "github";
    type Raw = RawGithubConfig;
    type Config = GithubConfig;

    fn validate(raw: RawGithubConfig, v: &mut Validator<'_>) -> Option<GithubConfig> {
        config::validate(raw, v)
    }

    fn build(cfg: &SourceConfig, gh: &GithubConfig, deps: &Deps) -> Result<Self, SourceError> {
        let p = &cfg.policy;
        Ok(GithubSource {
            client: GithubClient::new(cfg, gh, deps)?,
            audit_log: gh.audit_log,
            audit_log_pages: gh.audit_log_pages_per_poll,
            activity_window_days: p.dormant_after_days.max(p.unused_privilege_days) + 1,
            activity: ActivityCache::default(),
        })
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let started = std::time::Instant::now();
        let c = &self.client;
        let s = c.session(ctx.stats);
        let mut out = PollOutput::default();
        let fail = |e: UpstreamError| c.error(&e);

        // The organisation first: a wrong org, host or token fails here, clearly.
        let org: Organization = c
            .get(&s, c.org_url(&[], &[]), client::ORG)
            .await
            .map_err(fail)?;
        out.tenant.mfa_policy_gaps = org.two_factor_requirement_enabled.map(|required| {
            if required {
                Vec::new()
            } else {
                vec![format!(
                    "organisation {} does not require two-factor authentication (Settings → Authentication security)",
                    c.org()
                )]
            }
        });
        let mfa_enforced = (org.two_factor_requirement_enabled == Some(true)).then_some(true);

        let reads = self.read_all(&s, ctx, &mut out).await.map_err(fail)?;

        let activity = |login: &str| -> Known<Timestamp> {
            reads
                .activity
                .as_ref()
                .map(|a| a.last(login))
                .unwrap_or_default()
        };
        let mut seen: HashSet<String> = HashSet::new();
        let mut counts = Counts::default();
        for (pop, endpoint, two_factor) in [
            (Population::Member, MEMBERS, &reads.members_2fa),
            (
                Population::OutsideCollaborator,
                OUTSIDE_COLLABORATORS,
                &reads.collaborators_2fa,
            ),
        ] {
            let mctx = Context {
                owners: reads.owners.as_ref(),
                two_factor,
                mfa_enforced,
                credentials: reads.credentials.as_ref(),
                activity: &activity,
            };
            let path = endpoint.trim_start_matches("/orgs/{org}/");
            let url = c.org_url(&[path], &[("per_page", PER_PAGE)]);
            c.for_each_page(
                &s,
                url,
                endpoint,
                |u: &SimpleUser| u.id.as_deref(),
                |users| {
                    for u in users {
                        let Some(a) = map::map_user(u, pop, &mctx) else {
                            counts.skipped += 1;
                            continue;
                        };
                        if !seen.insert(a.id.clone()) {
                            continue; // both a member and a collaborator, or listed twice
                        }
                        match pop {
                            Population::Member => counts.members += 1,
                            Population::OutsideCollaborator => counts.collaborators += 1,
                        }
                        sink.push(a);
                    }
                    Ok(())
                },
            )
            .await
            .map_err(fail)?;
        }
        for i in reads.invitations {
            match map::map_invitation(i) {
                Some(a) if seen.insert(a.id.clone()) => {
                    counts.invitations += 1;
                    sink.push(a);
                }
                Some(_) => {}
                None => counts.skipped += 1,
            }
        }
        if counts.skipped > 0 {
            tracing::warn!(source = %c.name(), skipped = counts.skipped, "github: items without an id or login were skipped");
        }

        if self.audit_log {
            let since = reads
                .activity
                .as_ref()
                .and_then(|a| a.covered_since())
                .unwrap_or(0);
            out.gauges
                .push(AUDIT_LOG_COVERED_SINCE.sample(Vec::new(), since as f64));
        }
        out.gauges
            .push(POLL_REQUESTS.sample(Vec::new(), f64::from(s.requests_made())));
        tracing::info!(
            source = %c.name(),
            members = counts.members,
            outside_collaborators = counts.collaborators,
            invitations = counts.invitations,
            audit_log_pages = reads.activity.as_ref().map_or(0, |a| a.pages),
            requests = s.requests_made(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "github poll done"
        );
        Ok(out)
    }
}

#[derive(Default)]
struct Counts {
    members: u64,
    collaborators: u64,
    invitations: u64,
    skipped: u64,
}

impl GithubSource {
    pub fn client(&self) -> &GithubClient {
        &self.client
    }

    /// Owners, the 2FA filters, invitations, credentials and the audit log, concurrently. A
    /// refusal makes that data unknown (with the reason) and the poll goes on.
    async fn read_all(
        &self,
        s: &Session<'_>,
        ctx: &PollContext<'_>,
        out: &mut PollOutput,
    ) -> Result<Reads, UpstreamError> {
        let c = &self.client;
        let users = |path: &'static str, endpoint: &'static str, q: &'static [(&str, &str)]| {
            let mut query = vec![("per_page", PER_PAGE)];
            query.extend_from_slice(q);
            c.list::<SimpleUser>(s, c.org_url(&[path], &query), endpoint, |u| {
                u.id.as_deref()
            })
        };
        let now = ctx.now.unix_timestamp();
        let activity = async {
            if self.audit_log {
                Some(
                    self.activity
                        .refresh(c, s, now, self.activity_window_days, self.audit_log_pages)
                        .await,
                )
            } else {
                None
            }
        };
        let fine_grained = async {
            if c.is_app() {
                Some(
                    c.list::<FineGrainedToken>(
                        s,
                        c.org_url(&["personal-access-tokens"], &[("per_page", PER_PAGE)]),
                        PERSONAL_ACCESS_TOKENS,
                        |t| t.id.as_deref(),
                    )
                    .await,
                )
            } else {
                None
            }
        };
        let (owners, m_off, m_weak, c_off, c_weak, invitations, saml, fine_grained, activity) = tokio::join!(
            users("members", MEMBERS, &[("role", "admin")]),
            users("members", MEMBERS, &[("filter", "2fa_disabled")]),
            users("members", MEMBERS, &[("filter", "2fa_insecure")]),
            users("outside_collaborators", OUTSIDE_COLLABORATORS, &[("filter", "2fa_disabled")]),
            users("outside_collaborators", OUTSIDE_COLLABORATORS, &[("filter", "2fa_insecure")]),
            c.list::<Invitation>(
                s,
                c.org_url(&["invitations"], &[("per_page", PER_PAGE)]),
                INVITATIONS,
                |i| i.id.as_deref(),
            ),
            c.list::<CredentialAuthorization>(
                s,
                c.org_url(&["credential-authorizations"], &[("per_page", PER_PAGE)]),
                CREDENTIAL_AUTHORIZATIONS,
                |a| a.credential_id.as_deref(),
            ),
            fine_grained,
            activity,
        );
        let av = &mut out.availability;

        // Owners: roles unknown when refused.
        let owners = optional(av, Some(DataKind::Roles), owners, refused)?.map(ids);

        // 2FA: each filter answers only to owners; a refusal leaves what it decides unknown.
        let mut two_fa_refusals = Vec::new();
        let mut filter = |r: Result<Vec<SimpleUser>, UpstreamError>| match r {
            Ok(v) => Ok(Some(ids(v))),
            Err(e) => match refused(&e) {
                Some(why) => {
                    two_fa_refusals.push(why);
                    Ok(None)
                }
                None => Err(e),
            },
        };
        let members_2fa = TwoFactor {
            disabled: filter(m_off)?,
            insecure: filter(m_weak)?,
        };
        let collaborators_2fa = TwoFactor {
            disabled: filter(c_off)?,
            insecure: filter(c_weak)?,
        };
        if !two_fa_refusals.is_empty() {
            two_fa_refusals.dedup();
            av.set_missing(
                DataKind::Mfa,
                format!(
                    "2FA state unknown: the 2fa_disabled / 2fa_insecure filters answer only to organisation owners ({})",
                    two_fa_refusals.join("; ")
                ),
            );
        }

        // Pending invitations: inventory only (staged accounts are not checked).
        let invitations = optional(av, None, invitations, |e| {
            refused_or_absent(e, "no invitations to list here (GitHub Enterprise Server, or an Enterprise Managed Users organisation)").map(|r| format!("github: pending invitations not read: {r}"))
        })?
        .unwrap_or_default();

        // Credentials: SAML SSO authorisations (classic tokens, SSH keys) and, for an App,
        // fine-grained tokens; unknown only when neither could be read.
        let mut missing: Vec<String> = Vec::new();
        let saml = match saml {
            Ok(v) => Some(v),
            Err(e) => match refused_or_absent(&e, "the organisation has no SAML single sign-on (or is not on GitHub Enterprise Cloud), so no credential is authorised for it") {
                Some(why) => {
                    missing.push(format!("classic tokens and SSH keys authorised for SAML SSO: {why}"));
                    None
                }
                None => return Err(e),
            },
        };
        let fine_grained = match fine_grained {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => match refused_or_absent(&e, "this GitHub does not list fine-grained tokens") {
                Some(why) => {
                    missing.push(format!("fine-grained tokens: {why}"));
                    None
                }
                None => return Err(e),
            },
            None => {
                missing.push("fine-grained tokens: GitHub lists them only to a GitHub App (app_id, installation_id, private_key)".into());
                None
            }
        };
        let credentials = if saml.is_none() && fine_grained.is_none() {
            None
        } else {
            let mut by_login: HashMap<String, Vec<Credential>> = HashMap::new();
            let mut app_managed = 0u64;
            for a in saml.iter().flatten() {
                match map::map_authorization(a) {
                    Some((login, cred)) => by_login.entry(login).or_default().push(cred),
                    None => app_managed += 1,
                }
            }
            for t in fine_grained.iter().flatten() {
                if let Some((login, cred)) = map::map_fine_grained(t) {
                    by_login.entry(login).or_default().push(cred);
                }
            }
            if app_managed > 0 {
                tracing::debug!(source = %self.client.name(), app_managed, "github: OAuth app and GitHub App tokens authorised for SAML SSO are not member credentials; not reported");
            }
            Some(by_login)
        };
        if !missing.is_empty() {
            let partly = if credentials.is_some() { "partially: " } else { "" };
            av.set_missing(
                DataKind::Credentials,
                format!("{partly}{}", missing.join("; ")),
            );
        }

        // Last activity from the audit log.
        let activity = match activity {
            None => {
                av.set_missing(
                    DataKind::LastLogin,
                    "the audit log is not read (audit_log = false), and GitHub's REST API has no last-login time",
                );
                None
            }
            Some(r) => match optional(av, Some(DataKind::LastLogin), r, |e| {
                refused_or_absent(e, "the organisation audit log is available on GitHub Enterprise Cloud and Server only").map(|r| {
                    format!("GitHub's REST API has no last-login time and the audit log could not be read: {r}")
                })
            })? {
                Some(a) if a.is_empty() => {
                    av.set_missing(
                        DataKind::LastLogin,
                        format!(
                            "the audit log holds no event of the last {} days for this credential, so it says nothing of anyone's activity (GitHub's REST API has no last-login time)",
                            self.activity_window_days
                        ),
                    );
                    None
                }
                Some(a) if !a.complete() => {
                    let since = a
                        .covered_since()
                        .and_then(|t| Timestamp::from_unix_timestamp(t).ok())
                        .map(crate::model::format_ts)
                        .unwrap_or_else(|| "nothing".into());
                    av.set_missing(
                        DataKind::LastLogin,
                        format!(
                            "partially: the audit log has been read back to {since} so far ({} pages per poll); accounts without an event since then stay unknown until it reaches the start of the {}-day window",
                            self.audit_log_pages, self.activity_window_days
                        ),
                    );
                    Some(a)
                }
                a => a,
            },
        };
        Ok(Reads {
            owners,
            members_2fa,
            collaborators_2fa,
            credentials,
            invitations,
            activity,
        })
    }
}
