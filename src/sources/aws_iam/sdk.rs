//! [`IamApi`] on the official AWS SDK for Rust: the default credential chain (or a shared
//! profile), rustls + ring through an explicit HTTP client, the standard retry mode, and an
//! interceptor that meters every attempt (requests by status class, throttling, the per-poll
//! budget). SDK errors become [`ApiError`]s carrying AWS's code and message only.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{AppName, BehaviorVersion, Region};
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{AssignmentStatusType, ReportStateType};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

use super::api::{
    ApiError, ApiErrorKind, ApiFuture, AttachedPolicy, CredentialReport, IamApi, ManagedPolicy,
    Meter, ReportState, VirtualMfaDevice,
};
use super::config::AwsIamConfig;
use crate::config::Secret;
use crate::upstream::RetryPolicy;

/// Where the SDK's credentials come from.
#[derive(Clone)]
pub enum CredentialSource {
    /// The default chain: environment, shared profile (`profile`), web identity (IRSA), ECS
    /// container credentials, instance metadata.
    DefaultChain,
    /// Fixed keys (tests against moto and in-process stubs).
    Static {
        access_key_id: String,
        secret_access_key: Secret,
    },
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialSource::DefaultChain => f.write_str("DefaultChain"),
            CredentialSource::Static { .. } => f.write_str("Static([redacted])"),
        }
    }
}

/// The IAM client.
pub struct SdkIam {
    client: aws_sdk_iam::Client,
    meter: Arc<Meter>,
    /// The credentials the chain handed out so far (redacted from every message).
    seen: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for SdkIam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdkIam").finish_non_exhaustive()
    }
}

/// Credentials from the inner provider, remembered for redaction.
struct Recording {
    inner: SharedCredentialsProvider,
    seen: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").finish_non_exhaustive()
    }
}

impl ProvideCredentials for Recording {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let c = self.inner.provide_credentials().await?;
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            for s in [c.access_key_id(), c.secret_access_key()]
                .into_iter()
                .chain(c.session_token())
            {
                if !seen.iter().any(|x| x == s) {
                    seen.push(s.to_string());
                }
            }
            // Rotating role credentials: keep the recent ones only.
            let excess = seen.len().saturating_sub(24);
            seen.drain(..excess);
            Ok(c)
        })
    }
}

/// Counts attempts into the [`Meter`] and refuses them once the poll's budget is spent.
#[derive(Debug, Clone)]
struct MeterInterceptor(Arc<Meter>);

/// Whether the current attempt went on the wire.
#[derive(Debug, Clone, Copy)]
struct Transmitted(bool);

impl Storable for Transmitted {
    type Storer = StoreReplace<Self>;
}

/// The interceptor's refusal of a request beyond `max_requests_per_poll`.
#[derive(Debug)]
struct BudgetRefused;

impl std::fmt::Display for BudgetRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("max_requests_per_poll reached")
    }
}

impl StdError for BudgetRefused {}

/// IAM's throttling answers (HTTP 400 with one of these codes; 429 from a proxy).
fn is_throttling_body(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    ["<Code>Throttling", "<Code>RequestLimitExceeded", "<Code>TooManyRequests"]
        .iter()
        .any(|c| text.contains(c))
}

impl Intercept for MeterInterceptor {
    fn name(&self) -> &'static str {
        "identity-posture-exporter request meter"
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Transmitted(false));
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.try_attempt() {
            cfg.interceptor_state().store_put(Transmitted(true));
            Ok(())
        } else {
            Err(Box::new(BudgetRefused))
        }
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !matches!(cfg.load::<Transmitted>(), Some(Transmitted(true))) {
            return Ok(());
        }
        match ctx.response() {
            Some(resp) => {
                let status = resp.status().as_u16();
                let throttled =
                    status == 429 || resp.body().bytes().is_some_and(is_throttling_body);
                self.0.record(Some(status), throttled);
            }
            // Connection error or timeout: no answer.
            None => self.0.record(None, false),
        }
        Ok(())
    }
}

/// Timeouts of one IAM operation (all of its attempts) and of one attempt; the poll's own
/// `timeout` bounds the whole poll above these.
fn timeouts(poll_timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .operation_attempt_timeout(Duration::from_secs(90))
        .operation_timeout(poll_timeout.clamp(Duration::from_secs(1), Duration::from_secs(300)))
        .build()
}

