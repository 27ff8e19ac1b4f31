//! Compiled modules on disk, so a restart does not recompile: the one place this crate uses
//! `unsafe` (docs/adr/0012-artifact-cache.md).
//!
//! An artifact is the exact output of `Module::serialize` for a module this host compiled,
//! stored as `<dir>/<key>.cwasm` where the key is the SHA-256 of the module's SHA-256, the
//! engine's [`Engine::precompile_compatibility_hash`] and this cache's format version. It is
//! written to a temporary file (mode 0600, synced) and renamed into place, so a name never
//! points at a partial file and a file is never changed once named. It is loaded with
//! `Module::deserialize_open_file` (an mmap, no copy, no decompression) after checking that
//! the directory and the file are ours and private. Anything unexpected (no file, a file that
//! is not ours, a file Wasmtime refuses) is a miss: the module is compiled again and the entry
//! replaced; the cache never turns into a load error.
//!
//! The directory is kept within a size limit ([`crate::WasmtimeConfig::cache_max_bytes`], 512
//! MiB by default, as Wasmtime's own cache): when the runtime opens it and after every new
//! artifact, the least recently used artifacts (by modification time, which a hit refreshes)
//! are removed until the rest fits, and temporary files an interrupted writer left behind are
//! removed after an hour. Only regular files of ours with the cache's names are ever removed;
//! a process that still maps a removed artifact keeps its copy.

use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// Bump when the file layout or the key derivation changes: old entries then simply miss.
const FORMAT: &[u8] = b"homecore-artifact-cache-v1";

/// Extension of a named artifact.
const EXTENSION: &str = "cwasm";

/// Extension of a temporary file being written (named `.<key>.<pid>.<n>.tmp`).
const TEMP_EXTENSION: &str = "tmp";

/// Default size limit of the directory's artifacts (Wasmtime's cache uses the same).
pub(crate) const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// Age after which a temporary file is taken for a crashed writer's and removed.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// A directory of compiled modules for one engine configuration.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    /// SHA-256 of the format version and the engine's compatibility hash.
    engine_key: [u8; 32],
    /// The effective user id: the owner every directory and file must have.
    uid: u32,
    /// Size limit of the directory's artifacts, bytes.
    max_bytes: u64,
}

/// What one [`ArtifactCache::prune`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Artifacts removed to get within the size limit.
    pub(crate) artifacts: usize,
    /// Their bytes.
    pub(crate) bytes: u64,
    /// Stale temporary files removed.
    pub(crate) temporaries: usize,
}

/// Why the cache directory cannot be used (the runtime then runs without a disk cache).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CacheDirError {
    /// The directory could not be created or inspected.
    #[error("cannot create or inspect the directory")]
    Io(#[from] io::Error),
    /// The path is a symbolic link or not a directory.
    #[error("not a directory (symbolic links are refused)")]
    NotADirectory,
    /// The directory belongs to another user.
    #[error("owned by uid {owner}, not by this process (uid {uid})")]
    NotOurs {
        /// The directory's owner.
        owner: u32,
        /// This process's effective user id.
        uid: u32,
    },
}

/// Why an entry was not used (logged; the module is compiled instead).
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("cannot open or inspect the file")]
    Io(#[source] io::Error),
    #[error("not a regular file with one link")]
    NotAFile,
    #[error("owned by uid {owner}, not by this process")]
    NotOurs { owner: u32 },
    #[error("mode {mode:o}, expected 600")]
    Mode { mode: u32 },
    #[error("refused by wasmtime: {reason}")]
    Refused { reason: String },
}

/// The name of one module's artifact for one engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArtifactKey(String);

