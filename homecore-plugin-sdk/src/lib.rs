//! Write HomeCore plugins in Rust, compiled to WebAssembly.
//!
//! A HomeCore WASM plugin is a `wasm32-unknown-unknown` module that talks to the host only
//! through ABI v1 ([`homecore_abi::v1`]): a handful of imports from module `homecore_v1`,
//! a handful of exports, and JSON payloads. This crate hides all of it: implement [`Plugin`],
//! call [`export_plugin!`] once, and reach the home through safe functions such as
//! [`get_state`], [`set_state`], [`subscribe`] and [`start_timer`].
//!
//! # Example
//!
//! A plugin that mirrors every switch onto a light and counts the flips (the complete
//! reference plugin is the `homecore-plugin-example` crate):
//!
//! ```
//! use homecore_plugin_sdk::{self as sdk, Config, Error, Plugin, Result, StateChangedEvent};
//!
//! #[derive(serde::Deserialize)]
//! struct Options {
//!     light: String,
//! }
//!
//! #[derive(Default)]
//! struct Mirror {
//!     light: String,
//! }
//!
//! impl Plugin for Mirror {
//!     fn setup(&mut self, config: &Config<'_>) -> Result<()> {
//!         let options: Options = config.parse().map_err(|_| Error::config("light", "must be an entity id"))?;
//!         self.light = options.light;
//!         sdk::subscribe("switch.*")?;
//!         sdk::info!("mirroring switches onto {}", self.light);
//!         Ok(())
//!     }
//!
//!     fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> Result<()> {
//!         let Some(new) = &event.new_state else { return Ok(()) };
//!         // Keep the light's attributes: pass them through without parsing them.
//!         let light = sdk::get_state(&self.light)?;
//!         sdk::set_state(&self.light, &new.state, light.as_ref().map(|l| l.raw_attributes()))?;
//!         let flips = sdk::kv_get("flips")?
//!             .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
//!             .unwrap_or(0);
//!         sdk::kv_set("flips", (flips + 1).to_string().as_bytes())
//!     }
//! }
//!
//! sdk::export_plugin!(Mirror);
//!
//! // On the build machine the same plugin runs against a fake host:
//! # fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
//! use homecore_plugin_sdk::testing::FakeHost;
//! use serde_json::json;
//!
//! let host = FakeHost::new();
//! host.put_state("light.hall", "off", json!({"brightness": 77}));
//! host.setup::<Mirror>(&json!({"light": "light.hall"}))?;
//! host.set_state("switch.hall", "on", json!({}))?;
//! assert_eq!(host.state("light.hall").as_deref(), Some("on"));
//! assert_eq!(host.attributes("light.hall"), Some(json!({"brightness": 77})));
//! assert_eq!(host.kv("flips").as_deref(), Some(&b"1"[..]));
//!
//! let err = host.setup::<Mirror>(&json!({"light": 3})).expect_err("not an entity id");
//! assert_eq!(err.message.as_deref(), Some("invalid configuration at light: must be an entity id"));
//! # Ok(()) }
//! ```
//!
//! Build it with
//! `cargo build --release --target wasm32-unknown-unknown` in a crate with
//! `crate-type = ["cdylib"]`, and ship the `.wasm` with a `manifest.json` whose `homecore`
//! section says `"runtime": "wasm"`, names the module and asks for the permissions the plugin
//! needs (see the example crate's README).
//!
//! # Core concepts
//!
//! - **One instance, one call at a time.** The host calls `setup` on a fresh
//!   `Default::default()`, then one method per event, in event order, never concurrently.
//!   State lives in the plugin's fields; what must survive a reload goes to [`kv_set`].
//! - **Host calls are checked.** Every function here is a host import; the host checks it
//!   against the permissions the manifest asked for and the operator granted, and a refusal is
//!   an [`Error::Host`] with [`Status::Denied`]. Return it with `?`: the call fails, the
//!   message reaches the host's log.
//! - **JSON stays unparsed until read.** Events borrow from the payload; a state's attributes
//!   are [`RawJson`], not even checked until read, and event data a
//!   [`RawValue`](serde_json::value::RawValue). Pass them through untouched ([`set_state`]
//!   takes raw attributes), read one member with [`attribute`], or a whole shape with
//!   [`from_raw`]. Nothing is parsed that the plugin does not read.
//! - **Timers instead of threads.** There are no threads or async runtime in the sandbox:
//!   [`start_timer`] asks the host to call [`Plugin::on_timer`] later with a token of the
//!   plugin's choosing (starting a pending token restarts it; [`cancel_timer`] cancels).
//! - **Errors.** [`Error`] says what failed: a host status ([`Error::Host`]), bad
//!   configuration ([`Error::config`]), an unknown service, JSON, or anything else
//!   ([`Error::other`]). A failed call's message, with its sources, goes to the host through
//!   the `error` import and the export answers [`Status::GuestError`]. A panic traps the module
//!   (wasm32 panics abort) after its message was handed over the same way.
//! - **Memory.** `hc_alloc` / `hc_free` are Rust's global allocator with a fixed alignment
//!   ([`BUFFER_ALIGN`]); payload buffers the host passes to an export are freed by the SDK once
//!   the call returns. Results up to [`SCRATCH_CAPACITY`] bytes arrive in a reused buffer, larger
//!   ones are fetched with `take_result`.
//!
//! # Testing
//!
//! On every target but wasm32 the host imports are stand-ins that answer
//! [`Status::Internal`], unless a test installed a `testing::FakeHost`, an in-memory host
//! with ABI v1's semantics: unit-test plugins with `cargo test`, no WASM engine needed.
//!
//! # Features
//!
//! None. The crate builds for `wasm32-unknown-unknown` (the plugin target) and for the build
//! machine (tests, docs, clippy).

pub use homecore_abi;
pub use homecore_abi::v1::Status;
pub use homecore_abi::v1::wire::{
    Context, CustomEvent, RawJson, ServiceCall, State, StateChangedEvent,
};

mod dispatch;
mod error;
mod event_reader;
mod ffi;
mod host;
mod plugin;
mod state;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use crate::error::*;
pub use crate::ffi::BUFFER_ALIGN;
pub use crate::host::*;
pub use crate::plugin::*;
pub use crate::state::*;

/// What [`export_plugin!`] expands to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use homecore_abi::v1::ABI_SECTION_CONTENT;

    pub use crate::dispatch::{DynPlugin, new_plugin};
    #[cfg(target_arch = "wasm32")]
    pub use crate::ffi::{
        hc_alloc, hc_call_service, hc_free, hc_on_event, hc_on_state_changed, hc_on_timer,
        hc_setup, hc_teardown,
    };
}
