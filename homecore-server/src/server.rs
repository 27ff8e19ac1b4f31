//! Startup, serving and shutdown: what `homecore run` does (ADR 9).
//!
//! [`start`] opens the data directory, settles the access tokens, installs the signed example
//! package, discovers and verifies the packages in the plugins directory, checks every plugin
//! config entry against its manifest (refusing to start with every problem listed), serves the
//! API, then loads the compiled-in and verified plugins in dependency order behind it (a slow
//! plugin is listed as `loading` and holds up nothing else; [`RunningServer::plugins_started`]
//! waits for them). A plugin that fails is reported (log and `GET /api/homecore/plugins`)
//! while the server keeps serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use homecore::Home;
use homecore_package::{AcceptedVersions, DiscoveryReport, TrustPolicy};
use homecore_plugins::{
    ManifestError, PluginManifest, PluginRegistry, PluginSpec, RegistryBuilder, StartReport,
};
use homecore_store::{RecorderConfig, SqlitePluginStorage, StateRecorder, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::candidate::{Candidate, configure, native_candidates, natives_extra};
use crate::error_chain::error_chain;
use crate::plugin_config::check_plugin_entries;
use crate::{
    Api, Config, ConfigError, ConfigProblem, ConfigProblemKind, DataDir, DataDirError,
    PluginConfig, RejectedPlugin, TokenStore,
};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration was refused (every problem listed).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory or the access token could not be set up.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database (states, plugin storage, accepted versions) could not be opened, restored
    /// or recorded to; it is never silently replaced.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The accepted-versions file of an earlier build could not be imported.
    #[error("cannot import the accepted-versions record {path}: {reason}")]
    AcceptedVersions {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The plugins directory could not be listed.
    #[error("cannot discover plugins")]
    Discovery(#[source] homecore_package::DiscoveryError),
    /// A compiled-in manifest is invalid (a build defect).
    #[error("compiled-in manifest")]
    NativeManifest(#[source] ManifestError),
    /// The WASM runtime could not be created.
    #[cfg(feature = "wasm")]
    #[error("cannot start the wasm runtime")]
    Runtime(#[source] homecore_plugins::WasmtimeError),
    /// The example package could not be installed.
    #[cfg(feature = "wasm")]
    #[error("cannot install the example package")]
    Example(#[source] crate::ExampleError),
}

/// What happened at startup, for the operator.
#[derive(Debug)]
pub struct Startup {
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The plugins directory.
    pub plugins_dir: PathBuf,
    /// The access token created by this start (print it once); `None` when it existed or
    /// the config lists tokens.
    pub new_token: Option<crate::StoredToken>,
    /// Where the stored token lives, when the config lists none.
    pub token_file: Option<PathBuf>,
    /// Plugins refused before loading (bad packages). How the others started is
    /// [`RunningServer::plugins_started`]: they load behind the served API.
    pub rejected: Vec<RejectedPlugin>,
    /// The database.
    pub database: PathBuf,
    /// How many entity states were restored from it.
    pub restored_states: usize,
}

/// A running server.
pub struct RunningServer {
    api: Api,
    startup: Startup,
    shutdown_timeout: Duration,
    stop: watch::Sender<bool>,
    serving: JoinHandle<std::io::Result<()>>,
    recorder: Arc<StateRecorder>,
    /// The plugins loading behind the served API, until [`RunningServer::plugins_started`]
    /// or the shutdown takes their outcome.
    loading: Option<JoinHandle<Loaded>>,
    loaded: Option<Loaded>,
}

/// What the loading task leaves: each plugin's outcome, and the watcher it started once
/// they had loaded (no package is swapped in while the first ones load).
struct Loaded {
    report: StartReport,
    /// The plugins directory watcher, when hot reload is on.
    #[cfg(feature = "wasm")]
    watcher: Option<crate::hot_reload::HotReloadWatcher>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.startup.addr)
            .finish_non_exhaustive()
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether open connections finished within the deadline.
    pub connections_drained: bool,
    /// Whether every plugin's teardown finished within the deadline.
    pub plugins_stopped: bool,
    /// Whether every state change, the teardowns' included, was committed to the database.
    pub states_saved: bool,
}

impl RunningServer {
    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.startup.addr
    }

    /// What happened at startup.
    #[must_use]
    pub fn startup(&self) -> &Startup {
        &self.startup
    }

    /// The API state (home, registry).
    #[must_use]
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// Waits until every plugin found at startup is running or has failed (they load behind
    /// the API, which answers from the start; meanwhile `GET /api/homecore/plugins` lists
    /// them as `loading`), and returns each one's outcome. Returns at once after the first
    /// call.
    pub async fn plugins_started(&mut self) -> &StartReport {
        if let Some(loading) = self.loading.take() {
            self.loaded = Some(settle(loading).await);
        }
        &self
            .loaded
            .as_ref()
            .expect("loaded once the loading task is taken")
            .report
    }

    /// Stops accepting connections, lets open requests finish, then tears every plugin down
    /// (dependents first), each step within the configured shutdown deadline.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        // Plugins still loading finish (or are cancelled at the deadline) before teardown.
        if let Some(mut loading) = self.loading.take() {
            match tokio::time::timeout_at(deadline, &mut loading).await {
                Ok(loaded) => self.loaded = loaded.ok(),
                Err(_) => {
                    loading.abort();
                    tracing::warn!("plugins were still loading at the shutdown deadline");
                }
            }
        }
        // No package is swapped in while the plugins tear down.
        #[cfg(feature = "wasm")]
        if let Some(watcher) = self.loaded.take().and_then(|l| l.watcher)
            && !watcher.stop(deadline).await
        {
            tracing::warn!("a hot reload was still running at the shutdown deadline; cancelled");
        }
        let _ = self.stop.send(true);
        let mut serving = self.serving;
        let connections_drained = tokio::time::timeout_at(deadline, &mut serving)
            .await
            .is_ok();
        if !connections_drained {
            serving.abort();
            tracing::warn!("connections still open at the shutdown deadline; closing them");
        }
        let plugins_stopped = tokio::time::timeout_at(deadline, self.api.registry().shutdown())
            .await
            .is_ok();
        if !plugins_stopped {
            tracing::warn!("plugin teardown did not finish within the shutdown deadline");
        }
        // The final commit is not bounded by the deadline: stopping before it would lose
        // acknowledged-later changes, and it takes one transaction.
        let states_saved = match self.recorder.close().await {
            Ok(seq) => {
                tracing::info!(changes = seq, "states saved");
                true
            }
            Err(err) => {
                tracing::error!(error = %error_chain(&err), "the final state commit failed");
                false
            }
        };
        ShutdownReport {
            connections_drained,
            plugins_stopped,
            states_saved,
        }
    }
}

/// Waits for the loading task; a task that panicked counts as no plugin started.
async fn settle(loading: JoinHandle<Loaded>) -> Loaded {
    loading.await.unwrap_or_else(|err| {
        tracing::error!(error = %err, "the plugin loading task failed");
        Loaded {
            report: StartReport::default(),
            #[cfg(feature = "wasm")]
            watcher: None,
        }
    })
}

/// Starts the server: see the module docs. Returns once the API is served; the plugins load
/// behind it ([`RunningServer::plugins_started`]).
///
/// # Errors
/// [`StartError`]: a refused config (every problem listed), an unusable data directory, an
/// address that cannot be bound, an unreadable accepted-versions record.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    start_with(config, Vec::new()).await
}

/// As [`start`], with compiled-in plugins beyond HomeCore's own (an embedder's or a test's):
/// each is treated as a native plugin (a package may not shadow it), configured by its
/// `[plugins.<domain>]` entry.
///
/// # Errors
/// As [`start`].
pub async fn start_with(
    config: Config,
    natives: Vec<PluginSpec>,
) -> Result<RunningServer, StartError> {
    let natives_arg = natives;
    let data_dir = DataDir::open(config.data_dir())?;
    let plugins_dir = config.plugins_dir();
    crate::data_dir::create_private_dir(&plugins_dir)?;

    let mut problems: Vec<ConfigProblem> = Vec::new();
    #[cfg_attr(
        not(feature = "wasm"),
        expect(unused_mut, reason = "only the example changes it")
    )]
    let mut policy = parse_trust(&config, &mut problems);

    let (tokens, new_token, token_file) = if config.api.tokens.is_empty() {
        let stored = data_dir.access_token()?;
        let file = stored.path.clone();
        let store = TokenStore::new([stored.token.as_str()]);
        (store, stored.created.then_some(stored), Some(file))
    } else {
        (TokenStore::new(&config.api.tokens), None, None)
    };

    #[cfg(feature = "wasm")]
    if config.examples {
        crate::examples::install_example(data_dir.path(), &plugins_dir)
            .map_err(StartError::Example)?
            .trust(&mut policy);
    }

    let mut natives = native_candidates().map_err(StartError::NativeManifest)?;
    natives.extend(natives_extra(natives_arg));
    let native_versions: Vec<(String, semver::Version)> = natives
        .iter()
        .map(|c| {
            (
                c.spec.manifest.domain.clone(),
                c.spec.manifest.version.clone(),
            )
        })
        .collect();
    let database = data_dir.join(DATABASE_FILE);
    let store = Store::open(&database)?;
    import_accepted_versions(data_dir.path(), &store)?;
    let discovery = discover(&plugins_dir, &policy, &store, &native_versions)?;

    let mut rejected: Vec<RejectedPlugin> = discovery
        .rejected
        .iter()
        .map(|r| RejectedPlugin {
            domain: Some(homecore_package::entry_domain(&r.path)),
            path: Some(r.path.display().to_string()),
            reason: error_chain(&r.error),
        })
        .collect();
    #[cfg(feature = "wasm")]
    let loaded_packages: Vec<(String, crate::hot_reload::PackageId)> = discovery
        .accepted
        .iter()
        .map(|p| (p.domain().to_owned(), crate::hot_reload::PackageId::of(p)))
        .collect();
    // Each package's version becomes its rollback floor once it runs, not before.
    let packages: Vec<homecore_package::VerifiedPackage> = discovery.accepted.clone();
    let mut candidates = natives;
    candidates.extend(discovery.accepted.into_iter().map(Candidate::from_package));

    let known: BTreeMap<String, &PluginManifest> = candidates
        .iter()
        .map(|c| (c.spec.manifest.domain.clone(), &*c.spec.manifest))
        .collect();
    let refused: Vec<String> = rejected.iter().filter_map(|r| r.domain.clone()).collect();
    problems.extend(check_plugin_entries(&config.plugins, &known, &refused));
    for candidate in &candidates {
        let domain = &candidate.spec.manifest.domain;
        if !config.plugins.contains_key(domain)
            && let Some(default) = &candidate.default_config
        {
            // A default that fails the schema is a defect, but never stops the server.
            for problem in
                crate::plugin_config::check_plugin_config(&candidate.spec.manifest, default)
            {
                tracing::error!(%problem, "built-in default config refused");
            }
        }
    }
    drop(known);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid { problems }.into());
    }

    let mut specs = Vec::new();
    for candidate in candidates {
        let domain = candidate.spec.manifest.domain.clone();
        let entry = config.plugins.get(&domain).cloned().unwrap_or_default();
        let entry = PluginConfig {
            enabled: config.plugins.get(&domain).is_none_or(|e| e.enabled),
            ..entry
        };
        if !entry.enabled {
            tracing::info!(plugin = %domain, "disabled in the config");
            continue;
        }
        specs.push(configure(candidate, entry));
    }

    // Restore-state (before any plugin runs), then record every change from here on.
    let home = Home::new();
    let restored = store.restore(&home)?;
    tracing::info!(states = restored.restored, database = %database.display(), "states restored");
    let recorder = Arc::new(StateRecorder::start(
        &store,
        &home.states,
        RecorderConfig::default(),
    )?);
    let storage = SqlitePluginStorage::open(&store)?;
    let registry = build_registry(&config, &data_dir, home.clone(), storage)?;
    #[cfg(feature = "wasm")]
    let registry_handle = registry.clone();

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;

    for r in &rejected {
        tracing::error!(package = r.path.as_deref().unwrap_or("-"), reason = %r.reason, "package refused");
    }
    rejected.sort_by(|a, b| a.path.cmp(&b.path));

    let builder = Api::builder(home, registry, Arc::new(tokens))
        .max_body_bytes(config.api.max_body_bytes)
        .websocket(websocket_settings(&config))
        .config_dir(data_dir.path().to_owned())
        .rejected(rejected.clone())
        .recorder(Arc::clone(&recorder));
    #[cfg(feature = "wasm")]
    let (builder, reloader) = {
        let reloader = Arc::new(crate::hot_reload::PackageReloader::new(
            crate::hot_reload::ReloaderSettings {
                plugins_dir: plugins_dir.clone(),
                policy,
                accepted: Arc::new(store.clone()),
                natives: native_versions,
                entries: config.plugins.clone(),
                loaded: loaded_packages,
            },
            registry_handle.clone(),
            builder.rejected_list(),
        ));
        (builder.reloader(Arc::clone(&reloader)), reloader)
    };
    let api = builder.build();

    let (stop, stopped) = watch::channel(false);
    let router = api.router();
    let limits = crate::connections::ConnectionLimits {
        header_read_timeout: config.api.header_read_timeout(),
        request_timeout: config.api.request_timeout(),
        max_connections: config.api.max_connections,
    };
    let serving = tokio::spawn(crate::connections::serve(
        listener,
        router,
        limits,
        api.metrics().clients.clone(),
        stopped,
    ));
    tracing::info!(%addr, "serving the HTTP and WebSocket APIs");

    // The plugins load behind the served API: a slow one keeps only itself `loading`.
    let loading = {
        let registry = api.registry().clone();
        let accepted: Arc<dyn AcceptedVersions> = Arc::new(store.clone());
        #[cfg(feature = "wasm")]
        let hot_reload = (config.hot_reload, reloader);
        tokio::spawn(async move {
            // A reload asked for while the first plugins load waits for them.
            #[cfg(feature = "wasm")]
            let held = hot_reload.1.hold().await;
            let report = registry.load_all(specs).await;
            record_running(&registry, &packages, &*accepted);
            #[cfg(feature = "wasm")]
            drop(held);
            for (domain, outcome) in &report.outcomes {
                match outcome {
                    Ok(()) => tracing::info!(plugin = %domain, "plugin running"),
                    Err(err) => {
                        tracing::error!(plugin = %domain, error = %error_chain(err), "plugin did not start")
                    }
                }
            }
            tracing::info!(plugins = report.outcomes.len(), "plugins loaded");
            Loaded {
                report,
                #[cfg(feature = "wasm")]
                watcher: start_watcher(&hot_reload.0, hot_reload.1),
            }
        })
    };

    Ok(RunningServer {
        api,
        startup: Startup {
            addr,
            data_dir: data_dir.path().to_owned(),
            plugins_dir,
            new_token,
            token_file,
            rejected,
            database,
            restored_states: restored.restored,
        },
        shutdown_timeout: config.limits.shutdown_timeout(),
        stop,
        serving,
        recorder,
        loading: Some(loading),
        loaded: None,
    })
}

