//! Safe discovery: hostile file systems, naming rules, duplicates, and bad packages that do
//! not stop good ones.

use std::os::unix::fs::symlink;

use homecore_package::{
    DiscoveryError, MemoryAcceptedVersions, PackageError, PackageLimits, ReadError, discover,
};
use semver::Version;

use crate::support::*;

fn read_error(report: &homecore_package::DiscoveryReport, name: &str) -> String {
    match report.rejection(name) {
        Some(err @ DiscoveryError::Package(_)) => err.to_string(),
        other => panic!("expected a package error for {name}, got {other:?}\n{report}"),
    }
}

#[test]
fn one_bad_package_does_not_stop_the_good_ones() {
    let alice = Publisher::new("alice");
    let mallory = Publisher::new("mallory");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "alpha", "1.0.0");
    signed_package(plugins.path(), &mallory, "beta", "1.0.0");
    signed_package(plugins.path(), &alice, "gamma", "1.0.0");
    std::fs::write(
        plugins.path().join("gamma").join("plugin.wasm"),
        module(1, 3),
    )
    .expect("tamper");
    signed_package(plugins.path(), &alice, "omega", "1.0.0");
    std::fs::write(plugins.path().join("README.txt"), "not a package").expect("writes");
    std::fs::create_dir(plugins.path().join(".staging")).expect("hidden dirs are skipped");

    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    let accepted: Vec<&str> = report.accepted.iter().map(|p| p.domain()).collect();
    assert_eq!(accepted, ["alpha", "omega"]);
    let rejected: Vec<String> = report
        .rejected
        .iter()
        .map(|r| {
            r.path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(rejected, ["README.txt", "beta", "gamma"]);
    let text = report.to_string();
    assert!(text.contains("accepted alpha 1.0.0"), "{text}");
    assert!(text.contains("not a trusted publisher"), "{text}");
}

#[test]
fn the_accepted_package_carries_exactly_the_verified_bytes() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = signed_package(plugins.path(), &alice, "alpha", "1.0.0");
    let on_disk = std::fs::read(path.join("plugin.wasm")).expect("reads");
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    let package = report.accepted.into_iter().next().expect("accepted");
    assert_eq!(&**package.module(), on_disk.as_slice());
    assert_eq!(package.module_sha256().to_string().len(), 64);
    assert_eq!(package.abi_version(), 1);
    assert_eq!(package.path(), path);
    let digest = package.module_sha256().0;
    let spec = package.into_spec(serde_json::json!({"rooms": ["hall"]}), None);
    assert_eq!(spec.manifest.domain, "alpha");
    assert_eq!(spec.config["rooms"][0], "hall");
    assert!(
        matches!(&spec.source, homecore_plugins::PluginSource::VerifiedWasm { module, sha256 }
            if **module == *on_disk && *sha256 == digest),
        "the module goes to the runtime with the digest verification computed"
    );
}

#[test]
fn the_directory_must_be_named_after_a_valid_domain() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = write_package(
        plugins.path(),
        "kitchen",
        &manifest("hall", "1.0.0", "", ""),
        &module(1, 0),
    );
    alice.sign(&path);
    for bad in ["Bad-Name", "_hall", "hall_", "a__b"] {
        let path = write_package(
            plugins.path(),
            bad,
            &manifest("hall", "1.0.0", "", ""),
            &module(1, 0),
        );
        alice.sign(&path);
    }
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    assert!(report.accepted.is_empty());
    assert_eq!(
        report.rejection("kitchen").expect("refused").to_string(),
        format!(
            "package kitchen holds plugin hall; a package must be named after its domain (hall/ or hall.hcpkg)"
        )
    );
    for bad in ["Bad-Name", "_hall", "hall_", "a__b"] {
        assert!(
            matches!(
                report.rejection(bad),
                Some(DiscoveryError::BadDirName { .. })
            ),
            "{bad}: {report}"
        );
    }
}

#[test]
fn a_package_may_not_shadow_a_native_plugin() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "motion_lights", "9.0.0");
    let native = [("motion_lights".to_owned(), Version::new(1, 0, 0))];
    let store = MemoryAcceptedVersions::new();
    let report = discover(plugins.path(), &trusting(&[&alice]), &store, &native).expect("lists");
    assert_eq!(
        report
            .rejection("motion_lights")
            .expect("refused")
            .to_string(),
        "plugin motion_lights is a native plugin; a package may not shadow it"
    );
    assert_eq!(
        homecore_package::AcceptedVersions::highest(&store, "motion_lights").expect("reads"),
        None
    );
}

#[test]
fn module_paths_that_leave_the_package_are_refused() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::write(plugins.path().join("outside.wasm"), module(1, 0)).expect("writes");
    for (dir, module_path) in [
        ("up", "../outside.wasm"),
        ("abs", "/tmp/outside.wasm"),
        ("sub", "lib/plugin.wasm"),
    ] {
        let m =
            manifest(dir, "1.0.0", "", "").replace("\"plugin.wasm\"", &format!("{module_path:?}"));
        let path = plugins.path().join(dir);
        std::fs::create_dir_all(path.join("lib")).expect("mkdir");
        std::fs::write(path.join("manifest.json"), m).expect("writes");
        std::fs::write(path.join("lib").join("plugin.wasm"), module(1, 0)).expect("writes");
    }
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    assert!(report.accepted.is_empty(), "{report}");
    // `..` and absolute paths are already invalid manifests; a sub-path is refused by the reader.
    for dir in ["up", "abs"] {
        assert!(
            matches!(
                report.rejection(dir),
                Some(DiscoveryError::Package(PackageError::Manifest { .. }))
            ),
            "{dir}: {report}"
        );
    }
    assert!(matches!(
        report.rejection("sub"),
        Some(DiscoveryError::Package(PackageError::Read(
            ReadError::BadFileName { .. }
        )))
    ));
}

