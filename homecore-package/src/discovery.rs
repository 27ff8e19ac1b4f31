//! Safe discovery of a plugins directory: every package read, verified and checked; bad ones
//! reported and skipped, the rest accepted.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use homecore_plugins::{Permissions, PluginManifest, PluginSource, PluginSpec};
use semver::Version;
use serde_json::Value;

use crate::bundle::BUNDLE_EXTENSION;
use crate::compat::{self, CompatError};
use crate::read::PluginsDir;
use crate::versions::{self, RollbackError};
use crate::{
    AcceptedVersions, KeyId, PackageError, PackageFiles, PackageLimits, Sha256Hash, Signer,
    TrustError, TrustPolicy,
};

/// Most entries considered in one plugins directory.
pub const MAX_PLUGINS_DIR_ENTRIES: usize = 4096;

/// Why discovery refused a package (or could not list the directory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The plugins directory itself could not be listed (fatal for the whole run).
    #[error("cannot list the plugins directory {path}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The plugins directory holds more than [`MAX_PLUGINS_DIR_ENTRIES`] entries (fatal).
    #[error("the plugins directory {path} holds more than {MAX_PLUGINS_DIR_ENTRIES} entries")]
    TooManyEntries {
        /// The directory.
        path: PathBuf,
    },
    /// A package name (directory, or bundle without `.hcpkg`) that is not a valid domain.
    #[error(
        "package name {name:?} is not a valid plugin domain ([a-z0-9_], not starting or ending with '_', no '__')"
    )]
    BadDirName {
        /// The name (lossy UTF-8, capped).
        name: String,
    },
    /// The manifest's domain differs from the package's name.
    #[error(
        "package {dir} holds plugin {domain}; a package must be named after its domain ({domain}/ or {domain}.hcpkg)"
    )]
    DomainMismatch {
        /// The package's name (directory, or bundle without `.hcpkg`).
        dir: String,
        /// The manifest's domain.
        domain: String,
    },
    /// A package for a domain that a native plugin already has.
    #[error("plugin {domain} is a native plugin; a package may not shadow it")]
    ShadowsNative {
        /// The domain.
        domain: String,
    },
    /// Two packages for the same domain.
    #[error("plugin {domain} is already provided by {first}")]
    Duplicate {
        /// The domain.
        domain: String,
        /// The package accepted first.
        first: PathBuf,
    },
    /// The package's files could not be read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The trust policy refused it.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// Rollback protection refused it.
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    /// It is incompatible with the host or with its dependencies.
    #[error(transparent)]
    Compat(#[from] CompatError),
}

/// A package that passed every check: its files, exactly as verified.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    path: PathBuf,
    manifest: Arc<PluginManifest>,
    module: Arc<[u8]>,
    module_name: String,
    module_sha256: Sha256Hash,
    signer: Signer,
    abi_version: u32,
}

