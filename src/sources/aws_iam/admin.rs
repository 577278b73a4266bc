//! Who holds admin power, per IAM user: managed and inline policies attached to the user and
//! to its groups, judged by name (`AdministratorAccess`, `IAMFullAccess`, `admin_policies`)
//! or by document (`*` on `*`). Customer-managed documents are cached by ARN and version
//! across polls, so a steady account costs one `GetPolicy` per policy and poll.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

use futures_util::{stream, StreamExt, TryStreamExt};

use super::api::{ApiError, ApiErrorKind, AttachedPolicy, Calls};
use super::policy::{allows_star_on_star, decode_document, is_aws_managed, AdminNames};

/// Verdicts on customer-managed policy versions: (ARN, version id) → admin power.
#[derive(Debug, Default)]
pub struct VersionCache(Mutex<HashMap<(String, String), bool>>);

impl VersionCache {
    fn get(&self, arn: &str, version: &str) -> Option<bool> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(arn.to_string(), version.to_string()))
            .copied()
    }
    fn put(&self, arn: &str, version: &str, admin: bool) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((arn.to_string(), version.to_string()), admin);
    }
    /// Forgets versions no longer in force (the cache never outgrows the account).
    fn keep_only(&self, seen: &HashSet<(String, String)>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| seen.contains(k));
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One user's admin power and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAdmin {
    /// Admin policy names (the roles), sorted, without duplicates.
    pub policies: Vec<String>,
    pub groups: Vec<String>,
}

/// What a user or group holds before managed policies are judged.
#[derive(Debug, Default)]
struct Holder {
    attached: Vec<AttachedPolicy>,
    /// Inline policies found to be admin power.
    inline_admin: Vec<String>,
    groups: Vec<String>,
}

/// `Ok(None)` for `NoSuchEntity`: the user or group was deleted after the report was made.
fn gone<T>(r: Result<T, ApiError>) -> Result<Option<T>, ApiError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ApiErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn judge_inline(
    names: &AdminNames,
    owner: &str,
    policy: &str,
    raw: &str,
    action: &'static str,
) -> Result<bool, ApiError> {
    if names.is_admin(policy, None) {
        return Ok(true);
    }
    allows_star_on_star(&decode_document(raw)).map_err(|why| {
        ApiError::new(
            ApiErrorKind::Decode,
            action,
            format!("inline policy {policy:?} of {owner}: {why}"),
        )
    })
}

async fn read_user(calls: &Calls<'_>, names: &AdminNames, user: &str) -> Result<Option<Holder>, ApiError> {
    let api = calls.api;
    let Some(attached) = gone(
        calls
            .run("iam:ListAttachedUserPolicies", api.list_attached_user_policies(user))
            .await,
    )?
    else {
        return Ok(None);
    };
    let Some(inline) = gone(calls.run("iam:ListUserPolicies", api.list_user_policies(user)).await)?
    else {
        return Ok(None);
    };
    let mut inline_admin = Vec::new();
    for p in inline {
        let Some(doc) = gone(calls.run("iam:GetUserPolicy", api.get_user_policy(user, &p)).await)?
        else {
            continue;
        };
        if judge_inline(names, &format!("user {user}"), &p, &doc, "iam:GetUserPolicy")? {
            inline_admin.push(p);
        }
    }
    let Some(groups) = gone(calls.run("iam:ListGroupsForUser", api.list_groups_for_user(user)).await)?
    else {
        return Ok(None);
    };
    Ok(Some(Holder {
        attached,
        inline_admin,
        groups,
    }))
}

async fn read_group(calls: &Calls<'_>, names: &AdminNames, group: &str) -> Result<Holder, ApiError> {
    let api = calls.api;
    let attached = gone(
        calls
            .run("iam:ListAttachedGroupPolicies", api.list_attached_group_policies(group))
            .await,
    )?
    .unwrap_or_default();
    let inline = gone(calls.run("iam:ListGroupPolicies", api.list_group_policies(group)).await)?
        .unwrap_or_default();
    let mut inline_admin = Vec::new();
    for p in inline {
        let Some(doc) = gone(calls.run("iam:GetGroupPolicy", api.get_group_policy(group, &p)).await)?
        else {
            continue;
        };
        if judge_inline(names, &format!("group {group}"), &p, &doc, "iam:GetGroupPolicy")? {
            inline_admin.push(p);
        }
    }
    Ok(Holder {
        attached,
        inline_admin,
        groups: Vec::new(),
    })
}

