//! HomeCore's durable store: one SQLite file (WAL mode) holding what must survive a restart.
//!
//! # Concepts
//!
//! - [`Store`]: the database. [`Store::open`] checks the file (`PRAGMA quick_check`), refuses
//!   a schema from a newer build, and migrates an older one; a file that is not a database, is
//!   corrupt or cannot be opened is reported as a typed [`StoreError`] naming the path, and is
//!   never replaced or recreated.
//! - Entity states: [`Store::restore`] puts the last recorded state of every entity back into
//!   the state machine at start (Home Assistant's restore-state, with the original
//!   `last_changed`/`last_updated`), before plugins start. A [`StateRecorder`] then writes every
//!   change in batches on its own thread, so `StateMachine::set` never waits on disk.
//! - The durability promise: each state change gets a sequence number;
//!   [`StateRecorder::flush`] waits until every change made before it is committed, and
//!   [`StateRecorder::durable_seq`] tells how far that is. A committed change survives a process
//!   kill, and with [`Durability::PowerLoss`] (the default) a power cut too. Without a flush a
//!   change is committed within [`RecorderConfig::commit_interval`] (20 ms by default).
//! - [`SqlitePluginStorage`]: plugins' key-value data with a per-plugin quota, implementing
//!   `homecore_plugins::PluginStorage`; every write is durable when it returns.
//! - Accepted plugin versions: [`Store::accepted_version`] and [`Store::record_accepted`]
//!   keep the highest version accepted per plugin domain (rollback protection).
//!
//! See docs/adr/0010-persistence.md for the decisions and figures.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use homecore::{Attributes, Context, Home};
//! use homecore_plugins::PluginStorage;
//! use homecore_store::{RecorderConfig, SqlitePluginStorage, StateRecorder, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("homecore.db");
//!
//! // First run: record a state and a plugin's setting.
//! {
//!     let store = Store::open(&path)?;
//!     let home = Home::new();
//!     store.restore(&home)?;
//!     let recorder = StateRecorder::start(&store, &home.states, RecorderConfig::default())?;
//!     home.states.set(&"light.hall".parse()?, "on", Attributes::new(), &Context::new())?;
//!     recorder.flush().await?; // the change is on disk now
//!     SqlitePluginStorage::open(&store)?.set("motion_lights", "delay", b"30", 1024)?;
//!     recorder.shutdown().await?;
//! }
//!
//! // Next run: everything is back.
//! let store = Store::open(&path)?;
//! let home = Home::new();
//! store.restore(&home)?;
//! assert_eq!(home.states.get_str("light.hall").map(|s| s.state().to_owned()), Some("on".into()));
//! let storage = SqlitePluginStorage::open(&store)?;
//! assert_eq!(storage.get("motion_lights", "delay").as_deref(), Some(&b"30"[..]));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod accepted;
mod error;
mod plugin_storage;
mod recorder;
mod schema;
mod states;
mod store;

pub use crate::error::*;
pub use crate::plugin_storage::*;
pub use crate::recorder::*;
pub use crate::schema::SCHEMA_VERSION;
pub use crate::states::*;
pub use crate::store::*;
