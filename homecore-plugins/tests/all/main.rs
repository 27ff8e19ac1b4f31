//! Integration tests of homecore-plugins through its public API.

mod failures;
mod fuzz_manifest;
mod hostile_emission;
mod lifecycle;
mod memory;
mod observability;
mod permissions;
mod support;
#[cfg(feature = "wasmtime")]
mod wasm;
