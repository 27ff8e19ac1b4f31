//! Events serialized once and shared by every WASM plugin that receives them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use homecore::chrono::{DateTime, Datelike, Timelike, Utc};
use homecore::serde_json::Value;
use homecore::{Context, CustomEvent, State, StateChanged};

use crate::sync::lock;

/// How many recent events keep their serialized form. Plugins consume the same event within a
/// short window, so a small ring suffices; a miss only costs one more serialization.
const CAPACITY: usize = 64;

/// How many recent states keep their serialized form. A state is sent twice: as the
/// `new_state` of its change and as the `old_state` of the next change of the same entity.
const STATE_CAPACITY: usize = 64;

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

/// Recently serialized state changes, keyed by the event's allocation, and recently
/// serialized states, keyed by the state's allocation.
#[derive(Default)]
pub(crate) struct EventCache {
    recent: Mutex<Recent<StateChanged>>,
    states: Mutex<Recent<State>>,
}

/// The wire bytes of the last `capacity` values serialized, found by the value's address
/// (one hash lookup, hit or miss). Holding the `Arc`s keeps the addresses from being reused
/// while the entries live.
struct Recent<T> {
    order: VecDeque<Arc<T>>,
    bytes: HashMap<usize, Arc<[u8]>, foldhash::fast::RandomState>,
    capacity: usize,
}

impl<T> Recent<T> {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            order: VecDeque::with_capacity(capacity),
            bytes: HashMap::with_capacity_and_hasher(
                capacity,
                foldhash::fast::RandomState::default(),
            ),
            capacity,
        }
    }

    fn get(&self, value: &Arc<T>) -> Option<Arc<[u8]>> {
        self.bytes.get(&(Arc::as_ptr(value) as usize)).cloned()
    }

    /// Keeps `bytes` for `value`, forgetting the oldest entry when full. A value another
    /// caller inserted meanwhile keeps its first bytes (equal ones).
    fn insert(&mut self, value: &Arc<T>, bytes: &Arc<[u8]>) {
        let key = Arc::as_ptr(value) as usize;
        if self.bytes.contains_key(&key) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.bytes.remove(&(Arc::as_ptr(&oldest) as usize));
        }
        self.order.push_back(Arc::clone(value));
        self.bytes.insert(key, Arc::clone(bytes));
    }
}

impl Default for Recent<StateChanged> {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Default for Recent<State> {
    fn default() -> Self {
        Self::with_capacity(STATE_CAPACITY)
    }
}

impl EventCache {
    /// The wire bytes of `event` (`wire::StateChangedEvent`), serialized at most once while it
    /// stays among the recent ones.
    pub(crate) fn state_changed(&self, event: &Arc<StateChanged>) -> Arc<[u8]> {
        if let Some(bytes) = lock(&self.recent).get(event) {
            return bytes;
        }
        let [old, new] = self.states(event);
        let bytes = with_scratch(|out| {
            out.extend_from_slice(b"{\"entity_id\":");
            write_str(out, event.entity_id.as_str());
            for (key, state) in [(&b",\"old_state\":"[..], &old), (b",\"new_state\":", &new)] {
                out.extend_from_slice(key);
                out.extend_from_slice(state.as_deref().unwrap_or(b"null"));
            }
            out.extend_from_slice(b",\"context\":");
            write_context(out, &event.context);
            out.push(b'}');
        });
        lock(&self.recent).insert(event, &bytes);
        bytes
    }

