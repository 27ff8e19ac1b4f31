//! One WASM plugin instance: its `Store`, its exports, and recovery from traps.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use homecore::{CustomEvent, ServiceCall, StateChanged};
use homecore_abi::v1::{self, MAX_EVENT, MAX_PAYLOAD};
use serde_json::Value;
use wasmtime::{Memory, Store, Trap, TypedFunc, UpdateDeadline};

use crate::wasm::config::EffectiveLimits;
use crate::wasm::event_cache::custom_event_bytes;
use crate::wasm::limiter::Limiter;
use crate::wasm::runtime::{Linked, Shared};
use crate::wasm::store_data::StoreData;
use crate::{
    AbiViolation, GuestFailure, LoadError, PluginContext, PluginError, PluginInstance, TrapCode,
};

/// The guest's exports, looked up once per instantiation (never by name per call).
struct Exports {
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<(i32, i32), ()>,
    setup: TypedFunc<(i32, i32), i32>,
    teardown: TypedFunc<(), i32>,
    on_state_changed: TypedFunc<(i32, i32), i32>,
    call_service: TypedFunc<(i32, i32), i64>,
    on_event: Option<TypedFunc<(i32, i32), i32>>,
    on_timer: Option<TypedFunc<i64, i32>>,
}

struct Live {
    store: Store<StoreData>,
    exports: Exports,
}

/// The exports that take a payload and return a status.
#[derive(Clone, Copy)]
enum PayloadExport {
    Setup,
    OnStateChanged,
    OnEvent,
}

impl Exports {
    fn payload_export(&self, which: PayloadExport) -> Option<&TypedFunc<(i32, i32), i32>> {
        match which {
            PayloadExport::Setup => Some(&self.setup),
            PayloadExport::OnStateChanged => Some(&self.on_state_changed),
            PayloadExport::OnEvent => self.on_event.as_ref(),
        }
    }
}

/// A loaded WASM plugin. After a trap, fuel exhaustion, deadline or limit hit the instance is
/// dropped ("poisoned") and a fresh one is made from the `InstancePre` (and set up again with
/// the same configuration) before the next call.
pub(crate) struct WasmInstance {
    shared: Arc<Shared>,
    /// The linked module; holding it keeps it in the runtime's memo.
    linked: Arc<Linked>,
    limits: EffectiveLimits,
    live: Option<Live>,
    /// The configuration of the last successful setup, for re-setup after a poisoning.
    config: Option<Arc<[u8]>>,
}

/// A failure that is not the guest's doing: the engine refused something.
fn engine_failure(err: &wasmtime::Error) -> GuestFailure {
    GuestFailure::Engine {
        message: format!("{err:#}"),
    }
}

/// The failure when a call is attempted without a live instance (an internal invariant).
fn not_live() -> PluginError {
    PluginError::from(GuestFailure::Engine {
        message: "instance is not live".to_owned(),
    })
}

impl WasmInstance {
    /// Instantiates now, so that instantiation errors (initial memory over the limit, a trap in
    /// a start function) are load errors.
    pub(crate) async fn new(
        shared: Arc<Shared>,
        linked: Arc<Linked>,
        limits: EffectiveLimits,
    ) -> Result<Self, LoadError> {
        let mut instance = Self {
            shared,
            linked,
            limits,
            live: None,
            config: None,
        };
        instance
            .instantiate()
            .await
            .map_err(|failure| LoadError::Instantiate { failure })?;
        Ok(instance)
    }

