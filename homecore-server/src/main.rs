//! The `homecore` binary.
#![forbid(unsafe_code)]
fn main() {}
