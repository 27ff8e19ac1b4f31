//! Rollback protection: the highest version accepted per domain, and the check against it.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use semver::Version;

use crate::TrustPolicy;
use crate::atomic_write::write_atomic;
use crate::read::{ReadError, read_capped};

/// The file [`FileAcceptedVersions`] keeps in the data directory.
pub const ACCEPTED_VERSIONS_FILE: &str = "accepted_versions.json";

/// Largest accepted-versions file read, bytes.
const MAX_STORE_BYTES: u64 = 4 << 20;

/// Why the accepted-version store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionStoreError {
    /// Reading the store failed (or it is a symlink, or too large).
    #[error("cannot read the accepted-versions store")]
    Read(#[from] ReadError),
    /// Writing the store failed.
    #[error("cannot write the accepted-versions store {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The store's content is not `{"domain": "version", ...}`.
    #[error("the accepted-versions store {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// Another backend's failure (e.g. a database).
    #[error("the accepted-versions backend {backend} failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Persists the highest version the host has accepted for each plugin domain.
///
/// Object-safe; implemented over a JSON file ([`FileAcceptedVersions`]), in memory
/// ([`MemoryAcceptedVersions`]) and, in the server, over its database.
pub trait AcceptedVersions: Send + Sync {
    /// The highest version accepted for `domain`, if any.
    ///
    /// # Errors
    /// The backend's failure.
    fn highest(&self, domain: &str) -> Result<Option<Version>, VersionStoreError>;

    /// Records that `version` of `domain` was accepted. Implementations keep the higher of
    /// the stored and the given version (by semver precedence), so recording an older
    /// (pinned) version never lowers the floor.
    ///
    /// # Errors
    /// The backend's failure; the version must then be treated as not recorded.
    fn record(&self, domain: &str, version: &Version) -> Result<(), VersionStoreError>;
}

/// Whether `new` should replace `stored` as the highest version.
fn raises(stored: Option<&Version>, new: &Version) -> bool {
    stored.is_none_or(|s| new.cmp_precedence(s).is_gt())
}

/// An in-memory store, for tests and for hosts without a data directory.
#[derive(Debug, Default)]
pub struct MemoryAcceptedVersions {
    versions: Mutex<BTreeMap<String, Version>>,
}

impl MemoryAcceptedVersions {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl AcceptedVersions for MemoryAcceptedVersions {
    fn highest(&self, domain: &str) -> Result<Option<Version>, VersionStoreError> {
        let versions = homecore::lock_unpoisoned(&self.versions);
        Ok(versions.get(domain).cloned())
    }

    fn record(&self, domain: &str, version: &Version) -> Result<(), VersionStoreError> {
        let mut versions = homecore::lock_unpoisoned(&self.versions);
        if raises(versions.get(domain), version) {
            versions.insert(domain.to_owned(), version.clone());
        }
        Ok(())
    }
}

/// A small JSON file (`{"domain": "1.2.0", ...}`) in the data directory, rewritten atomically
/// (temporary file, fsync, rename) on every change.
#[derive(Debug)]
pub struct FileAcceptedVersions {
    path: PathBuf,
    versions: Mutex<BTreeMap<String, Version>>,
}

impl FileAcceptedVersions {
    /// Opens (or starts) `data_dir/accepted_versions.json`.
    ///
    /// # Errors
    /// [`VersionStoreError::Read`] or [`VersionStoreError::Corrupt`]: a store that cannot be
    /// read is never treated as empty, which would silently disable rollback protection.
    pub fn open(data_dir: &Path) -> Result<Self, VersionStoreError> {
        let path = data_dir.join(ACCEPTED_VERSIONS_FILE);
        let versions = match read_capped(data_dir, ACCEPTED_VERSIONS_FILE, MAX_STORE_BYTES)? {
            None => BTreeMap::new(),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| VersionStoreError::Corrupt {
                    path: path.clone(),
                    reason: crate::key::cap(&e.to_string()),
                })?
            }
        };
        Ok(Self {
            path,
            versions: Mutex::new(versions),
        })
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, versions: &BTreeMap<String, Version>) -> Result<(), VersionStoreError> {
        let mut text = serde_json::to_string_pretty(versions)
            .expect("a map of strings to versions serializes");
        text.push('\n');
        write_atomic(&self.path, text.as_bytes()).map_err(|source| VersionStoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

impl AcceptedVersions for FileAcceptedVersions {
    fn highest(&self, domain: &str) -> Result<Option<Version>, VersionStoreError> {
        let versions = homecore::lock_unpoisoned(&self.versions);
        Ok(versions.get(domain).cloned())
    }

    fn record(&self, domain: &str, version: &Version) -> Result<(), VersionStoreError> {
        let mut versions = homecore::lock_unpoisoned(&self.versions);
        if !raises(versions.get(domain), version) {
            return Ok(());
        }
        let mut next = versions.clone();
        next.insert(domain.to_owned(), version.clone());
        self.write(&next)?;
        *versions = next;
        Ok(())
    }
}

/// Why a package's version was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// Older than the highest version accepted before, and not pinned.
    #[error(
        "plugin {domain} {found} is older than {highest}, the highest version accepted before; pin {domain} = \"{found}\" in [trust.pins] to downgrade on purpose"
    )]
    Downgrade {
        /// The plugin.
        domain: String,
        /// The package's version.
        found: Version,
        /// The highest accepted before.
        highest: Version,
    },
    /// The domain is pinned to another version.
    #[error("plugin {domain} is pinned to {pinned}, but the package is {found}")]
    PinMismatch {
        /// The plugin.
        domain: String,
        /// The pinned version.
        pinned: Version,
        /// The package's version.
        found: Version,
    },
    /// The store failed; refusing is the safe choice.
    #[error("plugin {domain}: rollback protection unavailable")]
    Store {
        /// The plugin.
        domain: String,
        /// The cause.
        #[source]
        source: VersionStoreError,
    },
}

