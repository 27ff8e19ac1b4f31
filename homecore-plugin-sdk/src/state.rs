//! Owned results of host calls, and reading unparsed JSON.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use homecore_abi::v1::wire::{self, RawJson};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::{Context, Result, State};

/// An entity's state, owned: what [`get_state`](crate::get_state) and
/// [`call_service`](crate::call_service) return. [`OwnedState::as_wire`] borrows it as the
/// [`State`] that events carry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OwnedState {
    /// `domain.object_id`.
    pub entity_id: String,
    /// The state string.
    pub state: String,
    /// A JSON object, unparsed: read it with [`OwnedState::attribute`] or [`from_raw`].
    pub attributes: Box<RawValue>,
    /// ISO-8601 with microseconds and `+00:00`.
    pub last_changed: String,
    /// ISO-8601 with microseconds and `+00:00`.
    pub last_updated: String,
    /// The last write's context.
    pub context: Context<'static>,
}

fn owned(text: Cow<'_, str>) -> String {
    text.into_owned()
}

fn owned_context(context: Context<'_>) -> Context<'static> {
    Context {
        id: Cow::Owned(owned(context.id)),
        parent_id: context.parent_id.map(|s| Cow::Owned(owned(s))),
        user_id: context.user_id.map(|s| Cow::Owned(owned(s))),
        origin: context.origin.map(|s| Cow::Owned(owned(s))),
    }
}

impl TryFrom<State<'_>> for OwnedState {
    type Error = crate::Error;

    /// Owns `state`, checking its attributes (an event's are not checked until read).
    ///
    /// # Errors
    /// [`Error::Json`](crate::Error::Json) when the attributes are not JSON.
    fn try_from(state: State<'_>) -> Result<Self> {
        Ok(Self {
            entity_id: owned(state.entity_id),
            state: owned(state.state),
            attributes: state.attributes.checked()?.to_owned(),
            last_changed: owned(state.last_changed),
            last_updated: owned(state.last_updated),
            context: owned_context(state.context),
        })
    }
}

/// A state as the host answers it (`state_get`, `service_call`): read in one pass, attributes
/// checked and copied by the parse itself (converting a [`State`] would check them again).
#[derive(Deserialize)]
pub(crate) struct StateAnswer<'a> {
    #[serde(borrow)]
    entity_id: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    attributes: Box<RawValue>,
    #[serde(borrow)]
    last_changed: Cow<'a, str>,
    #[serde(borrow)]
    last_updated: Cow<'a, str>,
    #[serde(borrow)]
    context: Context<'a>,
}

impl From<StateAnswer<'_>> for OwnedState {
    fn from(answer: StateAnswer<'_>) -> Self {
        Self {
            entity_id: owned(answer.entity_id),
            state: owned(answer.state),
            attributes: answer.attributes,
            last_changed: owned(answer.last_changed),
            last_updated: owned(answer.last_updated),
            context: owned_context(answer.context),
        }
    }
}

/// The `service_call` import's result as the host answers it (`wire::ServiceResult`'s shape).
#[derive(Deserialize)]
pub(crate) struct ServiceAnswer<'a> {
    #[serde(borrow)]
    changed_states: Vec<StateAnswer<'a>>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

impl From<ServiceAnswer<'_>> for ServiceResult {
    fn from(answer: ServiceAnswer<'_>) -> Self {
        Self {
            changed_states: answer
                .changed_states
                .into_iter()
                .map(OwnedState::from)
                .collect(),
            response: answer.response.map(RawValue::to_owned),
        }
    }
}

