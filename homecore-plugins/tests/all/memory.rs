//! Memory given back when a plugin goes (issue 13 §8): the registry tells the storage to drop
//! its copy of the plugin's data, and asks the allocator to return free memory (the RSS bound
//! is tested in homecore-store, `memory::an_unloaded_plugins_stored_data_gives_its_memory_back`).

use std::sync::{Arc, Mutex};

use homecore::Home;
use homecore_plugins::{MemoryStorage, PluginRegistry, PluginStorage, StorageError};

use crate::support::{Script, all_permissions, manifest};

/// A storage that records which plugins were released.
#[derive(Default)]
struct Recording {
    data: MemoryStorage,
    released: Mutex<Vec<String>>,
}

impl PluginStorage for Recording {
    fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>> {
        self.data.get(plugin, key)
    }
    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), StorageError> {
        self.data.set(plugin, key, value, quota)
    }
    fn delete(&self, plugin: &str, key: &str) -> bool {
        self.data.delete(plugin, key)
    }
    fn used(&self, plugin: &str) -> u64 {
        self.data.used(plugin)
    }
    fn release(&self, plugin: &str) {
        self.released
            .lock()
            .expect("not poisoned")
            .push(plugin.to_owned());
    }
}

#[tokio::test]
async fn unloading_or_reloading_a_plugin_releases_its_stored_data_from_memory() {
    let storage = Arc::new(Recording::default());
    let registry = PluginRegistry::builder(Home::new())
        .storage(Arc::clone(&storage) as Arc<dyn PluginStorage>)
        .build();
    let script = Script::default();
    registry
        .load(script.spec(manifest("hog", all_permissions(), &[])))
        .await
        .expect("loads");
    registry
        .load(script.spec(manifest("other", all_permissions(), &[])))
        .await
        .expect("loads");
    assert!(storage.released.lock().expect("not poisoned").is_empty());
    registry.reload("hog").await.expect("reloads");
    registry.unload("hog").await.expect("unloads");
    assert_eq!(
        *storage.released.lock().expect("not poisoned"),
        ["hog", "hog"],
        "released at the reload's unload and at the unload; never another plugin's"
    );
}
