//! The host side of ABI v1: every import, hostile-input proof.
//!
//! Each import first takes one call from the per-call quota, then validates every pointer and
//! length (see `guest_memory`), payload size, UTF-8 and JSON, then goes through the plugin's
//! [`PluginContext`], which checks the grant (reads included), logs and counts denials. Any
//! failure is a negative [`Status`]; nothing here panics or substitutes a default for bad input.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use homecore::{Attributes, EntityId, StateError};
use homecore_abi::v1::{self, IMPORT_MODULE, MAX_LOG_LINE, MAX_PAYLOAD, Status, wire};
use serde_json::{Map, Value};
use wasmtime::{Caller, Linker, Memory};

use crate::wasm::guest_memory::{self, write_result};
use crate::wasm::instance::ImportDeadline;
use crate::wasm::store_data::StoreData;
use crate::{HostError, LogLevel, PluginContext, StorageError};

type C<'a> = Caller<'a, StoreData>;

/// Longest entity id, glob, key, event type or service name read from the guest.
const MAX_NAME: usize = 255;

/// Defines every ABI v1 import in `linker`.
pub(crate) fn define(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    let m = IMPORT_MODULE;
    linker.func_wrap(m, "log", |mut c: C<'_>, level: i32, ptr: i32, len: i32| {
        run(&mut c, |c| log(c, level, ptr, len))
    })?;
    linker.func_wrap(m, "error", |mut c: C<'_>, ptr: i32, len: i32| {
        run(&mut c, |c| error(c, ptr, len))
    })?;
    linker.func_wrap(
        m,
        "state_get",
        |mut c: C<'_>, p: i32, l: i32, op: i32, oc: i32| {
            run(&mut c, |c| state_get(c, p, l, op, oc))
        },
    )?;
    linker.func_wrap(
        m,
        "state_set",
        |mut c: C<'_>, ip: i32, il: i32, sp: i32, sl: i32, ap: i32, al: i32| {
            run(&mut c, |c| state_set(c, ip, il, sp, sl, ap, al))
        },
    )?;
    linker.func_wrap(m, "state_remove", |mut c: C<'_>, p: i32, l: i32| {
        run(&mut c, |c| state_remove(c, p, l))
    })?;
    linker.func_wrap(m, "subscribe", |mut c: C<'_>, p: i32, l: i32| {
        run(&mut c, |c| {
            with_name(c, p, l, |ctx, pattern| ctx.subscribe(pattern).map(|()| 0))
        })
    })?;
    linker.func_wrap(m, "subscribe_event", |mut c: C<'_>, p: i32, l: i32| {
        run(&mut c, |c| {
            with_name(c, p, l, |ctx, t| ctx.subscribe_events(t).map(|()| 0))
        })
    })?;
    linker.func_wrap(m, "service_register", |mut c: C<'_>, p: i32, l: i32| {
        run(&mut c, |c| {
            with_name(c, p, l, |ctx, name| ctx.register_service(name).map(|()| 0))
        })
    })?;
    linker.func_wrap_async(
        m,
        "service_call",
        |mut c: C<'_>, (rp, rl, op, oc): (i32, i32, i32, i32)| {
            Box::new(async move {
                match service_call(&mut c, rp, rl, op, oc).await {
                    Ok(v) => Ok(v),
                    Err(Waited::Status(s)) => Ok(s.code()),
                    Err(Waited::PastDeadline) => Err(wasmtime::Error::new(ImportDeadline {
                        import: "service_call",
                    })),
                }
            })
        },
    )?;
    linker.func_wrap(
        m,
        "event_fire",
        |mut c: C<'_>, tp: i32, tl: i32, dp: i32, dl: i32| {
            run(&mut c, |c| event_fire(c, tp, tl, dp, dl))
        },
    )?;
    linker.func_wrap(
        m,
        "kv_get",
        |mut c: C<'_>, kp: i32, kl: i32, op: i32, oc: i32| {
            run(&mut c, |c| kv_get(c, kp, kl, op, oc))
        },
    )?;
    linker.func_wrap(
        m,
        "kv_set",
        |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32| {
            run(&mut c, |c| kv_set(c, kp, kl, vp, vl))
        },
    )?;
    linker.func_wrap(m, "kv_delete", |mut c: C<'_>, p: i32, l: i32| {
        run(&mut c, |c| {
            with_name(c, p, l, |ctx, key| ctx.kv_delete(key).map(i32::from))
        })
    })?;
    linker.func_wrap(m, "take_result", |mut c: C<'_>, op: i32, oc: i32| {
        run(&mut c, |c| take_result(c, op, oc))
    })?;
    linker.func_wrap(m, "time_monotonic_ns", |mut c: C<'_>| -> i64 {
        match c.data_mut().charge_call() {
            Ok(()) => monotonic_ns(),
            Err(s) => i64::from(s.code()),
        }
    })?;
    linker.func_wrap(
        m,
        "timer_start",
        |mut c: C<'_>, token: i64, delay_ms: i64| run(&mut c, |c| timer_start(c, token, delay_ms)),
    )?;
    linker.func_wrap(m, "timer_cancel", |mut c: C<'_>, token: i64| {
        run(&mut c, |c| {
            Ok(i32::from(ctx(c)?.cancel_timer(token as u64)))
        })
    })?;
    Ok(())
}

