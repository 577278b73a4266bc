//! Microsoft Graph v1.0 wire types the Entra source reads, defensively: every field is
//! optional and unknown fields are ignored, so a new Graph property never breaks a poll.
//! Shapes confirmed against `microsoftgraph/msgraph-metadata` (`clean_v10_metadata/cleanMetadata.xml`).

use serde::Deserialize;

use crate::sources::lenient;

/// One page of a Graph collection: `{"value": [...], "@odata.nextLink": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    #[serde(deserialize_with = "lenient::null_vec")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

/// `microsoft.graph.user` (the `$select`ed subset).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    pub id: String,
    pub user_principal_name: Option<String>,
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    /// `Member` or `Guest`.
    pub user_type: Option<String>,
    pub created_date_time: Option<String>,
    pub last_password_change_date_time: Option<String>,
    /// Absent when not `$select`ed (no licence / permission); present but `null` when the
    /// user has never signed in.
    #[serde(deserialize_with = "lenient::nullable")]
    pub sign_in_activity: Option<Option<SignInActivity>>,
    pub employee_leave_date_time: Option<String>,
    pub department: Option<String>,
    pub job_title: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
}

/// `microsoft.graph.signInActivity`. `lastSuccessfulSignInDateTime` exists since December
/// 2023 and is not backfilled, so it may be null while the other two are set.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInActivity {
    pub last_sign_in_date_time: Option<String>,
    pub last_non_interactive_sign_in_date_time: Option<String>,
    pub last_successful_sign_in_date_time: Option<String>,
}

/// `microsoft.graph.userRegistrationDetails` (`/reports/authenticationMethods/userRegistrationDetails`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserRegistrationDetails {
    pub id: String,
    pub user_principal_name: Option<String>,
    pub is_mfa_registered: Option<bool>,
    pub is_mfa_capable: Option<bool>,
    pub methods_registered: Option<Vec<String>>,
}

/// `microsoft.graph.unifiedRoleDefinition`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleDefinition {
    pub id: String,
    pub display_name: Option<String>,
    pub template_id: Option<String>,
}

/// `microsoft.graph.unifiedRoleAssignment` and `unifiedRoleEligibilitySchedule` (both carry
/// `principalId`, `roleDefinitionId`; `principal` with `$expand=principal`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleAssignment {
    pub id: String,
    pub principal_id: Option<String>,
    pub role_definition_id: Option<String>,
    pub directory_scope_id: Option<String>,
    pub principal: Option<DirectoryObject>,
    /// Eligibility schedules only (`Provisioned`, …).
    pub status: Option<String>,
}

/// A `microsoft.graph.directoryObject` with its derived type in `@odata.type`
/// (`#microsoft.graph.user`, `#microsoft.graph.group`, `#microsoft.graph.servicePrincipal`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DirectoryObject {
    pub id: String,
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
}

/// `microsoft.graph.passwordCredential` (the secret itself, `secretText`, is never returned
/// by a list and never read).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PasswordCredential {
    pub key_id: Option<String>,
    pub display_name: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
}

/// `microsoft.graph.keyCredential` (certificates; `key` is not `$select`ed).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyCredential {
    pub key_id: Option<String>,
    pub display_name: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    /// `AsymmetricX509Cert`, `X509CertAndPassword`, `Symmetric`.
    #[serde(rename = "type")]
    pub key_type: Option<String>,
    /// `Verify` or `Sign`.
    pub usage: Option<String>,
}

/// `microsoft.graph.application` (an app registration: its credentials live here).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Application {
    pub id: String,
    pub app_id: Option<String>,
    pub display_name: Option<String>,
    pub created_date_time: Option<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub key_credentials: Vec<KeyCredential>,
}

/// `microsoft.graph.servicePrincipal` (the app's identity in this tenant: roles are assigned
/// to it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePrincipal {
    pub id: String,
    pub app_id: Option<String>,
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    /// `Application`, `ManagedIdentity`, `Legacy`, `SocialIdp`.
    pub service_principal_type: Option<String>,
    pub app_owner_organization_id: Option<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub password_credentials: Vec<PasswordCredential>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub key_credentials: Vec<KeyCredential>,
}

/// `microsoft.graph.conditionalAccessPolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConditionalAccessPolicy {
    pub id: String,
    pub display_name: Option<String>,
    /// `enabled`, `disabled`, `enabledForReportingButNotEnforced`.
    pub state: Option<String>,
    pub conditions: Option<CaConditions>,
    pub grant_controls: Option<CaGrantControls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaConditions {
    pub users: Option<CaUsers>,
    pub applications: Option<CaApplications>,
    /// `all`, `browser`, `mobileAppsAndDesktopClients`, `exchangeActiveSync`, `other`.
    pub client_app_types: Option<Vec<String>>,
    pub locations: Option<CaLocations>,
    pub platforms: Option<CaPlatforms>,
    pub user_risk_levels: Option<Vec<String>>,
    pub sign_in_risk_levels: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaUsers {
    #[serde(deserialize_with = "lenient::null_vec")]
    pub include_users: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub exclude_users: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub include_groups: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub exclude_groups: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub include_roles: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub exclude_roles: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaApplications {
    #[serde(deserialize_with = "lenient::null_vec")]
    pub include_applications: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub exclude_applications: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaLocations {
    #[serde(deserialize_with = "lenient::null_vec")]
    pub include_locations: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub exclude_locations: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaPlatforms {
    #[serde(deserialize_with = "lenient::null_vec")]
    pub include_platforms: Vec<String>,
    #[serde(deserialize_with = "lenient::null_vec")]
    pub exclude_platforms: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CaGrantControls {
    /// `AND` or `OR`.
    pub operator: Option<String>,
    /// `block`, `mfa`, `compliantDevice`, `domainJoinedDevice`, `approvedApplication`,
    /// `compliantApplication`, `passwordChange`, `riskRemediation`.
    #[serde(deserialize_with = "lenient::null_vec")]
    pub built_in_controls: Vec<String>,
    pub authentication_strength: Option<AuthenticationStrength>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthenticationStrength {
    pub id: Option<String>,
    pub display_name: Option<String>,
}

/// `microsoft.graph.identitySecurityDefaultsEnforcementPolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecurityDefaults {
    pub is_enabled: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_and_null_sign_in_activity_differ() {
        let absent: User = serde_json::from_str(r#"{"id":"a"}"#).unwrap();
        assert!(absent.sign_in_activity.is_none());
        let null: User = serde_json::from_str(r#"{"id":"a","signInActivity":null}"#).unwrap();
        assert!(matches!(null.sign_in_activity, Some(None)));
    }

    #[test]
    fn unknown_fields_and_nulls_are_tolerated() {
        let u: User = serde_json::from_str(
            r#"{"id":"a","userPrincipalName":null,"brandNewProperty":{"x":1},"accountEnabled":false}"#,
        )
        .unwrap();
        assert_eq!(u.account_enabled, Some(false));
        let p: Page<User> =
            serde_json::from_str(r#"{"@odata.context":"x","value":[{"id":"b"}]}"#).unwrap();
        assert_eq!(p.value.len(), 1);
        assert!(p.next_link.is_none());
    }
}
