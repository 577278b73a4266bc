//! The `aws_iam` source: the IAM users of one AWS account, read with the AWS SDK for Rust —
//! the credential report (passwords, MFA, access keys, certificates, root), MFA device kinds,
//! and admin power from managed and inline policies, direct and through groups.
//!
//! Layout: `config.rs` (keys) · `api.rs` (the `IamApi` seam, errors, request meter) ·
//! `sdk.rs` (the SDK behind it) · `fake.rs` (an in-memory IAM for tests) · `report.rs` (the
//! credential report CSV) · `policy.rs` (policy analysis) · `admin.rs` (admin power per user)
//! · `map.rs` (pure mapping) · `redact.rs` (credentials out of messages). See docs/aws-iam.md.

pub mod admin;
pub mod api;
pub mod config;
pub mod fake;
pub mod map;
pub mod policy;
pub mod redact;
pub mod report;
pub mod sdk;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{stream, StreamExt, TryStreamExt};

use super::{
    AccountSink, Deps, ErrorKind, GaugeDesc, PollContext, PollOutput, Provider, SourceError,
    POLL_REQUESTS,
};
use crate::config::{Policy, SourceConfig, UpstreamLimits, Validator};
use crate::model::{AccountType, DataAvailability, DataKind, TenantFacts};
use crate::upstream::Timer;
use admin::{UserAdmin, VersionCache};
use api::{ApiError, ApiErrorKind, Calls, CredentialReport, IamApi, ReportState};
pub use config::{AwsIamConfig, RawAwsIamConfig};
use map::UserFacts;
use policy::AdminNames;
use report::ReportRow;
pub use sdk::CredentialSource;

pub const REPORT_AGE: GaugeDesc = GaugeDesc::new(
    "identity_posture_aws_iam_credential_report_age_seconds",
    "Age of the IAM credential report read by the last background poll (AWS reuses a report for up to 4 hours).",
);
pub const ROOT_LAST_USED: GaugeDesc = GaugeDesc::new(
    "identity_posture_aws_iam_root_last_used_timestamp_seconds",
    "When the root user's password was last used, as unix time (0: never, or no root row in the report); from the last background poll. CIS: do not use the root user.",
);
pub const ROOT_ACCESS_KEYS: GaugeDesc = GaugeDesc::new(
    "identity_posture_aws_iam_root_active_access_keys",
    "Active access keys of the root user (CIS: none); from the last background poll.",
);
pub const ROOT_MFA: GaugeDesc = GaugeDesc::new(
    "identity_posture_aws_iam_root_mfa",
    "1 for the root user's MFA: device none, virtual, hardware (a hardware TOTP token or a FIDO security key) or unknown; from the last background poll.",
);
pub const DORMANT_KEYS: GaugeDesc = GaugeDesc::new(
    "identity_posture_aws_iam_accounts_with_dormant_access_keys",
    "Active, non-excluded accounts with an active access key unused for dormant_after_days (or never used and older than that); from the last background poll.",
);
pub const MFA_UNREAD: GaugeDesc = GaugeDesc::new(
    "identity_posture_aws_iam_mfa_devices_unread",
    "Users with MFA whose device kinds the last background poll could not read (refused, or max_requests_per_poll reached); their MFA counts as a factor of type other.",
);

/// Longest wait for `GenerateCredentialReport` to finish, and the longest single wait.
const REPORT_WAIT: Duration = Duration::from_secs(120);
const REPORT_STEP: Duration = Duration::from_secs(8);

/// Where to find the least-privilege policy, for every permission hint.
const POLICY_DOC: &str = "docs/aws-iam.md lists the read-only policy";

pub struct AwsIamSource {
    cfg: AwsIamConfig,
    timeout: Duration,
    limits: UpstreamLimits,
    policy: Policy,
    timer: Arc<dyn Timer>,
    credentials: CredentialSource,
    api: tokio::sync::OnceCell<Arc<dyn IamApi>>,
    names: AdminNames,
    versions: VersionCache,
}

