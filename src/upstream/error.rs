//! Errors of the upstream layer, and the provider's own error body distilled into one short,
//! sanitised line (Okta `errorCode`/`errorSummary`/`errorId`, OAuth `error`/
//! `error_description`, Graph and Google `error.code`/`error.message`, GitHub `message`).

use std::fmt;

/// What a provider's error body said, distilled. Never holds more than a few hundred
/// characters, and no control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// Machine-readable code (`E0000006`, `invalid_client`, `Authorization_RequestDenied`).
    pub code: Option<String>,
    /// Human-readable summary.
    pub summary: Option<String>,
    /// Request / error id for the provider's support (`errorId`, `request-id`).
    pub id: Option<String>,
    /// What the id is called by the provider (`errorId`, `request-id`).
    pub id_label: &'static str,
    /// Not JSON (or not a known shape): the start of the body.
    pub raw: Option<String>,
    /// The response was the provider's rate limit (a 429, or another status its source's
    /// classifier recognised, such as Google's 403 `userRateLimitExceeded`). Set by the client,
    /// not by [`ProviderError::parse`].
    pub rate_limited: bool,
}

const MAX_FIELD: usize = 300;

/// Keeps printable characters only, and at most `MAX_FIELD` of them.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_FIELD)
        .collect();
    if s.chars().count() > MAX_FIELD {
        out.push('…');
    }
    out.trim().to_string()
}

