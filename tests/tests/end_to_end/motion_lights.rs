//! The motion-lights integration, loaded through the registry, driven by state writes.

use std::time::Duration;

use homecore::{Attributes, Context, Home};
use homecore_integrations::motion_lights;
use homecore_plugins::{Lifecycle, PluginRegistry};
use homecore_tests::{set, settle, state_of};
use serde_json::json;

async fn start(config: serde_json::Value) -> (Home, PluginRegistry) {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    registry
        .load(
            motion_lights::spec()
                .expect("valid manifest")
                .with_config(config),
        )
        .await
        .expect("motion_lights starts");
    (home, registry)
}

#[tokio::test(start_paused = true)]
async fn motion_turns_the_light_on_and_quiet_turns_it_off() {
    let (home, registry) = start(json!({"quiet_seconds": 30})).await;
    set(&home, "binary_sensor.hall_motion", "on");
    settle().await;
    assert_eq!(state_of(&home, "light.hall").as_deref(), Some("on"));
    assert_eq!(
        state_of(&home, "sensor.hall_motion_activations").as_deref(),
        Some("1")
    );

    set(&home, "binary_sensor.hall_motion", "off");
    settle().await;
    tokio::time::sleep(Duration::from_secs(29)).await;
    settle().await;
    assert_eq!(
        state_of(&home, "light.hall").as_deref(),
        Some("on"),
        "still within the quiet time"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(state_of(&home, "light.hall").as_deref(), Some("off"));

    let light = home.states.get_str("light.hall").expect("exists");
    assert_eq!(light.context().origin.as_deref(), Some("motion_lights"));
    assert!(
        light.context().parent_id.is_some(),
        "a reaction carries its cause"
    );
    let info = registry.get("motion_lights").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    assert_eq!(info.stats.events, 2);
    assert_eq!(info.stats.errors, 0);
}

#[tokio::test(start_paused = true)]
async fn motion_returning_cancels_the_off_timer_and_counts_again() {
    let (home, _registry) = start(json!({"quiet_seconds": 10})).await;
    set(&home, "binary_sensor.kitchen_motion", "on");
    set(&home, "binary_sensor.kitchen_motion", "off");
    settle().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    set(&home, "binary_sensor.kitchen_motion", "on");
    settle().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    settle().await;
    assert_eq!(
        state_of(&home, "light.kitchen").as_deref(),
        Some("on"),
        "the old timer was cancelled"
    );
    assert_eq!(
        state_of(&home, "sensor.kitchen_motion_activations").as_deref(),
        Some("2")
    );
    let sensor = home
        .states
        .get_str("sensor.kitchen_motion_activations")
        .expect("exists");
    assert_eq!(
        sensor.attributes().get("unit_of_measurement"),
        Some(&json!("activations"))
    );
}

#[tokio::test(start_paused = true)]
async fn light_attributes_are_kept_and_other_rooms_ignored() {
    let (home, _registry) = start(json!({"rooms": ["hall"], "quiet_seconds": 1})).await;
    let attrs = Attributes::try_from(json!({"brightness": 77})).expect("object");
    home.states
        .set(
            &"light.hall".parse().expect("valid"),
            "off",
            attrs,
            &Context::new(),
        )
        .expect("valid");
    set(&home, "binary_sensor.hall_motion", "on");
    set(&home, "binary_sensor.garage_motion", "on");
    settle().await;
    let hall = home.states.get_str("light.hall").expect("exists");
    assert_eq!(hall.state(), "on");
    assert_eq!(hall.attributes().get("brightness"), Some(&json!(77)));
    assert_eq!(
        state_of(&home, "light.garage"),
        None,
        "garage is not configured"
    );
}

#[tokio::test(start_paused = true)]
async fn activation_counts_survive_a_reload() {
    let (home, registry) = start(json!({"quiet_seconds": 1})).await;
    set(&home, "binary_sensor.hall_motion", "on");
    set(&home, "binary_sensor.hall_motion", "off");
    settle().await;
    registry.reload("motion_lights").await.expect("reloads");
    set(&home, "binary_sensor.hall_motion", "on");
    settle().await;
    assert_eq!(
        state_of(&home, "sensor.hall_motion_activations").as_deref(),
        Some("2")
    );
}

#[tokio::test(start_paused = true)]
async fn bad_configuration_fails_setup_with_the_path() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let err = registry
        .load(
            motion_lights::spec()
                .expect("valid")
                .with_config(json!({"quiet_seconds": -1})),
        )
        .await
        .expect_err("invalid config");
    assert!(err.to_string().contains("quiet_seconds"), "{err}");
    let info = registry.get("motion_lights").expect("listed");
    assert_eq!(info.lifecycle, Lifecycle::Failed);
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("quiet_seconds"))
    );
}
