//! Okta Management API wire shapes the source reads. Lenient: every field optional, unknown
//! fields ignored (Okta adds fields and omits nulls), and a wrongly typed value becomes
//! unknown, so hostile or surprising data is skipped, never a panic. Shapes confirmed against
//! the OpenAPI description in `okta/okta-management-openapi-spec`.

use serde::Deserialize;

use crate::sources::lenient;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaUser {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub created: Option<String>,
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub last_login: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "lenient::nullable")]
    pub password_changed: Option<Option<serde_json::Value>>,
    #[serde(default)]
    pub profile: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub credentials: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaFactor {
    #[serde(default, deserialize_with = "lenient::string")]
    pub factor_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaRole {
    #[serde(default, rename = "type", deserialize_with = "lenient::string")]
    pub role_type: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub label: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct OktaGroup {
    #[serde(default)]
    pub profile: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
pub struct Assignees {
    #[serde(default)]
    pub value: Vec<serde_json::Value>,
    #[serde(default, rename = "_links")]
    pub links: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OktaApiToken {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub created: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct OktaPolicy {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct OktaRule {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub status: Option<String>,
    #[serde(default)]
    pub actions: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct LogEvent {
    #[serde(default)]
    pub actor: Option<serde_json::Value>,
    #[serde(default)]
    pub target: Option<serde_json::Value>,
}