/// Records the version of each package that is running as its domain's rollback floor
/// (docs/adr/0008-signed-packages.md): a package refused later or failing its setup leaves
/// the floor where it was. A failed record is logged; the plugin keeps running.
fn record_running(
    registry: &PluginRegistry,
    packages: &[homecore_package::VerifiedPackage],
    accepted: &dyn AcceptedVersions,
) {
    for package in packages {
        let running = registry
            .get(package.domain())
            .is_some_and(|p| p.lifecycle == homecore_plugins::Lifecycle::Running);
        if running && let Err(err) = package.record_accepted(accepted) {
            tracing::error!(plugin = %package.domain(), error = %error_chain(&err), "cannot record the accepted version");
        }
    }
}

/// Starts the plugins directory watcher when `[hot_reload]` is on; a watcher that cannot
/// start is logged and the server runs without it (the reload route still works).
#[cfg(feature = "wasm")]
fn start_watcher(
    config: &crate::HotReloadConfig,
    reloader: Arc<crate::hot_reload::PackageReloader>,
) -> Option<crate::hot_reload::HotReloadWatcher> {
    if !config.enabled {
        tracing::info!("hot reload is off; packages change only at restart or on a reload request");
        return None;
    }
    match crate::hot_reload::HotReloadWatcher::start(reloader, config.debounce()) {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::error!(error = %err, "cannot watch the plugins directory; hot reload is off");
            None
        }
    }
}

