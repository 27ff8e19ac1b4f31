//! ABI version 1 — FROZEN. Do not edit names, signatures, codes or shapes: add `v2` instead.
//!
//! # Calling convention
//!
//! All pointers and lengths are `i32` offsets and byte counts into the guest's exported
//! `memory`. Text is UTF-8, structured data is JSON (shapes in [`wire`]).
//!
//! # Declaring the version
//!
//! The guest carries a custom section named [`ABI_SECTION`] holding one or more little-endian
//! `u32` records, all equal to the ABI version it was built for (a linker may concatenate
//! copies). The host reads it before compiling the module and refuses a module without it, with
//! mixed versions, or with a version it does not serve.
//!
//! # Memory ownership
//!
//! - Host → guest payloads (config, events, service calls): the host calls [`EXPORT_ALLOC`]
//!   for `len` bytes, writes the payload there, and passes `(ptr, len)` to the export. From that
//!   call on the buffer belongs to the guest, which frees it with its own allocator.
//!   `hc_alloc` returning 0 fails the call.
//! - Guest → host arguments: borrowed for the duration of the import call only; the host copies
//!   what it keeps.
//! - Host → guest results of an import (`state_get`, `kv_get`, `service_call`): the guest passes
//!   an output buffer `(out_ptr, out_cap)`. A non-negative return `n` is the result's length;
//!   the bytes were written only if `n <= out_cap`. Otherwise the host keeps the result as the
//!   *pending result* and the guest fetches it with `take_result` into a buffer of `n` bytes.
//!   A pending result lives until the next import call that produces a result, or the end of
//!   the current export call.
//! - Guest → host results of an export (`hc_call_service`): an `i64` packing
//!   `(ptr << 32) | len` of a guest buffer the host copies and then releases with
//!   [`EXPORT_FREE`]; a negative value is a [`Status`]; 0 means "no response data".
//!
//! # Limits
//!
//! Every guest → host payload is at most [`MAX_PAYLOAD`] bytes; a host → guest event at most
//! [`MAX_EVENT`]. Per call into the guest the host allows a bounded number of import calls and
//! bytes written on the guest's behalf (its manifest limits, capped by host policy); past that
//! every import answers [`Status::QuotaExceeded`].

use core::fmt;

/// This ABI's version.
pub const ABI_VERSION: u32 = 1;

/// The module name every host import is imported from.
pub const IMPORT_MODULE: &str = "homecore_v1";

/// The custom section declaring the guest's ABI version.
pub const ABI_SECTION: &str = "homecore_abi";

/// The exported linear memory.
pub const EXPORT_MEMORY: &str = "memory";

/// `hc_alloc(size: i32) -> i32`: a buffer of `size` bytes, or 0.
pub const EXPORT_ALLOC: &str = "hc_alloc";

/// `hc_free(ptr: i32, size: i32)`: release a buffer from `hc_alloc`.
pub const EXPORT_FREE: &str = "hc_free";

/// Largest guest → host payload (a state write, an event, a log line before capping), bytes.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// Largest host → guest payload (an event with old and new state, a config), bytes.
pub const MAX_EVENT: usize = 256 * 1024;

/// Longest log line kept, bytes; longer lines are cut by the host.
pub const MAX_LOG_LINE: usize = 1024;

/// A wasm value type in a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// `i32`
    I32,
    /// `i64`
    I64,
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::I32 => "i32",
            Self::I64 => "i64",
        })
    }
}

/// One function of the ABI: its name and exact wasm signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncSig {
    /// The function's name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result types.
    pub results: &'static [ValType],
    /// Whether a guest must provide it (exports only; imports are always provided).
    pub required: bool,
}

use ValType::{I32, I64};

const fn f(name: &'static str, params: &'static [ValType], results: &'static [ValType]) -> FuncSig {
    FuncSig {
        name,
        params,
        results,
        required: true,
    }
}

