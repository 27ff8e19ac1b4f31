//! The `homecore` server: loads integrations at startup and speaks Home Assistant's REST and
//! WebSocket APIs.
#![forbid(unsafe_code)]

mod config;
mod data_dir;
#[cfg(feature = "wasm")]
mod examples;
pub mod ha_json;
mod manifest_check;
mod plugin_config;
mod rest;
mod server;
mod tokens;
pub mod websocket;

pub use crate::config::*;
pub use crate::data_dir::*;
#[cfg(feature = "wasm")]
pub use crate::examples::*;
pub use crate::manifest_check::*;
pub use crate::plugin_config::*;
pub use crate::rest::*;
pub use crate::server::*;
pub use crate::tokens::*;
