//! Entity states: the value, its attributes and when and why it last changed.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::{Context, EntityId};

/// The longest state string accepted, in characters (Home Assistant's `MAX_LENGTH_STATE_STATE`).
pub const MAX_STATE_LEN: usize = 255;

/// A state's attributes: a JSON object, shared between versions of a state that keep them.
///
/// ```
/// use homecore::Attributes;
/// let attrs = Attributes::try_from(serde_json::json!({"brightness": 128}))?;
/// assert_eq!(attrs.get("brightness"), Some(&serde_json::json!(128)));
/// assert!(Attributes::try_from(serde_json::json!([1, 2])).is_err());
/// # Ok::<(), homecore::StateError>(())
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct Attributes(Arc<Map<String, Value>>);

impl Attributes {
    /// No attributes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The attribute named `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The attributes as a JSON object.
    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Whether there are no attributes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn same_allocation(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl From<Map<String, Value>> for Attributes {
    fn from(map: Map<String, Value>) -> Self {
        Self(Arc::new(map))
    }
}

impl TryFrom<Value> for Attributes {
    type Error = StateError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        match value {
            Value::Object(map) => Ok(Self::from(map)),
            Value::Null => Ok(Self::new()),
            other => Err(StateError::AttributesNotAnObject {
                found: json_type_name(&other),
            }),
        }
    }
}

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The JSON type of a value, for error messages.
#[must_use]
pub fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Why a state could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state string is longer than [`MAX_STATE_LEN`] characters.
    #[error("state of {entity_id} is {len} characters long, the limit is {max}")]
    StateTooLong {
        /// The entity.
        entity_id: EntityId,
        /// Length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Attributes were given as something other than a JSON object.
    #[error("attributes must be a JSON object, found {found}")]
    AttributesNotAnObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// The write was refused by the loop guard.
    #[error(transparent)]
    LoopGuard(#[from] crate::LoopGuardError),
}

/// One entity's state, as Home Assistant's `State`; shared as `Arc<State>`.
///
/// `last_changed` moves only when the state string changes; `last_updated` when the state or
/// the attributes change. Serializes in Home Assistant's shape, timestamps ISO-8601 with
/// microseconds and `+00:00`.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    entity_id: EntityId,
    state: Arc<str>,
    attributes: Attributes,
    last_changed: DateTime<Utc>,
    last_updated: DateTime<Utc>,
    context: Context,
}

impl State {
    /// A state as it was stored (restored from disk, or built for tests), checked like a write.
    ///
    /// # Errors
    /// [`StateError::StateTooLong`] when `state` is too long.
    pub fn restore(
        entity_id: EntityId,
        state: &str,
        attributes: Attributes,
        last_changed: DateTime<Utc>,
        last_updated: DateTime<Utc>,
        context: Context,
    ) -> Result<Self, StateError> {
        check_state_len(&entity_id, state)?;
        Ok(Self {
            entity_id,
            state: state.into(),
            attributes,
            last_changed,
            last_updated,
            context,
        })
    }

    /// The next version of `old` (or a first state) after a write; `None` when the write
    /// changes nothing (same state and attributes).
    pub(crate) fn next(
        old: Option<&State>,
        entity_id: &EntityId,
        state: &str,
        attributes: Attributes,
        context: &Context,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let Some(old) = old else {
            return Some(Self {
                entity_id: entity_id.clone(),
                state: state.into(),
                attributes,
                last_changed: now,
                last_updated: now,
                context: context.clone(),
            });
        };
        let same_state = &*old.state == state;
        let same_attributes =
            old.attributes.same_allocation(&attributes) || old.attributes == attributes;
        if same_state && same_attributes {
            return None;
        }
        Some(Self {
            entity_id: old.entity_id.clone(),
            state: if same_state {
                old.state.clone()
            } else {
                state.into()
            },
            // Keep the old allocation when equal, so unchanged attributes are shared.
            attributes: if same_attributes {
                old.attributes.clone()
            } else {
                attributes
            },
            last_changed: if same_state { old.last_changed } else { now },
            last_updated: now,
            context: context.clone(),
        })
    }

    /// The entity this state belongs to.
    #[must_use]
    pub fn entity_id(&self) -> &EntityId {
        &self.entity_id
    }

    /// The state string, e.g. `on`.
    #[must_use]
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The attributes.
    #[must_use]
    pub fn attributes(&self) -> &Attributes {
        &self.attributes
    }

    /// When the state string last changed.
    #[must_use]
    pub fn last_changed(&self) -> DateTime<Utc> {
        self.last_changed
    }

    /// When the state or attributes last changed.
    #[must_use]
    pub fn last_updated(&self) -> DateTime<Utc> {
        self.last_updated
    }

    /// The context of the last write.
    #[must_use]
    pub fn context(&self) -> &Context {
        &self.context
    }
}

pub(crate) fn check_state_len(entity_id: &EntityId, state: &str) -> Result<(), StateError> {
    // Byte length bounds character length, so the count is only needed for long strings.
    if state.len() > MAX_STATE_LEN {
        let len = state.chars().count();
        if len > MAX_STATE_LEN {
            return Err(StateError::StateTooLong {
                entity_id: entity_id.clone(),
                len,
                max: MAX_STATE_LEN,
            });
        }
    }
    Ok(())
}

/// Formats a timestamp as Home Assistant does: `2024-03-01T12:00:00.123456+00:00`.
#[must_use]
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, false)
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("State", 6)?;
        s.serialize_field("entity_id", &self.entity_id)?;
        s.serialize_field("state", &*self.state)?;
        s.serialize_field("attributes", &self.attributes)?;
        s.serialize_field("last_changed", &format_timestamp(self.last_changed))?;
        s.serialize_field("last_updated", &format_timestamp(self.last_updated))?;
        s.serialize_field("context", &self.context)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id() -> EntityId {
        EntityId::new("light.hall").expect("valid")
    }

    #[test]
    fn serializes_like_home_assistant() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T12:00:00.5Z")
            .expect("valid")
            .with_timezone(&Utc);
        let attrs = Attributes::try_from(json!({"brightness": 3})).expect("object");
        let state = State::restore(id(), "on", attrs, at, at, Context::new()).expect("ok");
        let v = serde_json::to_value(&state).expect("serializes");
        assert_eq!(v["entity_id"], "light.hall");
        assert_eq!(v["state"], "on");
        assert_eq!(v["attributes"]["brightness"], 3);
        assert_eq!(v["last_changed"], "2024-03-01T12:00:00.500000+00:00");
        assert_eq!(v["last_updated"], "2024-03-01T12:00:00.500000+00:00");
        assert!(v["context"]["id"].is_string());
    }

    #[test]
    fn state_length_is_counted_in_characters() {
        let ok = "é".repeat(MAX_STATE_LEN);
        assert!(check_state_len(&id(), &ok).is_ok());
        let long = "x".repeat(MAX_STATE_LEN + 1);
        assert_eq!(
            check_state_len(&id(), &long),
            Err(StateError::StateTooLong {
                entity_id: id(),
                len: 256,
                max: 255
            })
        );
    }

    #[test]
    fn attributes_must_be_an_object() {
        assert_eq!(
            Attributes::try_from(json!("x")),
            Err(StateError::AttributesNotAnObject { found: "string" })
        );
        assert!(
            Attributes::try_from(Value::Null)
                .expect("null is empty")
                .is_empty()
        );
    }
}