    /// The wire bytes of the event's old and new state (`wire::State`), each serialized at most
    /// once while it stays among the recent ones: one lock to find both (the old state is
    /// usually the previous change's new state), serialization outside it, one lock to keep
    /// what was made.
    fn states(&self, event: &StateChanged) -> [Option<Arc<[u8]>>; 2] {
        let states = [event.old_state.as_ref(), event.new_state.as_ref()];
        let mut bytes = {
            let cache = lock(&self.states);
            states.map(|state| state.and_then(|s| cache.get(s)))
        };
        let mut made = [false; 2];
        for ((state, slot), made) in states.iter().zip(&mut bytes).zip(&mut made) {
            if let (Some(state), None) = (state, &slot) {
                *slot = Some(state_bytes(state));
                *made = true;
            }
        }
        if made.contains(&true) {
            let mut cache = lock(&self.states);
            for ((state, slot), made) in states.iter().zip(&bytes).zip(made) {
                if let (Some(state), Some(bytes), true) = (state, slot, made) {
                    cache.insert(state, bytes);
                }
            }
        }
        bytes
    }
}

/// Writes with `write` into this thread's reusable buffer and returns a shared copy of the
/// result: one allocation of the exact size, where building a `Vec` and converting it would
/// allocate twice and copy once more.
fn with_scratch(write: impl FnOnce(&mut Vec<u8>)) -> Arc<[u8]> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut write = Some(write);
    let reused = SCRATCH.try_with(|scratch| {
        let mut out = scratch.try_borrow_mut().ok()?;
        out.clear();
        (write.take()?)(&mut out);
        let bytes = Arc::from(&out[..]);
        // A rare huge payload does not keep its buffer for the thread's lifetime.
        if out.capacity() > SCRATCH_KEPT {
            *out = Vec::new();
        }
        Some(bytes)
    });
    if let Ok(Some(bytes)) = reused {
        return bytes;
    }
    // Not reentrant in practice, and nothing is serialized while the thread's locals are torn
    // down; a fresh buffer keeps it correct if either ever happens (`write` has not run then).
    let mut out = Vec::new();
    if let Some(write) = write {
        write(&mut out);
    }
    Arc::from(out)
}

/// The largest scratch buffer a thread keeps between serializations.
const SCRATCH_KEPT: usize = 64 * 1024;

/// `state` in the wire shape: the same bytes as its `Serialize` implementation, written
/// without going through a serializer for the fields that need no escaping.
fn state_bytes(state: &State) -> Arc<[u8]> {
    with_scratch(|out| {
        out.extend_from_slice(b"{\"entity_id\":");
        write_str(out, state.entity_id().as_str());
        out.extend_from_slice(b",\"state\":");
        write_str(out, state.state());
        out.extend_from_slice(b",\"attributes\":");
        write_object(out, state.attributes().as_map());
        out.extend_from_slice(b",\"last_changed\":");
        write_timestamp(out, state.last_changed());
        out.extend_from_slice(b",\"last_updated\":");
        write_timestamp(out, state.last_updated());
        out.extend_from_slice(b",\"context\":");
        write_context(out, state.context());
        out.push(b'}');
    })
}

