//! The `google` source's keys: the Workspace customer, the admin to impersonate
//! (`admin_email`), the service account's JSON key (`credentials_file` / `credentials_env`,
//! the file Google Cloud hands out), and the token and Admin SDK base URLs.

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Secret, Validator};

/// Google's OAuth 2.0 token endpoint, used when the key names none (`token_uri`).
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// The Admin SDK host (the discovery documents' `rootUrl`).
pub const DEFAULT_API_URL: &str = "https://admin.googleapis.com";
/// The alias for the customer the impersonated admin belongs to.
pub const DEFAULT_CUSTOMER: &str = "my_customer";

/// `[[sources]]` keys of a `google` source, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGoogleConfig {
    pub customer: Option<String>,
    pub admin_email: Option<String>,
    pub credentials_file: Option<PathBuf>,
    pub credentials_env: Option<String>,
    pub token_url: Option<String>,
    pub api_url: Option<String>,
}

/// Google Workspace through the Admin SDK (Directory and Reports APIs), as a service account
/// with domain-wide delegation acting as `admin_email`.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// Customer id (`C03az79cb`) or `my_customer`.
    pub customer: String,
    /// The Workspace admin the service account acts as (the JWT's `sub`).
    pub admin_email: String,
    pub key: ServiceAccountKey,
    /// Token endpoint (the JWT's `aud`).
    pub token_url: String,
    /// Admin SDK base URL, without the API path (`https://admin.googleapis.com`).
    pub api_url: String,
}

/// The parts of a service-account JSON key the source uses. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub struct ServiceAccountKey {
    /// `client_email`: the JWT's `iss`.
    pub client_email: String,
    /// `client_id`: the number domain-wide delegation is granted to (named in hints).
    pub client_id: Option<String>,
    /// `private_key_id`: the JWT header's `kid`.
    pub private_key_id: Option<String>,
    /// `private_key`: PEM (PKCS#8 RSA).
    pub private_key: Secret,
    /// `token_uri`, if the key names one.
    pub token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Reads a key file's JSON. Problems name the field, never a value from the file (the
    /// file holds a private key; serde's messages can quote the text they could not read).
    pub fn parse(json: &str) -> Result<ServiceAccountKey, String> {
        let v: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            format!(
                "is not a service-account JSON key: invalid JSON at line {} column {}",
                e.line(),
                e.column()
            )
        })?;
        let obj = v
            .as_object()
            .ok_or("is not a service-account JSON key: expected a JSON object")?;
        let field = |name: &str| -> Option<String> {
            obj.get(name)
                .and_then(|x| x.as_str())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        if let Some(t) = obj.get("type") {
            let t = t.as_str().unwrap_or_default();
            if t != "service_account" {
                // Only a short, plain type name is echoed (it is no secret).
                let shown = if t.len() <= 40 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    format!("{t:?}")
                } else {
                    "another kind of".into()
                };
                return Err(format!(
                    "is a {shown} credential, not a service-account key: create a JSON key for the service account (Google Cloud console → IAM & Admin → Service accounts → Keys)"
                ));
            }
        }
        let client_email = field("client_email")
            .ok_or("is not a service-account JSON key: \"client_email\" is missing")?;
        let private_key = field("private_key")
            .ok_or("is not a service-account JSON key: \"private_key\" is missing")?;
        if !private_key.contains("PRIVATE KEY-----") {
            return Err("\"private_key\" is not a PEM private key".into());
        }
        Ok(ServiceAccountKey {
            client_email,
            client_id: field("client_id"),
            private_key_id: field("private_key_id"),
            private_key: Secret::new(private_key),
            token_uri: field("token_uri"),
        })
    }
}

