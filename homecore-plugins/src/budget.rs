//! What one plugin may make per second: token buckets for state writes, events, service calls
//! and timers, and the rule that turns sustained abuse into quarantine.
//!
//! A plugin that re-arms 1,024 zero-delay timers which each write a state sustained ~370,000
//! changes a second, disconnected every WebSocket client again and again and was never
//! stopped: the loop guard only sees causal depth, not rate. Every plugin therefore spends
//! from a bucket per kind of thing it makes; the bucket refills at the plugin's rate and holds
//! `burst_seconds` of it, so real devices (a burst of updates after a reconnect) pass and a
//! storm is cut to the rate. A refusal is [`crate::HostError::QuotaExceeded`], counted; a plugin
//! refused again and again for [`HostPolicy::quarantine_over_budget`](crate::HostPolicy) is
//! quarantined with the reason (docs/adr/0004-plugin-runtime-and-dispatch.md).

use std::fmt;
use std::time::{Duration, Instant};

use crate::ResourceLimits;

/// Subscriptions a plugin may hold when neither its manifest nor the operator says otherwise.
pub const DEFAULT_SUBSCRIPTIONS: u32 = 1_000;
/// State writes per second a plugin may make by default.
pub const DEFAULT_STATE_WRITES_PER_SECOND: u32 = 200;
/// Events per second a plugin may fire by default.
pub const DEFAULT_EVENTS_PER_SECOND: u32 = 200;
/// Service calls per second a plugin may make by default.
pub const DEFAULT_SERVICE_CALLS_PER_SECOND: u32 = 100;
/// Timers per second a plugin may start by default.
pub const DEFAULT_TIMERS_PER_SECOND: u32 = 200;
/// Seconds of each rate a plugin may spend at once by default.
pub const DEFAULT_BURST_SECONDS: u32 = 10;
/// The shortest timer: shorter delays are raised to it.
pub const MIN_TIMER_DELAY: Duration = Duration::from_millis(10);
/// A refusal less than this long after the previous one continues the same over-budget streak.
const STREAK_GAP: Duration = Duration::from_secs(1);

/// What a plugin makes, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Emission {
    /// A state write or removal.
    StateWrite,
    /// A fired event.
    Event,
    /// A service call.
    ServiceCall,
    /// A started timer (one firing to come).
    Timer,
}

impl Emission {
    const ALL: [Emission; 4] = [
        Emission::StateWrite,
        Emission::Event,
        Emission::ServiceCall,
        Emission::Timer,
    ];

    fn index(self) -> usize {
        match self {
            Self::StateWrite => 0,
            Self::Event => 1,
            Self::ServiceCall => 2,
            Self::Timer => 3,
        }
    }
}

impl fmt::Display for Emission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StateWrite => "state writes",
            Self::Event => "events",
            Self::ServiceCall => "service calls",
            Self::Timer => "timers",
        })
    }
}

/// One plugin's rates, filled from the defaults above where its limits say nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rates {
    per_second: [u32; 4],
    burst_seconds: u32,
}

impl Rates {
    pub(crate) fn from_limits(limits: &ResourceLimits) -> Self {
        let per_second = Emission::ALL.map(|kind| match kind {
            Emission::StateWrite => limits
                .state_writes_per_second
                .unwrap_or(DEFAULT_STATE_WRITES_PER_SECOND),
            Emission::Event => limits
                .events_per_second
                .unwrap_or(DEFAULT_EVENTS_PER_SECOND),
            Emission::ServiceCall => limits
                .service_calls_per_second
                .unwrap_or(DEFAULT_SERVICE_CALLS_PER_SECOND),
            Emission::Timer => limits
                .timers_per_second
                .unwrap_or(DEFAULT_TIMERS_PER_SECOND),
        });
        Self {
            per_second,
            burst_seconds: limits.burst_seconds.unwrap_or(DEFAULT_BURST_SECONDS).max(1),
        }
    }

    /// The average rate for `kind`.
    pub(crate) fn per_second(&self, kind: Emission) -> u32 {
        self.per_second[kind.index()]
    }

    /// The most of `kind` spendable at once.
    pub(crate) fn burst(&self, kind: Emission) -> u32 {
        self.per_second(kind).saturating_mul(self.burst_seconds)
    }
}

