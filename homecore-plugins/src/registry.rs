//! The plugin registry: loads, starts in dependency order, supervises, reloads and unloads.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use homecore::Home;
use tokio::sync::{mpsc, oneshot};

use crate::call_stats::{self, PluginHook};
use crate::control::{Control, PluginServiceHandler};
use crate::dispatcher::PluginTask;
use crate::entry::PluginEntry;
use crate::host::{PluginHost, PluginHostParts};
use crate::registry_error::error_chain;
use crate::sync::lock;
use crate::{
    DEFAULT_STORAGE_BYTES, Grant, HOST_API_VERSION, HostPolicy, InProcessRuntime, Lifecycle,
    MemoryStorage, OrderError, OrderItem, PluginContext, PluginError, PluginInfo, PluginInstance,
    PluginRuntime, PluginSpec, PluginStorage, RegistryError, RuntimeKind, StartReport, start_order,
};

struct RegistryInner {
    home: Home,
    plugins: DashMap<String, Arc<PluginEntry>>,
    runtimes: Vec<Arc<dyn PluginRuntime>>,
    storage: Arc<dyn PluginStorage>,
    policy: HostPolicy,
    started: Mutex<Vec<String>>,
    /// One lock per domain serializing load, unload, reload and replace of that domain.
    lifecycle_locks: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

/// Builds a [`PluginRegistry`] with other runtimes, storage or policy.
pub struct RegistryBuilder {
    home: Home,
    runtimes: Vec<Arc<dyn PluginRuntime>>,
    storage: Arc<dyn PluginStorage>,
    policy: HostPolicy,
}

impl std::fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<_> = self.runtimes.iter().map(|r| r.kind()).collect();
        f.debug_struct("RegistryBuilder")
            .field("runtimes", &kinds)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
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
                lifecycle_locks: DashMap::new(),
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

impl std::fmt::Debug for PluginRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut domains: Vec<String> = self.inner.plugins.iter().map(|e| e.key().clone()).collect();
        domains.sort_unstable();
        let kinds: Vec<_> = self.inner.runtimes.iter().map(|r| r.kind()).collect();
        f.debug_struct("PluginRegistry")
            .field("plugins", &domains)
            .field("runtimes", &kinds)
            .finish_non_exhaustive()
    }
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
        // Registering is serialized with the other lifecycle operations on the same domains
        // (locks taken in sorted order); waiting for the starts is not, so an `unload` can
        // still cancel a plugin that is retrying its setup.
        let domains: BTreeSet<String> = specs.iter().map(|s| s.manifest.domain.clone()).collect();
        let mut guards = Vec::with_capacity(domains.len());
        for domain in &domains {
            guards.push(self.lifecycle_lock(domain).lock_owned().await);
        }
        let starting = self.register_and_start(specs);
        drop(guards);
        starting.settled().await
    }

    /// The lock serializing lifecycle operations on `domain` (docs/adr/0004).
    fn lifecycle_lock(&self, domain: &str) -> Arc<tokio::sync::Mutex<()>> {
        Arc::clone(
            self.inner
                .lifecycle_locks
                .entry(domain.to_owned())
                .or_default()
                .value(),
        )
    }

    /// [`PluginRegistry::load`] for a caller holding the domain's lifecycle lock: waits for
    /// the start too.
    async fn load_locked(&self, spec: PluginSpec) -> Result<PluginInfo, RegistryError> {
        let domain = spec.manifest.domain.clone();
        let mut report = self.register_and_start(vec![spec]).settled().await;
        let (_, outcome) = report.outcomes.pop().expect("one outcome per spec");
        outcome?;
        self.get(&domain).ok_or(RegistryError::NotFound { domain })
    }

    /// Registers each plugin, orders them and spawns their starts (the caller holds their
    /// domains' lifecycle locks).
    fn register_and_start(&self, specs: Vec<PluginSpec>) -> Starting {
        let mut outcomes: Vec<(String, Option<Result<(), RegistryError>>)> =
            Vec::with_capacity(specs.len());
        // Each accepted plugin's entry and the index of its outcome, by domain. Domains in this
        // map are unique: a duplicate is refused before it gets here.
        let mut accepted: Vec<(Arc<PluginEntry>, usize)> = Vec::new();
        let mut by_domain: HashMap<String, usize> = HashMap::new();
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
                    by_domain.insert(domain.clone(), accepted.len());
                    accepted.push((entry, outcomes.len()));
                    outcomes.push((domain, None));
                }
                Err(err) => {
                    entry.set_lifecycle(Lifecycle::Failed, Some(error_chain(&err)));
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
            .filter(|d| !by_domain.contains_key(d))
            .collect();
        let items: Vec<OrderItem<'_>> = accepted
            .iter()
            .map(|(e, _)| OrderItem {
                domain: &e.domain,
                dependencies: &e.spec.manifest.dependencies,
                after_dependencies: &e.spec.manifest.after_dependencies,
            })
            .collect();
        let order = start_order(&items, &available);

        for (domain, err) in order.refused {
            let Some(&i) = by_domain.get(&domain) else {
                continue;
            };
            let (entry, outcome) = &accepted[i];
            tracing::error!(plugin = %domain, error = %err, "plugin not started");
            entry.set_lifecycle(Lifecycle::Failed, Some(err.to_string()));
            outcomes[*outcome].1 = Some(Err(err.into()));
        }
        let mut waiting: Vec<(usize, oneshot::Receiver<Result<(), RegistryError>>)> =
            Vec::with_capacity(order.order.len());
        for domain in &order.order {
            let i = *by_domain
                .get(domain)
                .expect("ordered domains come from the accepted list");
            let (entry, outcome) = &accepted[i];
            waiting.push((*outcome, self.spawn_start(Arc::clone(entry))));
        }
        Starting { outcomes, waiting }
    }
}

