//! TLS for the listener, from the exporter-toolkit `tls_server_config` section of
//! `server.web_config_file` (prometheus/exporter-toolkit docs/web-configuration.md): the
//! certificate and key from files or inline, TLS versions, cipher suites and curves by their
//! Go names, every client-auth type, client CAs from a file or inline, and allowed client
//! SANs. What rustls cannot do is refused or skipped with a message naming it. Files are
//! re-read when they change, so certificates rotate without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::{Deserialize, Deserializer};

use crate::config::Secret;

/// An inline private key: never printed.
#[derive(Clone, Default)]
pub struct InlineKey(Option<Secret>);

impl std::fmt::Debug for InlineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "InlineKey([redacted])"
        } else {
            "InlineKey(None)"
        })
    }
}

impl<'de> Deserialize<'de> for InlineKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(InlineKey(s.filter(|s| !s.is_empty()).map(Secret::new)))
    }
}

/// The exporter-toolkit keys, all of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Inline PEM certificate (instead of `cert_file`).
    #[serde(default)]
    pub cert: Option<String>,
    /// Inline PEM private key (instead of `key_file`).
    #[serde(default)]
    pub key: InlineKey,
    #[serde(default)]
    pub client_auth_type: Option<String>,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Inline PEM client CA certificates (instead of `client_ca_file`).
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub min_version: Option<String>,
    #[serde(default)]
    pub max_version: Option<String>,
    /// Go names; they restrict TLS 1.2 suites (TLS 1.3 suites are always on, as in Go).
    #[serde(default)]
    pub cipher_suites: Option<Vec<String>>,
    /// Default true, as in exporter-toolkit.
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub curve_preferences: Option<Vec<String>>,
    /// A client certificate must carry one of these SANs (DNS, e-mail, IP or URI).
    #[serde(default)]
    pub client_allowed_sans: Option<Vec<String>>,
}

fn non_empty(p: &Option<PathBuf>) -> Option<&Path> {
    p.as_deref().filter(|p| !p.as_os_str().is_empty())
}

impl TlsServerConfig {
    /// Whether any TLS key is set (exporter-toolkit's `IsEnabled`): an empty
    /// `tls_server_config` serves plain HTTP.
    pub fn is_enabled(&self) -> bool {
        non_empty(&self.cert_file).is_some()
            || non_empty(&self.key_file).is_some()
            || self.cert.as_deref().is_some_and(|c| !c.is_empty())
            || self.key.0.is_some()
            || non_empty(&self.client_ca_file).is_some()
            || self.client_ca.as_deref().is_some_and(|c| !c.is_empty())
            || self
                .client_auth_type
                .as_deref()
                .is_some_and(|c| !c.is_empty())
    }

    /// Relative paths are relative to the web config file, as in exporter-toolkit.
    pub fn resolve(mut self, base: &Path) -> TlsServerConfig {
        let abs = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| !p.as_os_str().is_empty()) {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        };
        abs(&mut self.cert_file);
        abs(&mut self.key_file);
        abs(&mut self.client_ca_file);
        self
    }

    fn files(&self) -> Vec<&Path> {
        [&self.cert_file, &self.key_file, &self.client_ca_file]
            .into_iter()
            .filter_map(non_empty)
            .collect()
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
fn version(key: &str, s: &str) -> Result<u8, String> {
    match s {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key}: {s} is not supported (insecure, and rustls does not offer it); use TLS12 or TLS13"
        )),
        other => Err(format!(
            "tls_server_config.{key}: unknown TLS version {other:?} (TLS10, TLS11, TLS12, TLS13)"
        )),
    }
}

/// A Go cipher-suite name → the rustls suite, `None` for a suite Go knows and rustls does not
/// offer (CBC and RSA key exchange), `Err` for a name Go does not know either.
fn cipher(name: &str) -> Result<Option<SupportedCipherSuite>, ()> {
    use rustls::crypto::ring::cipher_suite as cs;
    Ok(Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384" => return Ok(None),
        _ => return Err(()),
    }))
}

/// A Go curve name → the rustls key-exchange group; `None` for CurveP521, which Go knows and
/// the ring provider does not offer.
fn curve(name: &str) -> Result<Option<&'static dyn SupportedKxGroup>, ()> {
    use rustls::crypto::ring::kx_group as kx;
    Ok(Some(match name {
        "X25519" => kx::X25519,
        "CurveP256" => kx::SECP256R1,
        "CurveP384" => kx::SECP384R1,
        "CurveP521" => return Ok(None),
        _ => return Err(()),
    }))
}

