//! Plugin key-value storage on disk, with the same semantics as the in-memory storage.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use homecore_plugins::{MAX_KEY_LEN, MemoryStorage, PluginStorage, StorageError};

use crate::error::capped;
use crate::{Store, StoreError};

/// Plugins' key-value data in the store's `plugin_kv` table: one namespace per plugin, kept
/// across restarts and reloads of the plugin, with [`MemoryStorage`]'s quota and key rules
/// (a quota counts key plus value bytes; keys are 1 to 255 bytes).
///
/// Reads are served from memory: a plugin's data is loaded on its first use and dropped from
/// memory when the plugin is unloaded ([`PluginStorage::release`]), so an unloaded plugin's
/// data costs no memory (issue 13 §8). [`SqlitePluginStorage::open`] checks every stored key.
/// Writes are synchronous and durable when the call returns: each `set` or `delete` is its own
/// transaction, committed with the store's [`crate::Durability`] before the call returns.
/// That costs one commit (an fsync under `PowerLoss`) per write, which is fine for plugin
/// storage writes (settings, counters, tokens: rare next to state changes) but blocks the
/// calling thread for that long.
///
/// A `get` racing a `set` of the same key may see the new value while it is being committed;
/// if the commit fails the value is rolled back and the `set` returns
/// [`StorageError::Backend`].
#[derive(Clone)]
pub struct SqlitePluginStorage {
    store: Store,
    cache: MemoryStorage,
    /// Plugins whose data is in `cache` (a plugin with no data has no namespace there).
    /// Read-locked while a reader reads the cache, write-locked to load or release a plugin's
    /// data, so a release never leaves a reader looking at a half-forgotten namespace.
    loaded: Arc<RwLock<HashSet<String>>>,
    /// Serializes writes and loads, so the cache and the table change in the same order.
    writes: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SqlitePluginStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePluginStorage")
            .field("path", &self.store.path())
            .finish_non_exhaustive()
    }
}

use homecore::{lock_unpoisoned as lock, read_unpoisoned, write_unpoisoned};

