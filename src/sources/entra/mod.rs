//! The `entra` source: Microsoft Entra ID (Azure AD / Office 365) through Microsoft Graph
//! v1.0 with app-only credentials. Users, MFA registration, directory roles (active, PIM
//! eligible, via groups), app credentials and the tenant's MFA policy, mapped into the model.
//!
//! Layout: `graph.rs` (wire types) · `map.rs` (pure mapping) · `policy.rs` (MFA policy
//! gaps) · `client.rs` (token + GET + paging; the seam to the shared upstream layer).

pub mod client;
pub mod graph;
pub mod map;
pub mod policy;

use std::collections::HashMap;
use std::sync::Arc;

use crate::upstream::Session;
use client::{FetchError, GraphClient};
use graph::{
    Application, ConditionalAccessPolicy, DirectoryObject, RoleAssignment, RoleDefinition,
    SecurityDefaults, ServicePrincipal, User, UserRegistrationDetails,
};
use map::{IdMap, RoleGrant, UserContext};

use super::{AccountSink, PollContext, PollOutput, SourceError, SourceGauge};
use crate::config::{EntraConfig, SourceConfig};
use crate::model::{DataAvailability, DataKind, TenantFacts};

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

fn refusal_reason(e: &FetchError, what: &str, permission: &str) -> String {
    if e.is_non_premium() {
        format!("{what}: Graph refused — the tenant has no Entra ID P1/P2 licence ({e})")
    } else {
        format!("{what}: Graph refused — grant the application permission {permission} ({e})")
    }
}

impl EntraSource {
    pub fn new(sc: &SourceConfig, cfg: &EntraConfig) -> Result<EntraSource, SourceError> {
        let client = GraphClient::new(cfg, &sc.name, sc.timeout, sc.limits.clone())
            .map_err(|e| SourceError::new(format!("entra: {e}")))?;
        Ok(EntraSource { client })
    }

    /// For tests and benchmarks: a source over a prepared client (e.g. fast retries).
    pub fn with_client(client: GraphClient) -> EntraSource {
        EntraSource { client }
    }

