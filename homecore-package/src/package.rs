//! One package directory read from disk: every file read once, within its cap, before any
//! trust decision; nothing compiled.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use homecore_plugins::{MAX_MANIFEST_BYTES, ManifestError, PluginManifest, RuntimeKind};

use crate::format::{DigestInput, MANIFEST_FILE, SIGNATURE_FILE, signed_message};
use crate::read::{
    PackageDir, PluginsDir, ReadError, check_tree, read_capped_at, read_required_at,
};
use crate::{DetachedSignature, FormatError, Sha256Hash};

/// Size caps applied while reading a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageLimits {
    /// Largest `manifest.json`, bytes (default: the manifest parser's own cap, 1 MiB).
    pub manifest_bytes: u64,
    /// Largest module, bytes (default 32 MiB).
    pub module_bytes: u64,
    /// Largest `signature.json`, bytes (default 4 KiB).
    pub signature_bytes: u64,
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self {
            manifest_bytes: MAX_MANIFEST_BYTES as u64,
            module_bytes: 32 << 20,
            signature_bytes: 4096,
        }
    }
}

/// Why a package directory could not be read as a package.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// A file could not be read safely (symlink, special file, too large, bad name, I/O).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// `manifest.json` does not parse or validate.
    #[error("{path} is not a valid HomeCore manifest")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Every problem found.
        #[source]
        source: ManifestError,
    },
    /// A package holds a WASM plugin; native plugins are compiled in.
    #[error("plugin {domain} declares runtime {runtime}; packages hold WASM plugins only")]
    NotWasm {
        /// The plugin.
        domain: String,
        /// Its declared runtime.
        runtime: RuntimeKind,
    },
    /// The manifest names no module (`homecore.module`).
    #[error("plugin {domain}'s manifest names no module (homecore.module)")]
    NoModule {
        /// The plugin.
        domain: String,
    },
    /// A bundle's layout is malformed.
    #[error("{path} is not a valid package bundle")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: crate::BundleError,
    },
    /// A bundle records a module file name other than the manifest's.
    #[error("{path} records module {recorded:?}, but its manifest names {manifest:?}")]
    ModuleNameMismatch {
        /// The bundle.
        path: PathBuf,
        /// The name the bundle records (capped).
        recorded: String,
        /// The manifest's `homecore.module`.
        manifest: String,
    },
    /// `signature.json` is malformed.
    #[error("{path} is not a valid signature file")]
    Signature {
        /// The signature file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
}

/// Parses and checks the manifest of the package at `path`; returns it with its module name.
fn parse_manifest(path: &Path, bytes: &[u8]) -> Result<(PluginManifest, String), PackageError> {
    let manifest = PluginManifest::from_slice(bytes).map_err(|source| PackageError::Manifest {
        path: manifest_path(path),
        source,
    })?;
    let runtime = manifest.runtime();
    if runtime != RuntimeKind::Wasm {
        return Err(PackageError::NotWasm {
            domain: manifest.domain,
            runtime,
        });
    }
    let module_name = manifest
        .homecore
        .as_ref()
        .and_then(|h| h.module.clone())
        .ok_or_else(|| PackageError::NoModule {
            domain: manifest.domain.clone(),
        })?;
    Ok((manifest, module_name))
}

/// Parses the signature file of the package at `path`, if it has one.
fn parse_signature(
    path: &Path,
    bytes: Option<&[u8]>,
) -> Result<Option<DetachedSignature>, PackageError> {
    bytes
        .map(DetachedSignature::from_slice)
        .transpose()
        .map_err(|source| PackageError::Signature {
            path: if is_bundle(path) {
                path.to_owned()
            } else {
                path.join(SIGNATURE_FILE)
            },
            source,
        })
}

fn is_bundle(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == crate::bundle::BUNDLE_EXTENSION)
}

fn manifest_path(path: &Path) -> PathBuf {
    if is_bundle(path) {
        path.to_owned()
    } else {
        path.join(MANIFEST_FILE)
    }
}

/// A package's files as read from disk, not yet trusted.
#[derive(Debug, Clone)]
pub struct PackageFiles {
    /// The package directory (or bundle file).
    pub dir: PathBuf,
    /// `manifest.json` exactly as read.
    pub manifest_bytes: Arc<[u8]>,
    /// The parsed manifest.
    pub manifest: Arc<PluginManifest>,
    /// The module's file name (from `homecore.module`).
    pub module_name: String,
    /// The module's bytes.
    pub module: Arc<[u8]>,
    /// The module's SHA-256.
    pub module_sha256: Sha256Hash,
    /// The detached signature, if the package has one.
    pub signature: Option<DetachedSignature>,
}

