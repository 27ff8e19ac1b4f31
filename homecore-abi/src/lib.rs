//! HomeCore's host ABI, frozen per version, shared by the host and the guest SDK.
//!
//! A WASM plugin talks to HomeCore only through the functions, status codes and JSON shapes
//! fixed here. Each ABI version is one module ([`v1`]); [`latest`] names the newest. A frozen
//! table is never edited: a change is a new version, served beside the old one.
//!
//! Beside the tables, this crate holds the one copy of the rules both sides of the boundary
//! apply: entity id syntax ([`check_entity_id`]), name patterns ([`glob_match`]) and the
//! module's declared ABI version ([`module_abi_version`]), and how outside text is cut
//! ([`text`]) (docs/adr/0014-contract-in-homecore-abi.md).
//!
//! The reference page is `docs/abi-v1.md`; the decision record `docs/adr/0005-host-abi-v1.md`.
//!
//! ```
//! use homecore_abi::v1;
//! assert_eq!(v1::IMPORT_MODULE, "homecore_v1");
//! let log = v1::IMPORTS.iter().find(|f| f.name == "log").expect("log is an import");
//! assert_eq!(log.params, &[v1::ValType::I32, v1::ValType::I32, v1::ValType::I32]);
//! assert_eq!(v1::Status::from_code(-2), Some(v1::Status::Denied));
//! ```
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod entity_id;
mod glob;
mod module_section;
pub mod text;
pub mod v1;

pub use crate::entity_id::*;
pub use crate::glob::*;
pub use crate::module_section::*;

/// The newest ABI version.
pub use v1 as latest;

/// ABI versions this crate describes, oldest first.
pub const SUPPORTED_VERSIONS: &[u32] = &[v1::ABI_VERSION];