/// Suites that HTTP/2 requires in TLS 1.2 (Go's http2 package refuses a list without one).
pub const HTTP2_REQUIRED_CIPHERS: [&str; 2] = [
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

fn read_pem_certs(what: &str, from: Source<'_>) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = match from {
        Source::File(p) => CertificateDer::pem_file_iter(p)
            .map_err(|e| format!("{what} {}: {e}", p.display()))?
            .collect(),
        Source::Inline(s) => CertificateDer::pem_slice_iter(s.as_bytes()).collect(),
    };
    certs.map_err(|e| format!("{what}: {e}"))
}

enum Source<'a> {
    File(&'a Path),
    Inline(&'a str),
}

/// System trust anchors, for client verification without a `client_ca_file` (Go uses the
/// system pool then too).
fn system_roots() -> Result<Vec<CertificateDer<'static>>, String> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.extend(
        [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
            "/etc/ssl/ca-bundle.pem",
        ]
        .map(PathBuf::from),
    );
    for p in candidates {
        if let Ok(it) = CertificateDer::pem_file_iter(&p) {
            let certs: Vec<_> = it.filter_map(Result::ok).collect();
            if !certs.is_empty() {
                return Ok(certs);
            }
        }
    }
    Err("no client_ca_file (or client_ca) and no system CA bundle found to verify client certificates against".into())
}

