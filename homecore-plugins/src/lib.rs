//! HomeCore's plugin system: the contract plugins implement, the permission-checked door they
//! use, the runtimes that run them and the registry that supervises them.
//!
//! # Concepts
//!
//! - [`PluginManifest`]: a superset of Home Assistant's `manifest.json`. The `homecore`
//!   section declares the runtime (`native` | `wasm`), the host API requirement, the module,
//!   [`Permissions`] and [`ResourceLimits`]. Validation reports every problem with its path.
//! - [`HomeCorePlugin`]: what a plugin implements — `setup`, `teardown`, `on_state_changed`,
//!   and optionally `on_event`, `on_timer`, `call_service`.
//! - [`PluginContext`]: the plugin's only door to the home (states, services, events, logs,
//!   timers, key-value storage). Every call is checked against the plugin's [`Grant`]
//!   (declared ∩ granted); a denial is a typed [`HostError::Denied`], logged and counted.
//! - [`PluginRuntime`] / [`PluginInstance`]: an execution environment. [`InProcessRuntime`]
//!   runs compiled-in plugins and turns a panic into that call's error; `WasmtimeRuntime`
//!   (feature `wasmtime`) runs sandboxed WASM plugins behind the frozen host ABI v1. A failed
//!   guest call is a typed [`GuestFailure`] (fuel, deadline, memory or table limit, trap, …)
//!   inside [`PluginError::Runtime`], counted by kind in [`PluginStats`].
//! - [`PluginRegistry`]: loads plugins in dependency order, runs each in its own task behind a
//!   bounded mailbox, retries failed setups with backoff, quarantines plugins that keep failing,
//!   reloads and unloads them, and reports lifecycle, health and counters in [`PluginInfo`].
//! - Observability: every call into a plugin runs in a `plugin_call` tracing span (fields
//!   `plugin`, `hook`), is timed into a per-hook [`CallLatency`] histogram and logged as a
//!   warning past [`SLOW_CALL`]; [`PluginStats`] counts events, errors, denied host calls,
//!   WASM fuel, mailbox depth and drops, and quarantines. The server renders them as Prometheus
//!   metrics (docs/adr/0011-metrics-and-tracing.md).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use async_trait::async_trait;
//! use homecore::{Attributes, Context, Home, StateChanged};
//! use homecore_plugins::*;
//!
//! /// Mirrors every switch into a light of the same name.
//! struct Mirror;
//!
//! #[async_trait]
//! impl HomeCorePlugin for Mirror {
//!     async fn setup(&mut self, ctx: &PluginContext, _config: &serde_json::Value) -> Result<(), PluginError> {
//!         ctx.subscribe("switch.*")?;
//!         Ok(())
//!     }
//!
//!     async fn on_state_changed(&mut self, ctx: &PluginContext, event: &StateChanged) -> Result<(), PluginError> {
//!         if let Some(new) = &event.new_state {
//!             let light = format!("light.{}", event.entity_id.object_id()).parse().map_err(|e| PluginError::Host(HostError::EntityId(e)))?;
//!             ctx.set_state(&light, new.state(), Attributes::new())?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let manifest = PluginManifest::parse(r#"{
//!     "domain": "mirror", "name": "Mirror", "version": "1.0.0",
//!     "homecore": {"runtime": "native", "api_version": "^1",
//!                  "permissions": {"states_read": ["switch.*"], "states_write": ["light.*"]}}
//! }"#)?;
//! let home = Home::new();
//! let registry = PluginRegistry::new(home.clone());
//! registry.load(PluginSpec::new(manifest, PluginSource::native(|| Mirror))).await?;
//!
//! home.states.set(&"switch.porch".parse()?, "on", Attributes::new(), &Context::new())?;
//! tokio::task::yield_now().await;
//! # for _ in 0..10 { tokio::task::yield_now().await; }
//! assert_eq!(home.states.get_str("light.porch").map(|s| s.state().to_owned()), Some("on".into()));
//! assert_eq!(registry.get("mirror").map(|p| p.lifecycle), Some(Lifecycle::Running));
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! - `wasmtime` (off by default): `WasmtimeRuntime` (module `wasm`) and its configuration. Without it
//!   the crate builds and tests with no WASM engine.
// No unsafe code but one block: the compiled-module cache's deserialization, fenced in
// wasm/artifact_cache.rs (docs/adr/0012-artifact-cache.md).
#![deny(unsafe_code)]

mod budget;
mod call_stats;
mod context;
mod control;
mod dispatcher;
mod entry;
mod guest_failure;
mod host;
mod host_error;
mod in_process;
mod info;
mod lifecycle;
mod limits;
mod manifest;
mod memory_trim;
mod permissions;
mod plugin;
mod policy;
mod registry;
mod registry_error;
mod runtime;
mod spec;
mod start_order;
mod start_report;
mod storage;
mod sync;
#[cfg(feature = "wasmtime")]
pub mod wasm;

pub use crate::budget::{
    DEFAULT_BURST_SECONDS, DEFAULT_EVENTS_PER_SECOND, DEFAULT_SERVICE_CALLS_PER_SECOND,
    DEFAULT_STATE_WRITES_PER_SECOND, DEFAULT_SUBSCRIPTIONS, DEFAULT_TIMERS_PER_SECOND, Emission,
    MIN_TIMER_DELAY,
};
pub use crate::call_stats::{CallLatency, LATENCY_BUCKETS, LatencySnapshot, PluginHook, SLOW_CALL};
pub use crate::context::{
    LogLevel, MAX_LOG_LEN, MAX_TIMERS, PluginContext, TIMER_STARTS_NEW_CHAIN,
};
pub use crate::guest_failure::{AbiViolation, GuestFailure, TrapCode};
pub use crate::host::{LOG_BURST, LOG_LINES_PER_SECOND};
pub use crate::host_error::{DenyReason, HostAction, HostError};
pub use crate::in_process::*;
pub use crate::info::{PluginHealth, PluginInfo, PluginStats};
pub use crate::lifecycle::Lifecycle;
pub use crate::limits::*;
pub use crate::manifest::*;
pub use crate::memory_trim::release_free_memory;
pub use crate::permissions::*;
pub use crate::plugin::*;
pub use crate::policy::HostPolicy;
pub use crate::registry::{PluginRegistry, RegistryBuilder};
pub use crate::registry_error::RegistryError;
pub use crate::runtime::*;
pub use crate::spec::PluginSpec;
pub use crate::start_order::*;
pub use crate::start_report::StartReport;
pub use crate::storage::*;
#[cfg(feature = "wasmtime")]
pub use crate::wasm::{WasmtimeConfig, WasmtimeError, WasmtimeRuntime};
