//! An in-memory IAM behind [`IamApi`](super::api::IamApi), for tests: users, groups,
//! managed and inline policies, MFA devices and a credential report, plus scripted faults per
//! action (denied, throttled N times, not found, 5xx, timeout) and a call log. Each call is one
//! metered attempt, as through the SDK; a throttled call takes one attempt per throttle.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::api::{
    ApiError, ApiErrorKind, ApiFuture, AttachedPolicy, CredentialReport, IamApi, ManagedPolicy,
    Meter, ReportState, VirtualMfaDevice,
};
use crate::model::Timestamp;

/// Attempts per call the fake allows a throttled call, like the SDK's retry configuration.
pub const FAKE_MAX_ATTEMPTS: u32 = 4;

#[derive(Debug, Clone, Default)]
pub struct FakeUser {
    pub attached: Vec<AttachedPolicy>,
    /// Inline policy name → document (as IAM sends it: URL-encoded or raw).
    pub inline: BTreeMap<String, String>,
    pub groups: Vec<String>,
    /// MFA device serial numbers.
    pub mfa: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct FakeGroup {
    pub attached: Vec<AttachedPolicy>,
    pub inline: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct FakePolicy {
    pub name: String,
    pub default_version: String,
    /// Version id → document.
    pub versions: BTreeMap<String, String>,
}

/// Everything the fake IAM holds.
#[derive(Debug, Clone, Default)]
pub struct FakeData {
    /// The credential report's CSV.
    pub report: Vec<u8>,
    pub generated: Option<Timestamp>,
    /// `GenerateCredentialReport` answers "in progress" this many times before "complete".
    pub report_in_progress: u32,
    pub users: BTreeMap<String, FakeUser>,
    pub groups: BTreeMap<String, FakeGroup>,
    /// Managed policies by ARN.
    pub policies: BTreeMap<String, FakePolicy>,
    pub virtual_devices: Vec<VirtualMfaDevice>,
}

/// A scripted failure of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFault {
    /// 403 `AccessDenied` with this message.
    Denied(String),
    /// `Throttling` this many times within the call, then the normal answer (if fewer than
    /// [`FAKE_MAX_ATTEMPTS`]), else the throttling error.
    Throttled(u32),
    NotFound,
    /// 500 `ServiceFailure`.
    Service,
    Timeout,
    /// 403 `InvalidClientTokenId` with this message.
    BadCredentials(String),
}

/// The fake IAM. Clone the `Arc` to keep a handle for scripting faults and reading the log
/// while the source polls it.
#[derive(Debug, Default)]
pub struct FakeIam {
    meter: Arc<Meter>,
    data: Mutex<FakeData>,
    once: Mutex<HashMap<&'static str, VecDeque<FakeFault>>>,
    always: Mutex<HashMap<&'static str, FakeFault>>,
    calls: Mutex<Vec<String>>,
    secrets: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeIam {
    pub fn new(data: FakeData) -> FakeIam {
        FakeIam {
            data: Mutex::new(data),
            ..FakeIam::default()
        }
    }

    /// The "credentials" the fake stands for: redacted from everything the source says.
    pub fn with_secrets(mut self, secrets: &[&str]) -> FakeIam {
        self.secrets = secrets.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Changes the data between polls.
    pub fn data(&self) -> MutexGuard<'_, FakeData> {
        lock(&self.data)
    }

    /// Every later call of `action` (e.g. `"iam:ListMFADevices"`) fails this way.
    pub fn fail(&self, action: &'static str, fault: FakeFault) {
        lock(&self.always).insert(action, fault);
    }
    /// The next call of `action` fails this way (queued behind earlier ones).
    pub fn fail_once(&self, action: &'static str, fault: FakeFault) {
        lock(&self.once).entry(action).or_default().push_back(fault);
    }
    pub fn clear_faults(&self) {
        lock(&self.always).clear();
        lock(&self.once).clear();
    }

    /// Every call so far: `"iam:Action arg…"`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }
    /// How many calls of `action` were made.
    pub fn count(&self, action: &str) -> usize {
        lock(&self.calls)
            .iter()
            .filter(|c| c.split(' ').next() == Some(action))
            .count()
    }
    pub fn clear_calls(&self) {
        lock(&self.calls).clear();
    }

    /// One call: log it, take attempts from the budget, play a scripted fault.
    fn enter(&self, action: &'static str, args: &[&str]) -> Result<(), ApiError> {
        lock(&self.calls).push(std::iter::once(action).chain(args.iter().copied()).collect::<Vec<_>>().join(" "));
        let fault = {
            let once = lock(&self.once).get_mut(action).and_then(VecDeque::pop_front);
            once.or_else(|| lock(&self.always).get(action).cloned())
        };
        let attempt = || {
            if self.meter.try_attempt() {
                Ok(())
            } else {
                Err(ApiError::budget(action, self.meter.max().unwrap_or(0)))
            }
        };
        let err = |kind, code: &str, status, message: String| ApiError {
            kind,
            action,
            code: Some(code.to_string()),
            status: Some(status),
            message,
        };
        match fault {
            None => {
                attempt()?;
                self.meter.record(Some(200), false);
                Ok(())
            }
            Some(FakeFault::Throttled(n)) => {
                for i in 0..n {
                    if i >= FAKE_MAX_ATTEMPTS {
                        return Err(err(
                            ApiErrorKind::Throttled,
                            "Throttling",
                            400,
                            "Rate exceeded".into(),
                        ));
                    }
                    attempt()?;
                    self.meter.record(Some(400), true);
                }
                if n >= FAKE_MAX_ATTEMPTS {
                    return Err(err(
                        ApiErrorKind::Throttled,
                        "Throttling",
                        400,
                        "Rate exceeded".into(),
                    ));
                }
                attempt()?;
                self.meter.record(Some(200), false);
                Ok(())
            }
            Some(f) => {
                attempt()?;
                let (e, status) = match f {
                    FakeFault::Denied(m) => (err(ApiErrorKind::Denied, "AccessDenied", 403, m), Some(403)),
                    FakeFault::BadCredentials(m) => (
                        err(ApiErrorKind::Credentials, "InvalidClientTokenId", 403, m),
                        Some(403),
                    ),
                    FakeFault::NotFound => (
                        err(ApiErrorKind::NotFound, "NoSuchEntity", 404, format!("{} not found", args.join(" "))),
                        Some(404),
                    ),
                    FakeFault::Service => (
                        err(ApiErrorKind::Service, "ServiceFailure", 500, "internal failure".into()),
                        Some(500),
                    ),
                    FakeFault::Timeout => (
                        ApiError::new(ApiErrorKind::Timeout, action, "operation timed out"),
                        None,
                    ),
                    FakeFault::Throttled(_) => unreachable!("handled above"),
                };
                self.meter.record(status, false);
                Err(e)
            }
        }
    }

    fn not_found(action: &'static str, what: &str) -> ApiError {
        ApiError {
            kind: ApiErrorKind::NotFound,
            action,
            code: Some("NoSuchEntity".into()),
            status: Some(404),
            message: format!("{what} not found"),
        }
    }

    fn user<T>(&self, action: &'static str, user: &str, f: impl FnOnce(&FakeUser) -> T) -> Result<T, ApiError> {
        self.enter(action, &[user])?;
        let d = self.data();
        d.users
            .get(user)
            .map(f)
            .ok_or_else(|| Self::not_found(action, &format!("user {user}")))
    }

    fn group<T>(&self, action: &'static str, group: &str, f: impl FnOnce(&FakeGroup) -> T) -> Result<T, ApiError> {
        self.enter(action, &[group])?;
        let d = self.data();
        d.groups
            .get(group)
            .map(f)
            .ok_or_else(|| Self::not_found(action, &format!("group {group}")))
    }
}

impl IamApi for FakeIam {
    fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    fn redact(&self, text: &str) -> String {
        let exact: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        super::redact::redact(text, &exact)
    }