impl PackageFiles {
    /// Reads a package: a directory ([`PackageFiles::read`]) or a `<domain>.hcpkg` bundle
    /// (read once, within `limits`, without following a symlink).
    ///
    /// # Errors
    /// A [`PackageError`] naming the file and what is wrong.
    pub fn open(path: &Path, limits: &PackageLimits) -> Result<Self, PackageError> {
        let (parent, name) = PluginsDir::parent_of(path)?;
        Self::open_in(&parent, name, limits)
    }

    /// Reads the package `name` in an open plugins directory, relative to its handle: the
    /// directory `name/` opened without following a link, or the bundle `name` (`.hcpkg`).
    ///
    /// # Errors
    /// A [`PackageError`] naming the file and what is wrong.
    pub(crate) fn open_in(
        plugins: &PluginsDir,
        name: &std::ffi::OsStr,
        limits: &PackageLimits,
    ) -> Result<Self, PackageError> {
        if is_bundle(Path::new(name)) {
            crate::bundle::read_in(plugins, name, limits)
        } else {
            Self::read_opened(&plugins.package(name)?, limits)
        }
    }

    /// Reads a package directory: checks the whole tree for symlinks and special files, then
    /// reads `manifest.json`, `signature.json` (optional) and the module the manifest names,
    /// each once and within `limits`. The directory is opened once without following a link,
    /// and everything in it is read relative to that handle.
    ///
    /// # Errors
    /// A [`PackageError`] naming the file and what is wrong.
    pub fn read(dir: &Path, limits: &PackageLimits) -> Result<Self, PackageError> {
        let (parent, name) = PluginsDir::parent_of(dir)?;
        Self::read_opened(&parent.package(name)?, limits)
    }

    /// [`PackageFiles::read`] of an opened package directory.
    fn read_opened(opened: &PackageDir, limits: &PackageLimits) -> Result<Self, PackageError> {
        let dir = opened.path();
        check_tree(opened)?;
        let manifest_bytes = read_required_at(opened, MANIFEST_FILE, limits.manifest_bytes)?;
        let (manifest, module_name) = parse_manifest(dir, &manifest_bytes)?;
        let signature = read_capped_at(opened, SIGNATURE_FILE, limits.signature_bytes)?;
        let signature = parse_signature(dir, signature.as_deref())?;
        let module = read_required_at(opened, &module_name, limits.module_bytes)?;
        Ok(Self::build(
            dir,
            manifest_bytes,
            manifest,
            module_name,
            module,
            signature,
        ))
    }

    /// Package files from a bundle's parts (`module_name`: the bundle's record of it, which
    /// must be the manifest's).
    pub(crate) fn assemble(
        path: &Path,
        manifest_bytes: &[u8],
        module_name: Option<&str>,
        signature: Option<&[u8]>,
        module: &[u8],
    ) -> Result<Self, PackageError> {
        let (manifest, named) = parse_manifest(path, manifest_bytes)?;
        if let Some(recorded) = module_name
            && recorded != named
        {
            return Err(PackageError::ModuleNameMismatch {
                path: path.to_owned(),
                recorded: crate::key::cap(recorded),
                manifest: named,
            });
        }
        let signature = parse_signature(path, signature)?;
        Ok(Self::build(
            path,
            manifest_bytes.to_vec(),
            manifest,
            named,
            module.to_vec(),
            signature,
        ))
    }

    fn build(
        path: &Path,
        manifest_bytes: Vec<u8>,
        manifest: PluginManifest,
        module_name: String,
        module: Vec<u8>,
        signature: Option<DetachedSignature>,
    ) -> Self {
        let module_sha256 = Sha256Hash::of(&module);
        Self {
            dir: path.to_owned(),
            manifest_bytes: manifest_bytes.into(),
            manifest: Arc::new(manifest),
            module_name,
            module: module.into(),
            module_sha256,
            signature,
        }
    }

    /// The plugin's domain (from the manifest).
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.manifest.domain
    }

    /// The plugin's version (from the manifest).
    #[must_use]
    pub fn version(&self) -> &semver::Version {
        &self.manifest.version
    }

    /// The package digest the signature must cover.
    #[must_use]
    pub fn digest(&self) -> Sha256Hash {
        DigestInput {
            manifest: &self.manifest_bytes,
            module_sha256: &self.module_sha256,
            module_size: self.module.len() as u64,
            domain: &self.manifest.domain,
            version: &self.manifest.version,
            module_name: &self.module_name,
        }
        .digest()
    }

    /// The bytes Ed25519 signs for this package.
    #[must_use]
    pub fn message(&self) -> Vec<u8> {
        signed_message(&self.digest()).to_vec()
    }

    /// Whether the signature verifies under the public key embedded in the signature file
    /// (a consistency check for `inspect`, not a trust decision). `None` when unsigned.
    #[must_use]
    pub fn signature_matches_embedded_key(&self) -> Option<bool> {
        self.signature.as_ref().map(|sig| {
            sig.public_key
                .verifying_key()
                .verify_strict(&self.message(), &sig.signature)
                .is_ok()
        })
    }
}
