//! Host-wide policy: caps on what manifests ask for, and how failures are handled.

use std::time::Duration;

use crate::ResourceLimits;

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
    /// How long a plugin may keep making more than its budget allows (state writes, events,
    /// service calls, timers: [`crate::Emission`]) before it is quarantined. A second without a
    /// refusal ends the streak.
    pub quarantine_over_budget: Duration,
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
            // A manifest may ask for less than these, never more: without a cap here, a package
            // asking for `burst_seconds: 4294967295` would switch its own budget off.
            limits: ResourceLimits {
                mailbox_capacity: Some(65_536),
                storage_bytes: Some(64 << 20),
                subscriptions: Some(crate::DEFAULT_SUBSCRIPTIONS),
                state_writes_per_second: Some(crate::DEFAULT_STATE_WRITES_PER_SECOND),
                events_per_second: Some(crate::DEFAULT_EVENTS_PER_SECOND),
                service_calls_per_second: Some(crate::DEFAULT_SERVICE_CALLS_PER_SECOND),
                timers_per_second: Some(crate::DEFAULT_TIMERS_PER_SECOND),
                burst_seconds: Some(crate::DEFAULT_BURST_SECONDS),
                ..ResourceLimits::default()
            },
            default_mailbox_capacity: 1024,
            setup_attempts: 4,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            quarantine_after: 5,
            quarantine_over_budget: Duration::from_secs(10),
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
