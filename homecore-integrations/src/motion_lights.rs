//! Motion lights: a light follows its room's motion sensor.
//!
//! When `binary_sensor.<room>_motion` turns `on`, `light.<room>` turns on (its attributes are
//! kept) and `sensor.<room>_motion_activations` counts one more activation (persisted in the
//! plugin's storage, so counts survive reloads). When motion turns `off`, the light turns off
//! after `quiet_seconds` unless motion comes back first (a host timer per room, so the off
//! write runs on the plugin's task and carries the motion event's context as its cause).
//!
//! Configuration (see the JSON Schema in `manifests/motion_lights.json`):
//!
//! ```json
//! { "rooms": ["hall", "kitchen"], "quiet_seconds": 120 }
//! ```
//!
//! `rooms` is optional: without it every `binary_sensor.*_motion` is followed.

use std::time::Duration;

use async_trait::async_trait;
use homecore::{Attributes, EntityId, StateChanged};
use homecore_plugins::{
    HomeCorePlugin, LogLevel, ManifestError, PluginContext, PluginError, PluginManifest,
    PluginSource, PluginSpec,
};
use serde_json::{Value, json};

/// The plugin's manifest.
pub const MANIFEST: &str = include_str!("../manifests/motion_lights.json");

/// Default quiet time before the light turns off.
pub const DEFAULT_QUIET_SECONDS: f64 = 120.0;

/// The spec to load the plugin with (empty configuration; add one with
/// [`PluginSpec::with_config`]).
///
/// # Errors
/// Only if the embedded manifest were invalid (a test guards it).
pub fn spec() -> Result<PluginSpec, ManifestError> {
    Ok(PluginSpec::new(
        PluginManifest::from_slice(MANIFEST.as_bytes())?,
        PluginSource::native(MotionLights::default),
    ))
}

/// The configuration, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionLightsConfig {
    /// Rooms followed; `None` for every room with a motion sensor.
    pub rooms: Option<Vec<String>>,
    /// Quiet time before the light turns off.
    pub quiet: Duration,
}

impl MotionLightsConfig {
    /// Parses the configuration, naming the first bad field.
    ///
    /// # Errors
    /// [`PluginError::Config`] with the field's path.
    pub fn parse(config: &Value) -> Result<Self, PluginError> {
        let empty = serde_json::Map::new();
        let map = match config {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => return Err(PluginError::config("", "configuration must be an object")),
        };
        if let Some(key) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "rooms" | "quiet_seconds"))
        {
            return Err(PluginError::config(key.clone(), "unknown option"));
        }
        let rooms = match map.get("rooms") {
            None => None,
            Some(Value::Array(items)) => {
                let mut rooms = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let room = item.as_str().filter(|r| {
                        EntityId::new(&format!("light.{r}")).is_ok()
                            && EntityId::new(&format!("binary_sensor.{r}_motion")).is_ok()
                    });
                    match room {
                        Some(room) => rooms.push(room.to_owned()),
                        None => {
                            return Err(PluginError::config(
                                format!("rooms[{i}]"),
                                "must be a room name of a-z, 0-9 and '_'",
                            ));
                        }
                    }
                }
                Some(rooms)
            }
            Some(_) => return Err(PluginError::config("rooms", "must be a list of room names")),
        };
        let quiet = match map.get("quiet_seconds") {
            None => DEFAULT_QUIET_SECONDS,
            Some(v) => match v.as_f64() {
                Some(s) if s > 0.0 && s.is_finite() && s <= 86_400.0 * 7.0 => s,
                _ => {
                    return Err(PluginError::config(
                        "quiet_seconds",
                        "must be a number of seconds above 0 and at most a week",
                    ));
                }
            },
        };
        Ok(Self {
            rooms,
            quiet: Duration::from_secs_f64(quiet),
        })
    }
}

/// The plugin.
#[derive(Debug, Default)]
pub struct MotionLights {
    config: Option<MotionLightsConfig>,
    /// Off-timer token of each room seen so far (index + 1 into `rooms`).
    rooms: Vec<String>,
}

fn id(text: &str) -> Result<EntityId, PluginError> {
    EntityId::new(text).map_err(|e| PluginError::Host(e.into()))
}

