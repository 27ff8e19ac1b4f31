//! Plugin-scoped key-value storage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

use crate::sync::lock;

/// The longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The storage quota when neither manifest nor host policy sets one (1 MiB).
pub const DEFAULT_STORAGE_BYTES: u64 = 1 << 20;

/// Why a storage operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("storage key of {len} bytes is invalid: keys are 1 to {max} bytes")]
    InvalidKey {
        /// The key's length.
        len: usize,
        /// [`MAX_KEY_LEN`].
        max: usize,
    },
    /// The write would take the plugin over its quota.
    #[error("storage of plugin {plugin} would grow to {would_use} bytes, its quota is {quota}")]
    QuotaExceeded {
        /// The plugin.
        plugin: String,
        /// Bytes the plugin would use after the write.
        would_use: u64,
        /// The quota.
        quota: u64,
    },
    /// A persistent backend failed (a disk or database error); nothing was written.
    #[error("storage of plugin {plugin} failed to {operation}: {reason}")]
    Backend {
        /// The plugin.
        plugin: String,
        /// What the backend was doing.
        operation: &'static str,
        /// The backend's report.
        reason: String,
    },
}

/// Where plugins' key-value data lives. The in-memory [`MemoryStorage`] is the default; a
/// persistent store implements the same trait.
pub trait PluginStorage: Send + Sync + 'static {
    /// The value stored under `key` for `plugin`.
    fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key` for `plugin`, refusing to exceed `quota` bytes (keys plus
    /// values) for that plugin.
    ///
    /// # Errors
    /// [`StorageError::QuotaExceeded`] or [`StorageError::InvalidKey`].
    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), StorageError>;
    /// Deletes `key`; returns whether it existed.
    fn delete(&self, plugin: &str, key: &str) -> bool;
    /// Bytes used by `plugin`.
    fn used(&self, plugin: &str) -> u64;
    /// `plugin` was unloaded: a storage that keeps a copy of its data in memory may drop the
    /// copy now. The data itself must stay: it is read again when the plugin comes back. The
    /// default does nothing (for [`MemoryStorage`] the copy *is* the data).
    fn release(&self, plugin: &str) {
        let _ = plugin;
    }
}

#[derive(Default)]
struct Namespace {
    entries: HashMap<String, Vec<u8>>,
    used: u64,
}

/// In-memory storage: one namespace per plugin, kept across reloads of that plugin.
#[derive(Default, Clone)]
pub struct MemoryStorage {
    namespaces: Arc<DashMap<String, Arc<Mutex<Namespace>>>>,
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStorage")
            .field("plugins", &self.namespaces.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStorage {
    /// Empty storage.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops everything stored for `plugin` (for a cache in front of a persistent store);
    /// returns whether there was anything.
    pub fn forget(&self, plugin: &str) -> bool {
        self.namespaces.remove(plugin).is_some()
    }

    /// Whether anything is held for `plugin`.
    #[must_use]
    pub fn holds(&self, plugin: &str) -> bool {
        self.namespaces.contains_key(plugin)
    }

    fn namespace(&self, plugin: &str) -> Arc<Mutex<Namespace>> {
        if let Some(ns) = self.namespaces.get(plugin) {
            return Arc::clone(&ns);
        }
        Arc::clone(&self.namespaces.entry(plugin.to_owned()).or_default())
    }
}

fn check_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StorageError::InvalidKey {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

impl PluginStorage for MemoryStorage {
    fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>> {
        let ns = self.namespaces.get(plugin).map(|n| Arc::clone(&n))?;
        let ns = lock(&ns);
        ns.entries.get(key).cloned()
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), StorageError> {
        check_key(key)?;
        let ns = self.namespace(plugin);
        let mut ns = lock(&ns);
        let old = ns
            .entries
            .get(key)
            .map_or(0, |v| (key.len() + v.len()) as u64);
        let new = (key.len() + value.len()) as u64;
        let would_use = ns.used - old + new;
        if would_use > quota {
            return Err(StorageError::QuotaExceeded {
                plugin: plugin.to_owned(),
                would_use,
                quota,
            });
        }
        ns.entries.insert(key.to_owned(), value.to_vec());
        ns.used = would_use;
        Ok(())
    }

    fn delete(&self, plugin: &str, key: &str) -> bool {
        let Some(ns) = self.namespaces.get(plugin).map(|n| Arc::clone(&n)) else {
            return false;
        };
        let mut ns = lock(&ns);
        match ns.entries.remove(key) {
            Some(v) => {
                ns.used -= (key.len() + v.len()) as u64;
                true
            }
            None => false,
        }
    }

    fn used(&self, plugin: &str) -> u64 {
        self.namespaces.get(plugin).map_or(0, |ns| lock(&ns).used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_separate_and_quota_counts_keys_and_values() {
        let s = MemoryStorage::new();
        s.set("a", "k", b"1234", 10).expect("fits");
        assert_eq!(s.get("a", "k").as_deref(), Some(&b"1234"[..]));
        assert_eq!(s.get("b", "k"), None);
        assert_eq!(s.used("a"), 5);
        assert!(matches!(
            s.set("a", "k2", b"123456789", 10),
            Err(StorageError::QuotaExceeded {
                would_use: 16,
                quota: 10,
                ..
            })
        ));
        s.set("a", "k", b"123456789", 10)
            .expect("replacing counts the old value out");
        assert_eq!(s.used("a"), 10);
        assert!(s.delete("a", "k"));
        assert!(!s.delete("a", "k"));
        assert_eq!(s.used("a"), 0);
        assert!(matches!(
            s.set("a", "", b"", 10),
            Err(StorageError::InvalidKey { len: 0, .. })
        ));
    }
}
