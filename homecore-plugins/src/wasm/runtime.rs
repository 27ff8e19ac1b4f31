//! The Wasmtime runtime: engine, linker, module memo and the epoch ticker.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use wasmtime::{Engine, InstancePre, Linker, Module};

use crate::sync::lock;
#[cfg(unix)]
use crate::wasm::artifact_cache::{self, ArtifactCache};
use crate::wasm::config::WasmtimeConfig;
use crate::wasm::event_cache::EventCache;
use crate::wasm::host_imports;
use crate::wasm::instance::WasmInstance;
use crate::wasm::module_check;
use crate::wasm::store_data::StoreData;
use crate::{LoadError, PluginInstance, PluginManifest, PluginRuntime, PluginSource, RuntimeKind};

/// Why the runtime could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WasmtimeError {
    /// Wasmtime refused the engine configuration.
    #[error("wasmtime engine configuration refused: {reason}")]
    Engine {
        /// What Wasmtime reported.
        reason: String,
    },
}

/// A module's bytes and its linked module. Instances hold it (`Arc`), the memo only weakly,
/// so a module no instance uses and no held source remembers is freed.
pub(crate) struct Linked {
    /// The module's bytes (their allocation identifies a recent source).
    bytes: Arc<[u8]>,
    /// The compiled, linked module.
    pub(crate) pre: InstancePre<StoreData>,
}

/// State shared by the runtime and every instance it made.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: WasmtimeConfig,
    pub(crate) events: EventCache,
    linker: Linker<StoreData>,
    /// Compiled modules on disk (`WasmtimeConfig::cache_dir`), when usable.
    #[cfg(unix)]
    artifacts: Option<Arc<ArtifactCache>>,
    /// Linked modules by a cheap fingerprint of their bytes; a hit is confirmed by comparing
    /// the bytes (so a fingerprint collision costs a comparison, never a wrong module). Held
    /// weakly: live instances and `recent_sources` keep a module; dead entries are pruned
    /// whenever a module is added.
    modules: Mutex<HashMap<u64, Vec<Weak<Linked>>>>,
    /// The last sources loaded, by allocation: loading the same `Arc` again skips the ABI scan
    /// and the hash. Holding the `Arc` keeps its address from being reused, and keeps up to
    /// [`RECENT_SOURCES`] modules linked while someone else still holds the source they were
    /// loaded from, by the caller's allocation (a
    /// plugin's spec, kept by the registry while it is loaded and by a reload while it
    /// restarts it), so a reload finds its module with no instance left. A module whose source
    /// nobody else holds is forgotten ([`Shared::forget_unused`]; issue 13 §8).
    recent_sources: Mutex<Vec<RecentSource>>,
    compiled: AtomicU64,
    from_disk: AtomicU64,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Runs WASM plugins with Wasmtime behind host ABI v1. Cheap to clone; clones share the
/// engine, the compiled modules and the ticker.
///
/// ```no_run
/// # async fn demo(home: homecore::Home) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use homecore_plugins::{PluginRegistry, WasmtimeConfig, WasmtimeRuntime};
/// let wasm = WasmtimeRuntime::new(WasmtimeConfig::default())?;
/// let registry = PluginRegistry::builder(home).runtime(Arc::new(wasm)).build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WasmtimeRuntime {
    shared: Arc<Shared>,
}

impl fmt::Debug for WasmtimeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WasmtimeRuntime")
            .field("config", &self.shared.config)
            .field("compiled", &self.compiled_modules())
            .finish_non_exhaustive()
    }
}

