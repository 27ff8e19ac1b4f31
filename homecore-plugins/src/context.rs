//! The plugin's only door to the host: every call is checked against the plugin's grant.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homecore::{
    Attributes, Context, EntityGlob, EntityGlobError, EntityId, EntityIdError, EventBusError,
    EventFilter, EventType, EventTypeError, Home, ServiceError, ServiceName, ServiceResponse,
    SetOutcome, State, StateError, SubscriberId,
};
use serde_json::Value;

use crate::call_stats::LatencyHistograms;
use crate::{Grant, PluginStorage, StorageError};

/// Most timers one plugin may have pending.
pub const MAX_TIMERS: usize = 1024;

/// Log lines longer than this many bytes are cut (at a character boundary) before logging.
pub const MAX_LOG_LEN: usize = 1024;

/// Log lines a plugin may write per second on average …
pub const LOG_LINES_PER_SECOND: u32 = 50;

/// … and in one burst.
pub const LOG_BURST: u32 = 200;

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
    /// The plugin already has [`MAX_TIMERS`] timers pending.
    #[error("plugin {plugin} already has {max} timers pending")]
    TooManyTimers {
        /// The plugin.
        plugin: String,
        /// [`MAX_TIMERS`].
        max: usize,
    },
    /// The plugin is no longer running.
    #[error("plugin {plugin} is not running")]
    NotRunning {
        /// The plugin.
        plugin: String,
    },
}

/// A plugin's counters, shared with the registry; plain relaxed atomics, read at scrape time
/// (docs/adr/0011-metrics-and-tracing.md).
#[derive(Debug, Default)]
pub(crate) struct PluginCounters {
    pub(crate) events: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) host_calls: AtomicU64,
    pub(crate) logs_dropped: AtomicU64,
    /// WASM fuel (instructions) consumed by calls into the plugin.
    pub(crate) fuel_used: AtomicU64,
    /// Times the plugin was quarantined.
    pub(crate) quarantines: AtomicU64,
    /// The capacity of the running plugin's mailbox.
    pub(crate) mailbox_capacity: AtomicU64,
    /// Call latency per hook.
    pub(crate) latency: LatencyHistograms,
}

/// A token bucket limiting one plugin's log lines.
struct LogLimiter {
    tokens: f64,
    last: Instant,
}

impl LogLimiter {
    fn new() -> Self {
        Self {
            tokens: f64::from(LOG_BURST),
            last: Instant::now(),
        }
    }

    fn admit(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(LOG_LINES_PER_SECOND);
        self.tokens = (self.tokens + refill).min(f64::from(LOG_BURST));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the host knows of one loaded plugin; shared by all its [`PluginContext`]s.
pub(crate) struct PluginHost {
    pub(crate) domain: Arc<str>,
    pub(crate) home: Home,
    pub(crate) grant: Grant,
    pub(crate) storage: Arc<dyn PluginStorage>,
    pub(crate) storage_quota: u64,
    pub(crate) counters: Arc<PluginCounters>,
    pub(crate) subscriber: SubscriberId,
    pub(crate) service_calls: crate::dispatcher::ControlSender,
    pub(crate) call_timeout: Duration,
    pub(crate) own_services: Mutex<Vec<ServiceName>>,
    pub(crate) timers: Mutex<Timers>,
    log_limiter: Mutex<LogLimiter>,
}

/// A plugin's pending timers: token → (deadline, the context that started it).
#[derive(Default)]
pub(crate) struct Timers {
    pending: std::collections::HashMap<u64, (tokio::time::Instant, Context)>,
}

impl Timers {
    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<tokio::time::Instant> {
        self.pending.values().map(|(at, _)| *at).min()
    }

    /// Removes and returns the timers due at `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: tokio::time::Instant) -> Vec<(u64, Context)> {
        let mut due: Vec<(tokio::time::Instant, u64)> = self
            .pending
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(token, (at, _))| (*at, *token))
            .collect();
        due.sort_unstable();
        due.into_iter()
            .filter_map(|(_, token)| self.pending.remove(&token).map(|(_, cause)| (token, cause)))
            .collect()
    }
}

