//! Signed HomeCore plugin packages: the package format, publisher keys, Ed25519 signing and
//! verification, the operator's trust policy, compatibility checks, rollback protection and
//! safe discovery of a plugins directory (docs/adr/0008-signed-packages.md).
//!
//! # Concepts
//!
//! - **Package**: a directory `<domain>/` holding `manifest.json`, the module it names in
//!   `homecore.module` (e.g. `plugin.wasm`), and `signature.json` — or the same three in one
//!   `<domain>.hcpkg` bundle ([`pack`]). The signature is Ed25519 (`verify_strict`) over a domain-separated digest of the exact manifest bytes, the module's
//!   SHA-256 and size, the domain, the version and the module's file name
//!   ([`DigestInput`]): no file can be edited, swapped or paired with another package's.
//! - **Keys**: [`keygen`] writes `<name>.key` (0600) and `<name>.pub` (`ed25519:<base64>`);
//!   a [`KeyId`] is 16 hex digits of the public key's SHA-256.
//! - **[`TrustPolicy`]**: the server config's `[trust]` table — trusted publishers (optionally
//!   scoped to domains), revoked key ids, dev mode (`allow_unsigned`, with a warning at every
//!   load), version pins.
//! - **Compatibility**: host API requirement, the module's ABI custom section (read without
//!   compiling), dependency version requirements (`homecore.dependency_versions`).
//! - **Rollback protection**: [`AcceptedVersions`] remembers the highest version accepted per
//!   domain ([`FileAcceptedVersions`] keeps it in a JSON file); older packages are refused
//!   unless pinned. Verification checks the floor; the host raises it with
//!   [`VerifiedPackage::record_accepted`] once the plugin runs.
//! - **[`discover`]**: reads a plugins directory safely (no symlinks, size caps while reading,
//!   each file read once), verifies every package before anything is compiled, reports each
//!   refusal and accepts the rest as [`VerifiedPackage`]s, which become registry specs with
//!   [`VerifiedPackage::into_spec`].
//! - **[`check_package`]**: the per-package acceptance checks [`discover`] runs on each entry,
//!   and [`verify_as_host`] (`homecore package verify`) on the package it is given.
//! - **Commands**: [`keygen`], [`sign`], [`verify`], [`verify_as_host`], [`inspect`], [`pack`] return reports that print
//!   themselves; the `homecore package …` subcommands call them.
//!
//! # Example
//!
//! ```
//! use homecore_package::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! // The publisher makes a key and signs a package.
//! let key = keygen(tmp.path(), "alice")?;
//! let plugins = tmp.path().join("plugins");
//! let package = plugins.join("hello");
//! std::fs::create_dir_all(&package)?;
//! std::fs::write(package.join("manifest.json"), r#"{
//!     "domain": "hello", "name": "Hello", "version": "1.0.0",
//!     "homecore": {"runtime": "wasm", "api_version": "^1", "module": "plugin.wasm"}
//! }"#)?;
//! // A module declaring ABI v1 (custom section `homecore_abi`); a real one comes from cargo.
//! let mut module = b"\0asm\x01\0\0\0\x00\x11\x0chomecore_abi".to_vec();
//! module.extend(1u32.to_le_bytes());
//! std::fs::write(package.join("plugin.wasm"), &module)?;
//! let signed = sign(&package, &key.private_key_path)?;
//! println!("{signed}");
//!
//! // The operator trusts the key (the `[trust]` table of homecore.toml) and discovers.
//! let policy: TrustPolicy = serde_json::from_value(serde_json::json!({
//!     "publishers": [{"name": "Alice", "key": key.public_key.to_string()}]
//! }))?;
//! let seen = MemoryAcceptedVersions::new();
//! let report = discover(&plugins, &policy, &seen, &[])?;
//! assert!(report.rejected.is_empty(), "{report}");
//! let hello = report.get("hello").expect("accepted");
//! assert_eq!(hello.key_id(), Some(key.key_id));
//! // The host records the version as the rollback floor once the plugin runs.
//! assert_eq!(seen.highest("hello")?, None);
//! hello.record_accepted(&seen)?;
//! assert_eq!(seen.highest("hello")?, Some(semver::Version::new(1, 0, 0)));
//!
//! // Editing a signed file is caught.
//! std::fs::write(package.join("plugin.wasm"), [module.as_slice(), b"\0"].concat())?;
//! let report = discover(&plugins, &policy, &seen, &[])?;
//! assert!(matches!(
//!     report.rejection("hello"),
//!     Some(DiscoveryError::Trust(TrustError::BadSignature { .. }))
//! ));
//! # Ok(()) }
//! ```
//!
//! # Loading accepted packages
//!
//! Each [`VerifiedPackage`] becomes a registry spec with
//! [`into_spec(config, grant)`](VerifiedPackage::into_spec), carrying the verified module bytes
//! (never re-read from disk); hand the specs to `PluginRegistry::load_all`. Before a hot reload
//! of one plugin, run [`discover_one`] (or [`discover`] again) with the current policy, and load
//! the spec it returns instead of reloading the old bytes: revocations and pins apply at once.
#![forbid(unsafe_code)]

mod atomic_write;
mod bundle;
mod cli;
mod compat;
mod discovery;
mod format;
mod key;
mod package;
mod read;
mod trust;
mod versions;

pub use crate::bundle::{BUNDLE_EXTENSION, BundleError};
pub use crate::cli::{
    CommandError, InspectReport, KeygenReport, PackReport, PackageSummary, SignReport,
    VerifyReport, inspect, keygen, pack, sign, verify, verify_as_host,
};
pub use crate::compat::{
    CompatError, DEPENDENCY_VERSIONS_KEY, abi_version, check_api, check_host,
    dependency_requirements,
};
pub use crate::discovery::{
    DiscoveryError, DiscoveryReport, MAX_PLUGINS_DIR_ENTRIES, Rejected, VerifiedPackage,
    check_package, discover, discover_one, discover_with_limits, entry_domain, package_path,
};
pub use crate::format::{
    DIGEST_CONTEXT, DetachedSignature, DigestInput, FormatError, MANIFEST_FILE,
    SIGNATURE_ALGORITHM, SIGNATURE_FILE, SIGNATURE_FORMAT, Sha256Hash, signed_message,
};
pub use crate::key::{
    KeyError, KeyId, MAX_KEY_NAME_LEN, PUBLIC_KEY_PREFIX, PublicKey, SECRET_KEY_PREFIX, key_paths,
    load_public_key, load_signing_key,
};
pub use crate::package::{PackageError, PackageFiles, PackageLimits};
pub use crate::read::{MAX_PACKAGE_DEPTH, MAX_PACKAGE_ENTRIES, ReadError, check_file_name};
pub use crate::trust::{PolicyError, Signer, TrustError, TrustPolicy, TrustedPublisher};
pub use crate::versions::{
    ACCEPTED_VERSIONS_FILE, AcceptedVersions, FileAcceptedVersions, MemoryAcceptedVersions,
    RollbackError, VersionStoreError, check_and_record, check_version,
};
