//! GitHub REST API wire shapes the source reads (API version 2022-11-28). Lenient: every field
//! optional, unknown fields ignored, a wrongly typed value becomes unknown, so a surprising
//! item is skipped or left unknown, never a panic. Shapes confirmed against the OpenAPI
//! description in `github/rest-api-description` (`descriptions/ghec/ghec.2022-11-28.yaml`:
//! `simple-user`, `organization-invitation`, `credential-authorization`,
//! `organization-programmatic-access-grant`, `audit-log-event`, `installation-token`) and
//! go-github's structs for the same.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::sources::lenient;

/// A numeric id (`int64` in the description) as text; a string id is taken as it is.
pub fn id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    })
}

/// A page of a listing (a JSON array): items that do not decode (not an object, say) are
/// dropped and counted, so one bad item never costs the page. A body that is not an array
/// is still an error.
pub fn items<T: DeserializeOwned>(page: Vec<serde_json::Value>) -> (Vec<T>, usize) {
    let total = page.len();
    let items: Vec<T> = page
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let bad = total - items.len();
    (items, bad)
}

/// `simple-user`: members, outside collaborators, owners of fine-grained tokens.
#[derive(Debug, Deserialize)]
pub struct SimpleUser {
    #[serde(default, deserialize_with = "lenient::string")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "id")]
    pub id: Option<String>,
    /// `User`, `Bot`, `Organization` (the description's enum), or `Mannequin` (imports).
    #[serde(default, rename = "type", deserialize_with = "lenient::string")]
    pub user_type: Option<String>,
    /// On GitHub Enterprise Server: a site administrator of the whole instance.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub site_admin: Option<bool>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: Option<String>,
}

/// `GET /orgs/{org}` (`organization-full`): only what the source needs.
#[derive(Debug, Deserialize)]
pub struct Organization {
    #[serde(default, deserialize_with = "lenient::string")]
    pub login: Option<String>,
    /// Shown to owners (and `admin:org` / `read:org` tokens of owners) only.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub two_factor_requirement_enabled: Option<bool>,
}

/// `organization-invitation` (`GET /orgs/{org}/invitations`).
#[derive(Debug, Deserialize)]
pub struct Invitation {
    #[serde(default, deserialize_with = "id")]
    pub id: Option<String>,
    /// `null` when the invitee is invited by email and has no account yet.
    #[serde(default, deserialize_with = "lenient::string")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: Option<String>,
    /// `direct_member`, `admin`, `billing_manager`, `hiring_manager`, `reinstate`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub failed_at: Option<String>,
}

/// `credential-authorization` (`GET /orgs/{org}/credential-authorizations`, SAML SSO).
#[derive(Debug, Deserialize)]
pub struct CredentialAuthorization {
    #[serde(default, deserialize_with = "lenient::string")]
    pub login: Option<String>,
    #[serde(default, deserialize_with = "id")]
    pub credential_id: Option<String>,
    /// Human-readable: `personal access token`, `SSH key` (the example spells it `SSH Key`),
    /// and for app-managed tokens `OAuth app token` / `GitHub app token`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub credential_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub credential_authorized_at: Option<String>,
    /// `null` when the credential was never used.
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub credential_accessed_at: Option<Option<serde_json::Value>>,
    /// Tokens only; `null` = the token never expires.
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub authorized_credential_expires_at: Option<Option<serde_json::Value>>,
}

/// `organization-programmatic-access-grant` (`GET /orgs/{org}/personal-access-tokens`).
#[derive(Debug, Deserialize)]
pub struct FineGrainedToken {
    /// The grant id (`pat_id`).
    #[serde(default, deserialize_with = "id")]
    pub id: Option<String>,
    #[serde(default)]
    pub owner: Option<SimpleUser>,
    #[serde(default, deserialize_with = "id")]
    pub token_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub access_granted_at: Option<String>,
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub token_expired: Option<bool>,
    /// `null` = the token never expires.
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub token_expires_at: Option<Option<serde_json::Value>>,
    /// `null` = never used.
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub token_last_used_at: Option<Option<serde_json::Value>>,
}

/// `audit-log-event`: the time and who acted. `@timestamp` and `created_at` are Unix
/// milliseconds (go-github's `Timestamp` also reads RFC 3339 strings; so does this source).
#[derive(Debug, Deserialize)]
pub struct AuditEvent {
    #[serde(default, rename = "@timestamp")]
    pub timestamp: Option<serde_json::Value>,
    #[serde(default)]
    pub created_at: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub actor: Option<String>,
    /// The event's id (loop detection).
    #[serde(default, rename = "_document_id", deserialize_with = "lenient::string")]
    pub document_id: Option<String>,
}

/// `installation-token` (`POST /app/installations/{installation_id}/access_tokens`, 201).
#[derive(Debug, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub expires_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_shapes() {
        let u: SimpleUser = serde_json::from_str(
            r#"{"login":"octocat","id":1,"type":"User","site_admin":false,"extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(u.id.as_deref(), Some("1"));
        assert_eq!(u.user_type.as_deref(), Some("User"));
        let u: SimpleUser = serde_json::from_str(r#"{"login":5,"id":1.5,"type":null}"#).unwrap();
        assert!(u.login.is_none() && u.id.is_none() && u.user_type.is_none());
        let c: CredentialAuthorization = serde_json::from_str(
            r#"{"login":"a","credential_id":161195,"credential_type":"personal access token",
                "credential_authorized_at":"2011-01-26T19:06:43Z","credential_accessed_at":null}"#,
        )
        .unwrap();
        assert_eq!(c.credential_accessed_at, Some(None));
        assert_eq!(c.authorized_credential_expires_at, None, "absent ≠ null");
        let (users, bad) =
            items::<SimpleUser>(serde_json::from_str(r#"[{"login":"a","id":1}, null, 7, "x"]"#).unwrap());
        assert_eq!((users.len(), bad), (1, 3));
    }
}
