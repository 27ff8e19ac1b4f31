//! Reading package files without trusting the file system: no symlinks anywhere, regular files
//! only, size caps enforced while reading, file names that cannot leave the package.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

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

/// An open package directory: every later look inside it (the tree walk, each file read) is
/// relative to this handle and follows no link, so a package directory swapped for a symlink
/// after it was opened changes nothing (what is verified is what was opened), and one swapped
/// before is refused (docs/adr/0008-signed-packages.md, "Reading without races").
#[derive(Debug)]
pub(crate) struct PackageDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Flags for a directory opened without following a link at its last component.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// An open plugins directory: listed once, and every package in it opened relative to this
/// handle without following a link (docs/adr/0008-signed-packages.md, "Reading without
/// races"). Its own path is the operator's and is resolved as given.
#[derive(Debug)]
pub(crate) struct PluginsDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl PluginsDir {
    /// Opens the directory at `path` (links in the operator's path are followed).
    ///
    /// # Errors
    /// The open's failure.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The parent of `package` opened, and `package`'s name in it.
    ///
    /// # Errors
    /// [`ReadError::NotADirectory`] when `package` has no name, [`ReadError::Io`] when the
    /// parent cannot be opened.
    pub(crate) fn parent_of(package: &Path) -> Result<(Self, &OsStr), ReadError> {
        let (parent, name) = match (package.parent(), package.file_name()) {
            (Some(parent), Some(name)) => (
                if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                },
                name,
            ),
            _ => {
                return Err(ReadError::NotADirectory {
                    path: package.to_owned(),
                });
            }
        };
        let dir = Self::open(parent).map_err(|e| io_error(parent, e))?;
        Ok((dir, name))
    }

    /// The directory's path (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The names of its entries (`.` and `..` left out), read from this handle, at most
    /// `max + 1` of them (so a caller can tell "more than `max`").
    ///
    /// # Errors
    /// The listing's failure.
    pub(crate) fn names(&self, max: usize) -> io::Result<Vec<std::ffi::OsString>> {
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            names.push(name.to_owned());
            if names.len() > max {
                break;
            }
        }
        Ok(names)
    }

    /// Opens the package directory `name` relative to this handle, following no link (on
    /// Linux `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel has it, else
    /// `openat(O_NOFOLLOW | O_DIRECTORY)`).
    ///
    /// # Errors
    /// [`ReadError::Symlink`], [`ReadError::NotADirectory`], [`ReadError::Io`].
    pub(crate) fn package(&self, name: &OsStr) -> Result<PackageDir, ReadError> {
        let path = self.path.join(name);
        let fd =
            open_dir_beneath(&self.fd, name).map_err(|e| dir_error(&self.fd, name, &path, e))?;
        Ok(PackageDir { fd, path })
    }

    /// Reads the file `name` (a bundle) relative to this handle, as [`read_capped_at`].
    ///
    /// # Errors
    /// As [`read_capped_at`].
    pub(crate) fn read_file(&self, name: &str, max: u64) -> Result<Option<Vec<u8>>, ReadError> {
        read_capped_fd(&self.fd, &self.path, name, max)
    }
}

impl PackageDir {
    /// Opens the package directory `path`: its parent as the operator named it, then the
    /// package relative to the parent without following a link ([`PluginsDir::package`]).
    ///
    /// # Errors
    /// [`ReadError::Symlink`], [`ReadError::NotADirectory`], [`ReadError::Io`].
    #[cfg(test)]
    pub(crate) fn open(path: &Path) -> Result<Self, ReadError> {
        let (parent, name) = PluginsDir::parent_of(path)?;
        parent.package(name)
    }

    /// The path it was opened at (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the subdirectory `name` relative to this one, following no link.
    fn open_child(&self, name: &OsStr) -> Result<Self, ReadError> {
        let path = self.path.join(name);
        let fd = rfs::openat(&self.fd, name, dir_flags(), Mode::empty())
            .map_err(|e| dir_error(&self.fd, name, &path, e))?;
        Ok(Self { fd, path })
    }
}

/// `name` (one component) opened as a directory beneath `parent`, no link followed.
fn open_dir_beneath(parent: &OwnedFd, name: &OsStr) -> Result<OwnedFd, rustix::io::Errno> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::ResolveFlags;
        match rfs::openat2(
            parent,
            name,
            dir_flags(),
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            // Older kernels (ENOSYS) and sandboxes that filter the call (EPERM): openat.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
            other => return other,
        }
    }
    rfs::openat(parent, name, dir_flags(), Mode::empty())
}

