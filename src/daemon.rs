//! The running daemon: the configuration in force, the poll tasks, and [`Daemon::reload`],
//! the one place a configuration is swapped (SIGHUP and `POST /-/reload`). A reload that
//! fails in any way keeps the running configuration and reports why.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;

use crate::config::{parse_listen, Config};
use crate::poller::{self, Clock};
use crate::state::{AppState, Live, SourceState};
use crate::store::Store;

/// Command-line values that override the file (they stay in force across reloads).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub web_config_file: Option<PathBuf>,
    /// `--source NAME` / `IPE_SOURCES`: run only these of the configured sources (a shard);
    /// empty = all.
    pub sources: Vec<String>,
}

/// Loads `path` and applies the command-line overrides.
pub fn load_config(path: &Path, o: &Overrides) -> Result<Config, String> {
    let mut cfg = crate::sources::load_config(path).map_err(|e| e.to_string())?;
    if let Some(l) = &o.listen {
        cfg.server.listen = parse_listen(l).map_err(|e| format!("--listen: {e}"))?;
    }
    if let Some(w) = &o.web_config_file {
        if !w.exists() {
            return Err(format!("--web.config.file: {} does not exist", w.display()));
        }
        cfg.server.web_config_file = Some(w.clone());
    }
    select_sources(&mut cfg, &o.sources)?;
    // Not fatal here (`check-config` fails on them); logged at every load, reloads too.
    for w in &cfg.warnings {
        tracing::warn!("configuration: {w}");
    }
    Ok(cfg)
}

/// Keeps only the sources named in `names` (`--source`, `IPE_SOURCES`), in the file's order;
/// all of them when `names` is empty. A name the file does not configure is an error that
/// lists the configured ones (a typo must not start an instance that polls nothing).
pub fn select_sources(cfg: &mut Config, names: &[String]) -> Result<(), String> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let unknown: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !cfg.sources.iter().any(|s| s.name == *n))
        .collect();
    if !unknown.is_empty() {
        let configured: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(format!(
            "--source/IPE_SOURCES: no source named {} in the configuration; configured: {}",
            unknown
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            if configured.is_empty() {
                "none".to_string()
            } else {
                configured.join(", ")
            }
        ));
    }
    cfg.sources.retain(|s| names.contains(&s.name.as_str()));
    // Another shard's sources are not this instance's problem.
    cfg.warnings.retain(|w| {
        !w.starts_with("sources[") || names.iter().any(|n| w.contains(&format!(" ({n}).")))
    });
    Ok(())
}

struct Running {
    config: Config,
    shutdown: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

pub struct Daemon {
    path: PathBuf,
    overrides: Overrides,
    clock: Clock,
    store: Arc<Store>,
    live: Arc<Live>,
    running: Mutex<Running>,
}

impl Daemon {
    /// Builds the state for `cfg` and starts one poll task per source.
    pub fn start(
        cfg: Config,
        path: PathBuf,
        overrides: Overrides,
        clock: Clock,
        store: Arc<Store>,
    ) -> Result<Arc<Daemon>, String> {
        let app = Arc::new(AppState::with_store(
            &cfg.sources,
            store.clone(),
            cfg.server.external_url.clone(),
        ));
        crate::metrics::refresh(&app);
        let (tx, rx) = watch::channel(false);
        let handles = poller::spawn_all(&cfg.sources, &app, &clock, &rx)?;
        Ok(Arc::new(Daemon {
            path,
            overrides,
            clock,
            store,
            live: Arc::new(Live::new(app)),
            running: Mutex::new(Running {
                config: cfg,
                shutdown: tx,
                handles,
            }),
        }))
    }

    /// What the server reads.
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// The configuration in force.
    pub async fn config(&self) -> Config {
        self.running.lock().await.config.clone()
    }

    /// Re-reads the configuration file and, if it is valid in every respect (the file, the
    /// web config it names, every source), swaps it in: sources keep their counters, status
    /// and last report when their name and type stay, their poll tasks restart (polling at
    /// once), and new sources start. On any error the running configuration stays.
    /// `[server]` listen address, web config, API token and `[storage]` take effect only at
    /// a restart: a change to them is reported in the returned summary.
    pub async fn reload(&self) -> Result<String, String> {
        let mut running = self.running.lock().await;
        let new = load_config(&self.path, &self.overrides)?;
        crate::server::web_config(&new.server)?;
        let old_app = self.live.load();
        let sources: Vec<Arc<SourceState>> = new
            .sources
            .iter()
            .map(|c| {
                Arc::new(
                    match old_app
                        .source(&c.name)
                        .filter(|o| o.provider == c.provider())
                    {
                        Some(old) => SourceState::carry_over(old, c),
                        None => SourceState::with_store(c, self.store.clone()),
                    },
                )
            })
            .collect();
        let app = Arc::new(AppState::from_sources(
            sources,
            new.server.external_url.clone(),
        ));
        let (tx, rx) = watch::channel(false);
        let handles = match poller::spawn_all(&new.sources, &app, &self.clock, &rx) {
            Ok(h) => h,
            Err(e) => {
                let _ = tx.send(true);
                return Err(e);
            }
        };
        // The new configuration is good: stop the old poll tasks and publish.
        let _ = running.shutdown.send(true);
        crate::metrics::refresh(&app);
        self.live.store(app.clone());
        let old = std::mem::replace(&mut running.config, new);
        running.shutdown = tx;
        let old_handles = std::mem::replace(&mut running.handles, handles);
        drop(old_handles); // they finish on their own once they see the shutdown
        let mut notes = Vec::new();
        let (o, n) = (&old.server, &running.config.server);
        if o.listen != n.listen
            || o.web_config_file != n.web_config_file
            || o.api_token != n.api_token
        {
            notes.push("server.listen, server.web_config_file and the API token take effect after a restart");
        }
        if old.storage != running.config.storage {
            notes.push("storage.state_dir takes effect after a restart");
        }
        let mut msg = format!(
            "configuration reloaded: {} source(s): {}",
            running.config.sources.len(),
            running
                .config
                .sources
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for n in notes {
            tracing::warn!("{n}");
            msg.push_str("; ");
            msg.push_str(n);
        }
        tracing::info!("{msg}");
        Ok(msg)
    }

    /// Stops the poll tasks and waits for them.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        let _ = running.shutdown.send(true);
        for h in running.handles.drain(..) {
            let _ = h.await;
        }
    }
}
