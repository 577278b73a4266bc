//! The `file` source's keys: `path` (resolved against the configuration file's directory) and
//! `time_anchor` (the file's timestamps are read as if that instant were now).

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Validator;
use crate::model::Timestamp;

/// `[[sources]]` keys of a `file` source, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileConfig {
    pub path: Option<PathBuf>,
    pub time_anchor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Timestamps in the file are read as if this instant were now (they are shifted by
    /// `now - time_anchor`), so a committed demo file never ages.
    pub time_anchor: Option<Timestamp>,
}

impl FileConfig {
    pub fn new(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            time_anchor: None,
        }
    }
}

pub fn validate(raw: RawFileConfig, v: &mut Validator<'_>) -> Option<FileConfig> {
    let time_anchor = raw.time_anchor.as_deref().and_then(|s| match crate::model::parse_ts(s) {
        Ok(t) => Some(t),
        Err(_) => {
            v.error("time_anchor", format!("invalid RFC 3339 timestamp {s:?}"));
            None
        }
    });
    let Some(p) = raw.path else {
        v.error("path", "missing required key");
        return None;
    };
    let path = v.resolve(&p);
    if path.is_dir() {
        v.error("path", format!("{} is a directory, not a file", path.display()));
    } else if !path.exists() {
        // Not fatal at start-up (the file may be written later, e.g. by a cron job), but
        // `check-config` should say so: a poll would fail.
        tracing::warn!(path = %path.display(), "file source: the file does not exist yet; polls fail until it does");
    }
    Some(FileConfig { path, time_anchor })
}
