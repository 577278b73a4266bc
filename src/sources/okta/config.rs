//! The `okta` source's keys: the org URL, an API token (`token_file`/`token_env`) or an OAuth
//! service app (`client_id` + `private_key_file`/`private_key_env`, `key_id`, `scopes`), the
//! HR leave-date attribute, and the factor cache's refresh budget and maximum age.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Secret, Validator};

/// `[[sources]]` keys of an `okta` source, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOktaConfig {
    pub url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub client_id: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub private_key_env: Option<String>,
    pub key_id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub terminated_attribute: Option<String>,
    pub factor_refresh_per_poll: Option<u32>,
    pub factor_max_age: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OktaConfig {
    pub url: String,
    pub auth: OktaAuth,
    /// Profile attribute holding the HR leave date (→ `terminated`).
    pub terminated_attribute: Option<String>,
    /// Most per-user factor requests in one poll (oldest cache entries first); `None` = as
    /// many as the request budget and half the poll timeout allow.
    pub factor_refresh_per_poll: Option<u32>,
    /// Cached factor lists younger than this are not refreshed (unless the System Log names
    /// the user in a factor change). Default 24 h.
    pub factor_max_age: Duration,
}

impl OktaConfig {
    /// An org read with an API token, every other key at its default (tests, benchmarks).
    pub fn with_token(url: impl Into<String>, token: Secret) -> OktaConfig {
        OktaConfig {
            url: url.into(),
            auth: OktaAuth::ApiToken(token),
            terminated_attribute: None,
            factor_refresh_per_poll: None,
            factor_max_age: DEFAULT_FACTOR_MAX_AGE,
        }
    }
}

#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    ApiToken(Secret),
    /// OAuth 2.0 service app with a `private_key_jwt` client assertion.
    ServiceApp {
        client_id: String,
        /// PEM or JWK private key.
        private_key: Secret,
        key_id: Option<String>,
        scopes: Vec<String>,
    },
}

/// The read-only scopes a service app needs (docs/okta.md).
pub const DEFAULT_SCOPES: &[&str] = &[
    "okta.users.read",
    "okta.groups.read",
    "okta.roles.read",
    "okta.policies.read",
    "okta.apiTokens.read",
    "okta.logs.read",
];

pub const DEFAULT_FACTOR_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub fn validate(raw: RawOktaConfig, v: &mut Validator<'_>) -> Option<OktaConfig> {
    let url = v.url("url", raw.url.as_deref());
    let has_token = raw.token_file.is_some() || raw.token_env.is_some();
    let has_app =
        raw.client_id.is_some() || raw.private_key_file.is_some() || raw.private_key_env.is_some();
    let auth = match v.one_of(&[
        ("token_file/token_env (API token)", has_token),
        ("client_id + private_key_file (service app)", has_app),
    ]) {
        Some(1) => {
            let key = v.private_key(
                "private_key",
                raw.private_key_file.as_deref(),
                raw.private_key_env.as_deref(),
                true,
                crate::sources::signs_jwts,
            );
            let id = v.required("client_id", raw.client_id.as_deref());
            match (id, key) {
                (Some(client_id), Some(private_key)) => Some(OktaAuth::ServiceApp {
                    client_id,
                    private_key,
                    key_id: raw.key_id.clone(),
                    scopes: raw
                        .scopes
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()),
                }),
                _ => None,
            }
        }
        Some(_) => v
            .secret(
                "token",
                raw.token_file.as_deref(),
                raw.token_env.as_deref(),
                true,
            )
            .map(OktaAuth::ApiToken),
        // Neither: the token is the usual way; say so.
        None if !(has_token && has_app) => v
            .secret("token", None, None, true)
            .map(OktaAuth::ApiToken),
        None => None,
    };
    let factor_max_age = v.duration(
        "factor_max_age",
        raw.factor_max_age.as_deref(),
        DEFAULT_FACTOR_MAX_AGE,
    );
    if raw.factor_refresh_per_poll == Some(0) {
        v.error("factor_refresh_per_poll", "must be at least 1");
    }
    Some(OktaConfig {
        url: url?,
        auth: auth?,
        terminated_attribute: raw.terminated_attribute,
        factor_refresh_per_poll: raw.factor_refresh_per_poll,
        factor_max_age,
    })
}
