//! What the first-party helpers ([`crate::input_boolean`], [`crate::input_number`]) share:
//! entities declared in the configuration keyed by object id, their common options, and the
//! entities a service call targets.

use homecore::{EntityId, EntityIdError, ServiceCall, json_type_name};
use homecore_plugins::{PluginContext, PluginError};
use serde_json::{Map, Value};

/// Targeting keys Home Assistant accepts in service data besides `entity_id`; HomeCore has no
/// devices, areas, floors or labels, so they are accepted and ignored.
const IGNORED_TARGET_KEYS: [&str; 4] = ["device_id", "area_id", "floor_id", "label_id"];

/// The longest text option (`name`, `icon`, `unit_of_measurement`) accepted, in characters.
pub(crate) const MAX_TEXT_OPTION: usize = 255;

/// Why a service call's target is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The call names no entity.
    #[error("{service} needs an entity_id")]
    MissingEntityId {
        /// The service called (`input_boolean.turn_on`).
        service: String,
    },
    /// `entity_id` is neither a string nor a list of strings.
    #[error("entity_id must be a string or a list of strings, found {found}")]
    EntityIdNotAString {
        /// The JSON type found.
        found: &'static str,
    },
    /// An entity id is malformed.
    #[error("invalid entity_id {value:?}")]
    InvalidEntityId {
        /// The text given (capped at 255 characters).
        value: String,
        /// What is wrong with it.
        #[source]
        source: EntityIdError,
    },
    /// The entity is not one of this helper's entities.
    #[error("{entity_id} is not an entity of {domain}")]
    UnknownEntity {
        /// The entity asked for.
        entity_id: EntityId,
        /// The helper's domain.
        domain: String,
    },
    /// A field the service does not take.
    #[error("{service} does not take the field {field:?}")]
    UnexpectedField {
        /// The service called.
        service: String,
        /// The field (capped at 255 characters).
        field: String,
    },
}

fn capped(text: &str) -> String {
    homecore_abi::text::quoted(text, MAX_TEXT_OPTION)
}

/// The indices into `known` of the entities `call` targets, in the order given, each once:
/// `entity_id` as a string (comma-separated ids allowed, as Home Assistant), a list of
/// strings, or `"all"`. Fields other than `entity_id`, the ignored targeting keys and `fields`
/// are refused.
pub(crate) fn targets(
    call: &ServiceCall,
    known: &[EntityId],
    fields: &[&str],
) -> Result<Vec<usize>, TargetError> {
    let service = call.name.to_string();
    if let Some(field) = call.data.keys().find(|k| {
        k.as_str() != "entity_id"
            && !IGNORED_TARGET_KEYS.contains(&k.as_str())
            && !fields.contains(&k.as_str())
    }) {
        return Err(TargetError::UnexpectedField {
            service,
            field: capped(field),
        });
    }
    let mut texts: Vec<&str> = Vec::new();
    match call.data.get("entity_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => texts.extend(s.split(',').map(str::trim)),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => texts.push(s.trim()),
                    other => {
                        return Err(TargetError::EntityIdNotAString {
                            found: json_type_name(other),
                        });
                    }
                }
            }
        }
        Some(other) => {
            return Err(TargetError::EntityIdNotAString {
                found: json_type_name(other),
            });
        }
    }
    if texts.is_empty() {
        return Err(TargetError::MissingEntityId { service });
    }
    if texts.iter().any(|t| t.eq_ignore_ascii_case("all")) {
        return Ok((0..known.len()).collect());
    }
    let domain = call.name.domain();
    let mut out: Vec<usize> = Vec::with_capacity(texts.len());
    for text in texts {
        let id = EntityId::new(text).map_err(|source| TargetError::InvalidEntityId {
            value: capped(text),
            source,
        })?;
        let Some(index) = known.iter().position(|k| *k == id) else {
            return Err(TargetError::UnknownEntity {
                entity_id: id,
                domain: domain.to_owned(),
            });
        };
        if !out.contains(&index) {
            out.push(index);
        }
    }
    Ok(out)
}

/// One configured entity: its id and its options.
pub(crate) type EntityEntry = (EntityId, Map<String, Value>);

