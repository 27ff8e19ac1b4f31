//! What the `homecore package` commands do: keygen, sign, verify, inspect. Each returns a
//! report that prints itself ([`fmt::Display`]); the server binary only parses arguments.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::Signer as _;
use homecore_plugins::{Permissions, PluginManifest};
use semver::{Version, VersionReq};

use crate::atomic_write::write_atomic;
use crate::discovery::verify_files;
use crate::format::SIGNATURE_FILE;
use crate::key::{generate_files, load_signing_key};
use crate::{
    DetachedSignature, DiscoveryError, KeyError, KeyId, PackageError, PackageFiles, PackageLimits,
    PublicKey, Sha256Hash, Signer, TrustPolicy, compat,
};

/// Why a `homecore package` command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A key could not be made, read or used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The package could not be read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The package was refused (trust, compatibility).
    #[error(transparent)]
    Refused(#[from] DiscoveryError),
    /// The signature file (or bundle) could not be written.
    #[error("cannot write {path}")]
    WriteSignature {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An error and its sources, joined by `: ` (for one-line messages).
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// What [`keygen`] made.
#[derive(Debug, Clone)]
pub struct KeygenReport {
    /// The key's name.
    pub name: String,
    /// The public key.
    pub public_key: PublicKey,
    /// Its id.
    pub key_id: KeyId,
    /// The private key file (mode 0600).
    pub private_key_path: PathBuf,
    /// The public key file.
    pub public_key_path: PathBuf,
}

impl fmt::Display for KeygenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key id:      {}", self.key_id)?;
        writeln!(
            f,
            "public key:  {} ({})",
            self.public_key,
            self.public_key_path.display()
        )?;
        writeln!(
            f,
            "private key: {} (mode 0600; keep it secret, never commit it)",
            self.private_key_path.display()
        )?;
        writeln!(f)?;
        writeln!(f, "Operators trust it with, in homecore.toml:")?;
        writeln!(f)?;
        writeln!(f, "[[trust.publishers]]")?;
        writeln!(f, "name = {:?}", self.name)?;
        writeln!(f, "key = \"{}\"", self.public_key)?;
        write!(
            f,
            "# domains = [\"my_plugin\"]   # optional: the plugins this key may sign"
        )
    }
}

/// Generates a publisher key pair in `dir`: `<name>.key` (private, created 0600, never
/// overwritten) and `<name>.pub` (`ed25519:<base64>`).
///
/// # Errors
/// [`KeyError::BadName`], [`KeyError::Exists`], [`KeyError::Io`].
pub fn keygen(dir: &Path, name: &str) -> Result<KeygenReport, CommandError> {
    let (public_key, private_key_path, public_key_path) = generate_files(dir, name)?;
    Ok(KeygenReport {
        name: name.to_owned(),
        key_id: public_key.id(),
        public_key,
        private_key_path,
        public_key_path,
    })
}

/// What the package is, as every report shows it.
#[derive(Debug, Clone)]
pub struct PackageSummary {
    /// The package directory.
    pub dir: PathBuf,
    /// The plugin's domain.
    pub domain: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: Version,
    /// Its host API requirement.
    pub api_version: Option<VersionReq>,
    /// The module's file name.
    pub module_name: String,
    /// The module's size, bytes.
    pub module_size: u64,
    /// The module's SHA-256.
    pub module_sha256: Sha256Hash,
    /// Hard dependencies.
    pub dependencies: Vec<String>,
    /// What the manifest asks to be allowed.
    pub permissions: Permissions,
}

impl PackageSummary {
    fn of(files: &PackageFiles) -> Self {
        let m: &PluginManifest = &files.manifest;
        let section = m.homecore.as_ref();
        Self {
            dir: files.dir.clone(),
            domain: m.domain.clone(),
            name: m.name.clone(),
            version: m.version.clone(),
            api_version: section.map(|h| h.api_version.clone()),
            module_name: files.module_name.clone(),
            module_size: files.module.len() as u64,
            module_sha256: files.module_sha256,
            dependencies: m.dependencies.clone(),
            permissions: section.map(|h| h.permissions.clone()).unwrap_or_default(),
        }
    }

    fn of_verified(package: &crate::VerifiedPackage) -> Self {
        let m: &PluginManifest = package.manifest();
        let section = m.homecore.as_ref();
        Self {
            dir: package.path().to_owned(),
            domain: m.domain.clone(),
            name: m.name.clone(),
            version: m.version.clone(),
            api_version: section.map(|h| h.api_version.clone()),
            module_name: package.module_name().to_owned(),
            module_size: package.module().len() as u64,
            module_sha256: *package.module_sha256(),
            dependencies: m.dependencies.clone(),
            permissions: section.map(|h| h.permissions.clone()).unwrap_or_default(),
        }
    }

