//! The `github` source's keys: the organisation, the API base URL (github.com or a GitHub
//! Enterprise Server's `https://HOST/api/v3`), a token (`token_file`/`token_env`) or a GitHub
//! App installation (`app_id`, `installation_id`, `private_key_file`/`private_key_env`), and
//! how much of the organisation's audit log one poll may read.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Secret, Validator};

/// github.com's REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// Audit-log pages (100 events each) one poll may read by default: the org audit log allows
/// 1,750 queries an hour, and a 15-minute interval then uses at most 200 of them.
pub const DEFAULT_AUDIT_LOG_PAGES: u32 = 50;

/// An id written as a TOML integer or a string (`app_id = 12345` or `"12345"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawId {
    Int(i64),
    Str(String),
}

impl RawId {
    fn text(&self) -> String {
        match self {
            RawId::Int(i) => i.to_string(),
            RawId::Str(s) => s.trim().to_string(),
        }
    }
}

/// `[[sources]]` keys of a `github` source, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGithubConfig {
    pub org: Option<String>,
    pub api_url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub app_id: Option<RawId>,
    pub installation_id: Option<RawId>,
    pub private_key_file: Option<PathBuf>,
    pub private_key_env: Option<String>,
    pub audit_log: Option<bool>,
    pub audit_log_pages_per_poll: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// The organisation's login (`octo-org`).
    pub org: String,
    /// `https://api.github.com`, or `https://HOST/api/v3` (paths are joined below it).
    pub api_url: String,
    pub auth: GithubAuth,
    /// Read the organisation audit log for last activity (GitHub Enterprise Cloud, GHES).
    pub audit_log: bool,
    /// Most audit-log pages one poll reads (new events first, then older ones).
    pub audit_log_pages_per_poll: u32,
}

impl GithubConfig {
    /// An organisation read with a token, every other key at its default (tests, benchmarks).
    pub fn with_token(org: impl Into<String>, api_url: impl Into<String>, token: Secret) -> Self {
        GithubConfig {
            org: org.into(),
            api_url: api_url.into(),
            auth: GithubAuth::Token(token),
            audit_log: true,
            audit_log_pages_per_poll: DEFAULT_AUDIT_LOG_PAGES,
        }
    }
}

#[derive(Debug, Clone)]
pub enum GithubAuth {
    /// A classic or fine-grained personal access token: `Authorization: Bearer <token>`.
    Token(Secret),
    /// A GitHub App installation: an RS256 JWT signed with the App's private key is exchanged
    /// for a one-hour installation token.
    App {
        /// The App's id (or its client id), the JWT's `iss`.
        app_id: String,
        installation_id: u64,
        /// PEM (PKCS#1 as GitHub hands it out, or PKCS#8) RSA private key.
        private_key: Secret,
    },
}

impl GithubAuth {
    pub fn is_app(&self) -> bool {
        matches!(self, GithubAuth::App { .. })
    }
}

/// GitHub logins: letters, digits and single hyphens, not at either end, at most 39.
fn valid_org(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 39
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn validate(raw: RawGithubConfig, v: &mut Validator<'_>) -> Option<GithubConfig> {
    let org = v.required("org", raw.org.as_deref()).and_then(|o| {
        if valid_org(&o) {
            Some(o)
        } else {
            v.error(
                "org",
                format!("{o:?} is not an organisation login (letters, digits and hyphens, e.g. \"octo-org\")"),
            );
            None
        }
    });
    let api_url = v.url_or("api_url", raw.api_url.as_deref(), DEFAULT_API_URL);
    if let Some(u) = &api_url {
        // GHES serves the REST API below /api/v3; a bare GHES host would answer HTML.
        let host = url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        if host != "api.github.com" && u.ends_with("/api") {
            v.error(
                "api_url",
                format!("{u:?}: GitHub Enterprise Server's REST API is at https://HOST/api/v3"),
            );
        }
    }
    let has_token = raw.token_file.is_some() || raw.token_env.is_some();
    let has_app = raw.app_id.is_some()
        || raw.installation_id.is_some()
        || raw.private_key_file.is_some()
        || raw.private_key_env.is_some();
    let auth = match v.one_of(&[
        ("token_file/token_env (personal access token)", has_token),
        (
            "app_id + installation_id + private_key_file (GitHub App)",
            has_app,
        ),
    ]) {
        Some(1) => {
            let key = v.private_key(
                "private_key",
                raw.private_key_file.as_deref(),
                raw.private_key_env.as_deref(),
                true,
                crate::sources::signs_jwts,
            );
            let app_id = match raw.app_id.as_ref().map(RawId::text) {
                Some(a) if !a.is_empty() => Some(a),
                _ => {
                    v.error("app_id", "missing required key (the GitHub App's id)");
                    None
                }
            };
            let installation_id = match raw.installation_id.as_ref().map(RawId::text) {
                Some(i) => match i.parse::<u64>() {
                    Ok(n) if n > 0 => Some(n),
                    _ => {
                        v.error(
                            "installation_id",
                            format!("{i:?} is not an installation id (a positive number, from the installation's settings URL)"),
                        );
                        None
                    }
                },
                None => {
                    v.error(
                        "installation_id",
                        "missing required key (the App's installation on the organisation)",
                    );
                    None
                }
            };
            match (app_id, installation_id, key) {
                (Some(app_id), Some(installation_id), Some(private_key)) => Some(GithubAuth::App {
                    app_id,
                    installation_id,
                    private_key,
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
            .map(GithubAuth::Token),
        None if !(has_token && has_app) => v
            .secret("token", None, None, true)
            .map(GithubAuth::Token),
        None => None,
    };
    let pages = raw
        .audit_log_pages_per_poll
        .unwrap_or(DEFAULT_AUDIT_LOG_PAGES);
    if pages == 0 {
        v.error(
            "audit_log_pages_per_poll",
            "must be at least 1 (set audit_log = false to not read the audit log)",
        );
    }
    Some(GithubConfig {
        org: org?,
        api_url: api_url?,
        auth: auth?,
        audit_log: raw.audit_log.unwrap_or(true),
        audit_log_pages_per_poll: pages.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_logins() {
        assert!(valid_org("octo-org"));
        assert!(valid_org("A1"));
        for bad in ["", "-x", "x-", "a/b", "a b", "../x", &"x".repeat(40)] {
            assert!(!valid_org(bad), "{bad}");
        }
    }

    #[test]
    fn ids_as_numbers_or_strings() {
        assert_eq!(RawId::Int(42).text(), "42");
        assert_eq!(RawId::Str(" Iv1.abc ".into()).text(), "Iv1.abc");
    }
}