impl ArtifactCache {
    /// Opens (creating it, mode 0700) the cache directory for `engine`. The directory must be
    /// ours and not a symbolic link; group and other permission bits are removed.
    ///
    /// # Errors
    /// [`CacheDirError`] when the directory cannot be created or is not private to us.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, CacheDirError> {
        let uid = rustix::process::geteuid().as_raw();
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            Err(e) => return Err(e.into()),
        }
        let meta = fs::symlink_metadata(dir)?;
        if !meta.file_type().is_dir() {
            return Err(CacheDirError::NotADirectory);
        }
        if meta.uid() != uid {
            return Err(CacheDirError::NotOurs {
                owner: meta.uid(),
                uid,
            });
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700))?;
        }
        let mut hasher = Sha256Hasher::default();
        FORMAT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_owned(),
            engine_key: hasher.0.finalize().into(),
            uid,
            max_bytes: DEFAULT_MAX_BYTES,
        })
    }

    /// This cache with a size limit of `max_bytes` for its artifacts.
    pub(crate) fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Removes stale temporary files, then the least recently used artifacts until the rest
    /// fit the size limit (`keep`, the artifact just stored, is never removed). Failures are
    /// logged and skipped: pruning never fails a load.
    pub(crate) fn prune(&self, keep: Option<&ArtifactKey>) -> Pruned {
        let mut pruned = Pruned::default();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(path = %self.dir.display(), error = %e, "cannot list the compiled-module cache");
                return pruned;
            }
        };
        let keep = keep.map(|key| self.path(key));
        let now = std::time::SystemTime::now();
        let mut artifacts = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            // Only regular files of ours (not following links) with the cache's names.
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.file_type().is_file() || meta.uid() != self.uid {
                continue;
            }
            let modified = meta.modified().unwrap_or(now);
            match path.extension().and_then(|e| e.to_str()) {
                Some(EXTENSION) if Some(&path) != keep.as_ref() => {
                    artifacts.push((modified, meta.len(), path));
                }
                Some(EXTENSION) => {}
                Some(TEMP_EXTENSION)
                    if now.duration_since(modified).unwrap_or_default() > STALE_TEMP
                        && fs::remove_file(&path).is_ok() =>
                {
                    pruned.temporaries += 1;
                }
                _ => {}
            }
        }
        let kept_size = keep
            .as_ref()
            .and_then(|path| fs::symlink_metadata(path).ok())
            .map_or(0, |meta| meta.len());
        let mut total = kept_size + artifacts.iter().map(|(_, len, _)| len).sum::<u64>();
        // Oldest first.
        artifacts.sort_by_key(|(modified, _, _)| *modified);
        for (_, len, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    pruned.artifacts += 1;
                    pruned.bytes += len;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a compiled module from the cache");
                }
            }
        }
        if pruned != Pruned::default() {
            tracing::info!(
                path = %self.dir.display(),
                artifacts = pruned.artifacts,
                bytes = pruned.bytes,
                temporaries = pruned.temporaries,
                max_bytes = self.max_bytes,
                "compiled-module cache pruned"
            );
        }
        pruned
    }

    /// The key of a module whose SHA-256 is `module_sha256`, for this cache's engine.
    pub(crate) fn key(&self, module_sha256: &[u8; 32]) -> ArtifactKey {
        let mut sha = Sha256::new();
        sha.update(self.engine_key);
        sha.update(module_sha256);
        ArtifactKey(hex(&sha.finalize()))
    }

    fn path(&self, key: &ArtifactKey) -> PathBuf {
        self.dir.join(format!("{}.{EXTENSION}", key.0))
    }

    /// The cached module for `key`, or `None` (a miss) when there is none or it is unusable
    /// (logged with the reason). Never fails otherwise.
    pub(crate) fn load(&self, engine: &Engine, key: &ArtifactKey) -> Option<Module> {
        let path = self.path(key);
        match self.try_load(engine, &path) {
            Ok(module) => Some(module),
            Err(Unusable::Io(e)) if e.kind() == io::ErrorKind::NotFound => None,
            Err(reason) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %reason,
                    "cached compiled module unusable; compiling the module again"
                );
                None
            }
        }
    }

    #[allow(
        unsafe_code,
        reason = "the crate's one unsafe block: deserializing our own artifacts (ADR 12)"
    )]
    fn try_load(&self, engine: &Engine, path: &Path) -> Result<Module, Unusable> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(nofollow())
            .open(path)
            .map_err(Unusable::Io)?;
        let meta = file.metadata().map_err(Unusable::Io)?;
        if !meta.file_type().is_file() || meta.nlink() != 1 {
            return Err(Unusable::NotAFile);
        }
        if meta.uid() != self.uid {
            return Err(Unusable::NotOurs { owner: meta.uid() });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode != 0o600 {
            return Err(Unusable::Mode { mode });
        }
        // For the timestamp a hit refreshes (see below).
        let refresh = file.try_clone().ok();
        // SAFETY: `Module::deserialize_open_file` requires the file to be an unmodified output
        // of `Module::serialize`/`Engine::precompile_module` that stays unchanged while the
        // module lives. This file was opened without following links, inside a directory that
        // `open` checked is ours and private (mode 0700, so nobody else can create, replace or
        // rename entries in it), and it is a single-link regular file owned by us with mode
        // 0600. The only writer of such files is `store`: it writes the bytes of
        // `Module::serialize` of a module this engine compiled to a fresh temporary file,
        // syncs it, and renames it into place, so a named file is complete and never written
        // again (a replacement is a new file renamed over the name; the mapped one is
        // untouched; a hit only refreshes a file's modification time). The name is the key of
        // the module's SHA-256 and the engine's compatibility hash, so it holds code for this
        // module and engine settings; Wasmtime still checks its own header (version, target,
        // settings) and refuses a mismatch, which is a miss here.
        let loaded = unsafe { Module::deserialize_open_file(engine, file) };
        let module = loaded.map_err(|e| Unusable::Refused {
            reason: format!("{e:#}"),
        })?;
        // A hit makes this the most recently used artifact (what `prune` keeps longest). Only
        // the timestamp changes, never the bytes; a failure costs nothing but that order.
        if let Some(file) = refresh {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        Ok(module)
    }

    /// Stores `module` (compiled from the module of `key` by this cache's engine) under `key`,
    /// replacing any entry. A failure is logged, never returned: the module is in memory and
    /// the next start compiles it again.
    pub(crate) fn store(&self, key: &ArtifactKey, module: &Module) {
        let path = self.path(key);
        match self.try_store(&path, module) {
            Ok(()) => {
                self.prune(Some(key));
            }
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "could not store the compiled module; the next start will compile it again"
            ),
        }
    }

    fn try_store(&self, path: &Path, module: &Module) -> io::Result<()> {
        static TEMP: AtomicU64 = AtomicU64::new(0);
        let bytes = module
            .serialize()
            .map_err(|e| io::Error::other(format!("{e:#}")))?;
        let temp = self.dir.join(format!(
            ".{}.{}.{}.{TEMP_EXTENSION}",
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("artifact"),
            std::process::id(),
            TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_synced(&temp, &bytes).and_then(|()| fs::rename(&temp, path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nofollow())
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn nofollow() -> i32 {
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).expect("O_NOFOLLOW fits an i32")
}

/// The SHA-256 of `bytes` (the key of a module whose digest nobody computed before).
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Feeds a `Hash` value to SHA-256 (stable across runs, unlike `DefaultHasher`'s keys).
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("eight bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(fuel: bool) -> Engine {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(fuel);
        Engine::new(&config).expect("engine")
    }

    const WAT: &str = r#"(module (func (export "answer") (result i32) (i32.const 42)))"#;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "homecore-artifact-cache-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn module(engine: &Engine) -> Module {
        Module::new(engine, wat::parse_str(WAT).expect("valid WAT")).expect("compiles")
    }

    fn answer(engine: &Engine, module: &Module) -> i32 {
        let mut store = wasmtime::Store::new(engine, ());
        // Refused (and not needed) when the engine does not meter fuel.
        let _ = store.set_fuel(1000);
        let instance = wasmtime::Instance::new(&mut store, module, &[]).expect("instantiates");
        instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .expect("export")
            .call(&mut store, ())
            .expect("runs")
    }

    fn only_entry(dir: &Path) -> PathBuf {
        let entries: Vec<PathBuf> = fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.into_iter().next().expect("one entry")
    }

    /// Sets `path`'s modification time to `ago` before now.
    fn age(path: &Path, ago: std::time::Duration) {
        let when = std::time::SystemTime::now() - ago;
        File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(when))
            .expect("settable");
    }

    #[test]
    fn the_least_recently_used_artifacts_go_when_over_the_limit() {
        let dir = temp_dir("prune");
        let engine = engine(true);
        let module = module(&engine);
        let probe = ArtifactCache::open(&dir, &engine).expect("opens");
        let keys: Vec<ArtifactKey> = (0u8..3).map(|i| probe.key(&[i; 32])).collect();
        probe.store(&keys[0], &module);
        let size = fs::metadata(probe.path(&keys[0])).expect("stored").len();
        // Room for two artifacts and a half.
        let cache = probe.with_max_bytes(size * 5 / 2);
        cache.store(&keys[1], &module);
        age(&cache.path(&keys[0]), std::time::Duration::from_secs(300));
        age(&cache.path(&keys[1]), std::time::Duration::from_secs(200));
        // A hit makes the older one the most recently used.
        assert!(cache.load(&engine, &keys[0]).is_some());
        cache.store(&keys[2], &module);
        assert!(cache.path(&keys[0]).exists(), "used last before the store");
        assert!(
            !cache.path(&keys[1]).exists(),
            "the least recently used goes"
        );
        assert!(cache.path(&keys[2]).exists(), "the one just stored stays");
        // A limit smaller than one artifact still keeps the one just stored.
        let tiny = cache.with_max_bytes(1);
        tiny.store(&keys[1], &module);
        assert_eq!(only_entry(&dir), tiny.path(&keys[1]));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn pruning_removes_stale_temporaries_and_nothing_that_is_not_the_caches() {
        let dir = temp_dir("prune-temp");
        let engine = engine(true);
        let cache = ArtifactCache::open(&dir, &engine).expect("opens");
        let stale = dir.join(".abc.1.0.tmp");
        let fresh = dir.join(".abc.1.1.tmp");
        let other = dir.join("notes.txt");
        let link = dir.join("elsewhere.cwasm");
        for path in [&stale, &fresh, &other] {
            fs::write(path, b"x").expect("writable");
        }
        std::os::unix::fs::symlink(&other, &link).expect("symlink");
        age(&stale, STALE_TEMP * 2);
        age(&other, STALE_TEMP * 2);
        let pruned = cache.with_max_bytes(0).prune(None);
        assert_eq!(
            pruned,
            Pruned {
                artifacts: 0,
                bytes: 0,
                temporaries: 1
            }
        );
        assert!(!stale.exists());
        assert!(fresh.exists() && other.exists());
        assert!(
            fs::symlink_metadata(&link).is_ok(),
            "links are never followed or removed"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_stored_module_loads_back_private_and_named_by_its_key() {
        let dir = temp_dir("roundtrip");
        let engine = engine(true);
        let cache = ArtifactCache::open(&dir, &engine).expect("opens");
        assert_eq!(
            fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
            0o700
        );
        let key = cache.key(&sha256(WAT.as_bytes()));
        assert!(cache.load(&engine, &key).is_none(), "empty cache misses");
        let module = module(&engine);
        cache.store(&key, &module);
        let path = only_entry(&dir);
        assert_eq!(path, cache.path(&key));
        assert_eq!(
            fs::metadata(&path).expect("file").permissions().mode() & 0o777,
            0o600
        );
        let loaded = cache.load(&engine, &key).expect("hit");
        assert_eq!(answer(&engine, &loaded), 42);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_differ_by_module_and_by_engine_settings() {
        let dir = temp_dir("keys");
        let fuel = ArtifactCache::open(&dir, &engine(true)).expect("opens");
        let no_fuel = ArtifactCache::open(&dir, &engine(false)).expect("opens");
        let a = sha256(b"a");
        assert_eq!(fuel.key(&a), fuel.key(&a));
        assert_ne!(fuel.key(&a), fuel.key(&sha256(b"b")));
        assert_ne!(fuel.key(&a), no_fuel.key(&a));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_artifact_of_another_engine_configuration_is_a_miss() {
        let dir = temp_dir("other-engine");
        let (with_fuel, without) = (engine(true), engine(false));
        let theirs = ArtifactCache::open(&dir, &with_fuel).expect("opens");
        let ours = ArtifactCache::open(&dir, &without).expect("opens");
        let key = ours.key(&sha256(WAT.as_bytes()));
        // An artifact compiled with fuel, under the name this engine would use.
        theirs.store(&key, &module(&with_fuel));
        assert!(ours.load(&without, &key).is_none(), "wasmtime refuses it");
        // Replacing it makes it a hit.
        ours.store(&key, &module(&without));
        let loaded = ours.load(&without, &key).expect("hit");
        assert_eq!(answer(&without, &loaded), 42);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn corrupted_truncated_or_empty_artifacts_are_misses() {
        let dir = temp_dir("corrupt");
        let engine = engine(true);
        let cache = ArtifactCache::open(&dir, &engine).expect("opens");
        let key = cache.key(&sha256(WAT.as_bytes()));
        let module = module(&engine);
        cache.store(&key, &module);
        let path = cache.path(&key);
        let good = fs::read(&path).expect("stored");
        let mut garbage = good.clone();
        for b in garbage.iter_mut().take(64) {
            *b ^= 0x5a;
        }
        let cases = [
            ("corrupted header", garbage),
            ("truncated", good[..good.len() / 2].to_vec()),
            ("empty", Vec::new()),
            ("not an artifact", b"\0asm\x01\0\0\0".to_vec()),
        ];
        for (what, bytes) in cases {
            fs::write(&path, &bytes).expect("writable");
            assert!(cache.load(&engine, &key).is_none(), "{what}");
            cache.store(&key, &module);
            let loaded = cache.load(&engine, &key).expect("replaced entry hits");
            assert_eq!(answer(&engine, &loaded), 42, "{what}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_private_ours_or_regular_is_a_miss() {
        let dir = temp_dir("not-private");
        let engine = engine(true);
        let cache = ArtifactCache::open(&dir, &engine).expect("opens");
        let key = cache.key(&sha256(WAT.as_bytes()));
        cache.store(&key, &module(&engine));
        let path = cache.path(&key);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(cache.load(&engine, &key).is_none(), "mode 644");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(cache.load(&engine, &key).is_some(), "mode 600");
        // A symbolic link to a good artifact is refused.
        let real = dir.join("real");
        fs::rename(&path, &real).expect("rename");
        std::os::unix::fs::symlink(&real, &path).expect("symlink");
        assert!(cache.load(&engine, &key).is_none(), "symlink");
        fs::remove_file(&path).expect("unlink");
        // So is a second name for it.
        fs::hard_link(&real, &path).expect("hard link");
        assert!(cache.load(&engine, &key).is_none(), "two links");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_or_non_directory_cache_path_is_refused() {
        let dir = temp_dir("not-dir");
        fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("file");
        fs::write(&file, b"x").expect("file");
        let engine = engine(true);
        assert!(matches!(
            ArtifactCache::open(&file, &engine),
            Err(CacheDirError::NotADirectory)
        ));
        assert!(matches!(
            ArtifactCache::open(&file.join("below"), &engine),
            Err(CacheDirError::Io(_))
        ));
        let target = dir.join("target");
        fs::create_dir(&target).expect("dir");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(matches!(
            ArtifactCache::open(&link, &engine),
            Err(CacheDirError::NotADirectory)
        ));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn group_and_other_bits_are_removed_from_an_existing_directory() {
        let dir = temp_dir("loose");
        fs::create_dir_all(&dir).expect("dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        ArtifactCache::open(&dir, &engine(true)).expect("opens");
        assert_eq!(
            fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
            0o700
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
