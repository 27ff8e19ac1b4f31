//! The wasm boundary: the only module of the SDK with `unsafe` code.
//!
//! - The host imports (`homecore_v1`), wrapped in safe functions over slices. On targets other
//!   than wasm32 the wrappers call `testing::FakeHost` when a test installed one, and
//!   answer [`Status::Internal`] otherwise, so the SDK and plugins build and test on the host.
//! - Payload text: a payload the host wrote in ASCII becomes a `str` after a word-at-a-time
//!   ASCII check instead of a full UTF-8 validation (anything else is validated).
//! - The allocator behind `hc_alloc` / `hc_free`: Rust's global allocator (dlmalloc on
//!   wasm32) with the fixed alignment [`BUFFER_ALIGN`].
//! - The export glue that [`export_plugin!`](crate::export_plugin) expands to (wasm32 only):
//!   it takes ownership of the host's payload buffers, hands them to [`crate::dispatch`] as
//!   slices and frees them afterwards.
#![allow(
    unsafe_code,
    reason = "raw pointers cross the wasm boundary here and nowhere else"
)]

use std::alloc::Layout;
use std::ptr::NonNull;

use homecore_abi::v1::Status;

/// Alignment of every buffer `hc_alloc` returns (and `hc_free` expects).
pub const BUFFER_ALIGN: usize = 8;

// ---------------------------------------------------------------------------------------------
// Imports
// ---------------------------------------------------------------------------------------------

#[cfg(target_arch = "wasm32")]
mod sys {
    #[link(wasm_import_module = "homecore_v1")]
    unsafe extern "C" {
        pub(super) fn log(level: i32, msg_ptr: i32, msg_len: i32) -> i32;
        pub(super) fn error(msg_ptr: i32, msg_len: i32) -> i32;
        pub(super) fn state_get(id_ptr: i32, id_len: i32, out_ptr: i32, out_cap: i32) -> i32;
        pub(super) fn state_set(
            id_ptr: i32,
            id_len: i32,
            state_ptr: i32,
            state_len: i32,
            attrs_ptr: i32,
            attrs_len: i32,
        ) -> i32;
        pub(super) fn state_remove(id_ptr: i32, id_len: i32) -> i32;
        pub(super) fn subscribe(pattern_ptr: i32, pattern_len: i32) -> i32;
        pub(super) fn subscribe_event(type_ptr: i32, type_len: i32) -> i32;
        pub(super) fn service_call(req_ptr: i32, req_len: i32, out_ptr: i32, out_cap: i32) -> i32;
        pub(super) fn service_register(name_ptr: i32, name_len: i32) -> i32;
        pub(super) fn event_fire(type_ptr: i32, type_len: i32, data_ptr: i32, data_len: i32)
        -> i32;
        pub(super) fn kv_get(key_ptr: i32, key_len: i32, out_ptr: i32, out_cap: i32) -> i32;
        pub(super) fn kv_set(key_ptr: i32, key_len: i32, val_ptr: i32, val_len: i32) -> i32;
        pub(super) fn kv_delete(key_ptr: i32, key_len: i32) -> i32;
        pub(super) fn take_result(out_ptr: i32, out_cap: i32) -> i32;
        pub(super) fn time_monotonic_ns() -> i64;
        pub(super) fn timer_start(token: i64, delay_ms: i64) -> i32;
        pub(super) fn timer_cancel(token: i64) -> i32;
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) use self::wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use self::stand_in::*;

/// The imports on wasm32: each wrapper passes its slices as `(ptr, len)` pairs.
///
/// Every `unsafe` call below passes pointers derived from live Rust slices with their exact
/// length (output buffers with their capacity, which the host writes at most that many bytes
/// into); the slices outlive the call, and the host only borrows them for its duration
/// (ABI v1, "Guest → host arguments" and "Host → guest results of an import").
#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{Status, sys};

    const TOO_LARGE: i32 = Status::TooLarge.code();

    /// An argument slice as `(ptr, len)`, or `None` when its length does not fit an `i32`.
    fn arg(bytes: &[u8]) -> Option<(i32, i32)> {
        let len = i32::try_from(bytes.len()).ok()?;
        // wasm32 addresses are 32 bits wide; the ABI carries them in an i32, bit for bit.
        Some((bytes.as_ptr() as usize as i32, len))
    }

