//! Why a call into a sandboxed guest failed, as a value a caller can match on.
//!
//! Defined without the `wasmtime` feature so that the registry, the server and tests can branch
//! on it whatever runtimes are built; the Wasmtime runtime classifies its errors into it from
//! typed records (the store's resource limiter, `wasmtime::Trap` codes), never from message text
//! (docs/adr/0006-wasmtime-runtime.md).

use std::fmt;

use homecore_abi::v1::Status;

/// Why a call into a guest (a WASM plugin) failed. Every variant but [`GuestFailure::Status`]
/// leaves the instance poisoned: it is dropped and made again before the next call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuestFailure {
    /// The call ran out of fuel (executed more instructions than its limit).
    #[error("fuel exhausted: more than {limit} instructions in one call")]
    OutOfFuel {
        /// Fuel per call.
        limit: u64,
    },
    /// The call ran past its wall-clock deadline and was interrupted (epoch deadline).
    #[error("deadline exceeded: call ran longer than {limit_ms} ms")]
    Deadline {
        /// The deadline, milliseconds.
        limit_ms: u64,
    },
    /// Linear memory could not grow (or be created) within the plugin's limit.
    #[error("memory limit of {limit_bytes} bytes hit (growing to {requested_bytes} bytes)")]
    MemoryLimit {
        /// The limit that applied (the plugin's, or the module's own declared maximum if lower).
        limit_bytes: u64,
        /// The size asked for.
        requested_bytes: u64,
    },
    /// A table could not grow (or be created) within the plugin's limit.
    #[error(
        "table limit of {limit_elements} elements hit (growing to {requested_elements} elements)"
    )]
    TableLimit {
        /// The limit that applied (the plugin's, or the table's own declared maximum if lower).
        limit_elements: u64,
        /// The number of elements asked for.
        requested_elements: u64,
    },
    /// The guest trapped.
    #[error("wasm trap: {code}")]
    Trap {
        /// Which trap.
        code: TrapCode,
    },
    /// The guest returned an error status (the instance stays live).
    #[error("guest returned {}{}", StatusText(*code), message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The status code the export returned.
        code: i32,
        /// The message the guest gave with the `error` import, if any (capped).
        message: Option<String>,
    },
    /// The guest broke the ABI's contract (bad pointers from `hc_alloc`, a malformed response).
    #[error("{violation}")]
    Abi {
        /// What it did.
        violation: AbiViolation,
    },
    /// The engine failed the call for a reason not listed above.
    #[error("engine error: {message}")]
    Engine {
        /// What the engine reported.
        message: String,
    },
}

/// A trap code, mirroring Wasmtime's `Trap` (fuel and interrupts have their own
/// [`GuestFailure`] variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapCode {
    /// The guest's stack overflowed (recursion too deep).
    StackOverflow,
    /// Out of bounds memory access.
    MemoryOutOfBounds,
    /// Unaligned atomic access.
    HeapMisaligned,
    /// Out of bounds table access.
    TableOutOfBounds,
    /// Indirect call to a null table entry.
    IndirectCallToNull,
    /// Indirect call with the wrong signature.
    BadSignature,
    /// Integer overflow.
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// Failed float-to-int conversion.
    BadConversionToInteger,
    /// An `unreachable` instruction was executed.
    UnreachableCodeReached,
    /// Null reference.
    NullReference,
    /// Out of bounds array access.
    ArrayOutOfBounds,
    /// An allocation was too large.
    AllocationTooLarge,
    /// A cast failed.
    CastFailure,
    /// Another trap, newer than this list.
    Other,
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::StackOverflow => "stack overflow (recursion too deep)",
            Self::MemoryOutOfBounds => "out of bounds memory access",
            Self::HeapMisaligned => "unaligned atomic",
            Self::TableOutOfBounds => "undefined element: out of bounds table access",
            Self::IndirectCallToNull => "uninitialized element",
            Self::BadSignature => "indirect call type mismatch",
            Self::IntegerOverflow => "integer overflow",
            Self::IntegerDivisionByZero => "integer divide by zero",
            Self::BadConversionToInteger => "invalid conversion to integer",
            Self::UnreachableCodeReached => "wasm `unreachable` instruction executed",
            Self::NullReference => "null reference",
            Self::ArrayOutOfBounds => "out of bounds array access",
            Self::AllocationTooLarge => "allocation size too large",
            Self::CastFailure => "cast failure",
            Self::Other => "other trap",
        })
    }
}

/// How a guest broke the ABI's contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AbiViolation {
    /// A payload too large for the ABI's 32-bit lengths.
    #[error("payload of {len} bytes too large")]
    PayloadTooLarge {
        /// Its length.
        len: usize,
    },
    /// `hc_alloc` returned 0 for a non-empty buffer.
    #[error("hc_alloc could not allocate {len} bytes")]
    AllocFailed {
        /// The length asked for.
        len: i32,
    },
    /// `hc_alloc` returned a negative pointer.
    #[error("hc_alloc returned a negative pointer {ptr}")]
    NegativePointer {
        /// The pointer.
        ptr: i32,
    },
    /// `hc_alloc` returned a buffer that does not fit in memory.
    #[error("hc_alloc returned {ptr}, which cannot hold {len} bytes")]
    BufferOutOfBounds {
        /// The pointer.
        ptr: i32,
        /// The length asked for.
        len: i32,
    },
    /// An export the ABI requires is missing after validation.
    #[error("export {name} disappeared after validation")]
    MissingExport {
        /// The export.
        name: &'static str,
    },
    /// `hc_call_service` returned a value that is not a packed pointer and length.
    #[error("hc_call_service returned a malformed result")]
    MalformedResponse,
    /// The service response is longer than the ABI allows.
    #[error("service response of {len} bytes exceeds the ABI limit of {limit}")]
    ResponseTooLarge {
        /// Its length.
        len: usize,
        /// The ABI's limit.
        limit: usize,
    },
    /// The service response lies (partly) outside guest memory.
    #[error("service response lies outside guest memory")]
    ResponseOutOfBounds,
    /// The service response is not JSON.
    #[error("service response is not JSON: {reason}")]
    ResponseNotJson {
        /// What the parser reported.
        reason: String,
    },
}

impl GuestFailure {
    /// Whether this failure is one of the limits the host enforces (fuel, deadline, memory,
    /// table), as opposed to a fault of the guest's own.
    #[must_use]
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::OutOfFuel { .. }
                | Self::Deadline { .. }
                | Self::MemoryLimit { .. }
                | Self::TableLimit { .. }
        )
    }
}

impl From<AbiViolation> for GuestFailure {
    fn from(violation: AbiViolation) -> Self {
        Self::Abi { violation }
    }
}

/// A status code as the ABI describes it.
struct StatusText(i32);

impl fmt::Display for StatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Status::from_code(self.0) {
            Some(status) => write!(f, "{status}"),
            None => write!(f, "unknown status {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_limit() {
        let fuel = GuestFailure::OutOfFuel { limit: 1000 };
        assert_eq!(
            fuel.to_string(),
            "fuel exhausted: more than 1000 instructions in one call"
        );
        let status = GuestFailure::Status {
            code: Status::GuestError.code(),
            message: Some("boom".into()),
        };
        assert_eq!(status.to_string(), "guest returned guest error (-15): boom");
        let unknown = GuestFailure::Status {
            code: -999,
            message: None,
        };
        assert_eq!(unknown.to_string(), "guest returned unknown status -999");
        assert!(fuel.is_limit() && !status.is_limit());
    }
}