impl OwnedState {
    /// This state's attributes as the [`RawJson`] that [`set_state`](crate::set_state) and the
    /// readers take.
    #[must_use]
    pub fn raw_attributes(&self) -> RawJson<'_> {
        RawJson::from(&self.attributes)
    }

    /// Borrows this state as the wire type.
    #[must_use]
    pub fn as_wire(&self) -> State<'_> {
        State {
            entity_id: Cow::Borrowed(&self.entity_id),
            state: Cow::Borrowed(&self.state),
            attributes: RawJson::from(&*self.attributes),
            last_changed: Cow::Borrowed(&self.last_changed),
            last_updated: Cow::Borrowed(&self.last_updated),
            context: wire::Context {
                id: Cow::Borrowed(&self.context.id),
                parent_id: self.context.parent_id.as_deref().map(Cow::Borrowed),
                user_id: self.context.user_id.as_deref().map(Cow::Borrowed),
                origin: self.context.origin.as_deref().map(Cow::Borrowed),
            },
        }
    }

    /// One attribute, parsed into `T`; `None` when absent. See [`attribute`].
    ///
    /// # Errors
    /// [`Error::Json`](crate::Error::Json) when the attribute does not have `T`'s shape.
    pub fn attribute<'a, T: Deserialize<'a>>(&'a self, name: &str) -> Result<Option<T>> {
        attribute(&self.attributes, name)
    }
}

/// What a [`call_service`](crate::call_service) answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceResult {
    /// The states the call changed.
    pub changed_states: Vec<OwnedState>,
    /// The service's response data, unparsed (read it with [`from_raw`]).
    pub response: Option<Box<RawValue>>,
}

impl TryFrom<wire::ServiceResult<'_>> for ServiceResult {
    type Error = crate::Error;

    /// Owns `result`, checking its states' attributes (see [`OwnedState`]'s conversion).
    ///
    /// # Errors
    /// [`Error::Json`](crate::Error::Json) when some attributes are not JSON.
    fn try_from(result: wire::ServiceResult<'_>) -> Result<Self> {
        Ok(Self {
            changed_states: result
                .changed_states
                .into_iter()
                .map(OwnedState::try_from)
                .collect::<Result<_>>()?,
            response: result.response.map(RawValue::to_owned),
        })
    }
}

/// Parses unparsed JSON (attributes, event or service data: a [`RawJson`] or a `RawValue`) into
/// `T`, which may borrow from it. Unchecked attributes are checked here, as they are parsed.
///
/// ```
/// use serde_json::value::RawValue;
/// #[derive(serde::Deserialize)]
/// struct Light { brightness: u8 }
/// let raw = RawValue::from_string(r#"{"brightness": 77, "color": "red"}"#.to_owned())?;
/// let light: Light = homecore_plugin_sdk::from_raw(&raw)?;
/// assert_eq!(light.brightness, 77);
/// # Ok::<(), homecore_plugin_sdk::Error>(())
/// ```
///
/// # Errors
/// [`Error::Json`](crate::Error::Json) when the text is not JSON (unchecked attributes) or
/// does not have `T`'s shape.
pub fn from_raw<'a, T: Deserialize<'a>>(raw: impl Into<RawJson<'a>>) -> Result<T> {
    Ok(serde_json::from_str(raw.into().get())?)
}

/// One member of a JSON object (attributes, event data), parsed into `T`; `None` when the
/// object has no such member. Only that member is parsed; the others are skipped over (and
/// checked: malformed JSON is an error).
///
/// ```
/// use serde_json::value::RawValue;
/// let raw = RawValue::from_string(r#"{"friendly_name": "Hall", "brightness": 77}"#.to_owned())?;
/// assert_eq!(homecore_plugin_sdk::attribute::<u8>(&raw, "brightness")?, Some(77));
/// assert_eq!(homecore_plugin_sdk::attribute::<&str>(&raw, "friendly_name")?, Some("Hall"));
/// assert_eq!(homecore_plugin_sdk::attribute::<u8>(&raw, "color")?, None);
/// # Ok::<(), homecore_plugin_sdk::Error>(())
/// ```
///
/// # Errors
/// [`Error::Json`](crate::Error::Json) when `raw` is not a JSON object (malformed text,
/// unchecked attributes included, or text after the object) or the member does not have `T`'s
/// shape.
pub fn attribute<'a, T: Deserialize<'a>>(
    raw: impl Into<RawJson<'a>>,
    name: &str,
) -> Result<Option<T>> {
    let mut de = serde_json::Deserializer::from_str(raw.into().get());
    let found = de.deserialize_map(Member {
        name,
        found: PhantomData,
    })?;
    de.end()?;
    Ok(found)
}

