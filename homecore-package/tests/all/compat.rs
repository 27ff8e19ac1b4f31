//! Host API, ABI and dependency compatibility through discovery.

use homecore_package::{CompatError, DiscoveryError, PackageLimits};
use semver::Version;

use crate::support::*;

fn compat_error(report: &homecore_package::DiscoveryReport, name: &str) -> CompatError {
    match report.rejection(name) {
        Some(DiscoveryError::Compat(e)) => e.clone(),
        other => panic!("expected a compatibility error for {name}, got {other:?}\n{report}"),
    }
}

#[test]
fn an_incompatible_host_api_is_refused_naming_both_versions() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let m = manifest("hall", "1.0.0", "", "")
        .replace(r#""api_version": "^1.0""#, r#""api_version": "^2.0""#);
    let path = write_package(plugins.path(), "hall", &m, &module(1, 0));
    alice.sign(&path);
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    let err = compat_error(&report, "hall");
    assert_eq!(
        err.to_string(),
        "plugin hall requires host API ^2.0, but this host provides 1.0.0"
    );
}

#[test]
fn an_incompatible_abi_is_refused_naming_both_versions() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    let path = write_package(
        plugins.path(),
        "hall",
        &manifest("hall", "1.0.0", "", ""),
        &module(2, 0),
    );
    alice.sign(&path);
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    let err = compat_error(&report, "hall");
    assert!(matches!(err, CompatError::IncompatibleAbi { found: 2, .. }));
    assert_eq!(
        err.to_string(),
        "plugin hall is built for HomeCore ABI 2, but this host serves ABI [1]"
    );
}

/// `plugins/<domain>` at `version`, depending on `deps` with these requirements.
fn dependent(plugins: &std::path::Path, alice: &Publisher, domain: &str, deps: &[(&str, &str)]) {
    let list: Vec<String> = deps.iter().map(|(d, _)| format!("{d:?}")).collect();
    let reqs: Vec<String> = deps.iter().map(|(d, r)| format!("{d:?}: {r:?}")).collect();
    let m = manifest(
        domain,
        "1.0.0",
        &format!(r#", "dependencies": [{}]"#, list.join(", ")),
        &format!(r#", "dependency_versions": {{{}}}"#, reqs.join(", ")),
    );
    let path = write_package(plugins, domain, &m, &module(1, 0));
    alice.sign(&path);
}

#[test]
fn dependency_versions_are_checked_against_packages_and_native_plugins() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    signed_package(plugins.path(), &alice, "presence", "1.4.0");
    dependent(
        plugins.path(),
        &alice,
        "needs_new_presence",
        &[("presence", "^2")],
    );
    dependent(
        plugins.path(),
        &alice,
        "needs_presence",
        &[("presence", "^1.2")],
    );
    dependent(
        plugins.path(),
        &alice,
        "needs_native",
        &[("motion_lights", ">=1.0")],
    );
    dependent(
        plugins.path(),
        &alice,
        "needs_old_native",
        &[("motion_lights", "<1")],
    );
    let native = [("motion_lights".to_owned(), Version::new(1, 0, 0))];
    let report = discover_trusting(plugins.path(), &alice, &native, &PackageLimits::default());

    let accepted: Vec<&str> = report.accepted.iter().map(|p| p.domain()).collect();
    assert_eq!(
        accepted,
        ["needs_native", "needs_presence", "presence"],
        "{report}"
    );
    assert_eq!(
        compat_error(&report, "needs_new_presence").to_string(),
        "plugin needs_new_presence requires presence ^2, but presence 1.4.0 is installed"
    );
    assert_eq!(
        compat_error(&report, "needs_old_native").to_string(),
        "plugin needs_old_native requires motion_lights <1, but motion_lights 1.0.0 is installed"
    );
}

#[test]
fn dependents_of_a_refused_package_are_refused_transitively() {
    let alice = Publisher::new("alice");
    let plugins = tempfile::tempdir().expect("tempdir");
    // `base` is refused (ABI 2); `middle` needs it; `top` needs `middle`.
    let base = write_package(
        plugins.path(),
        "base",
        &manifest("base", "1.0.0", "", ""),
        &module(2, 0),
    );
    alice.sign(&base);
    dependent(plugins.path(), &alice, "middle", &[("base", "*")]);
    dependent(plugins.path(), &alice, "top", &[("middle", "*")]);
    dependent(plugins.path(), &alice, "orphan", &[("not_installed", "*")]);
    let report = discover_trusting(plugins.path(), &alice, &[], &PackageLimits::default());
    assert!(report.accepted.is_empty(), "{report}");
    assert!(matches!(
        compat_error(&report, "base"),
        CompatError::IncompatibleAbi { .. }
    ));
    assert_eq!(
        compat_error(&report, "middle").to_string(),
        "plugin middle depends on base, which was refused"
    );
    assert_eq!(
        compat_error(&report, "top").to_string(),
        "plugin top depends on middle, which was refused"
    );
    assert_eq!(
        compat_error(&report, "orphan").to_string(),
        "plugin orphan depends on not_installed, which is not installed"
    );
}
