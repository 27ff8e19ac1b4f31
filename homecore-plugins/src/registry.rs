//! The plugin registry: loads, starts in dependency order, supervises, reloads and unloads.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use homecore::{Home, SubscriptionStats};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::call_stats::{self, CallLatency, PluginHook};
use crate::context::{PluginCounters, PluginHost};
use crate::dispatcher::{Control, ControlSender, PluginTask};
use crate::{
    DEFAULT_STORAGE_BYTES, Grant, HOST_API_VERSION, InProcessRuntime, LoadError, MemoryStorage,
    OrderError, OrderItem, Permissions, PluginContext, PluginError, PluginInstance, PluginManifest,
    PluginRuntime, PluginSource, PluginStorage, ResourceLimits, RuntimeKind, start_order,
};

/// A plugin's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Lifecycle {
    /// Waiting for dependencies, loading, or running setup (with retries).
    Loading,
    /// Receiving events.
    Running,
    /// Tearing down.
    Stopping,
    /// Torn down (unloaded, or on the way to a reload).
    Stopped,
    /// Could not start; see the last error.
    Failed,
    /// Stopped after repeated failures; see the last error.
    Quarantined,
}

impl Lifecycle {
    /// Whether starting is over (running, or given up).
    #[must_use]
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Loading)
    }
}

/// Host-wide policy: caps on what manifests ask for, and how failures are handled.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Upper bounds for every plugin's [`ResourceLimits`].
    pub limits: ResourceLimits,
    /// Mailbox capacity when the manifest sets none.
    pub default_mailbox_capacity: u32,
    /// Setup attempts before a plugin is marked failed.
    pub setup_attempts: u32,
    /// Delay before the first setup retry; doubles per retry …
    pub backoff_initial: Duration,
    /// … up to this.
    pub backoff_max: Duration,
    /// Consecutive failed calls after which a plugin is quarantined.
    pub quarantine_after: u32,
    /// Deadline for setup.
    pub setup_timeout: Duration,
    /// Deadline for a service call into a plugin.
    pub call_timeout: Duration,
    /// Deadline for teardown.
    pub teardown_timeout: Duration,
}

impl Default for HostPolicy {
    fn default() -> Self {
        Self {
            limits: ResourceLimits {
                mailbox_capacity: Some(65_536),
                storage_bytes: Some(64 << 20),
                ..ResourceLimits::default()
            },
            default_mailbox_capacity: 1024,
            setup_attempts: 4,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            quarantine_after: 5,
            setup_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
            teardown_timeout: Duration::from_secs(5),
        }
    }
}

impl HostPolicy {
    /// The delay before setup retry number `retry` (1-based): capped exponential backoff.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Why the registry refused or failed a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A plugin with this domain is already loaded (or listed twice).
    #[error("a plugin with domain {domain} is already loaded")]
    DuplicateDomain {
        /// The domain.
        domain: String,
    },
    /// The plugin needs a host API version this host does not provide.
    #[error("plugin {plugin} requires host API {required}, this host provides {host}")]
    IncompatibleApi {
        /// The plugin.
        plugin: String,
        /// What it requires.
        required: semver::VersionReq,
        /// What the host provides.
        host: semver::Version,
    },
    /// The manifest's runtime kind and the code given differ.
    #[error("plugin {plugin} declares runtime {declared:?} but its code is {given:?}")]
    RuntimeMismatch {
        /// The plugin.
        plugin: String,
        /// Declared in the manifest.
        declared: RuntimeKind,
        /// Given as source.
        given: RuntimeKind,
    },
    /// No runtime for the plugin's kind.
    #[error("no {kind:?} runtime is registered for plugin {plugin}")]
    NoRuntime {
        /// The plugin.
        plugin: String,
        /// The kind.
        kind: RuntimeKind,
    },
    /// Dependency cycle, missing dependency, or a dependency that cannot start.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// A dependency failed to start.
    #[error("plugin {plugin} not started: dependency {dependency} is {lifecycle:?}")]
    DependencyFailed {
        /// The plugin.
        plugin: String,
        /// The dependency.
        dependency: String,
        /// The dependency's state.
        lifecycle: Lifecycle,
    },
    /// The runtime could not load the plugin.
    #[error("plugin {plugin} could not be loaded")]
    Load {
        /// The plugin.
        plugin: String,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// Setup failed on every attempt.
    #[error("setup of plugin {plugin} failed {attempts} times; last error: {last_error}")]
    SetupFailed {
        /// The plugin.
        plugin: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last_error: String,
    },
    /// No plugin with this domain.
    #[error("no plugin with domain {domain} is loaded")]
    NotFound {
        /// The domain.
        domain: String,
    },
    /// The plugin was unloaded while starting.
    #[error("plugin {plugin} was unloaded while starting")]
    Cancelled {
        /// The plugin.
        plugin: String,
    },
}

/// A plugin to load: manifest, code, configuration and the operator's grant.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The manifest.
    pub manifest: Arc<PluginManifest>,
    /// The code.
    pub source: PluginSource,
    /// The configuration passed to setup.
    pub config: Value,
    /// What the operator grants (`None`: everything the manifest declares).
    pub grant: Option<Permissions>,
}