/// Builds the rustls configuration. Errors name the file or key, never key material.
pub fn build(t: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    // Certificate and key, from a file or inline (files first, as in exporter-toolkit).
    let cert_src = match (
        non_empty(&t.cert_file),
        t.cert.as_deref().filter(|c| !c.is_empty()),
    ) {
        (Some(p), _) => Source::File(p),
        (None, Some(c)) => Source::Inline(c),
        (None, None) => {
            return Err("tls_server_config: missing one of cert or cert_file".into());
        }
    };
    let certs = read_pem_certs("tls_server_config.cert_file", cert_src)?;
    if certs.is_empty() {
        return Err("tls_server_config.cert_file/cert: no certificate found".into());
    }
    let key = match (non_empty(&t.key_file), &t.key.0) {
        (Some(p), _) => PrivateKeyDer::from_pem_file(p).map_err(|e| {
            format!(
                "tls_server_config.key_file {}: no usable private key ({e})",
                p.display()
            )
        })?,
        (None, Some(k)) => PrivateKeyDer::from_pem_slice(k.expose().as_bytes())
            .map_err(|e| format!("tls_server_config.key: no usable private key ({e})"))?,
        (None, None) => return Err("tls_server_config: missing one of key or key_file".into()),
    };

    let min = version("min_version", t.min_version.as_deref().unwrap_or("TLS12"))?;
    let max = version("max_version", t.max_version.as_deref().unwrap_or("TLS13"))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(rank, _)| *rank >= min && *rank <= max)
            .map(|(_, v)| v)
            .collect();
    if versions.is_empty() {
        return Err("tls_server_config: min_version is above max_version".into());
    }

    let mut provider: CryptoProvider = rustls::crypto::ring::default_provider();
    if let Some(names) = &t.cipher_suites {
        let mut tls12 = Vec::new();
        let mut skipped = Vec::new();
        for n in names {
            match cipher(n) {
                Err(()) => {
                    return Err(format!(
                        "tls_server_config.cipher_suites: unknown cipher suite {n:?}"
                    ))
                }
                Ok(None) => skipped.push(n.as_str()),
                Ok(Some(s)) if s.version() == &rustls::version::TLS12 => tls12.push(s),
                Ok(Some(_)) => {} // TLS 1.3 suites are always on
            }
        }
        if !skipped.is_empty() {
            tracing::warn!(
                suites = %skipped.join(", "),
                "tls_server_config.cipher_suites: rustls does not offer these (CBC or RSA key exchange); skipped"
            );
        }
        if tls12.is_empty() && max == 12 {
            return Err(format!(
                "tls_server_config.cipher_suites: none of the listed suites is supported (rustls offers only AEAD suites with ECDHE; not supported: {})",
                skipped.join(", ")
            ));
        }
        let tls13: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        provider.cipher_suites = tls12.into_iter().chain(tls13).collect();
    }
    if let Some(names) = &t.curve_preferences {
        let mut groups = Vec::new();
        let mut skipped = Vec::new();
        for n in names {
            match curve(n) {
                Err(()) => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: unknown curve {n:?} (CurveP256, CurveP384, CurveP521, X25519)"
                    ))
                }
                Ok(None) => skipped.push(n.as_str()),
                Ok(Some(g)) => groups.push(g),
            }
        }
        if groups.is_empty() {
            return Err(format!(
                "tls_server_config.curve_preferences: {} is not supported (rustls with ring offers X25519, CurveP256, CurveP384)",
                skipped.join(", ")
            ));
        }
        if !skipped.is_empty() {
            tracing::warn!(curves = %skipped.join(", "), "tls_server_config.curve_preferences: not supported by rustls; skipped");
        }
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;

    // Client authentication.
    let auth = t.client_auth_type.as_deref().unwrap_or("");
    let ca_src = match (
        non_empty(&t.client_ca_file),
        t.client_ca.as_deref().filter(|c| !c.is_empty()),
    ) {
        (Some(p), _) => Some(Source::File(p)),
        (None, Some(c)) => Some(Source::Inline(c)),
        (None, None) => None,
    };
    // As in exporter-toolkit: the CA file must be readable, then the policy must use it, then
    // it must hold a certificate.
    let ca_certs = match ca_src {
        Some(src) => Some(read_pem_certs("tls_server_config.client_ca_file", src)?),
        None => None,
    };
    if ca_certs.is_some() && matches!(auth, "" | "NoClientCert") {
        return Err("tls_server_config: client_ca_file is set but client_auth_type is NoClientCert: set a client auth type that uses it".into());
    }
    if ca_certs.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(
            "tls_server_config.client_ca_file: no PEM certificate in it (an empty CA file would accept no client)".into(),
        );
    }
    let verifying = |allow_unauthenticated: bool| -> Result<Arc<dyn ClientCertVerifier>, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = match &ca_certs {
            Some(c) => c.clone(),
            None => system_roots().map_err(|e| format!("tls_server_config: {e}"))?,
        };
        for c in certs {
            if let Err(e) = roots.add(c) {
                if ca_certs.is_some() {
                    return Err(format!("tls_server_config.client_ca_file: {e}"));
                }
            }
        }
        let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if allow_unauthenticated {
            v = v.allow_unauthenticated();
        }
        v.build()
            .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))
            .map(|v| v as Arc<dyn ClientCertVerifier>)
    };
    let verifier: Option<Arc<dyn ClientCertVerifier>> = match auth {
        "" | "NoClientCert" => None,
        "RequestClientCert" => Some(Arc::new(AnyCert {
            mandatory: false,
            provider: provider.clone(),
        })),
        "RequireAnyClientCert" | "RequireClientCert" => Some(Arc::new(AnyCert {
            mandatory: true,
            provider: provider.clone(),
        })),
        "VerifyClientCertIfGiven" => Some(verifying(true)?),
        "RequireAndVerifyClientCert" => Some(verifying(false)?),
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type: invalid {other:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)"
            ))
        }
    };
    if t.client_allowed_sans.is_some() && verifier.is_none() {
        return Err("tls_server_config.client_allowed_sans: needs a client_auth_type that asks for client certificates".into());
    }
    let verifier = verifier.map(|inner| {
        Arc::new(Checked {
            inner,
            listed: ca_certs.clone().unwrap_or_default(),
            allowed_sans: t.client_allowed_sans.clone(),
        }) as Arc<dyn ClientCertVerifier>
    });
    let builder = match verifier {
        None => builder.with_no_client_auth(),
        Some(v) => builder.with_client_cert_verifier(v),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not fit together: {e}"))?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate is accepted (the
/// handshake signature still proves the client holds its key), as in Go.
#[derive(Debug)]
struct AnyCert {
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Go's rules around the inner verifier: a client certificate that is itself one of the
/// listed client CA certificates is accepted within its validity period (Go's verifier does
/// this, and exporter-toolkit's own test clients are such self-signed certificates); with
/// `client_allowed_sans`, the certificate must also carry one of those SANs (DNS, e-mail,
/// IP address or URI, as in Go).
#[derive(Debug)]
struct Checked {
    inner: Arc<dyn ClientCertVerifier>,
    listed: Vec<CertificateDer<'static>>,
    allowed_sans: Option<Vec<String>>,
}

impl Checked {
    fn listed_and_valid(&self, der: &[u8], now: UnixTime) -> Option<Result<(), rustls::Error>> {
        if !self.listed.iter().any(|c| c.as_ref() == der) {
            return None;
        }
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return Some(Err(bad));
        };
        let t = now.as_secs() as i64;
        let v = cert.validity();
        Some(if t < v.not_before.timestamp() {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet,
            ))
        } else if t > v.not_after.timestamp() {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ))
        } else {
            Ok(())
        })
    }
}

/// Every SAN value of a certificate, as Go's `VerifyPeerCertificate` in exporter-toolkit
/// lists them.
pub fn san_values(der: &[u8]) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for n in &ext.value.general_names {
            match n {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                    out.push(s.to_string())
                }
                GeneralName::IPAddress(b) => match b.len() {
                    4 => out.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        out.push(std::net::Ipv6Addr::from(a).to_string())
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(out)
}

impl ClientCertVerifier for Checked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = match self.listed_and_valid(end_entity.as_ref(), now) {
            Some(r) => r.map(|()| ClientCertVerified::assertion())?,
            None => self
                .inner
                .verify_client_cert(end_entity, intermediates, now)?,
        };
        let Some(allowed) = &self.allowed_sans else {
            return Ok(ok);
        };
        let sans = san_values(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if sans.iter().any(|s| allowed.contains(s)) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
