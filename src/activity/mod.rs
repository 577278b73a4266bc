//! Activity analysis: the optional second stream of a source (sign-in events), turned into
//! authentication-health counters and attack detections (issue 13, docs/activity.md).
//!
//! Data flows one way: sources map their provider's events into [`event::SignInEvent`]s
//! (`Provider::activity`); the [`engine`] de-duplicates and counts them ([`health`]) and runs
//! the [`detect`] detectors — pure functions of the events, the account [`facts`] of the
//! listing and an injected clock, with thresholds from [`policy`] — and persists the result
//! in the store; `crate::activity_poll` drives one poll's read for the poller and publishes a
//! [`snapshot`]; [`metrics`] renders the counters and detections for `/metrics`; the server
//! lists detections at `/api/v1/activity`. Nothing here imports sources, upstream or server.

pub mod detect;
pub mod engine;
pub mod event;
pub mod facts;
pub mod fx;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod snapshot;

pub use detect::{Detection, Kind};
pub use event::{EventSink, SignInEvent};
pub use snapshot::{ActivityCell, Snapshot};
