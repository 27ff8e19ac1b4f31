//! Runtime settings: host policy caps, defaults, cache and allocator choice.

use std::path::PathBuf;
use std::time::Duration;

use crate::ResourceLimits;

/// Settings of a [`crate::WasmtimeRuntime`].
#[derive(Debug, Clone)]
pub struct WasmtimeConfig {
    /// Where compiled modules are cached across restarts; `None` disables the disk cache. The
    /// directory is created with mode 0700 and must belong to this user; if it cannot be used
    /// the runtime logs why and compiles every module (docs/adr/0012-artifact-cache.md).
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the cached compiled modules, bytes (512 MiB by default, as Wasmtime's own
    /// cache). The least recently used ones are removed when the runtime opens the cache and
    /// whenever a new one is stored.
    pub cache_max_bytes: u64,
    /// Use Wasmtime's pooling allocator with this many instance slots (copy-on-write memory
    /// initialisation is on either way). `None` (the default) uses on-demand allocation.
    ///
    /// Pooling pays off with hundreds of plugins: about a third less memory per idle instance
    /// (48 instead of 72 KiB RSS) and instantiation three times as fast, for 7–11 ms and about 4 GiB of address space
    /// per slot reserved when the runtime is created, a hard cap of `slots` live instances, and
    /// Wasmtime's pool limits (one table of at most 20,000 elements per module). Size it to the
    /// plugins expected plus headroom; docs/adr/0006-wasmtime-runtime.md has the measurements.
    pub pooling_slots: Option<u32>,
    /// Epoch tick: the granularity of wall-clock deadlines and how often a running guest
    /// yields to the async runtime.
    pub epoch_tick: Duration,
    /// Limits used when a manifest sets none.
    pub defaults: ResourceLimits,
    /// Upper bounds for every plugin, whatever its manifest asks.
    pub policy: ResourceLimits,
    /// Bytes the host may write on a plugin's behalf (state writes, storage, events, logs) in
    /// one call into the plugin.
    pub bytes_per_call: u64,
    /// Largest guest stack, bytes (deep recursion traps beyond it).
    pub max_wasm_stack: usize,
    /// Largest module accepted, bytes; a larger one is refused before it is parsed for
    /// compilation ([`crate::LoadError::ModuleTooLarge`]).
    pub max_module_bytes: usize,
    /// Largest function body accepted, bytes; checked before compiling
    /// ([`crate::LoadError::FunctionTooLarge`]). Compile time grows with a function's size.
    pub max_function_body_bytes: usize,
    /// Longest a module may take to compile (`None`: no limit). Compilation runs on a blocking
    /// thread; past the budget the load fails with [`crate::LoadError::CompileTimeout`] and the
    /// compilation's result, when it finishes, is dropped.
    pub compile_budget: Option<Duration>,
}

impl Default for WasmtimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            cache_max_bytes: 512 << 20,
            pooling_slots: None,
            epoch_tick: Duration::from_millis(5),
            defaults: ResourceLimits {
                memory_bytes: Some(32 << 20),
                table_elements: Some(10_000),
                fuel_per_call: Some(50_000_000),
                call_timeout_ms: Some(500),
                host_calls_per_call: Some(10_000),
                ..ResourceLimits::default()
            },
            policy: ResourceLimits {
                memory_bytes: Some(256 << 20),
                table_elements: Some(100_000),
                fuel_per_call: Some(1_000_000_000),
                call_timeout_ms: Some(10_000),
                host_calls_per_call: Some(100_000),
                ..ResourceLimits::default()
            },
            bytes_per_call: 16 << 20,
            max_wasm_stack: 512 << 10,
            max_module_bytes: 64 << 20,
            max_function_body_bytes: 4 << 20,
            compile_budget: Some(Duration::from_secs(60)),
        }
    }
}

/// The limits one plugin instance runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EffectiveLimits {
    pub(crate) memory_bytes: usize,
    pub(crate) table_elements: usize,
    pub(crate) fuel_per_call: u64,
    pub(crate) call_timeout: Duration,
    pub(crate) host_calls_per_call: u64,
    pub(crate) bytes_per_call: u64,
}

impl WasmtimeConfig {
    /// The manifest's limits, filled from the defaults and capped by the policy.
    pub(crate) fn effective(&self, asked: &ResourceLimits) -> EffectiveLimits {
        let filled = ResourceLimits {
            memory_bytes: asked.memory_bytes.or(self.defaults.memory_bytes),
            table_elements: asked.table_elements.or(self.defaults.table_elements),
            fuel_per_call: asked.fuel_per_call.or(self.defaults.fuel_per_call),
            call_timeout_ms: asked.call_timeout_ms.or(self.defaults.call_timeout_ms),
            host_calls_per_call: asked
                .host_calls_per_call
                .or(self.defaults.host_calls_per_call),
            ..*asked
        };
        let l = filled.capped_by(&self.policy);
        let as_usize = |v: Option<u64>, fallback: usize| {
            v.map_or(fallback, |v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        EffectiveLimits {
            memory_bytes: as_usize(l.memory_bytes, 32 << 20),
            table_elements: as_usize(l.table_elements, 10_000),
            fuel_per_call: l.fuel_per_call.unwrap_or(50_000_000),
            call_timeout: Duration::from_millis(l.call_timeout_ms.unwrap_or(500)),
            host_calls_per_call: l.host_calls_per_call.unwrap_or(10_000),
            bytes_per_call: self.bytes_per_call,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_limits_are_filled_then_capped() {
        let config = WasmtimeConfig::default();
        let asked = ResourceLimits {
            memory_bytes: Some(1 << 40),
            fuel_per_call: Some(1000),
            ..ResourceLimits::default()
        };
        let l = config.effective(&asked);
        assert_eq!(l.memory_bytes, 256 << 20, "capped by policy");
        assert_eq!(l.fuel_per_call, 1000, "the manifest may ask for less");
        assert_eq!(
            l.call_timeout,
            Duration::from_millis(500),
            "default fills the gap"
        );
    }
}