/// Checks a signed package's version against pins and the highest accepted version, and
/// records it when accepted ([`check_version`], then [`AcceptedVersions::record`]). The
/// server records only once the plugin runs (docs/adr/0008-signed-packages.md): use this
/// where checking and accepting are one step.
///
/// # Errors
/// [`RollbackError::PinMismatch`], [`RollbackError::Downgrade`], [`RollbackError::Store`].
pub fn check_and_record(
    domain: &str,
    version: &Version,
    policy: &TrustPolicy,
    store: &dyn AcceptedVersions,
) -> Result<(), RollbackError> {
    check_version(domain, version, policy, store)?;
    store
        .record(domain, version)
        .map_err(|source| RollbackError::Store {
            domain: domain.to_owned(),
            source,
        })
}

/// Checks a signed package's version against pins and the highest accepted version, without
/// recording anything. A pinned domain loads exactly the pinned version (which may be older:
/// an explicit downgrade); otherwise a version older than the highest accepted is refused.
///
/// # Errors
/// [`RollbackError::PinMismatch`], [`RollbackError::Downgrade`], [`RollbackError::Store`].
pub fn check_version(
    domain: &str,
    version: &Version,
    policy: &TrustPolicy,
    store: &dyn AcceptedVersions,
) -> Result<(), RollbackError> {
    let store_err = |source| RollbackError::Store {
        domain: domain.to_owned(),
        source,
    };
    match policy.pins.get(domain) {
        Some(pinned) if pinned != version => {
            return Err(RollbackError::PinMismatch {
                domain: domain.to_owned(),
                pinned: pinned.clone(),
                found: version.clone(),
            });
        }
        Some(_) => {
            if let Some(highest) = store.highest(domain).map_err(store_err)?
                && version.cmp_precedence(&highest).is_lt()
            {
                tracing::warn!(plugin = %domain, %version, %highest, "loading a pinned older version (explicit downgrade)");
            }
        }
        None => {
            if let Some(highest) = store.highest(domain).map_err(store_err)?
                && version.cmp_precedence(&highest).is_lt()
            {
                return Err(RollbackError::Downgrade {
                    domain: domain.to_owned(),
                    found: version.clone(),
                    highest,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        text.parse().expect("version")
    }

    #[test]
    fn the_file_store_keeps_the_highest_version_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileAcceptedVersions::open(dir.path()).expect("opens");
        assert_eq!(store.highest("a").expect("reads"), None);
        store.record("a", &v("1.2.0")).expect("records");
        store.record("a", &v("1.1.0")).expect("records");
        store.record("b", &v("0.1.0")).expect("records");
        let reopened = FileAcceptedVersions::open(dir.path()).expect("opens");
        assert_eq!(reopened.highest("a").expect("reads"), Some(v("1.2.0")));
        assert_eq!(reopened.highest("b").expect("reads"), Some(v("0.1.0")));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("lists")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            leftovers,
            [ACCEPTED_VERSIONS_FILE],
            "no temporary file left"
        );
    }

    #[test]
    fn a_corrupt_store_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(ACCEPTED_VERSIONS_FILE), b"{\"a\": \"x\"}").expect("write");
        let err = FileAcceptedVersions::open(dir.path()).expect_err("corrupt");
        assert!(matches!(err, VersionStoreError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn an_unwritable_store_fails_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            FileAcceptedVersions::open(&dir.path().join("missing-dir")).expect("opens empty");
        let err = store.record("a", &v("1.0.0")).expect_err("no directory");
        assert!(matches!(err, VersionStoreError::Write { .. }), "{err}");
        assert_eq!(store.highest("a").expect("reads"), None, "not recorded");
    }

    #[test]
    fn downgrades_are_refused_unless_pinned() {
        let store = MemoryAcceptedVersions::new();
        let mut policy = TrustPolicy::default();
        check_and_record("a", &v("2.0.0"), &policy, &store).expect("first");
        let err = check_and_record("a", &v("1.9.0"), &policy, &store).expect_err("downgrade");
        assert!(matches!(err, RollbackError::Downgrade { .. }), "{err}");
        assert!(err.to_string().contains("1.9.0") && err.to_string().contains("2.0.0"));
        // Pre-releases rank below their release.
        assert!(check_and_record("a", &v("2.0.0-rc.1"), &policy, &store).is_err());

        policy.pins.insert("a".into(), v("1.9.0"));
        check_and_record("a", &v("1.9.0"), &policy, &store).expect("pinned downgrade");
        assert_eq!(
            store.highest("a").expect("reads"),
            Some(v("2.0.0")),
            "floor kept"
        );
        let err = check_and_record("a", &v("2.0.0"), &policy, &store).expect_err("pinned");
        assert!(matches!(err, RollbackError::PinMismatch { .. }), "{err}");

        policy.pins.clear();
        assert!(
            check_and_record("a", &v("1.9.0"), &policy, &store).is_err(),
            "unpinned again"
        );
        check_and_record("a", &v("2.1.0"), &policy, &store).expect("upgrade");
        assert_eq!(store.highest("a").expect("reads"), Some(v("2.1.0")));
    }

    /// A backend that always fails, as a broken database would.
    struct Broken;

    impl AcceptedVersions for Broken {
        fn highest(&self, _: &str) -> Result<Option<Version>, VersionStoreError> {
            Err(VersionStoreError::Backend {
                backend: "broken",
                source: "disk on fire".into(),
            })
        }

        fn record(&self, _: &str, _: &Version) -> Result<(), VersionStoreError> {
            Err(VersionStoreError::Backend {
                backend: "broken",
                source: "disk on fire".into(),
            })
        }
    }

    #[test]
    fn a_failing_store_refuses_the_package() {
        let err = check_and_record("a", &v("1.0.0"), &TrustPolicy::default(), &Broken)
            .expect_err("fail closed");
        assert!(matches!(err, RollbackError::Store { .. }), "{err}");
        assert_eq!(err.to_string(), "plugin a: rollback protection unavailable");
    }

    #[test]
    fn the_trait_is_object_safe() {
        let store: Box<dyn AcceptedVersions> = Box::new(MemoryAcceptedVersions::new());
        store.record("a", &v("1.0.0")).expect("records");
        assert_eq!(store.highest("a").expect("reads"), Some(v("1.0.0")));
    }
}
