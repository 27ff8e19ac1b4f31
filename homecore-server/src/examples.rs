//! The signed WASM example out of the box (ADR 9): the reference plugin's module is embedded
//! at build time; on start the server makes a local publisher key in the data directory
//! (once, private key 0600), writes the example package into the plugins directory, signs it
//! with that key, and trusts the key for exactly the example's domain. The package then goes
//! through the same discovery and verification as any third-party package.

use std::path::{Path, PathBuf};

use homecore_package::{
    CommandError, KeyError, KeyId, MANIFEST_FILE, PublicKey, TrustPolicy, TrustedPublisher,
    inspect, key_paths, keygen, load_public_key, sign,
};

use crate::data_dir::create_private_dir;

/// The example package's domain.
pub const EXAMPLE_DOMAIN: &str = "motion_lights_wasm";

/// The example's manifest, as shipped in `homecore-plugin-example`.
pub const EXAMPLE_MANIFEST: &str = include_str!("../../homecore-plugin-example/manifest.json");

/// The example's module file name, as its manifest names it.
pub const EXAMPLE_MODULE_FILE: &str = "homecore_plugin_example.wasm";

/// The example's module, built for wasm32 by `build.rs`.
pub const EXAMPLE_MODULE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/homecore_plugin_example.wasm"));

/// The local publisher key's name (`<data_dir>/publisher/local.key`, `local.pub`).
pub const LOCAL_KEY_NAME: &str = "local";

