//! A WASM plugin granted every event (`"*"`) cannot forge an event the core owns, nor listen
//! to one: the host imports go through the same door as native plugins
//! (tests/all/hostile_emission.rs has the whole class for native plugins).

use homecore::EventFilter;
use homecore_abi::v1::Status;
use serde_json::json;

use super::guests::*;
use crate::support::all_permissions;

const STATE_CHANGED: Span = Span {
    ptr: 768,
    bytes: b"state_changed",
};
const HA_START: Span = Span {
    ptr: 800,
    bytes: b"homeassistant_start",
};
const CALL_SERVICE: Span = Span {
    ptr: 832,
    bytes: b"call_service",
};
/// What a forger would send to make a lock look open.
const FORGED: Span = Span {
    ptr: 864,
    bytes: br#"{"entity_id":"lock.front_door","new_state":{"entity_id":"lock.front_door","state":"unlocked"}}"#,
};

#[tokio::test]
async fn a_wasm_plugin_cannot_fire_or_hear_core_owned_events() {
    let mut c = Checks::default();
    for (label, span) in [
        ("state_changed", STATE_CHANGED),
        ("homeassistant_start", HA_START),
        ("call_service", CALL_SERVICE),
    ] {
        c.expect(
            format!("fire {label}"),
            format!("(call $event_fire {span} {FORGED})"),
            Status::Denied,
        );
        c.expect(
            format!("subscribe to {label}"),
            format!("(call $subscribe_event {span})"),
            Status::Denied,
        );
    }
    c.expect(
        "fire an event of its own",
        format!("(call $event_fire {EVENT} {OBJECT})"),
        Status::Ok,
    );
    let mut guest = checking_guest(&c);
    for span in [STATE_CHANGED, HA_START, CALL_SERVICE, FORGED] {
        guest.data.push_str(&data_segment(span.ptr, span.bytes));
    }
    let (home, registry) = hostile_registry();
    let mut watcher = home
        .bus
        .subscribe([EventFilter::AllEvents], 1024)
        .expect("subscribed");
    let spec = wasm_spec("forger", all_permissions(), json!({}), guest.bytes());
    let info = load_checked(&registry, spec, &c).await;
    assert_eq!(info.stats.denied, 6, "every forgery refused and counted");
    let mut types = Vec::new();
    while let Some(event) = watcher.try_recv() {
        types.push(event.event_type().to_owned());
    }
    assert_eq!(types, ["hostile_event"]);
}