/// The configured entities: `{object_id: {options} | null}`, or `defaults` when the
/// configuration is empty (null or `{}`). Each object id is checked to make a valid entity id
/// in `domain`; `null` options become an empty map.
pub(crate) fn entries(
    domain: &str,
    config: &Value,
    defaults: fn() -> Value,
) -> Result<Vec<EntityEntry>, PluginError> {
    let map = match config {
        // The defaults are never empty, so this recurses once.
        Value::Null => return entries(domain, &defaults(), || Value::Null),
        Value::Object(map) if map.is_empty() => {
            return entries(domain, &defaults(), || Value::Null);
        }
        Value::Object(map) => map,
        other => {
            return Err(PluginError::config(
                "",
                format!(
                    "configuration must be an object of entities by object id, found {}",
                    json_type_name(other)
                ),
            ));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (object_id, options) in map {
        let id = EntityId::new(&format!("{domain}.{object_id}")).map_err(|e| {
            PluginError::config(
                capped(object_id),
                format!("not a valid object id (lower-case a-z, 0-9 and '_'): {e}"),
            )
        })?;
        let options = match options {
            Value::Object(options) => options.clone(),
            Value::Null => Map::new(),
            other => {
                return Err(PluginError::config(
                    object_id.clone(),
                    format!(
                        "entity options must be an object, found {}",
                        json_type_name(other)
                    ),
                ));
            }
        };
        out.push((id, options));
    }
    Ok(out)
}

/// Registers `services` in the plugin's domain.
pub(crate) fn register_services(ctx: &PluginContext, services: &[&str]) -> Result<(), PluginError> {
    for service in services {
        ctx.register_service(service)?;
    }
    Ok(())
}

/// Refuses options outside `allowed`.
pub(crate) fn check_keys(
    object_id: &str,
    options: &Map<String, Value>,
    allowed: &[&str],
) -> Result<(), PluginError> {
    match options.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(PluginError::config(
            format!("{object_id}.{}", capped(key)),
            "unknown option",
        )),
        None => Ok(()),
    }
}

/// A text option (`name`, `icon`, `unit_of_measurement`), at most [`MAX_TEXT_OPTION`]
/// characters.
pub(crate) fn text_option(
    object_id: &str,
    options: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, PluginError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT_OPTION => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(PluginError::config(
            format!("{object_id}.{key}"),
            format!("must be at most {MAX_TEXT_OPTION} characters"),
        )),
        Some(other) => Err(PluginError::config(
            format!("{object_id}.{key}"),
            format!("must be a string, found {}", json_type_name(other)),
        )),
    }
}

/// The display name: the `name` option, else the object id with spaces (`guest_mode` →
/// `Guest mode`).
pub(crate) fn display_name(object_id: &str, name: Option<String>) -> String {
    name.unwrap_or_else(|| {
        let spaced = object_id.replace('_', " ");
        let mut chars = spaced.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => spaced,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use homecore::{Context, ServiceName};
    use serde_json::json;

    fn call(data: Value) -> ServiceCall {
        ServiceCall {
            name: ServiceName::new("input_boolean", "turn_on").expect("valid"),
            data: match data {
                Value::Object(map) => map,
                _ => Map::new(),
            },
            context: Context::new(),
        }
    }

    fn known() -> Vec<EntityId> {
        ["input_boolean.a", "input_boolean.b"]
            .iter()
            .map(|s| s.parse().expect("valid"))
            .collect()
    }

    #[test]
    fn targets_accept_strings_lists_commas_and_all() {
        let k = known();
        let got = |data| {
            targets(&call(data), &k, &[])
                .expect("valid")
                .iter()
                .map(|&i| k[i].as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got(json!({"entity_id": "input_boolean.b"})),
            ["input_boolean.b"]
        );
        assert_eq!(
            got(json!({"entity_id": "input_boolean.b, input_boolean.a"})),
            ["input_boolean.b", "input_boolean.a"]
        );
        assert_eq!(
            got(json!({"entity_id": ["input_boolean.a", "input_boolean.a"], "area_id": "x"})),
            ["input_boolean.a"]
        );
        assert_eq!(got(json!({"entity_id": "all"})).len(), 2);
    }

    #[test]
    fn target_errors_are_typed() {
        let k = known();
        let err = |data| targets(&call(data), &k, &["value"]).expect_err("refused");
        assert!(matches!(
            err(json!({})),
            TargetError::MissingEntityId { .. }
        ));
        assert!(matches!(
            err(json!({"entity_id": 3})),
            TargetError::EntityIdNotAString { found: "number" }
        ));
        assert!(matches!(
            err(json!({"entity_id": ["input_boolean.a", false]})),
            TargetError::EntityIdNotAString { found: "boolean" }
        ));
        assert!(matches!(
            err(json!({"entity_id": "Not An Id"})),
            TargetError::InvalidEntityId { .. }
        ));
        assert!(matches!(
            err(json!({"entity_id": "input_boolean.zzz"})),
            TargetError::UnknownEntity { .. }
        ));
        assert!(matches!(
            err(json!({"entity_id": "input_boolean.a", "brightness": 3})),
            TargetError::UnexpectedField { field, .. } if field == "brightness"
        ));
    }

    #[test]
    fn entries_use_defaults_and_name_bad_object_ids() {
        let defaults = || json!({"x": null});
        let got = entries("input_boolean", &Value::Null, defaults).expect("defaults");
        assert_eq!(got[0].0.as_str(), "input_boolean.x");
        let got = entries("input_boolean", &json!({}), defaults).expect("defaults");
        assert_eq!(got.len(), 1);
        for (bad, path) in [
            (json!({"Bad Id": {}}), "Bad Id"),
            (json!({"ok": 3}), "ok"),
            (json!([1]), ""),
        ] {
            match entries("input_boolean", &bad, defaults) {
                Err(PluginError::Config { path: p, .. }) => assert_eq!(p, path, "{bad}"),
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
        assert_eq!(display_name("guest_mode", None), "Guest mode");
        assert_eq!(display_name("x", Some("Mine".into())), "Mine");
    }
}