impl WasmtimeRuntime {
    /// A runtime with its own engine and epoch ticker thread. A cache directory that cannot
    /// be created or is not private to this user is logged, and the runtime runs without it.
    ///
    /// # Errors
    /// [`WasmtimeError::Engine`] when Wasmtime refuses the configuration.
    pub fn new(config: WasmtimeConfig) -> Result<Self, WasmtimeError> {
        let mut c = wasmtime::Config::new();
        c.consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .memory_init_cow(true);
        if let Some(slots) = config.pooling_slots {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_core_instances(slots)
                .total_memories(slots)
                .total_tables(slots)
                .total_stacks(slots);
            if let Some(max) = config.policy.memory_bytes {
                pool.max_memory_size(usize::try_from(max).unwrap_or(usize::MAX));
            }
            c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&c).map_err(|e| WasmtimeError::Engine {
            reason: format!("{e:#}"),
        })?;
        #[cfg(unix)]
        let artifacts = config.cache_dir.as_deref().and_then(|dir| {
            ArtifactCache::open(dir, &engine)
                .map(|cache| cache.with_max_bytes(config.cache_max_bytes))
                .inspect(|cache| {
                    cache.prune(None);
                })
                .map(Arc::new)
                .inspect_err(|e| {
                    tracing::warn!(
                        path = %dir.display(),
                        error = %e,
                        "compiled-module cache directory unusable; every module will be compiled"
                    );
                })
                .ok()
        });
        #[cfg(not(unix))]
        if let Some(dir) = &config.cache_dir {
            tracing::warn!(
                path = %dir.display(),
                "no compiled-module cache on this platform; every module will be compiled"
            );
        }
        let mut linker = Linker::new(&engine);
        host_imports::define(&mut linker).map_err(|e| WasmtimeError::Engine {
            reason: format!("{e:#}"),
        })?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), config.epoch_tick, Arc::clone(&ticker_stop));
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                config,
                events: EventCache::default(),
                linker,
                #[cfg(unix)]
                artifacts,
                modules: Mutex::new(HashMap::new()),
                recent_sources: Mutex::new(Vec::new()),
                compiled: AtomicU64::new(0),
                from_disk: AtomicU64::new(0),
                ticker_stop,
            }),
        })
    }

    /// The engine (shared by every plugin of this runtime).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// How many distinct modules this runtime compiled or loaded from the disk cache; loading
    /// the same bytes again reuses the linked module.
    #[must_use]
    pub fn compiled_modules(&self) -> u64 {
        self.shared.compiled.load(Ordering::Relaxed)
    }

    /// How many linked modules the runtime still holds in memory: those live instances use
    /// and the last few loaded. Modules of unloaded plugins are dropped once neither holds them.
    #[must_use]
    pub fn memoized_modules(&self) -> usize {
        lock(&self.shared.modules)
            .values()
            .flatten()
            .filter(|linked| linked.strong_count() > 0)
            .count()
    }

    /// How many of [`Self::compiled_modules`] came from the disk cache
    /// ([`WasmtimeConfig::cache_dir`]) instead of the compiler.
    #[must_use]
    pub fn modules_from_disk_cache(&self) -> u64 {
        self.shared.from_disk.load(Ordering::Relaxed)
    }

    /// Checks, compiles (or finds in the cache) and links a module. The same bytes are linked
    /// once per runtime.
    ///
    /// # Errors
    /// A [`LoadError`] naming the ABI version, symbol or validation failure.
    pub async fn prepare(&self, bytes: Arc<[u8]>) -> Result<(), LoadError> {
        self.instance_pre(bytes, None).await.map(drop)
    }

    /// `sha256`, when given, is the SHA-256 of `bytes` (computed by whoever verified them).
    async fn instance_pre(
        &self,
        bytes: Arc<[u8]>,
        sha256: Option<[u8; 32]>,
    ) -> Result<Arc<Linked>, LoadError> {
        if let Some(linked) = self.recent_source(&bytes) {
            return Ok(linked);
        }
        let source = Arc::clone(&bytes);
        module_check::abi_version(&bytes)?;
        let fingerprint = fingerprint(&bytes);
        let known = lock(&self.shared.modules)
            .get(&fingerprint)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .find(|linked| *linked.bytes == *bytes);
        if let Some(linked) = known {
            self.remember_source(&source, &linked);
            return Ok(linked);
        }
        let config = &self.shared.config;
        module_check::check_sizes(
            &bytes,
            config.max_module_bytes,
            config.max_function_body_bytes,
        )?;
        let shared = Arc::clone(&self.shared);
        let compile_source = Arc::clone(&bytes);
        // Hashing, the disk and compilation block: keep them off the async workers, within the
        // compile budget. Past it the blocking compilation may still finish; its result is
        // dropped with the task's handle.
        let compiling =
            tokio::task::spawn_blocking(move || shared.compile_or_load(&compile_source, sha256));
        let joined = match config.compile_budget {
            Some(budget) => tokio::time::timeout(budget, compiling).await.map_err(|_| {
                LoadError::CompileTimeout {
                    budget_ms: u64::try_from(budget.as_millis()).unwrap_or(u64::MAX),
                }
            })?,
            None => compiling.await,
        };
        let (module, from_disk) = joined.map_err(|e| LoadError::InvalidModule {
            reason: format!("compilation task failed: {e}"),
        })??;
        module_check::check_imports_and_exports(&module)?;
        let pre =
            self.shared
                .linker
                .instantiate_pre(&module)
                .map_err(|e| LoadError::InvalidModule {
                    reason: format!("{e:#}"),
                })?;
        self.shared.compiled.fetch_add(1, Ordering::Relaxed);
        if from_disk {
            self.shared.from_disk.fetch_add(1, Ordering::Relaxed);
        }
        let linked = Arc::new(Linked { bytes, pre });
        {
            let mut modules = lock(&self.shared.modules);
            modules.retain(|_, same| {
                same.retain(|linked| linked.strong_count() > 0);
                !same.is_empty()
            });
            modules
                .entry(fingerprint)
                .or_default()
                .push(Arc::downgrade(&linked));
        }
        self.remember_source(&source, &linked);
        Ok(linked)
    }

    /// The linked module of a source loaded before from this very allocation.
    fn recent_source(&self, bytes: &Arc<[u8]>) -> Option<Arc<Linked>> {
        lock(&self.shared.recent_sources)
            .iter()
            .find(|recent| Arc::ptr_eq(&recent.source, bytes))
            .map(|recent| Arc::clone(&recent.linked))
    }

    /// Remembers that `source` (the caller's allocation) links to `linked`.
    fn remember_source(&self, source: &Arc<[u8]>, linked: &Arc<Linked>) {
        let mut recent = lock(&self.shared.recent_sources);
        Shared::forget_unused_in(&mut recent);
        if let Some(at) = recent.iter().position(|r| Arc::ptr_eq(&r.source, source)) {
            // Already remembered: move it to the most recent end.
            let again = recent.remove(at);
            recent.push(again);
            return;
        }
        if recent.len() == RECENT_SOURCES {
            recent.remove(0);
        }
        recent.push(RecentSource {
            source: Arc::clone(source),
            linked: Arc::clone(linked),
        });
    }
}