/// Charges the call quota, runs `f`, and turns its error into a status code.
fn run(c: &mut C<'_>, f: impl FnOnce(&mut C<'_>) -> Result<i32, Status>) -> i32 {
    if let Err(s) = c.data_mut().charge_call() {
        return s.code();
    }
    f(c).unwrap_or_else(Status::code)
}

fn memory(c: &C<'_>) -> Result<Memory, Status> {
    c.data().memory.ok_or(Status::Internal)
}

fn ctx<'a>(c: &'a C<'_>) -> Result<&'a PluginContext, Status> {
    c.data().ctx.as_ref().ok_or(Status::Internal)
}

/// The status a host error maps to.
pub(crate) fn status_of(err: &HostError) -> Status {
    use homecore::{EventBusError, ServiceError};
    match err {
        HostError::Denied { .. } => Status::Denied,
        HostError::EntityId(_) => Status::InvalidEntityId,
        HostError::Glob(_) | HostError::EventType(_) => Status::InvalidName,
        HostError::State(StateError::StateTooLong { .. }) => Status::InvalidState,
        HostError::State(StateError::AttributesNotAnObject { .. }) => Status::NotAnObject,
        HostError::State(StateError::LoopGuard(_)) => Status::LoopGuard,
        HostError::Service(ServiceError::UnknownService { .. }) => Status::UnknownService,
        HostError::Service(ServiceError::DataNotAnObject { .. }) => Status::NotAnObject,
        HostError::Service(ServiceError::LoopGuard(_)) => Status::LoopGuard,
        HostError::Service(
            ServiceError::InvalidName { .. } | ServiceError::AlreadyRegistered { .. },
        ) => Status::InvalidName,
        HostError::Service(_) | HostError::Reentrant { .. } => Status::ServiceFailed,
        HostError::Bus(EventBusError::LoopGuard(_)) => Status::LoopGuard,
        HostError::Storage(StorageError::QuotaExceeded { .. })
        | HostError::TooManyTimers { .. }
        | HostError::QuotaExceeded { .. }
        | HostError::TooManySubscriptions { .. } => Status::QuotaExceeded,
        HostError::Storage(StorageError::InvalidKey { .. }) => Status::InvalidName,
        _ => Status::Internal,
    }
}

/// Reads a name (≤ 255 bytes of UTF-8) and hands it to `f` with the plugin's context.
fn with_name(
    c: &mut C<'_>,
    ptr: i32,
    len: i32,
    f: impl FnOnce(&PluginContext, &str) -> Result<i32, HostError>,
) -> Result<i32, Status> {
    let mem = memory(c)?;
    let name = guest_memory::text(&mem, c, ptr, len, MAX_NAME)?;
    f(ctx(c)?, name).map_err(|e| status_of(&e))
}

/// Writes a result into the guest's buffer, or keeps it pending if it does not fit.
fn deliver(c: &mut C<'_>, out_ptr: i32, out_cap: i32, data: Vec<u8>) -> Result<i32, Status> {
    c.data_mut().charge_bytes(data.len())?;
    let mem = memory(c)?;
    match write_result(&mem, &mut *c, out_ptr, out_cap, &data)? {
        Some(n) => Ok(n),
        None => {
            let n = i32::try_from(data.len()).map_err(|_| Status::TooLarge)?;
            c.data_mut().pending = Some(data);
            Ok(n)
        }
    }
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, Status> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes).map_err(|_| Status::BadJson)? {
        Value::Object(map) => Ok(map),
        _ => Err(Status::NotAnObject),
    }
}

fn entity_id(c: &C<'_>, mem: &Memory, ptr: i32, len: i32) -> Result<EntityId, Status> {
    let text = guest_memory::text(mem, c, ptr, len, MAX_NAME)?;
    EntityId::new(text).map_err(|_| Status::InvalidEntityId)
}

