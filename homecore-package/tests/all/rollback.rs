//! Rollback protection through discovery, with the file store, across restarts.

use homecore_package::{
    AcceptedVersions, DiscoveryError, FileAcceptedVersions, RollbackError, TrustError, discover,
};

use crate::support::*;

#[test]
fn a_downgrade_is_refused_and_a_pinned_downgrade_is_accepted() {
    let alice = Publisher::new("alice");
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = tempfile::tempdir().expect("tempdir");
    let mut policy = trusting(&[&alice]);

    signed_package(plugins.path(), &alice, "hall", "2.0.0");
    let store = FileAcceptedVersions::open(data.path()).expect("opens");
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    // The host records the version once the plugin runs.
    report
        .get("hall")
        .expect("accepted")
        .record_accepted(&store)
        .expect("recorded");

    // The old, genuinely signed 1.5.0 is put back (a replay) and the host restarts.
    std::fs::remove_dir_all(plugins.path().join("hall")).expect("rm");
    signed_package(plugins.path(), &alice, "hall", "1.5.0");
    let store = FileAcceptedVersions::open(data.path()).expect("reopens");
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    let err = report.rejection("hall").expect("refused");
    assert!(
        matches!(
            err,
            DiscoveryError::Rollback(RollbackError::Downgrade { .. })
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("1.5.0") && text.contains("2.0.0"), "{text}");

    // The operator pins 1.5.0 on purpose.
    policy
        .pins
        .insert("hall".into(), "1.5.0".parse().expect("version"));
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    assert_eq!(
        report
            .get("hall")
            .map(|p| p.version().to_string())
            .as_deref(),
        Some("1.5.0")
    );
    assert_eq!(
        store
            .highest("hall")
            .expect("reads")
            .map(|v| v.to_string())
            .as_deref(),
        Some("2.0.0")
    );

    // The pin is lifted: protection is back at the next load.
    policy.pins.clear();
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    assert!(report.rejection("hall").is_some(), "{report}");
}

#[test]
fn verification_alone_never_raises_the_floor() {
    // A package that verifies but never runs (its setup fails, the server stops first, a
    // swap is refused later) must not lock the older, running version out.
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "hall", "3.0.0");
    let store = homecore_package::MemoryAcceptedVersions::new();
    let policy = trusting(&[&alice]);
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    assert!(report.get("hall").is_some(), "{report}");
    let again = homecore_package::discover_one(plugins.path(), "hall", &policy, &store, &[], &[])
        .expect("verifies");
    assert_eq!(store.highest("hall").expect("reads"), None);
    again
        .record_accepted(&store)
        .expect("recorded once it runs");
    assert_eq!(
        store.highest("hall").expect("reads").map(|v| v.to_string()),
        Some("3.0.0".to_owned())
    );
}

#[test]
fn an_unsigned_package_never_moves_the_floor() {
    let plugins = tempfile::tempdir().expect("tempdir");
    write_package(
        plugins.path(),
        "hall",
        &manifest("hall", "5.0.0", "", ""),
        &module(1, 0),
    );
    let policy = homecore_package::TrustPolicy {
        allow_unsigned: true,
        ..homecore_package::TrustPolicy::default()
    };
    let store = homecore_package::MemoryAcceptedVersions::new();
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    report
        .get("hall")
        .expect("accepted in dev mode")
        .record_accepted(&store)
        .expect("nothing to record");
    assert_eq!(store.highest("hall").expect("reads"), None);
}

#[test]
fn a_pin_to_another_version_refuses_the_package() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "hall", "2.0.0");
    let mut policy = trusting(&[&alice]);
    policy
        .pins
        .insert("hall".into(), "1.0.0".parse().expect("version"));
    let store = homecore_package::MemoryAcceptedVersions::new();
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    let err = report.rejection("hall").expect("refused");
    assert_eq!(
        err.to_string(),
        "plugin hall is pinned to 1.0.0, but the package is 2.0.0"
    );
}

#[test]
fn a_revocation_is_honoured_at_the_next_load() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "hall", "1.0.0");
    let store = homecore_package::MemoryAcceptedVersions::new();
    let mut policy = trusting(&[&alice]);
    assert!(
        discover(plugins.path(), &policy, &store, &[])
            .expect("lists")
            .get("hall")
            .is_some()
    );
    policy.revoked.push(alice.key.key_id);
    let report = discover(plugins.path(), &policy, &store, &[]).expect("lists");
    assert!(matches!(
        report.rejection("hall"),
        Some(DiscoveryError::Trust(TrustError::Revoked { .. }))
    ));
}

#[test]
fn a_corrupt_store_refuses_to_open_rather_than_forgetting() {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        data.path().join(homecore_package::ACCEPTED_VERSIONS_FILE),
        b"[1, 2]",
    )
    .expect("writes");
    assert!(FileAcceptedVersions::open(data.path()).is_err());
}

#[test]
fn hot_reload_re_verifies_one_package_under_the_current_policy() {
    use homecore_package::{CompatError, MemoryAcceptedVersions, discover_one};
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "hall", "1.0.0");
    let m = manifest(
        "scenes",
        "1.0.0",
        r#", "dependencies": ["hall"]"#,
        r#", "dependency_versions": {"hall": "^1"}"#,
    );
    let scenes = write_package(plugins.path(), "scenes", &m, &module(1, 0));
    alice.sign(&scenes);
    let store = MemoryAcceptedVersions::new();
    let mut policy = trusting(&[&alice]);

    let hall = discover_one(plugins.path(), "hall", &policy, &store, &[], &[]).expect("verifies");
    let loaded = [("hall".to_owned(), hall.version().clone())];
    discover_one(plugins.path(), "scenes", &policy, &store, &[], &loaded)
        .expect("dependency loaded");
    let err = discover_one(plugins.path(), "scenes", &policy, &store, &[], &[])
        .expect_err("hall not loaded");
    assert!(
        matches!(
            err,
            DiscoveryError::Compat(CompatError::MissingDependency { .. })
        ),
        "{err}"
    );
    let old_hall = [("hall".to_owned(), "0.9.0".parse().expect("version"))];
    let err = discover_one(plugins.path(), "scenes", &policy, &store, &[], &old_hall)
        .expect_err("old hall");
    assert!(
        matches!(
            err,
            DiscoveryError::Compat(CompatError::DependencyVersion { .. })
        ),
        "{err}"
    );

    // The operator revokes the key, then reloads: refused.
    policy.revoked.push(alice.key.key_id);
    let err = discover_one(plugins.path(), "hall", &policy, &store, &[], &[]).expect_err("revoked");
    assert!(
        matches!(err, DiscoveryError::Trust(TrustError::Revoked { .. })),
        "{err}"
    );
    // A pin to another version is honoured at reload too.
    policy.revoked.clear();
    policy
        .pins
        .insert("hall".into(), "0.5.0".parse().expect("version"));
    let err = discover_one(plugins.path(), "hall", &policy, &store, &[], &[]).expect_err("pinned");
    assert!(
        matches!(
            err,
            DiscoveryError::Rollback(RollbackError::PinMismatch { .. })
        ),
        "{err}"
    );
}
