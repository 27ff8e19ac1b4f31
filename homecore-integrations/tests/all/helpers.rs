//! `input_boolean` and `input_number` loaded into a registry and driven through the service
//! registry, as the APIs drive them.

use homecore::{Context, Home, ServiceError};
use homecore_integrations::input_boolean::{self, InputBooleanError, TargetError};
use homecore_integrations::input_number::{self, InputNumberError};
use homecore_plugins::{PluginError, PluginRegistry};
use serde_json::{Value, json};

fn state(home: &Home, id: &str) -> Option<String> {
    home.states.get_str(id).map(|s| s.state().to_owned())
}

async fn call(
    home: &Home,
    domain: &str,
    service: &str,
    data: Value,
) -> Result<Vec<String>, ServiceError> {
    let response = home
        .services
        .call(domain, service, data, Context::new())
        .await?;
    Ok(response
        .changed_states
        .iter()
        .map(|s| format!("{}={}", s.entity_id(), s.state()))
        .collect())
}

/// The plugin's own error inside a failed service call.
fn plugin_error(err: &ServiceError) -> &(dyn std::error::Error + Send + Sync + 'static) {
    let ServiceError::Failed { source, .. } = err else {
        panic!("expected a failed call, got {err}");
    };
    match source.downcast_ref::<PluginError>() {
        Some(PluginError::Other(inner)) => &**inner,
        other => panic!("expected the plugin's own error, got {other:?}"),
    }
}

#[tokio::test]
async fn input_boolean_defaults_services_and_typed_errors() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    registry
        .load(input_boolean::spec().expect("spec"))
        .await
        .expect("loads");
    assert_eq!(
        state(&home, "input_boolean.guest_mode").as_deref(),
        Some("off")
    );
    assert_eq!(
        state(&home, "input_boolean.vacation_mode").as_deref(),
        Some("off")
    );
    let guest = home
        .states
        .get_str("input_boolean.guest_mode")
        .expect("exists");
    assert_eq!(
        serde_json::to_value(guest.attributes()).expect("json"),
        json!({"editable": false, "icon": "mdi:account", "friendly_name": "Guest mode"})
    );

    let changed = call(
        &home,
        "input_boolean",
        "turn_on",
        json!({"entity_id": "input_boolean.guest_mode"}),
    )
    .await
    .expect("ok");
    assert_eq!(changed, ["input_boolean.guest_mode=on"]);
    let changed = call(
        &home,
        "input_boolean",
        "toggle",
        json!({"entity_id": "all"}),
    )
    .await
    .expect("ok");
    assert_eq!(
        changed,
        [
            "input_boolean.guest_mode=off",
            "input_boolean.vacation_mode=on"
        ]
    );
    let changed = call(
        &home,
        "input_boolean",
        "turn_off",
        json!({"entity_id": ["input_boolean.vacation_mode"]}),
    )
    .await
    .expect("ok");
    assert_eq!(changed, ["input_boolean.vacation_mode=off"]);

    let err = call(
        &home,
        "input_boolean",
        "turn_on",
        json!({"entity_id": "input_boolean.nope"}),
    )
    .await
    .expect_err("unknown entity");
    assert!(matches!(
        plugin_error(&err).downcast_ref::<InputBooleanError>(),
        Some(InputBooleanError::Target(TargetError::UnknownEntity { .. }))
    ));
    let err = call(&home, "input_boolean", "turn_on", json!({}))
        .await
        .expect_err("no target");
    assert!(matches!(
        plugin_error(&err).downcast_ref::<InputBooleanError>(),
        Some(InputBooleanError::Target(
            TargetError::MissingEntityId { .. }
        ))
    ));
}

#[tokio::test]
async fn input_boolean_restores_the_last_state_unless_initial_is_set() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let config = json!({"porch": {"name": "Porch"}, "alarm": {"initial": true}});
    registry
        .load(input_boolean::spec().expect("spec").with_config(config))
        .await
        .expect("loads");
    assert_eq!(state(&home, "input_boolean.alarm").as_deref(), Some("on"));
    call(
        &home,
        "input_boolean",
        "toggle",
        json!({"entity_id": "input_boolean.porch, input_boolean.alarm"}),
    )
    .await
    .expect("ok");
    registry.reload("input_boolean").await.expect("reloads");
    assert_eq!(
        state(&home, "input_boolean.porch").as_deref(),
        Some("on"),
        "restored"
    );
    assert_eq!(
        state(&home, "input_boolean.alarm").as_deref(),
        Some("on"),
        "initial wins"
    );
}

#[tokio::test]
async fn input_number_ranges_steps_and_typed_errors() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    registry
        .load(input_number::spec().expect("spec"))
        .await
        .expect("loads");
    let id = "input_number.target_temperature";
    assert_eq!(state(&home, id).as_deref(), Some("20.0"));
    let target = json!({"entity_id": id});

    assert_eq!(
        call(&home, "input_number", "increment", target.clone())
            .await
            .expect("ok"),
        [format!("{id}=20.5")]
    );
    call(&home, "input_number", "decrement", target.clone())
        .await
        .expect("ok");
    call(
        &home,
        "input_number",
        "set_value",
        json!({"entity_id": id, "value": 30}),
    )
    .await
    .expect("ok");
    assert_eq!(state(&home, id).as_deref(), Some("30.0"));

    let err = call(&home, "input_number", "increment", target.clone())
        .await
        .expect_err("above max");
    assert_eq!(
        plugin_error(&err).downcast_ref::<InputNumberError>(),
        Some(&InputNumberError::OutOfRange {
            entity_id: id.parse().expect("valid"),
            value: 30.5,
            min: 5.0,
            max: 30.0,
        })
    );
    assert_eq!(
        state(&home, id).as_deref(),
        Some("30.0"),
        "a refused call changes nothing"
    );
    let err = call(
        &home,
        "input_number",
        "set_value",
        json!({"entity_id": id, "value": "hot"}),
    )
    .await
    .expect_err("not a number");
    assert!(matches!(
        plugin_error(&err).downcast_ref::<InputNumberError>(),
        Some(InputNumberError::NotANumber { .. })
    ));
    let err = call(&home, "input_number", "set_value", json!({"entity_id": id}))
        .await
        .expect_err("no value");
    assert_eq!(
        plugin_error(&err).downcast_ref::<InputNumberError>(),
        Some(&InputNumberError::MissingValue)
    );
    let err = call(
        &home,
        "input_number",
        "increment",
        json!({"entity_id": id, "value": 1}),
    )
    .await
    .expect_err("increment takes no value");
    assert!(matches!(
        plugin_error(&err).downcast_ref::<InputNumberError>(),
        Some(InputNumberError::Target(
            TargetError::UnexpectedField { .. }
        ))
    ));
}

#[tokio::test]
async fn a_bad_input_number_config_fails_the_load_with_its_path() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let config = json!({"level": {"min": 10, "max": 1}});
    let err = registry
        .load(input_number::spec().expect("spec").with_config(config))
        .await
        .expect_err("refused");
    let text = format!("{err:#}");
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    let mut found = false;
    while let Some(e) = source {
        if let Some(PluginError::Config { path, .. }) = e.downcast_ref::<PluginError>() {
            assert_eq!(path, "level.max");
            found = true;
        }
        source = e.source();
    }
    assert!(found || text.contains("level.max"), "{text}");
    assert!(home.states.get_str("input_number.level").is_none());
}
