//! An access token and when it stops working: what a token endpoint hands out and what the
//! client puts in `Authorization`. A leaf module, so the client and the OAuth grants can both
//! use it without depending on each other.

use crate::config::Secret;

/// An access token and when it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub value: Secret,
    /// As the server spelled it (`Bearer`, `DPoP`, `token`).
    pub token_type: String,
    pub issued_at_unix: f64,
    pub expires_at_unix: f64,
    pub scope: Option<String>,
}

impl AccessToken {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> String {
        let scheme = if self.token_type.eq_ignore_ascii_case("bearer") || self.token_type.is_empty()
        {
            "Bearer"
        } else {
            self.token_type.as_str()
        };
        format!("{scheme} {}", self.value.expose())
    }
}
