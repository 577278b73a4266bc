//! The `sspm` source's keys: a SASE service account (`client_id`, client secret), the tenant
//! service group id (the token's scope), and the authentication and API base URLs.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Secret, Validator};

pub const DEFAULT_AUTH_URL: &str = "https://auth.apps.paloaltonetworks.com";
pub const DEFAULT_API_URL: &str = "https://api.sase.paloaltonetworks.com";

/// `[[sources]]` keys of an `sspm` source, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSspmConfig {
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    pub tsg_id: Option<String>,
    pub auth_url: Option<String>,
    pub api_url: Option<String>,
}

/// Palo Alto Networks SaaS Security (SSPM) Identity API, with the common SASE OAuth2
/// client-credentials grant (HTTP Basic, `scope=tsg_id:<tsg_id>`).
#[derive(Debug, Clone)]
pub struct SspmConfig {
    /// Client id of the SASE service account.
    pub client_id: String,
    pub client_secret: Secret,
    /// Tenant service group id (digits): the token's scope.
    pub tsg_id: String,
    /// Authentication service base URL (`https://auth.apps.paloaltonetworks.com`).
    pub auth_url: String,
    /// SASE API base URL (`https://api.sase.paloaltonetworks.com`).
    pub api_url: String,
}

pub fn validate(raw: RawSspmConfig, v: &mut Validator<'_>) -> Option<SspmConfig> {
    let client_id = v.required("client_id", raw.client_id.as_deref());
    let tsg_id = v.required("tsg_id", raw.tsg_id.as_deref());
    if let Some(t) = &tsg_id {
        // TSG ids are numeric (pan.dev "Tenant Service Groups"); anything else would only
        // fail later at the token endpoint with a vaguer message.
        if !t.chars().all(|c| c.is_ascii_digit()) {
            v.error(
                "tsg_id",
                format!("{t:?} must be the numeric tenant service group id"),
            );
        }
    }
    let auth_url = v.url_or("auth_url", raw.auth_url.as_deref(), DEFAULT_AUTH_URL);
    let api_url = v.url_or("api_url", raw.api_url.as_deref(), DEFAULT_API_URL);
    let client_secret = v.secret(
        "client_secret",
        raw.client_secret_file.as_deref(),
        raw.client_secret_env.as_deref(),
        true,
    );
    Some(SspmConfig {
        client_id: client_id?,
        client_secret: client_secret?,
        tsg_id: tsg_id?,
        auth_url: auth_url?,
        api_url: api_url?,
    })
}
