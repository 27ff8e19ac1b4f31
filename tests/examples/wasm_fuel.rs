//! Guest instructions per event: the fuel (WebAssembly instructions, deterministic) the
//! reference plugin uses to handle one state change, on bare Wasmtime with stub imports.
//!
//! `cargo run --release -p homecore-tests --example wasm_fuel`
//!
//! Prints the fuel of `hc_alloc` and of `hc_on_state_changed` for the benchmarks' 700-byte
//! event (a repeated "on" of the hall sensor: the plugin answers with one host call) and for the
//! same event with smaller attributes (the benchmark's `payload`). Unlike wall-clock figures,
//! these do not vary from run to run, so they show what a change to the guest SDK costs or
//! saves.

use homecore_tests::bare::{BareGuest, state_changed_payload};
use serde_json::json;

fn main() {
    let mut guest = BareGuest::new(true);
    for (label, attributes) in [
        (
            "bench event",
            json!({"device_class": "motion", "friendly_name": "Hall motion", "n": 7}),
        ),
        ("small attributes", json!({"n": 7})),
    ] {
        let bytes = state_changed_payload(attributes);
        let before_alloc = guest.fuel();
        let args = guest.copy_in(&bytes);
        let before = guest.fuel();
        assert_eq!(guest.on_state_changed(args), 0);
        let used = before - guest.fuel();
        println!(
            "{label}, {} bytes: hc_alloc {} fuel, hc_on_state_changed {used} fuel",
            bytes.len(),
            before_alloc - before
        );
    }
}