impl PluginHost {
    #[expect(
        clippy::too_many_arguments,
        reason = "internal constructor called from one place"
    )]
    pub(crate) fn new(
        domain: Arc<str>,
        home: Home,
        grant: Grant,
        storage: Arc<dyn PluginStorage>,
        storage_quota: u64,
        counters: Arc<PluginCounters>,
        subscriber: SubscriberId,
        service_calls: crate::dispatcher::ControlSender,
        call_timeout: Duration,
    ) -> Self {
        Self {
            domain,
            home,
            grant,
            storage,
            storage_quota,
            counters,
            subscriber,
            service_calls,
            call_timeout,
            own_services: Mutex::new(Vec::new()),
            timers: Mutex::new(Timers::default()),
            log_limiter: Mutex::new(LogLimiter::new()),
        }
    }

    /// Unregisters the services this plugin registered.
    pub(crate) fn unregister_services(&self) {
        let names = std::mem::take(
            &mut *self
                .own_services
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for name in names {
            self.home.services.unregister(&name);
        }
    }
}

/// Log severity for [`PluginContext::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum LogLevel {
    /// Fine detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected.
    Warn,
    /// A failure.
    Error,
}

/// The plugin's door to the host: states, services, events, logs and storage, every call
/// checked against the plugin's [`Grant`] (declared in the manifest ∩ granted by the operator).
///
/// A denied call returns [`HostError::Denied`], is logged and counted. Native and WASM plugins
/// go through the same checks. Cheap to clone; a clone made inside an event handler keeps that
/// event as the cause of its writes (so a timer's write is still part of the event's chain).
#[derive(Clone)]
pub struct PluginContext {
    host: Arc<PluginHost>,
    cause: Option<Context>,
}

impl PluginContext {
    pub(crate) fn new(host: Arc<PluginHost>) -> Self {
        Self { host, cause: None }
    }

    /// This context for handling an event or call caused by `cause`.
    pub(crate) fn caused_by(&self, cause: &Context) -> Self {
        Self {
            host: Arc::clone(&self.host),
            cause: Some(cause.clone()),
        }
    }

