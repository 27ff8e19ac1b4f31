//! Opening the database: checks, WAL mode, migrations; the handle everything else hangs off.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::schema::{SCHEMA_VERSION, migrate};

/// How much a committed write survives. See docs/adr/0010-persistence.md for the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced to the WAL before it is acknowledged, so an
    /// acknowledged write survives a process kill, an OS crash and a power cut (on a disk that
    /// honours fsync). The default.
    #[default]
    PowerLoss,
    /// `synchronous=NORMAL`: commits reach the OS but are fsynced only at checkpoints, so an
    /// acknowledged write survives a process kill, but an OS crash or power cut may lose the
    /// last commits (the database stays consistent).
    ProcessCrash,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Self::PowerLoss => "FULL",
            Self::ProcessCrash => "NORMAL",
        }
    }
}

/// How a [`Store`] is opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreOptions {
    /// What a committed write survives.
    pub durability: Durability,
    /// How long a writer waits for another connection's write lock before failing.
    pub busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl StoreOptions {
    /// With another durability.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// With another busy timeout.
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// HomeCore's database: entity states, plugin key-value data and accepted plugin versions in
/// one SQLite file in WAL mode. Cheap to clone; clones share one connection.
///
/// The state recorder ([`crate::StateRecorder`]) writes through its own connection on its
/// own thread; the plugin storage and accepted versions write through the shared one.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: StoreOptions,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path` with the default [`StoreOptions`].
    ///
    /// # Errors
    /// See [`Store::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the database at `path`: checks it (`PRAGMA quick_check`), refuses a
    /// schema newer than this build, switches to WAL mode and migrates an older schema in one
    /// transaction. A database that fails a check is left exactly as it was.
    ///
    /// # Errors
    /// [`StoreError::CannotOpen`] (permissions, read-only or missing directory),
    /// [`StoreError::NotADatabase`], [`StoreError::Corrupt`], [`StoreError::FutureSchema`],
    /// or [`StoreError::Sqlite`] for other failures.
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut conn = connect_raw(&path, &options)?;
        // Read-only checks first: nothing is written to a file that fails them.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| StoreError::classify(&path, "reading the schema version", e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::FutureSchema {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        quick_check(&conn, &path)?;
        configure(&conn, &path, &options)?;
        if version < SCHEMA_VERSION {
            migrate(&mut conn, version)
                .map_err(|e| StoreError::classify(&path, "migrating the schema", e))?;
            tracing::info!(path = %path.display(), from = version, to = SCHEMA_VERSION, "database schema migrated");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options it was opened with.
    #[must_use]
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The shared connection. Poisoning is ignored: every use is a statement or a transaction,
    /// which SQLite rolls back if the thread panicked half-way.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        homecore::lock_unpoisoned(&self.inner.conn)
    }

    /// A second connection to the same (already checked and migrated) database, for a
    /// writer thread.
    pub(crate) fn connect(&self) -> Result<Connection, StoreError> {
        let conn = connect_raw(&self.inner.path, &self.inner.options)?;
        configure(&conn, &self.inner.path, &self.inner.options)?;
        Ok(conn)
    }

    /// Wraps a failure of `operation` on this database.
    pub(crate) fn error(&self, operation: &'static str, source: rusqlite::Error) -> StoreError {
        StoreError::classify(&self.inner.path, operation, source)
    }
}

fn connect_raw(path: &Path, options: &StoreOptions) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|source| StoreError::CannotOpen {
            path: path.to_path_buf(),
            source,
        })?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| StoreError::classify(path, "setting the busy timeout", e))?;
    Ok(conn)
}

fn configure(conn: &Connection, path: &Path, options: &StoreOptions) -> Result<(), StoreError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| StoreError::classify(path, "switching to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::WalUnavailable {
            path: path.to_path_buf(),
            journal_mode: mode,
        });
    }
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(|e| StoreError::classify(path, "setting synchronous", e))?;
    Ok(())
}

/// `PRAGMA quick_check`: the database's pages and indexes are well formed.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let problems = (|| {
        let mut stmt = conn.prepare("PRAGMA quick_check(10)")?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
    })()
    .map_err(|e| StoreError::classify(path, "checking the database", e))?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_path_buf(),
        problems,
    })
}