impl ProviderError {
    /// Parses an error body leniently; never fails.
    pub fn parse(body: &[u8]) -> ProviderError {
        let mut e = ProviderError {
            id_label: "errorId",
            ..ProviderError::default()
        };
        let text = |v: &serde_json::Value| -> Option<String> {
            match v {
                serde_json::Value::String(s) if !s.is_empty() => Some(sanitize(s)),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            let s = String::from_utf8_lossy(&body[..body.len().min(MAX_FIELD * 4)]);
            let s = sanitize(&s);
            if !s.is_empty() {
                e.raw = Some(s);
            }
            return e;
        };
        // Okta.
        if let Some(code) = v.get("errorCode").and_then(text) {
            e.code = Some(code);
        }
        if let Some(s) = v.get("errorSummary").and_then(text) {
            e.summary = Some(s);
        }
        if let Some(id) = v.get("errorId").and_then(text) {
            e.id = Some(id);
        }
        if let Some(causes) = v.get("errorCauses").and_then(|c| c.as_array()) {
            let causes: Vec<String> = causes
                .iter()
                .filter_map(|c| c.get("errorSummary").and_then(text))
                .take(3)
                .collect();
            if !causes.is_empty() {
                let joined = causes.join("; ");
                e.summary = Some(match e.summary.take() {
                    Some(s) => sanitize(&format!("{s} ({joined})")),
                    None => joined,
                });
            }
        }
        // OAuth 2.0 token endpoint: {"error": "...", "error_description": "..."}.
        match v.get("error") {
            Some(serde_json::Value::String(s)) => {
                e.code.get_or_insert_with(|| sanitize(s));
                if let Some(d) = v.get("error_description").and_then(text) {
                    e.summary.get_or_insert(d);
                }
            }
            // Graph / Google: {"error": {"code": ..., "message": ..., "status": ...}}.
            Some(obj @ serde_json::Value::Object(_)) => {
                // Google's `code` is the HTTP status again; the first `errors[].reason`
                // (`userRateLimitExceeded`, `forbidden`) or else `status` says more.
                let google_reason = || {
                    obj.get("errors")
                        .and_then(|v| v.as_array())
                        .and_then(|a| a.first())
                        .and_then(|f| f.get("reason"))
                        .and_then(text)
                        .or_else(|| obj.get("status").and_then(text))
                };
                let code = match obj.get("code") {
                    Some(serde_json::Value::Number(n)) => google_reason().or(Some(n.to_string())),
                    Some(c) => text(c),
                    None => google_reason(),
                };
                if let Some(c) = code {
                    e.code.get_or_insert(c);
                }
                if let Some(m) = obj.get("message").and_then(text) {
                    e.summary.get_or_insert(m);
                }
                if let Some(id) = obj
                    .get("innerError")
                    .and_then(|i| i.get("request-id"))
                    .and_then(text)
                {
                    e.id_label = "request-id";
                    e.id.get_or_insert(id);
                }
            }
            _ => {}
        }
        // GitHub and others: {"message": "..."}.
        if e.summary.is_none() {
            if let Some(m) = v.get("message").and_then(text) {
                e.summary = Some(m);
            }
        }
        if e.code.is_none() && e.summary.is_none() && e.id.is_none() {
            let s = sanitize(&v.to_string());
            if !s.is_empty() {
                e.raw = Some(s);
            }
        }
        e
    }

    pub fn is_empty(&self) -> bool {
        self.code.is_none() && self.summary.is_none() && self.id.is_none() && self.raw.is_none()
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(c) = &self.code {
            write!(f, "{c}")?;
            sep = " ";
        }
        if let Some(s) = &self.summary {
            write!(f, "{sep}{s:?}")?;
            sep = " ";
        }
        if let Some(id) = &self.id {
            write!(f, "{sep}({} {id})", self.id_label)?;
            sep = " ";
        }
        if let Some(r) = &self.raw {
            write!(f, "{sep}body: {r:?}")?;
        }
        Ok(())
    }
}

/// A failed upstream call. Messages name the endpoint (a path template, never a full URL
/// with a query) and never contain a secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The provider answered with an error status (after retries, where they apply).
    #[error("{method} {endpoint}: {}{}", fmt_status(*.status, .detail), fmt_detail(.detail))]
    Status {
        method: String,
        endpoint: String,
        status: u16,
        detail: Box<ProviderError>,
    },
    /// No usable response: connection refused, timeout, reset, truncated body.
    #[error("{method} {endpoint}: {message}")]
    Transport {
        method: String,
        endpoint: String,
        message: String,
    },
    /// The body was larger than the configured cap.
    #[error("{method} {endpoint}: response larger than {limit} bytes")]
    TooLarge {
        method: String,
        endpoint: String,
        limit: usize,
    },
    /// The body was not what the endpoint documents.
    #[error("{endpoint}: unexpected response body: {message}")]
    Decode { endpoint: String, message: String },
    /// A `next` link or cursor repeated: the provider would page forever.
    #[error("{endpoint}: pagination loop (the next page was already fetched on page {page})")]
    PaginationLoop { endpoint: String, page: u32 },
    /// Fresh cursors, but every item of the page was already listed: the provider repeats its
    /// data and would page forever.
    #[error("{endpoint}: pagination loop (page {page} only repeated items already listed under a new cursor)")]
    DataLoop { endpoint: String, page: u32 },
    /// More pages than the configured cap.
    #[error("{endpoint}: more than {max} pages; giving up")]
    TooManyPages { endpoint: String, max: u32 },
    /// A `next` link pointing at another origin (it would receive our credentials).
    #[error("{endpoint}: refusing a next-page link to another origin ({origin})")]
    ForeignLink { endpoint: String, origin: String },
    /// The per-poll request budget (`max_requests_per_poll`) is spent.
    #[error("request budget of {max} per poll is spent (max_requests_per_poll)")]
    BudgetExhausted { max: u32 },
    /// The per-poll response byte budget (`max_bytes_per_poll`) is spent.
    #[error("read more than {max} response bytes in one poll (max_bytes_per_poll)")]
    BytesExhausted { max: u64 },
    /// A URL that may not be used (http:// to a non-loopback host, unparsable).
    #[error("{0}")]
    Url(String),
    /// Getting an access token failed for a reason other than an HTTP error.
    #[error("access token: {0}")]
    Token(String),
}

/// `HTTP 403`, or `rate limited (HTTP 403)` for a status the source's rate-limit rule
/// recognised (a 429 says so itself).
fn fmt_status(status: u16, d: &ProviderError) -> String {
    if d.rate_limited && status != 429 {
        format!("rate limited (HTTP {status})")
    } else {
        format!("HTTP {status}")
    }
}

fn fmt_detail(d: &ProviderError) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" {d}")
    }
}

