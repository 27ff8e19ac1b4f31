//! Signatures and the trust policy: what is signed, by whom, and for which domains.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use homecore_package::{
    CommandError, DiscoveryError, MemoryAcceptedVersions, Signer, TrustError, TrustPolicy,
    discover, verify,
};
use proptest::prelude::*;

use crate::support::*;

fn trust_error(result: Result<homecore_package::VerifyReport, CommandError>) -> TrustError {
    match result {
        Err(CommandError::Refused(DiscoveryError::Trust(e))) => e,
        other => panic!("expected a trust error, got {other:?}"),
    }
}

#[test]
fn a_signed_package_verifies_and_names_its_signer() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &alice, "hall", "1.2.3");
    let report = verify(&path, &trusting(&[&alice])).expect("verifies");
    assert_eq!(
        report.signer,
        Signer::Publisher {
            key_id: alice.key.key_id,
            name: Some("alice".into())
        }
    );
    assert_eq!(report.package.domain, "hall");
    assert_eq!(report.package.version.to_string(), "1.2.3");
    assert_eq!(report.abi_version, 1);
    let text = report.to_string();
    assert!(text.contains(&alice.key.key_id.to_string()), "{text}");
    assert!(
        text.contains(&report.package.module_sha256.to_string()),
        "{text}"
    );
    assert!(text.contains("write states:  light.*"), "{text}");
}

#[test]
fn a_manifest_edited_after_signing_is_refused() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &alice, "hall", "1.0.0");
    // The attack the alpha allowed: grant everything in a signed package's manifest.
    let edited = std::fs::read_to_string(path.join("manifest.json"))
        .expect("reads")
        .replace(r#""states_write": ["light.*"]"#, r#""states_write": ["*"]"#);
    std::fs::write(path.join("manifest.json"), edited).expect("writes");
    let err = trust_error(verify(&path, &trusting(&[&alice])));
    assert!(matches!(err, TrustError::BadSignature { .. }), "{err}");
    assert!(
        err.to_string().contains("does not match the package files"),
        "{err}"
    );
}

#[test]
fn a_signature_by_another_key_under_a_trusted_key_id_is_refused() {
    let alice = Publisher::new("alice");
    let mallory = Publisher::new("mallory");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &mallory, "hall", "1.0.0");
    // Mallory relabels her signature as Alice's.
    let mut sig: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("signature.json")).expect("reads"))
            .expect("json");
    sig["key_id"] = alice.key.key_id.to_string().into();
    sig["public_key"] = alice.key.public_key.to_string().into();
    std::fs::write(path.join("signature.json"), sig.to_string()).expect("writes");
    let err = trust_error(verify(&path, &trusting(&[&alice])));
    assert!(matches!(err, TrustError::BadSignature { .. }), "{err}");
}

#[test]
fn an_untrusted_key_is_refused() {
    let alice = Publisher::new("alice");
    let bob = Publisher::new("bob");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &bob, "hall", "1.0.0");
    let err = trust_error(verify(&path, &trusting(&[&alice])));
    assert!(
        matches!(err, TrustError::UntrustedKey { key_id, .. } if key_id == bob.key.key_id),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "plugin hall is signed by key {}, which is not a trusted publisher",
            bob.key.key_id
        )
    );
}

#[test]
fn a_revoked_key_is_refused_even_when_trusted() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &alice, "hall", "1.0.0");
    let mut policy = trusting(&[&alice]);
    policy.revoked.push(alice.key.key_id);
    let err = trust_error(verify(&path, &policy));
    assert!(matches!(err, TrustError::Revoked { .. }), "{err}");
    assert!(err.to_string().contains("revoked"), "{err}");
}

#[test]
fn a_key_not_allowed_for_the_domain_is_refused() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &alice, "front_door", "1.0.0");
    let policy = TrustPolicy {
        publishers: vec![alice.trusted(Some(&["hall", "kitchen"]))],
        ..TrustPolicy::default()
    };
    let err = trust_error(verify(&path, &policy));
    assert!(matches!(err, TrustError::DomainNotAllowed { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "key {} may sign only [\"hall\", \"kitchen\"], not plugin front_door",
            alice.key.key_id
        )
    );
    let scoped = signed_package(plugins.path(), &alice, "hall", "1.0.0");
    verify(&scoped, &policy).expect("allowed domain");
}

