//! The reference WASM plugin beside the native motion-lights plugin: same events, same results.

use std::sync::Arc;
use std::time::Duration;

use homecore::{Attributes, Context, Home};
use homecore_integrations::motion_lights;
use homecore_plugins::{
    Lifecycle, PluginManifest, PluginRegistry, PluginSource, PluginSpec, WasmtimeConfig,
    WasmtimeRuntime,
};
use homecore_tests::guest::{example_manifest, example_wasm};
use homecore_tests::{set, state_of};
use serde_json::{Value, json};

fn wasm_spec(config: Value) -> PluginSpec {
    let manifest =
        PluginManifest::parse(&example_manifest()).expect("the example's manifest is valid");
    PluginSpec::new(manifest, PluginSource::Wasm(Arc::from(example_wasm()))).with_config(config)
}

pub(super) fn registry(home: &Home) -> PluginRegistry {
    let wasm = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
    PluginRegistry::builder(home.clone())
        .runtime(Arc::new(wasm))
        .build()
}

/// Every state except the sensors written by the test itself, as comparable JSON (timestamps
/// and contexts differ between two homes, so they are left out; `origin` is compared apart).
fn snapshot(home: &Home) -> Vec<(String, String, Value)> {
    let mut states: Vec<_> = home
        .states
        .all()
        .iter()
        .filter(|s| s.entity_id().domain() != "binary_sensor")
        .map(|s| {
            (
                s.entity_id().to_string(),
                s.state().to_owned(),
                Value::Object(s.attributes().as_map().clone()),
            )
        })
        .collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    states
}

