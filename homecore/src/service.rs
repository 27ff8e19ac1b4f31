//! Services: named actions (`light.turn_on`) with JSON data, registered by integrations.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use serde_json::{Map, Value};

use crate::entity_id::validate_domain;
use crate::{Context, EntityIdError, LoopGuardError, State, StateMachine, json_type_name};

/// The error type a service handler may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A service's full name, `domain.service`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName {
    domain: Arc<str>,
    service: Arc<str>,
}

impl ServiceName {
    /// Validates both parts by Home Assistant's domain / slug rule.
    ///
    /// # Errors
    /// [`ServiceError::InvalidName`] naming the bad part.
    pub fn new(domain: &str, service: &str) -> Result<Self, ServiceError> {
        for part in [domain, service] {
            validate_domain(part).map_err(|source| ServiceError::InvalidName {
                name: format!("{domain}.{service}"),
                source,
            })?;
        }
        Ok(Self {
            domain: domain.into(),
            service: service.into(),
        })
    }

    /// Parses `domain.service`.
    ///
    /// # Errors
    /// [`ServiceError::InvalidName`] when the text is not `domain.service`.
    pub fn parse(name: &str) -> Result<Self, ServiceError> {
        match name.split_once('.') {
            Some((domain, service)) => Self::new(domain, service),
            None => Err(ServiceError::InvalidName {
                name: name.to_owned(),
                source: EntityIdError::MissingDot {
                    id: name.to_owned(),
                },
            }),
        }
    }

    /// The domain, e.g. `light`.
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The service, e.g. `turn_on`.
    #[must_use]
    pub fn service(&self) -> &str {
        &self.service
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.domain, self.service)
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// One call of a service.
#[derive(Debug, Clone)]
pub struct ServiceCall {
    /// Which service.
    pub name: ServiceName,
    /// The call's data: always a JSON object.
    pub data: Map<String, Value>,
    /// The call's context; writes the handler makes should use it or a child of it.
    pub context: Context,
}

/// What a call returned.
#[derive(Debug, Clone, Default)]
pub struct ServiceResponse {
    /// The states the call changed (written under the call's context or a child of it).
    pub changed_states: Vec<Arc<State>>,
    /// Response data, for services that return some.
    pub response: Option<Value>,
}

/// Why a service could not be registered or called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// No such service.
    #[error("service {name} is not registered")]
    UnknownService {
        /// The service asked for.
        name: String,
    },
    /// The name is not `domain.service` with valid parts.
    #[error("{name:?} is not a valid service name")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        #[source]
        source: EntityIdError,
    },
    /// The service is already registered.
    #[error("service {name} is already registered")]
    AlreadyRegistered {
        /// The service.
        name: ServiceName,
    },
    /// The data is not a JSON object.
    #[error("data for {name} must be a JSON object, found {found}")]
    DataNotAnObject {
        /// The service.
        name: ServiceName,
        /// The JSON type found.
        found: &'static str,
    },
    /// The data was refused by the handler.
    #[error("invalid data for {name}: {reason}")]
    InvalidData {
        /// The service.
        name: ServiceName,
        /// What is wrong.
        reason: String,
    },
    /// The handler failed.
    #[error("service {name} failed")]
    Failed {
        /// The service.
        name: ServiceName,
        /// The handler's error.
        #[source]
        source: BoxError,
    },
    /// The call was refused by the loop guard.
    #[error(transparent)]
    LoopGuard(#[from] LoopGuardError),
    /// A state write made by the handler failed.
    #[error(transparent)]
    State(#[from] crate::StateError),
}

/// Something that carries out a service.
#[async_trait]
pub trait ServiceHandler: Send + Sync + 'static {
    /// Carries out `call`; returns optional response data.
    ///
    /// # Errors
    /// [`ServiceError::InvalidData`] for bad data, [`ServiceError::Failed`] otherwise.
    async fn call(&self, call: ServiceCall) -> Result<Option<Value>, ServiceError>;
}

/// Registered services. Cheap to clone; clones share services.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use homecore::*;
///
/// struct TurnOn(StateMachine);
/// #[async_trait::async_trait]
/// impl ServiceHandler for TurnOn {
///     async fn call(&self, call: ServiceCall) -> Result<Option<serde_json::Value>, ServiceError> {
///         let id: EntityId = call.data["entity_id"].as_str().unwrap_or_default().parse()
///             .map_err(|e: EntityIdError| ServiceError::InvalidData { name: call.name.clone(), reason: e.to_string() })?;
///         self.0.set(&id, "on", Attributes::new(), &call.context)?;
///         Ok(None)
///     }
/// }
///
/// let home = Home::new();
/// home.services.register(ServiceName::new("light", "turn_on")?, Arc::new(TurnOn(home.states.clone())))?;
/// let response = home.services
///     .call("light", "turn_on", serde_json::json!({"entity_id": "light.hall"}), Context::new())
///     .await?;
/// assert_eq!(response.changed_states[0].state(), "on");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ServiceRegistry {
    services: Arc<DashMap<ServiceName, Arc<dyn ServiceHandler>>>,
    states: StateMachine,
}

impl std::fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRegistry")
            .field("services", &self.services.len())
            .finish_non_exhaustive()
    }
}

