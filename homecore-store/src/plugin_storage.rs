//! Plugin key-value storage on disk, with the same semantics as the in-memory storage.

use std::sync::{Arc, Mutex, PoisonError};

use homecore_plugins::{MemoryStorage, PluginStorage, StorageError};

use crate::error::capped;
use crate::{Store, StoreError};

/// Plugins' key-value data in the store's `plugin_kv` table: one namespace per plugin, kept
/// across restarts and reloads of the plugin, with [`MemoryStorage`]'s quota and key rules
/// (a quota counts key plus value bytes; keys are 1 to 255 bytes).
///
/// Reads are served from memory (everything is loaded at [`SqlitePluginStorage::open`]).
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
    /// Serializes writes, so the cache and the table change in the same order.
    writes: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SqlitePluginStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePluginStorage")
            .field("path", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl SqlitePluginStorage {
    /// Loads every plugin's data from `store`.
    ///
    /// # Errors
    /// [`StoreError::BadRow`] for a stored key that breaks the key rules,
    /// [`StoreError::Sqlite`] for a read failure.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let cache = MemoryStorage::new();
        let rows = {
            let conn = store.conn();
            (|| {
                let mut stmt = conn.prepare("SELECT plugin, key, value FROM plugin_kv")?;
                let rows = stmt.query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                    ))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })()
            .map_err(|e| store.error("reading plugin storage", e))?
        };
        for (plugin, key, value) in rows {
            // Stored data is loaded whatever the plugin's current quota; the quota applies to
            // the next write.
            cache
                .set(&plugin, &key, &value, u64::MAX)
                .map_err(|e| StoreError::BadRow {
                    path: store.path().to_path_buf(),
                    table: "plugin_kv",
                    key: capped(&format!("{plugin}/{key}")),
                    reason: e.to_string(),
                })?;
        }
        Ok(Self {
            store: store.clone(),
            cache,
            writes: Arc::new(Mutex::new(())),
        })
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
        self.cache.get(plugin, key)
    }

    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), StorageError> {
        let _writing = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
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
        let _writing = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if self.cache.get(plugin, key).is_none() {
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
        self.cache.used(plugin)
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