fn log(c: &mut C<'_>, level: i32, ptr: i32, len: i32) -> Result<i32, Status> {
    let level = match level {
        v1::log_level::DEBUG => LogLevel::Debug,
        v1::log_level::INFO => LogLevel::Info,
        v1::log_level::WARN => LogLevel::Warn,
        v1::log_level::ERROR => LogLevel::Error,
        _ => return Err(Status::InvalidArgument),
    };
    let mem = memory(c)?;
    let bytes = guest_memory::bytes(&mem, c, ptr, len, MAX_PAYLOAD)?;
    let text = capped_text(bytes)?;
    let text = text.to_owned();
    c.data_mut().charge_bytes(text.len())?;
    ctx(c)?.log(level, &text);
    Ok(0)
}

/// The first `MAX_LOG_LINE` bytes as text, cut at a character boundary; invalid UTF-8 before
/// the cut is refused.
fn capped_text(bytes: &[u8]) -> Result<&str, Status> {
    let head = &bytes[..bytes.len().min(MAX_LOG_LINE)];
    match std::str::from_utf8(head) {
        Ok(text) => Ok(text),
        // A character cut by the cap is not an error; anything else is.
        Err(e) if e.error_len().is_none() && head.len() < bytes.len() => {
            Ok(std::str::from_utf8(&head[..e.valid_up_to()]).map_err(|_| Status::BadUtf8)?)
        }
        Err(_) => Err(Status::BadUtf8),
    }
}

fn error(c: &mut C<'_>, ptr: i32, len: i32) -> Result<i32, Status> {
    let mem = memory(c)?;
    let bytes = guest_memory::bytes(&mem, c, ptr, len, MAX_PAYLOAD)?;
    let message = capped_text(bytes)?.to_owned();
    c.data_mut().error = Some(message);
    Ok(0)
}

fn state_get(c: &mut C<'_>, ptr: i32, len: i32, out_ptr: i32, out_cap: i32) -> Result<i32, Status> {
    let mem = memory(c)?;
    let id = entity_id(c, &mem, ptr, len)?;
    let state = ctx(c)?
        .get_state(&id)
        .map_err(|e| status_of(&e))?
        .ok_or(Status::NotFound)?;
    let json = serde_json::to_vec(&*state).map_err(|_| Status::Internal)?;
    deliver(c, out_ptr, out_cap, json)
}

fn state_set(
    c: &mut C<'_>,
    ip: i32,
    il: i32,
    sp: i32,
    sl: i32,
    ap: i32,
    al: i32,
) -> Result<i32, Status> {
    let mem = memory(c)?;
    let id = entity_id(c, &mem, ip, il)?;
    let state = guest_memory::text(&mem, c, sp, sl, MAX_PAYLOAD)?;
    let attributes = parse_object(guest_memory::bytes(&mem, c, ap, al, MAX_PAYLOAD)?)?;
    let written = state.len() + usize::try_from(al).unwrap_or(0);
    let state = state.to_owned();
    c.data_mut().charge_bytes(written)?;
    let outcome = ctx(c)?
        .set_state(&id, &state, Attributes::from(attributes))
        .map_err(|e| status_of(&e))?;
    Ok(i32::from(outcome.changed))
}

fn state_remove(c: &mut C<'_>, ptr: i32, len: i32) -> Result<i32, Status> {
    let mem = memory(c)?;
    let id = entity_id(c, &mem, ptr, len)?;
    let removed = ctx(c)?.remove_state(&id).map_err(|e| status_of(&e))?;
    Ok(i32::from(removed.is_some()))
}

/// Why an async import did not answer.
enum Waited {
    /// A status for the guest.
    Status(Status),
    /// The call's deadline (plus slack) passed while waiting: the call fails as a timeout.
    PastDeadline,
}

impl From<Status> for Waited {
    fn from(status: Status) -> Self {
        Self::Status(status)
    }
}

async fn service_call(c: &mut C<'_>, rp: i32, rl: i32, op: i32, oc: i32) -> Result<i32, Waited> {
    c.data_mut().charge_call()?;
    let mem = memory(c)?;
    guest_memory::check_out(&mem, &*c, op, oc)?;
    // Copy the request: the guest's memory cannot stay borrowed across the await.
    let request = guest_memory::bytes(&mem, &*c, rp, rl, MAX_PAYLOAD)?.to_vec();
    let request: wire::ServiceRequest<'_> =
        serde_json::from_slice(&request).map_err(|_| Status::BadJson)?;
    let data = parse_object(request.data.map_or(&b""[..], |raw| raw.get().as_bytes()))?;
    c.data_mut().charge_bytes(rl.max(0) as usize)?;
    let ctx = ctx(c)?.clone();
    // Epochs cannot interrupt a guest waiting here, so this wait has its own deadline.
    let until = c.data().deadline + c.data().import_slack;
    let call = ctx.call_service(&request.domain, &request.service, Value::Object(data));
    let response = tokio::time::timeout_at(tokio::time::Instant::from_std(until), call)
        .await
        .map_err(|_| Waited::PastDeadline)?
        .map_err(|e| status_of(&e))?;
    let result = serde_json::json!({
        "changed_states": response.changed_states,
        "response": response.response,
    });
    let bytes = serde_json::to_vec(&result).map_err(|_| Status::Internal)?;
    Ok(deliver(c, op, oc, bytes)?)
}

