//! `input_boolean`: switches a person flips, as Home Assistant's helper of the same name.
//!
//! Each configured entity is `input_boolean.<object_id>` with state `on` or `off` and Home
//! Assistant's attributes (`editable`, `icon`, `friendly_name`). Services, each taking
//! `entity_id` (a string, comma-separated ids, a list, or `"all"`):
//! `input_boolean.turn_on`, `input_boolean.turn_off`, `input_boolean.toggle`.
//!
//! Configuration (see the JSON Schema in `manifests/input_boolean.json`), keyed by object id:
//!
//! ```json
//! { "guest_mode": { "name": "Guest mode", "initial": false, "icon": "mdi:account" } }
//! ```
//!
//! An empty configuration (null or `{}`) declares [`default_config`]: `input_boolean.guest_mode`
//! and `input_boolean.vacation_mode`. The start state is `initial` when given, else the state
//! stored when it last changed (plugin storage), else `off`.

use async_trait::async_trait;
use homecore::{Attributes, EntityId, ServiceCall};
use homecore_plugins::{
    HomeCorePlugin, ManifestError, PluginContext, PluginError, PluginManifest, PluginSource,
    PluginSpec,
};
use serde_json::{Map, Value, json};

use crate::helper;
pub use crate::helper::TargetError;

/// The plugin's manifest.
pub const MANIFEST: &str = include_str!("../manifests/input_boolean.json");

/// The helper's domain.
pub const DOMAIN: &str = "input_boolean";

/// The spec to load the plugin with (empty configuration, so [`default_config`]; add one with
/// [`PluginSpec::with_config`]).
///
/// # Errors
/// Only if the embedded manifest were invalid (a test guards it).
pub fn spec() -> Result<PluginSpec, ManifestError> {
    Ok(PluginSpec::new(
        PluginManifest::from_slice(MANIFEST.as_bytes())?,
        PluginSource::native(InputBoolean::default),
    ))
}

/// The entities declared when the configuration is empty.
#[must_use]
pub fn default_config() -> Value {
    json!({
        "guest_mode": {"name": "Guest mode", "initial": false, "icon": "mdi:account"},
        "vacation_mode": {"name": "Vacation mode", "icon": "mdi:airplane"},
    })
}

/// Why an `input_boolean` service call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputBooleanError {
    /// The call's target is unusable (missing, malformed or unknown entity, extra field).
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// One configured entity.
#[derive(Debug, Clone, PartialEq)]
pub struct BooleanEntity {
    /// `input_boolean.<object_id>`.
    pub entity_id: EntityId,
    /// Display name (`friendly_name`).
    pub name: String,
    /// The `initial` option.
    pub initial: Option<bool>,
    /// The `icon` option (`mdi:account`).
    pub icon: Option<String>,
}

impl BooleanEntity {
    fn attributes(&self) -> Attributes {
        let mut map = Map::new();
        map.insert("editable".into(), Value::Bool(false));
        if let Some(icon) = &self.icon {
            map.insert("icon".into(), Value::String(icon.clone()));
        }
        map.insert("friendly_name".into(), Value::String(self.name.clone()));
        Attributes::from(map)
    }
}

/// Parses the configuration, naming the first bad field by its path (`guest_mode.initial`).
///
/// # Errors
/// [`PluginError::Config`] with the path.
pub fn parse_config(config: &Value) -> Result<Vec<BooleanEntity>, PluginError> {
    let mut out = Vec::new();
    for (entity_id, options) in helper::entries(DOMAIN, config, default_config)? {
        let object_id = entity_id.object_id().to_owned();
        helper::check_keys(&object_id, &options, &["name", "initial", "icon"])?;
        let initial = match options.get("initial") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                return Err(PluginError::config(
                    format!("{object_id}.initial"),
                    "must be true or false",
                ));
            }
        };
        out.push(BooleanEntity {
            name: helper::display_name(
                &object_id,
                helper::text_option(&object_id, &options, "name")?,
            ),
            icon: helper::text_option(&object_id, &options, "icon")?,
            initial,
            entity_id,
        });
    }
    Ok(out)
}

/// The plugin.
#[derive(Debug, Default)]
pub struct InputBoolean {
    entities: Vec<BooleanEntity>,
    ids: Vec<EntityId>,
    on: Vec<bool>,
}

fn storage_key(id: &EntityId) -> String {
    format!("state:{}", id.object_id())
}

impl InputBoolean {
    fn write(&mut self, ctx: &PluginContext, index: usize, on: bool) -> Result<(), PluginError> {
        self.on[index] = on;
        let entity = &self.entities[index];
        ctx.set_state(
            &entity.entity_id,
            if on { "on" } else { "off" },
            entity.attributes(),
        )?;
        ctx.kv_set(
            &storage_key(&entity.entity_id),
            if on { b"on" } else { b"off" },
        )?;
        Ok(())
    }
}

#[async_trait]
impl HomeCorePlugin for InputBoolean {
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError> {
        let entities = parse_config(config)?;
        self.ids = entities.iter().map(|e| e.entity_id.clone()).collect();
        self.on = vec![false; entities.len()];
        self.entities = entities;
        for index in 0..self.entities.len() {
            let entity = &self.entities[index];
            let on = match entity.initial {
                Some(on) => on,
                None => ctx
                    .kv_get(&storage_key(&entity.entity_id))?
                    .is_some_and(|v| v == b"on"),
            };
            self.write(ctx, index, on)?;
        }
        helper::register_services(ctx, &["turn_on", "turn_off", "toggle"])
    }

    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        let targets = helper::targets(call, &self.ids, &[])
            .map_err(|e| PluginError::other(InputBooleanError::from(e)))?;
        for index in targets {
            let on = match call.name.service() {
                "turn_on" => true,
                "turn_off" => false,
                "toggle" => !self.on[index],
                _ => {
                    return Err(PluginError::UnknownService {
                        service: call.name.to_string(),
                    });
                }
            };
            self.write(ctx, index, on)?;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_is_valid() {
        let spec = spec().expect("valid manifest");
        assert_eq!(spec.manifest.domain, DOMAIN);
    }

    #[test]
    fn config_defaults_and_options() {
        let defaults = parse_config(&Value::Null).expect("defaults");
        assert_eq!(defaults.len(), 2);
        let guest = &defaults[0];
        assert_eq!(guest.entity_id.as_str(), "input_boolean.guest_mode");
        assert_eq!(guest.initial, Some(false));
        assert_eq!(
            serde_json::to_value(guest.attributes()).expect("json"),
            json!({"editable": false, "icon": "mdi:account", "friendly_name": "Guest mode"})
        );
        let one = parse_config(&json!({"night_light": null})).expect("valid");
        assert_eq!(one[0].name, "Night light");
        assert_eq!(one[0].icon, None);
    }

    #[test]
    fn config_errors_name_their_path() {
        for (bad, path) in [
            (json!({"guest": {"initial": "yes"}}), "guest.initial"),
            (json!({"guest": {"name": 3}}), "guest.name"),
            (json!({"guest": {"icon": "x".repeat(300)}}), "guest.icon"),
            (json!({"guest": {"colour": "red"}}), "guest.colour"),
            (json!({"Guest": {}}), "Guest"),
            (json!("guest"), ""),
        ] {
            match parse_config(&bad) {
                Err(PluginError::Config { path: p, .. }) => assert_eq!(p, path, "{bad}"),
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
    }
}