impl ServiceRegistry {
    /// An empty registry whose calls report changes from `states`.
    #[must_use]
    pub fn new(states: StateMachine) -> Self {
        Self {
            services: Arc::new(DashMap::new()),
            states,
        }
    }

    /// Registers a service.
    ///
    /// # Errors
    /// [`ServiceError::AlreadyRegistered`] when the name is taken.
    pub fn register(
        &self,
        name: ServiceName,
        handler: Arc<dyn ServiceHandler>,
    ) -> Result<(), ServiceError> {
        match self.services.entry(name) {
            Entry::Occupied(e) => Err(ServiceError::AlreadyRegistered {
                name: e.key().clone(),
            }),
            Entry::Vacant(e) => {
                e.insert(handler);
                Ok(())
            }
        }
    }

    /// Removes a service; returns whether it was registered.
    pub fn unregister(&self, name: &ServiceName) -> bool {
        self.services.remove(name).is_some()
    }

    /// Whether a service is registered.
    #[must_use]
    pub fn has(&self, domain: &str, service: &str) -> bool {
        ServiceName::new(domain, service).is_ok_and(|n| self.services.contains_key(&n))
    }

    /// Every registered service, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<ServiceName> {
        let mut names: Vec<_> = self.services.iter().map(|e| e.key().clone()).collect();
        names.sort();
        names
    }

    /// Calls `domain.service` with `data` (a JSON object or null) under `context`, returning the
    /// states the call changed.
    ///
    /// # Errors
    /// [`ServiceError::UnknownService`], [`ServiceError::DataNotAnObject`],
    /// [`ServiceError::LoopGuard`], or the handler's error.
    pub async fn call(
        &self,
        domain: &str,
        service: &str,
        data: Value,
        context: Context,
    ) -> Result<ServiceResponse, ServiceError> {
        let unknown = || ServiceError::UnknownService {
            name: format!("{domain}.{service}"),
        };
        let name = ServiceName::new(domain, service).map_err(|_| unknown())?;
        // Clone the handler out so no map guard is held across the await.
        let handler = self
            .services
            .get(&name)
            .map(|h| Arc::clone(&h))
            .ok_or_else(unknown)?;
        let data = match data {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ServiceError::DataNotAnObject {
                    name,
                    found: json_type_name(&other),
                });
            }
        };
        self.states.bus().check_loop_guard(&context)?;
        let tracker = self.states.track_changes(context.id);
        let response = handler
            .call(ServiceCall {
                name,
                data,
                context,
            })
            .await?;
        Ok(ServiceResponse {
            changed_states: tracker.finish(),
            response,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attributes, EntityId, EventBus};

    struct Toggle(StateMachine);

    #[async_trait]
    impl ServiceHandler for Toggle {
        async fn call(&self, call: ServiceCall) -> Result<Option<Value>, ServiceError> {
            let id = call
                .data
                .get("entity_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<EntityId>().ok())
                .ok_or_else(|| ServiceError::InvalidData {
                    name: call.name.clone(),
                    reason: "entity_id is required".into(),
                })?;
            let next = match self.0.get(&id).map(|s| s.state() == "on") {
                Some(true) => "off",
                _ => "on",
            };
            self.0
                .set(&id, next, Attributes::new(), &call.context.child(None))
                .map_err(|e| ServiceError::Failed {
                    name: call.name.clone(),
                    source: e.into(),
                })?;
            Ok(Some(serde_json::json!({"now": next})))
        }
    }

    fn registry() -> ServiceRegistry {
        let states = StateMachine::new(EventBus::new());
        let services = ServiceRegistry::new(states.clone());
        services
            .register(
                ServiceName::new("switch", "toggle").expect("valid"),
                Arc::new(Toggle(states)),
            )
            .expect("registered");
        services
    }

    #[tokio::test]
    async fn call_returns_changed_states_and_response() {
        let services = registry();
        let r = services
            .call(
                "switch",
                "toggle",
                serde_json::json!({"entity_id": "switch.fan"}),
                Context::new(),
            )
            .await
            .expect("ok");
        assert_eq!(r.changed_states.len(), 1);
        assert_eq!(r.changed_states[0].state(), "on");
        assert_eq!(r.response, Some(serde_json::json!({"now": "on"})));
    }

    #[tokio::test]
    async fn error_paths_are_typed() {
        let services = registry();
        assert!(matches!(
            services.call("switch", "explode", Value::Null, Context::new()).await,
            Err(ServiceError::UnknownService { name }) if name == "switch.explode"
        ));
        assert!(matches!(
            services
                .call("Bad Domain", "x", Value::Null, Context::new())
                .await,
            Err(ServiceError::UnknownService { .. })
        ));
        assert!(matches!(
            services
                .call("switch", "toggle", serde_json::json!([1]), Context::new())
                .await,
            Err(ServiceError::DataNotAnObject { found: "array", .. })
        ));
        assert!(matches!(
            services
                .call("switch", "toggle", Value::Null, Context::new())
                .await,
            Err(ServiceError::InvalidData { .. })
        ));
        let name = ServiceName::new("switch", "toggle").expect("valid");
        let again = services.register(name, Arc::new(Toggle(StateMachine::new(EventBus::new()))));
        assert!(matches!(again, Err(ServiceError::AlreadyRegistered { .. })));
        assert!(ServiceName::parse("nodot").is_err());
        assert_eq!(services.names().len(), 1);
    }
}
