//! Integration tests of the `homecore` server over real TCP: REST, WebSocket mount, startup,
//! shutdown and the CLI.

mod cli;
mod events;
mod fuzz_rest;
mod fuzz_websocket;
mod hostile_clients;
#[cfg(feature = "wasm")]
mod hot_reload;
mod http;
mod metrics;
mod persistence;
mod plugins;
mod services;
mod startup;
mod states;
mod support;
mod websocket;
mod websocket_protocol;
