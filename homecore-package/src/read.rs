//! Reading package files without trusting the file system: no symlinks anywhere, regular files
//! only, size caps enforced while reading, file names that cannot leave the package.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::key::cap;

/// Deepest directory nesting walked inside a package.
pub const MAX_PACKAGE_DEPTH: usize = 8;

/// Most directory entries walked inside one package.
pub const MAX_PACKAGE_ENTRIES: usize = 1024;

/// Why a package file could not be read safely.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A symbolic link inside the package (or the package itself).
    #[error("{path} is a symbolic link; packages must not contain symlinks")]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A device, FIFO or socket inside the package.
    #[error("{path} is a {kind}, not a regular file or directory")]
    SpecialFile {
        /// The entry.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The package is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file is larger than its cap (found while reading, never after reading it all).
    #[error("{path} is larger than the {max}-byte limit")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: u64,
    },
    /// A file name that could leave the package directory or is not a plain name.
    #[error("file name {name:?} is not allowed: {why}")]
    BadFileName {
        /// The name (capped).
        name: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// The package nests deeper than [`MAX_PACKAGE_DEPTH`] or holds more than
    /// [`MAX_PACKAGE_ENTRIES`] entries.
    #[error(
        "{path} is too large a tree (more than {MAX_PACKAGE_ENTRIES} entries or {MAX_PACKAGE_DEPTH} levels)"
    )]
    TreeTooLarge {
        /// Where the limit was hit.
        path: PathBuf,
    },
    /// A required file is missing.
    #[error("{path} is missing")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// Any other I/O failure.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Checks that `name` is one plain file name: not empty, no `/`, no NUL, not `.`/`..`,
/// not absolute, not hidden.
///
/// # Errors
/// [`ReadError::BadFileName`] naming the rule broken.
pub fn check_file_name(name: &str) -> Result<(), ReadError> {
    let why = if name.is_empty() {
        Some("empty")
    } else if name.contains('\0') {
        Some("contains NUL")
    } else if name.starts_with('/') {
        Some("absolute path")
    } else if name.split('/').any(|c| c == "..") {
        Some("contains `..`")
    } else if name.contains('/') || name.contains('\\') {
        Some("must be a file directly in the package directory")
    } else if name.starts_with('.') {
        Some("hidden names are not allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(ReadError::BadFileName {
            name: cap(name),
            why,
        }),
        None => Ok(()),
    }
}

fn kind_of(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        Some("FIFO")
    } else if ft.is_socket() {
        Some("socket")
    } else if ft.is_block_device() {
        Some("block device")
    } else if ft.is_char_device() {
        Some("character device")
    } else if ft.is_file() || ft.is_dir() {
        None
    } else {
        Some("special file")
    }
}

/// Checks the package directory itself and every entry below it, without following links:
/// no symlinks, no devices/FIFOs/sockets, bounded depth and entry count.
///
/// # Errors
/// [`ReadError::Symlink`], [`ReadError::SpecialFile`], [`ReadError::NotADirectory`],
/// [`ReadError::TreeTooLarge`], [`ReadError::Io`].
pub(crate) fn check_tree(dir: &Path) -> Result<(), ReadError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| io_error(dir, source))?;
    if meta.file_type().is_symlink() {
        return Err(ReadError::Symlink {
            path: dir.to_owned(),
        });
    }
    if !meta.is_dir() {
        return Err(ReadError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let mut entries = 0usize;
    let mut stack = vec![(dir.to_owned(), 0usize)];
    while let Some((here, depth)) = stack.pop() {
        let listing = std::fs::read_dir(&here).map_err(|source| io_error(&here, source))?;
        for entry in listing {
            let entry = entry.map_err(|source| io_error(&here, source))?;
            let path = entry.path();
            entries += 1;
            if entries > MAX_PACKAGE_ENTRIES {
                return Err(ReadError::TreeTooLarge { path });
            }
            // `DirEntry::file_type` does not follow symlinks.
            let ft = entry
                .file_type()
                .map_err(|source| io_error(&path, source))?;
            if ft.is_symlink() {
                return Err(ReadError::Symlink { path });
            }
            if let Some(kind) = kind_of(ft) {
                return Err(ReadError::SpecialFile { path, kind });
            }
            if ft.is_dir() {
                if depth + 1 >= MAX_PACKAGE_DEPTH {
                    return Err(ReadError::TreeTooLarge { path });
                }
                stack.push((path, depth + 1));
            }
        }
    }
    Ok(())
}

fn io_error(path: &Path, source: io::Error) -> ReadError {
    ReadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens `dir/name` without following a symlink at the last component, and without blocking
/// on a FIFO; then checks the opened file (fstat) is a regular file.
///
/// `Ok(None)` when the file does not exist.
fn open_regular(path: &Path) -> Result<Option<File>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ReadError::Symlink {
                path: path.to_owned(),
            });
        }
        Err(source) => return Err(io_error(path, source)),
    };
    let meta = file.metadata().map_err(|source| io_error(path, source))?;
    if let Some(kind) = kind_of(meta.file_type()) {
        return Err(ReadError::SpecialFile {
            path: path.to_owned(),
            kind,
        });
    }
    if meta.is_dir() {
        return Err(ReadError::SpecialFile {
            path: path.to_owned(),
            kind: "directory",
        });
    }
    Ok(Some(file))
}

