//! HomeCore's plugin system.
#![forbid(unsafe_code)]

mod limits;
mod manifest;
mod permissions;

pub use crate::limits::*;
pub use crate::manifest::*;
pub use crate::permissions::*;
