//! Verification cost of a package: hashing the module, the Ed25519 check alone, and the whole
//! read + verify of a package directory, for 100 KiB and 5 MiB modules.
//!
//! Targets (issue 4): hashing ≥ 1 GB/s, signature check ≤ 100 µs.
//! Run: `cargo bench -p homecore-package --bench verify`.

use std::path::PathBuf;

use divan::Bencher;
use divan::counter::BytesCount;
use ed25519_dalek::{Signer as _, SigningKey};
use homecore_package::{
    PackageFiles, PackageLimits, Sha256Hash, TrustPolicy, TrustedPublisher, keygen, sign,
    signed_message,
};

const SIZES: [usize; 2] = [100 * 1024, 5 * 1024 * 1024];

fn main() {
    divan::main();
}

/// SHA-256 of the module bytes (the part of verification that grows with the module).
#[divan::bench(args = SIZES)]
fn hash_module(bencher: Bencher, size: usize) {
    let module = vec![0x5au8; size];
    bencher
        .counter(BytesCount::new(size))
        .bench(|| Sha256Hash::of(divan::black_box(&module)));
}

/// `verify_strict` of one package message: constant, independent of the module size.
#[divan::bench]
fn signature_check(bencher: Bencher) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let message = signed_message(&Sha256Hash::of(b"digest"));
    let signature = key.sign(&message);
    let public = key.verifying_key();
    bencher.bench(|| {
        public
            .verify_strict(divan::black_box(&message), divan::black_box(&signature))
            .expect("valid")
    });
}

struct Fixture {
    _dir: tempfile::TempDir,
    package: PathBuf,
    policy: TrustPolicy,
}

fn fixture(size: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = keygen(dir.path(), "bench").expect("keygen");
    let package = dir.path().join("bench_plugin");
    std::fs::create_dir(&package).expect("mkdir");
    std::fs::write(
        package.join("manifest.json"),
        r#"{"domain": "bench_plugin", "name": "Bench", "version": "1.0.0",
            "homecore": {"runtime": "wasm", "api_version": "^1", "module": "plugin.wasm"}}"#,
    )
    .expect("writes");
    let mut module = b"\0asm\x01\0\0\0\x00\x11\x0chomecore_abi\x01\0\0\0".to_vec();
    module.resize(size, 0);
    std::fs::write(package.join("plugin.wasm"), module).expect("writes");
    sign(&package, &key.private_key_path).expect("signs");
    let policy = TrustPolicy {
        publishers: vec![TrustedPublisher {
            name: None,
            key: key.public_key,
            domains: None,
        }],
        ..TrustPolicy::default()
    };
    Fixture {
        _dir: dir,
        package,
        policy,
    }
}

/// The whole per-package cost: safe reads (page cache warm), hashing, digest, signature.
#[divan::bench(args = SIZES)]
fn read_and_verify_package(bencher: Bencher, size: usize) {
    let f = fixture(size);
    bencher.counter(BytesCount::new(size)).bench(|| {
        let files = PackageFiles::read(&f.package, &PackageLimits::default()).expect("reads");
        f.policy.check(&files).expect("verifies")
    });
}