    /// An output slice as `(out_ptr, out_cap)`; a capacity above `i32::MAX` is announced as
    /// `i32::MAX`.
    fn out(bytes: &mut [u8]) -> (i32, i32) {
        let cap = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
        (bytes.as_mut_ptr() as usize as i32, cap)
    }

    /// `log(level, msg)`.
    pub(crate) fn log(level: i32, msg: &[u8]) -> i32 {
        let Some((p, l)) = arg(msg) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::log(level, p, l) }
    }

    /// `error(msg)`: the current export call's error message.
    pub(crate) fn error(msg: &[u8]) -> i32 {
        let Some((p, l)) = arg(msg) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::error(p, l) }
    }

    /// `state_get(id, out)`.
    pub(crate) fn state_get(id: &[u8], result: &mut [u8]) -> i32 {
        let Some((ip, il)) = arg(id) else {
            return TOO_LARGE;
        };
        let (op, oc) = out(result);
        // SAFETY: see the module docs.
        unsafe { sys::state_get(ip, il, op, oc) }
    }

    /// `state_set(id, state, attrs)`.
    pub(crate) fn state_set(id: &[u8], state: &[u8], attrs: &[u8]) -> i32 {
        let (Some((ip, il)), Some((sp, sl)), Some((ap, al))) = (arg(id), arg(state), arg(attrs))
        else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::state_set(ip, il, sp, sl, ap, al) }
    }

    /// `state_remove(id)`.
    pub(crate) fn state_remove(id: &[u8]) -> i32 {
        let Some((p, l)) = arg(id) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::state_remove(p, l) }
    }

    /// `subscribe(pattern)`.
    pub(crate) fn subscribe(pattern: &[u8]) -> i32 {
        let Some((p, l)) = arg(pattern) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::subscribe(p, l) }
    }

    /// `subscribe_event(type)`.
    pub(crate) fn subscribe_event(event_type: &[u8]) -> i32 {
        let Some((p, l)) = arg(event_type) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::subscribe_event(p, l) }
    }

    /// `service_call(request, out)`.
    pub(crate) fn service_call(request: &[u8], result: &mut [u8]) -> i32 {
        let Some((rp, rl)) = arg(request) else {
            return TOO_LARGE;
        };
        let (op, oc) = out(result);
        // SAFETY: see the module docs.
        unsafe { sys::service_call(rp, rl, op, oc) }
    }

    /// `service_register(name)`.
    pub(crate) fn service_register(name: &[u8]) -> i32 {
        let Some((p, l)) = arg(name) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::service_register(p, l) }
    }

    /// `event_fire(type, data)`.
    pub(crate) fn event_fire(event_type: &[u8], data: &[u8]) -> i32 {
        let (Some((tp, tl)), Some((dp, dl))) = (arg(event_type), arg(data)) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::event_fire(tp, tl, dp, dl) }
    }

    /// `kv_get(key, out)`.
    pub(crate) fn kv_get(key: &[u8], result: &mut [u8]) -> i32 {
        let Some((kp, kl)) = arg(key) else {
            return TOO_LARGE;
        };
        let (op, oc) = out(result);
        // SAFETY: see the module docs.
        unsafe { sys::kv_get(kp, kl, op, oc) }
    }

    /// `kv_set(key, value)`.
    pub(crate) fn kv_set(key: &[u8], value: &[u8]) -> i32 {
        let (Some((kp, kl)), Some((vp, vl))) = (arg(key), arg(value)) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::kv_set(kp, kl, vp, vl) }
    }

    /// `kv_delete(key)`.
    pub(crate) fn kv_delete(key: &[u8]) -> i32 {
        let Some((p, l)) = arg(key) else {
            return TOO_LARGE;
        };
        // SAFETY: see the module docs.
        unsafe { sys::kv_delete(p, l) }
    }

    /// `take_result(out)`.
    pub(crate) fn take_result(result: &mut [u8]) -> i32 {
        let (op, oc) = out(result);
        // SAFETY: see the module docs.
        unsafe { sys::take_result(op, oc) }
    }

    /// `time_monotonic_ns()`.
    pub(crate) fn time_monotonic_ns() -> i64 {
        // SAFETY: no pointers are passed.
        unsafe { sys::time_monotonic_ns() }
    }

    /// `timer_start(token, delay_ms)`.
    pub(crate) fn timer_start(token: i64, delay_ms: i64) -> i32 {
        // SAFETY: no pointers are passed.
        unsafe { sys::timer_start(token, delay_ms) }
    }

    /// `timer_cancel(token)`.
    pub(crate) fn timer_cancel(token: i64) -> i32 {
        // SAFETY: no pointers are passed.
        unsafe { sys::timer_cancel(token) }
    }
}

