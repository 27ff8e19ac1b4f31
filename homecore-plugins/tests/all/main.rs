//! Integration tests of homecore-plugins through its public API.

mod failures;
mod lifecycle;
mod observability;
mod permissions;
mod support;
#[cfg(feature = "wasmtime")]
mod wasm;
