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

/// Why a call was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// The plugin's grant (declared ∩ granted) does not cover it.
    NotGranted,
    /// The event type is one the core owns ([`homecore::is_core_event_type`]): only the core
    /// makes it, whatever a plugin is granted.
    CoreOwnedEvent,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotGranted => "not granted",
            Self::CoreOwnedEvent => "only the core makes events of this type",
        })
    }
}

/// Why a host call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The plugin may not make the call.
    #[error("plugin {plugin} may not {action} {target}: {reason}")]
    Denied {
        /// The plugin.
        plugin: String,
        /// What it tried.
        action: HostAction,
        /// On what (entity id, glob, service, event type or key).
        target: String,
        /// Why not.
        reason: DenyReason,
    },
    /// The plugin has made as many of these as its budget allows for now
    /// ([`crate::ResourceLimits`]' rates; the call may succeed once the budget refills).
    #[error(
        "plugin {plugin} is over its budget of {per_second} {what} per second (bursts of {burst})"
    )]
    QuotaExceeded {
        /// The plugin.
        plugin: String,
        /// What it tried to make.
        what: crate::Emission,
        /// The rate it is held to.
        per_second: u32,
        /// The most it may make at once.
        burst: u32,
    },
    /// The plugin already holds as many subscriptions as it may.
    #[error("plugin {plugin} already holds {max} subscriptions")]
    TooManySubscriptions {
        /// The plugin.
        plugin: String,
        /// The cap ([`crate::ResourceLimits::subscriptions`]).
        max: usize,
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
