//! The Wasmtime runtime, through the registry, with inline WAT guests.

mod guests;
mod smoke;
