//! The `entra` source's keys: tenant and client ids, a client secret or a certificate with
//! its private key (`private_key_jwt`), and the authority and Graph base URLs (national
//! clouds have their own).

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::{Secret, Validator};

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";

/// `[[sources]]` keys of an `entra` source, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntraConfig {
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    pub certificate_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
    pub private_key_env: Option<String>,
    pub authority_url: Option<String>,
    pub graph_url: Option<String>,
}

/// Microsoft Entra ID through Microsoft Graph (app-only, client credentials).
#[derive(Debug, Clone)]
pub struct EntraConfig {
    /// Directory (tenant) id or verified domain.
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    pub auth: EntraAuth,
    /// Token authority, without the tenant (`https://login.microsoftonline.com`).
    pub authority_url: String,
    /// Graph base URL, without the version (`https://graph.microsoft.com`).
    pub graph_url: String,
}

#[derive(Debug, Clone)]
pub enum EntraAuth {
    ClientSecret(Secret),
    /// A signed client assertion (`private_key_jwt`): the certificate (PEM) gives the
    /// `x5t#S256` thumbprint, the RSA private key (PEM) signs.
    Certificate {
        certificate_pem: String,
        private_key: Secret,
    },
}

pub fn validate(raw: RawEntraConfig, v: &mut Validator<'_>) -> Option<EntraConfig> {
    let tenant_id = v.required("tenant_id", raw.tenant_id.as_deref());
    if let Some(t) = &tenant_id {
        if !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        {
            v.error(
                "tenant_id",
                format!("{t:?} must be a tenant id (GUID) or domain name"),
            );
        }
    }
    let client_id = v.required("client_id", raw.client_id.as_deref());
    let authority_url = v.url_or("authority_url", raw.authority_url.as_deref(), DEFAULT_AUTHORITY);
    let graph_url = v.url_or("graph_url", raw.graph_url.as_deref(), DEFAULT_GRAPH);
    let has_secret = raw.client_secret_file.is_some() || raw.client_secret_env.is_some();
    let has_cert = raw.certificate_file.is_some()
        || raw.private_key_file.is_some()
        || raw.private_key_env.is_some();
    let auth = match v.one_of(&[
        ("client_secret_file/client_secret_env", has_secret),
        ("certificate_file + private_key_file", has_cert),
    ]) {
        Some(1) => {
            let key = v.private_key(
                "private_key",
                raw.private_key_file.as_deref(),
                raw.private_key_env.as_deref(),
                true,
                crate::sources::signs_jwts,
            );
            let cert = match raw.certificate_file.as_deref() {
                None => {
                    v.error("certificate_file", "missing required key");
                    None
                }
                Some(p) => match v.file_text("certificate_file", p) {
                    Some(s) if s.contains("-----BEGIN CERTIFICATE-----") => Some(s),
                    Some(_) => {
                        v.error(
                            "certificate_file",
                            format!("{} holds no PEM certificate", p.display()),
                        );
                        None
                    }
                    None => None,
                },
            };
            match (cert, key) {
                (Some(certificate_pem), Some(private_key)) => Some(EntraAuth::Certificate {
                    certificate_pem,
                    private_key,
                }),
                _ => None,
            }
        }
        Some(_) => v
            .secret(
                "client_secret",
                raw.client_secret_file.as_deref(),
                raw.client_secret_env.as_deref(),
                true,
            )
            .map(EntraAuth::ClientSecret),
        None if !(has_secret && has_cert) => v
            .secret("client_secret", None, None, true)
            .map(EntraAuth::ClientSecret),
        None => None,
    };
    Some(EntraConfig {
        tenant_id: tenant_id?,
        client_id: client_id?,
        auth: auth?,
        authority_url: authority_url?,
        graph_url: graph_url?,
    })
}
