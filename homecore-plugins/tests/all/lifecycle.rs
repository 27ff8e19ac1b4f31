//! Loading, ordering, events, services, reload and unload.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use homecore::{Context, Home};
use homecore_plugins::{Lifecycle, OrderError, PluginRegistry, RegistryError, RuntimeKind};
use serde_json::json;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_plugin_receives_subscribed_changes_in_order() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        subscribe: vec!["light.*"],
        ..Script::default()
    };
    let info = registry
        .load(script.spec(manifest("watcher", all_permissions(), &[])))
        .await
        .expect("starts");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.runtime, RuntimeKind::Native);
    for i in 0..100 {
        set(&home, "light.hall", &i.to_string());
        set(&home, "switch.ignored", &i.to_string());
    }
    settle().await;
    let seen = script.entries();
    assert_eq!(seen[0], "setup");
    let expected: Vec<String> = (0..100).map(|i| format!("light.hall={i}")).collect();
    assert_eq!(&seen[1..], expected.as_slice());
    let info = registry.get("watcher").expect("listed");
    assert_eq!(info.stats.events, 100);
    assert!(info.health.ready);
    assert!(info.health.uptime.is_some());
}

#[tokio::test(start_paused = true)]
async fn plugins_start_in_dependency_order() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let log = Log::default();
    let mk = |domain: &'static str, deps: &[&str]| {
        let script = Script {
            log: Arc::clone(&log),
            ..Script::default()
        };
        let m = manifest(domain, all_permissions(), deps);
        (script.clone(), script.spec(m))
    };
    let (_, c) = mk("gamma", &["beta"]);
    let (_, b) = mk("beta", &["alpha"]);
    let (_, a) = mk("alpha", &[]);
    let report = registry.load_all(vec![c, b, a]).await;
    assert_eq!(report.started().len(), 3, "{report:?}");
    // Each logs "setup"; dependency order shows in the registry's start record via list order
    // of running plugins and in that every dependent started after its dependency.
    assert_eq!(log.lock().expect("not poisoned").len(), 3);
    assert!(
        registry
            .list()
            .iter()
            .all(|p| p.lifecycle == Lifecycle::Running)
    );
}

#[tokio::test(start_paused = true)]
async fn dependency_cycle_is_named_and_others_still_start() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let s = Script::default();
    let report = registry
        .load_all(vec![
            s.spec(manifest("one", all_permissions(), &["two"])),
            s.spec(manifest("two", all_permissions(), &["one"])),
            s.spec(manifest("three", all_permissions(), &[])),
        ])
        .await;
    match report.error("one") {
        Some(RegistryError::Order(OrderError::Cycle { cycle })) => {
            assert_eq!(cycle, &["one", "two", "one"]);
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
    assert!(matches!(
        report.error("two"),
        Some(RegistryError::Order(OrderError::Cycle { .. }))
    ));
    assert_eq!(report.started(), ["three"]);
    let one = registry.get("one").expect("listed");
    assert_eq!(one.lifecycle, Lifecycle::Failed);
    assert!(
        one.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("one -> two -> one"))
    );
}

