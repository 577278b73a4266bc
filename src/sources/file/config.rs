//! The `file` source's keys: `path` (resolved against the configuration file's directory),
//! `time_anchor` (the file's timestamps are read as if that instant were now) and
//! `events_path` (a sign-in event stream replayed when `activity = true`).

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
    pub events_path: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct FileConfig {
    pub path: PathBuf,
    /// Timestamps in the file are read as if this instant were now (they are shifted by
    /// `now - time_anchor`), so a committed demo file never ages.
    pub time_anchor: Option<Timestamp>,
    /// Sign-in events (NDJSON, or `{"events": [...]}`), replayed in time: with `time_anchor`
    /// an event dated after the anchor is released when that much time has passed since
    /// the stream was first read.
    pub events_path: Option<PathBuf>,
}

impl FileConfig {
    pub fn new(path: impl Into<PathBuf>) -> FileConfig {
        FileConfig {
            path: path.into(),
            time_anchor: None,
            events_path: None,
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
    let events_path = raw.events_path.as_deref().map(|e| v.resolve(e));
    // A file that does not exist is not fatal at start-up (it may be written later, e.g. by
    // a cron job): `serve` logs it, and `check-config` fails on it, since a poll would fail.
    let checks = [
        ("path", Some(&path), "every poll fails"),
        ("events_path", events_path.as_ref(), "the sign-in stream's polls fail"),
    ];
    for (key, p, effect) in checks {
        let Some(p) = p else { continue };
        if p.is_dir() {
            v.error(key, format!("{} is a directory, not a file", p.display()));
        } else if !p.exists() {
            v.warn(
                key,
                format!("{} does not exist (yet): {effect} until it does", p.display()),
            );
        }
    }
    Some(FileConfig {
        path,
        time_anchor,
        events_path,
    })
}
