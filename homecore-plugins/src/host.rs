//! What the host keeps for one loaded plugin and shares with all its contexts: identity,
//! grant, storage, counters, timers and the log limiter.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homecore::{Context, Home, ServiceHandler, ServiceName, SubscriberId};

use crate::budget::{EmissionBudget, OverBudget, Rates, TokenBucket};
use crate::call_stats::LatencyHistograms;
use crate::sync::lock;
use crate::{DEFAULT_SUBSCRIPTIONS, Emission, Grant, PluginStorage, ResourceLimits};

/// Log lines a plugin may write per second on average …
pub const LOG_LINES_PER_SECOND: u32 = 50;

/// … and in one burst.
pub const LOG_BURST: u32 = 200;

/// A plugin's counters, shared with the registry; plain relaxed atomics, read at scrape time
/// (docs/adr/0011-metrics-and-tracing.md).
#[derive(Debug, Default)]
pub(crate) struct PluginCounters {
    pub(crate) events: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) host_calls: AtomicU64,
    pub(crate) logs_dropped: AtomicU64,
    /// WASM fuel (instructions) consumed by calls into the plugin.
    pub(crate) fuel_used: AtomicU64,
    /// Times the plugin was quarantined.
    pub(crate) quarantines: AtomicU64,
    /// State writes, events, service calls and timers refused by the plugin's budget.
    pub(crate) quota_exceeded: AtomicU64,
    /// Guest calls stopped for running out of fuel.
    pub(crate) fuel_exhausted: AtomicU64,
    /// Guest calls stopped at their wall-clock deadline.
    pub(crate) deadlines_missed: AtomicU64,
    /// Guest calls (or instantiations) stopped at the memory limit.
    pub(crate) memory_limit_hits: AtomicU64,
    /// Guest calls (or instantiations) stopped at the table limit.
    pub(crate) table_limit_hits: AtomicU64,
    /// Guest calls ended by any other trap.
    pub(crate) traps: AtomicU64,
    /// The capacity of the running plugin's mailbox.
    pub(crate) mailbox_capacity: AtomicU64,
    /// Call latency per hook.
    pub(crate) latency: LatencyHistograms,
}

/// The token bucket limiting one plugin's log lines.
fn log_limiter() -> TokenBucket {
    TokenBucket::new(LOG_LINES_PER_SECOND, LOG_BURST, Instant::now())
}

/// What the host knows of one loaded plugin; shared by all its [`PluginContext`]s.
pub(crate) struct PluginHost {
    pub(crate) domain: Arc<str>,
    pub(crate) home: Home,
    pub(crate) grant: Grant,
    pub(crate) storage: Arc<dyn PluginStorage>,
    pub(crate) storage_quota: u64,
    pub(crate) counters: Arc<PluginCounters>,
    pub(crate) subscriber: SubscriberId,
    pub(crate) service_handler: Arc<dyn ServiceHandler>,
    pub(crate) own_services: Mutex<Vec<ServiceName>>,
    pub(crate) timers: Mutex<Timers>,
    log_limiter: Mutex<TokenBucket>,
    budget: Mutex<EmissionBudget>,
    /// Subscriptions (entity and event-type filters) the plugin may hold.
    pub(crate) max_subscriptions: usize,
    /// How long a plugin may stay over budget before it is quarantined.
    quarantine_over_budget: Duration,
    /// Set once the plugin has been over budget for `quarantine_over_budget`: the reason its
    /// task quarantines it with.
    quarantine_request: Mutex<Option<String>>,
}

/// A plugin's pending timers: token → (deadline, the context that started it).
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) pending: HashMap<u64, (tokio::time::Instant, Context)>,
}

impl Timers {
    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.pending.values().map(|(at, _)| *at).min()
    }

    /// Removes and returns the timers due at `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: tokio::time::Instant) -> Vec<(u64, Context)> {
        let mut due: Vec<(tokio::time::Instant, u64)> = self
            .pending
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(token, (at, _))| (*at, *token))
            .collect();
        due.sort_unstable();
        due.into_iter()
            .filter_map(|(_, token)| self.pending.remove(&token).map(|(_, cause)| (token, cause)))
            .collect()
    }
}