/// Why `name` in `parent` did not open as a directory: a link (ELOOP from `O_NOFOLLOW`, or
/// `openat2`'s refusal), something else than a directory, or another failure.
fn dir_error(parent: &OwnedFd, name: &OsStr, path: &Path, errno: rustix::io::Errno) -> ReadError {
    let is_link = || {
        rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
    };
    match errno {
        rustix::io::Errno::LOOP | rustix::io::Errno::XDEV => ReadError::Symlink {
            path: path.to_owned(),
        },
        rustix::io::Errno::NOTDIR if is_link() => ReadError::Symlink {
            path: path.to_owned(),
        },
        rustix::io::Errno::NOTDIR => ReadError::NotADirectory {
            path: path.to_owned(),
        },
        other => io_error(path, other.into()),
    }
}

fn kind_of_raw(ft: FileType) -> Option<&'static str> {
    match ft {
        FileType::Fifo => Some("FIFO"),
        FileType::Socket => Some("socket"),
        FileType::BlockDevice => Some("block device"),
        FileType::CharacterDevice => Some("character device"),
        FileType::RegularFile | FileType::Directory => None,
        _ => Some("special file"),
    }
}

/// Checks every entry below an open package directory, relative to its handle and without
/// following links: no symlinks, no devices/FIFOs/sockets, bounded depth and entry count.
///
/// # Errors
/// [`ReadError::Symlink`], [`ReadError::SpecialFile`], [`ReadError::NotADirectory`],
/// [`ReadError::TreeTooLarge`], [`ReadError::Io`].
pub(crate) fn check_tree(dir: &PackageDir) -> Result<(), ReadError> {
    let mut entries = 0usize;
    // The root is borrowed; subdirectories are opened (and owned) as the walk goes.
    let mut stack: Vec<(Option<PackageDir>, usize)> = vec![(None, 0)];
    while let Some((owned, depth)) = stack.pop() {
        let here = owned.as_ref().unwrap_or(dir);
        let listing = rfs::Dir::read_from(&here.fd).map_err(|e| io_error(&here.path, e.into()))?;
        for entry in listing {
            let entry = entry.map_err(|e| io_error(&here.path, e.into()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let path = here.path.join(name);
            entries += 1;
            if entries > MAX_PACKAGE_ENTRIES {
                return Err(ReadError::TreeTooLarge { path });
            }
            let st = rfs::statat(&here.fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| io_error(&path, e.into()))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::Symlink {
                return Err(ReadError::Symlink { path });
            }
            if let Some(kind) = kind_of_raw(ft) {
                return Err(ReadError::SpecialFile { path, kind });
            }
            if ft == FileType::Directory {
                if depth + 1 >= MAX_PACKAGE_DEPTH {
                    return Err(ReadError::TreeTooLarge { path });
                }
                stack.push((Some(here.open_child(name)?), depth + 1));
            }
        }
    }
    Ok(())
}

/// Reads `name` in an open package directory once (relative to its handle, no link
/// followed, no FIFO blocking), refusing it as soon as more than `max` bytes arrive.
/// `Ok(None)` when it does not exist.
///
/// # Errors
/// As [`read_capped`].
pub(crate) fn read_capped_at(
    dir: &PackageDir,
    name: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, ReadError> {
    read_capped_fd(&dir.fd, &dir.path, name, max)
}

/// `name` in the directory `fd` (at `dir` for messages), read as [`read_capped_at`] says.
fn read_capped_fd(
    fd: &OwnedFd,
    dir: &Path,
    name: &str,
    max: u64,
) -> Result<Option<Vec<u8>>, ReadError> {
    check_file_name(name)?;
    let path = dir.join(name);
    let fd = match rfs::openat(
        fd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(rustix::io::Errno::LOOP) => return Err(ReadError::Symlink { path }),
        Err(errno) => return Err(io_error(&path, errno.into())),
    };
    read_opened(File::from(fd), &path, max).map(Some)
}

/// As [`read_capped_at`], but a missing file is [`ReadError::Missing`].
///
/// # Errors
/// As [`read_capped_at`], and [`ReadError::Missing`].
pub(crate) fn read_required_at(
    dir: &PackageDir,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, ReadError> {
    read_capped_at(dir, name, max)?.ok_or_else(|| ReadError::Missing {
        path: dir.path.join(name),
    })
}

fn io_error(path: &Path, source: io::Error) -> ReadError {
    ReadError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens `dir/name` without following a symlink at the last component, and without blocking
/// on a FIFO ([`read_opened`] then checks it is a regular file).
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
    read_opened(file, &path, max).map(Some)
}

/// Reads an opened file, which must be a regular file (fstat), refusing it as soon as more
/// than `max` bytes arrive.
fn read_opened(file: File, path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
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
    let too_large = || ReadError::TooLarge {
        path: path.to_owned(),
        max,
    };
    // The size from fstat only sizes the buffer (and refuses early); the cap is enforced on
    // the bytes actually read, so a file that grows while being read is still refused.
    let hint = meta.len();
    if hint > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(path, source))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// Opens `path` as a package directory and walks it.
    fn walk(path: &Path) -> Result<(), ReadError> {
        check_tree(&PackageDir::open(path)?)
    }

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
        let opened = PackageDir::open(dir.path()).expect("a real directory");
        assert!(matches!(
            check_tree(&opened),
            Err(ReadError::Symlink { .. })
        ));
    }

    /// `plugins/x/` holding `manifest.json` = `text`, and an `outside/x/` package elsewhere.
    fn plugins_and_outside(text: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().expect("tempdir");
        let inside = root.path().join("plugins/x");
        let outside = root.path().join("outside/x");
        for (dir, content) in [(&inside, text), (&outside, "outside")] {
            std::fs::create_dir_all(dir).expect("mkdir");
            std::fs::write(dir.join("manifest.json"), content).expect("write");
        }
        (root, inside, outside)
    }

    #[test]
    fn a_package_directory_that_is_a_symlink_is_refused_when_opened() {
        let (_root, inside, outside) = plugins_and_outside("inside");
        std::fs::remove_dir_all(&inside).expect("rm");
        symlink(&outside, &inside).expect("symlink");
        let err = PackageDir::open(&inside).expect_err("a link");
        assert!(matches!(err, ReadError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_package_swapped_for_a_symlink_after_it_was_opened_is_still_the_one_read() {
        // The race of issue 13 §6, made deterministic: the swap happens between the open
        // (discovery) and the reads (verification and loading).
        let (_root, inside, outside) = plugins_and_outside("inside");
        let opened = PackageDir::open(&inside).expect("opens");
        std::fs::rename(&inside, inside.with_extension("old")).expect("moved away");
        symlink(&outside, &inside).expect("swapped for a link");
        check_tree(&opened).expect("the opened tree has no link");
        let bytes = read_required_at(&opened, "manifest.json", 100).expect("reads");
        assert_eq!(bytes, b"inside", "the outside package was never read");
        // Opened again, the link is refused.
        let err = PackageDir::open(&inside).expect_err("now a link");
        assert!(matches!(err, ReadError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_package_swapped_for_a_symlink_between_listing_and_open_is_refused() {
        // Discovery lists the plugins directory through its handle, then opens each package
        // relative to it: a swap in between is a link at the open, and is refused.
        let (_root, inside, outside) = plugins_and_outside("inside");
        let plugins = PluginsDir::open(inside.parent().expect("parent")).expect("opens");
        let names = plugins.names(10).expect("lists");
        assert_eq!(names, [std::ffi::OsString::from("x")]);
        std::fs::rename(&inside, inside.with_extension("old")).expect("moved away");
        symlink(&outside, &inside).expect("swapped for a link");
        let err = plugins.package(OsStr::new("x")).expect_err("a link");
        assert!(matches!(err, ReadError::Symlink { .. }), "{err}");
        // A bundle swapped for a link is refused the same way.
        symlink(
            outside.join("manifest.json"),
            inside.with_extension("hcpkg"),
        )
        .expect("link");
        let err = plugins.read_file("x.hcpkg", 100).expect_err("a link");
        assert!(matches!(err, ReadError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_subdirectory_swapped_for_a_symlink_is_refused_by_the_walk() {
        let (_root, inside, outside) = plugins_and_outside("inside");
        let opened = PackageDir::open(&inside).expect("opens");
        symlink(outside.parent().expect("parent"), inside.join("assets")).expect("symlink");
        let err = check_tree(&opened).expect_err("a link below");
        assert!(matches!(err, ReadError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_directory_is_not_a_package_directory() {
        let (_root, inside, _) = plugins_and_outside("inside");
        let err = PackageDir::open(&inside.join("manifest.json")).expect_err("a file");
        assert!(matches!(err, ReadError::NotADirectory { .. }), "{err}");
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
                walk(dir.path()),
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
        let opened = PackageDir::open(dir.path()).expect("a real directory");
        assert!(matches!(
            check_tree(&opened),
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
            walk(&dir.path().join("link")),
            Err(ReadError::Symlink { .. })
        ));
        std::fs::write(dir.path().join("file"), b"x").expect("write");
        assert!(matches!(
            walk(&dir.path().join("file")),
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
            walk(dir.path()),
            Err(ReadError::TreeTooLarge { .. })
        ));

        let wide = tempfile::tempdir().expect("tempdir");
        for i in 0..=MAX_PACKAGE_ENTRIES {
            std::fs::write(wide.path().join(format!("f{i}")), b"").expect("write");
        }
        assert!(matches!(
            walk(wide.path()),
            Err(ReadError::TreeTooLarge { .. })
        ));
    }

    #[test]
    fn missing_files_are_none_or_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(read_capped(dir.path(), "absent", 10).expect("ok").is_none());
        let opened = PackageDir::open(dir.path()).expect("opens");
        assert!(read_capped_at(&opened, "absent", 10).expect("ok").is_none());
        assert!(matches!(
            read_required_at(&opened, "absent", 10),
            Err(ReadError::Missing { .. })
        ));
    }
}