/// A refused emission: the plugin is over its budget for `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    /// What was refused.
    pub(crate) kind: Emission,
    /// The rate it is held to.
    pub(crate) per_second: u32,
    /// Its burst.
    pub(crate) burst: u32,
    /// How long the plugin has been refused without a pause of a second.
    pub(crate) streak: Duration,
}

/// A token bucket: holds up to `burst` tokens, refilled at `per_second`; each admitted item
/// takes one. Every per-plugin rate limit (log lines, emissions) is one of these.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
    per_second: f64,
    burst: f64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            last: now,
            per_second: f64::from(per_second),
            burst: f64::from(burst),
        }
    }

    /// Takes one token at `now`, if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A plugin's buckets and its over-budget streak.
#[derive(Debug)]
pub(crate) struct EmissionBudget {
    rates: Rates,
    buckets: [TokenBucket; 4],
    streak_since: Option<Instant>,
    last_refusal: Option<Instant>,
}

impl EmissionBudget {
    /// Full buckets at `now`.
    pub(crate) fn new(rates: Rates, now: Instant) -> Self {
        let buckets = Emission::ALL
            .map(|kind| TokenBucket::new(rates.per_second(kind), rates.burst(kind), now));
        Self {
            rates,
            buckets,
            streak_since: None,
            last_refusal: None,
        }
    }

    /// Spends one `kind` at `now`, or says why not.
    pub(crate) fn spend(&mut self, kind: Emission, now: Instant) -> Result<(), OverBudget> {
        if self.buckets[kind.index()].take(now) {
            return Ok(());
        }
        let per_second = self.rates.per_second(kind);
        let burst = self.rates.burst(kind);
        let continues = self
            .last_refusal
            .is_some_and(|last| now.saturating_duration_since(last) < STREAK_GAP);
        if !continues {
            self.streak_since = Some(now);
        }
        self.last_refusal = Some(now);
        let streak = self
            .streak_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        Err(OverBudget {
            kind,
            per_second,
            burst,
            streak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(writes: u32, burst_seconds: u32, now: Instant) -> EmissionBudget {
        let limits = ResourceLimits {
            state_writes_per_second: Some(writes),
            burst_seconds: Some(burst_seconds),
            ..ResourceLimits::default()
        };
        EmissionBudget::new(Rates::from_limits(&limits), now)
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut b = budget(10, 3, t0);
        let passed = (0..100)
            .filter(|_| b.spend(Emission::StateWrite, t0).is_ok())
            .count();
        assert_eq!(passed, 30, "the burst is three seconds of ten per second");
        // Half a second later, five more.
        let t1 = t0 + Duration::from_millis(500);
        let passed = (0..100)
            .filter(|_| b.spend(Emission::StateWrite, t1).is_ok())
            .count();
        assert_eq!(passed, 5);
        // Other kinds have their own buckets.
        assert!(b.spend(Emission::Event, t1).is_ok());
    }

    #[test]
    fn refusals_without_a_pause_make_a_streak_a_pause_ends_it() {
        let t0 = Instant::now();
        let mut b = budget(1, 1, t0);
        assert!(b.spend(Emission::StateWrite, t0).is_ok());
        let mut now = t0;
        let mut streak = Duration::ZERO;
        // Trying every 100 ms for 5 s: one in ten passes, the streak grows.
        for _ in 0..50 {
            now += Duration::from_millis(100);
            if let Err(over) = b.spend(Emission::StateWrite, now) {
                assert_eq!(
                    (over.kind, over.per_second, over.burst),
                    (Emission::StateWrite, 1, 1)
                );
                streak = over.streak;
            }
        }
        assert!(streak >= Duration::from_millis(4800), "{streak:?}");
        // Two quiet seconds, then one refusal: a new streak.
        now += Duration::from_secs(2);
        assert!(b.spend(Emission::StateWrite, now).is_ok());
        let over = b
            .spend(Emission::StateWrite, now)
            .expect_err("bucket empty");
        assert_eq!(over.streak, Duration::ZERO);
    }

    #[test]
    fn defaults_fill_what_the_limits_leave_out() {
        let rates = Rates::from_limits(&ResourceLimits::default());
        assert_eq!(
            rates.per_second(Emission::ServiceCall),
            DEFAULT_SERVICE_CALLS_PER_SECOND
        );
        assert_eq!(
            rates.burst(Emission::Timer),
            DEFAULT_TIMERS_PER_SECOND * DEFAULT_BURST_SECONDS
        );
    }
}
