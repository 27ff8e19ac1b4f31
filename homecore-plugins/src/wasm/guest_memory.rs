//! Bounds-checked access to guest memory.
//!
//! Every pointer and length from the guest is checked with checked arithmetic against the
//! memory's current size and the ABI's payload limit before any byte is touched; reads borrow
//! through Wasmtime's safe `Memory::data` slice with `get(range)`, writes go through
//! `Memory::write`. Nothing here can panic on guest input.

use homecore_abi::v1::Status;
use wasmtime::{AsContext, AsContextMut, Memory};

/// A guest buffer `(ptr, len)`, validated as non-negative.
fn range(ptr: i32, len: i32, max: usize) -> Result<(usize, usize), Status> {
    let ptr = usize::try_from(ptr).map_err(|_| Status::BadPointer)?;
    let len = usize::try_from(len).map_err(|_| Status::BadPointer)?;
    if len > max {
        return Err(Status::TooLarge);
    }
    let end = ptr.checked_add(len).ok_or(Status::BadPointer)?;
    Ok((ptr, end))
}

/// The guest bytes at `(ptr, len)`, at most `max` long.
pub(crate) fn bytes<'a>(
    memory: &Memory,
    store: &'a impl AsContext,
    ptr: i32,
    len: i32,
    max: usize,
) -> Result<&'a [u8], Status> {
    let (start, end) = range(ptr, len, max)?;
    memory.data(store).get(start..end).ok_or(Status::BadPointer)
}

/// The guest text at `(ptr, len)`: in bounds, at most `max` bytes, UTF-8.
pub(crate) fn text<'a>(
    memory: &Memory,
    store: &'a impl AsContext,
    ptr: i32,
    len: i32,
    max: usize,
) -> Result<&'a str, Status> {
    std::str::from_utf8(bytes(memory, store, ptr, len, max)?).map_err(|_| Status::BadUtf8)
}

/// Checks that `(ptr, cap)` is a writable guest buffer.
pub(crate) fn check_out(
    memory: &Memory,
    store: &impl AsContext,
    ptr: i32,
    cap: i32,
) -> Result<(), Status> {
    let (start, end) = range(ptr, cap, usize::MAX)?;
    if start > end || end > memory.data_size(store) {
        return Err(Status::BadPointer);
    }
    Ok(())
}

/// Writes `data` at `ptr` if it fits in `cap`; returns the length either way (the ABI's
/// result convention), `Ok(None)` when it did not fit and nothing was written.
pub(crate) fn write_result(
    memory: &Memory,
    mut store: impl AsContextMut,
    ptr: i32,
    cap: i32,
    data: &[u8],
) -> Result<Option<i32>, Status> {
    let len = i32::try_from(data.len()).map_err(|_| Status::TooLarge)?;
    check_out(memory, &store, ptr, cap)?;
    if len > cap {
        return Ok(None);
    }
    let start = usize::try_from(ptr).map_err(|_| Status::BadPointer)?;
    memory
        .write(store.as_context_mut(), start, data)
        .map_err(|_| Status::BadPointer)?;
    Ok(Some(len))
}