/// Whether a customer-managed policy's version in force allows `*` on `*`; `None` when it
/// no longer exists.
async fn read_managed(
    calls: &Calls<'_>,
    cache: &VersionCache,
    arn: &str,
) -> Result<Option<(String, bool)>, ApiError> {
    let api = calls.api;
    let Some(p) = gone(calls.run("iam:GetPolicy", api.get_policy(arn)).await)? else {
        return Ok(None);
    };
    let Some(version) = p.default_version else {
        return Err(ApiError::new(
            ApiErrorKind::Decode,
            "iam:GetPolicy",
            format!("policy {arn} has no default version"),
        ));
    };
    if let Some(admin) = cache.get(arn, &version) {
        return Ok(Some((version, admin)));
    }
    let Some(doc) = gone(
        calls
            .run("iam:GetPolicyVersion", api.get_policy_version(arn, &version))
            .await,
    )?
    else {
        return Ok(None);
    };
    let admin = allows_star_on_star(&decode_document(&doc)).map_err(|why| {
        ApiError::new(
            ApiErrorKind::Decode,
            "iam:GetPolicyVersion",
            format!("policy {arn} version {version}: {why}"),
        )
    })?;
    cache.put(arn, &version, admin);
    Ok(Some((version, admin)))
}

/// Reads every user's admin power. `users` are IAM user names; a user deleted meanwhile maps
/// to `None`. Requests run `concurrency` at a time; the first failure ends the scan.
pub async fn scan(
    calls: &Calls<'_>,
    users: &[String],
    names: &AdminNames,
    cache: &VersionCache,
    concurrency: usize,
) -> Result<HashMap<String, Option<UserAdmin>>, ApiError> {
    let n = concurrency.max(1);
    let holders: Vec<(String, Option<Holder>)> = stream::iter(users.iter().cloned())
        .map(|u| async move { read_user(calls, names, &u).await.map(|h| (u, h)) })
        .buffer_unordered(n)
        .try_collect()
        .await?;

    let group_names: BTreeSet<String> = holders
        .iter()
        .filter_map(|(_, h)| h.as_ref())
        .flat_map(|h| h.groups.iter().cloned())
        .collect();
    let groups: HashMap<String, Holder> = stream::iter(group_names)
        .map(|g| async move { read_group(calls, names, &g).await.map(|h| (g, h)) })
        .buffer_unordered(n)
        .try_collect()
        .await?;

    // Managed policies: by name first; AWS-managed ones are judged by name only (AWS
    // publishes them; only AdministratorAccess allows `*` on `*`); customer-managed ones by
    // the document of their default version.
    let attached = holders
        .iter()
        .filter_map(|(_, h)| h.as_ref())
        .chain(groups.values())
        .flat_map(|h| h.attached.iter());
    let mut admin_arn: HashMap<String, bool> = HashMap::new();
    let mut to_read: BTreeSet<String> = BTreeSet::new();
    for p in attached {
        if names.is_admin(&p.name, Some(&p.arn)) {
            admin_arn.insert(p.arn.clone(), true);
        } else if is_aws_managed(&p.arn) {
            admin_arn.insert(p.arn.clone(), false);
        } else {
            to_read.insert(p.arn.clone());
        }
    }
    let read: Vec<(String, Option<(String, bool)>)> = stream::iter(to_read)
        .map(|arn| async move { read_managed(calls, cache, &arn).await.map(|r| (arn, r)) })
        .buffer_unordered(n)
        .try_collect()
        .await?;
    let mut in_force = HashSet::new();
    for (arn, r) in read {
        if let Some((version, admin)) = r {
            in_force.insert((arn.clone(), version));
            admin_arn.insert(arn, admin);
        }
    }
    cache.keep_only(&in_force);

    let admin_names = |h: &Holder, out: &mut BTreeSet<String>| {
        out.extend(h.inline_admin.iter().cloned());
        for p in &h.attached {
            if admin_arn.get(&p.arn).copied().unwrap_or(false) {
                out.insert(p.name.clone());
            }
        }
    };
    Ok(holders
        .into_iter()
        .map(|(user, h)| {
            let admin = h.map(|h| {
                let mut policies = BTreeSet::new();
                admin_names(&h, &mut policies);
                for g in &h.groups {
                    if let Some(gh) = groups.get(g) {
                        admin_names(gh, &mut policies);
                    }
                }
                UserAdmin {
                    policies: policies.into_iter().collect(),
                    groups: h.groups,
                }
            });
            (user, admin)
        })
        .collect())
}
