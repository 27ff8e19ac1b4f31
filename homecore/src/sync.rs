//! Locking that survives a poisoned mutex: the workspace's one rule.
//!
//! A plugin's panic is caught at its call boundary and a client's request handler may panic;
//! neither may make the host's own state unusable. Every mutex in HomeCore guards data that is
//! consistent between statements (a push, a remove, a swap), so a guard taken from a poisoned
//! mutex is sound to use. Lock through [`lock_unpoisoned`] (and [`read_unpoisoned`] /
//! [`write_unpoisoned`] for `RwLock`s) rather than writing `unwrap_or_else(into_inner)` again.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, taking the guard of a poisoned mutex too.
///
/// ```
/// let counter = std::sync::Mutex::new(0);
/// *homecore::lock_unpoisoned(&counter) += 1;
/// assert_eq!(*homecore::lock_unpoisoned(&counter), 1);
/// ```
pub fn lock_unpoisoned<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, poisoned or not.
pub fn read_unpoisoned<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, poisoned or not.
pub fn write_unpoisoned<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_still_locks() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let poisoner = std::sync::Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().expect("not poisoned yet");
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        lock_unpoisoned(&m).push(2);
        assert_eq!(*lock_unpoisoned(&m), [1, 2]);
    }
}