impl VerifiedPackage {
    /// The package directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's domain.
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.manifest.domain
    }

    /// The plugin's version.
    #[must_use]
    pub fn version(&self) -> &Version {
        &self.manifest.version
    }

    /// Who signed it.
    #[must_use]
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The signing key's id (`None`: unsigned, dev mode).
    #[must_use]
    pub fn key_id(&self) -> Option<KeyId> {
        self.signer.key_id()
    }

    /// The module's SHA-256.
    #[must_use]
    pub fn module_sha256(&self) -> &Sha256Hash {
        &self.module_sha256
    }

    /// The manifest, as verified.
    #[must_use]
    pub fn manifest(&self) -> &Arc<PluginManifest> {
        &self.manifest
    }

    /// The module's bytes, as verified (hand these, and nothing re-read from disk, to the
    /// runtime).
    #[must_use]
    pub fn module(&self) -> &Arc<[u8]> {
        &self.module
    }

    /// The module's file name in the package.
    #[must_use]
    pub fn module_name(&self) -> &str {
        &self.module_name
    }

    /// The module's declared ABI version.
    #[must_use]
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// Records this package's version as accepted for its domain (the rollback floor), for a
    /// publisher-signed package; an unsigned (dev mode) package never moves the floor. Call it
    /// once the plugin runs, never at verification: a version that is refused later, or fails
    /// its setup, must not raise the floor (docs/adr/0008-signed-packages.md).
    ///
    /// # Errors
    /// [`RollbackError::Store`] when the record cannot be written.
    pub fn record_accepted(&self, accepted: &dyn AcceptedVersions) -> Result<(), RollbackError> {
        match self.signer {
            Signer::Unsigned => Ok(()),
            Signer::Publisher { .. } => {
                accepted
                    .record(self.domain(), self.version())
                    .map_err(|source| RollbackError::Store {
                        domain: self.domain().to_owned(),
                        source,
                    })
            }
        }
    }

    /// A registry spec for this plugin: the verified manifest and module, with the operator's
    /// configuration and grant (`None`: everything the manifest declares). The module goes
    /// with the SHA-256 verification computed ([`PluginSource::VerifiedWasm`]), so the runtime
    /// does not hash it again.
    #[must_use]
    pub fn into_spec(self, config: Value, grant: Option<Permissions>) -> PluginSpec {
        PluginSpec {
            manifest: self.manifest,
            source: PluginSource::VerifiedWasm {
                module: self.module,
                sha256: self.module_sha256.0,
            },
            config,
            grant,
            limits: None,
        }
    }
}

/// A package discovery refused.
#[derive(Debug)]
pub struct Rejected {
    /// The package's path.
    pub path: PathBuf,
    /// Why.
    pub error: DiscoveryError,
}

/// What [`discover`] found.
#[derive(Debug, Default)]
pub struct DiscoveryReport {
    /// Packages that may load, sorted by domain.
    pub accepted: Vec<VerifiedPackage>,
    /// Packages refused, sorted by path, each with its reason.
    pub rejected: Vec<Rejected>,
}

impl DiscoveryReport {
    /// The accepted package for `domain`.
    #[must_use]
    pub fn get(&self, domain: &str) -> Option<&VerifiedPackage> {
        self.accepted.iter().find(|p| p.domain() == domain)
    }

    /// The rejection of the package at `plugins_dir/<name>`, if refused.
    #[must_use]
    pub fn rejection(&self, name: &str) -> Option<&DiscoveryError> {
        self.rejected
            .iter()
            .find(|r| r.path.file_name().is_some_and(|n| n == name))
            .map(|r| &r.error)
    }
}

impl fmt::Display for DiscoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.accepted {
            writeln!(
                f,
                "accepted {} {} ({}, module sha256 {})",
                p.domain(),
                p.version(),
                p.signer,
                p.module_sha256
            )?;
        }
        for r in &self.rejected {
            writeln!(
                f,
                "refused  {}: {}",
                r.path.display(),
                crate::cli::chain(&r.error)
            )?;
        }
        Ok(())
    }
}

/// Reads, verifies and checks one package directory against the policy and the host (no
/// cross-package checks, no rollback record). Used by [`discover`] and by `verify`.
pub(crate) fn verify_files(
    dir: &Path,
    policy: &TrustPolicy,
    limits: &PackageLimits,
) -> Result<(PackageFiles, Signer, u32), DiscoveryError> {
    let (parent, name) = PluginsDir::parent_of(dir).map_err(PackageError::from)?;
    verify_files_in(&parent, name, policy, limits)
}

/// [`verify_files`] of the package `name` in an open plugins directory.
fn verify_files_in(
    plugins: &PluginsDir,
    name: &OsStr,
    policy: &TrustPolicy,
    limits: &PackageLimits,
) -> Result<(PackageFiles, Signer, u32), DiscoveryError> {
    let files = PackageFiles::open_in(plugins, name, limits)?;
    let signer = policy.check(&files)?;
    let abi = compat::check_host(&files.manifest, &files.module)?;
    Ok((files, signer, abi))
}