impl SdkIam {
    /// Loads the SDK configuration (reads the shared config files; resolves nothing over the
    /// network until the first request) and builds the client.
    pub async fn connect(
        cfg: &AwsIamConfig,
        poll_timeout: Duration,
        credentials: CredentialSource,
    ) -> SdkIam {
        let retry = RetryPolicy::default();
        // rustls with ring and the platform's root certificates: no aws-lc-rs, one TLS stack.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .region(Region::new(cfg.region.clone()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(retry.max_attempts)
                    .with_initial_backoff(retry.base_delay)
                    .with_max_backoff(retry.max_delay),
            )
            .timeout_config(timeouts(poll_timeout));
        if let Ok(name) = AppName::new("identity-posture-exporter") {
            loader = loader.app_name(name);
        }
        if let Some(url) = &cfg.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(p) = &cfg.profile {
            loader = loader.profile_name(p.clone());
        }
        if let CredentialSource::Static {
            access_key_id,
            secret_access_key,
        } = &credentials
        {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                access_key_id.clone(),
                secret_access_key.expose().to_string(),
                None,
                None,
                "identity-posture-exporter static",
            ));
        }
        let sdk = loader.load().await;
        let meter = Arc::new(Meter::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        if let CredentialSource::Static {
            access_key_id,
            secret_access_key,
        } = &credentials
        {
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            s.push(access_key_id.clone());
            s.push(secret_access_key.expose().to_string());
        }
        let mut conf = aws_sdk_iam::config::Builder::from(&sdk)
            .interceptor(MeterInterceptor(meter.clone()));
        if let Some(inner) = sdk.credentials_provider() {
            conf = conf.credentials_provider(Recording {
                inner,
                seen: seen.clone(),
            });
        }
        SdkIam {
            client: aws_sdk_iam::Client::from_conf(conf.build()),
            meter,
            seen,
        }
    }
}

/// Whether `T` is somewhere in the error's chain.
fn chain_has<T: StdError + 'static>(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<T>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The error's causes, joined (at most three levels, 300 characters): connection and
/// credential failures explain themselves there. Never the raw response.
fn causes(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !s.is_empty() && !parts.contains(&s) {
            parts.push(s);
        }
        if parts.len() == 3 {
            break;
        }
        cur = c.source();
    }
    let mut s = parts.join(": ");
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn kind_of_code(code: &str) -> Option<ApiErrorKind> {
    Some(match code {
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => ApiErrorKind::Denied,
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidAccessKeyId"
        | "AuthFailure" => ApiErrorKind::Credentials,
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => {
            ApiErrorKind::Throttled
        }
        "NoSuchEntity" => ApiErrorKind::NotFound,
        "ReportNotPresent" | "ReportExpired" | "ReportInProgress" => ApiErrorKind::ReportNotReady,
        "LimitExceeded" => ApiErrorKind::LimitExceeded,
        "ServiceFailure" | "ServiceUnavailable" | "InternalFailure" => ApiErrorKind::Service,
        _ => return None,
    })
}

/// An SDK error as an [`ApiError`]. moto answers refusals with an EC2-shaped body the SDK
/// cannot read a code from: a bare HTTP 403 counts as denied.
fn classify<E>(action: &'static str, e: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let dyn_e: &(dyn StdError + 'static) = &e;
    let credentials = chain_has::<aws_credential_types::provider::error::CredentialsError>(dyn_e);
    let (kind, message) = match &e {
        SdkError::ServiceError(_) => {
            let kind = code
                .as_deref()
                .and_then(kind_of_code)
                .unwrap_or(match status {
                    Some(403) => ApiErrorKind::Denied,
                    Some(401) => ApiErrorKind::Credentials,
                    Some(429) => ApiErrorKind::Throttled,
                    Some(s) if s >= 500 => ApiErrorKind::Service,
                    _ => ApiErrorKind::Other,
                });
            (kind, e.message().unwrap_or_default().to_string())
        }
        SdkError::TimeoutError(_) => (ApiErrorKind::Timeout, causes(dyn_e)),
        SdkError::DispatchFailure(d) => {
            if chain_has::<BudgetRefused>(dyn_e) {
                return ApiError {
                    kind: ApiErrorKind::Budget,
                    action,
                    code: None,
                    status: None,
                    message: "max_requests_per_poll reached; the request was not sent".into(),
                };
            }
            let kind = if credentials {
                ApiErrorKind::Credentials
            } else if d.is_timeout() {
                ApiErrorKind::Timeout
            } else {
                ApiErrorKind::Transport
            };
            (kind, causes(dyn_e))
        }
        SdkError::ResponseError(_) => (
            match status {
                Some(403) => ApiErrorKind::Denied,
                Some(s) if s >= 500 => ApiErrorKind::Service,
                _ => ApiErrorKind::Decode,
            },
            format!("IAM's answer could not be read: {}", causes(dyn_e)),
        ),
        SdkError::ConstructionFailure(_) if credentials => (ApiErrorKind::Credentials, causes(dyn_e)),
        _ => (ApiErrorKind::Other, causes(dyn_e)),
    };
    ApiError {
        kind,
        action,
        code,
        status,
        message,
    }
}