#[test]
fn symlinks_anywhere_in_a_package_are_refused() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");

    // The module is a symlink to /dev/zero: refused without reading it.
    let zero = signed_package(plugins.path(), &alice, "zero", "1.0.0");
    std::fs::remove_file(zero.join("plugin.wasm")).expect("rm");
    symlink("/dev/zero", zero.join("plugin.wasm")).expect("symlink");
    // The manifest is a symlink to a genuine signed manifest.
    let real = signed_package(elsewhere.path(), &alice, "linked", "1.0.0");
    let linked = write_package(plugins.path(), "linked", "", &module(1, 64));
    std::fs::remove_file(linked.join("manifest.json")).expect("rm");
    symlink(real.join("manifest.json"), linked.join("manifest.json")).expect("symlink");
    std::fs::copy(real.join("signature.json"), linked.join("signature.json")).expect("copies");
    // A symlink deep inside an otherwise valid package.
    let deep = signed_package(plugins.path(), &alice, "deep", "1.0.0");
    std::fs::create_dir_all(deep.join("assets").join("icons")).expect("mkdir");
    symlink("/etc", deep.join("assets").join("icons").join("etc")).expect("symlink");
    // The package directory itself is a symlink to a valid package.
    symlink(&real, plugins.path().join("whole")).expect("symlink");

    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    assert!(report.accepted.is_empty(), "{report}");
    for name in ["zero", "linked", "deep", "whole"] {
        let text = read_error(&report, name);
        assert!(
            text.contains("is a symbolic link; packages must not contain symlinks"),
            "{name}: {text}"
        );
    }
}

#[test]
fn oversized_files_are_refused_while_reading() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let big = write_package(
        plugins.path(),
        "big",
        &manifest("big", "1.0.0", "", ""),
        &module(1, 5000),
    );
    alice.sign(&big);
    signed_package(plugins.path(), &alice, "small", "1.0.0");
    let huge_manifest = write_package(
        plugins.path(),
        "huge",
        &manifest("huge", "1.0.0", "", ""),
        &module(1, 0),
    );
    std::fs::write(huge_manifest.join("manifest.json"), vec![b' '; 4097]).expect("writes");
    let huge_sig = signed_package(plugins.path(), &alice, "huge_sig", "1.0.0");
    std::fs::write(huge_sig.join("signature.json"), vec![b' '; 4097]).expect("writes");
    let limits = PackageLimits {
        module_bytes: 4096,
        manifest_bytes: 4096,
        ..PackageLimits::default()
    };
    let report = discover_trusting(plugins.path(), &alice, &[], &limits);
    assert_eq!(
        report
            .accepted
            .iter()
            .map(|p| p.domain())
            .collect::<Vec<_>>(),
        ["small"]
    );
    for name in ["big", "huge", "huge_sig"] {
        let text = read_error(&report, name);
        assert!(
            text.contains("is larger than the 4096-byte limit"),
            "{name}: {text}"
        );
    }
}

#[test]
fn missing_files_and_native_manifests_are_refused_with_the_reason() {
    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(plugins.path().join("empty")).expect("mkdir");
    let no_module = write_package(
        plugins.path(),
        "no_module",
        &manifest("no_module", "1.0.0", "", ""),
        b"",
    );
    std::fs::remove_file(no_module.join("plugin.wasm")).expect("rm");
    let native = manifest("native", "1.0.0", "", "")
        .replace(r#""runtime": "wasm""#, r#""runtime": "native""#)
        .replace(r#""module": "plugin.wasm","#, "");
    write_package(plugins.path(), "native", &native, &module(1, 0));
    let report = discover_strict(plugins.path());
    assert!(read_error(&report, "empty").ends_with("manifest.json is missing"));
    assert!(read_error(&report, "no_module").ends_with("plugin.wasm is missing"));
    assert_eq!(
        read_error(&report, "native"),
        "plugin native declares runtime native; packages hold WASM plugins only"
    );
}

#[test]
fn an_unlistable_plugins_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = discover(
        &dir.path().join("absent"),
        &homecore_package::TrustPolicy::default(),
        &MemoryAcceptedVersions::new(),
        &[],
    )
    .expect_err("no directory");
    assert!(matches!(err, DiscoveryError::ListDir { .. }), "{err}");
}

#[test]
fn an_unreasonably_large_plugins_directory_is_an_error() {
    let plugins = tempfile::tempdir().expect("tempdir");
    for i in 0..=homecore_package::MAX_PLUGINS_DIR_ENTRIES {
        std::fs::write(plugins.path().join(format!("p{i}")), b"").expect("writes");
    }
    let err = discover(
        plugins.path(),
        &homecore_package::TrustPolicy::default(),
        &MemoryAcceptedVersions::new(),
        &[],
    )
    .expect_err("too many");
    assert!(
        matches!(err, DiscoveryError::TooManyEntries { .. }),
        "{err}"
    );
}

#[test]
fn a_malformed_signature_file_is_refused_with_its_path() {
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = write_package(
        plugins.path(),
        "hall",
        &manifest("hall", "1.0.0", "", ""),
        &module(1, 0),
    );
    std::fs::write(path.join("signature.json"), b"{\"format\": 1}").expect("writes");
    let report = discover_strict(plugins.path());
    assert!(
        matches!(
            report.rejection("hall"),
            Some(DiscoveryError::Package(PackageError::Signature { .. }))
        ),
        "{report}"
    );
    assert!(read_error(&report, "hall").ends_with("signature.json is not a valid signature file"));
}