/// The domain an entry of the plugins directory stands for: a directory's name, or a
/// bundle's name without `.hcpkg`. The name is not checked against the domain rule.
#[must_use]
pub fn entry_domain(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.strip_suffix(&format!(".{BUNDLE_EXTENSION}")) {
        Some(stem) => stem.to_owned(),
        None => name,
    }
}

/// The package of `domain` in `plugins_dir`: the directory `<domain>/`, else the bundle
/// `<domain>.hcpkg` (the directory wins, as in [`discover`]); `None` when neither exists.
/// Nothing is followed or read: a symlink counts as there (and is refused when verified).
#[must_use]
pub fn package_path(plugins_dir: &Path, domain: &str) -> Option<PathBuf> {
    [
        plugins_dir.join(domain),
        plugins_dir.join(format!("{domain}.{BUNDLE_EXTENSION}")),
    ]
    .into_iter()
    .find(|p| p.symlink_metadata().is_ok())
}

/// The host's acceptance checks for one package, as [`discover`] applies them to each entry of
/// the plugins directory and `homecore package verify` to the package it is given (one
/// function, so the two never disagree): the name must be a valid domain; the package is read
/// safely within `limits` and its signature verified under `policy` before anything looks at
/// the module; host API and ABI compatible; the manifest's domain must be the package's name
/// (`<domain>/` or `<domain>.hcpkg`) and not a `native` plugin's; `dependency_versions` must
/// parse; a signed package's version must pass rollback protection against `accepted` (checked,
/// never recorded here: see [`VerifiedPackage::record_accepted`]). Cross-package rules
/// (duplicates, dependencies) are [`discover`]'s.
///
/// # Errors
/// The [`DiscoveryError`] that refuses the package.
pub fn check_package(
    path: &Path,
    policy: &TrustPolicy,
    accepted: &dyn AcceptedVersions,
    native: &[(String, Version)],
    limits: &PackageLimits,
) -> Result<VerifiedPackage, DiscoveryError> {
    let native: BTreeMap<&str, &Version> = native.iter().map(|(d, v)| (d.as_str(), v)).collect();
    let (parent, name) = PluginsDir::parent_of(path).map_err(PackageError::from)?;
    check_entry(&parent, name, policy, accepted, &native, limits)
}

/// [`check_package`] of the entry `entry` of an open plugins directory, with the native
/// plugins as a map.
fn check_entry(
    plugins: &PluginsDir,
    entry: &OsStr,
    policy: &TrustPolicy,
    accepted: &dyn AcceptedVersions,
    native: &BTreeMap<&str, &Version>,
    limits: &PackageLimits,
) -> Result<VerifiedPackage, DiscoveryError> {
    let path = plugins.path().join(entry);
    let name = entry_domain(&path);
    if homecore::validate_domain(&name).is_err() {
        return Err(DiscoveryError::BadDirName {
            name: crate::key::cap(&name),
        });
    }
    let (files, signer, abi_version) = verify_files_in(plugins, entry, policy, limits)?;
    let domain = files.domain().to_owned();
    if domain != name {
        return Err(DiscoveryError::DomainMismatch { dir: name, domain });
    }
    if native.contains_key(domain.as_str()) {
        return Err(DiscoveryError::ShadowsNative { domain });
    }
    compat::dependency_requirements(&files.manifest)?;
    match signer {
        // Dev-mode unsigned packages neither move nor meet the rollback floor: anyone who can
        // write the directory could pick their version.
        Signer::Unsigned => {}
        Signer::Publisher { .. } => {
            versions::check_version(&domain, files.version(), policy, accepted)?;
        }
    }
    Ok(VerifiedPackage {
        path,
        manifest: files.manifest,
        module: files.module,
        module_name: files.module_name,
        module_sha256: files.module_sha256,
        signer,
        abi_version,
    })
}

/// Discovers the packages in `plugins_dir` (one directory or bundle per plugin, named after its
/// domain)
/// with the default [`PackageLimits`]; see [`discover_with_limits`].
///
/// # Errors
/// As [`discover_with_limits`].
pub fn discover(
    plugins_dir: &Path,
    policy: &TrustPolicy,
    accepted: &dyn AcceptedVersions,
    native: &[(String, Version)],
) -> Result<DiscoveryReport, DiscoveryError> {
    discover_with_limits(
        plugins_dir,
        policy,
        accepted,
        native,
        &PackageLimits::default(),
    )
}

