//! Locking that survives a poisoned mutex.
//!
//! A panic in a plugin is caught at the call boundary, so a panic while a lock is held must not
//! make the host's own state unusable: every mutex in this crate guards data that stays
//! consistent between statements, and is locked through [`lock`].

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the guard of a poisoned mutex too.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