fn websocket_settings(config: &Config) -> crate::websocket::WebSocketSettings {
    crate::websocket::WebSocketSettings {
        queue_capacity: config.api.websocket_queue,
        auth_timeout: config.api.websocket_auth_timeout(),
        max_unauthenticated: config.api.max_unauthenticated_websockets,
        ..crate::websocket::WebSocketSettings::default()
    }
}

/// The trust policy `homecore run` applies with this config: the `[trust]` table, plus the
/// local example publisher key for the example's domain when examples are on and the key
/// exists.
///
/// # Errors
/// [`ConfigError::Invalid`] when the `[trust]` table is refused.
pub fn trust_policy(config: &Config) -> Result<TrustPolicy, ConfigError> {
    let mut problems = Vec::new();
    #[cfg_attr(
        not(feature = "wasm"),
        expect(unused_mut, reason = "only the example changes it")
    )]
    let mut policy = parse_trust(config, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid { problems });
    }
    #[cfg(feature = "wasm")]
    if config.examples {
        let (_, public) = homecore_package::key_paths(
            &config.data_dir().join("publisher"),
            crate::examples::LOCAL_KEY_NAME,
        );
        if let Ok(key) = homecore_package::load_public_key(&public) {
            crate::examples::trust_local_key(&key, &mut policy);
        }
    }
    Ok(policy)
}

