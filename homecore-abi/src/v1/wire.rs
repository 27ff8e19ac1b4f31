//! The JSON shapes exchanged in ABI v1 — FROZEN.
//!
//! Field names follow Home Assistant's (a state is `{entity_id, state, attributes,
//! last_changed, last_updated, context}`). The types borrow from the input where they can, and
//! keep `attributes` and other free-form data as [`RawValue`], so a guest pays for parsing only
//! what it reads.

use alloc::borrow::Cow;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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
    /// A JSON object, unparsed.
    #[serde(borrow)]
    pub attributes: &'a RawValue,
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