#[tokio::test(start_paused = true)]
async fn missing_dependency_is_named() {
    let registry = PluginRegistry::new(Home::new());
    let s = Script::default();
    let err = registry
        .load(s.spec(manifest("needy", all_permissions(), &["zigbee"])))
        .await
        .expect_err("zigbee is missing");
    assert!(
        matches!(&err, RegistryError::Order(OrderError::Missing { missing, .. }) if missing == &["zigbee"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("zigbee"));
}

#[tokio::test(start_paused = true)]
async fn duplicate_domain_is_refused_and_the_first_keeps_running() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let first = Script {
        subscribe: vec!["light.*"],
        ..Script::default()
    };
    registry
        .load(first.spec(manifest("dup", all_permissions(), &[])))
        .await
        .expect("first starts");
    let err = registry
        .load(Script::default().spec(manifest("dup", all_permissions(), &[])))
        .await
        .expect_err("duplicate");
    assert!(matches!(err, RegistryError::DuplicateDomain { ref domain } if domain == "dup"));
    set(&home, "light.x", "on");
    settle().await;
    assert_eq!(first.entries(), ["setup", "light.x=on"]);
    let report = registry
        .load_all(vec![
            Script::default().spec(manifest("twin", all_permissions(), &[])),
            Script::default().spec(manifest("twin", all_permissions(), &[])),
        ])
        .await;
    assert_eq!(report.started(), ["twin"]);
    assert!(matches!(
        report.outcomes[1].1,
        Err(RegistryError::DuplicateDomain { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn dependents_of_a_failed_plugin_do_not_start() {
    let registry = PluginRegistry::new(Home::new());
    let broken = Script {
        setup_failures: Arc::new(std::sync::Mutex::new(100)),
        ..Script::default()
    };
    let report = registry
        .load_all(vec![
            broken.spec(manifest("base", all_permissions(), &[])),
            Script::default().spec(manifest("child", all_permissions(), &["base"])),
        ])
        .await;
    assert!(matches!(
        report.error("base"),
        Some(RegistryError::SetupFailed { attempts: 4, .. })
    ));
    assert!(
        matches!(report.error("child"), Some(RegistryError::DependencyFailed { dependency, lifecycle: Lifecycle::Failed, .. }) if dependency == "base")
    );
    assert_eq!(
        registry.get("child").expect("listed").lifecycle,
        Lifecycle::Failed
    );
}

#[tokio::test(start_paused = true)]
async fn plugin_services_run_in_the_plugin_and_report_changed_states() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        service: Some("flip"),
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("flipper", all_permissions(), &[])))
        .await
        .expect("starts");
    let response = home
        .services
        .call(
            "flipper",
            "flip",
            json!({"entity_id": "light.porch"}),
            Context::new(),
        )
        .await
        .expect("handled");
    assert_eq!(response.response, Some(json!({"handled_by": "flipper"})));
    assert_eq!(response.changed_states.len(), 1);
    assert_eq!(
        response.changed_states[0].entity_id().as_str(),
        "light.porch"
    );
    // A panic in a service call is that call's error.
    let err = home
        .services
        .call(
            "flipper",
            "flip",
            json!({"entity_id": "light.boom"}),
            Context::new(),
        )
        .await
        .expect_err("panicked");
    assert!(format!("{:?}", err).contains("Panicked"), "{err:?}");
    assert_eq!(
        registry.get("flipper").expect("listed").lifecycle,
        Lifecycle::Running
    );
    registry.unload("flipper").await.expect("unloads");
    assert!(
        !home.services.has("flipper", "flip"),
        "services go with the plugin"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_runs_teardown_then_a_fresh_setup() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        subscribe: vec!["light.*"],
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("re", all_permissions(), &[])))
        .await
        .expect("starts");
    let info = registry.reload("re").await.expect("reloads");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    set(&home, "light.a", "on");
    settle().await;
    assert_eq!(
        script.entries(),
        ["setup", "teardown", "setup", "light.a=on"]
    );
    assert_eq!(home.bus.subscriber_count(), 1, "the old mailbox is gone");
    registry.unload("re").await.expect("unloads");
    assert!(registry.get("re").is_none());
    assert_eq!(home.bus.subscriber_count(), 0);
    assert!(matches!(
        registry.unload("re").await,
        Err(RegistryError::NotFound { .. })
    ));
    assert!(matches!(
        registry.reload("re").await,
        Err(RegistryError::NotFound { .. })
    ));
}

fn versioned(domain: &str, version: &str, api: &str) -> homecore_plugins::PluginManifest {
    let mut value = to_value(&manifest(domain, all_permissions(), &[]));
    value["version"] = json!(version);
    value["homecore"]["api_version"] = json!(api);
    homecore_plugins::PluginManifest::from_value(value).expect("valid manifest")
}

/// A script that subscribes to `light.*`.
fn light_listener() -> Script {
    Script {
        subscribe: vec!["light.*"],
        ..Script::default()
    }
}

/// A registry running version 1.0.0 of `domain`, a light listener.
async fn version_one_running(domain: &str) -> (Home, PluginRegistry, Script) {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let old = light_listener();
    registry
        .load(old.spec(versioned(domain, "1.0.0", "^1")))
        .await
        .expect("starts");
    (home, registry, old)
}

#[tokio::test(start_paused = true)]
async fn replace_swaps_in_the_new_version() {
    let (home, registry, old) = version_one_running("swap").await;
    let new = light_listener();
    set(&home, "light.a", "on");
    settle().await;
    let info = registry
        .replace(new.spec(versioned("swap", "2.0.0", "^1")))
        .await
        .expect("replaces");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.manifest.version, semver::Version::new(2, 0, 0));
    set(&home, "light.a", "off");
    settle().await;
    assert_eq!(old.entries(), ["setup", "light.a=on", "teardown"]);
    assert_eq!(new.entries(), ["setup", "light.a=off"]);
    assert_eq!(home.bus.subscriber_count(), 1, "only the new mailbox");
}

#[tokio::test(start_paused = true)]
async fn a_refused_replacement_leaves_the_old_version_running() {
    let (home, registry, old) = version_one_running("keep").await;
    let incompatible = Script::default();
    let err = registry
        .replace(incompatible.spec(versioned("keep", "2.0.0", "^9")))
        .await
        .expect_err("needs host API 9");
    assert!(
        matches!(err, RegistryError::IncompatibleApi { .. }),
        "{err}"
    );
    assert!(incompatible.entries().is_empty(), "never set up");
    let unknown = registry
        .replace(Script::default().spec(versioned("nobody", "1.0.0", "^1")))
        .await
        .expect_err("nothing to replace");
    assert!(matches!(unknown, RegistryError::NotFound { .. }));
    set(&home, "light.a", "on");
    settle().await;
    assert_eq!(old.entries(), ["setup", "light.a=on"]);
    let info = registry.get("keep").expect("still loaded");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.manifest.version, semver::Version::new(1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_replacement_whose_setup_fails_restarts_the_old_version() {
    let (home, registry, old) = version_one_running("back").await;
    let broken = Script {
        setup_failures: Arc::new(Mutex::new(u32::MAX)),
        ..Script::default()
    };
    let err = registry
        .replace(broken.spec(versioned("back", "2.0.0", "^1")))
        .await
        .expect_err("setup never succeeds");
    assert!(matches!(err, RegistryError::SetupFailed { .. }), "{err}");
    set(&home, "light.a", "on");
    settle().await;
    assert_eq!(old.entries(), ["setup", "teardown", "setup", "light.a=on"]);
    let info = registry.get("back").expect("loaded again");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.manifest.version, semver::Version::new(1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn shutdown_tears_everything_down() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let a = Script::default();
    let b = Script::default();
    registry
        .load_all(vec![
            a.spec(manifest("a", all_permissions(), &[])),
            b.spec(manifest("b", all_permissions(), &["a"])),
        ])
        .await;
    registry.shutdown().await;
    assert!(registry.list().is_empty());
    assert_eq!(a.entries(), ["setup", "teardown"]);
    assert_eq!(b.entries(), ["setup", "teardown"]);
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reloads_of_one_plugin_all_succeed() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        subscribe: vec!["light.*"],
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("busy", all_permissions(), &[])))
        .await
        .expect("starts");
    // Rounds, because a race shows only sometimes.
    const ROUNDS: usize = 8;
    for _ in 0..ROUNDS {
        let reloads: Vec<_> = (0..16)
            .map(|_| {
                let registry = registry.clone();
                tokio::spawn(async move { registry.reload("busy").await })
            })
            .collect();
        for reload in reloads {
            let info = reload
                .await
                .expect("no panic")
                .expect("every reload succeeds");
            assert_eq!(info.lifecycle, Lifecycle::Running);
        }
    }
    let info = registry.get("busy").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    let entries = script.entries();
    let setups = entries.iter().filter(|e| *e == "setup").count();
    let teardowns = entries.iter().filter(|e| *e == "teardown").count();
    assert_eq!(
        (setups, teardowns),
        (1 + 16 * ROUNDS, 16 * ROUNDS),
        "one instance left running"
    );
    assert_eq!(home.bus.subscriber_count(), 1, "one mailbox");
}