    /// Every item of a small collection at `path_and_query` (below `/v1.0`).
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        s: &Session<'_>,
        path_and_query: &str,
    ) -> Result<Vec<T>, FetchError> {
        let url = self.url(path_and_query);
        self.client.collect(s, &url, &endpoint(&url)).await
    }

    async fn get_one<T: serde::de::DeserializeOwned>(
        &self,
        s: &Session<'_>,
        path_and_query: &str,
    ) -> Result<T, FetchError> {
        let url = self.url(path_and_query);
        self.client.get(s, &url, &endpoint(&url)).await
    }

    fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}/v1.0{}",
            self.client.graph_url().trim_end_matches('/'),
            path_and_query
        )
    }

    pub async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let s = self.client.session(ctx.stats);
        let (roles, mfa, workloads, tenant) = tokio::join!(
            self.fetch_roles(&s),
            self.fetch_registration(&s),
            self.fetch_workloads(&s),
            self.fetch_policy(&s),
        );
        let fail = |e: FetchError| SourceError::new(format!("entra: {e}"));
        let mut availability = DataAvailability::default();
        let roles = match roles {
            Ok(r) => Some(r),
            Err(e) if e.is_refusal() => {
                // Members of role-assignable groups need a permission of their own; without
                // them group-held roles are unknown, so no role data is claimed at all.
                let (what, permission) = if e.what().contains("/groups/") {
                    ("members of role-assignable groups", "GroupMember.Read.All")
                } else {
                    (
                        "directory role assignments",
                        "RoleManagement.Read.Directory",
                    )
                };
                availability.set_missing(DataKind::Roles, refusal_reason(&e, what, permission));
                None
            }
            Err(e) => return Err(fail(e)),
        };
        let mfa = match mfa {
            Ok(m) => Some(m),
            Err(e) if e.is_refusal() => {
                availability.set_missing(
                    DataKind::Mfa,
                    refusal_reason(
                        &e,
                        "MFA registration report (userRegistrationDetails)",
                        "AuditLog.Read.All",
                    ),
                );
                None
            }
            Err(e) => return Err(fail(e)),
        };
        let (security_defaults, ca) = tenant.map_err(fail)?;
        let mut gauges = Vec::new();
        if let Some(r) = &roles {
            gauges.push(SourceGauge {
                name: "identity_posture_entra_pim_eligibility_available",
                help: "1 if PIM-eligible role assignments could be read (they count as privileged), 0 if not (licence or permission); from the last background poll.",
                labels: vec![],
                value: if r.eligibility_missing.is_some() { 0.0 } else { 1.0 },
            });
            if let Some(why) = &r.eligibility_missing {
                tracing::warn!(reason = %why, "entra: PIM-eligible roles not read; only active assignments count");
            }
        }

        // MFA enforcement is known to be on for everyone only under security defaults;
        // per-user legacy MFA and conditional access exclusions are not read per account.
        let mfa_enforced = (security_defaults == Some(true)).then_some(true);
        let gaps = policy::mfa_policy_gaps(&policy::PolicyInputs {
            security_defaults,
            conditional_access: ca.as_ref().map(|(p, _)| p.as_slice()),
            no_premium: ca.as_ref().is_some_and(|(_, np)| *np),
        });

        // Users, streamed page by page.
        self.stream_users(&s, &mut availability, sink, |u, sign_in_known| {
            map::map_user(
                u,
                &UserContext {
                    sign_in_known,
                    mfa: mfa.as_ref().map(|m| m.get(&u.id).copied()),
                    mfa_enforced,
                    roles: roles
                        .as_ref()
                        .map(|r| r.index.get(&u.id).map(Vec::as_slice).unwrap_or(&[])),
                },
            )
        })
        .await
        .map_err(fail)?;

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
            Err(e) if e.is_refusal() => {
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

        gauges.push(s.requests_gauge());
        Ok(PollOutput {
            availability,
            tenant: TenantFacts {
                mfa_policy_gaps: gaps,
                ..TenantFacts::default()
            },
            gauges,
        })
    }

    /// Streams `/users`, degrading the `$select` when Graph refuses a property: first
    /// `signInActivity` (Entra ID P1 + AuditLog.Read.All), then `employeeLeaveDateTime`
    /// (User-LifeCycleInfo.Read.All). Returns whether sign-in activity was read.
    async fn stream_users(
        &self,
        s: &Session<'_>,
        availability: &mut DataAvailability,
        sink: &mut dyn AccountSink,
        map: impl Fn(&User, bool) -> crate::model::Account,
    ) -> Result<bool, FetchError> {
        let mut fields: Vec<&str> = USER_FIELDS.to_vec();
        let mut sign_in_known = true;
        loop {
            let url = self.url(&format!(
                "/users?$select={}&$top={PAGE_SIZE}",
                fields.join(",")
            ));
            // The first page decides the $select; later pages follow nextLink.
            let first: Result<graph::Page<User>, FetchError> =
                self.client.get(s, &url, "/v1.0/users").await;
            match first {
                Ok(page) => {
                    self.client
                        .for_each_page::<User>(s, &url, "/v1.0/users", Some(page), |users| {
                            for u in &users {
                                sink.push(map(u, sign_in_known));
                            }
                        })
                        .await?;
                    return Ok(sign_in_known);
                }
                Err(e) if e.is_refusal() && fields.contains(&"signInActivity") => {
                    fields.retain(|f| *f != "signInActivity");
                    sign_in_known = false;
                    availability.set_missing(
                        DataKind::LastLogin,
                        refusal_reason(
                            &e,
                            "sign-in activity (signInActivity)",
                            "AuditLog.Read.All",
                        ),
                    );
                }
                Err(e) if e.is_refusal() && fields.contains(&"employeeLeaveDateTime") => {
                    tracing::warn!(error = %e, "entra: employeeLeaveDateTime refused; leave dates not read (needs User-LifeCycleInfo.Read.All)");
                    fields.retain(|f| *f != "employeeLeaveDateTime");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Registered MFA factors per user id, as factor bit sets.
    async fn fetch_registration(&self, s: &Session<'_>) -> Result<IdMap<u16>, FetchError> {
        // The list documents `$filter` only (no `$select`/`$top`): page size is Graph's.
        let url = self.url("/reports/authenticationMethods/userRegistrationDetails");
        let mut out = IdMap::default();
        self.client
            .for_each_page::<UserRegistrationDetails>(s, &url, &endpoint(&url), None, |rows| {
                for r in rows {
                    let bits = map::factor_bits(r.methods_registered.iter().flatten());
                    out.insert(&r.id, bits);
                }
            })
            .await?;
        Ok(out)
    }

    async fn fetch_roles(&self, s: &Session<'_>) -> Result<Roles, FetchError> {
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
            Err(e) if e.is_refusal() => (
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
    ) -> Result<(Vec<Application>, Vec<ServicePrincipal>), FetchError> {
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
    ) -> Result<(Option<bool>, Option<(Vec<ConditionalAccessPolicy>, bool)>), FetchError> {
        let defaults = match self
            .get_one::<SecurityDefaults>(s, "/policies/identitySecurityDefaultsEnforcementPolicy")
            .await
        {
            Ok(d) => d.is_enabled,
            Err(e) if e.is_refusal() => {
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
            Err(e) if e.is_non_premium() => Some((Vec::new(), true)),
            Err(e) if e.is_refusal() => {
                tracing::warn!(error = %e, "entra: conditional access policies not readable (Policy.Read.All)");
                None
            }
            Err(e) => return Err(e),
        };
        Ok((defaults, ca))
    }
}
