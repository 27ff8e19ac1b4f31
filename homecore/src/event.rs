//! Events: typed state changes and generic events with JSON data.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::state::format_timestamp;
use crate::{Context, EntityId, State};

/// The longest event type accepted (Home Assistant's `MAX_LENGTH_EVENT_EVENT_TYPE`).
pub const MAX_EVENT_TYPE_LEN: usize = 64;

/// The event type of state changes.
pub const STATE_CHANGED: &str = "state_changed";

/// Event types whose meaning the core owns: only the core makes them, never a plugin (a
/// plugin that could fire `state_changed` could tell every client a lock is open while it stays
/// locked). Home Assistant's own core event names, plus every type that starts with one of
/// [`CORE_EVENT_PREFIXES`] or ends with one of [`CORE_EVENT_SUFFIXES`]; see
/// [`is_core_event_type`].
pub const CORE_EVENT_TYPES: &[&str] = &[
    STATE_CHANGED,
    "state_reported",
    "call_service",
    "service_registered",
    "service_removed",
    "component_loaded",
    "core_config_updated",
    "logbook_entry",
    "logging_changed",
    "themes_updated",
    "panels_updated",
    "lovelace_updated",
    "user_added",
    "user_updated",
    "user_removed",
    "automation_triggered",
    "automation_reloaded",
    "script_started",
    "platform_discovered",
    "persistent_notifications_updated",
    "recorder_5min_statistics_generated",
    "recorder_hourly_statistics_generated",
];

/// Prefixes of core-owned event types (`homeassistant_start`, `homeassistant_stop`, …, and
/// HomeCore's own `homecore_*`).
pub const CORE_EVENT_PREFIXES: &[&str] = &["homeassistant_", "homecore_"];

/// Suffixes of core-owned event types (`entity_registry_updated`, `device_registry_updated`, …).
pub const CORE_EVENT_SUFFIXES: &[&str] = &["_registry_updated"];

/// Whether `event_type` is one the core owns ([`CORE_EVENT_TYPES`], [`CORE_EVENT_PREFIXES`],
/// [`CORE_EVENT_SUFFIXES`]): plugins may neither fire nor subscribe to it.
///
/// ```
/// assert!(homecore::is_core_event_type("state_changed"));
/// assert!(homecore::is_core_event_type("homeassistant_start"));
/// assert!(homecore::is_core_event_type("device_registry_updated"));
/// assert!(!homecore::is_core_event_type("motion_detected"));
/// ```
#[must_use]
pub fn is_core_event_type(event_type: &str) -> bool {
    CORE_EVENT_TYPES.contains(&event_type)
        || CORE_EVENT_PREFIXES
            .iter()
            .any(|p| event_type.starts_with(p))
        || CORE_EVENT_SUFFIXES.iter().any(|s| event_type.ends_with(s))
}

/// Why a string is not a valid event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventTypeError {
    /// The event type was empty.
    #[error("event type is empty")]
    Empty,
    /// Longer than [`MAX_EVENT_TYPE_LEN`] characters.
    #[error("event type is {len} characters long, the limit is {max}")]
    TooLong {
        /// Length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Contains whitespace or a control character.
    #[error(
        "event type {event_type:?} contains {found:?}; whitespace and control characters are not allowed"
    )]
    InvalidChar {
        /// The rejected type.
        event_type: String,
        /// The offending character.
        found: char,
    },
}

/// A validated event type such as `call_service` or `motion_detected`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Arc<str>);

impl EventType {
    /// Validates an event type.
    ///
    /// # Errors
    /// An [`EventTypeError`] naming the problem.
    pub fn new(event_type: &str) -> Result<Self, EventTypeError> {
        if event_type.is_empty() {
            return Err(EventTypeError::Empty);
        }
        let len = event_type.chars().count();
        if len > MAX_EVENT_TYPE_LEN {
            return Err(EventTypeError::TooLong {
                len,
                max: MAX_EVENT_TYPE_LEN,
            });
        }
        if let Some(found) = event_type
            .chars()
            .find(|c| c.is_whitespace() || c.is_control())
        {
            return Err(EventTypeError::InvalidChar {
                event_type: event_type.to_owned(),
                found,
            });
        }
        Ok(Self(event_type.into()))
    }