/// Host imports, module [`IMPORT_MODULE`]. Every import returns a [`Status`] code (negative) on
/// failure; on success the meaning of the non-negative value is given per function.
pub const IMPORTS: &[FuncSig] = &[
    // (level, msg_ptr, msg_len) -> 0. Levels: 0 debug, 1 info, 2 warn, 3 error.
    f("log", &[I32, I32, I32], &[I32]),
    // (msg_ptr, msg_len) -> 0. The current export call's error message.
    f("error", &[I32, I32], &[I32]),
    // (id_ptr, id_len, out_ptr, out_cap) -> len of wire::State JSON, or NotFound.
    f("state_get", &[I32, I32, I32, I32], &[I32]),
    // (id_ptr, id_len, state_ptr, state_len, attrs_ptr, attrs_len) -> 1 changed, 0 unchanged.
    // attrs_len 0 means no attributes; otherwise a JSON object.
    f("state_set", &[I32, I32, I32, I32, I32, I32], &[I32]),
    // (id_ptr, id_len) -> 1 removed, 0 absent.
    f("state_remove", &[I32, I32], &[I32]),
    // (pattern_ptr, pattern_len) -> 0. An entity id or glob.
    f("subscribe", &[I32, I32], &[I32]),
    // (type_ptr, type_len) -> 0. Generic events, delivered to hc_on_event.
    f("subscribe_event", &[I32, I32], &[I32]),
    // (req_ptr, req_len, out_ptr, out_cap) -> len of wire::ServiceResult JSON.
    // req is wire::ServiceRequest JSON.
    f("service_call", &[I32, I32, I32, I32], &[I32]),
    // (name_ptr, name_len) -> 0. Registers <plugin domain>.<name>; calls go to hc_call_service.
    f("service_register", &[I32, I32], &[I32]),
    // (type_ptr, type_len, data_ptr, data_len) -> 0. data_len 0 means {}.
    f("event_fire", &[I32, I32, I32, I32], &[I32]),
    // (key_ptr, key_len, out_ptr, out_cap) -> len of the value, or NotFound.
    f("kv_get", &[I32, I32, I32, I32], &[I32]),
    // (key_ptr, key_len, val_ptr, val_len) -> 0.
    f("kv_set", &[I32, I32, I32, I32], &[I32]),
    // (key_ptr, key_len) -> 1 deleted, 0 absent.
    f("kv_delete", &[I32, I32], &[I32]),
    // (out_ptr, out_cap) -> len. Copies the pending result (see the module docs).
    f("take_result", &[I32, I32], &[I32]),
    // () -> nanoseconds on a monotonic clock (never negative).
    f("time_monotonic_ns", &[], &[I64]),
    // (token, delay_ms) -> 0. After delay_ms, hc_on_timer(token) is called. Starting a token
    // that is already pending restarts it.
    f("timer_start", &[I64, I64], &[I32]),
    // (token) -> 1 cancelled, 0 not pending.
    f("timer_cancel", &[I64], &[I32]),
];

/// Guest exports (besides [`EXPORT_MEMORY`]).
pub const EXPORTS: &[FuncSig] = &[
    f(EXPORT_ALLOC, &[I32], &[I32]),
    f(EXPORT_FREE, &[I32, I32], &[]),
    // (config_ptr, config_len) -> Status. Config is JSON.
    f("hc_setup", &[I32, I32], &[I32]),
    // () -> Status.
    f("hc_teardown", &[], &[I32]),
    // (event_ptr, event_len) -> Status. wire::StateChangedEvent JSON.
    f("hc_on_state_changed", &[I32, I32], &[I32]),
    // (call_ptr, call_len) -> i64: 0 no data, (ptr << 32 | len) response JSON, or negative Status.
    f("hc_call_service", &[I32, I32], &[I64]),
    // (event_ptr, event_len) -> Status. wire::CustomEvent JSON. Optional.
    FuncSig {
        name: "hc_on_event",
        params: &[I32, I32],
        results: &[I32],
        required: false,
    },
    // (token) -> Status. A timer started with timer_start fired. Optional.
    FuncSig {
        name: "hc_on_timer",
        params: &[I64],
        results: &[I32],
        required: false,
    },
];

/// Most timers one plugin may have pending.
pub const MAX_TIMERS: usize = 1024;

/// Status codes: 0 and positive values are successes; failures are negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
#[non_exhaustive]
pub enum Status {
    /// Success.
    Ok = 0,
    /// The entity, key or pending result does not exist.
    NotFound = -1,
    /// The plugin's permissions do not allow the call.
    Denied = -2,
    /// A pointer or length is negative, overflows, or lies outside memory.
    BadPointer = -3,
    /// Text is not UTF-8.
    BadUtf8 = -4,
    /// A payload is not valid JSON or not of the expected shape.
    BadJson = -5,
    /// Attributes or data are JSON but not an object.
    NotAnObject = -6,
    /// A payload exceeds [`MAX_PAYLOAD`].
    TooLarge = -7,
    /// An invalid entity id.
    InvalidEntityId = -8,
    /// An invalid state (longer than 255 characters).
    InvalidState = -9,
    /// An invalid glob, event type, service name or key.
    InvalidName = -10,
    /// Refused by the loop guard.
    LoopGuard = -11,
    /// The per-call quota of host calls or bytes is used up, or storage is full.
    QuotaExceeded = -12,
    /// The service does not exist.
    UnknownService = -13,
    /// The service failed.
    ServiceFailed = -14,
    /// The guest's own call failed (the message was given through `error`).
    GuestError = -15,
    /// The host failed for a reason of its own.
    Internal = -16,
    /// An argument is out of its range (a log level, a negative delay).
    InvalidArgument = -17,
}

