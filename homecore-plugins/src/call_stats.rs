//! What the host measures of each call into a plugin: a latency histogram per hook, and the
//! tracing span and slow-call warning around the call (docs/adr/0011-metrics-and-tracing.md).
//!
//! The hot path pays one `Instant::now()` pair and two relaxed atomic additions per call; the
//! span costs a cached level check when no subscriber wants it. Snapshots are read at scrape
//! time through [`crate::PluginRegistry::list`] ([`PluginInfo::latency`](crate::PluginInfo)).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::Instrument;

/// A call the host makes into a plugin, timed separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PluginHook {
    /// `setup` (each attempt).
    Setup,
    /// `on_state_changed`.
    OnStateChanged,
    /// `on_event`.
    OnEvent,
    /// `on_timer`.
    OnTimer,
    /// `call_service`.
    CallService,
    /// `teardown`.
    Teardown,
}

impl PluginHook {
    /// Every hook, in the order [`CallLatency::iter`] yields them.
    pub const ALL: [Self; 6] = [
        Self::Setup,
        Self::OnStateChanged,
        Self::OnEvent,
        Self::OnTimer,
        Self::CallService,
        Self::Teardown,
    ];

    /// The hook's name as plugins implement it (`"on_state_changed"`), used as the `hook` label
    /// and span field.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::OnStateChanged => "on_state_changed",
            Self::OnEvent => "on_event",
            Self::OnTimer => "on_timer",
            Self::CallService => "call_service",
            Self::Teardown => "teardown",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the call-latency buckets (a call of exactly a bound's duration falls in
/// that bucket); one more bucket counts the calls slower than the last bound.
pub const LATENCY_BUCKETS: [Duration; 15] = [
    Duration::from_micros(10),
    Duration::from_micros(50),
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(10),
];

/// Buckets per histogram: one per bound in [`LATENCY_BUCKETS`] and one for slower calls.
const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// [`LATENCY_BUCKETS`] in nanoseconds, for the comparison on the hot path.
#[expect(
    clippy::cast_possible_truncation,
    reason = "the bounds are seconds at most: far below u64::MAX nanoseconds (const context, no try_from)"
)]
const BOUNDS_NANOS: [u64; LATENCY_BUCKETS.len()] = {
    let mut nanos = [0u64; LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < nanos.len() {
        nanos[i] = LATENCY_BUCKETS[i].as_nanos() as u64;
        i += 1;
    }
    nanos
};

/// A call taking at least this long is logged as a warning with the plugin and the hook.
pub const SLOW_CALL: Duration = Duration::from_millis(100);

/// One hook's latency histogram: fixed buckets of relaxed atomics.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// A plugin's latency histograms, one per [`PluginHook`]; lives in its counters.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistograms([Histogram; PluginHook::ALL.len()]);

impl LatencyHistograms {
    /// Records one call of `hook` that took `elapsed`.
    pub(crate) fn record(&self, hook: PluginHook, elapsed: Duration) {
        self.0[hook.index()].record(elapsed);
    }

    /// The histograms as they are now.
    pub(crate) fn snapshot(&self) -> CallLatency {
        CallLatency(std::array::from_fn(|i| self.0[i].snapshot()))
    }
}

/// One hook's call latencies at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Calls per bucket, not cumulative: `buckets[i]` counts the calls that took at most
    /// `LATENCY_BUCKETS[i]` and longer than the bound before it; the last entry counts the
    /// calls slower than every bound.
    pub buckets: [u64; BUCKETS],
    /// The time spent in all these calls.
    pub sum: Duration,
}

