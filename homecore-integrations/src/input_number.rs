//! `input_number`: numbers a person sets, as Home Assistant's helper of the same name.
//!
//! Each configured entity is `input_number.<object_id>` whose state is its value written as
//! Home Assistant writes a float (`20.0`, `20.5`), with Home Assistant's attributes
//! (`initial`, `editable`, `min`, `max`, `step`, `mode`, `unit_of_measurement`, `icon`,
//! `friendly_name`). Services, each taking `entity_id` (a string, comma-separated ids, a list,
//! or `"all"`):
//!
//! - `input_number.set_value` with `value` (a number or a numeric string, as HA's
//!   `vol.Coerce(float)`), refused outside `min..=max`;
//! - `input_number.increment` / `input_number.decrement` by `step`, refused when the result
//!   would leave `min..=max` (the value stays).
//!
//! Configuration (see the JSON Schema in `manifests/input_number.json`), keyed by object id:
//!
//! ```json
//! { "target_temperature": { "name": "Target temperature", "min": 5, "max": 30, "step": 0.5,
//!   "initial": 20, "mode": "slider", "unit_of_measurement": "°C", "icon": "mdi:thermometer" } }
//! ```
//!
//! `min` and `max` are required (`max` above `min`); `step` defaults to 1, `mode` to `slider`.
//! An empty configuration (null or `{}`) declares [`default_config`]. The start value is
//! `initial` when given, else the value stored when it last changed (plugin storage) if still
//! in range, else `min`.

use async_trait::async_trait;
use homecore::{Attributes, EntityId, ServiceCall, json_type_name};
use homecore_plugins::{
    HomeCorePlugin, ManifestError, PluginContext, PluginError, PluginManifest, PluginSource,
    PluginSpec,
};
use serde_json::{Map, Value, json};

use crate::helper;
pub use crate::helper::TargetError;

/// The plugin's manifest.
pub const MANIFEST: &str = include_str!("../manifests/input_number.json");

/// The helper's domain.
pub const DOMAIN: &str = "input_number";

/// The smallest `step` accepted.
pub const MIN_STEP: f64 = 0.001;

/// The spec to load the plugin with (empty configuration, so [`default_config`]; add one with
/// [`PluginSpec::with_config`]).
///
/// # Errors
/// Only if the embedded manifest were invalid (a test guards it).
pub fn spec() -> Result<PluginSpec, ManifestError> {
    Ok(PluginSpec::new(
        PluginManifest::from_slice(MANIFEST.as_bytes())?,
        PluginSource::native(InputNumber::default),
    ))
}

/// The entities declared when the configuration is empty.
#[must_use]
pub fn default_config() -> Value {
    json!({
        "target_temperature": {
            "name": "Target temperature",
            "min": 5,
            "max": 30,
            "step": 0.5,
            "initial": 20,
            "mode": "slider",
            "unit_of_measurement": "°C",
            "icon": "mdi:thermometer",
        },
    })
}

/// Why an `input_number` service call was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputNumberError {
    /// The call's target is unusable (missing, malformed or unknown entity, extra field).
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `set_value` without a `value`.
    #[error("input_number.set_value needs a value")]
    MissingValue,
    /// `value` is not a finite number or a string holding one.
    #[error("value {value} is not a number")]
    NotANumber {
        /// The JSON given (capped at 64 characters).
        value: String,
    },
    /// The new value would leave the entity's range.
    #[error("invalid value for {entity_id}: {value} (range {min} - {max})")]
    OutOfRange {
        /// The entity.
        entity_id: EntityId,
        /// The refused value.
        value: f64,
        /// The entity's minimum.
        min: f64,
        /// The entity's maximum.
        max: f64,
    },
}

/// How a front end shows the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A slider (the default).
    #[default]
    Slider,
    /// An input box.
    Box,
}

impl Mode {
    /// As Home Assistant writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slider => "slider",
            Self::Box => "box",
        }
    }
}

/// One configured entity.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberEntity {
    /// `input_number.<object_id>`.
    pub entity_id: EntityId,
    /// Display name (`friendly_name`).
    pub name: String,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Increment and decrement step.
    pub step: f64,
    /// The `initial` option.
    pub initial: Option<f64>,
    /// Slider or box.
    pub mode: Mode,
    /// Unit (`°C`).
    pub unit_of_measurement: Option<String>,
    /// Icon (`mdi:thermometer`).
    pub icon: Option<String>,
}

/// A float as Home Assistant (Python's `str(float)`) writes it: `20.0`, `20.5`, `0.1`.
#[must_use]
pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e16 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

