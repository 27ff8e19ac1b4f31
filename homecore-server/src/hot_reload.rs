//! Hot reload of WASM plugin packages (docs/adr/0013-hot-reload.md).
//!
//! [`PackageReloader`] does one reload: it re-verifies a package from the plugins directory
//! with [`homecore_package::discover_one`] under the current trust policy, gives it the operator's config entry as at startup, and swaps it in
//! with [`PluginRegistry::replace`] (or loads it, for a new domain); only once the new version
//! runs is its version recorded as the domain's rollback floor. The file reads, hashing
//! and signature check run on the blocking pool; the runtime compiles there too. A refused
//! package is logged and listed in `GET /api/homecore/plugins`' `rejected` list, and the
//! running version keeps running. `POST /api/homecore/plugins/{domain}/reload` and the watcher
//! both go through it, one reload at a time.
//!
//! [`HotReloadWatcher`] watches the plugins directory: changed paths are mapped to domains (the
//! first path component; `<domain>.hcpkg` is `<domain>`; names starting with `.` are staging
//! and ignored), and a domain is synced once its files have been quiet for the debounce delay:
//! reloaded when its package is there, unloaded when it is gone. Reads (the reloader's own
//! included) are not changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homecore_package::{
    AcceptedVersions, BUNDLE_EXTENSION, DiscoveryError, Sha256Hash, TrustPolicy, VerifiedPackage,
};
use homecore_plugins::{PluginInfo, PluginManifest, PluginRegistry, RegistryError, RuntimeKind};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use semver::Version;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::candidate::{Candidate, configure};
use crate::error_chain::error_chain;
use crate::plugin_config::check_plugin_config;
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
        let spec = configure(
            Candidate::from_package(package.clone()),
            entry.cloned().unwrap_or_default(),
        );
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
        // The floor rises only once the new version runs (docs/adr/0008-signed-packages.md).
        if info.lifecycle == homecore_plugins::Lifecycle::Running
            && let Err(err) = package.record_accepted(&*self.accepted)
        {
            tracing::error!(plugin = %domain, error = %error_chain(&err), "cannot record the accepted version");
        }
        lock(&self.current).insert(domain.to_owned(), id);
        Ok((info, true))
    }

    /// [`homecore_package::discover_one`] on the blocking pool (it reads and hashes files and
    /// reads the rollback record).
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

    /// Holds off every reload (the watcher's and the API's) until the guard is dropped: the
    /// server holds it while the plugins found at startup load.
    pub(crate) async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.serial.lock().await
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
        homecore_package::package_path(&self.plugins_dir, domain)
    }

    /// Replaces (or, with `None`, clears) the `rejected` entry of `domain`.
    fn set_rejected(&self, domain: &str, entry: Option<RejectedPlugin>) {
        let mut list = lock(&self.rejected);
        list.retain(|r| r.domain.as_deref() != Some(domain));
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

use homecore::lock_unpoisoned as lock;

/// The domain a changed path under `plugins_dir` belongs to: its first component, without
/// `.hcpkg`; `None` for the directory itself, names starting with `.` (staging) and names
/// that are not valid domains.
pub(crate) fn domain_of(plugins_dir: &Path, path: &Path) -> Option<String> {
    let rest = path.strip_prefix(plugins_dir).ok()?;
    let Some(Component::Normal(first)) = rest.components().next() else {
        return None;
    };
    if first.to_str()?.starts_with('.') {
        return None;
    }
    let domain = homecore_package::entry_domain(Path::new(first));
    homecore::validate_domain(&domain).ok()?;
    Some(domain)
}

/// Domains with changes not synced yet, each with the time of its last change.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pending {
    domains: BTreeMap<String, Instant>,
    /// The watcher reported an error or lost events: sync every domain once quiet.
    rescan: Option<Instant>,
}

impl Pending {
    /// Notes one watcher event seen at `now`.
    fn add(&mut self, plugins_dir: &Path, event: notify::Result<Event>, now: Instant) {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(error = %err, "plugins directory watcher error; rescanning");
                self.rescan = Some(now);
                return;
            }
        };
        if event.need_rescan() {
            tracing::warn!("the plugins directory watcher lost events; rescanning");
            self.rescan = Some(now);
        }
        if !is_change(&event.kind) {
            return;
        }
        tracing::trace!(kind = ?event.kind, paths = ?event.paths, "plugins directory changed");
        for path in &event.paths {
            if let Some(domain) = domain_of(plugins_dir, path) {
                self.domains.insert(domain, now);
            }
        }
    }

    /// When the next domain (or the rescan) will have been quiet for `debounce`.
    fn next_due(&self, debounce: Duration) -> Option<Instant> {
        self.domains
            .values()
            .chain(self.rescan.iter())
            .min()
            .map(|last| *last + debounce)
    }

    /// Takes the domains quiet for `debounce` at `now`, in order, and whether to rescan.
    fn take_due(&mut self, now: Instant, debounce: Duration) -> (Vec<String>, bool) {
        let due = |last: &Instant| *last + debounce <= now;
        let mut domains = Vec::new();
        self.domains.retain(|domain, last| {
            let take = due(last);
            if take {
                domains.push(domain.clone());
            }
            !take
        });
        let rescan = self.rescan.is_some_and(|last| due(&last));
        if rescan {
            self.rescan = None;
        }
        (domains, rescan)
    }
}

