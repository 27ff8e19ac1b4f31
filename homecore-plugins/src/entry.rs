//! The registry's record of one plugin: its spec, status, counters, task and control queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use homecore::SubscriptionStats;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::ControlSender;
use crate::host::PluginCounters;
use crate::sync::lock;
use crate::{Lifecycle, PluginError, PluginHealth, PluginInfo, PluginSpec, PluginStats};

/// A plugin's changing status, watched by dependents waiting for it to settle.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) last_error: Option<String>,
    pub(crate) running_since: Option<Instant>,
    pub(crate) setup_attempts: u32,
    pub(crate) consecutive_failures: u32,
}

/// The registry's record of one plugin.
pub(crate) struct PluginEntry {
    pub(crate) domain: Arc<str>,
    pub(crate) spec: PluginSpec,
    pub(crate) counters: Arc<PluginCounters>,
    pub(crate) status: watch::Sender<Status>,
    pub(crate) control: Mutex<Option<ControlSender>>,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    mailbox: Mutex<Option<SubscriptionStats>>,
    retired_drops: AtomicU64,
}

impl PluginEntry {
    pub(crate) fn new(spec: PluginSpec) -> Self {
        let (status, _) = watch::channel(Status {
            lifecycle: Lifecycle::Loading,
            last_error: None,
            running_since: None,
            setup_attempts: 0,
            consecutive_failures: 0,
        });
        Self {
            domain: spec.manifest.domain.as_str().into(),
            spec,
            counters: Arc::default(),
            status,
            control: Mutex::new(None),
            task: Mutex::new(None),
            mailbox: Mutex::new(None),
            retired_drops: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_lifecycle(&self, lifecycle: Lifecycle, reason: Option<String>) {
        self.status.send_modify(|s| {
            s.lifecycle = lifecycle;
            s.running_since = (lifecycle == Lifecycle::Running).then(Instant::now);
            if reason.is_some() {
                s.last_error = reason;
            }
        });
    }

    pub(crate) fn record_error(&self, err: &PluginError, consecutive_failures: u32) {
        tracing::warn!(plugin = %self.domain, error = %err, consecutive_failures, "plugin call failed");
        let text = err.to_string();
        self.status.send_modify(|s| {
            s.last_error = Some(text);
            s.consecutive_failures = consecutive_failures;
        });
        // Counted after the error is visible: `info` reads the count first, so a snapshot that
        // counts this error also shows it (or a later one).
        self.counters.errors.fetch_add(1, Ordering::Release);
    }

    /// Ends the failure streak shown in the plugin's health.
    pub(crate) fn clear_failures(&self) {
        self.status.send_modify(|s| s.consecutive_failures = 0);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.status.borrow().last_error.clone()
    }

    pub(crate) fn lifecycle(&self) -> Lifecycle {
        self.status.borrow().lifecycle
    }

    pub(crate) fn set_mailbox(&self, stats: Option<SubscriptionStats>) {
        if let Some(old) = std::mem::replace(&mut *lock(&self.mailbox), stats) {
            self.retired_drops
                .fetch_add(old.dropped(), Ordering::Relaxed);
        }
    }

    pub(crate) fn info(&self) -> PluginInfo {
        let c = &self.counters;
        // Before the status: see `record_error`.
        let errors = c.errors.load(Ordering::Acquire);
        let status = self.status.borrow().clone();
        let events = c.events.load(Ordering::Relaxed);
        let (mailbox_dropped, mailbox_depth) = {
            let mailbox = lock(&self.mailbox);
            let retired = self.retired_drops.load(Ordering::Relaxed);
            // Every event queued into the running mailbox is counted in `events` when the task
            // takes it, so the difference is what still waits.
            mailbox.as_ref().map_or((retired, 0), |m| {
                let depth = if status.lifecycle == Lifecycle::Running {
                    m.delivered().saturating_sub(events)
                } else {
                    0
                };
                (retired + m.dropped(), depth)
            })
        };
        PluginInfo {
            domain: self.domain.to_string(),
            manifest: Arc::clone(&self.spec.manifest),
            runtime: self.spec.manifest.runtime(),
            lifecycle: status.lifecycle,
            health: PluginHealth {
                ready: status.lifecycle == Lifecycle::Running,
                last_error: status.last_error,
                uptime: status.running_since.map(|t| t.elapsed()),
                setup_attempts: status.setup_attempts,
                consecutive_failures: status.consecutive_failures,
            },
            stats: PluginStats {
                events,
                errors,
                denied: c.denied.load(Ordering::Relaxed),
                host_calls: c.host_calls.load(Ordering::Relaxed),
                mailbox_dropped,
                logs_dropped: c.logs_dropped.load(Ordering::Relaxed),
                mailbox_depth,
                mailbox_capacity: c.mailbox_capacity.load(Ordering::Relaxed),
                fuel_used: c.fuel_used.load(Ordering::Relaxed),
                quarantines: c.quarantines.load(Ordering::Relaxed),
                quota_exceeded: c.quota_exceeded.load(Ordering::Relaxed),
                fuel_exhausted: c.fuel_exhausted.load(Ordering::Relaxed),
                deadlines_missed: c.deadlines_missed.load(Ordering::Relaxed),
                memory_limit_hits: c.memory_limit_hits.load(Ordering::Relaxed),
                table_limit_hits: c.table_limit_hits.load(Ordering::Relaxed),
                traps: c.traps.load(Ordering::Relaxed),
            },
            latency: c.latency.snapshot(),
        }
    }
}
