//! Hot reload of WASM plugin packages (docs/adr/0013-hot-reload.md).
//!
//! [`PackageReloader`] does one reload: it re-verifies a package from the plugins directory
//! with [`homecore_package::discover_one`] under the current trust policy (recording the
//! accepted version), gives it the operator's config entry as at startup, and swaps it in
//! with [`PluginRegistry::replace`] (or loads it, for a new domain). The file reads, hashing
//! and signature check run on the blocking pool; the runtime compiles there too. A refused
//! package is logged and listed in `GET /api/homecore/plugins`' `rejected` list, and the
//! running version keeps running. `POST /api/homecore/plugins/{domain}/reload` and the watcher
//! both go through it, one reload at a time.
//!
//! [`HotReloadWatcher`] watches the plugins directory: debounced changes are mapped to
//! domains (the first path component; `<domain>.hcpkg` is `<domain>`; names starting with `.`
//! are staging and ignored), and each changed domain is synced once per debounce window:
//! reloaded when its package is there, unloaded when it is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use homecore_package::{
    AcceptedVersions, BUNDLE_EXTENSION, DiscoveryError, Sha256Hash, TrustPolicy, VerifiedPackage,
};
use homecore_plugins::{PluginInfo, PluginManifest, PluginRegistry, RegistryError, RuntimeKind};
use notify_debouncer_mini::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, DebouncedEventKind, Debouncer, new_debouncer};
use semver::Version;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::plugin_config::check_plugin_config;
use crate::rest::error_chain;
use crate::server::{Candidate, configure, example_default_config};
use crate::{ConfigProblem, PluginConfig, RejectedPlugin};

/// The list behind `GET /api/homecore/plugins`' `rejected`, shared with the API.
pub(crate) type RejectedList = Arc<Mutex<Vec<RejectedPlugin>>>;

/// Why a reload did not swap a new version in. The version that was running keeps running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ReloadError {
    /// Neither `<domain>/` nor `<domain>.hcpkg` is in the plugins directory.
    #[error("plugin {domain}: no package {domain}/ or {domain}.{BUNDLE_EXTENSION} in {}", plugins_dir.display())]
    NoPackage {
        /// The plugin.
        domain: String,
        /// The plugins directory.
        plugins_dir: PathBuf,
    },
    /// The operator's config disables the plugin.
    #[error("plugin {domain} is disabled in the config")]
    Disabled {
        /// The plugin.
        domain: String,
    },
    /// Verification refused the package (partial, corrupt, unsigned, untrusted, downgraded,
    /// incompatible, ...).
    #[error("package {domain} refused")]
    Refused {
        /// The plugin.
        domain: String,
        /// Why.
        #[source]
        source: DiscoveryError,
    },
    /// The operator's config for the plugin does not match the new manifest's schema.
    #[error(
        "plugin {domain}: the config does not match the new version's schema: {}",
        problem_list(problems)
    )]
    Config {
        /// The plugin.
        domain: String,
        /// Every problem.
        problems: Vec<ConfigProblem>,
    },
    /// The verification task panicked or was cancelled.
    #[error("plugin {domain}: the verification task failed")]
    Task {
        /// The plugin.
        domain: String,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The registry did not start the new version (it failed to compile, link or set up; on a
    /// failed setup the previous version was started again).
    #[error("plugin {domain}: the new version did not start")]
    Registry {
        /// The plugin.
        domain: String,
        /// Why.
        #[source]
        source: RegistryError,
    },
}

fn problem_list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ReloadError {
    /// Whether the package on disk was refused (listed in `rejected`), as opposed to there
    /// being nothing to reload.
    fn is_refusal(&self) -> bool {
        !matches!(self, Self::NoPackage { .. } | Self::Disabled { .. })
    }
}

/// What identifies a package's content: its verified manifest and its module's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageId {
    manifest: Arc<PluginManifest>,
    module_sha256: Sha256Hash,
}

impl PackageId {
    /// The id of a verified package.
    pub(crate) fn of(package: &VerifiedPackage) -> Self {
        Self {
            manifest: Arc::clone(package.manifest()),
            module_sha256: *package.module_sha256(),
        }
    }
}

/// Re-verifies and swaps in packages; see the module docs.
pub(crate) struct PackageReloader {
    plugins_dir: PathBuf,
    policy: Arc<TrustPolicy>,
    accepted: Arc<dyn AcceptedVersions>,
    natives: Arc<[(String, Version)]>,
    entries: BTreeMap<String, PluginConfig>,
    registry: PluginRegistry,
    rejected: RejectedList,
    /// The content of each package plugin last loaded from disk (startup included).
    current: Mutex<BTreeMap<String, PackageId>>,
    /// One reload (or unload) at a time, so the watcher and the API never race.
    serial: tokio::sync::Mutex<()>,
}

