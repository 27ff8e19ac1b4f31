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

use homecore::{Attributes, Context, EntityId, Home};
use homecore_tests::guest::example_wasm;
use serde_json::{Value, json};

/// The `hc_on_state_changed` payload of a repeated "on" of the hall sensor whose new state
/// has `attributes` (the old one has none), as in the `wasm` benchmark.
fn payload(attributes: Value) -> Vec<u8> {
    let home = Home::new();
    let id: EntityId = "binary_sensor.hall_motion".parse().expect("valid");
    let ctx = Context::new();
    let mut sub = home
        .bus
        .subscribe([homecore::EventFilter::AllStateChanges], 4)
        .expect("ok");
    home.states
        .set(&id, "on", Attributes::new(), &ctx)
        .expect("valid");
    let attributes = Attributes::try_from(attributes).expect("object");
    home.states.set(&id, "on", attributes, &ctx).expect("valid");
    let _first = sub.try_recv();
    let event = sub.try_recv().expect("second change");
    let change = event.as_state_changed().expect("a state change");
    serde_json::to_vec(&json!({
        "entity_id": change.entity_id,
        "old_state": change.old_state,
        "new_state": change.new_state,
        "context": change.context,
    }))
    .expect("serializes")
}

fn main() {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    let engine = wasmtime::Engine::new(&config).expect("engine");
    let module = wasmtime::Module::new(&engine, example_wasm()).expect("compiles");
    let mut store = wasmtime::Store::new(&engine, ());
    store.set_fuel(u64::MAX).expect("fuel on");
    let mut linker = wasmtime::Linker::new(&engine);
    linker
        .define_unknown_imports_as_default_values(&mut store, &module)
        .expect("stubs");
    let instance = linker
        .instantiate(&mut store, &module)
        .expect("instantiates");
    let memory = instance.get_memory(&mut store, "memory").expect("memory");
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "hc_alloc")
        .expect("hc_alloc");
    let setup = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "hc_setup")
        .expect("hc_setup");
    let on_state_changed = instance
        .get_typed_func::<(i32, i32), i32>(&mut store, "hc_on_state_changed")
        .expect("hc_on_state_changed");
    // Copies `bytes` into a guest buffer; answers the arguments and the fuel `hc_alloc` used.
    let copy_in = |store: &mut wasmtime::Store<()>, bytes: &[u8]| {
        let len = i32::try_from(bytes.len()).expect("small");
        let before = store.get_fuel().expect("fuel on");
        let ptr = alloc.call(&mut *store, len).expect("hc_alloc runs");
        let used = before - store.get_fuel().expect("fuel on");
        let at = usize::try_from(ptr).expect("a pointer");
        memory.write(&mut *store, at, bytes).expect("in bounds");
        ((ptr, len), used)
    };
    let (args, _) = copy_in(&mut store, br#"{"rooms":["hall"],"quiet_seconds":120}"#);
    assert_eq!(setup.call(&mut store, args).expect("setup runs"), 0);
    for (label, attributes) in [
        (
            "bench event",
            json!({"device_class": "motion", "friendly_name": "Hall motion", "n": 7}),
        ),
        ("small attributes", json!({"n": 7})),
    ] {
        let bytes = payload(attributes);
        let (args, alloc_fuel) = copy_in(&mut store, &bytes);
        let before = store.get_fuel().expect("fuel on");
        let status = on_state_changed.call(&mut store, args).expect("runs");
        assert_eq!(status, 0);
        let used = before - store.get_fuel().expect("fuel on");
        println!(
            "{label}, {} bytes: hc_alloc {alloc_fuel} fuel, hc_on_state_changed {used} fuel",
            bytes.len()
        );
    }
}