impl SqlitePluginStorage {
    /// Opens the plugins' data in `store`, checking every stored key (values are loaded when
    /// their plugin first uses its storage).
    ///
    /// # Errors
    /// [`StoreError::BadRow`] for a stored key that breaks the key rules,
    /// [`StoreError::Sqlite`] for a read failure.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let keys = {
            let conn = store.conn();
            (|| {
                let mut stmt = conn.prepare("SELECT plugin, key FROM plugin_kv")?;
                let rows = stmt.query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| store.error("reading plugin storage", e))?
        };
        for (plugin, key) in keys {
            if key.is_empty() || key.len() > MAX_KEY_LEN {
                return Err(StoreError::BadRow {
                    path: store.path().to_path_buf(),
                    table: "plugin_kv",
                    key: capped(&format!("{plugin}/{key}")),
                    reason: StorageError::InvalidKey {
                        len: key.len(),
                        max: MAX_KEY_LEN,
                    }
                    .to_string(),
                });
            }
        }
        Ok(Self {
            store: store.clone(),
            cache: MemoryStorage::new(),
            loaded: Arc::new(RwLock::new(HashSet::new())),
            writes: Arc::new(Mutex::new(())),
        })
    }

    /// Whether `plugin`'s data is held in memory now.
    #[must_use]
    pub fn is_loaded(&self, plugin: &str) -> bool {
        read_unpoisoned(&self.loaded).contains(plugin)
    }

    /// Loads `plugin`'s data into memory unless it is there; the caller holds `writes`.
    fn ensure_loaded(&self, plugin: &str) -> Result<(), StorageError> {
        if read_unpoisoned(&self.loaded).contains(plugin) {
            return Ok(());
        }
        let rows = {
            let conn = self.store.conn();
            (|| {
                let mut stmt =
                    conn.prepare_cached("SELECT key, value FROM plugin_kv WHERE plugin = ?1")?;
                let rows = stmt.query_map([plugin], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| self.store.error("reading plugin storage", e))
            .map_err(|err| Self::backend_error(plugin, "read", &err))?
        };
        let mut loaded = write_unpoisoned(&self.loaded);
        self.cache.forget(plugin);
        for (key, value) in rows {
            // Stored data is loaded whatever the plugin's current quota; the quota applies to
            // the next write.
            if let Err(err) = self.cache.set(plugin, &key, &value, u64::MAX) {
                // Nothing half-loaded stays readable.
                self.cache.forget(plugin);
                return Err(err);
            }
        }
        loaded.insert(plugin.to_owned());
        Ok(())
    }

    /// Runs `read` on the cache with `plugin`'s data loaded (loading it first if needed), under
    /// the read lock that a release waits for. A reader has no error to return: a failed load
    /// is logged and the plugin reads as empty until a later load succeeds.
    fn read_loaded<T>(&self, plugin: &str, read: impl Fn(&MemoryStorage) -> T, empty: T) -> T {
        {
            let loaded = read_unpoisoned(&self.loaded);
            if loaded.contains(plugin) {
                return read(&self.cache);
            }
        }
        {
            let _loading = lock(&self.writes);
            // Logged by backend_error.
            let _ = self.ensure_loaded(plugin);
        }
        let loaded = read_unpoisoned(&self.loaded);
        if loaded.contains(plugin) {
            read(&self.cache)
        } else {
            empty
        }
    }

    fn backend_error(plugin: &str, operation: &'static str, err: &StoreError) -> StorageError {
        tracing::error!(plugin, operation, error = %err, "plugin storage write failed");
        StorageError::Backend {
            plugin: plugin.to_owned(),
            operation,
            reason: error_chain(err),
        }
    }
}

impl PluginStorage for SqlitePluginStorage {
    fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>> {
        self.read_loaded(plugin, |cache| cache.get(plugin, key), None)
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), StorageError> {
        let _writing = lock(&self.writes);
        self.ensure_loaded(plugin)?;
        let old = self.cache.get(plugin, key);
        // The in-memory storage checks the key and the quota exactly as MemoryStorage does.
        self.cache.set(plugin, key, value, quota)?;
        let written = self
            .store
            .conn()
            .prepare_cached(
                "INSERT INTO plugin_kv (plugin, key, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut stmt| stmt.execute(rusqlite::params![plugin, key, value]))
            .map_err(|e| self.store.error("writing plugin storage", e));
        if let Err(err) = written {
            match old {
                Some(old) => {
                    self.cache
                        .set(plugin, key, &old, u64::MAX)
                        .expect("the old value was valid");
                }
                None => {
                    self.cache.delete(plugin, key);
                }
            }
            return Err(Self::backend_error(plugin, "write", &err));
        }
        Ok(())
    }

    fn delete(&self, plugin: &str, key: &str) -> bool {
        let _writing = lock(&self.writes);
        if self.ensure_loaded(plugin).is_err() || self.cache.get(plugin, key).is_none() {
            return false;
        }
        let deleted = self
            .store
            .conn()
            .prepare_cached("DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2")
            .and_then(|mut stmt| stmt.execute([plugin, key]))
            .map_err(|e| self.store.error("deleting from plugin storage", e));
        match deleted {
            Ok(_) => self.cache.delete(plugin, key),
            Err(err) => {
                // The trait has no error here: the key stays, on disk and in memory.
                Self::backend_error(plugin, "delete", &err);
                false
            }
        }
    }

    fn used(&self, plugin: &str) -> u64 {
        self.read_loaded(plugin, |cache| cache.used(plugin), 0)
    }

    fn release(&self, plugin: &str) {
        let _writing = lock(&self.writes);
        let mut loaded = write_unpoisoned(&self.loaded);
        loaded.remove(plugin);
        self.cache.forget(plugin);
    }
}

/// An error and its sources on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