/// Why the example could not be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExampleError {
    /// The publisher directory could not be made.
    #[error(transparent)]
    DataDir(#[from] crate::DataDirError),
    /// The local key could not be made or read.
    #[error("local publisher key in {}", dir.display())]
    Key {
        /// The key directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// The package could not be written.
    #[error("cannot write the example package at {}", path.display())]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Signing failed.
    #[error("cannot sign the example package")]
    Sign(#[source] CommandError),
}

/// What [`install_example`] did.
#[derive(Debug, Clone)]
pub struct ExampleInstall {
    /// The package directory.
    pub package_dir: PathBuf,
    /// The local publisher key.
    pub key: PublicKey,
    /// Whether the package was (re)written and signed by this call.
    pub written: bool,
    /// Whether the package was left alone because someone else signed it.
    pub foreign: bool,
}

impl ExampleInstall {
    /// The key's id.
    #[must_use]
    pub fn key_id(&self) -> KeyId {
        self.key.id()
    }

    /// Adds the local key to `policy`, allowed to sign exactly the example's domain (unless
    /// the operator already lists that key).
    pub fn trust(&self, policy: &mut TrustPolicy) {
        trust_local_key(&self.key, policy);
    }
}

/// Adds `key` to `policy`, allowed to sign exactly the example's domain (unless the operator
/// already lists that key).
pub fn trust_local_key(key: &PublicKey, policy: &mut TrustPolicy) {
    if policy.publisher(key.id()).is_none() {
        policy.publishers.push(TrustedPublisher {
            name: Some("local example publisher".to_owned()),
            key: *key,
            domains: Some(vec![EXAMPLE_DOMAIN.to_owned()]),
        });
    }
}

/// Makes sure `<plugins_dir>/motion_lights_wasm` holds the embedded example, signed by the
/// local key in `<data_dir>/publisher` (made on first use).
///
/// An existing package is kept when its files are the embedded ones, and rewritten and
/// re-signed when it was signed by the local key but differs (a newer server). A package
/// there signed by another key is the operator's, and left alone.
///
/// # Errors
/// [`ExampleError`] when the key or package cannot be made.
pub fn install_example(
    data_dir: &Path,
    plugins_dir: &Path,
) -> Result<ExampleInstall, ExampleError> {
    let key_dir = data_dir.join("publisher");
    create_private_dir(&key_dir)?;
    create_private_dir(plugins_dir)?;
    let (private_key, public_key) = key_paths(&key_dir, LOCAL_KEY_NAME);
    let key_err = |source| ExampleError::Key {
        dir: key_dir.clone(),
        source,
    };
    let key = if public_key.exists() {
        load_public_key(&public_key).map_err(key_err)?
    } else {
        match keygen(&key_dir, LOCAL_KEY_NAME) {
            Ok(report) => report.public_key,
            Err(CommandError::Key(source)) => return Err(key_err(source)),
            Err(other) => return Err(ExampleError::Sign(other)),
        }
    };
    let package_dir = plugins_dir.join(EXAMPLE_DOMAIN);
    let mut install = ExampleInstall {
        package_dir: package_dir.clone(),
        key,
        written: false,
        foreign: false,
    };
    if package_dir.exists() {
        let current = matches!(
            (
                std::fs::read(package_dir.join(MANIFEST_FILE)),
                std::fs::read(package_dir.join(EXAMPLE_MODULE_FILE)),
            ),
            (Ok(m), Ok(w)) if m == EXAMPLE_MANIFEST.as_bytes() && w == EXAMPLE_MODULE
        );
        let signer = inspect(&package_dir).ok().and_then(|r| r.key_id);
        if signer.is_some_and(|id| id != key.id()) {
            tracing::info!(path = %package_dir.display(), "example package signed by another key; leaving it alone");
            install.foreign = true;
            return Ok(install);
        }
        if current && signer == Some(key.id()) {
            return Ok(install);
        }
    }
    write_package(plugins_dir, &package_dir)?;
    sign(&package_dir, &private_key).map_err(ExampleError::Sign)?;
    tracing::info!(path = %package_dir.display(), key_id = %key.id(), "installed and signed the example WASM package");
    install.written = true;
    Ok(install)
}

/// Writes the package into a hidden staging directory (skipped by discovery), then renames
/// it into place.
fn write_package(plugins_dir: &Path, package_dir: &Path) -> Result<(), ExampleError> {
    let staging = plugins_dir.join(format!(".{EXAMPLE_DOMAIN}.staging"));
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ExampleError::Write { path, source }
    };
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(write_err(&staging))?;
    }
    std::fs::create_dir(&staging).map_err(write_err(&staging))?;
    std::fs::write(staging.join(MANIFEST_FILE), EXAMPLE_MANIFEST).map_err(write_err(&staging))?;
    std::fs::write(staging.join(EXAMPLE_MODULE_FILE), EXAMPLE_MODULE)
        .map_err(write_err(&staging))?;
    if package_dir.exists() {
        std::fs::remove_dir_all(package_dir).map_err(write_err(package_dir))?;
    }
    std::fs::rename(&staging, package_dir).map_err(write_err(package_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_and_trusts_only_its_domain() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plugins = tmp.path().join("plugins");
        let first = install_example(tmp.path(), &plugins).expect("installed");
        assert!(first.written);
        let again = install_example(tmp.path(), &plugins).expect("kept");
        assert!(!again.written);
        assert_eq!(first.key_id(), again.key_id());
        let mut policy = TrustPolicy::default();
        first.trust(&mut policy);
        first.trust(&mut policy);
        assert_eq!(policy.publishers.len(), 1);
        assert_eq!(
            policy.publishers[0].domains.as_deref(),
            Some(&[EXAMPLE_DOMAIN.to_owned()][..])
        );
        let seen = homecore_package::MemoryAcceptedVersions::new();
        let report = homecore_package::discover(&plugins, &policy, &seen, &[]).expect("listed");
        assert!(report.rejected.is_empty(), "{report}");
        assert!(report.get(EXAMPLE_DOMAIN).is_some());
    }

    #[test]
    fn a_tampered_example_is_rewritten_and_resigned() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let plugins = tmp.path().join("plugins");
        install_example(tmp.path(), &plugins).expect("installed");
        let module = plugins.join(EXAMPLE_DOMAIN).join(EXAMPLE_MODULE_FILE);
        std::fs::write(&module, b"\0asm junk").expect("tamper");
        let again = install_example(tmp.path(), &plugins).expect("rewritten");
        assert!(again.written);
        assert_eq!(std::fs::read(&module).expect("read"), EXAMPLE_MODULE);
    }
}