/// The imports on other targets: the `testing::FakeHost` installed on this thread,
/// or [`Status::Internal`] when there is none.
#[cfg(not(target_arch = "wasm32"))]
mod stand_in {
    use super::Status;
    use crate::testing::with_fake;

    const INTERNAL: i32 = Status::Internal.code();

    pub(crate) fn log(level: i32, msg: &[u8]) -> i32 {
        with_fake(|h| h.log(level, msg)).unwrap_or(INTERNAL)
    }
    pub(crate) fn error(msg: &[u8]) -> i32 {
        with_fake(|h| h.error(msg)).unwrap_or(INTERNAL)
    }
    pub(crate) fn state_get(id: &[u8], result: &mut [u8]) -> i32 {
        with_fake(|h| h.state_get(id, result)).unwrap_or(INTERNAL)
    }
    pub(crate) fn state_set(id: &[u8], state: &[u8], attrs: &[u8]) -> i32 {
        with_fake(|h| h.state_set(id, state, attrs)).unwrap_or(INTERNAL)
    }
    pub(crate) fn state_remove(id: &[u8]) -> i32 {
        with_fake(|h| h.state_remove(id)).unwrap_or(INTERNAL)
    }
    pub(crate) fn subscribe(pattern: &[u8]) -> i32 {
        with_fake(|h| h.subscribe(pattern)).unwrap_or(INTERNAL)
    }
    pub(crate) fn subscribe_event(event_type: &[u8]) -> i32 {
        with_fake(|h| h.subscribe_event(event_type)).unwrap_or(INTERNAL)
    }
    pub(crate) fn service_call(request: &[u8], result: &mut [u8]) -> i32 {
        with_fake(|h| h.service_call(request, result)).unwrap_or(INTERNAL)
    }
    pub(crate) fn service_register(name: &[u8]) -> i32 {
        with_fake(|h| h.service_register(name)).unwrap_or(INTERNAL)
    }
    pub(crate) fn event_fire(event_type: &[u8], data: &[u8]) -> i32 {
        with_fake(|h| h.event_fire(event_type, data)).unwrap_or(INTERNAL)
    }
    pub(crate) fn kv_get(key: &[u8], result: &mut [u8]) -> i32 {
        with_fake(|h| h.kv_get(key, result)).unwrap_or(INTERNAL)
    }
    pub(crate) fn kv_set(key: &[u8], value: &[u8]) -> i32 {
        with_fake(|h| h.kv_set(key, value)).unwrap_or(INTERNAL)
    }
    pub(crate) fn kv_delete(key: &[u8]) -> i32 {
        with_fake(|h| h.kv_delete(key)).unwrap_or(INTERNAL)
    }
    pub(crate) fn take_result(result: &mut [u8]) -> i32 {
        with_fake(|h| h.take_result(result)).unwrap_or(INTERNAL)
    }
    pub(crate) fn time_monotonic_ns() -> i64 {
        with_fake(|h| h.time_monotonic_ns()).unwrap_or(INTERNAL.into())
    }
    pub(crate) fn timer_start(token: i64, delay_ms: i64) -> i32 {
        with_fake(|h| h.timer_start(token, delay_ms)).unwrap_or(INTERNAL)
    }
    pub(crate) fn timer_cancel(token: i64) -> i32 {
        with_fake(|h| h.timer_cancel(token)).unwrap_or(INTERNAL)
    }
}

// ---------------------------------------------------------------------------------------------
// Payload text
// ---------------------------------------------------------------------------------------------

/// A host payload as text. The host writes JSON that is almost always ASCII, which this
/// recognises 32 bytes per step; anything else goes through `str::from_utf8`. (On wasm32,
/// whose words are four bytes, `from_utf8` alone was an eighth of a metered guest's event
/// handling.)
///
/// # Errors
/// `from_utf8`'s error when the payload is not UTF-8.
pub(crate) fn payload_text(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    if all_ascii(bytes) {
        // SAFETY: `all_ascii` checked that every byte is below 0x80, and ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// Whether every byte is below 0x80: four eight-byte words or-ed together per step, then
/// words, then bytes.
fn all_ascii(bytes: &[u8]) -> bool {
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let word = |chunk: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        u64::from_ne_bytes(w)
    };
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        let (a, rest) = block.split_at(8);
        let (b, rest) = rest.split_at(8);
        let (c, d) = rest.split_at(8);
        if (word(a) | word(b) | word(c) | word(d)) & HIGH != 0 {
            return false;
        }
    }
    let mut words = blocks.remainder().chunks_exact(8);
    words.all(|w| word(w) & HIGH == 0) && words.remainder().is_ascii()
}