/// Everything [`PluginHost::new`] needs, by name.
pub(crate) struct PluginHostParts {
    /// The plugin's domain.
    pub(crate) domain: Arc<str>,
    /// The home it acts on.
    pub(crate) home: Home,
    /// What it may do.
    pub(crate) grant: Grant,
    /// Its key-value storage …
    pub(crate) storage: Arc<dyn PluginStorage>,
    /// … and the quota there, in bytes.
    pub(crate) storage_quota: u64,
    /// Its counters (shared with the registry's entry).
    pub(crate) counters: Arc<PluginCounters>,
    /// Its mailbox's subscriber id on the bus.
    pub(crate) subscriber: SubscriberId,
    /// The handler registered for each of its services (forwards to its task).
    pub(crate) service_handler: Arc<dyn ServiceHandler>,
    /// Its effective limits (manifest ∩ operator ∩ host policy); the budget and the
    /// subscription cap come from them.
    pub(crate) limits: ResourceLimits,
    /// How long it may stay over budget before it is quarantined.
    pub(crate) quarantine_over_budget: Duration,
}

impl PluginHost {
    pub(crate) fn new(parts: PluginHostParts) -> Self {
        let PluginHostParts {
            domain,
            home,
            grant,
            storage,
            storage_quota,
            counters,
            subscriber,
            service_handler,
            limits,
            quarantine_over_budget,
        } = parts;
        let max_subscriptions = limits.subscriptions.unwrap_or(DEFAULT_SUBSCRIPTIONS);
        Self {
            domain,
            home,
            grant,
            storage,
            storage_quota,
            counters,
            subscriber,
            service_handler,
            own_services: Mutex::new(Vec::new()),
            timers: Mutex::new(Timers::default()),
            log_limiter: Mutex::new(log_limiter()),
            budget: Mutex::new(EmissionBudget::new(
                Rates::from_limits(&limits),
                Instant::now(),
            )),
            max_subscriptions: usize::try_from(max_subscriptions).unwrap_or(usize::MAX),
            quarantine_over_budget,
            quarantine_request: Mutex::new(None),
        }
    }

    /// Spends one `kind` from the plugin's budget. Over budget, the refusal is counted, and
    /// once the plugin has been refused without a second's pause for `quarantine_over_budget`
    /// a quarantine is requested (its task carries it out after the current call).
    pub(crate) fn spend(&self, kind: Emission) -> Result<(), OverBudget> {
        let result = lock(&self.budget).spend(kind, Instant::now());
        if let Err(over) = &result {
            self.counters
                .quota_exceeded
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if over.streak >= self.quarantine_over_budget {
                let mut request = lock(&self.quarantine_request);
                if request.is_none() {
                    *request = Some(format!(
                        "over its budget of {} {} per second (bursts of {}) for {} s",
                        over.per_second,
                        over.kind,
                        over.burst,
                        over.streak.as_secs()
                    ));
                }
            }
        }
        result
    }

    /// The quarantine the budget asked for, if any (taken once).
    pub(crate) fn take_quarantine_request(&self) -> Option<String> {
        lock(&self.quarantine_request).take()
    }

    /// Unregisters the services this plugin registered.
    pub(crate) fn unregister_services(&self) {
        let names = std::mem::take(&mut *lock(&self.own_services));
        for name in names {
            self.home.services.unregister(&name);
        }
    }

    /// Whether the log limiter admits one more line.
    pub(crate) fn admit_log(&self) -> bool {
        lock(&self.log_limiter).take(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_admits_a_burst_then_refuses() {
        let mut l = log_limiter();
        let admitted = (0..LOG_BURST * 2)
            .filter(|_| l.take(Instant::now()))
            .count();
        assert!(admitted >= LOG_BURST as usize && admitted < (LOG_BURST as usize) + 5);
    }
}