/// Discovers the packages in `plugins_dir`.
///
/// Each entry is a package directory `<domain>/` or a bundle `<domain>.hcpkg`. For each, in
/// name order: the name must be a valid domain and the entry a real directory or file (no
/// symlink); a directory's whole tree must be free of symlinks and special files;
/// `manifest.json`, `signature.json` and the module are each read once within `limits`; the
/// signature is verified under `policy` before anything else looks at the module; the host API
/// and ABI versions must be compatible; the manifest's domain must be the package's name and
/// not a `native` plugin's, nor another package's (`x/` before `x.hcpkg`); a signed package's version must pass rollback protection
/// against `accepted` (nothing is recorded: the caller records a package once it runs, with
/// [`VerifiedPackage::record_accepted`]). These per-package checks are [`check_package`]. Then, across packages, every `dependencies` entry must be a native
/// plugin or an accepted package at a version matching `homecore.dependency_versions`; a
/// package whose dependency was refused is refused too. Entries whose name starts with `.` are
/// skipped (staging directories, editor files).
///
/// Every refusal is logged at error level and returned in [`DiscoveryReport::rejected`]; one
/// bad package never stops the others.
///
/// # Errors
/// Only when the directory itself cannot be listed ([`DiscoveryError::ListDir`]) or is
/// unreasonably large ([`DiscoveryError::TooManyEntries`]).
pub fn discover_with_limits(
    plugins_dir: &Path,
    policy: &TrustPolicy,
    accepted: &dyn AcceptedVersions,
    native: &[(String, Version)],
    limits: &PackageLimits,
) -> Result<DiscoveryReport, DiscoveryError> {
    let list_err = |source| DiscoveryError::ListDir {
        path: plugins_dir.to_owned(),
        source,
    };
    // Opened once: listed through this handle, every package opened relative to it.
    let plugins = PluginsDir::open(plugins_dir).map_err(list_err)?;
    let mut names = plugins.names(MAX_PLUGINS_DIR_ENTRIES).map_err(list_err)?;
    if names.len() > MAX_PLUGINS_DIR_ENTRIES {
        return Err(DiscoveryError::TooManyEntries {
            path: plugins_dir.to_owned(),
        });
    }
    names.retain(|name| {
        let hidden = name.as_encoded_bytes().starts_with(b".");
        if hidden {
            tracing::debug!(path = %plugins_dir.join(name).display(), "skipping hidden entry in the plugins directory");
        }
        !hidden
    });
    names.sort();
    let native: BTreeMap<&str, &Version> = native.iter().map(|(d, v)| (d.as_str(), v)).collect();

    let mut report = DiscoveryReport::default();
    let mut candidates: BTreeMap<String, VerifiedPackage> = BTreeMap::new();
    for name in names {
        let path = plugins_dir.join(&name);
        match check_entry(&plugins, &name, policy, accepted, &native, limits) {
            Ok(package) => {
                if let Some(first) = candidates.get(package.domain()) {
                    let error = DiscoveryError::Duplicate {
                        domain: package.domain().to_owned(),
                        first: first.path.clone(),
                    };
                    report.rejected.push(Rejected { path, error });
                } else {
                    candidates.insert(package.domain().to_owned(), package);
                }
            }
            Err(error) => report.rejected.push(Rejected { path, error }),
        }
    }

    // Dependencies, to a fixed point: refusing one package may refuse its dependents.
    let mut refused_domains: BTreeSet<String> = report
        .rejected
        .iter()
        .map(|r| entry_domain(&r.path))
        .collect();
    loop {
        let mut newly_refused = Vec::new();
        for (domain, package) in &candidates {
            let installed = |dep: &str| {
                native
                    .get(dep)
                    .copied()
                    .or_else(|| candidates.get(dep).map(VerifiedPackage::version))
            };
            let refused = |dep: &str| refused_domains.contains(dep);
            if let Err(err) = check_dependencies(&package.manifest, installed, refused) {
                newly_refused.push((domain.clone(), err));
            }
        }
        if newly_refused.is_empty() {
            break;
        }
        for (domain, err) in newly_refused {
            if let Some(package) = candidates.remove(&domain) {
                refused_domains.insert(domain);
                report.rejected.push(Rejected {
                    path: package.path,
                    error: err.into(),
                });
            }
        }
    }

    for r in &report.rejected {
        tracing::error!(path = %r.path.display(), error = %crate::cli::chain(&r.error), "plugin package refused");
    }
    for package in candidates.values() {
        tracing::info!(
            plugin = %package.domain(),
            version = %package.version(),
            signer = %package.signer,
            module_sha256 = %package.module_sha256,
            "plugin package accepted"
        );
    }
    report.accepted = candidates.into_values().collect();
    report.rejected.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// Checks a plugin's dependencies: each hard dependency installed (`installed` gives its
/// version), each `dependency_versions` requirement met; `refused` tells a refused dependency
/// from one never installed.
fn check_dependencies<'v>(
    manifest: &PluginManifest,
    installed: impl Fn(&str) -> Option<&'v Version>,
    refused: impl Fn(&str) -> bool,
) -> Result<(), CompatError> {
    let requirements = compat::dependency_requirements(manifest)?;
    let domain = manifest.domain.clone();
    for dep in &manifest.dependencies {
        if installed(dep).is_none() {
            return Err(if refused(dep) {
                CompatError::DependencyRefused {
                    domain,
                    dependency: dep.clone(),
                }
            } else {
                CompatError::MissingDependency {
                    domain,
                    dependency: dep.clone(),
                }
            });
        }
    }
    for (dep, required) in requirements {
        if let Some(found) = installed(&dep)
            && !required.matches(found)
        {
            return Err(CompatError::DependencyVersion {
                domain,
                dependency: dep,
                required,
                found: found.clone(),
            });
        }
    }
    Ok(())
}