    /// The plugin's domain.
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.host.domain
    }

    /// The context the next write will carry: a child of the cause (the event being handled),
    /// or a new root context, with the plugin as origin.
    #[must_use]
    pub fn write_context(&self) -> Context {
        let origin = Some(Arc::clone(&self.host.domain));
        match &self.cause {
            Some(cause) => cause.child(origin),
            None => {
                let mut root = Context::new();
                root.origin = origin;
                root
            }
        }
    }

    fn deny(&self, action: HostAction, target: &str) -> HostError {
        self.host.counters.denied.fetch_add(1, Ordering::Relaxed);
        if self.admit_log() {
            tracing::warn!(plugin = %self.host.domain, %action, target = %cap(target), "host call denied");
        }
        HostError::Denied {
            plugin: self.host.domain.to_string(),
            action,
            target: cap(target).to_owned(),
        }
    }

    /// Adds WASM fuel consumed by one call to the plugin's counters.
    #[cfg_attr(
        not(feature = "wasmtime"),
        expect(dead_code, reason = "only the WASM runtime meters fuel")
    )]
    pub(crate) fn record_fuel(&self, fuel: u64) {
        self.host
            .counters
            .fuel_used
            .fetch_add(fuel, Ordering::Relaxed);
    }

    fn count_call(&self) {
        self.host
            .counters
            .host_calls
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The state of `entity_id`.
    ///
    /// # Errors
    /// [`HostError::Denied`] unless the plugin may read the entity.
    pub fn get_state(&self, entity_id: &EntityId) -> Result<Option<Arc<State>>, HostError> {
        self.count_call();
        if !self.host.grant.may_read(entity_id) {
            return Err(self.deny(HostAction::ReadState, entity_id.as_str()));
        }
        Ok(self.host.home.states.get(entity_id))
    }

    /// Writes the state of `entity_id` (attributes replaced).
    ///
    /// # Errors
    /// [`HostError::Denied`] unless the plugin may write the entity; [`HostError::State`] for
    /// an invalid state or a write refused by the loop guard.
    pub fn set_state(
        &self,
        entity_id: &EntityId,
        state: &str,
        attributes: Attributes,
    ) -> Result<SetOutcome, HostError> {
        self.count_call();
        if !self.host.grant.may_write(entity_id) {
            return Err(self.deny(HostAction::WriteState, entity_id.as_str()));
        }
        Ok(self
            .host
            .home
            .states
            .set(entity_id, state, attributes, &self.write_context())?)
    }

    /// Removes `entity_id`.
    ///
    /// # Errors
    /// As [`PluginContext::set_state`].
    pub fn remove_state(&self, entity_id: &EntityId) -> Result<Option<Arc<State>>, HostError> {
        self.count_call();
        if !self.host.grant.may_write(entity_id) {
            return Err(self.deny(HostAction::WriteState, entity_id.as_str()));
        }
        Ok(self
            .host
            .home
            .states
            .remove(entity_id, &self.write_context())?)
    }

    /// Subscribes the plugin to changes of entities matching `pattern` (an entity id or a glob);
    /// they arrive at [`crate::HomeCorePlugin::on_state_changed`].
    ///
    /// # Errors
    /// [`HostError::Glob`] for a bad pattern, [`HostError::Denied`] unless the plugin may read
    /// every entity the pattern can match.
    pub fn subscribe(&self, pattern: &str) -> Result<(), HostError> {
        self.count_call();
        let glob = EntityGlob::new(pattern)?;
        if !self.host.grant.may_read_all_of(&glob) {
            return Err(self.deny(HostAction::Subscribe, pattern));
        }
        self.host
            .home
            .bus
            .add_filter(self.host.subscriber, EventFilter::Entity(glob))?;
        Ok(())
    }

    /// Subscribes the plugin to generic events of `event_type`; they arrive at
    /// [`crate::HomeCorePlugin::on_event`]. Needs the same permission as firing them.
    ///
    /// # Errors
    /// [`HostError::EventType`] or [`HostError::Denied`].
    pub fn subscribe_events(&self, event_type: &str) -> Result<(), HostError> {
        self.count_call();
        let event_type = EventType::new(event_type)?;
        if !self.host.grant.may_fire(event_type.as_str()) {
            return Err(self.deny(HostAction::FireEvent, event_type.as_str()));
        }
        self.host
            .home
            .bus
            .add_filter(self.host.subscriber, EventFilter::EventType(event_type))?;
        Ok(())
    }

    /// Calls `domain.service` with `data`; returns the states it changed.
    ///
    /// # Errors
    /// [`HostError::Denied`], [`HostError::Reentrant`] for the plugin's own services, or the
    /// service's error.
    pub async fn call_service(
        &self,
        domain: &str,
        service: &str,
        data: Value,
    ) -> Result<ServiceResponse, HostError> {
        self.count_call();
        if !self.host.grant.may_call(domain, service) {
            return Err(self.deny(HostAction::CallService, &format!("{domain}.{service}")));
        }
        if *domain == *self.host.domain && self.host.home.services.has(domain, service) {
            return Err(HostError::Reentrant {
                plugin: self.host.domain.to_string(),
                service: format!("{domain}.{service}"),
            });
        }
        Ok(self
            .host
            .home
            .services
            .call(domain, service, data, self.write_context())
            .await?)
    }

    /// Fires a generic event.
    ///
    /// # Errors
    /// [`HostError::EventType`], [`HostError::Denied`], or [`HostError::Bus`] (loop guard).
    pub fn fire_event(&self, event_type: &str, data: Value) -> Result<(), HostError> {
        self.count_call();
        let event_type = EventType::new(event_type)?;
        if !self.host.grant.may_fire(event_type.as_str()) {
            return Err(self.deny(HostAction::FireEvent, event_type.as_str()));
        }
        Ok(self
            .host
            .home
            .bus
            .fire(event_type, data, self.write_context())?)
    }

    /// Registers `service` in the plugin's own domain; calls arrive at
    /// [`crate::HomeCorePlugin::call_service`] through the plugin's mailbox.
    ///
    /// # Errors
    /// [`HostError::Service`] for an invalid or taken name.
    pub fn register_service(&self, service: &str) -> Result<(), HostError> {
        self.count_call();
        let name = ServiceName::new(&self.host.domain, service)?;
        let mut own = self
            .host
            .own_services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if own.contains(&name) {
            // Registering again (e.g. a WASM plugin's setup re-run after re-instantiation) is a no-op.
            return Ok(());
        }
        let handler = crate::dispatcher::PluginServiceHandler::new(
            Arc::clone(&self.host.domain),
            self.host.service_calls.clone(),
            self.host.call_timeout,
        );
        self.host
            .home
            .services
            .register(name.clone(), Arc::new(handler))?;
        own.push(name);
        Ok(())
    }

    /// Starts (or restarts) timer `token`: after `delay`,
    /// [`crate::HomeCorePlugin::on_timer`] is called with it on the plugin's task. Writes made
    /// then carry a child of this call's cause, so a delayed reaction stays in its chain.
    ///
    /// # Errors
    /// [`HostError::TooManyTimers`] past [`MAX_TIMERS`] pending timers.
    pub fn start_timer(&self, token: u64, delay: Duration) -> Result<(), HostError> {
        self.count_call();
        let mut timers = self
            .host
            .timers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !timers.pending.contains_key(&token) && timers.pending.len() >= MAX_TIMERS {
            return Err(HostError::TooManyTimers {
                plugin: self.host.domain.to_string(),
                max: MAX_TIMERS,
            });
        }
        let deadline = tokio::time::Instant::now() + delay;
        let cause = self.cause.clone().unwrap_or_default();
        timers.pending.insert(token, (deadline, cause));
        Ok(())
    }

    /// Cancels timer `token`; returns whether it was pending.
    pub fn cancel_timer(&self, token: u64) -> bool {
        self.count_call();
        self.host
            .timers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pending
            .remove(&token)
            .is_some()
    }

    /// Logs a line under the plugin's name. Lines are cut to [`MAX_LOG_LEN`] bytes and limited
    /// to [`LOG_LINES_PER_SECOND`] (bursts of [`LOG_BURST`]); lines over the limit are counted
    /// and dropped.
    pub fn log(&self, level: LogLevel, message: &str) {
        self.count_call();
        if !self.admit_log() {
            self.host
                .counters
                .logs_dropped
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let plugin = &*self.host.domain;
        let message = cap(message);
        match level {
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn admit_log(&self) -> bool {
        self.host
            .log_limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .admit()
    }

    fn check_storage(&self, key: &str) -> Result<(), HostError> {
        self.count_call();
        if self.host.grant.may_store() {
            Ok(())
        } else {
            Err(self.deny(HostAction::Storage, key))
        }
    }

    /// The value stored under `key` in the plugin's storage.
    ///
    /// # Errors
    /// [`HostError::Denied`] unless the plugin may use storage.
    pub fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.check_storage(key)?;
        Ok(self.host.storage.get(&self.host.domain, key))
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// [`HostError::Denied`], or [`HostError::Storage`] for a bad key or a full quota.
    pub fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.check_storage(key)?;
        Ok(self
            .host
            .storage
            .set(&self.host.domain, key, value, self.host.storage_quota)?)
    }

    /// Deletes `key`; returns whether it existed.
    ///
    /// # Errors
    /// [`HostError::Denied`] unless the plugin may use storage.
    pub fn kv_delete(&self, key: &str) -> Result<bool, HostError> {
        self.check_storage(key)?;
        Ok(self.host.storage.delete(&self.host.domain, key))
    }
}

impl fmt::Debug for PluginContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginContext")
            .field("domain", &self.host.domain)
            .field("cause", &self.cause.as_ref().map(|c| c.id))
            .finish_non_exhaustive()
    }
}

/// `text` cut to at most [`MAX_LOG_LEN`] bytes at a character boundary.
pub(crate) fn cap(text: &str) -> &str {
    if text.len() <= MAX_LOG_LEN {
        return text;
    }
    let mut end = MAX_LOG_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_at_a_char_boundary() {
        let s = "é".repeat(MAX_LOG_LEN);
        let c = cap(&s);
        assert!(c.len() <= MAX_LOG_LEN && c.len() >= MAX_LOG_LEN - 1);
        assert_eq!(cap("short"), "short");
    }

    #[test]
    fn log_limiter_admits_a_burst_then_refuses() {
        let mut l = LogLimiter::new();
        let admitted = (0..LOG_BURST * 2).filter(|_| l.admit()).count();
        assert!(admitted >= LOG_BURST as usize && admitted < (LOG_BURST as usize) + 5);
    }
}