impl LatencySnapshot {
    /// Calls recorded (the sum of the buckets).
    #[must_use]
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

/// A plugin's call latencies per hook, as [`crate::PluginInfo::latency`] reports them.
///
/// ```
/// use homecore_plugins::{CallLatency, PluginHook};
/// let latency = CallLatency::default();
/// assert_eq!(latency.get(PluginHook::OnStateChanged).count(), 0);
/// assert_eq!(latency.iter().count(), PluginHook::ALL.len());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallLatency([LatencySnapshot; PluginHook::ALL.len()]);

impl CallLatency {
    /// The histogram of `hook`.
    #[must_use]
    pub fn get(&self, hook: PluginHook) -> &LatencySnapshot {
        &self.0[hook.index()]
    }

    /// Every hook's histogram, in the order of [`PluginHook::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = (PluginHook, &LatencySnapshot)> {
        PluginHook::ALL.into_iter().zip(self.0.iter())
    }
}

/// Runs one call into a plugin inside a `plugin_call` span (fields `plugin`, `hook`), records
/// its latency, and warns when it took [`SLOW_CALL`] or longer.
pub(crate) async fn timed<F: Future>(
    latency: &LatencyHistograms,
    plugin: &str,
    hook: PluginHook,
    call: F,
) -> F::Output {
    let span = tracing::info_span!("plugin_call", plugin, hook = hook.as_str());
    let start = Instant::now();
    let output = call.instrument(span).await;
    let elapsed = start.elapsed();
    latency.record(hook, elapsed);
    if elapsed >= SLOW_CALL {
        tracing::warn!(
            plugin,
            hook = hook.as_str(),
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            threshold_ms = u64::try_from(SLOW_CALL.as_millis()).unwrap_or(u64::MAX),
            "slow plugin call"
        );
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let h = LatencyHistograms::default();
        h.record(PluginHook::OnStateChanged, Duration::from_micros(10));
        h.record(PluginHook::OnStateChanged, Duration::from_nanos(10_001));
        h.record(PluginHook::OnStateChanged, Duration::ZERO);
        h.record(PluginHook::OnStateChanged, Duration::from_secs(11));
        h.record(PluginHook::Setup, Duration::from_millis(3));
        let snap = h.snapshot();
        let events = snap.get(PluginHook::OnStateChanged);
        assert_eq!(events.buckets[0], 2, "0 and exactly 10 µs: {events:?}");
        assert_eq!(events.buckets[1], 1, "10.001 µs: {events:?}");
        assert_eq!(
            events.buckets[BUCKETS - 1],
            1,
            "slower than 10 s: {events:?}"
        );
        assert_eq!(events.count(), 4);
        assert_eq!(
            events.sum,
            Duration::from_micros(10) + Duration::from_nanos(10_001) + Duration::from_secs(11)
        );
        let setup = snap.get(PluginHook::Setup);
        assert_eq!(setup.count(), 1);
        assert_eq!(setup.buckets[7], 1, "3 ms is above 2.5 ms, at most 5 ms");
        assert_eq!(snap.get(PluginHook::Teardown).count(), 0);
    }

    #[test]
    fn bounds_ascend_and_iter_names_every_hook_once() {
        assert!(BOUNDS_NANOS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(BOUNDS_NANOS[0], 10_000);
        let names: Vec<&str> = CallLatency::default()
            .iter()
            .map(|(hook, _)| hook.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "setup",
                "on_state_changed",
                "on_event",
                "on_timer",
                "call_service",
                "teardown"
            ]
        );
    }

    #[test]
    fn a_huge_duration_saturates_instead_of_wrapping() {
        let h = LatencyHistograms::default();
        h.record(PluginHook::CallService, Duration::MAX);
        let snap = *h.snapshot().get(PluginHook::CallService);
        assert_eq!(snap.buckets[BUCKETS - 1], 1);
        assert_eq!(snap.sum, Duration::from_nanos(u64::MAX));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn timed_records_the_call_and_returns_its_output() {
        let h = LatencyHistograms::default();
        let out = timed(&h, "p", PluginHook::OnTimer, async { 7 }).await;
        assert_eq!(out, 7);
        assert_eq!(h.snapshot().get(PluginHook::OnTimer).count(), 1);
    }
}