fn timestamp(t: &aws_smithy_types::DateTime) -> Option<crate::model::Timestamp> {
    time::OffsetDateTime::from_unix_timestamp(t.secs()).ok()
}

/// Every page of a listing: `marker` is the `Option<String>` the request expression sees;
/// `items` maps one page's output (`out`) into an iterator. A marker seen before is a loop.
macro_rules! paged {
    ($action:literal, $marker:ident => $request:expr, |$out:ident| $items:expr) => {{
        let mut all = Vec::new();
        let mut $marker: Option<String> = None;
        let mut markers = std::collections::HashSet::new();
        loop {
            let $out = $request.send().await.map_err(|e| classify($action, e))?;
            all.extend($items);
            match ($out.is_truncated(), $out.marker()) {
                (true, Some(m)) if !m.is_empty() => {
                    if !markers.insert(m.to_string()) {
                        return Err(ApiError::new(
                            ApiErrorKind::Decode,
                            $action,
                            "paging loop: IAM returned a marker it had returned before",
                        ));
                    }
                    $marker = Some(m.to_string());
                }
                _ => break,
            }
        }
        Ok(all)
    }};
}

/// Page size for every listing (IAM's maximum).
const MAX_ITEMS: i32 = 1000;

fn attached(p: &aws_sdk_iam::types::AttachedPolicy) -> Option<AttachedPolicy> {
    Some(AttachedPolicy {
        name: p.policy_name()?.to_string(),
        arn: p.policy_arn()?.to_string(),
    })
}

