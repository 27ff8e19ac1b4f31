//! Events serialized once and shared by every WASM plugin that receives them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use homecore::{CustomEvent, StateChanged};
use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::wasm::store_data::lock_poisoned_ok;

/// How many recent events keep their serialized form. Plugins consume the same event within a
/// short window, so a small ring suffices; a miss only costs one more serialization.
const CAPACITY: usize = 64;

/// The ABI v1 wire form (`wire::StateChangedEvent`) of a state change.
struct WireStateChanged<'a>(&'a StateChanged);

impl Serialize for WireStateChanged<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut s = serializer.serialize_struct("StateChangedEvent", 4)?;
        s.serialize_field("entity_id", &e.entity_id)?;
        s.serialize_field("old_state", &e.old_state)?;
        s.serialize_field("new_state", &e.new_state)?;
        s.serialize_field("context", &e.context)?;
        s.end()
    }
}

/// The ABI v1 wire form (`wire::CustomEvent`) of a generic event.
pub(crate) fn custom_event_bytes(event: &CustomEvent) -> Vec<u8> {
    let value = serde_json::json!({
        "event_type": event.event_type.as_str(),
        "data": event.data,
        "time_fired": homecore::format_timestamp(event.time_fired),
        "context": event.context,
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A ring of recently serialized state changes, keyed by the event's allocation. Holding the
/// `Arc` keeps the address from being reused while the entry lives.
#[derive(Default)]
pub(crate) struct EventCache {
    recent: Mutex<VecDeque<CachedEvent>>,
}

/// An event and its wire bytes.
type CachedEvent = (Arc<StateChanged>, Arc<[u8]>);

impl EventCache {
    /// The wire bytes of `event`, serialized at most once while it stays in the ring.
    pub(crate) fn state_changed(&self, event: &Arc<StateChanged>) -> Arc<[u8]> {
        {
            let recent = lock_poisoned_ok(&self.recent);
            if let Some((_, bytes)) = recent.iter().rev().find(|(e, _)| Arc::ptr_eq(e, event)) {
                return Arc::clone(bytes);
            }
        }
        let bytes: Arc<[u8]> = serde_json::to_vec(&WireStateChanged(event))
            .map(Arc::from)
            .unwrap_or_else(|_| Arc::from(&b"{}"[..]));
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == CAPACITY {
            recent.pop_front();
        }
        recent.push_back((Arc::clone(event), Arc::clone(&bytes)));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homecore::{Attributes, Context, EntityId, State};

    fn event() -> Arc<StateChanged> {
        let id: EntityId = "light.hall".parse().expect("valid");
        let now = chrono_now();
        let state = State::restore(
            id.clone(),
            "on",
            Attributes::new(),
            now,
            now,
            Context::new(),
        )
        .expect("valid");
        Arc::new(StateChanged {
            entity_id: id,
            old_state: None,
            new_state: Some(Arc::new(state)),
            context: Context::new(),
            time_fired: now,
        })
    }

    fn chrono_now() -> homecore::chrono::DateTime<homecore::chrono::Utc> {
        homecore::chrono::Utc::now()
    }

    #[test]
    fn the_same_event_is_serialized_once_and_matches_the_wire_shape() {
        let cache = EventCache::default();
        let e = event();
        let a = cache.state_changed(&e);
        let b = cache.state_changed(&e);
        assert!(Arc::ptr_eq(&a, &b));
        let parsed: homecore_abi::v1::wire::StateChangedEvent<'_> =
            serde_json::from_slice(&a).expect("wire shape");
        assert_eq!(parsed.entity_id, "light.hall");
        assert_eq!(parsed.new_state.expect("present").state, "on");
        assert!(parsed.old_state.is_none());
    }

    #[test]
    fn custom_events_match_the_wire_shape() {
        let event = CustomEvent {
            event_type: homecore::EventType::new("doorbell").expect("valid"),
            data: serde_json::json!({"button": 2}),
            context: Context::new(),
            time_fired: chrono_now(),
        };
        let bytes = custom_event_bytes(&event);
        let parsed: homecore_abi::v1::wire::CustomEvent<'_> =
            serde_json::from_slice(&bytes).expect("wire shape");
        assert_eq!(parsed.event_type, "doorbell");
        assert_eq!(parsed.data.get(), r#"{"button":2}"#);
    }
}
