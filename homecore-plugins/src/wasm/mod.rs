//! The Wasmtime runtime: sandboxed third-party plugins behind host ABI v1 (feature `wasmtime`).
//!
//! - One [`wasmtime::Engine`] per [`WasmtimeRuntime`], shared by every plugin; one `Store` per
//!   plugin instance; one `Linker` per runtime; one `InstancePre` per distinct module, so
//!   loading the same module again compiles and links nothing. Compiled artifacts are cached
//!   on disk when a cache directory is configured (keyed by the module's SHA-256 and the
//!   engine's settings, memory-mapped back without copying), so a restart does not recompile;
//!   see docs/adr/0012-artifact-cache.md for the crate's one `unsafe` block that this takes.
//! - Limits from the manifest, capped by the runtime's policy: linear memory and table
//!   elements (a `ResourceLimiter`), one instance, instructions per call (fuel) and wall-clock
//!   time per call (epoch deadline driven by a ticker thread). All are reset before every call.
//!   A looping guest yields to the async runtime at every epoch tick, so it never holds a tokio
//!   worker for more than one tick, and is stopped at its deadline.
//! - A trap, fuel exhaustion, deadline or limit hit fails that call with
//!   [`crate::PluginError::Runtime`] carrying a typed [`crate::GuestFailure`] (classified from
//!   the store's limiter record and `wasmtime::Trap` codes, never from message text) and is
//!   counted by kind in [`crate::PluginStats`]; the instance is then treated as poisoned
//!   and re-instantiated (and set up again) before the next call. The registry quarantines a
//!   plugin after repeated failures.
//! - Every host import checks pointers and lengths with checked arithmetic against the current
//!   memory before touching it, caps payloads at the ABI's limits, answers bad input with a
//!   status code, checks the plugin's grant (reads too) through [`crate::PluginContext`], and
//!   counts against a per-call quota of host calls and bytes.
//!
//! See docs/adr/0005-host-abi-v1.md and docs/abi-v1.md.

#[cfg(unix)]
mod artifact_cache;
mod config;
mod event_cache;
mod guest_memory;
mod host_imports;
mod instance;
mod limiter;
mod module_check;
mod runtime;
mod store_data;

pub use self::config::*;
pub use self::runtime::*;
