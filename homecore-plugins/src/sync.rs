//! Locking that survives a poisoned mutex.
//!
//! A panic in a plugin is caught at the call boundary, so a panic while a lock is held must not
//! make the host's own state unusable: every mutex in this crate guards data that stays
//! consistent between statements, and is locked through [`lock`].

/// Locks `m`, taking the guard of a poisoned mutex too (the workspace's one rule:
/// [`homecore::lock_unpoisoned`]).
pub(crate) use homecore::lock_unpoisoned as lock;