/// Verifies one package again, e.g. before a hot reload of `domain`: the same per-package
/// checks as [`discover`] ([`check_package`]: read, signature under the current `policy`,
/// compatibility, name, rollback — nothing recorded), then its dependencies against `installed`: the
/// native plugins and the packages currently loaded, as `(domain, version)`. The package is
/// `plugins_dir/<domain>/`, or `plugins_dir/<domain>.hcpkg` when there is no such directory
/// (the directory wins, as in [`discover`]).
///
/// # Errors
/// The [`DiscoveryError`] that refuses the package.
pub fn discover_one(
    plugins_dir: &Path,
    domain: &str,
    policy: &TrustPolicy,
    accepted: &dyn AcceptedVersions,
    native: &[(String, Version)],
    installed: &[(String, Version)],
) -> Result<VerifiedPackage, DiscoveryError> {
    let native_map: BTreeMap<&str, &Version> =
        native.iter().map(|(d, v)| (d.as_str(), v)).collect();
    let path = package_path(plugins_dir, domain).unwrap_or_else(|| plugins_dir.join(domain));
    let result = PluginsDir::open(plugins_dir)
        .map_err(|source| DiscoveryError::ListDir {
            path: plugins_dir.to_owned(),
            source,
        })
        .and_then(|plugins| {
            let entry = path.file_name().unwrap_or(domain.as_ref());
            check_entry(
                &plugins,
                entry,
                policy,
                accepted,
                &native_map,
                &PackageLimits::default(),
            )
        })
        .and_then(|package| {
            let lookup = |dep: &str| {
                native_map
                    .get(dep)
                    .copied()
                    .or_else(|| installed.iter().find(|(d, _)| d == dep).map(|(_, v)| v))
            };
            check_dependencies(&package.manifest, lookup, |_| false)?;
            Ok(package)
        });
    if let Err(err) = &result {
        tracing::error!(plugin = %crate::key::cap(domain), error = %crate::cli::chain(err), "plugin package refused");
    }
    result
}