impl Provider for AwsIamSource {
    const TYPE: &'static str = "aws_iam";
    /// The AWS SDK logs the resolved identity with its access key id at debug, and SigV4 its
    /// canonical request at trace.
    const QUIET_LOG_TARGETS: &'static [&'static str] = &[
        "aws_config",
        "aws_credential_types",
        "aws_runtime",
        "aws_sdk_iam",
        "aws_sdk_sts",
        "aws_sigv4",
        "aws_smithy_http",
        "aws_smithy_http_client",
        "aws_smithy_runtime",
        "aws_smithy_runtime_api",
        "aws_smithy_types",
        "aws_types",
    ];
    type Raw = RawAwsIamConfig;
    type Config = AwsIamConfig;

    fn validate(raw: RawAwsIamConfig, v: &mut Validator<'_>) -> Option<AwsIamConfig> {
        config::validate(raw, v)
    }

    fn build(sc: &SourceConfig, cfg: &AwsIamConfig, deps: &Deps) -> Result<Self, SourceError> {
        Ok(AwsIamSource::new(sc, cfg, deps, CredentialSource::DefaultChain))
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let api = self.api().await;
        api.meter().reset(self.limits.max_requests_per_poll);
        let calls = Calls::new(api.as_ref(), ctx.stats);
        let r = self.read(&calls, ctx, sink).await;
        api.meter().drain_into(ctx.stats);
        r
    }
}

/// How the MFA device lookups went.
#[derive(Debug, Default)]
struct MfaDevices {
    by_user: HashMap<String, Vec<String>>,
    /// Users with MFA whose devices were not read.
    unread: u64,
    /// Why not (refusal or budget), for the log.
    why: Option<String>,
}

impl AwsIamSource {
    /// The source on the SDK with the given credentials (the default chain in production;
    /// fixed keys in tests against moto and stubs).
    pub fn new(
        sc: &SourceConfig,
        cfg: &AwsIamConfig,
        deps: &Deps,
        credentials: CredentialSource,
    ) -> AwsIamSource {
        AwsIamSource {
            cfg: cfg.clone(),
            timeout: sc.timeout,
            limits: sc.limits.clone(),
            policy: sc.policy.clone(),
            timer: deps.timer.clone(),
            credentials,
            api: tokio::sync::OnceCell::new(),
            names: AdminNames::new(&cfg.admin_policies),
            versions: VersionCache::default(),
        }
    }

    /// The source on another [`IamApi`] (the in-memory fake).
    pub fn with_api(
        sc: &SourceConfig,
        cfg: &AwsIamConfig,
        deps: &Deps,
        api: Arc<dyn IamApi>,
    ) -> AwsIamSource {
        let s = AwsIamSource::new(sc, cfg, deps, CredentialSource::DefaultChain);
        let _ = s.api.set(api);
        s
    }

    pub fn config(&self) -> &AwsIamConfig {
        &self.cfg
    }

    /// Customer-managed policy versions judged so far (kept between polls).
    pub fn cached_policy_versions(&self) -> usize {
        self.versions.len()
    }

    async fn api(&self) -> Arc<dyn IamApi> {
        self.api
            .get_or_init(|| async {
                let sdk =
                    sdk::SdkIam::connect(&self.cfg, self.timeout, self.credentials.clone()).await;
                Arc::new(sdk) as Arc<dyn IamApi>
            })
            .await
            .clone()
    }