/// Parses the `[trust]` table, adding its problems to `problems`.
fn parse_trust(config: &Config, problems: &mut Vec<ConfigProblem>) -> TrustPolicy {
    let Some(table) = &config.trust else {
        return TrustPolicy::default();
    };
    let policy: TrustPolicy = match toml::Value::Table(table.clone()).try_into() {
        Ok(p) => p,
        Err(err) => {
            problems.push(ConfigProblem::new(
                "trust",
                ConfigProblemKind::Shape {
                    message: err.message().trim().to_owned(),
                },
            ));
            return TrustPolicy::default();
        }
    };
    if let Err(errors) = policy.validate() {
        problems.extend(errors.into_iter().map(|e| {
            ConfigProblem::new(
                "trust",
                ConfigProblemKind::Trust {
                    message: e.to_string(),
                },
            )
        }));
    }
    policy
}

/// Discovers the signed packages in the plugins directory.
fn discover(
    plugins_dir: &std::path::Path,
    policy: &TrustPolicy,
    accepted: &dyn AcceptedVersions,
    natives: &[(String, semver::Version)],
) -> Result<DiscoveryReport, StartError> {
    homecore_package::discover(plugins_dir, policy, accepted, natives)
        .map_err(StartError::Discovery)
}

fn build_registry(
    config: &Config,
    data_dir: &DataDir,
    home: Home,
    storage: SqlitePluginStorage,
) -> Result<PluginRegistry, StartError> {
    let builder: RegistryBuilder = PluginRegistry::builder(home)
        .policy(config.limits.host_policy())
        .storage(Arc::new(storage));
    #[cfg(feature = "wasm")]
    let builder = {
        let defaults = homecore_plugins::WasmtimeConfig::default();
        let limits = &config.limits;
        let runtime = homecore_plugins::WasmtimeRuntime::new(homecore_plugins::WasmtimeConfig {
            cache_dir: Some(data_dir.join("wasm-cache")),
            policy: defaults.policy.capped_by(&limits.plugins),
            max_module_bytes: usize::try_from(limits.max_module_bytes).unwrap_or(usize::MAX),
            max_function_body_bytes: usize::try_from(limits.max_function_body_bytes)
                .unwrap_or(usize::MAX),
            compile_budget: Some(std::time::Duration::from_millis(limits.compile_budget_ms)),
            ..defaults
        })
        .map_err(StartError::Runtime)?;
        builder.runtime(Arc::new(runtime))
    };
    #[cfg(not(feature = "wasm"))]
    let _ = data_dir;
    Ok(builder.build())
}

/// The database's file name in the data directory.
pub const DATABASE_FILE: &str = "homecore.db";

/// Earlier builds kept the accepted versions in this JSON file; its entries are imported into
/// the database once (versions only ever rise, so importing twice is harmless), then the file
/// is renamed so it is not read again.
const LEGACY_ACCEPTED_VERSIONS: &str = "accepted_versions.json";

fn import_accepted_versions(data_dir: &std::path::Path, store: &Store) -> Result<(), StartError> {
    let path = data_dir.join(LEGACY_ACCEPTED_VERSIONS);
    let fail = |reason: String| StartError::AcceptedVersions {
        path: path.clone(),
        reason,
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(fail(err.to_string())),
    };
    let versions: BTreeMap<String, semver::Version> =
        serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
    for (domain, version) in &versions {
        store.record_accepted(domain, version)?;
    }
    std::fs::rename(&path, path.with_extension("json.imported"))
        .map_err(|e| fail(e.to_string()))?;
    tracing::info!(
        entries = versions.len(),
        "accepted versions imported into the database"
    );
    Ok(())
}