    /// A note when the directory is not named after the domain (discovery would refuse it).
    fn dir_note(&self) -> Option<String> {
        let dir_name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        (dir_name.as_deref() != Some(self.domain.as_str())).then(|| {
            format!(
                "note: install it as <plugins dir>/{}/ (the directory must be named after the domain)",
                self.domain
            )
        })
    }
}

fn list<T: fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for PackageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plugin:        {} {} ({})",
            self.domain, self.version, self.name
        )?;
        if let Some(api) = &self.api_version {
            writeln!(f, "host API:      {api}")?;
        }
        writeln!(
            f,
            "module:        {} ({} bytes)",
            self.module_name, self.module_size
        )?;
        writeln!(f, "module sha256: {}", self.module_sha256)?;
        if !self.dependencies.is_empty() {
            writeln!(f, "dependencies:  {}", list(&self.dependencies))?;
        }
        let p = &self.permissions;
        writeln!(f, "permissions:")?;
        writeln!(f, "  read states:   {}", list(&p.states_read))?;
        writeln!(f, "  write states:  {}", list(&p.states_write))?;
        writeln!(
            f,
            "  call services: {}",
            list(&p.services.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        )?;
        writeln!(
            f,
            "  fire events:   {}",
            list(&p.events.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        )?;
        write!(
            f,
            "  storage:       {}",
            if p.storage { "yes" } else { "no" }
        )?;
        if let Some(note) = self.dir_note() {
            write!(f, "\n{note}")?;
        }
        Ok(())
    }
}

/// What [`sign`] did.
#[derive(Debug, Clone)]
pub struct SignReport {
    /// The package signed.
    pub package: PackageSummary,
    /// The signing key's id.
    pub key_id: KeyId,
    /// The signature file written.
    pub signature_path: PathBuf,
    /// The package digest signed.
    pub digest: Sha256Hash,
}

impl fmt::Display for SignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "signed {} with key {}", self.package.domain, self.key_id)?;
        writeln!(f, "signature:     {}", self.signature_path.display())?;
        writeln!(f, "digest:        {}", self.digest)?;
        write!(f, "{}", self.package)
    }
}

/// Signs a package directory with a private key file: reads the package exactly as discovery
/// does (an existing signature is replaced), and writes `signature.json` atomically.
///
/// # Errors
/// [`CommandError::Key`] (unreadable, malformed or group/world-readable key),
/// [`CommandError::Package`] (unsafe or invalid package), [`CommandError::WriteSignature`].
pub fn sign(package_dir: &Path, private_key_file: &Path) -> Result<SignReport, CommandError> {
    let key = load_signing_key(private_key_file)?;
    let files = PackageFiles::read(package_dir, &PackageLimits::default())?;
    let digest = files.digest();
    let public_key = PublicKey::from(key.verifying_key());
    let detached = DetachedSignature {
        key_id: public_key.id(),
        public_key,
        signature: key.sign(&files.message()),
    };
    let signature_path = package_dir.join(SIGNATURE_FILE);
    write_atomic(&signature_path, detached.to_json().as_bytes()).map_err(|source| {
        CommandError::WriteSignature {
            path: signature_path.clone(),
            source,
        }
    })?;
    Ok(SignReport {
        package: PackageSummary::of(&files),
        key_id: detached.key_id,
        signature_path,
        digest,
    })
}

/// What [`verify`] established.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The package.
    pub package: PackageSummary,
    /// Who vouches for it.
    pub signer: Signer,
    /// The module's ABI version.
    pub abi_version: u32,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "OK: {} {} is signed by {}",
            self.package.domain, self.package.version, self.signer
        )?;
        writeln!(f, "ABI version:   {}", self.abi_version)?;
        write!(f, "{}", self.package)
    }
}

/// Verifies a package (directory or `.hcpkg` bundle) alone under a trust policy: safe
/// reading, signature by a trusted, unrevoked key allowed for the domain (or dev mode), host
/// API and ABI compatibility. What a host would say of it (its name, its native plugins, its
/// rollback floor) is [`verify_as_host`].
///
/// # Errors
/// [`CommandError::Refused`] naming the reason.
pub fn verify(package_dir: &Path, policy: &TrustPolicy) -> Result<VerifyReport, CommandError> {
    let (files, signer, abi_version) =
        verify_files(package_dir, policy, &PackageLimits::default())?;
    compat::dependency_requirements(&files.manifest).map_err(DiscoveryError::from)?;
    Ok(VerifyReport {
        package: PackageSummary::of(&files),
        signer,
        abi_version,
    })
}

