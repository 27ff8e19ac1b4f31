//! Plugin key-value storage: MemoryStorage's semantics, on disk, durable when a call returns.

use std::time::Duration;

use homecore_plugins::{MAX_KEY_LEN, MemoryStorage, PluginStorage, StorageError};
use homecore_store::{SqlitePluginStorage, Store, StoreOptions};

/// The semantics every `PluginStorage` shares, checked the same way on each backend.
fn shared_semantics(s: &dyn PluginStorage) {
    s.set("a", "k", b"1234", 10).expect("fits");
    assert_eq!(s.get("a", "k").as_deref(), Some(&b"1234"[..]));
    assert_eq!(s.get("b", "k"), None, "namespaces are separate");
    assert_eq!(s.used("a"), 5, "quota counts key and value bytes");
    assert_eq!(s.used("b"), 0);
    assert!(matches!(
        s.set("a", "k2", b"123456789", 10),
        Err(StorageError::QuotaExceeded { would_use: 16, quota: 10, ref plugin }) if plugin == "a"
    ));
    assert_eq!(s.get("a", "k2"), None, "a refused write leaves nothing");
    s.set("a", "k", b"123456789", 10)
        .expect("replacing counts the old value out");
    assert_eq!(s.used("a"), 10);
    assert!(s.delete("a", "k"));
    assert!(!s.delete("a", "k"));
    assert!(!s.delete("nobody", "k"));
    assert_eq!(s.used("a"), 0);
    assert!(matches!(
        s.set("a", "", b"", 10),
        Err(StorageError::InvalidKey {
            len: 0,
            max: MAX_KEY_LEN
        })
    ));
    let long = "k".repeat(MAX_KEY_LEN + 1);
    assert!(matches!(
        s.set("a", &long, b"", u64::MAX),
        Err(StorageError::InvalidKey { len: 256, .. })
    ));
    let longest = "k".repeat(MAX_KEY_LEN);
    s.set("a", &longest, b"", u64::MAX)
        .expect("255 bytes is fine");
    s.set("bin", "blob", &[0, 255, 1, 254], 100)
        .expect("values are bytes");
    assert_eq!(s.get("bin", "blob").as_deref(), Some(&[0, 255, 1, 254][..]));
}

#[test]
fn memory_storage_has_the_shared_semantics() {
    shared_semantics(&MemoryStorage::new());
}

#[test]
fn sqlite_storage_has_the_shared_semantics_and_keeps_them_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("home.db");
    {
        let store = Store::open(&path).expect("opens");
        let storage = SqlitePluginStorage::open(&store).expect("loads");
        shared_semantics(&storage);
        storage.set("a", "kept", b"v", 1024).expect("fits");
    }
    let store = Store::open(&path).expect("reopens");
    let storage = SqlitePluginStorage::open(&store).expect("loads");
    assert_eq!(storage.get("a", "kept").as_deref(), Some(&b"v"[..]));
    assert_eq!(storage.get("a", "k"), None, "a delete is durable too");
    assert_eq!(
        storage.used("a"),
        (MAX_KEY_LEN + "kept".len() + 1) as u64,
        "usage is rebuilt from disk"
    );
    assert_eq!(
        storage.get("bin", "blob").as_deref(),
        Some(&[0, 255, 1, 254][..])
    );
    assert!(
        matches!(
            storage.set("a", "more", &[0; 2000], 1024),
            Err(StorageError::QuotaExceeded { .. })
        ),
        "the quota applies to reloaded data"
    );
}

#[test]
fn a_failed_write_is_a_backend_error_and_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("home.db");
    let store = Store::open_with(
        &path,
        StoreOptions::default().with_busy_timeout(Duration::from_millis(50)),
    )
    .expect("opens");
    let storage = SqlitePluginStorage::open(&store).expect("loads");
    storage.set("p", "k", b"old", 100).expect("fits");
    // Another connection holds the write lock: the store's writes time out.
    let blocker = rusqlite::Connection::open(&path).expect("raw open");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("locks");
    let err = storage.set("p", "k", b"new", 100).expect_err("locked");
    assert!(
        matches!(&err, StorageError::Backend { plugin, operation: "write", .. } if plugin == "p"),
        "{err:?}"
    );
    assert_eq!(
        storage.get("p", "k").as_deref(),
        Some(&b"old"[..]),
        "rolled back"
    );
    assert!(storage.set("p", "fresh", b"x", 100).is_err());
    assert_eq!(
        storage.get("p", "fresh"),
        None,
        "a new key is rolled back too"
    );
    assert_eq!(storage.used("p"), 4);
    assert!(!storage.delete("p", "k"), "a failed delete keeps the key");
    assert_eq!(storage.get("p", "k").as_deref(), Some(&b"old"[..]));
    blocker.execute_batch("ROLLBACK").expect("unlocks");
    storage.set("p", "k", b"new", 100).expect("works again");
    drop(storage);
    drop(store);
    let store = Store::open(&path).expect("reopens");
    let storage = SqlitePluginStorage::open(&store).expect("loads");
    assert_eq!(storage.get("p", "k").as_deref(), Some(&b"new"[..]));
}

#[test]
fn a_stored_key_breaking_the_rules_is_a_bad_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("home.db");
    drop(Store::open(&path).expect("creates"));
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute("INSERT INTO plugin_kv VALUES ('p', '', x'00')", [])
            .expect("raw insert");
    }
    let store = Store::open(&path).expect("opens");
    let err = SqlitePluginStorage::open(&store).expect_err("bad key");
    assert!(
        matches!(
            &err,
            homecore_store::StoreError::BadRow {
                table: "plugin_kv",
                ..
            }
        ),
        "{err:?}"
    );
}

/// An unloaded plugin's data leaves memory ([`PluginStorage::release`]) and comes back, whole,
/// when the plugin uses its storage again (issue 13 §8).
#[test]
fn an_unloaded_plugins_data_leaves_memory_and_comes_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("home.db")).expect("opens");
    let storage = SqlitePluginStorage::open(&store).expect("opens");
    storage.set("big", "a", &[1; 4096], u64::MAX).expect("fits");
    storage.set("big", "b", &[2; 10], u64::MAX).expect("fits");
    storage.set("small", "x", b"y", u64::MAX).expect("fits");
    let used = storage.used("big");
    assert!(storage.is_loaded("big"));
    storage.release("big");
    assert!(!storage.is_loaded("big"), "the copy in memory is gone");
    assert!(storage.is_loaded("small"), "other plugins keep theirs");
    assert_eq!(
        storage.used("big"),
        used,
        "usage is counted again from disk"
    );
    assert_eq!(storage.get("big", "a").as_deref(), Some(&[1; 4096][..]));
    // A write after a release sees the stored data (quota, old value).
    storage.release("big");
    assert!(matches!(
        storage.set("big", "c", &[0; 100], used + 50),
        Err(StorageError::QuotaExceeded { .. })
    ));
    storage.release("big");
    assert!(
        storage.delete("big", "b"),
        "a delete after a release finds the key"
    );
    assert_eq!(storage.get("big", "b"), None);
}
