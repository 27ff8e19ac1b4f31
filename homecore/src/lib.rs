//! HomeCore's core: the home that integrations live in.
//!
//! Home Assistant's concepts with Rust's costs:
//!
//! - [`EntityId`]: a validated `domain.object_id` (`light.kitchen`).
//! - [`State`]: an entity's state string, JSON [`Attributes`], `last_changed`,
//!   `last_updated` and the [`Context`] that caused it, shared as `Arc<State>`.
//! - [`StateMachine`]: every entity's current state, with Home Assistant's write semantics
//!   (a repeated write is a no-op; `last_changed` follows the state string only).
//! - [`EventBus`]: typed [`StateChanged`] events and generic [`CustomEvent`]s, subscriptions
//!   by exact entity id, [`EntityGlob`] (`light.*`, `*.kitchen_*`), event type or everything;
//!   bounded per-subscriber queues that never block a publisher.
//! - [`ServiceRegistry`]: `domain.service` calls with JSON data, answering with the states the
//!   call changed.
//! - The loop guard: a write made in reaction to an event carries a child of the event's
//!   context; chains deeper than [`MAX_CONTEXT_DEPTH`] are refused and counted.
//!
//! [`Home`] wires the three together.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use homecore::{Attributes, Context, EntityGlob, EventFilter, Home};
//!
//! let home = Home::new();
//! let mut lights = home.bus.subscribe([EventFilter::Entity("light.*".parse::<EntityGlob>()?)], 64)?;
//!
//! let hall = "light.hall".parse()?;
//! let attrs = Attributes::try_from(serde_json::json!({"brightness": 200}))?;
//! home.states.set(&hall, "on", attrs, &Context::for_user("alice"))?;
//!
//! let event = lights.recv().await.expect("published");
//! let change = event.as_state_changed().expect("a state change");
//! assert_eq!(change.new_state.as_ref().map(|s| s.state()), Some("on"));
//! assert!(change.old_state.is_none());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod context;
mod entity_glob;
mod entity_id;
mod event;
mod event_bus;
mod home;
mod service;
mod state;
mod state_machine;
mod sync;

pub use crate::context::*;
pub use crate::entity_glob::*;
pub use crate::entity_id::*;
pub use crate::event::*;
pub use crate::event_bus::*;
pub use crate::home::*;
pub use crate::service::*;
pub use crate::state::*;
pub use crate::state_machine::*;
pub use crate::sync::*;

// Re-exported so plugins and the server use the same versions.
pub use chrono;
pub use serde_json;