pub(super) async fn wait_until(home: &Home, entity: &str, state: &str) {
    // Generous: CI machines are slow and busy; the loop ends as soon as the state is there.
    for _ in 0..4000 {
        if state_of(home, entity).as_deref() == Some(state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "{entity} never became {state}: {:?}",
        state_of(home, entity)
    );
}

/// Drives one home through a script of motion events, snapshotting after each step.
async fn drive(home: &Home) -> Vec<Vec<(String, String, Value)>> {
    let attrs = Attributes::try_from(json!({"brightness": 120, "color_mode": "brightness"}))
        .expect("object");
    home.states
        .set(
            &"light.kitchen".parse().expect("valid"),
            "off",
            attrs,
            &Context::new(),
        )
        .expect("valid");
    let mut snaps = Vec::new();
    set(home, "binary_sensor.hall_motion", "on");
    wait_until(home, "light.hall", "on").await;
    wait_until(home, "sensor.hall_motion_activations", "1").await;
    snaps.push(snapshot(home));
    set(home, "binary_sensor.kitchen_motion", "on");
    wait_until(home, "light.kitchen", "on").await;
    set(home, "binary_sensor.hall_motion", "off");
    wait_until(home, "light.hall", "off").await;
    snaps.push(snapshot(home));
    set(home, "binary_sensor.hall_motion", "on");
    wait_until(home, "sensor.hall_motion_activations", "2").await;
    set(home, "binary_sensor.kitchen_motion", "off");
    set(home, "binary_sensor.kitchen_motion", "on");
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_until(home, "light.kitchen", "on").await;
    wait_until(home, "sensor.kitchen_motion_activations", "2").await;
    snaps.push(snapshot(home));
    snaps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_and_native_motion_lights_produce_the_same_home() {
    let config = json!({"quiet_seconds": 0.15});

    let native_home = Home::new();
    let native = registry(&native_home);
    native
        .load(
            motion_lights::spec()
                .expect("valid")
                .with_config(config.clone()),
        )
        .await
        .expect("native starts");
    let native_snaps = drive(&native_home).await;

    let wasm_home = Home::new();
    let wasm = registry(&wasm_home);
    wasm.load(wasm_spec(config)).await.expect("wasm starts");
    let wasm_snaps = drive(&wasm_home).await;

    assert_eq!(native_snaps, wasm_snaps, "same events, same home");
    let light = wasm_home.states.get_str("light.kitchen").expect("exists");
    assert_eq!(
        light.attributes().get("brightness"),
        Some(&json!(120)),
        "attributes kept"
    );
    assert_eq!(
        light.context().origin.as_deref(),
        Some("motion_lights_wasm")
    );
    assert!(
        light.context().parent_id.is_some(),
        "the reaction carries its cause"
    );
    let info = wasm.get("motion_lights_wasm").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.stats.errors, 0, "{info:?}");
    assert_eq!(info.stats.denied, 0, "{info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_plugins_run_side_by_side_in_one_home() {
    let home = Home::new();
    let registry = registry(&home);
    let report = registry
        .load_all(vec![
            motion_lights::spec()
                .expect("valid")
                .with_config(json!({"rooms": ["hall"], "quiet_seconds": 0.1})),
            wasm_spec(json!({"rooms": ["kitchen"], "quiet_seconds": 0.1})),
        ])
        .await;
    assert_eq!(report.started().len(), 2, "{report:?}");
    for _ in 0..3 {
        set(&home, "binary_sensor.hall_motion", "on");
        set(&home, "binary_sensor.kitchen_motion", "on");
        wait_until(&home, "light.hall", "on").await;
        wait_until(&home, "light.kitchen", "on").await;
        set(&home, "binary_sensor.hall_motion", "off");
        set(&home, "binary_sensor.kitchen_motion", "off");
        wait_until(&home, "light.hall", "off").await;
        wait_until(&home, "light.kitchen", "off").await;
    }
    assert_eq!(
        state_of(&home, "sensor.hall_motion_activations").as_deref(),
        Some("3")
    );
    assert_eq!(
        state_of(&home, "sensor.kitchen_motion_activations").as_deref(),
        Some("3")
    );
    assert_eq!(
        home.states
            .get_str("light.hall")
            .and_then(|s| s.context().origin.clone())
            .as_deref(),
        Some("motion_lights")
    );
    assert_eq!(
        home.states
            .get_str("light.kitchen")
            .and_then(|s| s.context().origin.clone())
            .as_deref(),
        Some("motion_lights_wasm")
    );
    // Reload keeps the WASM plugin's storage: counts continue.
    registry
        .reload("motion_lights_wasm")
        .await
        .expect("reloads");
    set(&home, "binary_sensor.kitchen_motion", "on");
    wait_until(&home, "sensor.kitchen_motion_activations", "4").await;
    registry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasm_example_survives_a_million_events() {
    // The published alpha's example corrupted its own memory after ~10,000 events; the SDK's
    // allocator must stay sound for long runs.
    let home = Home::new();
    let registry = registry(&home);
    registry
        .load(wasm_spec(json!({"rooms": ["hall"], "quiet_seconds": 3600})))
        .await
        .expect("starts");
    set(&home, "binary_sensor.hall_motion", "on");
    wait_until(&home, "light.hall", "on").await;
    let total: u64 = 1_000_000;
    let delivered = |registry: &PluginRegistry| {
        registry
            .get("motion_lights_wasm")
            .map_or(0, |p| p.stats.events)
    };
    let id = "binary_sensor.hall_motion".parse().expect("valid");
    let ctx = Context::new();
    for i in 0..total {
        // "on" → "on" with new attributes: the guest parses every event (allocating and
        // freeing its buffers) and leaves the light alone.
        let attrs = Attributes::try_from(json!({"n": i})).expect("object");
        home.states.set(&id, "on", attrs, &ctx).expect("valid");
        // Stay within the mailbox (4,096): this test is about the guest, not about drops.
        if i % 1024 == 1023 {
            while delivered(&registry) + 2048 < i {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    while delivered(&registry) < total + 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let info = registry.get("motion_lights_wasm").expect("listed");
    assert_eq!(info.stats.errors, 0, "{info:?}");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.stats.mailbox_dropped, 0, "{info:?}");
    assert_eq!(info.stats.events, total + 1, "{info:?}");
    // Still fully functional afterwards.
    set(&home, "binary_sensor.hall_motion", "off");
    set(&home, "binary_sensor.hall_motion", "on");
    wait_until(&home, "sensor.hall_motion_activations", "2").await;
}