/// A context as `{"id":..,"parent_id":..,"user_id":..}` plus `"origin"` when set.
fn write_context(out: &mut Vec<u8>, context: &Context) {
    // Context ids are ULIDs: 26 ASCII characters that need no escaping.
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(&context.id.to_bytes());
    out.extend_from_slice(b"\",\"parent_id\":");
    match context.parent_id {
        Some(parent) => {
            out.push(b'"');
            out.extend_from_slice(&parent.to_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"user_id\":");
    match &context.user_id {
        Some(user) => write_str(out, user),
        None => out.extend_from_slice(b"null"),
    }
    if let Some(origin) = &context.origin {
        out.extend_from_slice(b",\"origin\":");
        write_str(out, origin);
    }
    out.push(b'}');
}

/// A JSON object, as serde_json writes it: members in order, the common scalar values written
/// directly, numbers and nested values by serde_json.
fn write_object(out: &mut Vec<u8>, map: &serde_json::Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        match value {
            Value::String(text) => write_str(out, text),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::Null => out.extend_from_slice(b"null"),
            Value::Object(inner) => write_object(out, inner),
            Value::Number(_) | Value::Array(_) => {
                if serde_json::to_writer(&mut *out, value).is_err() {
                    // A `Value` always serializes; keep the output JSON regardless.
                    out.extend_from_slice(b"null");
                }
            }
        }
    }
    out.push(b'}');
}

/// A JSON string. Text without quotes, backslashes or control characters (entity ids, states,
/// timestamps, almost everything) is copied as is; anything else goes through serde_json.
fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        if serde_json::to_writer(&mut *out, text).is_err() {
            out.extend_from_slice(b"\"\"");
        }
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Whether `bytes` holds a quote, a backslash or a control character, looked for eight bytes
/// at a time (most strings here are a few words long).
fn needs_escape(bytes: &[u8]) -> bool {
    const fn splat(b: u8) -> u64 {
        u64::from_ne_bytes([b; 8])
    }
    const LOW: u64 = splat(0x01);
    const HIGH: u64 = splat(0x80);
    // Nonzero exactly when some byte of `x` is zero (the positions of the bits above the
    // first such byte may be wrong, which a yes/no answer does not care about).
    let zero_in = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
    let word_needs = |w: u64| {
        zero_in(w ^ splat(b'"'))
            | zero_in(w ^ splat(b'\\'))
            | (w.wrapping_sub(splat(0x20)) & !w & HIGH)
            != 0
    };
    if bytes.len() < 8 {
        return bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let word = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        word_needs(u64::from_le_bytes(word))
    };
    // Whole words, then the last eight bytes (overlapping the last whole word).
    (0..bytes.len() / 8).any(|i| word(i * 8)) || word(bytes.len() - 8)
}

/// A timestamp as `homecore::format_timestamp` writes it (`2024-03-01T12:00:00.123456+00:00`),
/// formatted by hand for four-digit years; others (and leap seconds) take chrono's path.
fn write_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    // The naive UTC time once: each of `DateTime`'s own accessors converts again.
    let naive = at.naive_utc();
    let (year, nanos) = (naive.year(), naive.nanosecond());
    let Ok(year) = u32::try_from(year) else {
        return write_str(out, &homecore::format_timestamp(at));
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return write_str(out, &homecore::format_timestamp(at));
    }
    let mut text = *b"\"0000-00-00T00:00:00.000000+00:00\"";
    let mut put = |at: usize, digits: usize, mut value: u32| {
        for slot in text[at..at + digits].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(1, 4, year);
    put(6, 2, naive.month());
    put(9, 2, naive.day());
    put(12, 2, naive.hour());
    put(15, 2, naive.minute());
    put(18, 2, naive.second());
    put(21, 6, nanos / 1000);
    out.extend_from_slice(&text);
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

    fn at(rfc3339: &str) -> homecore::chrono::DateTime<homecore::chrono::Utc> {
        homecore::chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid")
            .with_timezone(&homecore::chrono::Utc)
    }

    /// What the event's `Serialize`-based form was: the reference for the hand-written one.
    fn via_serde(e: &StateChanged) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "entity_id": e.entity_id,
            "old_state": e.old_state,
            "new_state": e.new_state,
            "context": e.context,
        }))
        .expect("serializes")
    }

    #[test]
    fn hand_written_bytes_equal_the_serde_form() {
        let user = Context::for_user("user \"one\"\n\u{e9}");
        let child = user.child(Some(Arc::from("motion_lights")));
        let attrs = Attributes::try_from(serde_json::json!({
            "friendly_name": "Hall \"main\" light\t\u{1F4A1}",
            "brightness": 77,
            "rgb": [1, 2, 3],
            "nested": {"a": null, "b": 1.5, "t": true, "f": false, "k\"ey": {"deep": [{"x": "y"}]}},
            "negative": -3,
            "big": 18_446_744_073_709_551_615u64,
            "float": 2.5e-8,
            "empty": {},
            "on": true,
            "none": null,
        }))
        .expect("object");
        let id: EntityId = "light.hall".parse().expect("valid");
        let times = [
            at("2024-03-01T12:00:00.5Z"),
            at("0001-01-01T00:00:00Z"),
            at("9999-12-31T23:59:59.999999999Z"),
            at("2024-02-29T01:02:03.000001+05:00"),
        ];
        let mut cases = Vec::new();
        for (i, when) in times.into_iter().enumerate() {
            for state_text in ["on", "quote \" and \\ back", "caf\u{e9}\u{1}"] {
                let context = [Context::new(), user.clone(), child.clone()][i % 3].clone();
                let state =
                    State::restore(id.clone(), state_text, attrs.clone(), when, when, context)
                        .expect("valid");
                cases.push(Arc::new(state));
            }
        }
        // Years chrono writes with a sign or five digits take its path.
        for far in [
            homecore::chrono::NaiveDate::from_ymd_opt(-5, 3, 1),
            homecore::chrono::NaiveDate::from_ymd_opt(12_345, 3, 1),
        ] {
            let when = far
                .and_then(|d| d.and_hms_micro_opt(1, 2, 3, 4))
                .expect("valid")
                .and_utc();
            let state =
                State::restore(id.clone(), "x", Attributes::new(), when, when, user.clone())
                    .expect("valid");
            cases.push(Arc::new(state));
        }
        let cache = EventCache::default();
        for state in &cases {
            assert_eq!(
                String::from_utf8(state_bytes(state).to_vec()).expect("utf-8"),
                serde_json::to_string(&**state).expect("serializes")
            );
        }
        for pair in cases.windows(2) {
            for (old, new) in [
                (Some(&pair[0]), Some(&pair[1])),
                (None, Some(&pair[1])),
                (Some(&pair[0]), None),
            ] {
                let e = Arc::new(StateChanged {
                    entity_id: id.clone(),
                    old_state: old.cloned(),
                    new_state: new.cloned(),
                    context: child.clone(),
                    time_fired: chrono_now(),
                });
                assert_eq!(
                    String::from_utf8(cache.state_changed(&e).to_vec()).expect("utf-8"),
                    String::from_utf8(via_serde(&e)).expect("utf-8")
                );
            }
        }
    }

    #[test]
    fn a_state_is_serialized_once_for_both_changes_it_belongs_to() {
        let cache = EventCache::default();
        let first = event();
        let second = Arc::new(StateChanged {
            entity_id: first.entity_id.clone(),
            old_state: first.new_state.clone(),
            new_state: None,
            context: Context::new(),
            time_fired: chrono_now(),
        });
        cache.state_changed(&first);
        cache.state_changed(&second);
        let shared = first.new_state.as_ref().expect("present");
        let states = lock(&cache.states);
        assert_eq!(
            states.order.len(),
            1,
            "serialized once, found again by its allocation"
        );
        assert!(Arc::ptr_eq(&states.order[0], shared));
        assert!(states.get(shared).is_some());
    }

    #[test]
    fn the_oldest_entry_is_forgotten_when_full_and_a_repeat_insert_is_ignored() {
        let mut recent = Recent::<u32>::with_capacity(2);
        let values: Vec<Arc<u32>> = (0..3).map(Arc::new).collect();
        let bytes = |n: u8| -> Arc<[u8]> { Arc::from(vec![n]) };
        recent.insert(&values[0], &bytes(0));
        recent.insert(&values[0], &bytes(9));
        assert_eq!(
            recent.get(&values[0]).as_deref(),
            Some(&[0u8][..]),
            "first bytes kept"
        );
        recent.insert(&values[1], &bytes(1));
        recent.insert(&values[2], &bytes(2));
        assert_eq!(recent.get(&values[0]), None, "evicted");
        assert_eq!(recent.get(&values[1]).as_deref(), Some(&[1u8][..]));
        assert_eq!(recent.get(&values[2]).as_deref(), Some(&[2u8][..]));
        assert_eq!((recent.order.len(), recent.bytes.len()), (2, 2));
        // An equal value in another allocation is another entry.
        assert_eq!(recent.get(&Arc::new(1)), None);
    }

    #[test]
    fn needs_escape_finds_every_byte_that_needs_one_at_every_position() {
        for len in 0..20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = b;
                    let expected = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&bytes), expected, "{b:#x} at {at} of {len}");
                }
            }
            assert!(!needs_escape(&vec![0xc3; len]), "non-ASCII needs no escape");
        }
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