impl MotionLights {
    fn room_of<'a>(&self, entity_id: &'a EntityId) -> Option<&'a str> {
        if entity_id.domain() != "binary_sensor" {
            return None;
        }
        let room = entity_id.object_id().strip_suffix("_motion")?;
        let config = self.config.as_ref()?;
        match &config.rooms {
            Some(rooms) if !rooms.iter().any(|r| r == room) => None,
            _ => Some(room),
        }
    }

    /// The off-timer token of `room`.
    fn token(&mut self, room: &str) -> u64 {
        let index = match self.rooms.iter().position(|r| r == room) {
            Some(index) => index,
            None => {
                self.rooms.push(room.to_owned());
                self.rooms.len() - 1
            }
        };
        index as u64 + 1
    }

    fn turn_light(ctx: &PluginContext, light: &EntityId, on_off: &str) -> Result<(), PluginError> {
        // Keep the light's attributes (brightness, colour) and change only its state.
        let attributes = ctx
            .get_state(light)?
            .map(|s| s.attributes().clone())
            .unwrap_or_default();
        ctx.set_state(light, on_off, attributes)?;
        Ok(())
    }

    fn count_activation(ctx: &PluginContext, room: &str) -> Result<u64, PluginError> {
        let key = format!("activations:{room}");
        let previous = ctx
            .kv_get(&key)?
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        let count = previous + 1;
        ctx.kv_set(&key, count.to_string().as_bytes())?;
        let sensor = id(&format!("sensor.{room}_motion_activations"))?;
        let attributes = Attributes::try_from(json!({
            "friendly_name": format!("{} motion activations", room.replace('_', " ")),
            "state_class": "total_increasing",
            "unit_of_measurement": "activations",
        }))
        .map_err(|e| PluginError::Host(e.into()))?;
        ctx.set_state(&sensor, &count.to_string(), attributes)?;
        Ok(count)
    }
}

#[async_trait]
impl HomeCorePlugin for MotionLights {
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError> {
        let config = MotionLightsConfig::parse(config)?;
        match &config.rooms {
            Some(rooms) => {
                for room in rooms {
                    ctx.subscribe(&format!("binary_sensor.{room}_motion"))?;
                }
            }
            None => ctx.subscribe("binary_sensor.*_motion")?,
        }
        ctx.log(
            LogLevel::Info,
            &format!(
                "following {} with a quiet time of {:?}",
                config
                    .rooms
                    .as_ref()
                    .map_or_else(|| "every room".to_owned(), |r| r.join(", ")),
                config.quiet
            ),
        );
        self.config = Some(config);
        Ok(())
    }

    async fn on_timer(&mut self, ctx: &PluginContext, token: u64) -> Result<(), PluginError> {
        let Some(room) = usize::try_from(token)
            .ok()
            .and_then(|t| t.checked_sub(1))
            .and_then(|i| self.rooms.get(i))
        else {
            return Ok(());
        };
        let light = id(&format!("light.{room}"))?;
        Self::turn_light(ctx, &light, "off")
    }

    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &StateChanged,
    ) -> Result<(), PluginError> {
        let Some(room) = self.room_of(&event.entity_id) else {
            return Ok(());
        };
        let room = room.to_owned();
        let was_on = event.old_state.as_ref().is_some_and(|s| s.state() == "on");
        let now = event.new_state.as_ref().map(|s| s.state());
        let light = id(&format!("light.{room}"))?;
        let token = self.token(&room);
        match now {
            Some("on") => {
                ctx.cancel_timer(token);
                if !was_on {
                    Self::turn_light(ctx, &light, "on")?;
                    Self::count_activation(ctx, &room)?;
                }
            }
            Some("off") if was_on => {
                let quiet = self
                    .config
                    .as_ref()
                    .map_or(Duration::from_secs_f64(DEFAULT_QUIET_SECONDS), |c| c.quiet);
                ctx.start_timer(token, quiet)?;
            }
            // Unavailable, unknown or removed sensors leave the light as it is.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_manifest_is_valid() {
        let spec = spec().expect("valid manifest");
        assert_eq!(spec.manifest.domain, "motion_lights");
    }

    #[test]
    fn config_defaults_and_errors() {
        let c = MotionLightsConfig::parse(&Value::Null).expect("defaults");
        assert_eq!(c.quiet, Duration::from_secs(120));
        assert_eq!(c.rooms, None);
        let c = MotionLightsConfig::parse(&json!({"rooms": ["hall"], "quiet_seconds": 0.5}))
            .expect("valid");
        assert_eq!(c.rooms, Some(vec!["hall".to_owned()]));
        assert_eq!(c.quiet, Duration::from_millis(500));
        for (bad, path) in [
            (json!({"quiet_seconds": 0}), "quiet_seconds"),
            (json!({"quiet_seconds": "1"}), "quiet_seconds"),
            (json!({"rooms": ["Hall"]}), "rooms[0]"),
            (json!({"rooms": "hall"}), "rooms"),
            (json!({"colour": 1}), "colour"),
        ] {
            match MotionLightsConfig::parse(&bad) {
                Err(PluginError::Config { path: p, .. }) => assert_eq!(p, path, "{bad}"),
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
    }
}