/// Whether an event kind can change a package: anything but a read (opening, reading or
/// closing a file without writing it — the reloader's own verification does that).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// The plugins directory watcher: `notify`'s watcher (inotify, FSEvents, ...) feeding one task
/// that debounces per domain and syncs through the [`PackageReloader`]. Stopped with
/// [`HotReloadWatcher::stop`].
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
    ) -> Result<Self, notify::Error> {
        let (events, received) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            // Fails only once the task is gone, at shutdown.
            let _ = events.send(event);
        })?;
        watcher.watch(&reloader.plugins_dir, RecursiveMode::Recursive)?;
        let (stop, stopped) = watch::channel(false);
        tracing::info!(dir = %reloader.plugins_dir.display(), debounce_ms = u64::try_from(debounce.as_millis()).unwrap_or(u64::MAX), "watching the plugins directory for changed packages");
        let task = tokio::spawn(watch_loop(reloader, watcher, received, stopped, debounce));
        Ok(Self { stop, task })
    }

    /// Stops watching: lets a reload in progress finish until `deadline`, then cancels it.
    /// Returns whether it finished in time.
    pub(crate) async fn stop(self, deadline: Instant) -> bool {
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
    watcher: RecommendedWatcher,
    mut received: mpsc::UnboundedReceiver<notify::Result<Event>>,
    mut stopped: watch::Receiver<bool>,
    debounce: Duration,
) {
    let plugins_dir = reloader.plugins_dir.clone();
    let mut pending = Pending::default();
    loop {
        let due = pending.next_due(debounce);
        // Decide inside `select!`, act outside it: nothing is awaited while its futures live.
        let event = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => break,
            event = received.recv() => match event {
                Some(event) => Some(event),
                None => break,
            },
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => None,
        };
        if let Some(event) = event {
            pending.add(&plugins_dir, event, Instant::now());
            continue;
        }
        // Events that queued meanwhile first: a domain still being written waits.
        while let Ok(event) = received.try_recv() {
            pending.add(&plugins_dir, event, Instant::now());
        }
        let (mut domains, rescan) = pending.take_due(Instant::now(), debounce);
        if rescan {
            domains = reloader.all_domains().into_iter().collect();
            pending.domains.clear();
        }
        for domain in domains {
            if *stopped.borrow() {
                break;
            }
            reloader.sync(&domain, debounce).await;
        }
    }
    drop(watcher);
    tracing::debug!("plugins directory watcher stopped");
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, ModifyKind};

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

    fn event(kind: EventKind, path: &str) -> notify::Result<Event> {
        Ok(Event::new(kind).add_path(PathBuf::from(path)))
    }

    #[test]
    fn a_domain_is_due_once_quiet_and_reads_are_not_changes() {
        let dir = Path::new("/p");
        let debounce = Duration::from_millis(100);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut pending = Pending::default();
        let write = EventKind::Modify(ModifyKind::Any);
        pending.add(dir, event(write, "/p/a/plugin.wasm"), ms(0));
        pending.add(
            dir,
            event(EventKind::Create(CreateKind::File), "/p/b.hcpkg"),
            ms(10),
        );
        pending.add(dir, event(write, "/p/.c.staging/x"), ms(10));
        // Verification reading the package is not a change.
        let read = EventKind::Access(AccessKind::Open(notify::event::AccessMode::Any));
        pending.add(dir, event(read, "/p/d/manifest.json"), ms(20));
        assert_eq!(pending.next_due(debounce), Some(ms(100)));
        // `a` is written again: it waits for another full delay.
        pending.add(dir, event(write, "/p/a/plugin.wasm"), ms(90));
        assert_eq!(
            pending.take_due(ms(110), debounce),
            (vec!["b".to_owned()], false)
        );
        assert_eq!(pending.next_due(debounce), Some(ms(190)));
        assert_eq!(pending.take_due(ms(150), debounce), (vec![], false));
        assert_eq!(
            pending.take_due(ms(190), debounce),
            (vec!["a".to_owned()], false)
        );
        assert_eq!(pending.next_due(debounce), None);
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        pending.add(dir, event(closed, "/p/e/plugin.wasm"), ms(200));
        pending.add(dir, Err(notify::Error::generic("queue overflow")), ms(200));
        assert_eq!(
            pending.take_due(ms(300), debounce),
            (vec!["e".to_owned()], true)
        );
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
