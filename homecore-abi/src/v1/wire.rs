//! The JSON shapes exchanged in ABI v1 — FROZEN.
//!
//! Field names follow Home Assistant's (a state is `{entity_id, state, attributes,
//! last_changed, last_updated, context}`). The types borrow from the input where they can, and
//! keep `attributes` and other free-form data unparsed ([`RawValue`], or [`RawJson`] for a
//! state's attributes, which a guest does not even check until it reads them), so a guest pays
//! for parsing only what it reads.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// JSON text as it appeared in a payload, unparsed, and checked only when read.
///
/// Deserializing one with serde checks it (it is read as a [`RawValue`]); a reader that found
/// its end by matching brackets may wrap it unchecked ([`RawJson::unchecked`]), and then
/// [`RawJson::checked`] is where malformed text is reported. The host only ever sends
/// well-formed JSON, so a guest that never reads a state's attributes never pays for checking
/// them. Serializing one checks it first and fails on malformed text. Equality compares the
/// text byte for byte (`{"a":1}` and `{ "a": 1 }` differ).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a> {
    text: &'a str,
}

impl<'a> RawJson<'a> {
    /// Wraps `text` without checking it.
    #[must_use]
    pub const fn unchecked(text: &'a str) -> Self {
        Self { text }
    }

    /// The text as received (not checked: see [`RawJson::checked`]).
    #[must_use]
    pub const fn get(&self) -> &'a str {
        self.text
    }

    /// The text, checked to be one JSON value (the result leaves out whitespace around it).
    ///
    /// # Errors
    /// serde_json's error when it is not.
    pub fn checked(&self) -> Result<&'a RawValue, serde_json::Error> {
        serde_json::from_str(self.text)
    }
}

impl<'a> From<&'a RawValue> for RawJson<'a> {
    fn from(raw: &'a RawValue) -> Self {
        Self::unchecked(raw.get())
    }
}

impl<'a> From<&'a alloc::boxed::Box<RawValue>> for RawJson<'a> {
    fn from(raw: &'a alloc::boxed::Box<RawValue>) -> Self {
        Self::unchecked(raw.get())
    }
}

impl core::fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("RawJson").field(&self.text).finish()
    }
}

impl Serialize for RawJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.checked()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(deserializer).map(Self::from)
    }
}

/// A change's cause (Home Assistant's context, plus the plugin that made it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context<'a> {
    /// The context id (a ULID).
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The id of the context this one reacts to.
    #[serde(borrow, default)]
    pub parent_id: Option<Cow<'a, str>>,
    /// The user who asked for the change.
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
    /// The plugin (domain) that made the change.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Cow<'a, str>>,
}

/// An entity's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State<'a> {
    /// `domain.object_id`.
    #[serde(borrow)]
    pub entity_id: Cow<'a, str>,
    /// The state string.
    #[serde(borrow)]
    pub state: Cow<'a, str>,
    /// A JSON object, unparsed (and, in events a guest reads, unchecked until read).
    #[serde(borrow)]
    pub attributes: RawJson<'a>,
    /// ISO-8601 with microseconds and `+00:00`.
    #[serde(borrow)]
    pub last_changed: Cow<'a, str>,
    /// ISO-8601 with microseconds and `+00:00`.
    #[serde(borrow)]
    pub last_updated: Cow<'a, str>,
    /// The last write's context.
    #[serde(borrow)]
    pub context: Context<'a>,
}

/// Payload of `hc_on_state_changed`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateChangedEvent<'a> {
    /// The entity.
    #[serde(borrow)]
    pub entity_id: Cow<'a, str>,
    /// The state before; `null` for a new entity.
    #[serde(borrow)]
    pub old_state: Option<State<'a>>,
    /// The state after; `null` for a removed entity.
    #[serde(borrow)]
    pub new_state: Option<State<'a>>,
    /// The change's context.
    #[serde(borrow)]
    pub context: Context<'a>,
}

/// Payload of `hc_on_event`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomEvent<'a> {
    /// The event type.
    #[serde(borrow)]
    pub event_type: Cow<'a, str>,
    /// The event data, unparsed.
    #[serde(borrow)]
    pub data: &'a RawValue,
    /// ISO-8601 time the event was fired.
    #[serde(borrow)]
    pub time_fired: Cow<'a, str>,
    /// The event's context.
    #[serde(borrow)]
    pub context: Context<'a>,
}

/// Payload of `hc_call_service`: a call of one of the plugin's services.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceCall<'a> {
    /// The plugin's domain.
    #[serde(borrow)]
    pub domain: Cow<'a, str>,
    /// The service.
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    /// The call's data (a JSON object), unparsed.
    #[serde(borrow)]
    pub data: &'a RawValue,
    /// The call's context.
    #[serde(borrow)]
    pub context: Context<'a>,
}

/// Request of the `service_call` import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRequest<'a> {
    /// The service's domain.
    #[serde(borrow)]
    pub domain: Cow<'a, str>,
    /// The service.
    #[serde(borrow)]
    pub service: Cow<'a, str>,
    /// The data, a JSON object; absent means `{}`.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

/// Result of the `service_call` import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceResult<'a> {
    /// The states the call changed.
    #[serde(borrow)]
    pub changed_states: Vec<State<'a>>,
    /// The service's response data, if any.
    #[serde(borrow, default)]
    pub response: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = r#"{"entity_id":"light.hall","state":"on","attributes":{"b":77},"last_changed":"t","last_updated":"t","context":{"id":"c","parent_id":null,"user_id":null}}"#;

    #[test]
    fn raw_json_is_checked_by_serde_both_ways_and_when_asked() {
        let state: State<'_> = serde_json::from_str(STATE).expect("valid");
        assert_eq!(state.attributes.get(), r#"{"b":77}"#);
        assert!(state.attributes.checked().is_ok());
        // Deserializing checks.
        let bad = STATE.replace(r#"{"b":77}"#, r#"{"b":}"#);
        assert!(serde_json::from_str::<State<'_>>(&bad).is_err());
        // Unchecked text is reported when checked, and refused when serialized.
        let mut unchecked = state.clone();
        unchecked.attributes = RawJson::unchecked(r#"{"b":}"#);
        assert!(unchecked.attributes.checked().is_err());
        assert!(serde_json::to_string(&unchecked).is_err());
        // Well-formed text serializes as it is.
        assert_eq!(serde_json::to_string(&state).expect("serializes"), STATE);
    }
}