impl Shared {
    /// Forgets the recent sources nobody else holds (see `recent_sources`).
    pub(crate) fn forget_unused(&self) {
        Self::forget_unused_in(&mut lock(&self.recent_sources));
    }

    fn forget_unused_in(recent: &mut Vec<RecentSource>) {
        recent.retain(RecentSource::held_elsewhere);
    }

    /// The compiled module: from the disk cache when it holds it (`true`), else compiled (and
    /// stored there).
    fn compile_or_load(
        &self,
        bytes: &[u8],
        sha256: Option<[u8; 32]>,
    ) -> Result<(Module, bool), LoadError> {
        let compile = || {
            Module::new(&self.engine, bytes).map_err(|e| LoadError::InvalidModule {
                reason: format!("{e:#}"),
            })
        };
        #[cfg(unix)]
        if let Some(cache) = &self.artifacts {
            let digest = sha256.unwrap_or_else(|| artifact_cache::sha256(bytes));
            debug_assert_eq!(
                digest,
                artifact_cache::sha256(bytes),
                "the SHA-256 given with a module is of its bytes"
            );
            let key = cache.key(&digest);
            if let Some(module) = cache.load(&self.engine, &key) {
                return Ok((module, true));
            }
            let module = compile()?;
            cache.store(&key, &module);
            return Ok((module, false));
        }
        let _ = sha256;
        compile().map(|module| (module, false))
    }
}

/// A fingerprint of a module: its length and its first and last 4 KiB. Cheap whatever the
/// module's size (a SHA-256 of the whole module took about 1 ms per load on a CPU without SHA
/// instructions); identity is decided by comparing the bytes.
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    const EDGE: usize = 4096;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.len().hash(&mut hasher);
    bytes[..bytes.len().min(EDGE)].hash(&mut hasher);
    bytes[bytes.len().saturating_sub(EDGE)..].hash(&mut hasher);
    hasher.finish()
}

/// How many source allocations the runtime remembers at most. Sources nobody else holds are
/// forgotten first (`forget_unused`), so in practice the list holds the sources of the plugins
/// loaded now; the bound only caps a caller holding thousands of sources.
const RECENT_SOURCES: usize = 4096;

/// A source allocation a caller loaded, and the module it links to.
struct RecentSource {
    source: Arc<[u8]>,
    linked: Arc<Linked>,
}

impl RecentSource {
    /// Whether anyone but this entry (and the module it links to, when that module was
    /// linked from this very allocation) still holds the source: a loaded plugin's spec, a
    /// reload in progress.
    fn held_elsewhere(&self) -> bool {
        let own = 1 + usize::from(Arc::ptr_eq(&self.source, &self.linked.bytes));
        Arc::strong_count(&self.source) > own
    }
}

fn spawn_ticker(engine: Engine, tick: std::time::Duration, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("homecore-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        });
    if let Err(err) = spawned {
        // Without a ticker, deadlines cannot fire; fuel still bounds every call.
        tracing::error!(error = %err, "could not start the epoch ticker; wall-clock deadlines are off");
    }
}

#[async_trait]
impl PluginRuntime for WasmtimeRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Wasm
    }

    fn release_unused(&self) {
        self.shared.forget_unused();
    }

    async fn load(
        &self,
        manifest: &PluginManifest,
        source: &PluginSource,
    ) -> Result<Box<dyn PluginInstance>, LoadError> {
        let (bytes, sha256) = match source {
            PluginSource::Wasm(bytes) => (bytes, None),
            PluginSource::VerifiedWasm { module, sha256 } => (module, Some(*sha256)),
            _ => {
                return Err(LoadError::WrongRuntime {
                    runtime: RuntimeKind::Wasm,
                    source_kind: source.kind(),
                });
            }
        };
        let linked = self.instance_pre(Arc::clone(bytes), sha256).await?;
        let asked = manifest
            .homecore
            .as_ref()
            .map(|h| h.limits)
            .unwrap_or_default();
        let limits = self.shared.config.effective(&asked);
        let instance = WasmInstance::new(Arc::clone(&self.shared), linked, limits).await?;
        Ok(Box::new(instance))
    }
}