impl UpstreamError {
    /// The HTTP status, when the provider answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The provider's error code (`E0000006`, `invalid_client`), if any.
    pub fn provider_code(&self) -> Option<&str> {
        match self {
            UpstreamError::Status { detail, .. } => detail.code.as_deref(),
            _ => None,
        }
    }
    /// True for 401/403: the credential lacks a permission (not a failure of the provider).
    /// A 403 that is the provider's rate limit is not.
    pub fn is_permission(&self) -> bool {
        matches!(self.status(), Some(401 | 403)) && !self.is_rate_limited()
    }
    /// True when the provider was rate limiting (429, or a status the source's classifier
    /// recognised) and kept doing so through every allowed retry.
    pub fn is_rate_limited(&self) -> bool {
        match self {
            UpstreamError::Status { status: 429, .. } => true,
            UpstreamError::Status { detail, .. } => detail.rate_limited,
            _ => false,
        }
    }
    /// The endpoint (path template) the error is about, if it is about one.
    pub fn endpoint(&self) -> Option<&str> {
        match self {
            UpstreamError::Status { endpoint, .. }
            | UpstreamError::Transport { endpoint, .. }
            | UpstreamError::TooLarge { endpoint, .. }
            | UpstreamError::Decode { endpoint, .. }
            | UpstreamError::PaginationLoop { endpoint, .. }
            | UpstreamError::DataLoop { endpoint, .. }
            | UpstreamError::TooManyPages { endpoint, .. }
            | UpstreamError::ForeignLink { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn okta_error_body() {
        let e = ProviderError::parse(
            br#"{"errorCode":"E0000006","errorSummary":"You do not have permission to perform the requested action","errorLink":"E0000006","errorId":"oaeX1","errorCauses":[]}"#,
        );
        assert_eq!(
            e.to_string(),
            r#"E0000006 "You do not have permission to perform the requested action" (errorId oaeX1)"#
        );
        // errorCauses as an object (seen in spec examples) and no errorCode.
        let e = ProviderError::parse(br#"{"errorSummary":"bad","errorCauses":{"x":1}}"#);
        assert_eq!(e.to_string(), r#""bad""#);
        let e = ProviderError::parse(
            br#"{"errorCode":"E0000001","errorSummary":"Api validation failed","errorCauses":[{"errorSummary":"login: taken"}]}"#,
        );
        assert_eq!(
            e.to_string(),
            r#"E0000001 "Api validation failed (login: taken)""#
        );
    }

    #[test]
    fn other_shapes_and_hostile_bodies() {
        let e = ProviderError::parse(
            br#"{"error":"invalid_client","error_description":"The client_assertion signature is invalid."}"#,
        );
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
        let e = ProviderError::parse(
            br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges","innerError":{"request-id":"r1"}}}"#,
        );
        assert_eq!(
            e.to_string(),
            r#"Authorization_RequestDenied "Insufficient privileges" (request-id r1)"#
        );
        // Google: the numeric code gives way to the first reason, else the status.
        let e = ProviderError::parse(
            br#"{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"message":"User Rate Limit Exceeded","domain":"usageLimits","reason":"userRateLimitExceeded"}]}}"#,
        );
        assert_eq!(
            e.to_string(),
            r#"userRateLimitExceeded "User Rate Limit Exceeded""#
        );
        let e = ProviderError::parse(
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!(e.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
        let e = ProviderError::parse(br#"{"error":{"code":500,"message":"boom"}}"#);
        assert_eq!(e.code.as_deref(), Some("500"));
        let e = ProviderError::parse(br#"{"message":"Bad credentials"}"#);
        assert_eq!(e.to_string(), r#""Bad credentials""#);
        let e = ProviderError::parse(b"<html>\x1b[31m oops \xff</html>");
        assert!(!e.to_string().contains('\x1b'));
        let long = "x".repeat(10_000);
        let e = ProviderError::parse(format!("{{\"errorSummary\":\"{long}\"}}").as_bytes());
        assert!(e.to_string().len() < 400);
        assert!(ProviderError::parse(b"").is_empty());
    }
}
