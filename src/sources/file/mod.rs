//! The `file` source: the normalised model read from disk (JSON object or NDJSON, see
//! `read.rs`), for HR exports, scripts' output or anything the other sources do not reach.
//! Reading runs on a blocking thread and hands accounts to the poll in batches.

pub mod config;
pub mod read;

use std::time::Duration;

pub use config::{FileConfig, RawFileConfig};
pub use read::{read_all, read_ndjson, read_object, read_path, shift_account, MAX_LINE_BYTES};

use super::{AccountSink, Deps, ErrorKind, PollContext, PollOutput, Provider, SourceError};
use crate::config::{SourceConfig, Validator};
use crate::model::{Account, DataKind};

/// Accounts are handed from the reading thread to the poll in batches of this size.
const BATCH: usize = 1024;

pub struct FileSource {
    cfg: FileConfig,
}

impl FileSource {
    pub fn new(cfg: FileConfig) -> FileSource {
        FileSource { cfg }
    }
}

impl Provider for FileSource {
    const TYPE: &'static str = "file";
    /// A local file costs nobody's rate limit.
    const MIN_INTERVAL: Duration = Duration::from_secs(1);
    type Raw = RawFileConfig;
    type Config = FileConfig;

    fn validate(raw: RawFileConfig, v: &mut Validator<'_>) -> Option<FileConfig> {
        config::validate(raw, v)
    }

    fn build(_: &SourceConfig, cfg: &FileConfig, _: &Deps) -> Result<FileSource, SourceError> {
        Ok(FileSource::new(cfg.clone()))
    }

    async fn poll(
        &self,
        ctx: &PollContext<'_>,
        sink: &mut dyn AccountSink,
    ) -> Result<PollOutput, SourceError> {
        let path = self.cfg.path.clone();
        let shift = self.cfg.time_anchor.map(|anchor| ctx.now - anchor);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Account>>(4);
        let reader = tokio::task::spawn_blocking(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let res = read_path(&path, &mut |mut a: Account| {
                if let Some(d) = shift {
                    shift_account(&mut a, d);
                }
                batch.push(a);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    // A closed channel means the poll was abandoned (timeout): stop reading.
                    return tx.blocking_send(full).is_ok();
                }
                true
            });
            if !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
            res
        });
        while let Some(batch) = rx.recv().await {
            for a in batch {
                sink.push(a);
            }
        }
        let tenant = reader.await.map_err(|e| {
            SourceError::new(
                ErrorKind::Transport,
                format!("{}: reader failed: {e}", self.cfg.path.display()),
            )
        })??;
        let mut out = PollOutput {
            tenant,
            ..PollOutput::default()
        };
        for (kind, key) in [
            (DataKind::LastLogin, "last_login"),
            (DataKind::Mfa, "mfa"),
            (DataKind::Credentials, "credentials"),
            (DataKind::Roles, "roles"),
        ] {
            out.availability.if_absent(
                kind,
                format!("no account in {} has the `{key}` key", self.cfg.path.display()),
            );
        }
        Ok(out)
    }
}
