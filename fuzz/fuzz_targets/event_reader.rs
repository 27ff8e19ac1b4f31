//! The SDK's `hc_on_state_changed` reader (through the fake host) on any bytes: never a panic,
//! and whenever serde reads the payload as the wire type, the plugin gets the event.
#![no_main]

use std::cell::Cell;

use homecore_plugin_sdk::testing::FakeHost;
use homecore_plugin_sdk::{Config, Plugin, StateChangedEvent};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DELIVERED: Cell<bool> = const { Cell::new(false) };
    static HOST: FakeHost = {
        let host = FakeHost::new();
        host.setup::<Sink>(&serde_json::Value::Null).expect("setup");
        host
    };
}

#[derive(Default)]
struct Sink;

impl Plugin for Sink {
    fn setup(&mut self, _config: &Config<'_>) -> homecore_plugin_sdk::Result<()> {
        Ok(())
    }

    fn on_state_changed(
        &mut self,
        _event: &StateChangedEvent<'_>,
    ) -> homecore_plugin_sdk::Result<()> {
        DELIVERED.with(|d| d.set(true));
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    DELIVERED.with(|d| d.set(false));
    let answered = HOST.with(|host| host.deliver_state_changed(data));
    // The ABI's text is UTF-8 and the SDK refuses a payload that is not (serde_json's
    // `from_slice` skips unknown members without checking their UTF-8: found by this target,
    // guarded by the SDK's `a_payload_that_is_not_utf8_is_refused_even_where_serde_skips_it`).
    let serde_reads = std::str::from_utf8(data)
        .is_ok_and(|text| serde_json::from_str::<StateChangedEvent<'_>>(text).is_ok());
    if serde_reads {
        assert!(answered.is_ok(), "serde reads it, the SDK refused it");
        assert!(DELIVERED.with(Cell::get));
    }
});
