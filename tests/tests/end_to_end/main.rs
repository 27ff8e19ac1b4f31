//! End-to-end tests: the home, the registry and first-party plugins through public APIs.

mod guest_build;
mod motion_lights;
mod server;
mod signed_packages;
mod wasm_example;
mod wire_round_trip;