pub fn validate(raw: RawGoogleConfig, v: &mut Validator<'_>) -> Option<GoogleConfig> {
    let customer = match raw.customer.as_deref().map(str::trim) {
        None => Some(DEFAULT_CUSTOMER.to_string()),
        Some(c)
            if !c.is_empty()
                && c.len() <= 64
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') =>
        {
            Some(c.to_string())
        }
        Some(c) => {
            v.error(
                "customer",
                format!("{c:?} must be the customer id (e.g. \"C03az79cb\", Admin console → Account → Account settings) or \"my_customer\""),
            );
            None
        }
    };
    let admin_email = v.required("admin_email", raw.admin_email.as_deref());
    if let Some(a) = &admin_email {
        if !a.contains('@') || a.chars().any(char::is_whitespace) {
            v.error(
                "admin_email",
                format!("{a:?} must be the email address of a Workspace admin"),
            );
        } else if a.ends_with(".gserviceaccount.com") {
            v.error(
                "admin_email",
                "is a service account's address: it must be a Workspace user with an admin role, whom the service account acts as",
            );
        }
    }
    let which = match (&raw.credentials_file, &raw.credentials_env) {
        (Some(p), None) => format!("credentials_file ({})", v.resolve(p).display()),
        (None, Some(e)) => format!("credentials_env ({e})"),
        _ => "credentials".into(),
    };
    let key = v
        .secret(
            "credentials",
            raw.credentials_file.as_deref(),
            raw.credentials_env.as_deref(),
            true,
        )
        .and_then(|json| {
            // The key must also sign (the JWT grant), tried once here rather than at a poll.
            let parsed = ServiceAccountKey::parse(json.expose()).and_then(|k| {
                crate::sources::signs_jwts(&k.private_key)
                    .map(|()| k)
                    .map_err(|m| format!("\"private_key\": {m}"))
            });
            match parsed {
                Ok(k) => Some(k),
                Err(msg) => {
                    let key = if raw.credentials_file.is_some() {
                        "credentials_file"
                    } else {
                        "credentials_env"
                    };
                    v.error(key, format!("{which} {msg}"));
                    None
                }
            }
        });
    if let (Some(k), Some(a)) = (&key, &admin_email) {
        if k.client_email.eq_ignore_ascii_case(a) {
            v.error(
                "admin_email",
                "is the service account itself: it must be a Workspace admin the service account acts as",
            );
        }
    }
    let default_token = key
        .as_ref()
        .and_then(|k| k.token_uri.clone())
        .unwrap_or_else(|| DEFAULT_TOKEN_URL.to_string());
    let token_url = v.url_or("token_url", raw.token_url.as_deref(), &default_token);
    let api_url = v.url_or("api_url", raw.api_url.as_deref(), DEFAULT_API_URL);
    if let Some(u) = &api_url {
        if let Some(p) = ["/admin/directory/v1", "/admin/reports/v1", "/admin"]
            .iter()
            .find(|p| u.ends_with(*p))
        {
            v.error(
                "api_url",
                format!("{u:?} ends in {p}: give the base URL only (the source adds the API path)"),
            );
        }
    }
    if v.failed() {
        return None;
    }
    Some(GoogleConfig {
        customer: customer?,
        admin_email: admin_email?,
        key: key?,
        token_url: token_url?,
        api_url: api_url?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = r#"{"type":"service_account","project_id":"p","private_key_id":"abc123",
        "private_key":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        "client_email":"ipe@p.iam.gserviceaccount.com","client_id":"1234567890",
        "token_uri":"https://oauth2.googleapis.com/token"}"#;

    #[test]
    fn a_service_account_key_is_read_and_never_printed() {
        let k = ServiceAccountKey::parse(KEY).unwrap();
        assert_eq!(k.client_email, "ipe@p.iam.gserviceaccount.com");
        assert_eq!(k.private_key_id.as_deref(), Some("abc123"));
        assert_eq!(k.client_id.as_deref(), Some("1234567890"));
        assert!(!format!("{k:?}").contains("MIIE"));
    }

    #[test]
    fn other_files_are_named_without_their_content() {
        let e = ServiceAccountKey::parse(r#"{"type":"authorized_user","client_secret":"s3cr3t"}"#)
            .unwrap_err();
        assert!(e.contains("\"authorized_user\" credential"), "{e}");
        let e = ServiceAccountKey::parse("{\"private_key\": \"-----BEGIN PRIVATE KEY-----\nsecret")
            .unwrap_err();
        assert!(e.contains("invalid JSON at line"), "{e}");
        assert!(!e.contains("secret"));
        let e = ServiceAccountKey::parse(r#"{"type":"service_account","private_key":"x"}"#)
            .unwrap_err();
        assert!(e.contains("client_email"), "{e}");
        let e = ServiceAccountKey::parse(
            r#"{"type":"service_account","client_email":"a@b","private_key":"hunter2"}"#,
        )
        .unwrap_err();
        assert!(e.contains("not a PEM private key") && !e.contains("hunter2"), "{e}");
        let e = ServiceAccountKey::parse(r#"{"type":"<script>"}"#).unwrap_err();
        assert!(!e.contains("<script>"), "{e}");
    }
}