    /// A failed call as the poll's error, with what the admin must change.
    fn fail(&self, api: &dyn IamApi, e: &ApiError) -> SourceError {
        let (kind, hint) = match e.kind {
            ApiErrorKind::Denied if e.code.is_none() => (
                ErrorKind::Permission,
                format!(
                    "IAM refused without an error code: grant the exporter's identity {} ({POLICY_DOC}), and check that its credentials are valid",
                    e.action
                ),
            ),
            ApiErrorKind::Denied => (
                ErrorKind::Permission,
                format!("grant the exporter's identity {} ({POLICY_DOC})", e.action),
            ),
            ApiErrorKind::Credentials => (
                ErrorKind::Auth,
                "no usable AWS credentials: check the default credential chain (AWS_* environment, `profile`, IRSA web identity, ECS task role or instance profile) and that the keys or token are current".to_string(),
            ),
            ApiErrorKind::Throttled => (
                ErrorKind::RateLimited,
                "IAM kept answering Throttling after every retry: other tools share the account's IAM request rate; raise the interval or lower concurrency".to_string(),
            ),
            ApiErrorKind::Budget => (
                ErrorKind::Budget,
                format!(
                    "raise max_requests_per_poll: a poll needs about 2 + 3 per user + 2 per group + 2 per customer-managed policy + 1 per user with MFA requests (used {})",
                    api.meter().used()
                ),
            ),
            ApiErrorKind::Timeout => (
                ErrorKind::Timeout,
                "IAM did not answer in time: check network access to the IAM endpoint (region, endpoint_url, proxy)".to_string(),
            ),
            ApiErrorKind::Transport => (
                ErrorKind::Transport,
                "no answer from IAM: check network access to the IAM endpoint (region, endpoint_url, proxy, TLS)".to_string(),
            ),
            ApiErrorKind::Service => (
                ErrorKind::Transport,
                "IAM failed on its side after every retry; the last good numbers stay".to_string(),
            ),
            ApiErrorKind::NotFound
            | ApiErrorKind::ReportNotReady
            | ApiErrorKind::LimitExceeded
            | ApiErrorKind::Decode
            | ApiErrorKind::Other => (
                ErrorKind::Decode,
                "IAM's answer was not what it documents; the last good numbers stay".to_string(),
            ),
        };
        SourceError::new(kind, api.redact(&format!("aws_iam: {e} — {hint}")))
    }

    /// `GenerateCredentialReport` until complete (waits on the injected timer, bounded), then
    /// `GetCredentialReport`; a report that vanished in between is asked for again once.
    async fn fetch_report(&self, calls: &Calls<'_>) -> Result<CredentialReport, SourceError> {
        let api = calls.api;
        let mut waited = Duration::ZERO;
        let mut step = Duration::from_millis(500);
        let mut rounds = 0;
        loop {
            loop {
                match calls
                    .run("iam:GenerateCredentialReport", api.generate_credential_report())
                    .await
                {
                    Ok(ReportState::Complete) => break,
                    Ok(ReportState::InProgress) => {}
                    Ok(ReportState::Other(state)) => {
                        tracing::debug!(%state, "aws_iam: unknown credential report state; waiting as for in progress");
                    }
                    // A report is being made already: read it once it is there.
                    Err(e) if e.kind == ApiErrorKind::LimitExceeded => break,
                    Err(e) => return Err(self.fail(api, &e)),
                }
                if waited >= REPORT_WAIT {
                    return Err(SourceError::new(
                        ErrorKind::Timeout,
                        format!(
                            "aws_iam: iam:GenerateCredentialReport: the credential report was still being generated after {}s — IAM takes longer for large accounts; the next poll asks again",
                            waited.as_secs()
                        ),
                    ));
                }
                self.timer.sleep(step).await;
                waited += step;
                step = (step * 2).min(REPORT_STEP);
            }
            match calls
                .run("iam:GetCredentialReport", api.get_credential_report())
                .await
            {
                Ok(r) => return Ok(r),
                Err(e) if e.kind == ApiErrorKind::ReportNotReady && rounds < 2 => {
                    rounds += 1;
                    tracing::debug!(error = %api.redact(&e.to_string()), "aws_iam: credential report not ready; generating again");
                }
                Err(e) => return Err(self.fail(api, &e)),
            }
        }
    }

