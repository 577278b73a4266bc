//! identity-posture-exporter: reads identity providers, normalises every account into one
//! model, runs posture checks, and publishes the results as Prometheus gauges and an API.
//!
//! Layout (data flows one way, top to bottom):
//! - [`config`]: TOML + environment → raw → validated [`config::Config`].
//! - [`model`]: the normalised account model (also the `file` source's format).
//! - [`sources`]: one module per provider, each emitting [`model::Account`]s.
//! - [`upstream`]: the shared HTTP client for sources (retry, pacing, paging, OAuth).
//! - [`checks`]: pure posture checks over accounts, with an injected clock → findings.
//! - [`report`]: one poll's accounts → findings and the counts behind every gauge.
//! - [`activity`]: sign-in events → authentication-health counters and attack detections
//!   (pure detectors); [`activity_poll`] reads a source's event stream for the poller.
//! - [`history`]: first seen / new / resolved per finding, across polls and restarts.
//! - [`store`]: the embedded persisted-state store (`[storage] state_dir`).
//! - [`state`]: what the poller shares with the server (last good report per source).
//! - [`metrics`]: findings and poll state → Prometheus text, encoded once per poll.
//! - [`poller`]: one background task per source; keeps the last good result.
//! - [`server`]: `/metrics`, the landing page, health, and the `/api/v1` views.
//! - [`collect`]: the one-shot `collect` command.
//! - [`daemon`]: the running daemon's configuration and poll tasks, and their reload.
//! - [`demo`]: `generate-demo`, a seeded synthetic organisation.

pub mod activity;
pub mod activity_poll;
pub mod checks;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod history;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod report;
pub mod retained;
pub mod server;
pub mod sources;
pub mod state;
pub mod store;
pub mod upstream;
