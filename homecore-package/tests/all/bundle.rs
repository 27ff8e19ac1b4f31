//! Single-file bundles: packed from a signed directory, discovered like one, refused like one.

use std::os::unix::fs::symlink;

use homecore_package::{
    BundleError, DiscoveryError, MemoryAcceptedVersions, PackageError, PackageLimits, ReadError,
    TrustError, discover, inspect, pack, verify,
};

use crate::support::*;

/// A bundle's bytes from raw parts, as a hostile author could write them.
fn raw_bundle(manifest: &[u8], module_name: &str, module: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut out = b"HCPKG\0\x01".to_vec();
    for (bytes, wide) in [
        (manifest, false),
        (module_name.as_bytes(), false),
        (module, true),
        (signature, false),
    ] {
        if wide {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        } else {
            out.extend_from_slice(&u32::try_from(bytes.len()).expect("small").to_le_bytes());
        }
        out.extend_from_slice(bytes);
    }
    out
}

#[test]
fn a_packed_bundle_verifies_and_is_discovered_like_its_directory() {
    let alice = Publisher::new("alice");
    let work = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = signed_package(work.path(), &alice, "hall", "1.0.0");
    let packed = pack(&dir, plugins.path()).expect("packs");
    assert_eq!(packed.bundle_path, plugins.path().join("hall.hcpkg"));
    assert_eq!(packed.key_id, Some(alice.key.key_id));
    assert!(packed.to_string().contains("carried unchanged"), "{packed}");

    let policy = trusting(&[&alice]);
    let verified = verify(&packed.bundle_path, &policy).expect("verifies");
    assert_eq!(verified.package.module_sha256, packed.package.module_sha256);
    assert_eq!(
        inspect(&packed.bundle_path)
            .expect("inspects")
            .signature_matches,
        Some(true)
    );

    let report =
        discover(plugins.path(), &policy, &MemoryAcceptedVersions::new(), &[]).expect("lists");
    let hall = report.get("hall").expect("accepted");
    assert_eq!(hall.path(), packed.bundle_path);
    let module = std::fs::read(dir.join("plugin.wasm")).expect("reads");
    assert_eq!(&**hall.module(), module.as_slice());
}

#[test]
fn a_tampered_bundle_is_refused() {
    let alice = Publisher::new("alice");
    let work = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = signed_package(work.path(), &alice, "hall", "1.0.0");
    let packed = pack(&dir, plugins.path()).expect("packs");
    let mut bytes = std::fs::read(&packed.bundle_path).expect("reads");
    // The module's last byte sits just before the signature's length and text.
    let signature_len = usize::try_from(
        std::fs::metadata(dir.join("signature.json"))
            .expect("exists")
            .len(),
    )
    .expect("a small file");
    let at = bytes.len() - signature_len - 4 - 1;
    bytes[at] ^= 1;
    std::fs::write(&packed.bundle_path, bytes).expect("writes");
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    assert!(matches!(
        report.rejection("hall.hcpkg"),
        Some(DiscoveryError::Trust(TrustError::BadSignature { .. }))
    ));
}

#[test]
fn a_directory_and_a_bundle_for_one_domain_are_a_duplicate() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = signed_package(plugins.path(), &alice, "hall", "1.0.0");
    pack(&dir, plugins.path()).expect("packs");
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    assert_eq!(
        report.get("hall").map(|p| p.path().to_owned()),
        Some(dir.clone())
    );
    let err = report.rejection("hall.hcpkg").expect("refused");
    assert_eq!(
        err.to_string(),
        format!("plugin hall is already provided by {}", dir.display())
    );
}

#[test]
fn malformed_symlinked_and_oversized_bundles_are_refused() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = manifest("renamed", "1.0.0", "", "");
    std::fs::write(
        plugins.path().join("renamed.hcpkg"),
        raw_bundle(m.as_bytes(), "other.wasm", &module(1, 0), b""),
    )
    .expect("writes");
    let mut trailing = raw_bundle(
        manifest("trailing", "1.0.0", "", "").as_bytes(),
        "plugin.wasm",
        &module(1, 0),
        b"",
    );
    trailing.push(0);
    std::fs::write(plugins.path().join("trailing.hcpkg"), trailing).expect("writes");
    symlink("/dev/zero", plugins.path().join("zero.hcpkg")).expect("symlink");
    let big = signed_package(work.path(), &alice, "big", "1.0.0");
    std::fs::write(big.join("plugin.wasm"), module(1, 10_000)).expect("writes");
    alice.sign(&big);
    pack(&big, plugins.path()).expect("packs");

    let limits = PackageLimits {
        module_bytes: 4096,
        ..PackageLimits::default()
    };
    let report = discover_trusting(plugins.path(), &alice, &[], &limits);
    assert!(report.accepted.is_empty(), "{report}");
    assert!(matches!(
        report.rejection("renamed.hcpkg"),
        Some(DiscoveryError::Package(
            PackageError::ModuleNameMismatch { .. }
        ))
    ));
    assert!(matches!(
        report.rejection("trailing.hcpkg"),
        Some(DiscoveryError::Package(PackageError::Bundle {
            source: BundleError::TrailingBytes { extra: 1 },
            ..
        }))
    ));
    assert!(matches!(
        report.rejection("zero.hcpkg"),
        Some(DiscoveryError::Package(PackageError::Read(
            ReadError::Symlink { .. }
        )))
    ));
    assert!(
        matches!(
            report.rejection("big.hcpkg"),
            Some(DiscoveryError::Package(PackageError::Read(
                ReadError::TooLarge { .. }
            ))) | Some(DiscoveryError::Package(PackageError::Bundle {
                source: BundleError::FieldTooLarge {
                    field: "module",
                    ..
                },
                ..
            }))
        ),
        "{report}"
    );
}

#[test]
fn discover_one_finds_a_bundle_when_there_is_no_directory() {
    use homecore_package::discover_one;
    let alice = Publisher::new("alice");
    let work = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let dir = signed_package(work.path(), &alice, "hall", "1.0.0");
    let packed = pack(&dir, plugins.path()).expect("packs");
    let store = MemoryAcceptedVersions::new();
    let policy = trusting(&[&alice]);
    let hall = discover_one(plugins.path(), "hall", &policy, &store, &[], &[]).expect("verifies");
    assert_eq!(hall.path(), packed.bundle_path);

    // A directory beside it wins, as in discover.
    let newer = signed_package(plugins.path(), &alice, "hall", "1.1.0");
    let hall = discover_one(plugins.path(), "hall", &policy, &store, &[], &[]).expect("verifies");
    assert_eq!(hall.path(), newer);
    assert_eq!(hall.version().to_string(), "1.1.0");
}
