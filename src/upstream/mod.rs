//! The shared upstream HTTP layer every network source uses (Okta first; Entra, Google,
//! GitHub and SSPM reuse it): rustls client with timeouts, gzip and a body cap; retries with
//! backoff and jitter; 429 handling; proactive rate-limit pacing; a per-poll request budget and
//! bounded concurrency; pagination with loop detection; an OAuth token cache; redaction.
//!
//! How a source uses it:
//!
//! ```ignore
//! let mut opts = UpstreamOptions::new(&cfg.name, cfg.limits.clone());
//! opts.rate_limit_headers = Some(RateLimitHeaders::OKTA);
//! let up = Upstream::new(opts, Auth::Header(Secret::new(format!("SSWS {token}"))))?;
//! // per poll:
//! let s = up.session(ctx.stats);                 // fresh budget, counts into ctx.stats
//! let mut pages = Pager::link(Request::get(url, "/api/v1/users"));
//! while let Some(page) = pages.next_page(&s).await? {
//!     let users: Vec<User> = page.json()?;
//! }
//! ```
//!
//! - [`client`]: [`Upstream`] (long-lived, one per source) and [`Session`] (one per poll):
//!   the single place where requests are paced, budgeted, authenticated, retried, counted
//!   (`identity_posture_source_api_requests_total{code}`, `…_rate_limited_total`) and logged.
//! - [`retry`]: backoff with jitter; `Retry-After` parsing; clamping provider waits (429s, and
//!   other statuses a source classifies as its provider's rate limit).
//! - [`pacing`]: rate-limit headers per provider, the [`Pacer`], the [`RateCap`] for quotas
//!   without headers, the per-poll [`Budget`].
//! - [`paging`]: `Link` headers and body cursors, with loop and origin checks, and the next
//!   page requested while the caller works on the current one (prefetch, one page ahead).
//! - [`oauth`]: [`TokenCache`], the client-credentials and JWT-bearer grants, [`JwtSigner`].
//! - [`token`]: [`AccessToken`], a token and when it expires.
//! - [`stats`]: [`RequestStats`], the per-source request counters and in-flight activity.
//! - [`redact`]: URL and secret redaction for logs and errors.
//! - [`timer`]: the clock/sleeper, injectable so tests never wait.
//! - [`error`]: [`UpstreamError`] and the provider's error body distilled.

pub mod client;
pub mod error;
pub mod oauth;
pub mod pacing;
pub mod paging;
pub mod redact;
pub mod retry;
pub mod stats;
pub mod timer;
pub mod token;

pub use client::{
    check_url_scheme, Auth, RateLimitRule, Request, Response, Session, Throttled, TokenProvider,
    Upstream, UpstreamOptions,
};
pub use error::{ProviderError, UpstreamError};
pub use oauth::{
    Claims, ClientAuth, ClientCredentials, JwtBearer, JwtSigner, TokenCache, TokenResponse,
    TokenSource,
};
pub use pacing::{
    Budget, Pacer, RateCap, RateLimitHeaders, RateLimitSnapshot, RequestQuota, ResetKind,
};
pub use paging::{next_link, CursorReader, NextPage, Pager};
pub use redact::{redact_url, Redactor};
pub use retry::RetryPolicy;
pub use stats::{Activity, RequestStats};
pub use timer::{ManualTimer, Timer, TokioTimer};
pub use token::AccessToken;
