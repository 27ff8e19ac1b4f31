//! The Wasmtime runtime, through the registry, with inline WAT guests.

mod compile_bounds;
mod disk_cache;
mod guests;
mod hostile_exports;
mod hostile_forged;
mod hostile_imports;
mod hostile_limits;
mod hostile_modules;
mod memory;
mod smoke;
