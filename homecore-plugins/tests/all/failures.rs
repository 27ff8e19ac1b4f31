//! Every failure path: panics, setup retries, quarantine, mailbox overflow, loop guard.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use homecore::{Home, MAX_CONTEXT_DEPTH};
use homecore_plugins::{
    HostPolicy, Lifecycle, LoadError, PluginManifest, PluginRegistry, PluginSource, PluginSpec,
    RegistryError,
};
use serde_json::json;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_panicking_plugin_fails_that_call_only() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let bad = Script {
        subscribe: vec!["sensor.*"],
        panic_on: Some("boom"),
        ..Script::default()
    };
    let good = Script {
        subscribe: vec!["sensor.*"],
        ..Script::default()
    };
    registry
        .load_all(vec![
            bad.spec(manifest("bad", all_permissions(), &[])),
            good.spec(manifest("good", all_permissions(), &[])),
        ])
        .await;
    for s in ["1", "boom", "2"] {
        set(&home, "sensor.t", s);
    }
    settle().await;
    assert_eq!(
        good.entries(),
        ["setup", "sensor.t=1", "sensor.t=boom", "sensor.t=2"]
    );
    assert_eq!(
        bad.entries(),
        ["setup", "sensor.t=1", "sensor.t=boom", "sensor.t=2"],
        "still running after the panic"
    );
    let info = registry.get("bad").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.stats.errors, 1);
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("plugin exploded on boom"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_constructor_is_a_load_error() {
    let registry = PluginRegistry::new(Home::new());
    let script = Script {
        panic_in_new: true,
        ..Script::default()
    };
    let err = registry
        .load(script.spec(manifest("ctor", all_permissions(), &[])))
        .await
        .expect_err("constructor panics");
    assert!(
        matches!(err, RegistryError::Load { source: LoadError::Panicked { ref message }, .. } if message.contains("constructor exploded"))
    );
    assert_eq!(
        registry.get("ctor").expect("listed").lifecycle,
        Lifecycle::Failed
    );
}

#[tokio::test(start_paused = true)]
async fn setup_is_retried_with_backoff_then_succeeds() {
    let registry = PluginRegistry::new(Home::new());
    let script = Script {
        setup_failures: Arc::new(Mutex::new(2)),
        ..Script::default()
    };
    let started = tokio::time::Instant::now();
    let info = registry
        .load(script.spec(manifest("flaky", all_permissions(), &[])))
        .await
        .expect("third attempt works");
    // Backoff 100 ms then 200 ms (paused clock: exact).
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(info.health.setup_attempts, 3);
    assert_eq!(info.stats.errors, 2);
    assert_eq!(script.entries(), ["teardown", "teardown", "setup"]);
}

#[tokio::test(start_paused = true)]
async fn setup_that_never_works_is_marked_failed_with_the_reason() {
    let policy = HostPolicy {
        setup_attempts: 3,
        ..HostPolicy::default()
    };
    let registry = PluginRegistry::builder(Home::new()).policy(policy).build();
    let script = Script {
        setup_failures: Arc::new(Mutex::new(u32::MAX)),
        ..Script::default()
    };
    let err = registry
        .load(script.spec(manifest("never", all_permissions(), &[])))
        .await
        .expect_err("fails");
    assert!(
        matches!(err, RegistryError::SetupFailed { attempts: 3, .. }),
        "{err:?}"
    );
    let info = registry.get("never").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Failed);
    assert!(!info.health.ready);
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not ready yet"))
    );
}

#[tokio::test(start_paused = true)]
async fn repeated_failures_quarantine_the_plugin() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let bad = Script {
        subscribe: vec!["sensor.*"],
        fail_on: Some("bad"),
        ..Script::default()
    };
    registry
        .load(bad.spec(manifest("sick", all_permissions(), &[])))
        .await
        .expect("starts");
    set(&home, "sensor.a", "bad");
    set(&home, "sensor.b", "fine");
    for i in 0..5 {
        set(&home, &format!("sensor.x{i}"), "bad");
    }
    settle().await;
    let info = registry.get("sick").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Quarantined);
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("quarantined after 5 consecutive failures"))
    );
    assert_eq!(info.stats.errors, 6);
    set(&home, "sensor.after", "fine");
    settle().await;
    assert!(
        !bad.entries().iter().any(|e| e.starts_with("sensor.after")),
        "no delivery after quarantine"
    );
    assert!(bad.entries().contains(&"teardown".to_owned()));
    // A reload gives it a fresh start.
    assert_eq!(
        registry.reload("sick").await.expect("reloads").lifecycle,
        Lifecycle::Running
    );
}

