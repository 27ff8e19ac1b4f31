//! Helpers shared by HomeCore's end-to-end tests (the tests live in `tests/end_to_end`).
#![forbid(unsafe_code)]

pub mod bare;
pub mod guest;

use std::time::Duration;

use homecore::{Attributes, Context, EntityId, Home};

/// Writes `state` to `entity` as an outside client would (a root context).
///
/// # Panics
/// On an invalid entity id or state: test input is fixed.
pub fn set(home: &Home, entity: &str, state: &str) {
    let id: EntityId = entity.parse().expect("valid entity id");
    home.states
        .set(&id, state, Attributes::new(), &Context::new())
        .expect("valid write");
}

/// The state string of `entity`.
#[must_use]
pub fn state_of(home: &Home, entity: &str) -> Option<String> {
    home.states.get_str(entity).map(|s| s.state().to_owned())
}

/// Lets every spawned task run until idle (with tokio's paused clock this takes no real time).
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
