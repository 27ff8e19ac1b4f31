//! Why a host call failed, and what the plugin tried to do.

use std::fmt;

use homecore::{
    EntityGlobError, EntityIdError, EventBusError, EventTypeError, ServiceError, StateError,
};

use crate::StorageError;

/// What a plugin tried to do, for [`HostError::Denied`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostAction {
    /// Read a state.
    ReadState,
    /// Write or remove a state.
    WriteState,
    /// Subscribe to state changes.
    Subscribe,
    /// Call a service.
    CallService,
    /// Fire an event (or subscribe to one).
    FireEvent,
    /// Use key-value storage.
    Storage,
    /// Register a service outside the plugin's own domain.
    RegisterService,
}

impl fmt::Display for HostAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadState => "read state of",
            Self::WriteState => "write state of",
            Self::Subscribe => "subscribe to",
            Self::CallService => "call service",
            Self::FireEvent => "fire event",
            Self::Storage => "use storage key",
            Self::RegisterService => "register service",
        })
    }
}

/// Why a host call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The plugin's grant does not allow the call.
    #[error("plugin {plugin} may not {action} {target}")]
    Denied {
        /// The plugin.
        plugin: String,
        /// What it tried.
        action: HostAction,
        /// On what (entity id, glob, service, event type or key).
        target: String,
    },
    /// An invalid entity id.
    #[error(transparent)]
    EntityId(#[from] EntityIdError),
    /// An invalid glob.
    #[error(transparent)]
    Glob(#[from] EntityGlobError),
    /// An invalid event type.
    #[error(transparent)]
    EventType(#[from] EventTypeError),
    /// The state machine refused the write.
    #[error(transparent)]
    State(#[from] StateError),
    /// The service call failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The event bus refused.
    #[error(transparent)]
    Bus(#[from] EventBusError),
    /// Storage refused.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A plugin called a service it provides itself from inside one of its own calls, which
    /// would wait on itself forever.
    #[error("plugin {plugin} called its own service {service}; call its logic directly instead")]
    Reentrant {
        /// The plugin.
        plugin: String,
        /// The service.
        service: String,
    },
    /// The plugin already has [`crate::MAX_TIMERS`] timers pending.
    #[error("plugin {plugin} already has {max} timers pending")]
    TooManyTimers {
        /// The plugin.
        plugin: String,
        /// [`crate::MAX_TIMERS`].
        max: usize,
    },
    /// The plugin is no longer running.
    #[error("plugin {plugin} is not running")]
    NotRunning {
        /// The plugin.
        plugin: String,
    },
}
