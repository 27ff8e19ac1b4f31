//! The trust store's record: the highest plugin version accepted per domain (rollback
//! protection survives restarts).

use homecore::chrono::Utc;
use homecore_package::{AcceptedVersions, VersionStoreError};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use semver::Version;

use crate::error::capped;
use crate::{Store, StoreError};

impl Store {
    /// The highest version of plugin `domain` ever accepted, if any.
    ///
    /// # Errors
    /// [`StoreError::BadRow`] when the stored version does not parse, [`StoreError::Sqlite`]
    /// for a read failure.
    pub fn accepted_version(&self, domain: &str) -> Result<Option<Version>, StoreError> {
        let stored: Option<String> = self
            .conn()
            .query_row(
                "SELECT version FROM accepted_versions WHERE domain = ?1",
                [domain],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.error("reading an accepted version", e))?;
        stored
            .map(|text| {
                Version::parse(&text).map_err(|e| StoreError::BadRow {
                    path: self.path().to_path_buf(),
                    table: "accepted_versions",
                    key: capped(domain),
                    reason: format!("version {:?} does not parse: {e}", capped(&text)),
                })
            })
            .transpose()
    }

    /// Records that `version` of plugin `domain` was accepted, keeping the higher of the stored
    /// and the given version by semver precedence (so recording an older version never lowers
    /// the floor). Durable when it returns. Returns whether the stored version was raised.
    ///
    /// # Errors
    /// As [`Store::accepted_version`], or a write failure; the version is then not recorded.
    pub fn record_accepted(&self, domain: &str, version: &Version) -> Result<bool, StoreError> {
        let stored = self.accepted_version(domain)?;
        if stored
            .as_ref()
            .is_some_and(|s| !version.cmp_precedence(s).is_gt())
        {
            return Ok(false);
        }
        let mut conn = self.conn();
        let raised = (|| {
            // Compare again inside the write transaction: another writer may have raised it.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT version FROM accepted_versions WHERE domain = ?1",
                    [domain],
                    |row| row.get(0),
                )
                .optional()?;
            let current = current.and_then(|text| Version::parse(&text).ok());
            if current
                .as_ref()
                .is_some_and(|s| !version.cmp_precedence(s).is_gt())
            {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO accepted_versions (domain, version, accepted_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (domain) DO UPDATE SET version = excluded.version, \
                 accepted_at = excluded.accepted_at",
                params![domain, version.to_string(), Utc::now().timestamp_micros()],
            )?;
            tx.commit()?;
            Ok(true)
        })()
        .map_err(|e| self.error("recording an accepted version", e))?;
        Ok(raised)
    }
}

/// The trust store's rollback record in the database, so it is durable with everything else.
impl AcceptedVersions for Store {
    fn highest(&self, domain: &str) -> Result<Option<Version>, VersionStoreError> {
        self.accepted_version(domain).map_err(backend)
    }

    fn record(&self, domain: &str, version: &Version) -> Result<(), VersionStoreError> {
        self.record_accepted(domain, version)
            .map(|_| ())
            .map_err(backend)
    }
}

fn backend(err: StoreError) -> VersionStoreError {
    VersionStoreError::Backend {
        backend: "homecore-store (SQLite)",
        source: Box::new(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).expect("valid")
    }

    #[test]
    fn keeps_the_highest_by_precedence_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("home.db");
        let store = Store::open(&path).expect("opens");
        assert_eq!(store.accepted_version("motion").expect("reads"), None);
        assert!(
            store
                .record_accepted("motion", &v("1.2.0"))
                .expect("writes")
        );
        assert!(
            !store
                .record_accepted("motion", &v("1.1.9"))
                .expect("writes")
        );
        assert!(
            !store
                .record_accepted("motion", &v("1.2.0+build5"))
                .expect("writes"),
            "build metadata does not raise the floor"
        );
        assert!(
            !store
                .record_accepted("motion", &v("1.2.0-rc.1"))
                .expect("writes")
        );
        assert!(store.record_accepted("other", &v("0.1.0")).expect("writes"));
        drop(store);
        let store = Store::open(&path).expect("reopens");
        assert_eq!(
            store.accepted_version("motion").expect("reads"),
            Some(v("1.2.0"))
        );
        assert_eq!(
            store.accepted_version("other").expect("reads"),
            Some(v("0.1.0"))
        );
    }

    #[test]
    fn implements_the_package_crates_accepted_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("home.db")).expect("opens");
        let versions: &dyn AcceptedVersions = &store;
        versions.record("motion", &v("2.0.0")).expect("records");
        versions.record("motion", &v("1.0.0")).expect("records");
        assert_eq!(versions.highest("motion").expect("reads"), Some(v("2.0.0")));
        assert_eq!(versions.highest("nothing").expect("reads"), None);
        store
            .conn()
            .execute(
                "UPDATE accepted_versions SET version = 'x' WHERE domain = 'motion'",
                [],
            )
            .expect("raw update");
        assert!(matches!(
            versions.highest("motion"),
            Err(VersionStoreError::Backend { .. })
        ));
    }

    #[test]
    fn an_unparsable_stored_version_is_a_bad_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path().join("home.db")).expect("opens");
        store
            .conn()
            .execute(
                "INSERT INTO accepted_versions VALUES ('motion', 'one.two', 0)",
                [],
            )
            .expect("raw insert");
        let err = store.accepted_version("motion").expect_err("bad row");
        assert!(
            matches!(&err, StoreError::BadRow { table: "accepted_versions", key, .. } if key == "motion"),
            "{err:?}"
        );
    }
}