    fn generate_credential_report(&self) -> ApiFuture<'_, ReportState> {
        Box::pin(async move {
            self.enter("iam:GenerateCredentialReport", &[])?;
            let mut d = self.data();
            if d.report_in_progress > 0 {
                d.report_in_progress -= 1;
                Ok(ReportState::InProgress)
            } else {
                Ok(ReportState::Complete)
            }
        })
    }

    fn get_credential_report(&self) -> ApiFuture<'_, CredentialReport> {
        Box::pin(async move {
            self.enter("iam:GetCredentialReport", &[])?;
            let d = self.data();
            Ok(CredentialReport {
                content: d.report.clone(),
                generated: d.generated,
            })
        })
    }

    fn list_virtual_mfa_devices(&self) -> ApiFuture<'_, Vec<VirtualMfaDevice>> {
        Box::pin(async move {
            self.enter("iam:ListVirtualMFADevices", &[])?;
            Ok(self.data().virtual_devices.clone())
        })
    }

    fn list_mfa_devices<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move { self.user("iam:ListMFADevices", user, |u| u.mfa.clone()) })
    }

    fn list_attached_user_policies<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<AttachedPolicy>> {
        Box::pin(async move {
            self.user("iam:ListAttachedUserPolicies", user, |u| u.attached.clone())
        })
    }

    fn list_user_policies<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.user("iam:ListUserPolicies", user, |u| u.inline.keys().cloned().collect())
        })
    }

    fn get_user_policy<'a>(&'a self, user: &'a str, policy: &'a str) -> ApiFuture<'a, String> {
        Box::pin(async move {
            self.user("iam:GetUserPolicy", user, |u| u.inline.get(policy).cloned())?
                .ok_or_else(|| Self::not_found("iam:GetUserPolicy", &format!("policy {policy}")))
        })
    }

    fn list_groups_for_user<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move { self.user("iam:ListGroupsForUser", user, |u| u.groups.clone()) })
    }

    fn list_attached_group_policies<'a>(&'a self, group: &'a str) -> ApiFuture<'a, Vec<AttachedPolicy>> {
        Box::pin(async move {
            self.group("iam:ListAttachedGroupPolicies", group, |g| g.attached.clone())
        })
    }

    fn list_group_policies<'a>(&'a self, group: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.group("iam:ListGroupPolicies", group, |g| g.inline.keys().cloned().collect())
        })
    }

    fn get_group_policy<'a>(&'a self, group: &'a str, policy: &'a str) -> ApiFuture<'a, String> {
        Box::pin(async move {
            self.group("iam:GetGroupPolicy", group, |g| g.inline.get(policy).cloned())?
                .ok_or_else(|| Self::not_found("iam:GetGroupPolicy", &format!("policy {policy}")))
        })
    }

    fn get_policy<'a>(&'a self, arn: &'a str) -> ApiFuture<'a, ManagedPolicy> {
        Box::pin(async move {
            self.enter("iam:GetPolicy", &[arn])?;
            self.data()
                .policies
                .get(arn)
                .map(|p| ManagedPolicy {
                    name: p.name.clone(),
                    default_version: Some(p.default_version.clone()),
                })
                .ok_or_else(|| Self::not_found("iam:GetPolicy", arn))
        })
    }

    fn get_policy_version<'a>(&'a self, arn: &'a str, version: &'a str) -> ApiFuture<'a, String> {
        Box::pin(async move {
            self.enter("iam:GetPolicyVersion", &[arn, version])?;
            self.data()
                .policies
                .get(arn)
                .and_then(|p| p.versions.get(version).cloned())
                .ok_or_else(|| Self::not_found("iam:GetPolicyVersion", &format!("{arn} {version}")))
        })
    }
}