/// Plugins registered by one `load_all`, and their starts in progress.
struct Starting {
    outcomes: Vec<(String, Option<Result<(), RegistryError>>)>,
    waiting: Vec<(usize, oneshot::Receiver<Result<(), RegistryError>>)>,
}

impl Starting {
    /// Waits until every start has settled.
    async fn settled(self) -> StartReport {
        let Starting {
            mut outcomes,
            waiting,
        } = self;
        for (outcome, rx) in waiting {
            let (domain, slot) = &mut outcomes[outcome];
            let result = rx.await.unwrap_or_else(|_| {
                Err(RegistryError::Cancelled {
                    plugin: domain.clone(),
                })
            });
            *slot = Some(result);
        }
        // Compiling modules leaves free memory in the allocator's per-thread arenas; give it
        // back once the batch is loaded (issue 13 §8).
        // Off the async workers: trimming walks and locks every allocator arena.
        drop(tokio::task::spawn_blocking(crate::release_free_memory));
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
}

impl PluginRegistry {
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
            let reason = error_chain(&err);
            tracing::error!(plugin = %entry.domain, error = %reason, "plugin not started");
            entry.set_lifecycle(Lifecycle::Failed, Some(reason));
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
        let runtime_manifest = entry.spec.runtime_manifest();
        let mut attempt = 0;
        let last_error = loop {
            attempt += 1;
            entry.status.send_modify(|s| s.setup_attempts = attempt);
            let instance = match runtime.load(&runtime_manifest, &entry.spec.source).await {
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
                    if attempt >= attempts {
                        break err;
                    }
                    let delay = policy.backoff(attempt);
                    tracing::warn!(plugin = %entry.domain, attempt, retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX), error = %err, "setup failed; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        };
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
        let limits = entry.spec.effective_limits(&policy.limits);
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
        let host = Arc::new(PluginHost::new(PluginHostParts {
            domain: Arc::clone(&entry.domain),
            home: self.inner.home.clone(),
            grant: Grant::new(declared, entry.spec.grant.clone()),
            storage: Arc::clone(&self.inner.storage),
            storage_quota: limits.storage_bytes.unwrap_or(DEFAULT_STORAGE_BYTES),
            counters: Arc::clone(&entry.counters),
            subscriber: mailbox.id(),
            service_handler: Arc::new(PluginServiceHandler::new(
                Arc::clone(&entry.domain),
                control_tx.clone(),
                policy.call_timeout,
            )),
            limits,
            quarantine_over_budget: policy.quarantine_over_budget,
        }));
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
                limit_ms: u64::try_from(policy.setup_timeout.as_millis()).unwrap_or(u64::MAX),
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
        let lock = self.lifecycle_lock(domain);
        let _serialized = lock.lock().await;
        self.unload_locked(domain).await
    }

    /// [`PluginRegistry::unload`] for a caller holding the domain's lifecycle lock.
    async fn unload_locked(&self, domain: &str) -> Result<(), RegistryError> {
        let entry = self.stop(domain).await?;
        self.inner
            .plugins
            .remove_if(domain, |_, e| Arc::ptr_eq(e, &entry));
        lock(&self.inner.started).retain(|d| d != domain);
        // What the plugin held (its instance, its stored data's copy in memory, what compiling
        // it left in the allocator) goes back to the system (issue 13 §8).
        drop(entry);
        self.inner.storage.release(domain);
        for runtime in &self.inner.runtimes {
            runtime.release_unused();
        }
        // Off the async workers: trimming walks and locks every allocator arena.
        drop(tokio::task::spawn_blocking(crate::release_free_memory));
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
        let lock = self.lifecycle_lock(domain);
        let _serialized = lock.lock().await;
        let spec = self
            .inner
            .plugins
            .get(domain)
            .map(|e| e.spec.clone())
            .ok_or_else(|| RegistryError::NotFound {
                domain: domain.to_owned(),
            })?;
        self.unload_locked(domain).await?;
        self.load_locked(spec).await
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
        let lock = self.lifecycle_lock(&domain);
        let _serialized = lock.lock().await;
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
            .load(&spec.runtime_manifest(), &spec.source)
            .await
            .map_err(|source| RegistryError::Load {
                plugin: domain.clone(),
                source,
            })?;
        prepared.unload();
        self.unload_locked(&domain).await?;
        match self.load_locked(spec).await {
            Ok(info) => {
                tracing::info!(plugin = %domain, version = %info.manifest.version, "plugin replaced");
                Ok(info)
            }
            Err(err) => {
                tracing::error!(plugin = %domain, error = %err, "new version failed; restarting the previous one");
                let _ = self.unload_locked(&domain).await;
                if let Err(restart) = self.load_locked(old).await {
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