/// Visits an object's members, parsing only the one named.
struct Member<'n, T> {
    name: &'n str,
    found: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Member<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if found.is_none() && key == self.name {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_state_round_trips_through_the_wire_type() {
        let json = r#"{"entity_id":"light.hall","state":"on","attributes":{"brightness":77,"name":"h\"all"},
            "last_changed":"2024-01-01T00:00:00.000000+00:00","last_updated":"2024-01-01T00:00:01.000000+00:00",
            "context":{"id":"01H","parent_id":null,"user_id":"u\u0031","origin":"motion_lights"}}"#;
        let wire: State<'_> = serde_json::from_str(json).expect("valid");
        let owned = OwnedState::try_from(wire).expect("attributes are JSON");
        assert_eq!(owned.entity_id, "light.hall");
        assert_eq!(owned.context.user_id.as_deref(), Some("u1"));
        assert_eq!(
            owned.attribute::<u8>("brightness").expect("number"),
            Some(77)
        );
        assert_eq!(
            owned.attribute::<String>("name").expect("text").as_deref(),
            Some("h\"all")
        );
        let again = serde_json::to_string(&owned.as_wire()).expect("serializes");
        let back: State<'_> = serde_json::from_str(&again).expect("valid");
        assert_eq!(back.attributes.get(), owned.attributes.get());
        assert_eq!(back.context, owned.as_wire().context);
    }

    #[test]
    fn reading_unchecked_attributes_checks_them() {
        let good = RawJson::unchecked(r#"{"brightness": 77, "other": [1, {"x": null}]}"#);
        assert_eq!(
            attribute::<u8>(good, "brightness").expect("valid"),
            Some(77)
        );
        assert_eq!(attribute::<u8>(good, "missing").expect("valid"), None);
        for bad in [
            r#"{"brightness": 77, "other": }"#,
            r#"{"brightness": 77} x"#,
        ] {
            let raw = RawJson::unchecked(bad);
            assert!(attribute::<u8>(raw, "brightness").is_err(), "{bad}");
            assert!(from_raw::<serde_json::Value>(raw).is_err(), "{bad}");
            assert!(raw.checked().is_err(), "{bad}");
        }
        // JSON, but not an object.
        assert!(attribute::<u8>(RawJson::unchecked("[1]"), "brightness").is_err());
    }

    #[test]
    fn owning_a_state_checks_attributes_an_event_left_unchecked() {
        let json = r#"{"entity_id":"light.hall","state":"on","attributes":{"a":1},
            "last_changed":"t","last_updated":"t","context":{"id":"01H"}}"#;
        let mut state: State<'_> = serde_json::from_str(json).expect("valid");
        state.attributes = RawJson::unchecked(r#"{"a":}"#);
        let err = OwnedState::try_from(state).expect_err("malformed attributes");
        assert!(matches!(err, crate::Error::Json(_)), "{err:?}");
    }

    #[test]
    fn attribute_reads_one_member_and_rejects_non_objects() {
        let raw =
            RawValue::from_string(r#"{"a":[1,{"b":2}],"b":"x","b":"y"}"#.to_owned()).expect("json");
        assert_eq!(attribute::<&str>(&raw, "b").expect("ok"), Some("x"));
        assert!(attribute::<u8>(&raw, "b").is_err());
        let escaped = RawValue::from_string(r#"{"\u0062": 5}"#.to_owned()).expect("json");
        assert_eq!(attribute::<u8>(&escaped, "b").expect("ok"), Some(5));
        let list = RawValue::from_string("[1]".to_owned()).expect("json");
        assert!(attribute::<u8>(&list, "a").is_err());
    }
}
