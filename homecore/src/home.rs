//! The home: the state machine, the bus and the services, wired together.

use crate::{EventBus, ServiceRegistry, StateMachine};

/// Everything plugins live in: states, events and services sharing one bus, like Home
/// Assistant's `hass` object. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Home {
    /// The event bus.
    pub bus: EventBus,
    /// The state machine, publishing on [`Home::bus`].
    pub states: StateMachine,
    /// The service registry, reporting changes from [`Home::states`].
    pub services: ServiceRegistry,
}

impl Home {
    /// An empty home.
    #[must_use]
    pub fn new() -> Self {
        let bus = EventBus::new();
        let states = StateMachine::new(bus.clone());
        let services = ServiceRegistry::new(states.clone());
        Self {
            bus,
            states,
            services,
        }
    }
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}
