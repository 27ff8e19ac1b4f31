//! The commands behind `homecore package keygen|sign|verify|inspect`, and the `[trust]` table.

use std::os::unix::fs::PermissionsExt;

use homecore_package::{
    CommandError, KeyError, PolicyError, TrustPolicy, inspect, keygen, sign, verify,
};

use crate::support::*;

#[test]
fn keygen_sign_verify_inspect_round_trip() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keygen(keys.path(), "alice").expect("keygen");
    let mode = std::fs::metadata(&key.private_key_path)
        .expect("exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = key.to_string();
    assert!(
        text.contains(&format!("key = \"{}\"", key.public_key)),
        "{text}"
    );

    let work = tempfile::tempdir().expect("tempdir");
    // Authors sign in their build directory; its name need not be the domain.
    let package = write_package(
        work.path(),
        "build-output",
        &manifest("hall", "1.0.0", "", ""),
        &module(1, 100),
    );
    let signed = sign(&package, &key.private_key_path).expect("signs");
    assert_eq!(signed.key_id, key.key_id);
    assert_eq!(signed.signature_path, package.join("signature.json"));
    assert!(
        signed
            .to_string()
            .contains("install it as <plugins dir>/hall/"),
        "{signed}"
    );

    // The snippet keygen prints is what the operator pastes into homecore.toml.
    let snippet = text.split_once("[[trust.publishers]]").expect("snippet").1;
    let config: toml::Table =
        toml::from_str(&format!("[[trust.publishers]]{snippet}")).expect("toml");
    let policy: TrustPolicy = config["trust"].clone().try_into().expect("a trust table");
    let verified = verify(&package, &policy).expect("verifies");
    assert_eq!(verified.signer.key_id(), Some(key.key_id));
    assert_eq!(verified.package.module_sha256, signed.package.module_sha256);

    let inspected = inspect(&package).expect("inspects");
    assert_eq!(inspected.key_id, Some(key.key_id));
    assert_eq!(inspected.signature_matches, Some(true));
    assert_eq!(inspected.digest, signed.digest);
    assert!(
        inspected.to_string().contains("matches the files"),
        "{inspected}"
    );

    // Tampering shows in inspect, without any trust policy.
    std::fs::write(package.join("plugin.wasm"), module(1, 101)).expect("writes");
    let inspected = inspect(&package).expect("inspects");
    assert_eq!(inspected.signature_matches, Some(false));
    assert!(
        inspected.to_string().contains("DOES NOT match"),
        "{inspected}"
    );

    // Signing again replaces the signature.
    sign(&package, &key.private_key_path).expect("re-signs");
    assert_eq!(
        inspect(&package).expect("inspects").signature_matches,
        Some(true)
    );
}

#[test]
fn inspect_shows_an_unsigned_package_and_an_unreadable_abi() {
    let work = tempfile::tempdir().expect("tempdir");
    let package = write_package(
        work.path(),
        "hall",
        &manifest("hall", "1.0.0", "", ""),
        b"\0asm\x01\0\0\0",
    );
    let report = inspect(&package).expect("inspects");
    assert_eq!(report.key_id, None);
    assert_eq!(report.signature_matches, None);
    assert!(report.abi.is_err());
    let text = report.to_string();
    assert!(text.contains("none (unsigned)"), "{text}");
    assert!(text.contains("declares no HomeCore ABI version"), "{text}");
}

#[test]
fn signing_refuses_an_exposed_key_and_an_unsafe_package() {
    let publisher = Publisher::new("alice");
    let work = tempfile::tempdir().expect("tempdir");
    let package = write_package(
        work.path(),
        "hall",
        &manifest("hall", "1.0.0", "", ""),
        &module(1, 0),
    );
    std::fs::set_permissions(
        &publisher.key.private_key_path,
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    let err = sign(&package, &publisher.key.private_key_path).expect_err("exposed key");
    assert!(
        matches!(
            err,
            CommandError::Key(KeyError::InsecurePermissions { mode: 0o640, .. })
        ),
        "{err}"
    );
    std::fs::set_permissions(
        &publisher.key.private_key_path,
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");

    std::os::unix::fs::symlink("/etc/hostname", package.join("NOTICE")).expect("symlink");
    let err = sign(&package, &publisher.key.private_key_path).expect_err("symlink");
    assert!(matches!(err, CommandError::Package(_)), "{err}");
    assert!(!package.join("signature.json").exists());
}

#[test]
fn verify_explains_a_refusal() {
    let alice = Publisher::new("alice");
    let work = tempfile::tempdir().expect("tempdir");
    let package = signed_package(work.path(), &alice, "hall", "1.0.0");
    let err = verify(&package, &TrustPolicy::default()).expect_err("untrusted");
    assert_eq!(
        err.to_string(),
        format!(
            "plugin hall is signed by key {}, which is not a trusted publisher",
            alice.key.key_id
        )
    );
    // An author checks against their own public key file, without a server config.
    let public = homecore_package::load_public_key(&alice.key.public_key_path).expect("loads");
    let report = verify(&package, &TrustPolicy::trusting(public)).expect("verifies");
    assert_eq!(report.signer.key_id(), Some(alice.key.key_id));
}

#[test]
fn the_trust_table_parses_from_toml_and_validates() {
    let alice = Publisher::new("alice");
    let text = format!(
        r#"
        allow_unsigned = false
        revoked = ["0123456789abcdef"]

        [[publishers]]
        name = "Alice"
        key = "{}"
        domains = ["hall", "Bad Domain"]

        [pins]
        hall = "1.0.0"
        "Not-A-Domain" = "2.0.0"
        "#,
        alice.key.public_key
    );
    let policy: TrustPolicy = toml::from_str(&text).expect("parses");
    assert_eq!(policy.publishers[0].key, alice.key.public_key);
    assert_eq!(policy.revoked[0].to_string(), "0123456789abcdef");
    assert_eq!(policy.pins["hall"].to_string(), "1.0.0");
    let problems = policy.validate().expect_err("bad entries");
    assert_eq!(problems.len(), 2);
    assert!(
        matches!(&problems[0], PolicyError::BadPublisherDomain { domain, .. } if domain == "Bad Domain")
    );
    assert!(
        matches!(&problems[1], PolicyError::BadPinDomain { domain } if domain == "Not-A-Domain")
    );

    // Round trip through TOML (the server writes its effective config).
    let back: TrustPolicy =
        toml::from_str(&toml::to_string(&policy).expect("serializes")).expect("parses");
    assert_eq!(back, policy);

    for bad in [
        r#"publishers = [{ key = "ed25519:AAAA" }]"#,
        r#"revoked = ["XYZ"]"#,
        r#"unknown_field = 1"#,
        r#"pins = { hall = "one" }"#,
    ] {
        assert!(toml::from_str::<TrustPolicy>(bad).is_err(), "{bad}");
    }
}
