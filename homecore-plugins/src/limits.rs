//! Resource limits a plugin asks for, capped by host policy.

use serde::{Deserialize, Serialize};

/// Resource limits, as the `homecore.limits` section of a manifest. `None` means "the host's
/// default"; the host caps every value by its own policy ([`ResourceLimits::capped_by`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceLimits {
    /// Linear memory, in bytes (WASM plugins).
    pub memory_bytes: Option<u64>,
    /// Table elements (WASM plugins).
    pub table_elements: Option<u64>,
    /// Instructions (fuel) per call (WASM plugins).
    pub fuel_per_call: Option<u64>,
    /// Wall-clock time per call, in milliseconds.
    pub call_timeout_ms: Option<u64>,
    /// Host calls a plugin may make per call into it.
    pub host_calls_per_call: Option<u64>,
    /// Events that may wait in the plugin's mailbox.
    pub mailbox_capacity: Option<u32>,
    /// Bytes of key-value storage.
    pub storage_bytes: Option<u64>,
    /// Subscriptions (entity ids, globs and event types) the plugin may hold at once.
    pub subscriptions: Option<u32>,
    /// State writes and removals per second, on average (see [`ResourceLimits::burst_seconds`]).
    pub state_writes_per_second: Option<u32>,
    /// Events fired per second, on average.
    pub events_per_second: Option<u32>,
    /// Service calls per second, on average.
    pub service_calls_per_second: Option<u32>,
    /// Timers started per second, on average (each start is one firing to come).
    pub timers_per_second: Option<u32>,
    /// How many seconds' worth of each rate a plugin may spend at once: the burst of a token
    /// bucket whose refill is the rate.
    pub burst_seconds: Option<u32>,
}

impl ResourceLimits {
    /// Each limit the smaller of `self` and `policy`; a limit missing on one side takes the
    /// other's.
    #[must_use]
    pub fn capped_by(&self, policy: &ResourceLimits) -> ResourceLimits {
        fn min<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        ResourceLimits {
            memory_bytes: min(self.memory_bytes, policy.memory_bytes),
            table_elements: min(self.table_elements, policy.table_elements),
            fuel_per_call: min(self.fuel_per_call, policy.fuel_per_call),
            call_timeout_ms: min(self.call_timeout_ms, policy.call_timeout_ms),
            host_calls_per_call: min(self.host_calls_per_call, policy.host_calls_per_call),
            mailbox_capacity: min(self.mailbox_capacity, policy.mailbox_capacity),
            storage_bytes: min(self.storage_bytes, policy.storage_bytes),
            subscriptions: min(self.subscriptions, policy.subscriptions),
            state_writes_per_second: min(
                self.state_writes_per_second,
                policy.state_writes_per_second,
            ),
            events_per_second: min(self.events_per_second, policy.events_per_second),
            service_calls_per_second: min(
                self.service_calls_per_second,
                policy.service_calls_per_second,
            ),
            timers_per_second: min(self.timers_per_second, policy.timers_per_second),
            burst_seconds: min(self.burst_seconds, policy.burst_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_caps_requests_and_fills_gaps() {
        let asked = ResourceLimits {
            memory_bytes: Some(1 << 30),
            mailbox_capacity: Some(16),
            ..ResourceLimits::default()
        };
        let policy = ResourceLimits {
            memory_bytes: Some(64 << 20),
            fuel_per_call: Some(1_000_000),
            mailbox_capacity: Some(1024),
            ..ResourceLimits::default()
        };
        let eff = asked.capped_by(&policy);
        assert_eq!(eff.memory_bytes, Some(64 << 20));
        assert_eq!(eff.fuel_per_call, Some(1_000_000));
        assert_eq!(eff.mailbox_capacity, Some(16));
        assert_eq!(eff.storage_bytes, None);
    }
}