impl NumberEntity {
    fn attributes(&self) -> Attributes {
        let mut map = Map::new();
        map.insert("initial".into(), self.initial.map_or(Value::Null, number));
        map.insert("editable".into(), Value::Bool(false));
        map.insert("min".into(), number(self.min));
        map.insert("max".into(), number(self.max));
        map.insert("step".into(), number(self.step));
        map.insert("mode".into(), Value::String(self.mode.as_str().into()));
        if let Some(unit) = &self.unit_of_measurement {
            map.insert("unit_of_measurement".into(), Value::String(unit.clone()));
        }
        if let Some(icon) = &self.icon {
            map.insert("icon".into(), Value::String(icon.clone()));
        }
        map.insert("friendly_name".into(), Value::String(self.name.clone()));
        Attributes::from(map)
    }

    fn check(&self, value: f64) -> Result<f64, InputNumberError> {
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(InputNumberError::OutOfRange {
                entity_id: self.entity_id.clone(),
                value,
                min: self.min,
                max: self.max,
            })
        }
    }
}

fn number_option(
    object_id: &str,
    options: &Map<String, Value>,
    key: &str,
) -> Result<Option<f64>, PluginError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(PluginError::config(
                format!("{object_id}.{key}"),
                "must be a finite number",
            )),
        },
        Some(other) => Err(PluginError::config(
            format!("{object_id}.{key}"),
            format!("must be a number, found {}", json_type_name(other)),
        )),
    }
}

/// Parses the configuration, naming the first bad field by its path (`target_temperature.max`).
///
/// # Errors
/// [`PluginError::Config`] with the path.
pub fn parse_config(config: &Value) -> Result<Vec<NumberEntity>, PluginError> {
    let mut out = Vec::new();
    for (entity_id, options) in helper::entries(DOMAIN, config, default_config)? {
        let object_id = entity_id.object_id().to_owned();
        helper::check_keys(
            &object_id,
            &options,
            &[
                "name",
                "min",
                "max",
                "step",
                "initial",
                "mode",
                "unit_of_measurement",
                "icon",
            ],
        )?;
        let required = |key: &str| -> Result<f64, PluginError> {
            number_option(&object_id, &options, key)?
                .ok_or_else(|| PluginError::config(format!("{object_id}.{key}"), "is required"))
        };
        let min = required("min")?;
        let max = required("max")?;
        if max <= min {
            return Err(PluginError::config(
                format!("{object_id}.max"),
                format!("maximum ({max}) is not greater than minimum ({min})"),
            ));
        }
        let step = number_option(&object_id, &options, "step")?.unwrap_or(1.0);
        if step < MIN_STEP {
            return Err(PluginError::config(
                format!("{object_id}.step"),
                format!("must be at least {MIN_STEP}"),
            ));
        }
        let initial = number_option(&object_id, &options, "initial")?;
        if let Some(initial) = initial
            && !(min..=max).contains(&initial)
        {
            return Err(PluginError::config(
                format!("{object_id}.initial"),
                format!("initial value {initial} not in range {min}-{max}"),
            ));
        }
        let mode = match options.get("mode") {
            None | Some(Value::Null) => Mode::default(),
            Some(Value::String(s)) if s == "slider" => Mode::Slider,
            Some(Value::String(s)) if s == "box" => Mode::Box,
            Some(_) => {
                return Err(PluginError::config(
                    format!("{object_id}.mode"),
                    "must be \"slider\" or \"box\"",
                ));
            }
        };
        out.push(NumberEntity {
            name: helper::display_name(
                &object_id,
                helper::text_option(&object_id, &options, "name")?,
            ),
            unit_of_measurement: helper::text_option(&object_id, &options, "unit_of_measurement")?,
            icon: helper::text_option(&object_id, &options, "icon")?,
            min,
            max,
            step,
            initial,
            mode,
            entity_id,
        });
    }
    Ok(out)
}

/// The `value` of a `set_value` call: a finite number, or a string holding one.
fn value_of(data: &Map<String, Value>) -> Result<f64, InputNumberError> {
    let value = data.get("value").ok_or(InputNumberError::MissingValue)?;
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed
        .filter(|v| v.is_finite())
        .ok_or_else(|| InputNumberError::NotANumber {
            value: value.to_string().chars().take(64).collect(),
        })
}

/// The plugin.
#[derive(Debug, Default)]
pub struct InputNumber {
    entities: Vec<NumberEntity>,
    ids: Vec<EntityId>,
    values: Vec<f64>,
}

fn storage_key(id: &EntityId) -> String {
    format!("value:{}", id.object_id())
}

impl InputNumber {
    fn write(&mut self, ctx: &PluginContext, index: usize, value: f64) -> Result<(), PluginError> {
        self.values[index] = value;
        let entity = &self.entities[index];
        let text = format_value(value);
        ctx.set_state(&entity.entity_id, &text, entity.attributes())?;
        ctx.kv_set(&storage_key(&entity.entity_id), text.as_bytes())?;
        Ok(())
    }