/// Reads `dir/name` once, refusing it as soon as more than `max` bytes arrive.
/// `Ok(None)` when it does not exist.
///
/// # Errors
/// [`ReadError::BadFileName`], [`ReadError::Symlink`], [`ReadError::SpecialFile`],
/// [`ReadError::TooLarge`], [`ReadError::Io`].
pub(crate) fn read_capped(dir: &Path, name: &str, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
    check_file_name(name)?;
    let path = dir.join(name);
    let Some(file) = open_regular(&path)? else {
        return Ok(None);
    };
    let too_large = || ReadError::TooLarge {
        path: path.clone(),
        max,
    };
    // The size from fstat only sizes the buffer (and refuses early); the cap is enforced on
    // the bytes actually read, so a file that grows while being read is still refused.
    let hint = file.metadata().map(|m| m.len()).unwrap_or(0);
    if hint > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(&path, source))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(Some(bytes))
}

/// As [`read_capped`], but a missing file is [`ReadError::Missing`].
///
/// # Errors
/// As [`read_capped`], and [`ReadError::Missing`].
pub(crate) fn read_required(dir: &Path, name: &str, max: u64) -> Result<Vec<u8>, ReadError> {
    read_capped(dir, name, max)?.ok_or_else(|| ReadError::Missing {
        path: dir.join(name),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn file_names_that_could_escape_are_refused() {
        for (name, why) in [
            ("", "empty"),
            ("a\0b", "contains NUL"),
            ("/etc/passwd", "absolute path"),
            ("../x.wasm", "contains `..`"),
            ("..", "contains `..`"),
            (
                "sub/x.wasm",
                "must be a file directly in the package directory",
            ),
            (".x.wasm", "hidden names are not allowed"),
        ] {
            match check_file_name(name) {
                Err(ReadError::BadFileName { why: got, .. }) => assert_eq!(got, why, "{name:?}"),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        check_file_name("plugin.wasm").expect("plain name");
    }

    #[test]
    fn a_symlink_to_dev_zero_is_refused_without_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        symlink("/dev/zero", dir.path().join("plugin.wasm")).expect("symlink");
        let err = read_capped(dir.path(), "plugin.wasm", 1 << 20).expect_err("symlink");
        assert!(matches!(err, ReadError::Symlink { .. }), "{err}");
        assert!(matches!(
            check_tree(dir.path()),
            Err(ReadError::Symlink { .. })
        ));
    }

    #[test]
    fn oversized_files_are_refused_while_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big"), vec![0u8; 1001]).expect("write");
        let err = read_capped(dir.path(), "big", 1000).expect_err("too large");
        assert!(
            matches!(err, ReadError::TooLarge { max: 1000, .. }),
            "{err}"
        );
        std::fs::write(dir.path().join("ok"), vec![0u8; 1000]).expect("write");
        assert_eq!(
            read_capped(dir.path(), "ok", 1000)
                .expect("fits")
                .map(|b| b.len()),
            Some(1000)
        );
    }

    #[test]
    fn fifos_and_directories_are_not_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        let err = read_capped(dir.path(), "sub", 10).expect_err("dir");
        assert!(
            matches!(
                err,
                ReadError::SpecialFile {
                    kind: "directory",
                    ..
                }
            ),
            "{err}"
        );
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if status.is_ok_and(|s| s.success()) {
            // Opened with O_NONBLOCK: refused without hanging.
            let err = read_capped(dir.path(), "fifo", 10).expect_err("fifo");
            assert!(
                matches!(err, ReadError::SpecialFile { kind: "FIFO", .. }),
                "{err}"
            );
            assert!(matches!(
                check_tree(dir.path()),
                Err(ReadError::SpecialFile { .. })
            ));
        }
    }

    #[test]
    fn symlinks_deep_in_the_tree_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a").join("b");
        std::fs::create_dir_all(&deep).expect("mkdir");
        symlink("/etc", deep.join("etc")).expect("symlink");
        assert!(matches!(
            check_tree(dir.path()),
            Err(ReadError::Symlink { .. })
        ));
    }

    #[test]
    fn a_package_that_is_a_symlink_or_a_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let real = dir.path().join("real");
        std::fs::create_dir(&real).expect("mkdir");
        symlink(&real, dir.path().join("link")).expect("symlink");
        assert!(matches!(
            check_tree(&dir.path().join("link")),
            Err(ReadError::Symlink { .. })
        ));
        std::fs::write(dir.path().join("file"), b"x").expect("write");
        assert!(matches!(
            check_tree(&dir.path().join("file")),
            Err(ReadError::NotADirectory { .. })
        ));
    }

    #[test]
    fn deep_and_wide_trees_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut deep = dir.path().to_owned();
        for i in 0..MAX_PACKAGE_DEPTH {
            deep = deep.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).expect("mkdir");
        assert!(matches!(
            check_tree(dir.path()),
            Err(ReadError::TreeTooLarge { .. })
        ));

        let wide = tempfile::tempdir().expect("tempdir");
        for i in 0..=MAX_PACKAGE_ENTRIES {
            std::fs::write(wide.path().join(format!("f{i}")), b"").expect("write");
        }
        assert!(matches!(
            check_tree(wide.path()),
            Err(ReadError::TreeTooLarge { .. })
        ));
    }

    #[test]
    fn missing_files_are_none_or_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_capped(dir.path(), "absent", 10).expect("ok").is_none());
        assert!(matches!(
            read_required(dir.path(), "absent", 10),
            Err(ReadError::Missing { .. })
        ));
    }
}