/// What [`PackageReloader::new`] needs: the same inputs startup used.
pub(crate) struct ReloaderSettings {
    /// The plugins directory.
    pub(crate) plugins_dir: PathBuf,
    /// The trust policy (with the local example key when examples are on).
    pub(crate) policy: TrustPolicy,
    /// The rollback record (the server's database).
    pub(crate) accepted: Arc<dyn AcceptedVersions>,
    /// The compiled-in plugins' domains and versions.
    pub(crate) natives: Vec<(String, Version)>,
    /// The operator's `[plugins.<domain>]` entries.
    pub(crate) entries: BTreeMap<String, PluginConfig>,
    /// The packages loaded at startup.
    pub(crate) loaded: Vec<(String, PackageId)>,
}

impl PackageReloader {
    pub(crate) fn new(
        settings: ReloaderSettings,
        registry: PluginRegistry,
        rejected: RejectedList,
    ) -> Self {
        Self {
            plugins_dir: settings.plugins_dir,
            policy: Arc::new(settings.policy),
            accepted: settings.accepted,
            natives: settings.natives.into(),
            entries: settings.entries,
            registry,
            rejected,
            current: Mutex::new(settings.loaded.into_iter().collect()),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Reloads `domain` as `POST /api/homecore/plugins/{domain}/reload` asks: a package is
    /// verified again from disk and swapped in (loaded when new), even when unchanged; a
    /// compiled-in (native) plugin is restarted from the same spec.
    ///
    /// # Errors
    /// [`ReloadError`]; the running version, if any, keeps running (after a failed setup of
    /// the new version, it is started again).
    pub(crate) async fn reload(&self, domain: &str) -> Result<PluginInfo, ReloadError> {
        if homecore::validate_domain(domain).is_err() {
            // Never a path: `..` or a separator must not reach the file system.
            return Err(ReloadError::NoPackage {
                domain: domain.to_owned(),
                plugins_dir: self.plugins_dir.clone(),
            });
        }
        if self.is_native(domain) {
            tracing::info!(plugin = %domain, "restarting a native plugin");
            return self
                .registry
                .reload(domain)
                .await
                .map_err(|source| ReloadError::Registry {
                    domain: domain.to_owned(),
                    source,
                });
        }
        self.reload_package(domain, true).await
    }

    /// What the watcher does for a domain whose files changed: reload it when its package is
    /// there and differs from the running one, unload it when it is gone. A package replaced
    /// by remove-then-rename is briefly absent, so absence is confirmed after `settle`.
    async fn sync(&self, domain: &str, settle: Duration) {
        if self.is_native(domain) {
            tracing::debug!(plugin = %domain, "change ignored: a native plugin has this domain");
            return;
        }
        if self.package_path(domain).is_none() {
            tokio::time::sleep(settle).await;
            if self.package_path(domain).is_none() {
                self.remove(domain).await;
                return;
            }
        }
        let _ = self.reload_package(domain, false).await;
    }

    /// Unloads a package plugin whose package is gone.
    async fn remove(&self, domain: &str) {
        let _serial = self.serial.lock().await;
        if self.package_path(domain).is_some() {
            return;
        }
        self.set_rejected(domain, None);
        lock(&self.current).remove(domain);
        let loaded = self
            .registry
            .get(domain)
            .is_some_and(|p| p.runtime == RuntimeKind::Wasm);
        if loaded {
            match self.registry.unload(domain).await {
                Ok(()) => tracing::info!(plugin = %domain, "package removed; plugin unloaded"),
                Err(err) => {
                    tracing::warn!(plugin = %domain, error = %error_chain(&err), "package removed; unload failed")
                }
            }
        }
    }

    /// Verifies, configures and swaps one package in, and records the outcome (log, the
    /// `rejected` list). `always`: swap even when the package equals the running one.
    async fn reload_package(&self, domain: &str, always: bool) -> Result<PluginInfo, ReloadError> {
        let _serial = self.serial.lock().await;
        let running = self
            .registry
            .get(domain)
            .map(|p| p.manifest.version.clone());
        let result = self.verify_and_swap(domain, always).await;
        match &result {
            Ok((info, swapped)) => {
                self.set_rejected(domain, None);
                if *swapped {
                    tracing::info!(plugin = %domain, version = %info.manifest.version, previous = ?running.map(|v| v.to_string()), "package reloaded");
                } else {
                    tracing::debug!(plugin = %domain, "package unchanged; not reloaded");
                }
            }
            Err(err) if err.is_refusal() => {
                tracing::error!(plugin = %domain, error = %error_chain(err), kept = ?running.map(|v| v.to_string()), "package reload refused");
                self.set_rejected(
                    domain,
                    Some(RejectedPlugin {
                        domain: Some(domain.to_owned()),
                        path: self.package_path(domain).map(|p| p.display().to_string()),
                        reason: error_chain(err),
                    }),
                );
            }
            Err(err) => tracing::info!(plugin = %domain, reason = %err, "nothing to reload"),
        }
        result.map(|(info, _)| info)
    }

    /// The plugin's snapshot, and whether a new instance was swapped in.
    async fn verify_and_swap(
        &self,
        domain: &str,
        always: bool,
    ) -> Result<(PluginInfo, bool), ReloadError> {
        let entry = self.entries.get(domain);
        if entry.is_some_and(|e| !e.enabled) {
            return Err(ReloadError::Disabled {
                domain: domain.to_owned(),
            });
        }
        if self.package_path(domain).is_none() {
            return Err(ReloadError::NoPackage {
                domain: domain.to_owned(),
                plugins_dir: self.plugins_dir.clone(),
            });
        }
        let package = self.verify(domain).await?;
        let id = PackageId::of(&package);
        let loaded = self.registry.get(domain);
        if !always
            && let Some(info) = &loaded
            && lock(&self.current).get(domain) == Some(&id)
        {
            return Ok((info.clone(), false));
        }
        let candidate = Candidate {
            spec: package.into_spec(Value::Object(serde_json::Map::new()), None),
            default_config: example_default_config(domain),
        };
        let spec = configure(candidate, entry.cloned().unwrap_or_default());
        let problems = check_plugin_config(&spec.manifest, &spec.config);
        if !problems.is_empty() {
            return Err(ReloadError::Config {
                domain: domain.to_owned(),
                problems,
            });
        }
        let outcome = match loaded {
            Some(_) => self.registry.replace(spec).await,
            None => self.registry.load(spec).await,
        };
        let info = outcome.map_err(|source| ReloadError::Registry {
            domain: domain.to_owned(),
            source,
        })?;
        lock(&self.current).insert(domain.to_owned(), id);
        Ok((info, true))
    }

    /// [`homecore_package::discover_one`] on the blocking pool (it reads and hashes files and
    /// writes the rollback record).
    async fn verify(&self, domain: &str) -> Result<VerifiedPackage, ReloadError> {
        let installed: Vec<(String, Version)> = self
            .registry
            .list()
            .into_iter()
            .filter(|p| p.domain != domain)
            .map(|p| (p.domain, p.manifest.version.clone()))
            .collect();
        let plugins_dir = self.plugins_dir.clone();
        let owned = domain.to_owned();
        let policy = Arc::clone(&self.policy);
        let accepted = Arc::clone(&self.accepted);
        let natives = Arc::clone(&self.natives);
        tokio::task::spawn_blocking(move || {
            homecore_package::discover_one(
                &plugins_dir,
                &owned,
                &policy,
                &*accepted,
                &natives,
                &installed,
            )
        })
        .await
        .map_err(|source| ReloadError::Task {
            domain: domain.to_owned(),
            source,
        })?
        .map_err(|source| ReloadError::Refused {
            domain: domain.to_owned(),
            source,
        })
    }

    fn is_native(&self, domain: &str) -> bool {
        self.natives.iter().any(|(d, _)| d == domain)
            || self
                .registry
                .get(domain)
                .is_some_and(|p| p.runtime == RuntimeKind::Native)
    }

    /// The package for `domain`: `<domain>/`, else `<domain>.hcpkg` (discovery's order).
    fn package_path(&self, domain: &str) -> Option<PathBuf> {
        [
            self.plugins_dir.join(domain),
            self.plugins_dir
                .join(format!("{domain}.{BUNDLE_EXTENSION}")),
        ]
        .into_iter()
        .find(|p| p.symlink_metadata().is_ok())
    }

    /// Replaces (or, with `None`, clears) the `rejected` entry of `domain`. Startup names a
    /// bundle's entry after its file, so `<domain>.hcpkg` is cleared too.
    fn set_rejected(&self, domain: &str, entry: Option<RejectedPlugin>) {
        let bundle = format!("{domain}.{BUNDLE_EXTENSION}");
        let mut list = lock(&self.rejected);
        list.retain(|r| {
            r.domain.as_deref() != Some(domain) && r.domain.as_deref() != Some(bundle.as_str())
        });
        if let Some(entry) = entry {
            list.push(entry);
            list.sort_by(|a, b| a.path.cmp(&b.path));
        }
    }

    /// Every domain that may need a sync: the packages on disk and the package plugins
    /// loaded.
    fn all_domains(&self) -> BTreeSet<String> {
        let mut domains: BTreeSet<String> = self
            .registry
            .list()
            .into_iter()
            .filter(|p| p.runtime == RuntimeKind::Wasm)
            .map(|p| p.domain)
            .collect();
        match std::fs::read_dir(&self.plugins_dir) {
            Ok(entries) => domains.extend(
                entries
                    .flatten()
                    .filter_map(|e| domain_of(&self.plugins_dir, &e.path())),
            ),
            Err(err) => {
                tracing::error!(dir = %self.plugins_dir.display(), error = %err, "cannot list the plugins directory");
                // Without a listing, absence proves nothing: sync nothing rather than unload.
                return BTreeSet::new();
            }
        }
        domains
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The domain a changed path under `plugins_dir` belongs to: its first component, without
/// `.hcpkg`; `None` for the directory itself, names starting with `.` (staging) and names
/// that are not valid domains.
pub(crate) fn domain_of(plugins_dir: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(plugins_dir).ok()?;
    let Some(Component::Normal(first)) = rest.components().next() else {
        return None;
    };
    let name = first.to_str()?;
    if name.starts_with('.') {
        return None;
    }
    let domain = name
        .strip_suffix(&format!(".{BUNDLE_EXTENSION}"))
        .unwrap_or(name);
    homecore::validate_domain(domain).ok()?;
    Some(domain.to_owned())
}

/// The domains one or more debounced batches touched.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    /// Each changed path's domain, and whether its latest event says it is still being
    /// written (`AnyContinuous`: events keep coming; its final `Any` follows when it settles).
    paths: BTreeMap<PathBuf, (String, bool)>,
    /// The watcher reported an error (events may be lost): sync every domain.
    rescan: bool,
}

impl Changes {
    fn add(&mut self, plugins_dir: &Path, batch: DebounceEventResult) {
        match batch {
            Ok(events) => {
                tracing::trace!(?events, "plugins directory changed");
                for event in events {
                    if let Some(domain) = domain_of(plugins_dir, &event.path) {
                        let writing = event.kind == DebouncedEventKind::AnyContinuous;
                        // A later batch's event for the same path replaces an earlier one.
                        self.paths.insert(event.path, (domain, writing));
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "plugins directory watcher error; rescanning");
                self.rescan = true;
            }
        }
    }

    /// The domains to sync now, in order: those with a changed path and none still being
    /// written.
    fn ready(&self) -> Vec<String> {
        let busy: BTreeSet<&String> = self
            .paths
            .values()
            .filter(|(_, writing)| *writing)
            .map(|(domain, _)| domain)
            .collect();
        let ready: BTreeSet<&String> = self
            .paths
            .values()
            .map(|(domain, _)| domain)
            .filter(|d| !busy.contains(d))
            .collect();
        ready.into_iter().cloned().collect()
    }
}

/// The plugins directory watcher: a debouncer on its own thread feeding one task that syncs
/// changed domains through the [`PackageReloader`]. Stopped with [`HotReloadWatcher::stop`].
pub(crate) struct HotReloadWatcher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HotReloadWatcher {
    /// Watches `reloader`'s plugins directory (recursively), debouncing by `debounce`.
    ///
    /// # Errors
    /// The watcher could not be created (e.g. no inotify instances left) or the directory
    /// not watched.
    pub(crate) fn start(
        reloader: Arc<PackageReloader>,
        debounce: Duration,
    ) -> Result<Self, notify_debouncer_mini::notify::Error> {
        let (events, received) = mpsc::unbounded_channel();
        let mut debouncer = new_debouncer(debounce, move |batch: DebounceEventResult| {
            // Fails only once the task is gone, at shutdown.
            let _ = events.send(batch);
        })?;
        debouncer
            .watcher()
            .watch(&reloader.plugins_dir, RecursiveMode::Recursive)?;
        let (stop, stopped) = watch::channel(false);
        tracing::info!(dir = %reloader.plugins_dir.display(), debounce_ms = debounce.as_millis() as u64, "watching the plugins directory for changed packages");
        let task = tokio::spawn(watch_loop(reloader, debouncer, received, stopped, debounce));
        Ok(Self { stop, task })
    }

    /// Stops watching: lets a reload in progress finish until `deadline`, then cancels it.
    /// Returns whether it finished in time.
    pub(crate) async fn stop(self, deadline: tokio::time::Instant) -> bool {
        let _ = self.stop.send(true);
        let mut task = self.task;
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                let _ = task.await;
                false
            }
        }
    }
}

async fn watch_loop(
    reloader: Arc<PackageReloader>,
    debouncer: Debouncer<RecommendedWatcher>,
    mut received: mpsc::UnboundedReceiver<DebounceEventResult>,
    mut stopped: watch::Receiver<bool>,
    debounce: Duration,
) {
    let plugins_dir = reloader.plugins_dir.clone();
    loop {
        let first = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => break,
            batch = received.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        // Batches that queued up during the last reload are one window's worth.
        let mut changes = Changes::default();
        changes.add(&plugins_dir, first);
        while let Ok(more) = received.try_recv() {
            changes.add(&plugins_dir, more);
        }
        let domains: Vec<String> = if changes.rescan {
            reloader.all_domains().into_iter().collect()
        } else {
            changes.ready()
        };
        for domain in domains {
            if *stopped.borrow() {
                break;
            }
            reloader.sync(&domain, debounce).await;
        }
    }
    drop(debouncer);
    tracing::debug!("plugins directory watcher stopped");
}

#[cfg(test)]
mod tests {
    use notify_debouncer_mini::DebouncedEvent;

    use super::*;

    #[test]
    fn paths_map_to_the_domain_of_their_package() {
        let dir = Path::new("/srv/plugins");
        let of = |p: &str| domain_of(dir, Path::new(p));
        assert_eq!(
            of("/srv/plugins/hall_lights").as_deref(),
            Some("hall_lights")
        );
        assert_eq!(
            of("/srv/plugins/hall_lights/plugin.wasm").as_deref(),
            Some("hall_lights")
        );
        assert_eq!(
            of("/srv/plugins/hall_lights/sub/x").as_deref(),
            Some("hall_lights")
        );
        assert_eq!(of("/srv/plugins/hall.hcpkg").as_deref(), Some("hall"));
        assert_eq!(of("/srv/plugins"), None, "the directory itself");
        assert_eq!(of("/srv/plugins/.hall.staging/manifest.json"), None);
        assert_eq!(of("/srv/plugins/.hall.hcpkg.tmp"), None);
        assert_eq!(of("/srv/plugins/homecore.db-wal"), None, "not a domain");
        assert_eq!(of("/srv/plugins/Hall"), None, "not a domain");
        assert_eq!(of("/srv/other/hall"), None, "outside");
    }

    #[test]
    fn a_domain_still_being_written_waits_for_its_last_event() {
        let dir = Path::new("/p");
        let event = |path: &str, kind| DebouncedEvent::new(PathBuf::from(path), kind);
        let mut changes = Changes::default();
        changes.add(
            dir,
            Ok(vec![
                event("/p/a/manifest.json", DebouncedEventKind::Any),
                event("/p/a/plugin.wasm", DebouncedEventKind::AnyContinuous),
                event("/p/b.hcpkg", DebouncedEventKind::Any),
                event("/p/b.hcpkg", DebouncedEventKind::Any),
                event("/p/.c.staging/x", DebouncedEventKind::Any),
            ]),
        );
        assert_eq!(changes.ready(), ["b"]);
        assert!(!changes.rescan);
        // The path's final event, in a later batch drained into the same window.
        changes.add(
            dir,
            Ok(vec![event("/p/a/plugin.wasm", DebouncedEventKind::Any)]),
        );
        assert_eq!(changes.ready(), ["a", "b"]);
        changes.add(
            dir,
            Err(notify_debouncer_mini::notify::Error::generic("overflow")),
        );
        assert!(changes.rescan);
    }

    #[test]
    fn refusals_are_listed_and_nothing_to_reload_is_not() {
        let domain = || "x".to_owned();
        assert!(
            !ReloadError::Disabled { domain: domain() }.is_refusal()
                && !ReloadError::NoPackage {
                    domain: domain(),
                    plugins_dir: PathBuf::new()
                }
                .is_refusal()
        );
        assert!(
            ReloadError::Config {
                domain: domain(),
                problems: vec![]
            }
            .is_refusal()
        );
    }
}