impl IamApi for SdkIam {
    fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }

    fn redact(&self, text: &str) -> String {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let exact: Vec<&str> = seen.iter().map(String::as_str).collect();
        super::redact::redact(text, &exact)
    }

    fn generate_credential_report(&self) -> ApiFuture<'_, ReportState> {
        Box::pin(async move {
            let out = self
                .client
                .generate_credential_report()
                .send()
                .await
                .map_err(|e| classify("iam:GenerateCredentialReport", e))?;
            Ok(match out.state() {
                Some(ReportStateType::Complete) => ReportState::Complete,
                Some(ReportStateType::Started | ReportStateType::Inprogress) => {
                    ReportState::InProgress
                }
                Some(other) => ReportState::Other(other.as_str().to_string()),
                None => ReportState::Other("(no state)".into()),
            })
        })
    }

    fn get_credential_report(&self) -> ApiFuture<'_, CredentialReport> {
        Box::pin(async move {
            let out = self
                .client
                .get_credential_report()
                .send()
                .await
                .map_err(|e| classify("iam:GetCredentialReport", e))?;
            Ok(CredentialReport {
                // The SDK has base64-decoded the content already.
                content: out.content().map(|b| b.as_ref().to_vec()).unwrap_or_default(),
                generated: out.generated_time().and_then(timestamp),
            })
        })
    }

    fn list_virtual_mfa_devices(&self) -> ApiFuture<'_, Vec<VirtualMfaDevice>> {
        Box::pin(async move {
            paged!("iam:ListVirtualMFADevices", marker => self
                .client
                .list_virtual_mfa_devices()
                .assignment_status(AssignmentStatusType::Assigned)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.virtual_mfa_devices().iter().map(|d| VirtualMfaDevice {
                serial: d.serial_number().to_string(),
                user_arn: d.user().map(|u| u.arn().to_string()),
            }))
        })
    }

    fn list_mfa_devices<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            paged!("iam:ListMFADevices", marker => self
                .client
                .list_mfa_devices()
                .user_name(user)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.mfa_devices().iter().map(|d| d.serial_number().to_string()))
        })
    }

    fn list_attached_user_policies<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<AttachedPolicy>> {
        Box::pin(async move {
            paged!("iam:ListAttachedUserPolicies", marker => self
                .client
                .list_attached_user_policies()
                .user_name(user)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.attached_policies().iter().filter_map(attached))
        })
    }

    fn list_user_policies<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            paged!("iam:ListUserPolicies", marker => self
                .client
                .list_user_policies()
                .user_name(user)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.policy_names().iter().cloned())
        })
    }

    fn get_user_policy<'a>(&'a self, user: &'a str, policy: &'a str) -> ApiFuture<'a, String> {
        Box::pin(async move {
            let out = self
                .client
                .get_user_policy()
                .user_name(user)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| classify("iam:GetUserPolicy", e))?;
            Ok(out.policy_document().to_string())
        })
    }

    fn list_groups_for_user<'a>(&'a self, user: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            paged!("iam:ListGroupsForUser", marker => self
                .client
                .list_groups_for_user()
                .user_name(user)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.groups().iter().map(|g| g.group_name().to_string()))
        })
    }

    fn list_attached_group_policies<'a>(&'a self, group: &'a str) -> ApiFuture<'a, Vec<AttachedPolicy>> {
        Box::pin(async move {
            paged!("iam:ListAttachedGroupPolicies", marker => self
                .client
                .list_attached_group_policies()
                .group_name(group)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.attached_policies().iter().filter_map(attached))
        })
    }

    fn list_group_policies<'a>(&'a self, group: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            paged!("iam:ListGroupPolicies", marker => self
                .client
                .list_group_policies()
                .group_name(group)
                .max_items(MAX_ITEMS)
                .set_marker(marker.clone()),
            |out| out.policy_names().iter().cloned())
        })
    }

    fn get_group_policy<'a>(&'a self, group: &'a str, policy: &'a str) -> ApiFuture<'a, String> {
        Box::pin(async move {
            let out = self
                .client
                .get_group_policy()
                .group_name(group)
                .policy_name(policy)
                .send()
                .await
                .map_err(|e| classify("iam:GetGroupPolicy", e))?;
            Ok(out.policy_document().to_string())
        })
    }

    fn get_policy<'a>(&'a self, arn: &'a str) -> ApiFuture<'a, ManagedPolicy> {
        Box::pin(async move {
            let out = self
                .client
                .get_policy()
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| classify("iam:GetPolicy", e))?;
            let p = out.policy().ok_or_else(|| {
                ApiError::new(ApiErrorKind::Decode, "iam:GetPolicy", "an answer without a Policy")
            })?;
            Ok(ManagedPolicy {
                name: p.policy_name().unwrap_or_default().to_string(),
                default_version: p.default_version_id().map(str::to_string),
            })
        })
    }

    fn get_policy_version<'a>(&'a self, arn: &'a str, version: &'a str) -> ApiFuture<'a, String> {
        Box::pin(async move {
            let out = self
                .client
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send()
                .await
                .map_err(|e| classify("iam:GetPolicyVersion", e))?;
            out.policy_version()
                .and_then(|v| v.document())
                .map(str::to_string)
                .ok_or_else(|| {
                    ApiError::new(
                        ApiErrorKind::Decode,
                        "iam:GetPolicyVersion",
                        "an answer without a policy document",
                    )
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_classify() {
        assert_eq!(kind_of_code("AccessDenied"), Some(ApiErrorKind::Denied));
        assert_eq!(kind_of_code("Throttling"), Some(ApiErrorKind::Throttled));
        assert_eq!(kind_of_code("InvalidClientTokenId"), Some(ApiErrorKind::Credentials));
        assert_eq!(kind_of_code("ExpiredToken"), Some(ApiErrorKind::Credentials));
        assert_eq!(kind_of_code("ReportNotPresent"), Some(ApiErrorKind::ReportNotReady));
        assert_eq!(kind_of_code("NoSuchEntity"), Some(ApiErrorKind::NotFound));
        assert_eq!(kind_of_code("Whatever"), None);
        assert!(is_throttling_body(b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"));
        assert!(!is_throttling_body(b"<Code>AccessDenied</Code>"));
    }

    #[test]
    fn debug_shows_no_credentials() {
        let c = CredentialSource::Static {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("AKIA") && !d.contains("wJalr"), "{d}");
    }
}
