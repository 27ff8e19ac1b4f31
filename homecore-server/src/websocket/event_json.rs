//! Event JSON shared by every connection: each event is serialized once, by the first
//! connection that forwards it, and the others reuse the text (docs/adr/0009-server.md).

use std::any::Any;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use homecore::Event;

/// The JSON of the events still in flight, by event identity.
///
/// Events on the bus are `Arc`s, so every connection's copy of one event points at the same
/// allocation, and its address identifies the event. An entry holds a `Weak` to that
/// allocation, so the address cannot be reused by another event while the entry exists, and
/// the entry is dead once no queue holds the event any more. Dead entries are dropped oldest
/// first as new ones come in; past `capacity` live entries the oldest go too, and a connection
/// still holding such an event serializes it again on its own.
pub(super) struct SharedEventJson {
    recent: Mutex<Recent>,
    capacity: usize,
}

#[derive(Default)]
struct Recent {
    by_address: HashMap<usize, (Weak<dyn Any + Send + Sync>, Arc<str>)>,
    /// The addresses, oldest first.
    order: VecDeque<usize>,
}

impl SharedEventJson {
    /// Shares the JSON of up to `capacity` live events.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            recent: Mutex::default(),
            capacity,
        }
    }

    /// The JSON of each event for which `wanted` holds (`None` for the others), in order:
    /// looked up under one lock, the missing ones serialized outside it.
    pub(super) fn get_all(
        &self,
        events: &[Event],
        mut wanted: impl FnMut(&Event) -> bool,
        out: &mut Vec<Option<Arc<str>>>,
    ) {
        out.clear();
        let mut misses = Vec::new();
        {
            let recent = self.lock();
            for (i, event) in events.iter().enumerate() {
                if !wanted(event) {
                    out.push(None);
                    continue;
                }
                let hit = address(event)
                    .and_then(|a| recent.by_address.get(&a))
                    .map(|(_, json)| Arc::clone(json));
                if hit.is_none() {
                    misses.push(i);
                }
                out.push(hit);
            }
        }
        if misses.is_empty() {
            return;
        }
        let fresh: Vec<(usize, Arc<str>)> =
            misses.iter().map(|&i| (i, serialize(&events[i]))).collect();
        let mut recent = self.lock();
        for (i, json) in fresh {
            recent.insert(&events[i], Arc::clone(&json), self.capacity);
            out[i] = Some(json);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recent> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        homecore::lock_unpoisoned(&self.recent)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_address.len()
    }
}

impl Recent {
    fn insert(&mut self, event: &Event, json: Arc<str>, capacity: usize) {
        // The event's allocation, kept reserved without keeping the event alive. A kind of
        // event this module does not know is not shared.
        let (address, weak) = match event {
            Event::StateChanged(change) => reserve(change),
            Event::Custom(custom) => reserve(custom),
            _ => return,
        };
        // Two connections that missed the same event both serialized it; the first insert
        // stands.
        if let Entry::Vacant(slot) = self.by_address.entry(address) {
            slot.insert((weak, json));
            self.order.push_back(address);
        }
        while let Some(&oldest) = self.order.front() {
            let dead = self
                .by_address
                .get(&oldest)
                .is_none_or(|(weak, _)| weak.strong_count() == 0);
            if !dead && self.order.len() <= capacity {
                break;
            }
            self.order.pop_front();
            self.by_address.remove(&oldest);
        }
    }
}

/// The address of the event's shared allocation (`None` for a kind this module does not know).
/// An event's address and a `Weak` that keeps its allocation reserved.
fn reserve<T: Any + Send + Sync>(event: &Arc<T>) -> (usize, Weak<dyn Any + Send + Sync>) {
    let weak: Weak<T> = Arc::downgrade(event);
    (Arc::as_ptr(event).addr(), weak)
}

fn address(event: &Event) -> Option<usize> {
    match event {
        Event::StateChanged(change) => Some(Arc::as_ptr(change).addr()),
        Event::Custom(custom) => Some(Arc::as_ptr(custom).addr()),
        _ => None,
    }
}

fn serialize(event: &Event) -> Arc<str> {
    serde_json::to_string(event)
        .expect("events serialize to JSON")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use homecore::{CustomEvent, EventType};

    fn event(n: u64) -> Event {
        Event::Custom(Arc::new(CustomEvent {
            event_type: EventType::new("test").expect("valid"),
            data: serde_json::json!({"n": n}),
            context: homecore::Context::new(),
            time_fired: homecore::chrono::Utc::now(),
        }))
    }

    fn json_of(shared: &SharedEventJson, events: &[Event]) -> Vec<Option<Arc<str>>> {
        let mut out = Vec::new();
        shared.get_all(events, |_| true, &mut out);
        out
    }

    #[test]
    fn one_event_is_serialized_once_and_shared() {
        let shared = SharedEventJson::new(4);
        let e = event(1);
        let first = json_of(&shared, std::slice::from_ref(&e));
        let copy = e.clone();
        let again = json_of(&shared, std::slice::from_ref(&copy));
        let (Some(first), Some(again)) = (&first[0], &again[0]) else {
            panic!("wanted events have JSON");
        };
        assert!(Arc::ptr_eq(first, again), "the same text, not a copy");
        assert_eq!(&**first, serde_json::to_string(&e).expect("json"));
    }

    #[test]
    fn unwanted_events_get_none() {
        let shared = SharedEventJson::new(4);
        let events = [event(1), event(2)];
        let mut out = Vec::new();
        shared.get_all(&events, |e| address(e) == address(&events[1]), &mut out);
        assert!(out[0].is_none());
        assert_eq!(
            out[1].as_deref(),
            Some(serde_json::to_string(&events[1]).expect("json").as_str())
        );
    }

    #[test]
    fn equal_but_distinct_events_are_not_confused_and_entries_are_bounded() {
        let shared = SharedEventJson::new(2);
        let events: Vec<Event> = (0..5).map(event).collect();
        for (e, json) in events.iter().zip(json_of(&shared, &events)) {
            assert_eq!(
                json.as_deref(),
                Some(serde_json::to_string(e).expect("json").as_str())
            );
        }
        assert_eq!(shared.len(), 2, "only the newest live events are kept");
        // An evicted event is serialized again, correctly.
        assert_eq!(
            json_of(&shared, &events[..1])[0].as_deref(),
            Some(serde_json::to_string(&events[0]).expect("json").as_str())
        );
    }

    #[test]
    fn entries_die_with_their_events() {
        let shared = SharedEventJson::new(100);
        for n in 0..10 {
            // Each event is dropped right after; its entry is dead by the next insert.
            json_of(&shared, &[event(n)]);
        }
        assert_eq!(shared.len(), 1, "only the last, not yet collected");
    }
}