    /// The type as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the core owns this type ([`is_core_event_type`]).
    #[must_use]
    pub fn is_core_owned(&self) -> bool {
        is_core_event_type(&self.0)
    }
}

impl std::str::FromStr for EventType {
    type Err = EventTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A state was created, changed or removed.
///
/// `old_state` is `None` for a new entity, `new_state` is `None` for a removed one. Its JSON
/// form is Home Assistant's event `data`: `{entity_id, old_state, new_state}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChanged {
    /// The entity.
    pub entity_id: EntityId,
    /// The state before the change.
    pub old_state: Option<Arc<State>>,
    /// The state after the change.
    pub new_state: Option<Arc<State>>,
    /// Why it changed.
    pub context: Context,
    /// When it was published.
    pub time_fired: DateTime<Utc>,
}

impl Serialize for StateChanged {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("StateChanged", 3)?;
        s.serialize_field("entity_id", &self.entity_id)?;
        s.serialize_field("old_state", &self.old_state)?;
        s.serialize_field("new_state", &self.new_state)?;
        s.end()
    }
}

/// Any other event: a type and JSON data.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomEvent {
    /// The event type.
    pub event_type: EventType,
    /// The event data (a JSON object by convention).
    pub data: Value,
    /// Who fired it.
    pub context: Context,
    /// When it was published.
    pub time_fired: DateTime<Utc>,
}

/// An event on the bus; cheap to clone (one reference count).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A state changed.
    StateChanged(Arc<StateChanged>),
    /// A generic event.
    Custom(Arc<CustomEvent>),
}

impl Event {
    /// The event type (`state_changed` for state changes).
    #[must_use]
    pub fn event_type(&self) -> &str {
        match self {
            Self::StateChanged(_) => STATE_CHANGED,
            Self::Custom(e) => e.event_type.as_str(),
        }
    }

    /// Who caused the event.
    #[must_use]
    pub fn context(&self) -> &Context {
        match self {
            Self::StateChanged(e) => &e.context,
            Self::Custom(e) => &e.context,
        }
    }

    /// When the event was published.
    #[must_use]
    pub fn time_fired(&self) -> DateTime<Utc> {
        match self {
            Self::StateChanged(e) => e.time_fired,
            Self::Custom(e) => e.time_fired,
        }
    }

    /// The state change, if this is one.
    #[must_use]
    pub fn as_state_changed(&self) -> Option<&Arc<StateChanged>> {
        match self {
            Self::StateChanged(e) => Some(e),
            Self::Custom(_) => None,
        }
    }
}

/// Home Assistant's event shape: `{event_type, data, origin, time_fired, context}`.
impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Event", 5)?;
        s.serialize_field("event_type", self.event_type())?;
        match self {
            Self::StateChanged(e) => s.serialize_field("data", &**e)?,
            Self::Custom(e) => s.serialize_field("data", &e.data)?,
        }
        s.serialize_field("origin", "LOCAL")?;
        s.serialize_field("time_fired", &format_timestamp(self.time_fired()))?;
        s.serialize_field("context", self.context())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_rules() {
        assert!(EventType::new("motion_detected").is_ok());
        assert_eq!(EventType::new(""), Err(EventTypeError::Empty));
        assert_eq!(
            EventType::new(&"x".repeat(65)),
            Err(EventTypeError::TooLong { len: 65, max: 64 })
        );
        assert!(matches!(
            EventType::new("a b"),
            Err(EventTypeError::InvalidChar { found: ' ', .. })
        ));
    }

    #[test]
    fn custom_event_serializes_like_home_assistant() {
        let event = Event::Custom(Arc::new(CustomEvent {
            event_type: EventType::new("doorbell").expect("valid"),
            data: serde_json::json!({"button": 1}),
            context: Context::new(),
            time_fired: Utc::now(),
        }));
        let v = serde_json::to_value(&event).expect("serializes");
        assert_eq!(v["event_type"], "doorbell");
        assert_eq!(v["data"]["button"], 1);
        assert_eq!(v["origin"], "LOCAL");
        assert!(
            v["time_fired"]
                .as_str()
                .is_some_and(|t| t.ends_with("+00:00"))
        );
    }
}