impl Status {
    /// Every status, for tables and tests.
    pub const ALL: &'static [Status] = &[
        Self::Ok,
        Self::NotFound,
        Self::Denied,
        Self::BadPointer,
        Self::BadUtf8,
        Self::BadJson,
        Self::NotAnObject,
        Self::TooLarge,
        Self::InvalidEntityId,
        Self::InvalidState,
        Self::InvalidName,
        Self::LoopGuard,
        Self::QuotaExceeded,
        Self::UnknownService,
        Self::ServiceFailed,
        Self::GuestError,
        Self::Internal,
        Self::InvalidArgument,
    ];

    /// The code on the wire.
    #[must_use]
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The status for a code, if it is one.
    #[must_use]
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.code() == code)
    }

    /// A short lower-case description.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not found",
            Self::Denied => "permission denied",
            Self::BadPointer => "pointer or length out of bounds",
            Self::BadUtf8 => "text is not utf-8",
            Self::BadJson => "invalid json",
            Self::NotAnObject => "json is not an object",
            Self::TooLarge => "payload too large",
            Self::InvalidEntityId => "invalid entity id",
            Self::InvalidState => "invalid state",
            Self::InvalidName => "invalid name",
            Self::LoopGuard => "refused by the loop guard",
            Self::QuotaExceeded => "quota exceeded",
            Self::UnknownService => "unknown service",
            Self::ServiceFailed => "service failed",
            Self::GuestError => "guest error",
            Self::Internal => "internal host error",
            Self::InvalidArgument => "argument out of range",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.describe(), self.code())
    }
}

/// Log levels of the `log` import.
pub mod log_level {
    /// Debug.
    pub const DEBUG: i32 = 0;
    /// Info.
    pub const INFO: i32 = 1;
    /// Warning.
    pub const WARN: i32 = 2;
    /// Error.
    pub const ERROR: i32 = 3;
}

/// Packs a guest buffer for `hc_call_service`'s result.
#[must_use]
pub const fn pack_ptr_len(ptr: u32, len: u32) -> i64 {
    ((ptr as i64) << 32) | len as i64
}

/// Unpacks `hc_call_service`'s result: `Ok(None)` for no data, `Ok(Some((ptr, len)))`, or the
/// negative status code.
///
/// # Errors
/// The negative code when the value is a status.
pub const fn unpack_ptr_len(value: i64) -> Result<Option<(u32, u32)>, i64> {
    if value < 0 {
        Err(value)
    } else if value == 0 {
        Ok(None)
    } else {
        Ok(Some(((value >> 32) as u32, (value & 0xFFFF_FFFF) as u32)))
    }
}

/// The custom section content declaring ABI version 1.
pub const ABI_SECTION_CONTENT: [u8; 4] = ABI_VERSION.to_le_bytes();

/// Reads the versions declared in an [`ABI_SECTION`]'s content.
///
/// # Errors
/// [`SectionError`] when the content is empty, not whole `u32` records, or mixes versions.
pub fn declared_version(content: &[u8]) -> Result<u32, SectionError> {
    if content.is_empty() || !content.len().is_multiple_of(4) {
        return Err(SectionError::Malformed { len: content.len() });
    }
    let mut records = content
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let first = records.next().ok_or(SectionError::Malformed { len: 0 })?;
    match records.find(|v| *v != first) {
        Some(other) => Err(SectionError::Mixed { first, other }),
        None => Ok(first),
    }
}

/// A malformed ABI version section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SectionError {
    /// Not a whole number of `u32` records.
    Malformed {
        /// The content's length.
        len: usize,
    },
    /// Records with different versions.
    Mixed {
        /// The first version.
        first: u32,
        /// A different one.
        other: u32,
    },
}

impl fmt::Display for SectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { len } => {
                write!(f, "section of {len} bytes is not a list of u32 versions")
            }
            Self::Mixed { first, other } => {
                write!(f, "section declares both version {first} and {other}")
            }
        }
    }
}

pub mod wire;
