//! The reference plugin on bare Wasmtime (stub imports, no HomeCore runtime), and the
//! `hc_on_state_changed` payload the WASM benchmark and the `wasm_fuel` example feed it: the
//! baseline our runtime is measured against.

use homecore::{Attributes, Context, EntityId, Home};
use serde_json::{Value, json};

use crate::guest::example_wasm;

/// The wire payload of a repeated "on" of `binary_sensor.hall_motion` whose new state has
/// `attributes` and whose old state has none (the reference plugin answers it with exactly
/// one host call, `timer_cancel`).
///
/// # Panics
/// If `attributes` is not an object.
#[must_use]
pub fn state_changed_payload(attributes: Value) -> Vec<u8> {
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
    let attributes = Attributes::try_from(attributes).expect("an object");
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

/// The reference plugin instantiated on a plain engine with stub imports and set up for the
/// hall (`{"rooms":["hall"],"quiet_seconds":120}`).
pub struct BareGuest {
    /// The instance's store (fuel and epoch deadline are set through it).
    pub store: wasmtime::Store<()>,
    memory: wasmtime::Memory,
    alloc: wasmtime::TypedFunc<i32, i32>,
    on_state_changed: wasmtime::TypedFunc<(i32, i32), i32>,
}

impl std::fmt::Debug for BareGuest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareGuest").finish_non_exhaustive()
    }
}

impl BareGuest {
    /// Compiles and instantiates the reference plugin, with fuel metering and epoch
    /// interruption when `limits` (fuel and deadline then start unbounded), and runs its setup.
    ///
    /// # Panics
    /// If any step fails: the module is ours and known to work.
    #[must_use]
    pub fn new(limits: bool) -> Self {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(limits).epoch_interruption(limits);
        let engine = wasmtime::Engine::new(&config).expect("engine");
        let module = wasmtime::Module::new(&engine, example_wasm()).expect("compiles");
        let mut store = wasmtime::Store::new(&engine, ());
        if limits {
            store.set_fuel(u64::MAX).expect("fuel on");
            store.set_epoch_deadline(u64::MAX / 2);
        }
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
        let mut guest = Self {
            store,
            memory,
            alloc,
            on_state_changed,
        };
        let args = guest.copy_in(br#"{"rooms":["hall"],"quiet_seconds":120}"#);
        assert_eq!(setup.call(&mut guest.store, args).expect("setup runs"), 0);
        guest
    }

    /// Copies `bytes` into a buffer from the guest's `hc_alloc`; answers `(ptr, len)`.
    ///
    /// # Panics
    /// If the guest cannot allocate or returns a buffer out of bounds.
    pub fn copy_in(&mut self, bytes: &[u8]) -> (i32, i32) {
        let len = i32::try_from(bytes.len()).expect("small");
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .expect("hc_alloc runs");
        let at = usize::try_from(ptr).expect("a pointer");
        self.memory
            .write(&mut self.store, at, bytes)
            .expect("in bounds");
        (ptr, len)
    }

    /// Calls `hc_on_state_changed` with a buffer from [`BareGuest::copy_in`]; answers its
    /// status.
    ///
    /// # Panics
    /// If the call traps.
    pub fn on_state_changed(&mut self, args: (i32, i32)) -> i32 {
        self.on_state_changed
            .call(&mut self.store, args)
            .expect("runs")
    }

    /// Fuel left (with limits on).
    ///
    /// # Panics
    /// If the engine does not meter fuel.
    #[must_use]
    pub fn fuel(&self) -> u64 {
        self.store.get_fuel().expect("fuel on")
    }
}