#[test]
fn unsigned_packages_are_refused_unless_in_dev_mode_which_warns_at_every_load() {
    let plugins = tempfile::tempdir().expect("tempdir");
    write_package(
        plugins.path(),
        "hall",
        &manifest("hall", "1.0.0", "", ""),
        &module(1, 0),
    );
    let seen = MemoryAcceptedVersions::new();

    let strict = discover(plugins.path(), &TrustPolicy::default(), &seen, &[]).expect("lists");
    assert!(strict.accepted.is_empty());
    let err = strict.rejection("hall").expect("refused");
    assert!(
        matches!(err, DiscoveryError::Trust(TrustError::Unsigned { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("allow_unsigned"), "{err}");

    let dev = TrustPolicy {
        allow_unsigned: true,
        ..TrustPolicy::default()
    };
    for _ in 0..2 {
        let (report, warnings) = warnings_during(|| discover(plugins.path(), &dev, &seen, &[]));
        let report = report.expect("lists");
        let hall = report.get("hall").expect("accepted in dev mode");
        assert_eq!(hall.signer(), &Signer::Unsigned);
        assert_eq!(hall.key_id(), None);
        assert!(
            warnings.iter().any(|w| w.contains("UNSIGNED")),
            "a loud warning at every load: {warnings:?}"
        );
    }
    assert_eq!(
        homecore_package::AcceptedVersions::highest(&seen, "hall").expect("reads"),
        None
    );
}

#[test]
fn dev_mode_still_refuses_a_bad_signature() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &alice, "hall", "1.0.0");
    std::fs::write(path.join("plugin.wasm"), module(1, 65)).expect("writes");
    let policy = TrustPolicy {
        allow_unsigned: true,
        ..trusting(&[&alice])
    };
    assert!(matches!(
        trust_error(verify(&path, &policy)),
        TrustError::BadSignature { .. }
    ));
}

#[test]
fn the_manifest_of_one_package_with_the_module_of_another_is_refused() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let a = write_package(
        plugins.path(),
        "a",
        &manifest("a", "1.0.0", "", ""),
        &module(1, 10),
    );
    let b = write_package(
        plugins.path(),
        "b",
        &manifest("b", "1.0.0", "", ""),
        &module(1, 20),
    );
    alice.sign(&a);
    alice.sign(&b);
    let policy = trusting(&[&alice]);
    // A's manifest and signature with B's module.
    std::fs::copy(b.join("plugin.wasm"), a.join("plugin.wasm")).expect("copies");
    assert!(matches!(
        trust_error(verify(&a, &policy)),
        TrustError::BadSignature { .. }
    ));
    // B's files with A's signature.
    std::fs::copy(
        plugins.path().join("a").join("signature.json"),
        b.join("signature.json"),
    )
    .expect("copies");
    assert!(matches!(
        trust_error(verify(&b, &policy)),
        TrustError::BadSignature { .. }
    ));
}

/// One signed package, copied per case.
fn fixture() -> &'static (tempfile::TempDir, TrustPolicy) {
    static FIXTURE: std::sync::OnceLock<(tempfile::TempDir, TrustPolicy)> =
        std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let alice = Publisher::new("alice");
        let dir = tempfile::tempdir().expect("tempdir");
        signed_package(dir.path(), &alice, "hall", "1.0.0");
        let policy = trusting(&[&alice]);
        (dir, policy)
    })
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Manifest,
    Module,
    Signature,
}

fn copy_package(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for name in ["manifest.json", "plugin.wasm", "signature.json"] {
        std::fs::copy(from.join(name), to.join(name)).expect("copies");
    }
}

/// Flips bits `mask` of byte `index` (modulo the length) of one part.
fn flip(dir: &Path, part: Part, index: usize, mask: u8) {
    let file = match part {
        Part::Manifest => "manifest.json",
        Part::Module => "plugin.wasm",
        Part::Signature => "signature.json",
    };
    let path = dir.join(file);
    let mut bytes = std::fs::read(&path).expect("reads");
    if let Part::Signature = part {
        // The signature proper: the 64 bytes behind the base64.
        let mut sig: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        let mut raw = STANDARD
            .decode(sig["signature"].as_str().expect("string"))
            .expect("base64");
        let i = index % raw.len();
        raw[i] ^= mask;
        sig["signature"] = STANDARD.encode(raw).into();
        bytes = sig.to_string().into_bytes();
    } else {
        let i = index % bytes.len();
        bytes[i] ^= mask;
    }
    std::fs::write(&path, bytes).expect("writes");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn flipping_any_single_byte_is_refused(
        part in prop_oneof![Just(Part::Manifest), Just(Part::Module), Just(Part::Signature)],
        index in any::<usize>(),
        mask in 1u8..=255,
    ) {
        let (source, policy) = fixture();
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path().join("hall");
        copy_package(&source.path().join("hall"), &dir);
        verify(&dir, policy).expect("the copy verifies before the flip");
        flip(&dir, part, index, mask);
        let result = verify(&dir, policy);
        match part {
            // A flipped manifest may no longer parse; either way it must not verify.
            Part::Manifest => prop_assert!(result.is_err(), "accepted a flipped manifest"),
            Part::Module | Part::Signature => prop_assert!(
                matches!(result, Err(CommandError::Refused(DiscoveryError::Trust(TrustError::BadSignature { .. })))),
                "{result:?}"
            ),
        }
    }
}
