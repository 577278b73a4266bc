//! Shared test support: the mock Okta server.
pub mod okta_mock;
