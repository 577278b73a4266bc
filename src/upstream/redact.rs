//! Redaction: every URL that reaches a log line or an error goes through [`redact_url`], and
//! the secrets a client holds are registered with a [`Redactor`] that scrubs any text (such as
//! an echoed error body) before it is shown.

use std::sync::RwLock;

use url::Url;

/// Query parameters whose values are never shown.
const SENSITIVE_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "client_secret",
    "client_assertion",
    "assertion",
    "password",
    "secret",
    "key",
    "api_key",
    "apikey",
    "code",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
];

const REDACTED: &str = "[redacted]";

/// `scheme://host[:port]/path?query` with user-info dropped and sensitive query values
/// replaced by `[redacted]`.
pub fn redact_url(u: &Url) -> String {
    let mut out = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(p) = u.port() {
        out.push_str(&format!(":{p}"));
    }
    out.push_str(u.path());
    if u.query().is_some() {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in u.query_pairs() {
            if SENSITIVE_PARAMS.contains(&k.to_ascii_lowercase().as_str()) {
                ser.append_pair(&k, REDACTED);
            } else {
                ser.append_pair(&k, &v);
            }
        }
        out.push('?');
        out.push_str(&ser.finish());
    }
    out
}

/// Scrubs known secret values out of arbitrary text.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: RwLock<Vec<String>>,
}

impl Redactor {
    /// Registers a secret (token, access token). Values shorter than 8 characters are not
    /// registered: they would redact ordinary words.
    pub fn add(&self, secret: &str) {
        if secret.len() < 8 {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !s.iter().any(|x| x == secret) {
            // Keep the list short: access tokens rotate, old ones are no longer useful.
            if s.len() >= 16 {
                s.remove(0);
            }
            s.push(secret.to_string());
        }
    }

    /// `text` with every registered secret replaced by `[redacted]`.
    pub fn apply(&self, text: &str) -> String {
        let s = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_and_sensitive_params() {
        let u = Url::parse(
            "https://user:pw@example.okta.com:8443/api/v1/users?limit=200&after=abc&access_token=SECRET1&Signature=SECRET2",
        )
        .unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(!r.contains("pw@"), "{r}");
        assert!(r.starts_with("https://example.okta.com:8443/api/v1/users?limit=200&after=abc"));
        assert!(r.contains("access_token=%5Bredacted%5D"), "{r}");
    }

    #[test]
    fn redactor_scrubs_registered_secrets() {
        let r = Redactor::default();
        r.add("00abcdefghijkl");
        r.add("short");
        assert_eq!(
            r.apply("token 00abcdefghijkl was rejected, short"),
            "token [redacted] was rejected, short"
        );
    }
}
