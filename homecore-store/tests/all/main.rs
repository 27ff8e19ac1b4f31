//! homecore-store's integration tests: one binary, a module per area.

mod kill9;
mod memory;
mod open;
mod plugin_storage;
mod recorder;
mod restart;

use homecore::{Attributes, Context, EntityId, Home};

/// A valid entity id.
fn id(s: &str) -> EntityId {
    EntityId::new(s).expect("test ids are valid")
}

/// Writes `state` to `entity` with no attributes.
fn set(home: &Home, entity: &str, state: &str) {
    home.states
        .set(&id(entity), state, Attributes::new(), &Context::new())
        .expect("a valid write");
}
