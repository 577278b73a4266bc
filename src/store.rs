//! The product's one persisted-state module: an embedded key-value store ([redb]) under
//! `[storage] state_dir`, or in memory when that is unset. Callers see named tables of
//! string keys → versioned serde values, and an atomic [`Batch`] of writes per poll.
//! A store that is missing, unreadable or corrupt never stops the exporter: it starts fresh
//! (the bad file is moved aside) with a logged warning.

use std::path::{Path, PathBuf};

use redb::TableDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The database file inside `state_dir`.
pub const FILE_NAME: &str = "state.redb";

/// redb's page cache (its default is 1 GiB). History is read and written once per poll, in
/// key order: a small cache costs little time and keeps the daemon's memory bounded.
const CACHE_BYTES: usize = 1 << 20;

/// Keys are strings; values are a 2-byte little-endian version followed by JSON.
type Table<'a> = TableDefinition<'a, &'static str, &'static [u8]>;

pub struct Store {
    db: redb::Database,
    /// `None`: in memory.
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Writes applied together, or not at all.
#[derive(Default)]
pub struct Batch {
    ops: Vec<Op>,
}

enum Op {
    Put(String, String, Vec<u8>),
    Delete(String, String),
}

impl Batch {
    /// Stores `value` (serialised, tagged with `version`) under `key` in `table`.
    pub fn put<T: Serialize>(&mut self, table: &str, key: &str, version: u16, value: &T) {
        let mut bytes = version.to_le_bytes().to_vec();
        match serde_json::to_writer(&mut bytes, value) {
            Ok(()) => self.ops.push(Op::Put(table.into(), key.into(), bytes)),
            Err(e) => tracing::error!(table, error = %e, "cannot serialise a stored value"),
        }
    }
    pub fn delete(&mut self, table: &str, key: &str) {
        self.ops.push(Op::Delete(table.into(), key.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], version: u16) -> Option<T> {
    let (v, body) = bytes.split_at_checked(2)?;
    if u16::from_le_bytes([v[0], v[1]]) != version {
        return None;
    }
    serde_json::from_slice(body).ok()
}

impl Store {
    /// A store that lives as long as the process.
    pub fn in_memory() -> Store {
        let db = redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("an in-memory redb database");
        Store { db, path: None }
    }

    /// Opens (or creates) the store in `state_dir`; `None` keeps state in memory, said once
    /// in the log. Never fails: an unusable file is moved aside and a fresh one started, and
    /// if even that fails the store is in memory, each with a warning.
    pub fn open(state_dir: Option<&Path>) -> Store {
        let Some(dir) = state_dir else {
            tracing::info!("storage.state_dir is not set: finding history is kept in memory and starts afresh on restart");
            return Store::in_memory();
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create storage.state_dir; keeping state in memory");
            return Store::in_memory();
        }
        let path = dir.join(FILE_NAME);
        match redb::Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
        {
            Ok(db) => {
                tracing::info!(path = %path.display(), "state store opened");
                Store {
                    db,
                    path: Some(path),
                }
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                tracing::warn!(path = %path.display(), "state store is in use by another process; keeping state in memory");
                Store::in_memory()
            }
            Err(e) => {
                let aside = dir.join(format!(
                    "{FILE_NAME}.corrupt-{}",
                    time::OffsetDateTime::now_utc().unix_timestamp()
                ));
                tracing::warn!(path = %path.display(), error = %e, moved_to = %aside.display(), "state store unreadable; starting fresh");
                if let Err(e) = std::fs::rename(&path, &aside) {
                    tracing::warn!(error = %e, "cannot move the unreadable state store aside; keeping state in memory");
                    return Store::in_memory();
                }
                match redb::Database::builder()
                    .set_cache_size(CACHE_BYTES)
                    .create(&path)
                {
                    Ok(db) => Store {
                        db,
                        path: Some(path),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot create a fresh state store; keeping state in memory");
                        Store::in_memory()
                    }
                }
            }
        }
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The value under `key`, if present and stored with `version`.
    pub fn get<T: DeserializeOwned>(&self, table: &str, key: &str, version: u16) -> Option<T> {
        let def: Table = TableDefinition::new(table);
        let txn = self.db.begin_read().map_err(|e| warn_read(table, e)).ok()?;
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return None,
            Err(e) => {
                warn_read(table, e);
                return None;
            }
        };
        let v = t.get(key).map_err(|e| warn_read(table, e)).ok()??;
        decode(v.value(), version)
    }

    /// Every entry whose key starts with `prefix` and whose value has `version`, in key order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        table: &str,
        prefix: &str,
        version: u16,
    ) -> Vec<(String, T)> {
        let mut out = Vec::new();
        let def: Table = TableDefinition::new(table);
        let Ok(txn) = self.db.begin_read().map_err(|e| warn_read(table, e)) else {
            return out;
        };
        let t = match txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return out,
            Err(e) => {
                warn_read(table, e);
                return out;
            }
        };
        let Ok(range) = t.range(prefix..).map_err(|e| warn_read(table, e)) else {
            return out;
        };
        for item in range {
            let Ok((k, v)) = item.map_err(|e| warn_read(table, e)) else {
                break;
            };
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            if let Some(v) = decode(v.value(), version) {
                out.push((k.to_string(), v));
            }
        }
        out
    }