    /// The new value of entity `index` for `call`.
    fn next_value(
        &self,
        index: usize,
        call: &ServiceCall,
        value: Option<f64>,
    ) -> Result<f64, PluginError> {
        let entity = &self.entities[index];
        let current = self.values[index];
        let next = match (call.name.service(), value) {
            ("set_value", Some(value)) => value,
            ("increment", _) => current + entity.step,
            ("decrement", _) => current - entity.step,
            _ => {
                return Err(PluginError::UnknownService {
                    service: call.name.to_string(),
                });
            }
        };
        entity.check(next).map_err(PluginError::other)
    }
}

#[async_trait]
impl HomeCorePlugin for InputNumber {
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError> {
        let entities = parse_config(config)?;
        self.ids = entities.iter().map(|e| e.entity_id.clone()).collect();
        self.values = entities.iter().map(|e| e.min).collect();
        self.entities = entities;
        for index in 0..self.entities.len() {
            let entity = &self.entities[index];
            let value = match entity.initial {
                Some(value) => value,
                None => ctx
                    .kv_get(&storage_key(&entity.entity_id))?
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .and_then(|text| text.parse::<f64>().ok())
                    .filter(|v| (entity.min..=entity.max).contains(v))
                    .unwrap_or(entity.min),
            };
            self.write(ctx, index, value)?;
        }
        helper::register_services(ctx, &["set_value", "increment", "decrement"])
    }

    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        let fields: &[&str] = if call.name.service() == "set_value" {
            &["value"]
        } else {
            &[]
        };
        let targets = helper::targets(call, &self.ids, fields)
            .map_err(|e| PluginError::other(InputNumberError::from(e)))?;
        let value = if call.name.service() == "set_value" {
            Some(value_of(&call.data).map_err(PluginError::other)?)
        } else {
            None
        };
        // Check every target first, so a refused call changes nothing.
        let mut plan = Vec::with_capacity(targets.len());
        for index in targets {
            plan.push((index, self.next_value(index, call, value)?));
        }
        for (index, next) in plan {
            self.write(ctx, index, next)?;
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
    fn values_are_written_like_python_floats() {
        assert_eq!(format_value(20.0), "20.0");
        assert_eq!(format_value(20.5), "20.5");
        assert_eq!(format_value(-3.0), "-3.0");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn config_defaults_and_attributes() {
        let defaults = parse_config(&Value::Null).expect("defaults");
        let t = &defaults[0];
        assert_eq!(t.entity_id.as_str(), "input_number.target_temperature");
        assert_eq!(
            (t.min, t.max, t.step, t.initial),
            (5.0, 30.0, 0.5, Some(20.0))
        );
        assert_eq!(
            serde_json::to_value(t.attributes()).expect("json"),
            json!({
                "initial": 20.0, "editable": false, "min": 5.0, "max": 30.0, "step": 0.5,
                "mode": "slider", "unit_of_measurement": "°C", "icon": "mdi:thermometer",
                "friendly_name": "Target temperature",
            })
        );
        let plain =
            parse_config(&json!({"level": {"min": 0, "max": 10, "mode": "box"}})).expect("valid");
        assert_eq!(plain[0].step, 1.0);
        assert_eq!(plain[0].mode, Mode::Box);
        assert_eq!(plain[0].name, "Level");
    }

    #[test]
    fn config_errors_name_their_path() {
        for (bad, path) in [
            (json!({"x": {"max": 1}}), "x.min"),
            (json!({"x": {"min": 0}}), "x.max"),
            (json!({"x": {"min": 5, "max": 5}}), "x.max"),
            (json!({"x": {"min": "0", "max": 5}}), "x.min"),
            (json!({"x": {"min": 0, "max": 5, "step": 0}}), "x.step"),
            (
                json!({"x": {"min": 0, "max": 5, "initial": 6}}),
                "x.initial",
            ),
            (json!({"x": {"min": 0, "max": 5, "mode": "dial"}}), "x.mode"),
            (json!({"x": {"min": 0, "max": 5, "unit": "C"}}), "x.unit"),
            (json!({"x": null}), "x.min"),
        ] {
            match parse_config(&bad) {
                Err(PluginError::Config { path: p, .. }) => assert_eq!(p, path, "{bad}"),
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn set_value_coerces_numeric_strings_and_refuses_the_rest() {
        let data = |v: Value| {
            let mut m = Map::new();
            m.insert("value".into(), v);
            m
        };
        assert_eq!(value_of(&data(json!(21.5))), Ok(21.5));
        assert_eq!(value_of(&data(json!(" 22 "))), Ok(22.0));
        assert_eq!(value_of(&Map::new()), Err(InputNumberError::MissingValue));
        for bad in [
            json!("warm"),
            json!(true),
            json!([1]),
            json!("NaN"),
            json!("inf"),
        ] {
            assert!(
                matches!(
                    value_of(&data(bad.clone())),
                    Err(InputNumberError::NotANumber { .. })
                ),
                "{bad}"
            );
        }
    }
}
