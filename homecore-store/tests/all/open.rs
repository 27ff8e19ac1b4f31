//! Opening: new, existing, and every way a file can be unusable (reported, never replaced).

use std::path::Path;

use homecore_store::{SCHEMA_VERSION, Store, StoreError};

fn write_a_database(path: &Path, rows: usize) {
    let store = Store::open(path).expect("opens");
    let home = homecore::Home::new();
    let attrs = homecore::Attributes::try_from(serde_json::json!({"pad": "x".repeat(500)}))
        .expect("object");
    for i in 0..rows {
        home.states
            .set(
                &super::id(&format!("sensor.s{i}")),
                "1",
                attrs.clone(),
                &homecore::Context::new(),
            )
            .expect("valid");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let recorder = homecore_store::StateRecorder::start(
        &store,
        &home.states,
        homecore_store::RecorderConfig::default(),
    )
    .expect("starts");
    rt.block_on(recorder.shutdown()).expect("commits");
}

#[test]
fn creates_a_new_database_with_the_current_schema_in_wal_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new.db");
    let store = Store::open(&path).expect("creates");
    assert_eq!(store.path(), path);
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("reads");
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("reads");
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_that_is_not_a_database_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
    std::fs::write(&path, &garbage).expect("writes");
    let err = Store::open(&path).expect_err("not a database");
    assert!(
        matches!(&err, StoreError::NotADatabase { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("garbage.db"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("reads"),
        garbage,
        "file untouched"
    );
    assert!(!dir.path().join("garbage.db-wal").exists());
}

#[test]
fn a_truncated_database_is_reported_as_corrupt_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("truncated.db");
    write_a_database(&path, 200);
    let full = std::fs::read(&path).expect("reads");
    assert!(full.len() > 16 * 4096, "a database of many pages");
    let cut = &full[..full.len() / 2];
    std::fs::write(&path, cut).expect("truncates");
    let err = Store::open(&path).expect_err("corrupt");
    assert!(
        matches!(&err, StoreError::Corrupt { path: p, problems } if p == &path && !problems.is_empty()),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&path).expect("reads"), cut, "file untouched");
}

#[test]
fn a_damaged_page_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("damaged.db");
    write_a_database(&path, 200);
    let mut bytes = std::fs::read(&path).expect("reads");
    // Overwrite the third page (a b-tree page of the states table) with noise.
    let page = 4096;
    for (i, b) in bytes[2 * page..3 * page].iter_mut().enumerate() {
        *b = (i * 31 + 17).to_le_bytes()[0];
    }
    std::fs::write(&path, &bytes).expect("writes");
    let err = Store::open(&path).expect_err("corrupt");
    assert!(matches!(&err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&path).expect("reads"),
        bytes,
        "file untouched"
    );
}

#[test]
fn a_schema_from_the_future_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.db");
    write_a_database(&path, 3);
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 7)
            .expect("writes");
    }
    let before = std::fs::read(&path).expect("reads");
    let err = Store::open(&path).expect_err("future schema");
    assert!(
        matches!(&err, StoreError::FutureSchema { path: p, found, supported }
            if p == &path && *found == SCHEMA_VERSION + 7 && *supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(&path).expect("reads"),
        before,
        "file untouched"
    );
}

#[test]
fn an_unwritable_directory_is_reported_with_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    set_mode(&ro, 0o555);
    // A privileged user (root in a container) writes through directory permissions; then the
    // test falls back to a directory nobody can create files in.
    let privileged = std::fs::write(ro.join("probe"), b"x").is_ok();
    let path = if privileged {
        Path::new("/proc/homecore-store-test/home.db").to_path_buf()
    } else {
        ro.join("home.db")
    };
    let err = Store::open(&path).expect_err("cannot create");
    assert!(
        matches!(&err, StoreError::CannotOpen { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    set_mode(&ro, 0o755);
}

#[test]
fn an_existing_database_in_a_read_only_directory_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("data");
    std::fs::create_dir(&sub).expect("mkdir");
    let path = sub.join("home.db");
    write_a_database(&path, 3);
    set_mode(&path, 0o444);
    set_mode(&sub, 0o555);
    let privileged = std::fs::write(sub.join("probe"), b"x").is_ok();
    if !privileged {
        let err = Store::open(&path).expect_err("read-only");
        assert!(
            matches!(&err, StoreError::CannotOpen { path: p, .. } if p == &path),
            "{err:?}"
        );
    }
    set_mode(&sub, 0o755);
    set_mode(&path, 0o644);
    // Permissions restored: the same file opens and kept its data.
    let store = Store::open(&path).expect("opens again");
    assert_eq!(store.load_states().expect("reads").len(), 3);
}

#[test]
fn a_directory_in_place_of_the_file_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Store::open(dir.path()).expect_err("a directory");
    assert!(matches!(&err, StoreError::CannotOpen { .. }), "{err:?}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
