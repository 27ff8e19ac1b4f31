//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps memory freed inside its arenas (one per thread that allocated, so
//! Wasmtime's parallel compilation leaves several) until it is asked to trim: after a 2 MB
//! module was compiled and a plugin with 64 MiB of stored data unloaded, a server's resident
//! memory stayed at its peak. [`release_free_memory`] asks every arena to return its free
//! pages; the registry calls it after it unloads a plugin (docs/adr/0004-plugin-runtime-and-dispatch.md).

/// Returns the allocator's free memory to the operating system (glibc's `malloc_trim` on
/// Linux with glibc's allocator; nothing elsewhere). Takes a few milliseconds on a large heap
/// and locks every arena meanwhile: call it after rare events such as an unload, on a
/// blocking thread (the registry uses `spawn_blocking`), never on a hot path.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(
        unsafe_code,
        reason = "a foreign call with no pointers: glibc's malloc_trim (issue 13 §8)"
    )]
    // SAFETY: `malloc_trim` takes a size and no pointer, only walks glibc's own arenas under
    // their locks, and is MT-Safe: any thread may call it (not a signal handler, which this
    // crate never runs code in).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_is_harmless_and_repeatable() {
        let big: Vec<Vec<u8>> = (0..64).map(|i| vec![i; 64 << 10]).collect();
        drop(big);
        super::release_free_memory();
        super::release_free_memory();
        let again = vec![7u8; 1 << 20];
        assert_eq!(again.iter().map(|&b| u64::from(b)).sum::<u64>(), 7 << 20);
    }
}
