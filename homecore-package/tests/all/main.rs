//! Integration tests of homecore-package through its public API: signing, trust, rollback,
//! compatibility, discovery and the commands.

mod commands;
mod compat;
mod discovery;
mod rollback;
mod signing;
mod support;
