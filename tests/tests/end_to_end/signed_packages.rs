//! Signed packages end to end: the reference WASM plugin signed, discovered from a plugins
//! directory, loaded through the Wasmtime runtime, and refused when tampered with.

use std::path::Path;
use std::sync::Arc;

use homecore::Home;
use homecore_integrations::motion_lights;
use homecore_package::{
    CompatError, DiscoveryError, FileAcceptedVersions, KeygenReport, TrustError, TrustPolicy,
    TrustedPublisher, discover, keygen, sign,
};
use homecore_plugins::{Lifecycle, PluginSpec, RegistryError};
use homecore_tests::guest::{EXAMPLE_MODULE, example_manifest, example_wasm};
use homecore_tests::set;
use serde_json::json;

use crate::wasm_example::{registry, wait_until};

const DOMAIN: &str = "motion_lights_wasm";

/// Writes the example plugin as a package `plugins/<domain>/` with `manifest` and signs it.
fn example_package(plugins: &Path, domain: &str, manifest: &str, key: &KeygenReport) {
    let dir = plugins.join(domain);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("manifest.json"), manifest).expect("writes manifest");
    std::fs::write(dir.join(EXAMPLE_MODULE), example_wasm()).expect("writes module");
    sign(&dir, &key.private_key_path).expect("signs");
}

fn policy(key: &KeygenReport) -> TrustPolicy {
    TrustPolicy {
        publishers: vec![TrustedPublisher {
            name: Some("HomeCore examples".into()),
            key: key.public_key,
            domains: None,
        }],
        ..TrustPolicy::default()
    }
}

/// The native plugins this host compiles in, as discovery needs them.
fn native() -> Vec<(String, semver::Version)> {
    let spec = motion_lights::spec().expect("valid");
    vec![(spec.manifest.domain.clone(), spec.manifest.version.clone())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_example_package_is_discovered_loaded_and_runs() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keygen(keys.path(), "examples").expect("keygen");
    let plugins = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    example_package(plugins.path(), DOMAIN, &example_manifest(), &key);
    // A stranger's package beside it is refused without stopping the example.
    let stranger_keys = tempfile::tempdir().expect("tempdir");
    let stranger = keygen(stranger_keys.path(), "stranger").expect("keygen");
    let other = example_manifest().replace(DOMAIN, "stranger_lights");
    example_package(plugins.path(), "stranger_lights", &other, &stranger);

    let store = FileAcceptedVersions::open(data.path()).expect("opens");
    let report = discover(plugins.path(), &policy(&key), &store, &native()).expect("lists");
    assert!(matches!(
        report.rejection("stranger_lights"),
        Some(DiscoveryError::Trust(TrustError::UntrustedKey { .. }))
    ));
    let package = report.get(DOMAIN).expect("the example is accepted");
    assert_eq!(package.key_id(), Some(key.key_id));
    assert_eq!(&**package.module(), example_wasm());
    // Verification checks the rollback floor; the host raises it once the plugin runs.
    assert_eq!(
        homecore_package::AcceptedVersions::highest(&store, DOMAIN).expect("reads"),
        None
    );
    let verified = package.clone();

    let home = Home::new();
    let registry = registry(&home);
    let specs: Vec<PluginSpec> = report
        .accepted
        .into_iter()
        .map(|p| p.into_spec(json!({"rooms": ["hall"], "quiet_seconds": 0.1}), None))
        .collect();
    let started = registry.load_all(specs).await;
    assert_eq!(started.started(), [DOMAIN], "{started:?}");
    verified.record_accepted(&store).expect("recorded");
    assert_eq!(
        homecore_package::AcceptedVersions::highest(&store, DOMAIN).expect("reads"),
        Some(verified.version().clone())
    );

    set(&home, "binary_sensor.hall_motion", "on");
    wait_until(&home, "light.hall", "on").await;
    assert_eq!(
        home.states
            .get_str("light.hall")
            .and_then(|s| s.context().origin.clone())
            .as_deref(),
        Some(DOMAIN)
    );
    set(&home, "binary_sensor.hall_motion", "off");
    wait_until(&home, "light.hall", "off").await;
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_example_is_refused_and_its_dependents_do_not_start() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keygen(keys.path(), "examples").expect("keygen");
    let plugins = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    example_package(plugins.path(), DOMAIN, &example_manifest(), &key);
    // A second package built on the first, with a version requirement on it.
    let dependent = example_manifest()
        .replace(DOMAIN, "hall_scenes")
        .replace(
            r#""dependencies": []"#,
            &format!(r#""dependencies": ["{DOMAIN}"]"#),
        )
        .replace(
            r#""runtime": "wasm","#,
            &format!(r#""runtime": "wasm", "dependency_versions": {{"{DOMAIN}": "^1"}},"#),
        );
    example_package(plugins.path(), "hall_scenes", &dependent, &key);

    let store = FileAcceptedVersions::open(data.path()).expect("opens");
    let report = discover(plugins.path(), &policy(&key), &store, &native()).expect("lists");
    assert_eq!(report.accepted.len(), 2, "{report}");

    // After installation someone widens the example's permissions in its manifest.
    let manifest_path = plugins.path().join(DOMAIN).join("manifest.json");
    let widened = std::fs::read_to_string(&manifest_path)
        .expect("reads")
        .replace(r#""states_write": ["light.*""#, r#""states_write": ["*""#);
    std::fs::write(&manifest_path, widened).expect("writes");

    let report = discover(plugins.path(), &policy(&key), &store, &native()).expect("lists");
    assert!(report.accepted.is_empty(), "{report}");
    assert!(matches!(
        report.rejection(DOMAIN),
        Some(DiscoveryError::Trust(TrustError::BadSignature { .. }))
    ));
    let err = report.rejection("hall_scenes").expect("refused");
    assert!(
        matches!(
            err,
            DiscoveryError::Compat(CompatError::DependencyRefused { .. })
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("plugin hall_scenes depends on {DOMAIN}, which was refused")
    );

    // A native plugin that depends on the refused package does not start either: the registry
    // refuses a plugin whose dependency is not available.
    let mut native_dependent = motion_lights::spec().expect("valid");
    let mut manifest = (*native_dependent.manifest).clone();
    manifest.dependencies.push(DOMAIN.to_owned());
    native_dependent.manifest = Arc::new(manifest);
    let home = Home::new();
    let registry = registry(&home);
    let mut specs: Vec<PluginSpec> = report
        .accepted
        .into_iter()
        .map(|p| p.into_spec(json!({}), None))
        .collect();
    specs.push(native_dependent);
    let started = registry.load_all(specs).await;
    assert!(started.started().is_empty(), "{started:?}");
    let err = started.error("motion_lights").expect("not started");
    assert!(matches!(err, RegistryError::Order(_)), "{err}");
    assert!(err.to_string().contains(DOMAIN), "{err}");
    assert_eq!(
        registry.get("motion_lights").map(|p| p.lifecycle),
        Some(Lifecycle::Failed)
    );
    registry.shutdown().await;
}
