//! Property-based fuzzing of the package readers (issue 14 §8; docs/fuzzing.md): a signed
//! `.hcpkg` bundle and a signed package directory, mutated byte by byte, and arbitrary bytes
//! behind the bundle magic, read with `PackageFiles::open` / `PackageFiles::read` and verified
//! with `verify`. Never a panic, every refusal a typed error, and nothing that verifies differs
//! from what was signed. Cases: `PROPTEST_CASES` (default 128; each case writes files).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use homecore_fuzz_kit::{Edits, apply, config};
use homecore_package::{PackageFiles, PackageLimits, TrustPolicy, abi_version, pack, verify};
use proptest::prelude::*;

use crate::support::*;

/// A signed package and its bundle, made once: the publisher, the policy trusting it, the
/// directory's three files, the bundle's bytes and what was signed.
struct Sample {
    _work: tempfile::TempDir,
    policy: TrustPolicy,
    manifest: Vec<u8>,
    module: Vec<u8>,
    signature: Vec<u8>,
    bundle: Vec<u8>,
}

fn sample() -> &'static Sample {
    static SAMPLE: OnceLock<Sample> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let publisher = Publisher::new("alice");
        let work = tempfile::tempdir().expect("tempdir");
        let dir = signed_package(&work.path().join("src"), &publisher, "hall", "1.0.0");
        let out = work.path().join("out");
        std::fs::create_dir_all(&out).expect("mkdir");
        let packed = pack(&dir, &out).expect("packs");
        let read = |path: PathBuf| std::fs::read(path).expect("reads");
        Sample {
            policy: trusting(&[&publisher]),
            manifest: read(dir.join("manifest.json")),
            module: read(dir.join("plugin.wasm")),
            signature: read(dir.join("signature.json")),
            bundle: read(packed.bundle_path),
            _work: work,
        }
    })
}

/// Reads and verifies the package at `path`: never a panic; an error renders; a package that
/// verifies is exactly the signed one.
fn check(path: &Path) -> Result<(), TestCaseError> {
    let s = sample();
    match PackageFiles::open(path, &PackageLimits::default()) {
        Ok(files) => {
            // The module's ABI section is read from whatever module came out.
            if let Err(err) = abi_version(files.domain(), &files.module) {
                prop_assert!(!err.to_string().is_empty());
            }
        }
        Err(err) => prop_assert!(!err.to_string().is_empty()),
    }
    match verify(path, &s.policy) {
        Ok(_) => {
            let files = PackageFiles::open(path, &PackageLimits::default())
                .map_err(|e| TestCaseError::fail(format!("verified, then unreadable: {e}")))?;
            prop_assert_eq!(
                &files.manifest_bytes[..],
                &s.manifest[..],
                "a changed manifest verified"
            );
            prop_assert_eq!(
                &files.module[..],
                &s.module[..],
                "a changed module verified"
            );
            prop_assert_eq!(files.module_name.as_str(), "plugin.wasm");
        }
        Err(err) => prop_assert!(!err.to_string().is_empty()),
    }
    Ok(())
}

#[test]
fn the_samples_verify() {
    let s = sample();
    let work = tempfile::tempdir().expect("tempdir");
    let bundle = work.path().join("hall.hcpkg");
    std::fs::write(&bundle, &s.bundle).expect("write");
    verify(&bundle, &s.policy).expect("the bundle verifies");
    let dir = write_package(work.path(), "hall", "", &s.module);
    std::fs::write(dir.join("manifest.json"), &s.manifest).expect("write");
    std::fs::write(dir.join("signature.json"), &s.signature).expect("write");
    verify(&dir, &s.policy).expect("the directory verifies");
}

/// Mutations of a valid sample (homecore_fuzz_kit), inserting any byte.
fn edits() -> impl Strategy<Value = Vec<homecore_fuzz_kit::Edit>> {
    Edits::default().strategy()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_bundle_mutated(edits in edits()) {
        let work = tempfile::tempdir().expect("tempdir");
        let path = work.path().join("hall.hcpkg");
        std::fs::write(&path, apply(&sample().bundle, &edits)).expect("write");
        check(&path)?;
    }

    #[test]
    fn fuzz_bundle_arbitrary_after_magic(body in prop::collection::vec(any::<u8>(), 0..128)) {
        let work = tempfile::tempdir().expect("tempdir");
        let path = work.path().join("hall.hcpkg");
        std::fs::write(&path, [b"HCPKG\0\x01".as_slice(), &body].concat()).expect("write");
        check(&path)?;
    }

    #[test]
    fn fuzz_package_directory_mutated(which in 0..3usize, edits in edits()) {
        let s = sample();
        let work = tempfile::tempdir().expect("tempdir");
        let mut files = [s.manifest.clone(), s.signature.clone(), s.module.clone()];
        files[which] = apply(&files[which], &edits);
        let dir = write_package(work.path(), "hall", "", &files[2]);
        std::fs::write(dir.join("manifest.json"), &files[0]).expect("write");
        std::fs::write(dir.join("signature.json"), &files[1]).expect("write");
        check(&dir)?;
    }
}