// ---------------------------------------------------------------------------------------------
// Allocator
// ---------------------------------------------------------------------------------------------

#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "used by the wasm32 export glue")
)]
fn buffer_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size, BUFFER_ALIGN).ok()
}

/// The non-null, aligned address standing for every zero-byte buffer (never dereferenced).
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "used by the wasm32 export glue")
)]
fn empty_buffer() -> NonNull<u8> {
    NonNull::new(std::ptr::without_provenance_mut(BUFFER_ALIGN)).expect("BUFFER_ALIGN is not zero")
}

/// Allocates a buffer of `size` bytes with [`BUFFER_ALIGN`] from the global allocator.
///
/// A size of 0 gives a dangling, aligned, non-null address that [`free_buffer`] ignores; a
/// negative size, a size the allocator refuses, or exhausted memory gives `None`.
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "used by the wasm32 export glue")
)]
pub(crate) fn alloc_buffer(size: i32) -> Option<NonNull<u8>> {
    let size = usize::try_from(size).ok()?;
    if size == 0 {
        return Some(empty_buffer());
    }
    let layout = buffer_layout(size)?;
    // SAFETY: `layout` has a non-zero size, as `alloc` requires.
    NonNull::new(unsafe { std::alloc::alloc(layout) })
}

/// Frees a buffer from [`alloc_buffer`]. A size of 0 is a no-op.
///
/// # Safety
/// `ptr` must come from `alloc_buffer(size)` with this same `size`, and must not have been freed.
#[cfg_attr(
    not(target_arch = "wasm32"),
    allow(dead_code, reason = "used by the wasm32 export glue")
)]
pub(crate) unsafe fn free_buffer(ptr: NonNull<u8>, size: usize) {
    if size == 0 {
        return;
    }
    let Some(layout) = buffer_layout(size) else {
        return;
    };
    // SAFETY: the caller guarantees `ptr` was allocated by `alloc_buffer(size)`, which used this
    // very layout, and that it is still live.
    unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) }
}

/// A buffer the host filled through `hc_alloc` and handed to an export: the guest owns it from
/// then on, and it is freed when this value drops (after the export's work is done).
#[cfg(target_arch = "wasm32")]
struct GuestBuffer {
    ptr: NonNull<u8>,
    len: usize,
}

