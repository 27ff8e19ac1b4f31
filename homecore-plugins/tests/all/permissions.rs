//! Every host call is checked against the plugin's grant; denials are typed, logged, counted.

use std::time::Duration;

use async_trait::async_trait;
use homecore::{Attributes, Home, StateChanged};
use homecore_plugins::{
    HomeCorePlugin, HostAction, HostError, LogLevel, Permissions, PluginContext, PluginError,
    PluginRegistry, PluginSource, PluginSpec, StorageError,
};
use serde_json::{Value, json};

use crate::support::*;

/// Tries every host call in setup and records the outcomes.
struct Prober {
    out: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

fn outcome<T: std::fmt::Debug>(r: Result<T, HostError>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}").chars().take(20).collect(),
        Err(HostError::Denied { action, .. }) => format!("denied {action:?}"),
        Err(other) => format!("error {other}"),
    }
}

#[async_trait]
impl HomeCorePlugin for Prober {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        let mut out = Vec::new();
        let mut record = |name: &str, r: String| out.push((name.to_owned(), r));
        record(
            "read light",
            outcome(ctx.get_state(&id("light.hall")).map(|s| s.is_some())),
        );
        record(
            "read lock",
            outcome(ctx.get_state(&id("lock.front")).map(|s| s.is_some())),
        );
        record(
            "write light",
            outcome(
                ctx.set_state(&id("light.hall"), "on", Attributes::new())
                    .map(|o| o.changed),
            ),
        );
        record(
            "write lock",
            outcome(
                ctx.set_state(&id("lock.front"), "unlocked", Attributes::new())
                    .map(|o| o.changed),
            ),
        );
        record(
            "remove lock",
            outcome(ctx.remove_state(&id("lock.front")).map(|s| s.is_some())),
        );
        record("subscribe light", outcome(ctx.subscribe("light.*")));
        record("subscribe everything", outcome(ctx.subscribe("*")));
        record("subscribe bad glob", outcome(ctx.subscribe("light..x")));
        record(
            "call light",
            outcome(
                ctx.call_service("light", "turn_on", json!({}))
                    .await
                    .map(|_| ()),
            ),
        );
        record(
            "call lock",
            outcome(
                ctx.call_service("lock", "unlock", json!({}))
                    .await
                    .map(|_| ()),
            ),
        );
        record(
            "fire allowed",
            outcome(ctx.fire_event("prober_ping", json!({}))),
        );
        record("fire other", outcome(ctx.fire_event("doorbell", json!({}))));
        record("kv", outcome(ctx.kv_set("k", b"v")));
        record("register own", outcome(ctx.register_service("ok")));
        ctx.log(LogLevel::Info, &"x".repeat(10_000));
        self.out.lock().expect("not poisoned").extend(out);
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        _ctx: &PluginContext,
        _event: &StateChanged,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

fn results(
    out: &std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) -> std::collections::HashMap<String, String> {
    out.lock().expect("not poisoned").iter().cloned().collect()
}

#[tokio::test(start_paused = true)]
async fn only_declared_and_granted_calls_succeed() {
    let home = Home::new();
    set(&home, "lock.front", "locked");
    let registry = PluginRegistry::new(home.clone());
    let out = std::sync::Arc::default();
    let declared = json!({
        "states_read": ["light.*"],
        "states_write": ["light.*"],
        "services": ["light.*"],
        "events": ["prober_*"],
    });
    let probe_out = std::sync::Arc::clone(&out);
    let spec = PluginSpec::new(
        manifest("prober", declared, &[]),
        PluginSource::native(move || Prober {
            out: std::sync::Arc::clone(&probe_out),
        }),
    );
    registry.load(spec).await.expect("starts");
    let r = results(&out);
    assert_eq!(r["read light"], "ok false");
    assert_eq!(r["read lock"], "denied ReadState");
    assert_eq!(r["write light"], "ok true");
    assert_eq!(r["write lock"], "denied WriteState");
    assert_eq!(r["remove lock"], "denied WriteState");
    assert_eq!(r["subscribe light"], "ok ()");
    assert_eq!(r["subscribe everything"], "denied Subscribe");
    assert!(
        r["subscribe bad glob"].starts_with("error"),
        "{}",
        r["subscribe bad glob"]
    );
    assert!(
        r["call light"].contains("not registered"),
        "permitted, but no such service: {}",
        r["call light"]
    );
    assert_eq!(r["call lock"], "denied CallService");
    assert_eq!(r["fire allowed"], "ok ()");
    assert_eq!(r["fire other"], "denied FireEvent");
    assert_eq!(r["kv"], "denied Storage");
    assert_eq!(
        r["register own"], "ok ()",
        "a plugin registers services in its own domain"
    );
    assert_eq!(
        home.states
            .get_str("lock.front")
            .map(|s| s.state().to_owned()),
        Some("locked".into())
    );
    let info = registry.get("prober").expect("listed");
    assert_eq!(info.stats.denied, 7);
    assert!(info.stats.host_calls >= 14);
}

#[tokio::test(start_paused = true)]
async fn the_operator_grant_narrows_the_declaration() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let out = std::sync::Arc::default();
    let probe_out = std::sync::Arc::clone(&out);
    let grant: Permissions =
        serde_json::from_value(json!({"states_read": ["light.*"]})).expect("valid");
    let spec = PluginSpec::new(
        manifest("narrow", all_permissions(), &[]),
        PluginSource::native(move || Prober {
            out: std::sync::Arc::clone(&probe_out),
        }),
    )
    .with_grant(grant);
    registry.load(spec).await.expect("starts");
    let r = results(&out);
    assert_eq!(r["read light"], "ok false");
    assert_eq!(
        r["write light"], "denied WriteState",
        "declared but not granted"
    );
    assert_eq!(r["kv"], "denied Storage");
}

struct Hoarder;

#[async_trait]
impl HomeCorePlugin for Hoarder {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        ctx.kv_set("small", b"fine")?;
        match ctx.kv_set("big", &vec![0u8; 4096]) {
            Err(HostError::Storage(StorageError::QuotaExceeded { quota: 1024, .. })) => {}
            other => {
                return Err(PluginError::config(
                    "",
                    format!("expected quota error, got {other:?}"),
                ));
            }
        }
        assert_eq!(ctx.kv_get("small")?.as_deref(), Some(&b"fine"[..]));
        assert!(ctx.kv_delete("small")?);
        assert!(!ctx.kv_delete("small")?);
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        _ctx: &PluginContext,
        _event: &StateChanged,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn storage_quota_is_enforced() {
    let registry = PluginRegistry::new(Home::new());
    let mut m = to_value(&manifest("hoarder", json!({"storage": true}), &[]));
    m["homecore"]["limits"] = json!({"storage_bytes": 1024});
    let spec = PluginSpec::new(
        homecore_plugins::PluginManifest::from_value(m).expect("valid"),
        PluginSource::native(|| Hoarder),
    );
    registry.load(spec).await.expect("setup asserts the quota");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[test]
fn host_action_names_read_well() {
    assert_eq!(HostAction::WriteState.to_string(), "write state of");
}