/// Verifies a package as a host would accept it into its plugins directory: the same
/// function discovery runs ([`crate::check_package`]): everything [`verify`] checks, plus the
/// package's name (it must be its domain: `<domain>/` or `<domain>.hcpkg`), no shadowing of
/// the host's `native` plugins, and rollback protection against the host's `accepted`
/// versions. Nothing is recorded.
///
/// # Errors
/// [`CommandError::Refused`] naming the reason.
pub fn verify_as_host(
    package: &Path,
    policy: &TrustPolicy,
    accepted: &dyn crate::AcceptedVersions,
    native: &[(String, semver::Version)],
) -> Result<VerifyReport, CommandError> {
    let verified =
        crate::check_package(package, policy, accepted, native, &PackageLimits::default())?;
    Ok(VerifyReport {
        package: PackageSummary::of_verified(&verified),
        signer: verified.signer().clone(),
        abi_version: verified.abi_version(),
    })
}

/// What [`inspect`] found (no trust decision).
#[derive(Debug, Clone)]
pub struct InspectReport {
    /// The package.
    pub package: PackageSummary,
    /// The signing key's id, if signed.
    pub key_id: Option<KeyId>,
    /// Whether the signature matches the files under the key it names (`None`: unsigned).
    pub signature_matches: Option<bool>,
    /// The module's ABI version, or why it cannot be read.
    pub abi: Result<u32, compat::CompatError>,
    /// The package digest.
    pub digest: Sha256Hash,
}

impl fmt::Display for InspectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.key_id, self.signature_matches) {
            (Some(id), Some(true)) => writeln!(
                f,
                "signature:     by key {id}, matches the files (whether the key is trusted is the operator's policy: use verify)"
            )?,
            (Some(id), _) => writeln!(f, "signature:     by key {id}, DOES NOT match the files")?,
            (None, _) => writeln!(f, "signature:     none (unsigned)")?,
        }
        writeln!(f, "digest:        {}", self.digest)?;
        match &self.abi {
            Ok(v) => writeln!(f, "ABI version:   {v}")?,
            Err(e) => writeln!(f, "ABI version:   {e}")?,
        }
        write!(f, "{}", self.package)
    }
}

/// Shows what a package (directory or `.hcpkg` bundle) holds, without a trust policy: manifest summary, module size and hash,
/// the signature's key id and whether the signature matches the files.
///
/// # Errors
/// [`CommandError::Package`] when the package cannot be read safely.
pub fn inspect(package_dir: &Path) -> Result<InspectReport, CommandError> {
    let files = PackageFiles::open(package_dir, &PackageLimits::default())?;
    Ok(InspectReport {
        package: PackageSummary::of(&files),
        key_id: files.signature.as_ref().map(|s| s.key_id),
        signature_matches: files.signature_matches_embedded_key(),
        abi: compat::abi_version(files.domain(), &files.module),
        digest: files.digest(),
    })
}

/// What [`pack`] wrote.
#[derive(Debug, Clone)]
pub struct PackReport {
    /// The package packed.
    pub package: PackageSummary,
    /// The bundle written.
    pub bundle_path: PathBuf,
    /// Its size, bytes.
    pub bundle_size: u64,
    /// The signing key's id (`None`: the package is unsigned).
    pub key_id: Option<KeyId>,
}

impl fmt::Display for PackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "packed {} {} into {} ({} bytes)",
            self.package.domain,
            self.package.version,
            self.bundle_path.display(),
            self.bundle_size
        )?;
        match self.key_id {
            Some(id) => write!(f, "signature:     by key {id} (carried unchanged)"),
            None => write!(
                f,
                "signature:     none (unsigned; sign the directory first)"
            ),
        }
    }
}

/// Packs a (signed) package directory into one `<domain>.hcpkg` bundle in `out_dir`, written
/// atomically. The signature is carried unchanged: it covers the same digest.
///
/// # Errors
/// [`CommandError::Package`] when the directory cannot be read safely,
/// [`CommandError::WriteSignature`] when the bundle cannot be written.
pub fn pack(package_dir: &Path, out_dir: &Path) -> Result<PackReport, CommandError> {
    let (files, bytes) = crate::bundle::pack(package_dir, &PackageLimits::default())?;
    let bundle_path = out_dir.join(format!("{}.{}", files.domain(), crate::BUNDLE_EXTENSION));
    write_atomic(&bundle_path, &bytes).map_err(|source| CommandError::WriteSignature {
        path: bundle_path.clone(),
        source,
    })?;
    Ok(PackReport {
        package: PackageSummary::of(&files),
        bundle_path,
        bundle_size: bytes.len() as u64,
        key_id: files.signature.as_ref().map(|s| s.key_id),
    })
}
