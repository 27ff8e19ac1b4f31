//! What can go wrong opening, reading or writing the store.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::ErrorCode;

/// Why the store could not be opened, read or written.
///
/// Every variant names the database file. A database that cannot be opened or checked is
/// reported and left exactly as it was: the store never deletes, recreates or repairs it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file (or its directory, or its `-wal`/`-shm` companions) cannot be opened or
    /// created: a missing or read-only directory, missing permissions, a path that is a
    /// directory.
    #[error("cannot open database {path}")]
    CannotOpen {
        /// The database file.
        path: PathBuf,
        /// SQLite's report.
        #[source]
        source: rusqlite::Error,
    },
    /// The file exists but is not an SQLite database (or its header is damaged).
    #[error("{path} is not an SQLite database; it was left untouched")]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// SQLite's report.
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused to switch the database to WAL mode (e.g. a file system without shared
    /// memory support); the store needs WAL for writes that never block readers.
    #[error("database {path} cannot use WAL mode (journal_mode is {journal_mode})")]
    WalUnavailable {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        journal_mode: String,
    },
    /// SQLite found the database damaged: `PRAGMA quick_check` failed, or a read hit a
    /// malformed page.
    #[error("database {path} is corrupt ({}); it was left untouched", problems.join("; "))]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the check reported (at most 10 lines).
        problems: Vec<String>,
    },
    /// The database was written by a newer HomeCore with a schema this one does not know.
    #[error(
        "database {path} has schema version {found}; this build knows versions up to {supported}"
    )]
    FutureSchema {
        /// The database file.
        path: PathBuf,
        /// The `user_version` found.
        found: i64,
        /// The newest version this build can use.
        supported: i64,
    },
    /// A stored row cannot be read back (an invalid entity id, attributes that are not a JSON
    /// object, an unparsable version).
    #[error("database {path}: row {key:?} of table {table} is invalid: {reason}")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The row's key (at most 255 characters of it).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other SQLite failure (disk full, I/O error, lock timeout).
    #[error("database {path}: {operation} failed")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        operation: &'static str,
        /// SQLite's report.
        #[source]
        source: rusqlite::Error,
    },
    /// The state recorder's writer thread has stopped (after `shutdown`, or it panicked), so
    /// nothing more will become durable through it.
    #[error("the state recorder of {path} has stopped")]
    RecorderStopped {
        /// The database file.
        path: PathBuf,
    },
    /// The state recorder's last commit failed; it retries, but the changes waited for are not
    /// durable yet.
    #[error("the state recorder of {path} could not commit")]
    RecorderFailed {
        /// The database file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: Arc<StoreError>,
    },
    /// The writer thread could not be started.
    #[error("cannot start the state recorder thread for {path}")]
    Thread {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Classifies a SQLite error met while `operation` ran on `path`: a file that is not a
    /// database, a corrupt one and one that cannot be opened get their own variants.
    pub(crate) fn classify(
        path: &std::path::Path,
        operation: &'static str,
        source: rusqlite::Error,
    ) -> Self {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Self::NotADatabase { path, source },
            Some(ErrorCode::DatabaseCorrupt) => Self::Corrupt {
                path,
                problems: vec![source.to_string()],
            },
            Some(
                ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::ReadOnly
                | ErrorCode::AuthorizationForStatementDenied,
            ) => Self::CannotOpen { path, source },
            _ => Self::Sqlite {
                path,
                operation,
                source,
            },
        }
    }
}

/// Keeps at most 255 bytes of a stored key for an error message (`homecore_abi::text`).
pub(crate) fn capped(key: &str) -> String {
    homecore_abi::text::quoted(key, 255)
}