    /// Applies every write of `batch` in one transaction.
    pub fn write(&self, batch: Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        for op in &batch.ops {
            match op {
                Op::Put(table, key, bytes) => {
                    let mut t = txn
                        .open_table::<&str, &[u8]>(TableDefinition::new(table))
                        .map_err(|e| e.to_string())?;
                    t.insert(key.as_str(), bytes.as_slice())
                        .map_err(|e| e.to_string())?;
                }
                Op::Delete(table, key) => {
                    let mut t = txn
                        .open_table::<&str, &[u8]>(TableDefinition::new(table))
                        .map_err(|e| e.to_string())?;
                    t.remove(key.as_str()).map_err(|e| e.to_string())?;
                }
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

/// Writes inside [`Store::update`]: applied together when it returns, or not at all.
pub struct Writer<'t> {
    txn: &'t redb::WriteTransaction,
    tables: Vec<(String, redb::Table<'t, &'static str, &'static [u8]>)>,
}

impl<'t> Writer<'t> {
    fn table(
        &mut self,
        name: &str,
    ) -> Result<&mut redb::Table<'t, &'static str, &'static [u8]>, String> {
        let i = match self.tables.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                let t = self
                    .txn
                    .open_table::<&str, &[u8]>(TableDefinition::new(name))
                    .map_err(|e| e.to_string())?;
                self.tables.push((name.to_string(), t));
                self.tables.len() - 1
            }
        };
        Ok(&mut self.tables[i].1)
    }

    /// Stores `value` (serialised, tagged with `version`) under `key` in `table`.
    pub fn put<T: Serialize>(
        &mut self,
        table: &str,
        key: &str,
        version: u16,
        value: &T,
    ) -> Result<(), String> {
        let mut bytes = version.to_le_bytes().to_vec();
        serde_json::to_writer(&mut bytes, value).map_err(|e| e.to_string())?;
        self.table(table)?
            .insert(key, bytes.as_slice())
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    pub fn delete(&mut self, table: &str, key: &str) -> Result<(), String> {
        self.table(table)?.remove(key).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Store {
    /// Streams the entries of `table` whose key starts with `prefix`, in key order (a
    /// snapshot taken at the start; `None` for a value of another version), to `f` with a
    /// [`Writer`]; `f`'s writes are committed in one transaction when it returns `Ok`.
    /// Unlike [`Store::scan`] and [`Batch`], nothing is held in memory per entry, so a
    /// source with a million findings updates its history in constant memory.
    pub fn update<T: DeserializeOwned, R>(
        &self,
        table: &str,
        prefix: &str,
        version: u16,
        f: impl FnOnce(
            &mut dyn Iterator<Item = (String, Option<T>)>,
            &mut Writer<'_>,
        ) -> Result<R, String>,
    ) -> Result<R, String> {
        let read = self.db.begin_read().map_err(|e| e.to_string())?;
        let snapshot = match read.open_table::<&str, &[u8]>(TableDefinition::new(table)) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.to_string()),
        };
        let range = match &snapshot {
            Some(t) => Some(t.range(prefix..).map_err(|e| e.to_string())?),
            None => None,
        };
        let mut entries = range.into_iter().flatten().map_while(|item| {
            let (k, v) = item.map_err(|e| warn_read(table, e)).ok()?;
            let k = k.value();
            k.starts_with(prefix)
                .then(|| (k.to_string(), decode(v.value(), version)))
        });
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        let r = {
            let mut w = Writer {
                txn: &txn,
                tables: Vec::new(),
            };
            f(&mut entries, &mut w)?
        };
        txn.commit().map_err(|e| e.to_string())?;
        Ok(r)
    }
}

fn warn_read(table: &str, e: impl std::fmt::Display) {
    tracing::warn!(table, error = %e, "state store read failed; treating the entry as absent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct V {
        n: u32,
    }

    #[test]
    fn put_get_scan_delete_and_versions() {
        let s = Store::in_memory();
        assert_eq!(s.get::<V>("t", "a", 1), None, "no table yet");
        let mut b = Batch::default();
        b.put("t", "src\u{1f}a", 1, &V { n: 1 });
        b.put("t", "src\u{1f}b", 1, &V { n: 2 });
        b.put("t", "other\u{1f}a", 1, &V { n: 3 });
        s.write(b).unwrap();
        assert_eq!(s.get::<V>("t", "src\u{1f}a", 1), Some(V { n: 1 }));
        assert_eq!(s.get::<V>("t", "src\u{1f}a", 2), None, "other version");
        let keys: Vec<String> = s
            .scan::<V>("t", "src\u{1f}", 1)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec!["src\u{1f}a", "src\u{1f}b"]);
        let mut b = Batch::default();
        b.delete("t", "src\u{1f}a");
        s.write(b).unwrap();
        assert_eq!(s.scan::<V>("t", "src\u{1f}", 1).len(), 1);
    }

    #[test]
    fn persists_across_reopen_and_a_corrupt_file_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(Some(dir.path()));
            assert!(s.path().is_some());
            let mut b = Batch::default();
            b.put("t", "k", 1, &V { n: 7 });
            s.write(b).unwrap();
        }
        let s = Store::open(Some(dir.path()));
        assert_eq!(s.get::<V>("t", "k", 1), Some(V { n: 7 }));
        drop(s);

        std::fs::write(dir.path().join(FILE_NAME), b"not a database at all").unwrap();
        let s = Store::open(Some(dir.path()));
        assert!(s.path().is_some(), "a fresh file, not memory");
        assert_eq!(s.get::<V>("t", "k", 1), None);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
        assert!(aside, "the unreadable file is kept for a post-mortem");
    }
}