    /// MFA device serials of the users with MFA, as far as refusals and the request budget
    /// allow (the rest stay of an unknown kind).
    async fn mfa_devices(&self, calls: &Calls<'_>, users: Vec<String>) -> Result<MfaDevices, ApiError> {
        let api = calls.api;
        let stop = AtomicBool::new(false);
        let unread = AtomicU64::new(0);
        let why: std::sync::Mutex<Option<String>> = Default::default();
        let found: Vec<Option<(String, Vec<String>)>> = stream::iter(users)
            .map(|u| {
                let (stop, unread, why) = (&stop, &unread, &why);
                async move {
                    let skip = stop.load(Ordering::Relaxed) || api.meter().remaining() == Some(0);
                    if skip {
                        unread.fetch_add(1, Ordering::Relaxed);
                        if api.meter().remaining() == Some(0) {
                            why.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| {
                                "max_requests_per_poll reached before every user's MFA devices were read".into()
                            });
                        }
                        return Ok(None);
                    }
                    match calls.run("iam:ListMFADevices", api.list_mfa_devices(&u)).await {
                        Ok(serials) => Ok(Some((u, serials))),
                        Err(e) if matches!(e.kind, ApiErrorKind::Denied | ApiErrorKind::Budget) => {
                            stop.store(true, Ordering::Relaxed);
                            unread.fetch_add(1, Ordering::Relaxed);
                            why.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| {
                                if e.kind == ApiErrorKind::Denied {
                                    format!("{e} — grant iam:ListMFADevices to tell virtual, hardware and FIDO devices apart")
                                } else {
                                    format!("{e}; raise max_requests_per_poll to read every user's MFA devices")
                                }
                            });
                            Ok(None)
                        }
                        Err(e) if e.kind == ApiErrorKind::NotFound => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(self.limits.concurrency.max(1))
            .try_collect()
            .await?;
        Ok(MfaDevices {
            by_user: found.into_iter().flatten().collect(),
            unread: unread.into_inner(),
            why: why.into_inner().unwrap_or_else(|e| e.into_inner()),
        })
    }

    async fn read(
        &self,
        calls: &Calls<'_>,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let api = calls.api;
        let fail = |e: ApiError| self.fail(api, &e);
        let mut availability = DataAvailability::default();

        // 1. The credential report: every user, root included.
        let report = self.fetch_report(calls).await?;
        let rows = report::parse(&report.content).map_err(|e| {
            SourceError::new(
                ErrorKind::Decode,
                api.redact(&format!(
                    "aws_iam: iam:GetCredentialReport: {e} — the report is not the CSV IAM documents; the last good numbers stay"
                )),
            )
        })?;
        let users: Vec<String> = rows
            .iter()
            .filter(|r| !r.is_root())
            .map(|r| r.user.clone())
            .collect();

        // 2. Admin power: all or nothing (a partial answer would call admins unprivileged).
        let admins: Option<HashMap<String, Option<UserAdmin>>> = match admin::scan(
            calls,
            &users,
            &self.names,
            &self.versions,
            self.limits.concurrency,
        )
        .await
        {
            Ok(m) => Some(m),
            Err(e) if e.kind == ApiErrorKind::Denied => {
                let reason = api.redact(&format!(
                    "{e} — grant {} to read admin power from user and group policies ({POLICY_DOC})",
                    e.action
                ));
                tracing::warn!(%reason, "aws_iam: policies not readable; roles left unknown");
                availability.set_missing(DataKind::Roles, reason);
                None
            }
            Err(e) => return Err(fail(e)),
        };

        // 3. Root's MFA device kind, from the account's virtual devices.
        let root = rows.iter().find(|r| r.is_root());
        let root_virtual = match root {
            Some(r) if r.mfa_active == Some(true) => match calls
                .run("iam:ListVirtualMFADevices", api.list_virtual_mfa_devices())
                .await
            {
                Ok(devices) => Some(
                    devices
                        .iter()
                        .any(|d| d.user_arn.as_deref().is_some_and(|a| a == r.arn || a.ends_with(":root"))),
                ),
                Err(e) if matches!(e.kind, ApiErrorKind::Denied | ApiErrorKind::Budget) => {
                    tracing::warn!(error = %api.redact(&e.to_string()), "aws_iam: root's MFA device kind not read (grant iam:ListVirtualMFADevices)");
                    None
                }
                Err(e) => return Err(fail(e)),
            },
            _ => None,
        };

        // 4. Device kinds of every user with MFA, within the budget.
        let with_mfa: Vec<String> = rows
            .iter()
            .filter(|r| !r.is_root() && r.mfa_active == Some(true))
            .filter(|r| {
                admins
                    .as_ref()
                    .is_none_or(|m| m.get(&r.user).is_none_or(Option::is_some))
            })
            .map(|r| r.user.clone())
            .collect();
        let mfa = self.mfa_devices(calls, with_mfa).await.map_err(fail)?;
        if let Some(why) = &mfa.why {
            tracing::warn!(reason = %api.redact(why), unread = mfa.unread, "aws_iam: MFA device kinds not read for some users; their MFA counts as type other");
        }

        // 5. Accounts.
        let now = ctx.now;
        let dormant_days = self.policy.dormant_after_days;
        let mut dormant_keys = [0u64; 2];
        let mut gauges = Vec::new();
        for row in &rows {
            let account = if row.is_root() {
                map::map_root(row, root_virtual)
            } else {
                let admin = admins.as_ref().map(|m| m.get(&row.user).cloned().flatten());
                if let Some(None) = admin {
                    tracing::debug!(user = %row.user, "aws_iam: user deleted since the credential report was made; skipped");
                    continue;
                }
                let admin = admin.flatten();
                let facts = UserFacts {
                    admin_policies: admin.as_ref().map(|a| a.policies.clone()),
                    groups: admin.map(|a| a.groups).unwrap_or_default(),
                    mfa_devices: mfa.by_user.get(&row.user).cloned(),
                };
                map::map_user(row, &facts, now, dormant_days)
            };
            let counted = account.status.is_active()
                && !self.policy.exclude_accounts.matches(&account.login);
            if counted && !map::dormant_keys(row, now, dormant_days).is_empty() {
                let ty = if self.policy.service_account_patterns.matches(&account.login) {
                    AccountType::Service
                } else {
                    account.account_type
                };
                dormant_keys[ty as usize] += 1;
            }
            sink.push(account);
        }

        // 6. The source's own gauges, every label combination.
        for ty in AccountType::ALL {
            gauges.push(DORMANT_KEYS.sample(
                vec![("account_type", ty.as_str().to_string())],
                dormant_keys[ty as usize] as f64,
            ));
        }
        gauges.push(MFA_UNREAD.sample(vec![], mfa.unread as f64));
        gauges.push(REPORT_AGE.sample(
            vec![],
            report
                .generated
                .map_or(0.0, |g| (now - g).as_seconds_f64().max(0.0)),
        ));
        self.root_gauges(root, root_virtual, &mut gauges);
        gauges.push(POLL_REQUESTS.sample(vec![], api.meter().used() as f64));

        availability.if_absent(
            DataKind::Mfa,
            "MFA applies to console users (with a password) and the root user; the credential report has none",
        );
        Ok(PollOutput {
            availability,
            tenant: TenantFacts {
                // IAM has no account-wide MFA requirement to read (MFA is required per
                // policy condition), so no policy gaps are claimed either way.
                mfa_policy_gaps: None,
                no_super_admin_role: false,
                no_super_admin_minimum: true,
            },
            gauges,
        })
    }

    fn root_gauges(
        &self,
        root: Option<&ReportRow>,
        root_virtual: map::RootVirtualMfa,
        gauges: &mut Vec<super::SourceGauge>,
    ) {
        let last_used = root
            .and_then(|r| r.password_last_used.date())
            .map_or(0.0, |t| t.unix_timestamp() as f64);
        gauges.push(ROOT_LAST_USED.sample(vec![], last_used));
        gauges.push(ROOT_ACCESS_KEYS.sample(
            vec![],
            root.map_or(0, |r| r.active_keys().count()) as f64,
        ));
        let device = match (root.map(|r| r.mfa_active), root_virtual) {
            (Some(Some(false)), _) => "none",
            (Some(Some(true)), Some(true)) => "virtual",
            (Some(Some(true)), Some(false)) => "hardware",
            _ => "unknown",
        };
        for d in ["none", "virtual", "hardware", "unknown"] {
            gauges.push(ROOT_MFA.sample(
                vec![("device", d.to_string())],
                if d == device { 1.0 } else { 0.0 },
            ));
        }
    }
}