#[cfg(target_arch = "wasm32")]
impl GuestBuffer {
    /// Takes ownership of `(ptr, len)`; `None` for a negative length or a null pointer (which
    /// `hc_alloc` never returns).
    ///
    /// # Safety
    /// `(ptr, len)` must be a buffer returned by `hc_alloc(len)` that was not freed, whose
    /// ownership the host hands over (ABI v1: host → guest payloads), and whose `len` bytes the
    /// host initialised.
    unsafe fn take(ptr: i32, len: i32) -> Option<Self> {
        let len = usize::try_from(len).ok()?;
        let ptr = if len == 0 {
            empty_buffer()
        } else {
            NonNull::new(ptr as u32 as usize as *mut u8)?
        };
        Some(Self { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `take`'s contract: `ptr` points to `len` initialised bytes that this value
        // owns (nothing else reads or writes them until it drops); for `len == 0` the pointer
        // is dangling but aligned and non-null, which a zero-length slice allows.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

#[cfg(target_arch = "wasm32")]
impl Drop for GuestBuffer {
    fn drop(&mut self) {
        // SAFETY: `take`'s contract: the buffer came from `hc_alloc(len)`, i.e.
        // `alloc_buffer(len)`, and this value is its only owner.
        unsafe { free_buffer(self.ptr, self.len) }
    }
}

// ---------------------------------------------------------------------------------------------
// Export glue (what `export_plugin!` expands to), wasm32 only
// ---------------------------------------------------------------------------------------------

/// `hc_alloc(size) -> ptr`: a buffer of `size` bytes, 0 on failure.
#[cfg(target_arch = "wasm32")]
#[must_use]
pub fn hc_alloc(size: i32) -> i32 {
    alloc_buffer(size).map_or(0, |ptr| ptr.as_ptr() as usize as i32)
}

/// `hc_free(ptr, size)`: releases a buffer from `hc_alloc`. A null pointer or a size of 0 or
/// below is ignored.
///
/// # Safety
/// A non-null `ptr` with a positive `size` must come from `hc_alloc(size)` and not have been
/// freed (the host's side of the ABI's ownership rules).
#[cfg(target_arch = "wasm32")]
pub unsafe fn hc_free(ptr: i32, size: i32) {
    let (Some(ptr), Ok(size)) = (
        NonNull::new(ptr as u32 as usize as *mut u8),
        usize::try_from(size),
    ) else {
        return;
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { free_buffer(ptr, size) }
}

/// Takes a payload buffer and runs `f` on its bytes, or reports a bad pointer.
///
/// # Safety
/// As `GuestBuffer::take`.
#[cfg(target_arch = "wasm32")]
unsafe fn with_payload<R>(ptr: i32, len: i32, bad: R, f: impl FnOnce(&[u8]) -> R) -> R {
    // SAFETY: forwarded from this function's contract.
    match unsafe { GuestBuffer::take(ptr, len) } {
        Some(buffer) => f(buffer.bytes()),
        None => {
            crate::dispatch::fail(
                Status::BadPointer,
                "the payload's pointer or length is invalid",
            );
            bad
        }
    }
}

/// `hc_setup(config_ptr, config_len) -> status`: makes a fresh plugin with `new` and sets it up.
///
/// # Safety
/// `(ptr, len)` must be a buffer from `hc_alloc(len)`, initialised by the host and not freed,
/// whose ownership the host hands over (ABI v1: host → guest payloads).
#[cfg(target_arch = "wasm32")]
pub unsafe fn hc_setup(
    ptr: i32,
    len: i32,
    new: fn() -> Box<dyn crate::dispatch::DynPlugin>,
) -> i32 {
    install_panic_hook();
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_payload(ptr, len, Status::BadPointer.code(), |bytes| {
            crate::dispatch::setup(bytes, new)
        })
    }
}

/// `hc_teardown() -> status`.
#[cfg(target_arch = "wasm32")]
#[must_use]
pub fn hc_teardown() -> i32 {
    crate::dispatch::teardown()
}

/// `hc_on_state_changed(event_ptr, event_len) -> status`.
///
/// # Safety
/// `(ptr, len)` must be a buffer from `hc_alloc(len)`, initialised by the host and not freed,
/// whose ownership the host hands over (ABI v1: host → guest payloads).
#[cfg(target_arch = "wasm32")]
pub unsafe fn hc_on_state_changed(ptr: i32, len: i32) -> i32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_payload(
            ptr,
            len,
            Status::BadPointer.code(),
            crate::dispatch::on_state_changed,
        )
    }
}

/// `hc_on_event(event_ptr, event_len) -> status`.
///
/// # Safety
/// `(ptr, len)` must be a buffer from `hc_alloc(len)`, initialised by the host and not freed,
/// whose ownership the host hands over (ABI v1: host → guest payloads).
#[cfg(target_arch = "wasm32")]
pub unsafe fn hc_on_event(ptr: i32, len: i32) -> i32 {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        with_payload(
            ptr,
            len,
            Status::BadPointer.code(),
            crate::dispatch::on_event,
        )
    }
}

/// `hc_on_timer(token) -> status`.
#[cfg(target_arch = "wasm32")]
#[must_use]
pub fn hc_on_timer(token: i64) -> i32 {
    crate::dispatch::on_timer(token)
}

/// `hc_call_service(call_ptr, call_len) -> i64`: 0 for no response data, `(ptr << 32) | len`
/// of a buffer from `hc_alloc` holding the response JSON (the host frees it with `hc_free`),
/// or a negative status.
///
/// # Safety
/// `(ptr, len)` must be a buffer from `hc_alloc(len)`, initialised by the host and not freed,
/// whose ownership the host hands over (ABI v1: host → guest payloads).
#[cfg(target_arch = "wasm32")]
pub unsafe fn hc_call_service(ptr: i32, len: i32) -> i64 {
    // SAFETY: forwarded from this function's contract.
    let response = unsafe {
        with_payload(
            ptr,
            len,
            Err(Status::BadPointer.code()),
            crate::dispatch::call_service,
        )
    };
    match response {
        Ok(None) => 0,
        Ok(Some(json)) => response_buffer(&json),
        Err(code) => code.into(),
    }
}

/// Copies a service response into a buffer from `hc_alloc` and packs it for the host.
#[cfg(target_arch = "wasm32")]
fn response_buffer(json: &[u8]) -> i64 {
    // The response is bounded by MAX_PAYLOAD (checked by dispatch), so it fits an i32.
    let Ok(len) = i32::try_from(json.len()) else {
        return crate::dispatch::fail(Status::TooLarge, "service response does not fit an i32")
            .into();
    };
    let Some(buffer) = alloc_buffer(len) else {
        return crate::dispatch::fail(Status::GuestError, "no memory for the service response")
            .into();
    };
    // wasm32 addresses are 32 bits wide. One at or above 2 GiB would pack to a negative i64,
    // which the host reads as a status.
    let addr = buffer.as_ptr() as usize as u32;
    if i32::try_from(addr).is_err() {
        // SAFETY: `buffer` was just allocated by `alloc_buffer(len)` and not handed out.
        unsafe { free_buffer(buffer, json.len()) };
        return crate::dispatch::fail(
            Status::GuestError,
            "service response buffer lies above 2 GiB",
        )
        .into();
    }
    // SAFETY: `buffer` is a fresh allocation of `json.len()` bytes that cannot overlap `json`.
    unsafe { std::ptr::copy_nonoverlapping(json.as_ptr(), buffer.as_ptr(), json.len()) };
    homecore_abi::v1::pack_ptr_len(addr, len.unsigned_abs())
}

/// Sends a panic's message to the host through `error` before the module traps, so the host can
/// show why (wasm32 panics abort).
#[cfg(target_arch = "wasm32")]
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::host::report_error(&format!("plugin panicked: {info}"));
        }));
    });
}

