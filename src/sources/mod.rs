//! Sources: each reads one identity provider and emits normalised [`Account`]s into an
//! [`AccountSink`], plus what it could not read and tenant-wide facts. Sources never evaluate
//! checks; they only map their provider into the model.
//!
//! Every provider is one folder, `sources/<type>/` (`mod.rs` implements [`Provider`],
//! `config.rs` its keys, `wire.rs` the API's shapes, `map.rs` the pure mapping, `client.rs`
//! the requests), and one line in the `providers!` call below. See docs/adding-a-source.md.

pub mod lenient;
pub mod provider;
mod registry;

pub use provider::{
    optional, permission_refusal, signs_jwts, AccountSink, ActivityContext, ActivityOutput, Deps,
    ErrorKind, GaugeDesc, PollContext, PollOutput, Provider, SourceError, SourceGauge,
    POLL_REQUESTS,
};

use crate::config::{ProviderSettings, SourceConfig, SourceTypes, Validator};
#[allow(unused_imports)]
use crate::model::Account;

/// The source types the configuration can name: validates each type's own keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

// The registry: one line per provider (cargo feature and module, type, variant).
registry::providers! {
    "file" file::FileSource => File,
    "okta" okta::OktaSource => Okta,
    "entra" entra::EntraSource => Entra,
    "sspm" sspm::SspmSource => Sspm,
    "google" google::GoogleSource => Google,
    "github" github::GithubSource => Github,
    "aws_iam" aws_iam::AwsIamSource => AwsIam,
}

/// `filter` with every built provider's [`Provider::QUIET_LOG_TARGETS`] capped at `info`, so
/// no poll can put a credential into the logs whatever the log level asks.
pub fn quiet_credential_logs(
    filter: tracing_subscriber::EnvFilter,
) -> tracing_subscriber::EnvFilter {
    QUIET_LOG_TARGETS
        .iter()
        .flat_map(|targets| targets.iter())
        .fold(filter, |f, t| match format!("{t}=info").parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        })
}

/// Loads and validates a configuration file with every provider built into this binary.
pub fn load_config(
    path: &std::path::Path,
) -> Result<crate::config::Config, crate::config::ConfigErrors> {
    crate::config::load(path, &Registry)
}

/// Validates a configuration given as TOML with every provider built into this binary.
pub fn config_from_toml(toml: &str) -> Result<crate::config::Config, crate::config::ConfigErrors> {
    crate::config::from_toml_str(toml, &Registry)
}
