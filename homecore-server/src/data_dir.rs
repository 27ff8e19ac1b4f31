//! The data directory: created 0700 on first start; secrets in it are written 0600 and never
//! replaced once there.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The access token's file name in the data directory.
pub const ACCESS_TOKEN_FILE: &str = "access_token";

/// The largest secret file read back, in bytes.
const MAX_SECRET_BYTES: u64 = 4096;

/// A problem with the data directory or a file in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// A directory could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A secret file is empty, too long or not text.
    #[error("{} does not hold a token (empty, not text, or over {max} bytes)", path.display())]
    BadSecret {
        /// The file.
        path: PathBuf,
        /// The size limit.
        max: u64,
    },
}

/// The server's data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

/// The access token used when the config lists none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The token.
    pub token: String,
    /// The file holding it.
    pub path: PathBuf,
    /// Whether this start created it (print it once).
    pub created: bool,
}

impl DataDir {
    /// Opens (creating, mode 0700) the data directory.
    ///
    /// # Errors
    /// [`DataDirError::CreateDir`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let root = root.into();
        create_private_dir(&root)?;
        Ok(Self { root })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The stored access token, created on first use: 32 random bytes, hex-encoded, in
    /// `access_token` (mode 0600).
    ///
    /// # Errors
    /// Reading or writing the file failed, or it does not hold a token.
    pub fn access_token(&self) -> Result<StoredToken, DataDirError> {
        let path = self.join(ACCESS_TOKEN_FILE);
        if let Some(token) = read_secret(&path)? {
            return Ok(StoredToken {
                token,
                path,
                created: false,
            });
        }
        let token = random_hex(32);
        match write_secret(&path, format!("{token}\n").as_bytes()) {
            Ok(()) => Ok(StoredToken {
                token,
                path,
                created: true,
            }),
            // Another process created it between our read and write: use theirs.
            Err(DataDirError::Write { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let token = read_secret(&path)?.ok_or_else(|| DataDirError::BadSecret {
                    path: path.clone(),
                    max: MAX_SECRET_BYTES,
                })?;
                Ok(StoredToken {
                    token,
                    path,
                    created: false,
                })
            }
            Err(err) => Err(err),
        }
    }
}

/// Creates a directory and its parents; the last component gets mode 0700.
///
/// # Errors
/// [`DataDirError::CreateDir`].
pub(crate) fn create_private_dir(path: &Path) -> Result<(), DataDirError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder
        .create(path)
        .map_err(|source| DataDirError::CreateDir {
            path: path.to_owned(),
            source,
        })
}

/// Writes a new file with mode 0600; refuses to overwrite an existing one.
///
/// # Errors
/// [`DataDirError::Write`] (kind `AlreadyExists` when the file is there).
pub(crate) fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let write_err = |source| DataDirError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(write_err)?;
    file.write_all(bytes).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

/// Reads a one-line secret; `None` when the file does not exist.
fn read_secret(path: &Path) -> Result<Option<String>, DataDirError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(DataDirError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut text = String::new();
    let bad = || DataDirError::BadSecret {
        path: path.to_owned(),
        max: MAX_SECRET_BYTES,
    };
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|_| bad())?;
    let token = text.trim();
    if token.is_empty() || text.len() as u64 > MAX_SECRET_BYTES {
        return Err(bad());
    }
    Ok(Some(token.to_owned()))
}

/// `n` random bytes from the OS, hex-encoded.
///
/// # Panics
/// When the OS has no random source (no supported platform lacks one).
#[must_use]
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_with_mode_0600() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path().join("data")).expect("open");
        let first = dir.access_token().expect("created");
        assert!(first.created);
        assert_eq!(first.token.len(), 64);
        let again = dir.access_token().expect("read");
        assert!(!again.created);
        assert_eq!(again.token, first.token);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&first.path)
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = fs::metadata(dir.path()).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn an_empty_token_file_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::open(tmp.path()).expect("open");
        fs::write(dir.join(ACCESS_TOKEN_FILE), "\n").expect("write");
        let err = dir.access_token().expect_err("empty");
        assert!(matches!(err, DataDirError::BadSecret { .. }), "{err}");
    }

    #[test]
    fn secrets_are_never_overwritten() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("s");
        write_secret(&path, b"one").expect("first");
        let err = write_secret(&path, b"two").expect_err("exists");
        assert!(matches!(err, DataDirError::Write { .. }), "{err}");
        assert_eq!(fs::read(&path).expect("read"), b"one");
    }
}
