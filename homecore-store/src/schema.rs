//! The database schema, versioned by SQLite's `user_version`, and its migrations.

use rusqlite::Connection;

/// The schema version this build writes; `MIGRATIONS[v - 1]` takes a database from `v - 1`
/// to `v`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// One SQL batch per schema version. Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: latest state per entity, plugin key-value data, accepted plugin versions.
    "CREATE TABLE states (
        entity_id    TEXT    NOT NULL PRIMARY KEY,
        state        TEXT    NOT NULL,
        attributes   TEXT    NOT NULL,
        last_changed TEXT    NOT NULL,
        last_updated TEXT    NOT NULL,
        context      TEXT    NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE plugin_kv (
        plugin TEXT NOT NULL,
        key    TEXT NOT NULL,
        value  BLOB NOT NULL,
        PRIMARY KEY (plugin, key)
    ) WITHOUT ROWID;
    CREATE TABLE accepted_versions (
        domain      TEXT NOT NULL PRIMARY KEY,
        version     TEXT NOT NULL,
        accepted_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
];

/// Brings a database at `from` (below [`SCHEMA_VERSION`]) up to date in one transaction, so a
/// crash mid-migration leaves the old version intact.
pub(crate) fn migrate(conn: &mut Connection, from: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let done = usize::try_from(from.max(0)).unwrap_or(usize::MAX);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()
}