    fn new_store(&self) -> Store<StoreData> {
        let l = &self.limits;
        let limiter = Limiter::new(l.memory_bytes, l.table_elements);
        let data = StoreData::new(limiter, import_slack(self.shared.config.epoch_tick));
        let mut store = Store::new(&self.shared.engine, data);
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_callback(|ctx| {
            let data = ctx.data();
            Ok(if std::time::Instant::now() >= data.deadline {
                UpdateDeadline::Interrupt
            } else {
                // Let other tasks run on this worker, then continue until the deadline. Tokio's
                // yield_now lets the scheduler poll its timer driver first.
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store
    }

    async fn instantiate(&mut self) -> Result<(), GuestFailure> {
        let mut store = self.new_store();
        // A start function runs under the same limits as any call.
        store.data_mut().deadline = std::time::Instant::now() + self.limits.call_timeout;
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| engine_failure(&e))?;
        store.set_epoch_deadline(1);
        let instance = match self.linked.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(err) => {
                let hit = store.data_mut().limiter.take_hit();
                return Err(classify(&err, hit, &self.limits));
            }
        };
        let missing = |name: &'static str| AbiViolation::MissingExport { name };
        let memory = instance
            .get_memory(&mut store, v1::EXPORT_MEMORY)
            .ok_or_else(|| missing(v1::EXPORT_MEMORY))?;
        let func = |store: &mut Store<StoreData>, name: &str| instance.get_func(&mut *store, name);
        macro_rules! typed {
            ($name:expr) => {
                func(&mut store, $name)
                    .ok_or_else(|| missing($name))?
                    .typed(&store)
                    .map_err(|e| engine_failure(&e))?
            };
        }
        let exports = Exports {
            memory,
            alloc: typed!(v1::EXPORT_ALLOC),
            free: typed!(v1::EXPORT_FREE),
            setup: typed!("hc_setup"),
            teardown: typed!("hc_teardown"),
            on_state_changed: typed!("hc_on_state_changed"),
            call_service: typed!("hc_call_service"),
            on_event: func(&mut store, "hc_on_event").and_then(|f| f.typed(&store).ok()),
            on_timer: func(&mut store, "hc_on_timer").and_then(|f| f.typed(&store).ok()),
        };
        store.data_mut().memory = Some(memory);
        self.live = Some(Live { store, exports });
        Ok(())
    }

    /// A live instance: the current one, or a fresh one set up again after a poisoning.
    async fn ensure_live(&mut self, ctx: &PluginContext) -> Result<(), PluginError> {
        if self.live.is_some() {
            return Ok(());
        }
        if let Err(failure) = self.instantiate().await {
            ctx.record_guest_failure(&failure);
            return Err(failure.into());
        }
        if let Some(config) = self.config.clone() {
            tracing::info!(
                plugin = ctx.domain(),
                "re-instantiated after a failure; running setup again"
            );
            self.call_with_payload(ctx, &config, PayloadExport::Setup)
                .await?;
        }
        Ok(())
    }

    fn begin(&mut self, ctx: &PluginContext) -> Result<&mut Live, PluginError> {
        let limits = self.limits;
        let live = self.live.as_mut().ok_or_else(not_live)?;
        live.store.data_mut().begin_call(ctx, &limits);
        live.store
            .set_fuel(limits.fuel_per_call)
            .map_err(|e| PluginError::from(engine_failure(&e)))?;
        live.store.set_epoch_deadline(1);
        Ok(live)
    }

    /// Copies `payload` into a guest buffer from `hc_alloc` (an async call, under the same
    /// deadline). A trap in `hc_alloc` is returned as is (classified by `finish`); a broken
    /// contract as an [`AbiViolation`].
    async fn copy_in(live: &mut Live, payload: &[u8]) -> wasmtime::Result<(i32, i32)> {
        let violation = |v: AbiViolation| wasmtime::Error::new(GuestFailure::from(v));
        let len = i32::try_from(payload.len())
            .map_err(|_| violation(AbiViolation::PayloadTooLarge { len: payload.len() }))?;
        live.store.data_mut().helper = Some(v1::EXPORT_ALLOC);
        let ptr = live.exports.alloc.call_async(&mut live.store, len).await?;
        live.store.data_mut().helper = None;
        if ptr == 0 && len > 0 {
            return Err(violation(AbiViolation::AllocFailed { len }));
        }
        let start =
            usize::try_from(ptr).map_err(|_| violation(AbiViolation::NegativePointer { ptr }))?;
        live.exports
            .memory
            .write(&mut live.store, start, payload)
            .map_err(|_| violation(AbiViolation::BufferOutOfBounds { ptr, len }))?;
        Ok((ptr, len))
    }

    /// Calls an export taking a payload and returning a status.
    async fn call_with_payload(
        &mut self,
        ctx: &PluginContext,
        payload: &[u8],
        which: PayloadExport,
    ) -> Result<(), PluginError> {
        let limits = self.limits;
        let live = self.begin(ctx)?;
        if live.exports.payload_export(which).is_none() {
            live.store.data_mut().end_call();
            return Ok(());
        }
        let outcome = match Self::copy_in(live, payload).await {
            Ok(args) => {
                let Live { store, exports } = live;
                let func = exports.payload_export(which).expect("checked above");
                func.call_async(store, args).await
            }
            Err(err) => Err(err),
        };
        self.finish(outcome, &limits)
    }

    /// Turns a call's outcome into the plugin's result, poisoning the instance on a trap. The
    /// failure is classified (and counted by kind) here.
    fn finish(
        &mut self,
        outcome: wasmtime::Result<i32>,
        limits: &EffectiveLimits,
    ) -> Result<(), PluginError> {
        let live = self.live.as_mut().ok_or_else(not_live)?;
        let refusals = live.store.data().quota_refusals;
        let message = live.store.data_mut().error.take();
        let hit = live.store.data_mut().limiter.take_hit();
        let helper = live.store.data_mut().helper.take();
        // Fuel is always on (set in `begin`); what is left tells what the call used.
        let fuel_used = limits
            .fuel_per_call
            .saturating_sub(live.store.get_fuel().unwrap_or(0));
        let ctx = live.store.data_mut().ctx.take();
        live.store.data_mut().end_call();
        if let Some(ctx) = &ctx {
            ctx.record_fuel(fuel_used);
        }
        let result = match outcome {
            Ok(0) => return Ok(()),
            Ok(code) => Err(PluginError::from(GuestFailure::Status { code, message })),
            Err(err) if err.downcast_ref::<ImportDeadline>().is_some() => {
                self.live = None;
                if let Some(ctx) = &ctx {
                    ctx.record_deadline_missed();
                }
                return Err(PluginError::Timeout {
                    limit_ms: u64::try_from(limits.call_timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            Err(err) => {
                self.live = None;
                let failure = classify(&err, hit, limits);
                if let Some(ctx) = &ctx {
                    ctx.record_guest_failure(&failure);
                }
                Err(PluginError::Runtime { failure, helper })
            }
        };
        if refusals > 0 {
            let plugin = ctx.as_ref().map(PluginContext::domain).unwrap_or_default();
            tracing::warn!(
                plugin,
                refusals,
                "host calls refused for the per-call quota during a failed call"
            );
        }
        result
    }
}

/// The trap an async import raises when the call's deadline (plus slack) passes while the
/// guest waits in it, where epochs cannot interrupt it. The call fails as a timeout.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded while waiting in the {import} import")]
pub(crate) struct ImportDeadline {
    /// The import the guest was waiting in.
    pub(crate) import: &'static str,
}

/// How long past a call's deadline an async import may still wait: the epoch deadline
/// interrupts running guest code within a tick, so this only matters for a guest blocked in
/// an async import (a service call that never answers).
pub(crate) fn import_slack(tick: Duration) -> Duration {
    tick * 4 + Duration::from_millis(100)
}

/// Classifies a failed call: fuel and deadline by their `Trap` codes, limits by the store's
/// limiter record (`hit`), a broken ABI contract by its typed error; never by message text.
fn classify(
    err: &wasmtime::Error,
    hit: Option<GuestFailure>,
    limits: &EffectiveLimits,
) -> GuestFailure {
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::OutOfFuel => GuestFailure::OutOfFuel {
                limit: limits.fuel_per_call,
            },
            Trap::Interrupt => GuestFailure::Deadline {
                limit_ms: u64::try_from(limits.call_timeout.as_millis()).unwrap_or(u64::MAX),
            },
            other => GuestFailure::Trap {
                code: trap_code(*other),
            },
        };
    }
    if let Some(hit) = hit {
        return hit;
    }
    if let Some(failure) = err.downcast_ref::<GuestFailure>() {
        return failure.clone();
    }
    engine_failure(err)
}

/// Our mirror of a Wasmtime trap code.
fn trap_code(trap: Trap) -> TrapCode {
    match trap {
        Trap::StackOverflow => TrapCode::StackOverflow,
        Trap::MemoryOutOfBounds => TrapCode::MemoryOutOfBounds,
        Trap::HeapMisaligned => TrapCode::HeapMisaligned,
        Trap::TableOutOfBounds => TrapCode::TableOutOfBounds,
        Trap::IndirectCallToNull => TrapCode::IndirectCallToNull,
        Trap::BadSignature => TrapCode::BadSignature,
        Trap::IntegerOverflow => TrapCode::IntegerOverflow,
        Trap::IntegerDivisionByZero => TrapCode::IntegerDivisionByZero,
        Trap::BadConversionToInteger => TrapCode::BadConversionToInteger,
        Trap::UnreachableCodeReached => TrapCode::UnreachableCodeReached,
        Trap::NullReference => TrapCode::NullReference,
        Trap::ArrayOutOfBounds => TrapCode::ArrayOutOfBounds,
        Trap::AllocationTooLarge => TrapCode::AllocationTooLarge,
        Trap::CastFailure => TrapCode::CastFailure,
        _ => TrapCode::Other,
    }
}

#[async_trait]
impl PluginInstance for WasmInstance {
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError> {
        let bytes: Arc<[u8]> = serde_json::to_vec(config)
            .map_err(|e| PluginError::config("", e.to_string()))?
            .into();
        if bytes.len() > MAX_EVENT {
            return Err(PluginError::config(
                "",
                format!(
                    "configuration is {} bytes, the ABI limit is {MAX_EVENT}",
                    bytes.len()
                ),
            ));
        }
        self.ensure_live(ctx).await?;
        self.call_with_payload(ctx, &bytes, PayloadExport::Setup)
            .await?;
        self.config = Some(bytes);
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &Arc<StateChanged>,
    ) -> Result<(), PluginError> {
        let bytes = self.shared.events.state_changed(event);
        if bytes.len() > MAX_EVENT {
            tracing::warn!(plugin = ctx.domain(), entity_id = %event.entity_id, len = bytes.len(), "state change exceeds the ABI's event limit; not delivered");
            return Ok(());
        }
        self.ensure_live(ctx).await?;
        self.call_with_payload(ctx, &bytes, PayloadExport::OnStateChanged)
            .await
    }

    async fn on_event(
        &mut self,
        ctx: &PluginContext,
        event: &Arc<CustomEvent>,
    ) -> Result<(), PluginError> {
        let bytes = custom_event_bytes(event);
        if bytes.len() > MAX_EVENT {
            return Ok(());
        }
        self.ensure_live(ctx).await?;
        self.call_with_payload(ctx, &bytes, PayloadExport::OnEvent)
            .await
    }

    async fn on_timer(&mut self, ctx: &PluginContext, token: u64) -> Result<(), PluginError> {
        self.ensure_live(ctx).await?;
        let limits = self.limits;
        let live = self.begin(ctx)?;
        let Live { store, exports } = live;
        let Some(func) = &exports.on_timer else {
            store.data_mut().end_call();
            return Ok(());
        };
        let outcome = func.call_async(store, token as i64).await;
        self.finish(outcome, &limits)
    }

    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        let payload = serde_json::to_vec(&serde_json::json!({
            "domain": call.name.domain(),
            "service": call.name.service(),
            "data": call.data,
            "context": call.context,
        }))
        .map_err(PluginError::other)?;
        self.ensure_live(ctx).await?;
        let limits = self.limits;
        let live = self.begin(ctx)?;
        let outcome = match Self::copy_in(live, &payload).await {
            Ok(args) => {
                let Live { store, exports } = &mut *live;
                exports.call_service.call_async(store, args).await
            }
            Err(err) => Err(err),
        };
        // Read the response (if any) before `finish` clears the call state.
        let response = match &outcome {
            Ok(packed) if *packed > 0 => Some(read_response(live, *packed, &limits).await),
            _ => None,
        };
        let status = outcome.map(|packed| {
            if packed >= 0 {
                0
            } else {
                i32::try_from(packed).unwrap_or(i32::MIN)
            }
        });
        self.finish(status, &limits)?;
        match response {
            Some(Err((failure, helper))) => {
                // A bad response or a trap in hc_free leaves the guest in an unknown state.
                self.live = None;
                ctx.record_guest_failure(&failure);
                Err(PluginError::Runtime { failure, helper })
            }
            Some(Ok(value)) => Ok(Some(value)),
            None => Ok(None),
        }
    }

    async fn teardown(&mut self, ctx: &PluginContext) -> Result<(), PluginError> {
        if self.live.is_none() {
            return Ok(());
        }
        let limits = self.limits;
        let live = self.begin(ctx)?;
        let Live { store, exports } = live;
        let outcome = exports.teardown.call_async(store, ()).await;
        self.finish(outcome, &limits)
    }

    fn unload(self: Box<Self>) {
        drop(self);
    }
}

/// Copies and frees `hc_call_service`'s response buffer; parses it as JSON. A failure comes
/// with the helper export it happened in (`hc_free`), if any.
async fn read_response(
    live: &mut Live,
    packed: i64,
    limits: &EffectiveLimits,
) -> Result<Value, (GuestFailure, Option<&'static str>)> {
    let bad = |v: AbiViolation| (GuestFailure::from(v), None);
    let Ok(Some((ptr, len))) = v1::unpack_ptr_len(packed) else {
        return Err(bad(AbiViolation::MalformedResponse));
    };
    let (start, size) = (ptr as usize, len as usize);
    if size > MAX_PAYLOAD {
        return Err(bad(AbiViolation::ResponseTooLarge {
            len: size,
            limit: MAX_PAYLOAD,
        }));
    }
    let end = start
        .checked_add(size)
        .ok_or_else(|| bad(AbiViolation::ResponseOutOfBounds))?;
    let bytes = live
        .exports
        .memory
        .data(&live.store)
        .get(start..end)
        .ok_or_else(|| bad(AbiViolation::ResponseOutOfBounds))?
        .to_vec();
    let freed = live
        .exports
        .free
        .call_async(&mut live.store, (ptr as i32, len as i32))
        .await;
    if let Err(err) = freed {
        let hit = live.store.data_mut().limiter.take_hit();
        return Err((classify(&err, hit, limits), Some(v1::EXPORT_FREE)));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        bad(AbiViolation::ResponseNotJson {
            reason: e.to_string(),
        })
    })
}