/// Generates a plugin module's ABI exports and its ABI version section for a [`Plugin`] type.
///
/// Call it once, in the crate that is built as the `cdylib`:
///
/// ```
/// use homecore_plugin_sdk::{Config, Plugin, Result, StateChangedEvent};
///
/// #[derive(Default)]
/// struct Hello;
///
/// impl Plugin for Hello {
///     fn setup(&mut self, _config: &Config<'_>) -> Result<()> {
///         homecore_plugin_sdk::subscribe("light.*")
///     }
///
///     fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> Result<()> {
///         homecore_plugin_sdk::info!("{} changed", event.entity_id);
///         Ok(())
///     }
/// }
///
/// homecore_plugin_sdk::export_plugin!(Hello);
/// ```
///
/// On wasm32 this expands to `hc_alloc`, `hc_free`, `hc_setup`, `hc_teardown`,
/// `hc_on_state_changed`, `hc_call_service`, `hc_on_event` and `hc_on_timer`, and to a
/// `homecore_abi` custom section declaring ABI v1. On other targets it only checks that the
/// type implements [`Plugin`] (test plugins there with `testing::FakeHost`).
///
/// `hc_setup` makes a fresh `P::default()` every time it is called; `hc_teardown` drops the
/// instance after its `teardown`.
///
/// [`Plugin`]: crate::Plugin
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: fn() = || {
            fn is_a_plugin<P: $crate::Plugin>() {}
            is_a_plugin::<$plugin>();
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            /// ABI v1's version record (`homecore_abi::v1::ABI_SECTION`).
            #[used]
            #[unsafe(link_section = "homecore_abi")]
            static HOMECORE_ABI_VERSION: [u8; 4] = $crate::__private::ABI_SECTION_CONTENT;

            /// `hc_alloc(size: i32) -> i32`.
            #[unsafe(no_mangle)]
            extern "C" fn hc_alloc(size: i32) -> i32 {
                $crate::__private::hc_alloc(size)
            }

            /// `hc_free(ptr: i32, size: i32)`.
            ///
            /// # Safety
            /// Called by the host with a buffer from `hc_alloc(size)`.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hc_free(ptr: i32, size: i32) {
                // SAFETY: the host frees only what hc_alloc gave it, with the same size (ABI v1).
                unsafe { $crate::__private::hc_free(ptr, size) }
            }

            /// `hc_setup(config_ptr: i32, config_len: i32) -> i32`.
            ///
            /// # Safety
            /// Called by the host with a buffer from `hc_alloc(config_len)` it hands over.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hc_setup(ptr: i32, len: i32) -> i32 {
                // SAFETY: the host hands over a buffer from hc_alloc(len) (ABI v1).
                unsafe {
                    $crate::__private::hc_setup(ptr, len, $crate::__private::new_plugin::<$plugin>)
                }
            }

            /// `hc_teardown() -> i32`.
            #[unsafe(no_mangle)]
            extern "C" fn hc_teardown() -> i32 {
                $crate::__private::hc_teardown()
            }

            /// `hc_on_state_changed(event_ptr: i32, event_len: i32) -> i32`.
            ///
            /// # Safety
            /// Called by the host with a buffer from `hc_alloc(event_len)` it hands over.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hc_on_state_changed(ptr: i32, len: i32) -> i32 {
                // SAFETY: the host hands over a buffer from hc_alloc(len) (ABI v1).
                unsafe { $crate::__private::hc_on_state_changed(ptr, len) }
            }

            /// `hc_call_service(call_ptr: i32, call_len: i32) -> i64`.
            ///
            /// # Safety
            /// Called by the host with a buffer from `hc_alloc(call_len)` it hands over.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hc_call_service(ptr: i32, len: i32) -> i64 {
                // SAFETY: the host hands over a buffer from hc_alloc(len) (ABI v1).
                unsafe { $crate::__private::hc_call_service(ptr, len) }
            }

            /// `hc_on_event(event_ptr: i32, event_len: i32) -> i32`.
            ///
            /// # Safety
            /// Called by the host with a buffer from `hc_alloc(event_len)` it hands over.
            #[unsafe(no_mangle)]
            unsafe extern "C" fn hc_on_event(ptr: i32, len: i32) -> i32 {
                // SAFETY: the host hands over a buffer from hc_alloc(len) (ABI v1).
                unsafe { $crate::__private::hc_on_event(ptr, len) }
            }

            /// `hc_on_timer(token: i64) -> i32`.
            #[unsafe(no_mangle)]
            extern "C" fn hc_on_timer(token: i64) -> i32 {
                $crate::__private::hc_on_timer(token)
            }
        };
    };
}