impl PluginSpec {
    /// A spec with empty configuration and everything declared granted.
    #[must_use]
    pub fn new(manifest: PluginManifest, source: PluginSource) -> Self {
        Self {
            manifest: Arc::new(manifest),
            source,
            config: Value::Object(serde_json::Map::new()),
            grant: None,
        }
    }

    /// With this configuration.
    #[must_use]
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// With this operator grant.
    #[must_use]
    pub fn with_grant(mut self, grant: Permissions) -> Self {
        self.grant = Some(grant);
        self
    }
}

/// A plugin's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginHealth {
    /// Running and receiving events.
    pub ready: bool,
    /// The last error (setup, call, quarantine or dependency reason).
    pub last_error: Option<String>,
    /// Time since setup succeeded, while running.
    pub uptime: Option<Duration>,
    /// Setup attempts made by the current start.
    pub setup_attempts: u32,
    /// Failed calls in a row.
    pub consecutive_failures: u32,
}

/// A plugin's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PluginStats {
    /// Events delivered to the plugin.
    pub events: u64,
    /// Failed calls (events, service calls, setups).
    pub errors: u64,
    /// Host calls refused by the permission check.
    pub denied: u64,
    /// Host calls made.
    pub host_calls: u64,
    /// Events dropped because the mailbox was full.
    pub mailbox_dropped: u64,
    /// Log lines dropped by the rate limit.
    pub logs_dropped: u64,
    /// Events waiting in the mailbox (queued, not yet handled) while the plugin runs.
    pub mailbox_depth: u64,
    /// The mailbox's capacity while the plugin runs (0 before its first start).
    pub mailbox_capacity: u64,
    /// WASM fuel (guest instructions) consumed by calls into the plugin; 0 for native plugins.
    pub fuel_used: u64,
    /// Times the plugin was quarantined.
    pub quarantines: u64,
}

/// A snapshot of one plugin, as [`PluginRegistry::list`] returns it.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    /// The plugin's domain.
    pub domain: String,
    /// Its manifest.
    pub manifest: Arc<PluginManifest>,
    /// Its runtime kind.
    pub runtime: RuntimeKind,
    /// Its lifecycle state.
    pub lifecycle: Lifecycle,
    /// Its health.
    pub health: PluginHealth,
    /// Its counters.
    pub stats: PluginStats,
    /// How long calls into it took, per hook.
    pub latency: CallLatency,
}

#[derive(Debug, Clone)]
struct Status {
    lifecycle: Lifecycle,
    last_error: Option<String>,
    running_since: Option<Instant>,
    setup_attempts: u32,
    consecutive_failures: u32,
}

