//! What the registry reports about one plugin: lifecycle, health, counters, latency.

use std::sync::Arc;
use std::time::Duration;

use crate::{CallLatency, Lifecycle, PluginManifest, RuntimeKind};

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
    /// State writes, events, service calls and timers refused because the plugin was over
    /// its budget ([`crate::Emission`]).
    pub quota_exceeded: u64,
    /// WASM calls stopped for running out of fuel ([`crate::GuestFailure::OutOfFuel`]).
    pub fuel_exhausted: u64,
    /// WASM calls stopped at their wall-clock deadline ([`crate::GuestFailure::Deadline`], or a
    /// deadline passing while the guest waited in a host import).
    pub deadlines_missed: u64,
    /// WASM calls or re-instantiations stopped at the memory limit
    /// ([`crate::GuestFailure::MemoryLimit`]).
    pub memory_limit_hits: u64,
    /// WASM calls or re-instantiations stopped at the table limit
    /// ([`crate::GuestFailure::TableLimit`]).
    pub table_limit_hits: u64,
    /// WASM calls ended by any other trap ([`crate::GuestFailure::Trap`]).
    pub traps: u64,
}

/// A snapshot of one plugin, as [`PluginRegistry::list`](crate::PluginRegistry::list) returns it.
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
