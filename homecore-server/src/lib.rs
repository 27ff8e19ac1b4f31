//! The `homecore` server: loads integrations at startup and speaks Home Assistant's REST and
//! WebSocket APIs (docs/adr/0009-server.md).
//!
//! The `homecore` binary is a thin layer over this library: `homecore run` is [`start`] with a
//! [`Config`] read from `homecore.toml` (or the defaults), then [`RunningServer::shutdown`] on
//! SIGTERM / Ctrl-C.
//!
//! # Example
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use homecore_server::{ApiConfig, Config};
//!
//! let config = Config {
//!     listen: "127.0.0.1:0".parse()?,
//!     data_dir: Some("/tmp/homecore-example".into()),
//!     api: ApiConfig { tokens: vec!["a-long-enough-access-token".into()], ..ApiConfig::default() },
//!     ..Config::default()
//! };
//! let server = homecore_server::start(config).await?;
//! println!("listening on http://{}", server.addr());
//! // GET /api/states with `Authorization: Bearer a-long-enough-access-token` ...
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Concepts
//!
//! - [`Config`]: `homecore.toml`, every section optional; [`Config::parse`] lists every
//!   problem with its path, and [`start`] adds the plugin entries checked against their
//!   manifests' JSON Schemas ([`check_plugin_config`]).
//! - [`DataDir`]: secrets (0600) and state; the first start creates the access token.
//! - [`TokenStore`]: the accepted tokens, compared in constant time (REST and WebSocket).
//! - [`Api`]: the axum router — Home Assistant's REST routes, `/api/websocket`
//!   ([`websocket::WebSocketApi`]) and HomeCore's plugin routes; JSON shapes from [`ha_json`].
//! - [`start`] / [`RunningServer`]: startup in order (example install, discovery of signed
//!   packages, config check, plugins loaded in dependency order) and graceful shutdown.
//! - [`check_manifest_file`]: `homecore manifest check`, with Home Assistant's rules in
//!   [`ManifestRules::HomeAssistant`].
//!
//! # Cargo features
//!
//! - `wasm` (default): the Wasmtime runtime for signed WASM packages, and the reference WASM
//!   plugin embedded (built for wasm32 by `build.rs`) and installed, signed by a local key, on
//!   start. Without it, only compiled-in plugins run.
#![forbid(unsafe_code)]

mod candidate;
mod config;
mod connections;
mod data_dir;
mod durability;
mod error_chain;
#[cfg(feature = "wasm")]
mod examples;
pub mod ha_json;
#[cfg(feature = "wasm")]
mod hot_reload;
mod manifest_check;
mod metrics;
mod plugin_config;
mod rest;
mod server;
mod tokens;
pub mod websocket;

pub use crate::candidate::native_plugins;
pub use crate::config::*;
pub use crate::data_dir::*;
#[cfg(feature = "wasm")]
pub use crate::examples::*;
pub use crate::manifest_check::*;
pub use crate::plugin_config::*;
pub use crate::rest::*;
pub use crate::server::*;
pub use crate::tokens::*;