/// The registry's record of one plugin.
pub(crate) struct PluginEntry {
    pub(crate) domain: Arc<str>,
    spec: PluginSpec,
    pub(crate) counters: Arc<PluginCounters>,
    status: watch::Sender<Status>,
    control: Mutex<Option<ControlSender>>,
    task: Mutex<Option<JoinHandle<()>>>,
    mailbox: Mutex<Option<SubscriptionStats>>,
    retired_drops: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PluginEntry {
    fn new(spec: PluginSpec) -> Self {
        let (status, _) = watch::channel(Status {
            lifecycle: Lifecycle::Loading,
            last_error: None,
            running_since: None,
            setup_attempts: 0,
            consecutive_failures: 0,
        });
        Self {
            domain: spec.manifest.domain.as_str().into(),
            spec,
            counters: Arc::default(),
            status,
            control: Mutex::new(None),
            task: Mutex::new(None),
            mailbox: Mutex::new(None),
            retired_drops: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_lifecycle(&self, lifecycle: Lifecycle, reason: Option<String>) {
        self.status.send_modify(|s| {
            s.lifecycle = lifecycle;
            s.running_since = (lifecycle == Lifecycle::Running).then(Instant::now);
            if reason.is_some() {
                s.last_error = reason;
            }
        });
    }

    pub(crate) fn record_error(&self, err: &PluginError, consecutive_failures: u32) {
        tracing::warn!(plugin = %self.domain, error = %err, consecutive_failures, "plugin call failed");
        let text = err.to_string();
        self.status.send_modify(|s| {
            s.last_error = Some(text);
            s.consecutive_failures = consecutive_failures;
        });
        // Counted after the error is visible: `info` reads the count first, so a snapshot that
        // counts this error also shows it (or a later one).
        self.counters.errors.fetch_add(1, Ordering::Release);
    }

    /// Ends the failure streak shown in the plugin's health.
    pub(crate) fn clear_failures(&self) {
        self.status.send_modify(|s| s.consecutive_failures = 0);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.status.borrow().last_error.clone()
    }

    fn lifecycle(&self) -> Lifecycle {
        self.status.borrow().lifecycle
    }

    fn set_mailbox(&self, stats: Option<SubscriptionStats>) {
        if let Some(old) = std::mem::replace(&mut *lock(&self.mailbox), stats) {
            self.retired_drops
                .fetch_add(old.dropped(), Ordering::Relaxed);
        }
    }

    fn info(&self) -> PluginInfo {
        let c = &self.counters;
        // Before the status: see `record_error`.
        let errors = c.errors.load(Ordering::Acquire);
        let status = self.status.borrow().clone();
        let events = c.events.load(Ordering::Relaxed);
        let (mailbox_dropped, mailbox_depth) = {
            let mailbox = lock(&self.mailbox);
            let retired = self.retired_drops.load(Ordering::Relaxed);
            // Every event queued into the running mailbox is counted in `events` when the task
            // takes it, so the difference is what still waits.
            mailbox.as_ref().map_or((retired, 0), |m| {
                let depth = if status.lifecycle == Lifecycle::Running {
                    m.delivered().saturating_sub(events)
                } else {
                    0
                };
                (retired + m.dropped(), depth)
            })
        };
        PluginInfo {
            domain: self.domain.to_string(),
            manifest: Arc::clone(&self.spec.manifest),
            runtime: self.spec.manifest.runtime(),
            lifecycle: status.lifecycle,
            health: PluginHealth {
                ready: status.lifecycle == Lifecycle::Running,
                last_error: status.last_error,
                uptime: status.running_since.map(|t| t.elapsed()),
                setup_attempts: status.setup_attempts,
                consecutive_failures: status.consecutive_failures,
            },
            stats: PluginStats {
                events,
                errors,
                denied: c.denied.load(Ordering::Relaxed),
                host_calls: c.host_calls.load(Ordering::Relaxed),
                mailbox_dropped,
                logs_dropped: c.logs_dropped.load(Ordering::Relaxed),
                mailbox_depth,
                mailbox_capacity: c.mailbox_capacity.load(Ordering::Relaxed),
                fuel_used: c.fuel_used.load(Ordering::Relaxed),
                quarantines: c.quarantines.load(Ordering::Relaxed),
            },
            latency: c.latency.snapshot(),
        }
    }
}

/// What [`PluginRegistry::load_all`] did with each plugin, in the order given.
#[derive(Debug, Default)]
pub struct StartReport {
    /// Each plugin's domain and outcome.
    pub outcomes: Vec<(String, Result<(), RegistryError>)>,
}

impl StartReport {
    /// Domains now running.
    #[must_use]
    pub fn started(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(d, _)| d.as_str())
            .collect()
    }

    /// The error for `domain`, if it did not start.
    #[must_use]
    pub fn error(&self, domain: &str) -> Option<&RegistryError> {
        self.outcomes
            .iter()
            .find(|(d, _)| d == domain)
            .and_then(|(_, r)| r.as_ref().err())
    }
}

struct RegistryInner {
    home: Home,
    plugins: DashMap<String, Arc<PluginEntry>>,
    runtimes: Vec<Arc<dyn PluginRuntime>>,
    storage: Arc<dyn PluginStorage>,
    policy: HostPolicy,
    started: Mutex<Vec<String>>,
}

/// Builds a [`PluginRegistry`] with other runtimes, storage or policy.
pub struct RegistryBuilder {
    home: Home,
    runtimes: Vec<Arc<dyn PluginRuntime>>,
    storage: Arc<dyn PluginStorage>,
    policy: HostPolicy,
}

impl RegistryBuilder {
    /// Adds a runtime (the in-process runtime is always there).
    #[must_use]
    pub fn runtime(mut self, runtime: Arc<dyn PluginRuntime>) -> Self {
        self.runtimes.retain(|r| r.kind() != runtime.kind());
        self.runtimes.push(runtime);
        self
    }

    /// Uses this storage for plugins' key-value data.
    #[must_use]
    pub fn storage(mut self, storage: Arc<dyn PluginStorage>) -> Self {
        self.storage = storage;
        self
    }

    /// Uses this policy.
    #[must_use]
    pub fn policy(mut self, policy: HostPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The registry.
    #[must_use]
    pub fn build(self) -> PluginRegistry {
        PluginRegistry {
            inner: Arc::new(RegistryInner {
                home: self.home,
                plugins: DashMap::new(),
                runtimes: self.runtimes,
                storage: self.storage,
                policy: self.policy,
                started: Mutex::new(Vec::new()),
            }),
        }
    }
}

/// Every loaded plugin, keyed by domain. Cheap to clone.
///
/// Plugins start in dependency order (`dependencies` must be running first,
/// `after_dependencies` start first when present); a cycle, a missing dependency or a failed
/// dependency keeps a plugin (and its dependents) from starting, with the reason in
/// [`PluginRegistry::list`]. Each plugin runs in its own task behind its own mailbox.
#[derive(Clone)]
pub struct PluginRegistry {
    inner: Arc<RegistryInner>,
}

impl PluginRegistry {
    /// A registry with the in-process runtime, in-memory storage and the default policy.
    #[must_use]
    pub fn new(home: Home) -> Self {
        Self::builder(home).build()
    }

    /// A builder starting from the defaults of [`PluginRegistry::new`].
    #[must_use]
    pub fn builder(home: Home) -> RegistryBuilder {
        RegistryBuilder {
            home,
            runtimes: vec![Arc::new(InProcessRuntime::new())],
            storage: Arc::new(MemoryStorage::new()),
            policy: HostPolicy::default(),
        }
    }

    /// The home plugins act on.
    #[must_use]
    pub fn home(&self) -> &Home {
        &self.inner.home
    }

    /// A snapshot of one plugin.
    #[must_use]
    pub fn get(&self, domain: &str) -> Option<PluginInfo> {
        self.inner.plugins.get(domain).map(|e| e.info())
    }

    /// Snapshots of every plugin, sorted by domain.
    #[must_use]
    pub fn list(&self) -> Vec<PluginInfo> {
        let entries: Vec<Arc<PluginEntry>> = self
            .inner
            .plugins
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect();
        let mut infos: Vec<PluginInfo> = entries.iter().map(|e| e.info()).collect();
        infos.sort_by(|a, b| a.domain.cmp(&b.domain));
        infos
    }

    /// Loads and starts one plugin; see [`PluginRegistry::load_all`].
    ///
    /// # Errors
    /// Why the plugin did not start (it stays listed unless the domain was a duplicate).
    pub async fn load(&self, spec: PluginSpec) -> Result<PluginInfo, RegistryError> {
        let domain = spec.manifest.domain.clone();
        let mut report = self.load_all(vec![spec]).await;
        let (_, outcome) = report.outcomes.pop().expect("one outcome per spec");
        outcome?;
        self.get(&domain).ok_or(RegistryError::NotFound { domain })
    }

    /// Loads and starts plugins in dependency order and waits until each is running or has
    /// failed. Plugins already loaded satisfy dependencies.
    pub async fn load_all(&self, specs: Vec<PluginSpec>) -> StartReport {
        let mut outcomes: Vec<(String, Option<Result<(), RegistryError>>)> =
            Vec::with_capacity(specs.len());
        let mut accepted: Vec<Arc<PluginEntry>> = Vec::new();
        let mut seen = BTreeSet::new();
        for spec in specs {
            let domain = spec.manifest.domain.clone();
            if !seen.insert(domain.clone()) || self.inner.plugins.contains_key(&domain) {
                tracing::warn!(plugin = %domain, "refused: a plugin with this domain is already loaded");
                outcomes.push((
                    domain.clone(),
                    Some(Err(RegistryError::DuplicateDomain { domain })),
                ));
                continue;
            }
            let entry = Arc::new(PluginEntry::new(spec));
            match self.inner.plugins.entry(domain.clone()) {
                Entry::Occupied(_) => {
                    outcomes.push((
                        domain.clone(),
                        Some(Err(RegistryError::DuplicateDomain { domain })),
                    ));
                    continue;
                }
                Entry::Vacant(slot) => {
                    slot.insert(Arc::clone(&entry));
                }
            }
            match self.check_compatible(&entry.spec) {
                Ok(()) => {
                    accepted.push(entry);
                    outcomes.push((domain, None));
                }
                Err(err) => {
                    entry.set_lifecycle(Lifecycle::Failed, Some(err.to_string()));
                    outcomes.push((domain, Some(Err(err))));
                }
            }
        }

        let available: BTreeSet<String> = self
            .inner
            .plugins
            .iter()
            .filter(|e| matches!(e.lifecycle(), Lifecycle::Running | Lifecycle::Loading))
            .map(|e| e.key().clone())
            .filter(|d| !accepted.iter().any(|a| *a.domain == **d))
            .collect();
        let items: Vec<OrderItem<'_>> = accepted
            .iter()
            .map(|e| OrderItem {
                domain: &e.domain,
                dependencies: &e.spec.manifest.dependencies,
                after_dependencies: &e.spec.manifest.after_dependencies,
            })
            .collect();
        let order = start_order(&items, &available);

        let mut waiting: Vec<(String, oneshot::Receiver<Result<(), RegistryError>>)> = Vec::new();
        for (domain, err) in order.refused {
            if let Some(entry) = accepted.iter().find(|e| *e.domain == *domain) {
                tracing::error!(plugin = %domain, error = %err, "plugin not started");
                entry.set_lifecycle(Lifecycle::Failed, Some(err.to_string()));
            }
            if let Some(slot) = outcomes
                .iter_mut()
                .find(|(d, r)| *d == domain && r.is_none())
            {
                slot.1 = Some(Err(err.into()));
            }
        }
        for domain in &order.order {
            let entry = accepted
                .iter()
                .find(|e| *e.domain == **domain)
                .expect("ordered domains come from the accepted list");
            waiting.push((domain.clone(), self.spawn_start(Arc::clone(entry))));
        }
        for (domain, rx) in waiting {
            let result = rx.await.unwrap_or_else(|_| {
                Err(RegistryError::Cancelled {
                    plugin: domain.clone(),
                })
            });
            if let Some(slot) = outcomes
                .iter_mut()
                .find(|(d, r)| *d == domain && r.is_none())
            {
                slot.1 = Some(result);
            }
        }
        StartReport {
            outcomes: outcomes
                .into_iter()
                .map(|(d, r)| {
                    let r =
                        r.unwrap_or_else(|| Err(RegistryError::Cancelled { plugin: d.clone() }));
                    (d, r)
                })
                .collect(),
        }
    }

    fn check_compatible(&self, spec: &PluginSpec) -> Result<(), RegistryError> {
        let manifest = &spec.manifest;
        let plugin = manifest.domain.clone();
        if let Some(section) = &manifest.homecore
            && !section.api_version.matches(&HOST_API_VERSION)
        {
            return Err(RegistryError::IncompatibleApi {
                plugin,
                required: section.api_version.clone(),
                host: HOST_API_VERSION,
            });
        }
        let declared = manifest.runtime();
        let given = spec.source.kind();
        if declared != given {
            return Err(RegistryError::RuntimeMismatch {
                plugin,
                declared,
                given,
            });
        }
        if self.runtime(given).is_none() {
            return Err(RegistryError::NoRuntime {
                plugin,
                kind: given,
            });
        }
        Ok(())
    }

    fn runtime(&self, kind: RuntimeKind) -> Option<Arc<dyn PluginRuntime>> {
        self.inner
            .runtimes
            .iter()
            .find(|r| r.kind() == kind)
            .cloned()
    }

    fn spawn_start(&self, entry: Arc<PluginEntry>) -> oneshot::Receiver<Result<(), RegistryError>> {
        let (tx, rx) = oneshot::channel();
        let registry = self.clone();
        let task_entry = Arc::clone(&entry);
        let handle = tokio::spawn(async move { registry.start(task_entry, tx).await });
        *lock(&entry.task) = Some(handle);
        rx
    }

    /// Waits for dependencies, loads, runs setup with retries, then runs the plugin's task.
    async fn start(
        self,
        entry: Arc<PluginEntry>,
        settled: oneshot::Sender<Result<(), RegistryError>>,
    ) {
        let fail = |settled: oneshot::Sender<Result<(), RegistryError>>, err: RegistryError| {
            tracing::error!(plugin = %entry.domain, error = %err, "plugin not started");
            entry.set_lifecycle(Lifecycle::Failed, Some(err.to_string()));
            let _ = settled.send(Err(err));
        };
        if let Err(err) = self.wait_for_dependencies(&entry).await {
            fail(settled, err);
            return;
        }
        let manifest = &entry.spec.manifest;
        let Some(runtime) = self.runtime(manifest.runtime()) else {
            fail(
                settled,
                RegistryError::NoRuntime {
                    plugin: entry.domain.to_string(),
                    kind: manifest.runtime(),
                },
            );
            return;
        };
        let policy = &self.inner.policy;
        let attempts = policy.setup_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 1..=attempts {
            entry.status.send_modify(|s| s.setup_attempts = attempt);
            let instance = match runtime.load(manifest, &entry.spec.source).await {
                Ok(instance) => instance,
                Err(source) => {
                    fail(
                        settled,
                        RegistryError::Load {
                            plugin: entry.domain.to_string(),
                            source,
                        },
                    );
                    return;
                }
            };
            match self.try_setup(&entry, instance).await {
                Ok(task) => {
                    entry.set_lifecycle(Lifecycle::Running, None);
                    self.remember_started(&entry.domain);
                    tracing::info!(plugin = %entry.domain, attempt, "plugin running");
                    let _ = settled.send(Ok(()));
                    task.run().await;
                    return;
                }
                Err(err) => {
                    entry.record_error(&err, attempt);
                    last_error = err.to_string();
                    if attempt < attempts {
                        let delay = policy.backoff(attempt);
                        tracing::warn!(plugin = %entry.domain, attempt, retry_in_ms = delay.as_millis() as u64, error = %err, "setup failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        fail(
            settled,
            RegistryError::SetupFailed {
                plugin: entry.domain.to_string(),
                attempts,
                last_error,
            },
        );
    }

    async fn wait_for_dependencies(&self, entry: &PluginEntry) -> Result<(), RegistryError> {
        let manifest = &entry.spec.manifest;
        let hard = manifest.dependencies.iter().map(|d| (d, true));
        let soft = manifest.after_dependencies.iter().map(|d| (d, false));
        for (dependency, required) in hard.chain(soft) {
            let Some(dep) = self
                .inner
                .plugins
                .get(dependency.as_str())
                .map(|e| Arc::clone(&e))
            else {
                if required {
                    return Err(RegistryError::Order(OrderError::Missing {
                        plugin: entry.domain.to_string(),
                        missing: vec![dependency.clone()],
                    }));
                }
                continue;
            };
            let mut rx = dep.status.subscribe();
            let lifecycle = match rx.wait_for(|s| s.lifecycle.is_settled()).await {
                Ok(status) => status.lifecycle,
                Err(_) => Lifecycle::Stopped,
            };
            if required && lifecycle != Lifecycle::Running {
                return Err(RegistryError::DependencyFailed {
                    plugin: entry.domain.to_string(),
                    dependency: dependency.clone(),
                    lifecycle,
                });
            }
        }
        Ok(())
    }

    /// One setup attempt with a fresh mailbox, control queue and context.
    async fn try_setup(
        &self,
        entry: &Arc<PluginEntry>,
        mut instance: Box<dyn PluginInstance>,
    ) -> Result<PluginTask, PluginError> {
        let policy = &self.inner.policy;
        let manifest = &entry.spec.manifest;
        let asked = manifest
            .homecore
            .as_ref()
            .map(|h| h.limits)
            .unwrap_or_default();
        let limits = asked.capped_by(&policy.limits);
        let capacity = limits
            .mailbox_capacity
            .unwrap_or(policy.default_mailbox_capacity)
            .max(1);
        let mailbox = self
            .inner
            .home
            .bus
            .subscribe([], capacity as usize)
            .expect("capacity is at least 1");
        let (control_tx, control_rx) = mpsc::channel(64);
        let declared = manifest
            .homecore
            .as_ref()
            .map(|h| h.permissions.clone())
            .unwrap_or_default();
        let host = Arc::new(PluginHost::new(
            Arc::clone(&entry.domain),
            self.inner.home.clone(),
            Grant::new(declared, entry.spec.grant.clone()),
            Arc::clone(&self.inner.storage),
            limits.storage_bytes.unwrap_or(DEFAULT_STORAGE_BYTES),
            Arc::clone(&entry.counters),
            mailbox.id(),
            control_tx.clone(),
            policy.call_timeout,
        ));
        let ctx = PluginContext::new(Arc::clone(&host));
        let setup = call_stats::timed(
            &entry.counters.latency,
            &entry.domain,
            PluginHook::Setup,
            tokio::time::timeout(
                policy.setup_timeout,
                instance.setup(&ctx, &entry.spec.config),
            ),
        )
        .await;
        let result = match setup {
            Ok(result) => result,
            Err(_) => Err(PluginError::Timeout {
                limit_ms: policy.setup_timeout.as_millis() as u64,
            }),
        };
        if let Err(err) = result {
            host.unregister_services();
            // Give a failed setup the chance to release what it acquired.
            let teardown = tokio::time::timeout(policy.teardown_timeout, instance.teardown(&ctx));
            let latency = &entry.counters.latency;
            let _ = call_stats::timed(latency, &entry.domain, PluginHook::Teardown, teardown).await;
            instance.unload();
            return Err(err);
        }
        entry
            .counters
            .mailbox_capacity
            .store(u64::from(capacity), Ordering::Relaxed);
        entry.set_mailbox(Some(mailbox.stats()));
        *lock(&entry.control) = Some(control_tx);
        Ok(PluginTask {
            entry: Arc::clone(entry),
            instance,
            host,
            ctx,
            mailbox,
            control: control_rx,
            quarantine_after: policy.quarantine_after.max(1),
            teardown_deadline: policy.teardown_timeout,
        })
    }

    fn remember_started(&self, domain: &str) {
        let mut started = lock(&self.inner.started);
        started.retain(|d| d != domain);
        started.push(domain.to_owned());
    }

    /// Stops a plugin (teardown within the policy's deadline) and removes it.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an unknown domain.
    pub async fn unload(&self, domain: &str) -> Result<(), RegistryError> {
        let entry = self.stop(domain).await?;
        self.inner
            .plugins
            .remove_if(domain, |_, e| Arc::ptr_eq(e, &entry));
        lock(&self.inner.started).retain(|d| d != domain);
        Ok(())
    }

    /// Stops the plugin's task, waiting for teardown; returns its entry.
    async fn stop(&self, domain: &str) -> Result<Arc<PluginEntry>, RegistryError> {
        let entry = self
            .inner
            .plugins
            .get(domain)
            .map(|e| Arc::clone(&e))
            .ok_or_else(|| RegistryError::NotFound {
                domain: domain.to_owned(),
            })?;
        let control = lock(&entry.control).take();
        let task = lock(&entry.task).take();
        let mut stopped = false;
        if let Some(control) = control {
            let (reply, done) = oneshot::channel();
            if control.send(Control::Stop { reply }).await.is_ok() {
                let deadline = self.inner.policy.teardown_timeout + Duration::from_secs(1);
                stopped = tokio::time::timeout(deadline, done).await.is_ok();
            }
        }
        if let Some(task) = task {
            if !stopped {
                // Still starting (waiting, retrying) or stuck: cancel the task.
                task.abort();
            }
            let _ = task.await;
        }
        entry.set_mailbox(None);
        if !matches!(
            entry.lifecycle(),
            Lifecycle::Failed | Lifecycle::Quarantined
        ) {
            entry.set_lifecycle(Lifecycle::Stopped, None);
        }
        Ok(entry)
    }

    /// Stops a plugin and starts it again from the same spec (a fresh instance; storage kept).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], or why the new instance did not start.
    pub async fn reload(&self, domain: &str) -> Result<PluginInfo, RegistryError> {
        let spec = self
            .inner
            .plugins
            .get(domain)
            .map(|e| e.spec.clone())
            .ok_or_else(|| RegistryError::NotFound {
                domain: domain.to_owned(),
            })?;
        self.unload(domain).await?;
        self.load(spec).await
    }

    /// Swaps a running plugin for a new version of it (hot reload), keeping its storage.
    ///
    /// The new spec is checked and its module loaded (compiled, linked, instantiated) first,
    /// while the old instance keeps handling events; only then is the old instance stopped —
    /// after the event it is handling, if any — and the new one set up. If the new spec is
    /// refused or fails to load, the old instance is untouched and keeps running. If the new
    /// instance's setup fails, the old spec is started again and the setup error returned.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] when no plugin with the new manifest's domain is loaded, a
    /// compatibility or load error for the new spec (the old one keeps running), or why the
    /// new instance did not start.
    pub async fn replace(&self, spec: PluginSpec) -> Result<PluginInfo, RegistryError> {
        let domain = spec.manifest.domain.clone();
        let old = self
            .inner
            .plugins
            .get(&domain)
            .map(|e| e.spec.clone())
            .ok_or_else(|| RegistryError::NotFound {
                domain: domain.clone(),
            })?;
        self.check_compatible(&spec)?;
        let kind = spec.manifest.runtime();
        let runtime = self.runtime(kind).ok_or_else(|| RegistryError::NoRuntime {
            plugin: domain.clone(),
            kind,
        })?;
        // Compile and link off the hot path; the runtime memoizes the result, so the start
        // below reuses it.
        let prepared = runtime
            .load(&spec.manifest, &spec.source)
            .await
            .map_err(|source| RegistryError::Load {
                plugin: domain.clone(),
                source,
            })?;
        prepared.unload();
        self.unload(&domain).await?;
        match self.load(spec).await {
            Ok(info) => {
                tracing::info!(plugin = %domain, version = %info.manifest.version, "plugin replaced");
                Ok(info)
            }
            Err(err) => {
                tracing::error!(plugin = %domain, error = %err, "new version failed; restarting the previous one");
                let _ = self.unload(&domain).await;
                if let Err(restart) = self.load(old).await {
                    tracing::error!(plugin = %domain, error = %restart, "previous version failed to restart");
                }
                Err(err)
            }
        }
    }

    /// Unloads every plugin, dependents first.
    pub async fn shutdown(&self) {
        let started: Vec<String> = lock(&self.inner.started).iter().rev().cloned().collect();
        for domain in started {
            let _ = self.unload(&domain).await;
        }
        let rest: Vec<String> = self.inner.plugins.iter().map(|e| e.key().clone()).collect();
        for domain in rest {
            let _ = self.unload(&domain).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = HostPolicy {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            ..HostPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
        assert_eq!(p.backoff(40), Duration::from_millis(500));
    }
}
