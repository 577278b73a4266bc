//! The `aws_iam` source's keys: `region` (IAM is global; the region picks the partition and
//! signs requests), `endpoint_url` (moto, LocalStack, a VPC endpoint), `profile` (a shared
//! config profile; otherwise the SDK's default credential chain) and `admin_policies`.

use serde::Deserialize;

use crate::config::Validator;

/// IAM is a global service served from us-east-1 in the `aws` partition.
pub const DEFAULT_REGION: &str = "us-east-1";

/// `[[sources]]` keys of an `aws_iam` source, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAwsIamConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
    pub admin_policies: Option<Vec<String>>,
}

/// AWS IAM users of one account, read with the AWS SDK. Holds no secret: credentials come
/// from the SDK's default chain (environment, shared profile, web identity, ECS, instance
/// metadata) when the source first polls.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsIamConfig {
    pub region: String,
    /// Overrides the IAM endpoint (`https://`, or `http://` to a loopback host).
    pub endpoint_url: Option<String>,
    /// A profile of the shared config and credentials files (`~/.aws/config`).
    pub profile: Option<String>,
    /// Policy names (or ARNs) that grant admin power besides `AdministratorAccess`,
    /// `IAMFullAccess` and any document allowing `*` on `*`.
    pub admin_policies: Vec<String>,
}

/// A region name as AWS spells them (`us-east-1`, `us-gov-west-1`, `cn-north-1`, `eu-central-2`).
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && s.len() <= 32
}

pub fn validate(raw: RawAwsIamConfig, v: &mut Validator<'_>) -> Option<AwsIamConfig> {
    let region = match raw.region.as_deref().map(str::trim) {
        None => Some(DEFAULT_REGION.to_string()),
        Some(r) if is_region(r) => Some(r.to_string()),
        Some(r) => {
            v.error(
                "region",
                format!("{r:?} is not an AWS region name (e.g. \"us-east-1\", \"us-gov-west-1\", \"cn-north-1\")"),
            );
            None
        }
    };
    // An empty endpoint would make the SDK panic on the first request ("URL was unset"):
    // it is a configuration error here, never a crash later.
    let endpoint_url = match raw.endpoint_url.as_deref() {
        None => Some(None),
        Some(s) if s.trim().is_empty() => {
            v.error(
                "endpoint_url",
                "must not be empty: leave the key out to use AWS's own IAM endpoint",
            );
            None
        }
        Some(s) => v.url("endpoint_url", Some(s)).map(Some),
    };
    let profile = match raw.profile.as_deref() {
        None => Some(None),
        Some(p) if p.trim().is_empty() || p.trim() != p => {
            v.error(
                "profile",
                format!("{p:?} is not a profile name: leave the key out to use the default credential chain"),
            );
            None
        }
        Some(p) => Some(Some(p.to_string())),
    };
    let mut admin_policies = Vec::new();
    for (i, name) in raw.admin_policies.unwrap_or_default().into_iter().enumerate() {
        let n = name.trim();
        if n.is_empty() {
            v.error(&format!("admin_policies[{i}]"), "must not be empty");
        } else if n.starts_with("arn:") && !n.contains(":policy/") {
            v.error(
                &format!("admin_policies[{i}]"),
                format!("{n:?} is not a policy ARN (arn:aws:iam::ACCOUNT:policy/NAME) nor a policy name"),
            );
        } else {
            admin_policies.push(n.to_string());
        }
    }
    Some(AwsIamConfig {
        region: region?,
        endpoint_url: endpoint_url?,
        profile: profile?,
        admin_policies,
    })
}

#[cfg(test)]
mod tests {
    use super::is_region;

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "us-gov-west-1", "cn-north-1", "eu-central-2", "ap-southeast-4"] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in ["", "us-east", "US-EAST-1", "us_east_1", "us-east-1a", "-us-1", "us--1", "1-us-1"] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}