// The stand-in imports exist on the build machine only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn payload_text_accepts_exactly_what_from_utf8_accepts_at_every_position() {
        for len in 0..80 {
            let ascii = vec![b'a'; len];
            assert_eq!(payload_text(&ascii), std::str::from_utf8(&ascii));
            for at in 0..len {
                for insert in [&b"\xc3\xa9"[..], b"\xff", b"\xe2\x82", b"\x7f", b"\x80"] {
                    let mut bytes = ascii.clone();
                    bytes.splice(at..=at, insert.iter().copied());
                    assert_eq!(
                        payload_text(&bytes),
                        std::str::from_utf8(&bytes),
                        "{insert:?} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_sized_buffers_are_dangling_and_freeing_them_is_a_no_op() {
        let ptr = alloc_buffer(0).expect("zero bytes always succeed");
        assert_eq!(ptr.as_ptr() as usize, BUFFER_ALIGN);
        // SAFETY: `ptr` came from alloc_buffer(0).
        unsafe { free_buffer(ptr, 0) };
    }

    #[test]
    fn negative_and_absurd_sizes_are_refused() {
        assert!(alloc_buffer(-1).is_none());
        assert!(alloc_buffer(i32::MIN).is_none());
    }

    #[test]
    fn buffers_are_aligned_and_reusable() {
        for round in 0..10_000 {
            let size = 1 + (round % 97) * 13;
            let ptr = alloc_buffer(size).expect("memory");
            assert_eq!(ptr.as_ptr() as usize % BUFFER_ALIGN, 0);
            let len = usize::try_from(size).expect("positive");
            // SAFETY: `ptr` is a fresh allocation of `len` bytes.
            unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0xA5, len) };
            // SAFETY: `ptr` came from alloc_buffer(size) and is freed once.
            unsafe { free_buffer(ptr, len) };
        }
    }

    #[test]
    fn imports_without_a_fake_host_answer_internal() {
        assert_eq!(state_remove(b"light.x"), Status::Internal.code());
        assert_eq!(state_get(b"light.x", &mut [0; 8]), Status::Internal.code());
        assert_eq!(time_monotonic_ns(), i64::from(Status::Internal.code()));
    }
}
