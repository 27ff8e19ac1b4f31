//! What the registry reports for metrics: call-latency histograms per hook, mailbox depth and
//! capacity, quarantines (docs/adr/0011-metrics-and-tracing.md).

use std::time::Duration;

use homecore::Home;
use homecore_plugins::{
    LATENCY_BUCKETS, Lifecycle, PluginHook, PluginManifest, PluginRegistry, SLOW_CALL,
};
use serde_json::json;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn every_call_is_timed_under_its_hook() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        subscribe: vec!["sensor.*"],
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("timed", all_permissions(), &[])))
        .await
        .expect("starts");
    for i in 0..7 {
        set(&home, "sensor.t", &i.to_string());
    }
    settle().await;
    let info = registry.get("timed").expect("listed");
    assert_eq!(info.stats.events, 7);
    let events = info.latency.get(PluginHook::OnStateChanged);
    assert_eq!(events.count(), info.stats.events, "{events:?}");
    assert_eq!(events.buckets.len(), LATENCY_BUCKETS.len() + 1);
    assert_eq!(info.latency.get(PluginHook::Setup).count(), 1);
    assert_eq!(info.latency.get(PluginHook::Teardown).count(), 0);
    assert_eq!(info.latency.get(PluginHook::OnEvent).count(), 0);

    registry.unload("timed").await.expect("unloads");
    // The entry is gone with its counters; its last snapshot said teardown ran once.
    assert!(registry.get("timed").is_none());
}

#[tokio::test(start_paused = true)]
async fn setup_retries_and_service_calls_are_timed_too() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        setup_failures: std::sync::Arc::new(std::sync::Mutex::new(1)),
        service: Some("turn_on"),
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("svc", all_permissions(), &[])))
        .await
        .expect("second attempt works");
    home.services
        .call(
            "svc",
            "turn_on",
            json!({"entity_id": "light.a"}),
            homecore::Context::new(),
        )
        .await
        .expect("service answers");
    let info = registry.get("svc").expect("listed");
    assert_eq!(
        info.latency.get(PluginHook::Setup).count(),
        2,
        "both attempts"
    );
    assert_eq!(
        info.latency.get(PluginHook::Teardown).count(),
        1,
        "after the failed setup"
    );
    assert_eq!(info.latency.get(PluginHook::CallService).count(), 1);
}

/// A lower bound only: the plugin sleeps for real, so the call cannot be faster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_lands_above_the_slow_call_threshold() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let script = Script {
        subscribe: vec!["sensor.*"],
        slow: Some(SLOW_CALL + Duration::from_millis(20)),
        ..Script::default()
    };
    registry
        .load(script.spec(manifest("sloth", all_permissions(), &[])))
        .await
        .expect("starts");
    set(&home, "sensor.s", "1");
    for _ in 0..500 {
        if registry
            .get("sloth")
            .expect("listed")
            .latency
            .get(PluginHook::OnStateChanged)
            .count()
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info = registry.get("sloth").expect("listed");
    let events = info.latency.get(PluginHook::OnStateChanged);
    let slow_from = LATENCY_BUCKETS
        .iter()
        .position(|b| *b >= SLOW_CALL)
        .expect("a bucket at the threshold")
        + 1;
    assert_eq!(events.count(), 1, "{events:?}");
    assert_eq!(
        events.buckets[slow_from..].iter().sum::<u64>(),
        1,
        "{events:?}"
    );
    assert!(events.sum >= SLOW_CALL, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn mailbox_depth_counts_what_waits_and_capacity_is_the_manifests() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let slow = Script {
        subscribe: vec!["sensor.*"],
        slow: Some(Duration::from_secs(1)),
        ..Script::default()
    };
    let mut m = to_value(&manifest("queue", all_permissions(), &[]));
    m["homecore"]["limits"] = json!({"mailbox_capacity": 4});
    registry
        .load(slow.spec(PluginManifest::from_value(m).expect("valid")))
        .await
        .expect("starts");
    assert_eq!(
        registry.get("queue").expect("listed").stats.mailbox_depth,
        0
    );
    for i in 0..10 {
        set(&home, "sensor.q", &i.to_string());
    }
    settle().await;
    // The task took the 4 queued events and is sleeping in the first one.
    let stats = registry.get("queue").expect("listed").stats;
    assert_eq!(stats.mailbox_capacity, 4);
    assert_eq!(stats.events, 1, "{stats:?}");
    assert_eq!(stats.mailbox_depth, 3, "{stats:?}");
    assert_eq!(stats.mailbox_dropped, 6, "{stats:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    settle().await;
    let stats = registry.get("queue").expect("listed").stats;
    assert_eq!((stats.events, stats.mailbox_depth), (4, 0), "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_quarantine_is_counted_and_depth_is_zero_after_it() {
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
    assert_eq!(registry.get("sick").expect("listed").stats.quarantines, 0);
    for i in 0..8 {
        set(&home, &format!("sensor.x{i}"), "bad");
    }
    settle().await;
    let info = registry.get("sick").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Quarantined);
    assert_eq!(info.stats.quarantines, 1);
    assert_eq!(info.stats.errors, 5);
    assert_eq!(
        info.stats.mailbox_depth, 0,
        "nothing waits for a stopped plugin"
    );
    assert_eq!(info.stats.fuel_used, 0, "native plugins burn no fuel");
    assert_eq!(info.latency.get(PluginHook::Teardown).count(), 1);
}