fn event_fire(c: &mut C<'_>, tp: i32, tl: i32, dp: i32, dl: i32) -> Result<i32, Status> {
    let mem = memory(c)?;
    let event_type = guest_memory::text(&mem, c, tp, tl, MAX_NAME)?;
    let data = parse_object(guest_memory::bytes(&mem, c, dp, dl, MAX_PAYLOAD)?)?;
    let event_type = event_type.to_owned();
    c.data_mut()
        .charge_bytes(usize::try_from(dl).unwrap_or(0))?;
    ctx(c)?
        .fire_event(&event_type, Value::Object(data))
        .map_err(|e| status_of(&e))?;
    Ok(0)
}

fn kv_get(c: &mut C<'_>, kp: i32, kl: i32, op: i32, oc: i32) -> Result<i32, Status> {
    let mem = memory(c)?;
    let key = guest_memory::text(&mem, c, kp, kl, MAX_NAME)?;
    let value = ctx(c)?
        .kv_get(key)
        .map_err(|e| status_of(&e))?
        .ok_or(Status::NotFound)?;
    deliver(c, op, oc, value)
}

fn kv_set(c: &mut C<'_>, kp: i32, kl: i32, vp: i32, vl: i32) -> Result<i32, Status> {
    let mem = memory(c)?;
    let key = guest_memory::text(&mem, c, kp, kl, MAX_NAME)?;
    let value = guest_memory::bytes(&mem, c, vp, vl, MAX_PAYLOAD)?;
    let (key, value) = (key.to_owned(), value.to_vec());
    c.data_mut().charge_bytes(value.len())?;
    ctx(c)?.kv_set(&key, &value).map_err(|e| status_of(&e))?;
    Ok(0)
}

fn take_result(c: &mut C<'_>, out_ptr: i32, out_cap: i32) -> Result<i32, Status> {
    let pending = c.data_mut().pending.take().ok_or(Status::NotFound)?;
    let mem = memory(c)?;
    let written = write_result(&mem, &mut *c, out_ptr, out_cap, &pending);
    let len = i32::try_from(pending.len()).map_err(|_| Status::TooLarge)?;
    match written {
        Ok(Some(n)) => Ok(n),
        Ok(None) => {
            // Still too small: keep it for a retry with a bigger buffer.
            c.data_mut().pending = Some(pending);
            Ok(len)
        }
        Err(s) => {
            c.data_mut().pending = Some(pending);
            Err(s)
        }
    }
}

fn timer_start(c: &mut C<'_>, token: i64, delay_ms: i64) -> Result<i32, Status> {
    let delay_ms = u64::try_from(delay_ms).map_err(|_| Status::InvalidArgument)?;
    // A week is the longest delay that makes sense for a home; anything longer is a bug.
    if delay_ms > 7 * 24 * 3_600_000 {
        return Err(Status::InvalidArgument);
    }
    ctx(c)?
        .start_timer(token as u64, Duration::from_millis(delay_ms))
        .map_err(|e| status_of(&e))?;
    Ok(0)
}

fn monotonic_ns() -> i64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_text_is_cut_at_a_character_boundary_but_bad_utf8_is_refused() {
        let long = "é".repeat(MAX_LOG_LINE);
        let cut = capped_text(long.as_bytes()).expect("a cut character is fine");
        assert!(cut.len() <= MAX_LOG_LINE && cut.len() >= MAX_LOG_LINE - 1);
        assert_eq!(capped_text(&[0xff, b'a']), Err(Status::BadUtf8));
        assert_eq!(capped_text(b"hello"), Ok("hello"));
    }

    #[test]
    fn objects_only() {
        assert_eq!(parse_object(b"").map(|m| m.len()), Ok(0));
        assert_eq!(parse_object(b"[1]"), Err(Status::NotAnObject));
        assert_eq!(parse_object(b"{"), Err(Status::BadJson));
        assert_eq!(parse_object(b"null"), Err(Status::NotAnObject));
    }
}