#[tokio::test(start_paused = true)]
async fn mailbox_overflow_drops_newest_counts_and_spares_others() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let slow = Script {
        subscribe: vec!["sensor.*"],
        slow: Some(Duration::from_secs(1)),
        ..Script::default()
    };
    let fast = Script {
        subscribe: vec!["sensor.*"],
        ..Script::default()
    };
    let mut slow_manifest = to_value(&manifest("slow", all_permissions(), &[]));
    slow_manifest["homecore"]["limits"] = json!({"mailbox_capacity": 4});
    let slow_manifest = PluginManifest::from_value(slow_manifest).expect("valid");
    registry
        .load_all(vec![
            slow.spec(slow_manifest),
            fast.spec(manifest("fast", all_permissions(), &[])),
        ])
        .await;
    for i in 0..50 {
        set(&home, "sensor.burst", &i.to_string());
    }
    settle().await;
    assert_eq!(fast.entries().len(), 51, "the fast plugin got every event");
    let info = registry.get("slow").expect("listed");
    assert!(info.stats.mailbox_dropped > 0);
    assert_eq!(
        registry.get("fast").expect("listed").stats.mailbox_dropped,
        0
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    let got: Vec<u32> = slow.entries()[1..]
        .iter()
        .map(|e| {
            e.trim_start_matches("sensor.burst=")
                .parse()
                .expect("a number")
        })
        .collect();
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "what arrives stays in order: {got:?}"
    );
    assert_eq!(
        got.len() as u64 + info.stats.mailbox_dropped,
        50,
        "every event delivered or counted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_plugin_reacting_to_its_own_writes_is_stopped_by_the_loop_guard() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let looper = Script {
        subscribe: vec!["counter.loop"],
        bump: Some("counter.loop"),
        ..Script::default()
    };
    registry
        .load(looper.spec(manifest("looper", all_permissions(), &[])))
        .await
        .expect("starts");
    set(&home, "counter.loop", "0");
    tokio::time::sleep(Duration::from_secs(5)).await;
    settle().await;
    // One external write, then one reaction per level until the guard refuses the next.
    let final_value: u16 = state_of(&home, "counter.loop")
        .expect("set")
        .parse()
        .expect("a number");
    assert_eq!(final_value, MAX_CONTEXT_DEPTH);
    assert_eq!(home.bus.loop_guard_refusals(), 1);
    let info = registry.get("looper").expect("listed");
    assert_eq!(info.stats.events, u64::from(MAX_CONTEXT_DEPTH) + 1);
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("causal chain"))
    );
    // The chain is bounded: nothing more happens.
    let events_before = home.bus.published();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(home.bus.published(), events_before);
}

#[tokio::test(start_paused = true)]
async fn runtime_and_api_mismatches_are_refused() {
    let registry = PluginRegistry::new(Home::new());
    let mut wasm = to_value(&manifest("wasmy", all_permissions(), &[]));
    wasm["homecore"]["runtime"] = json!("wasm");
    wasm["homecore"]["module"] = json!("wasmy.wasm");
    let wasm = PluginManifest::from_value(wasm).expect("valid");
    let err = registry
        .load(PluginSpec::new(
            wasm.clone(),
            PluginSource::Wasm(Arc::from(&b"\0asm"[..])),
        ))
        .await
        .expect_err("no wasm runtime registered");
    assert!(matches!(err, RegistryError::NoRuntime { .. }), "{err:?}");
    let err = registry
        .load(Script::default().spec({
            let mut m = to_value(&wasm);
            m["domain"] = json!("mismatch");
            PluginManifest::from_value(m).expect("valid")
        }))
        .await
        .expect_err("native code for a wasm manifest");
    assert!(
        matches!(err, RegistryError::RuntimeMismatch { .. }),
        "{err:?}"
    );
    let mut future = to_value(&manifest("future", all_permissions(), &[]));
    future["homecore"]["api_version"] = json!("^2");
    let err = registry
        .load(Script::default().spec(PluginManifest::from_value(future).expect("valid")))
        .await
        .expect_err("needs API 2");
    assert!(err.to_string().contains("requires host API ^2"), "{err}");
}

/// Calls `svc.act` on entity `target` (`light.boom` makes the plugin panic).
async fn act(home: &Home, target: &str) -> bool {
    home.services
        .call(
            "svc",
            "act",
            json!({"entity_id": target}),
            homecore::Context::new(),
        )
        .await
        .is_ok()
}

async fn service_plugin(home: &Home) -> PluginRegistry {
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        service: Some("act"),
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("svc", all_permissions(), &[])))
        .await
        .expect("starts");
    registry
}

#[tokio::test]
async fn failing_service_calls_interleaved_with_successes_never_quarantine() {
    let home = Home::new();
    let registry = service_plugin(&home).await;
    for _ in 0..10 {
        assert!(!act(&home, "light.boom").await);
        assert!(act(&home, "light.fine").await);
    }
    let info = registry.get("svc").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.stats.errors, 10);
    assert_eq!(
        info.health.consecutive_failures, 0,
        "the last call succeeded"
    );
}

#[tokio::test]
async fn five_failing_service_calls_in_a_row_quarantine() {
    let home = Home::new();
    let registry = service_plugin(&home).await;
    assert!(act(&home, "light.fine").await);
    for _ in 0..4 {
        assert!(!act(&home, "light.boom").await);
    }
    assert_eq!(
        registry.get("svc").expect("listed").lifecycle,
        Lifecycle::Running
    );
    assert!(!act(&home, "light.boom").await);
    settle_until(|| {
        registry
            .get("svc")
            .is_some_and(|i| i.lifecycle == Lifecycle::Quarantined)
    })
    .await;
    let info = registry.get("svc").expect("listed");
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("quarantined after 5 consecutive failures")),
        "{:?}",
        info.health.last_error
    );
}

#[tokio::test]
async fn a_service_call_refused_for_the_callers_request_does_not_extend_the_streak() {
    let home = Home::new();
    let registry = service_plugin(&home).await;
    for _ in 0..4 {
        assert!(!act(&home, "light.boom").await);
    }
    for _ in 0..5 {
        // No entity_id: the plugin refuses the request as invalid (the caller's fault).
        let refused = home
            .services
            .call("svc", "act", json!({}), homecore::Context::new())
            .await;
        assert!(refused.is_err());
    }
    let info = registry.get("svc").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.health.consecutive_failures, 4);
    assert_eq!(info.stats.errors, 9);
}

/// Yields (real time, bounded) until `cond` holds; the bound is a safety net, not a timing
/// assertion.
async fn settle_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition never held");
}
