//! What each plugin's `Store` holds: the current call's context, limits and quotas.

use std::time::{Duration, Instant};

use homecore_abi::v1::Status;
use wasmtime::Memory;

use crate::PluginContext;
use crate::wasm::config::EffectiveLimits;
use crate::wasm::limiter::Limiter;

/// The data of one plugin instance's `Store`.
pub(crate) struct StoreData {
    /// The context of the call in progress (its cause); `None` between calls.
    pub(crate) ctx: Option<PluginContext>,
    /// Memory and table limits, enforced by Wasmtime; records which one was hit.
    pub(crate) limiter: Limiter,
    /// The guest's exported memory, once instantiated.
    pub(crate) memory: Option<Memory>,
    /// A result too large for the guest's buffer, waiting for `take_result`.
    pub(crate) pending: Option<Vec<u8>>,
    /// Host calls left in this call.
    pub(crate) calls_left: u64,
    /// Bytes the host may still write on the guest's behalf in this call.
    pub(crate) bytes_left: u64,
    /// The guest's error message for this call, from the `error` import.
    pub(crate) error: Option<String>,
    /// When the call in progress must end.
    pub(crate) deadline: Instant,
    /// Host calls refused for the quota in this call (to report why a call failed).
    pub(crate) quota_refusals: u64,
    /// How long past `deadline` an async import may still wait.
    pub(crate) import_slack: Duration,
    /// The ABI helper export (`hc_alloc`, `hc_free`) running, if any (to say where a call failed).
    pub(crate) helper: Option<&'static str>,
}

impl StoreData {
    pub(crate) fn new(limiter: Limiter, import_slack: Duration) -> Self {
        Self {
            ctx: None,
            limiter,
            memory: None,
            pending: None,
            calls_left: 0,
            bytes_left: 0,
            error: None,
            deadline: Instant::now(),
            quota_refusals: 0,
            import_slack,
            helper: None,
        }
    }

    /// Resets the per-call state before a call into the guest.
    pub(crate) fn begin_call(&mut self, ctx: &PluginContext, limits: &EffectiveLimits) {
        self.ctx = Some(ctx.clone());
        self.pending = None;
        self.calls_left = limits.host_calls_per_call;
        self.bytes_left = limits.bytes_per_call;
        self.error = None;
        self.quota_refusals = 0;
        self.helper = None;
        self.limiter.take_hit();
        self.deadline = Instant::now() + limits.call_timeout;
    }

    /// Clears what must not outlive a call.
    pub(crate) fn end_call(&mut self) {
        self.ctx = None;
        self.pending = None;
    }

    /// Takes one host call from the quota.
    pub(crate) fn charge_call(&mut self) -> Result<(), Status> {
        if self.calls_left == 0 {
            self.quota_refusals += 1;
            return Err(Status::QuotaExceeded);
        }
        self.calls_left -= 1;
        Ok(())
    }

    /// Takes `bytes` from the per-call byte quota.
    pub(crate) fn charge_bytes(&mut self, bytes: usize) -> Result<(), Status> {
        let bytes = bytes as u64;
        if bytes > self.bytes_left {
            self.quota_refusals += 1;
            return Err(Status::QuotaExceeded);
        }
        self.bytes_left -= bytes;
        Ok(())
    }
}
