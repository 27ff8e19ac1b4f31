//! HomeCore's plugin system.
#![forbid(unsafe_code)]

mod context;
mod dispatcher;
mod in_process;
mod limits;
mod manifest;
mod permissions;
mod plugin;
mod registry;
mod runtime;
mod start_order;
mod storage;
#[cfg(feature = "wasmtime")]
pub mod wasm;

pub use crate::context::{
    HostAction, HostError, LOG_BURST, LOG_LINES_PER_SECOND, LogLevel, MAX_LOG_LEN, MAX_TIMERS, PluginContext,
};
pub use crate::in_process::*;
pub use crate::limits::*;
pub use crate::manifest::*;
pub use crate::permissions::*;
pub use crate::plugin::*;
pub use crate::registry::{
    HostPolicy, Lifecycle, PluginHealth, PluginInfo, PluginRegistry, PluginSpec, PluginStats, RegistryBuilder,
    RegistryError, StartReport,
};
pub use crate::runtime::*;
pub use crate::start_order::*;
pub use crate::storage::*;
#[cfg(feature = "wasmtime")]
pub use crate::wasm::{WasmtimeConfig, WasmtimeError, WasmtimeRuntime};
