//! TLS for the listener, from the exporter-toolkit `tls_server_config` section of
//! `server.web_config_file`: certificate and key, minimum/maximum TLS version, and client
//! certificate verification. Files are re-read when they change, so certificates rotate
//! without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// The exporter-toolkit keys (docs/web-configuration.md in prometheus/exporter-toolkit).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_auth_type: Option<String>,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
    /// Accepted for compatibility; rustls chooses among its own safe suites.
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
}

impl TlsServerConfig {
    /// Relative paths are relative to the web config file, as in exporter-toolkit.
    pub fn resolve(mut self, base: &Path) -> TlsServerConfig {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.cert_file);
        abs(&mut self.key_file);
        if let Some(ca) = self.client_ca_file.as_mut() {
            abs(ca);
        }
        self
    }

    fn files(&self) -> Vec<&Path> {
        let mut v = vec![self.cert_file.as_path(), self.key_file.as_path()];
        if let Some(ca) = &self.client_ca_file {
            v.push(ca);
        }
        v
    }

    /// Modification times of the files, to notice rotation.
    pub fn stamp(&self) -> Vec<Option<SystemTime>> {
        self.files()
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }
}

/// Our rank of a TLS version (1.2 → 12, 1.3 → 13).
fn version(s: &str) -> Result<u8, String> {
    match s {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(format!(
            "{s} is not supported (insecure); use TLS12 or TLS13"
        )),
        other => Err(format!("unknown TLS version {other:?} (TLS12 or TLS13)")),
    }
}

/// Builds the rustls configuration. Errors name the file or key, never key material.
pub fn build(t: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&t.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_server_config.cert_file {}: {e}", t.cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_server_config.cert_file {}: no certificate found",
            t.cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| {
        format!(
            "tls_server_config.key_file {}: no usable private key ({e})",
            t.key_file.display()
        )
    })?;
    let min = version(t.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = version(t.max_version.as_deref().unwrap_or("TLS13"))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(rank, _)| *rank >= min && *rank <= max)
            .map(|(_, v)| v)
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let auth = t.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match auth {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca_file = t.client_ca_file.as_ref().ok_or_else(|| {
                format!("tls_server_config.client_ca_file: required with client_auth_type {auth}")
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca_file)
                .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca_file.display()))?
            {
                let c = c.map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca_file.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca_file.display()))?;
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if auth == "VerifyClientCertIfGiven" {
                v = v.allow_unauthenticated();
            }
            let verifier = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: {other:?} is not supported (NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not fit together: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
