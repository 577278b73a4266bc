//! The shared test kit: the mock server base (`mock`), the provider mocks built on it
//! (`*_mock`), the harness from TOML to published gauges (`harness`), and the conformance
//! suite every network source's tests call (`conformance`). Each test crate uses part of it.
#![allow(dead_code, unused_imports)]

pub mod conformance;
pub mod entra_mock;
pub mod github_mock;
pub mod google_mock;
pub mod harness;
pub mod iam_stub;
pub mod mock;
pub mod moto;
pub mod okta_mock;
pub mod sspm_mock;
