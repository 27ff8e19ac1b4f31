//! The plugin's only door to the host: every call is checked against the plugin's grant.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use homecore::{
    Attributes, Context, EntityGlob, EntityId, EventBusError, EventFilter, EventType, ServiceName,
    ServiceResponse, SetOutcome, State,
};
use serde_json::Value;

use crate::host::PluginHost;
use crate::host_error::DenyReason;
use crate::sync::lock;
use crate::{Emission, GuestFailure, HostAction, HostError, MIN_TIMER_DELAY};

/// Most timers one plugin may have pending.
pub const MAX_TIMERS: usize = 1024;

/// Timers at least this long start a causal chain of their own; shorter ones continue the
/// chain of the call that started them ([`PluginContext::start_timer`]).
pub const TIMER_STARTS_NEW_CHAIN: Duration = Duration::from_secs(1);

/// Log lines longer than this many bytes are cut (at a character boundary) before logging.
pub const MAX_LOG_LEN: usize = 1024;

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
/// checked against the plugin's [`Grant`](crate::Grant) (declared in the manifest ∩ granted by the operator).
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
        self.deny_because(action, target, DenyReason::NotGranted)
    }

    fn deny_because(&self, action: HostAction, target: &str, reason: DenyReason) -> HostError {
        self.host.counters.denied.fetch_add(1, Ordering::Relaxed);
        if self.admit_log() {
            tracing::warn!(plugin = %self.host.domain, %action, target = %cap(target), %reason, "host call denied");
        }
        HostError::Denied {
            plugin: self.host.domain.to_string(),
            action,
            target: cap(target).to_owned(),
            reason,
        }
    }

    /// Spends one `kind` from the plugin's budget ([`crate::Emission`]).
    fn spend(&self, kind: Emission) -> Result<(), HostError> {
        self.host.spend(kind).map_err(|over| {
            if self.admit_log() {
                tracing::warn!(plugin = %self.host.domain, what = %over.kind, per_second = over.per_second, "over budget");
            }
            HostError::QuotaExceeded {
                plugin: self.host.domain.to_string(),
                what: over.kind,
                per_second: over.per_second,
                burst: over.burst,
            }
        })
    }

    /// Adds a filter to the plugin's mailbox within its subscription cap.
    fn add_filter(&self, filter: EventFilter) -> Result<(), HostError> {
        let max = self.host.max_subscriptions;
        match self
            .host
            .home
            .bus
            .add_filter_capped(self.host.subscriber, filter, max)
        {
            Err(EventBusError::TooManyFilters { .. }) => Err(HostError::TooManySubscriptions {
                plugin: self.host.domain.to_string(),
                max,
            }),
            other => Ok(other?),
        }
    }

    /// Refuses event types the core owns, whatever the grant says.
    fn check_not_core_owned(
        &self,
        action: HostAction,
        event_type: &EventType,
    ) -> Result<(), HostError> {
        if event_type.is_core_owned() {
            return Err(self.deny_because(action, event_type.as_str(), DenyReason::CoreOwnedEvent));
        }
        Ok(())
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

    /// Counts a classified guest failure by kind ([`PluginStats`](crate::PluginStats)).
    #[cfg_attr(
        not(feature = "wasmtime"),
        expect(dead_code, reason = "only the WASM runtime classifies guest failures")
    )]
    pub(crate) fn record_guest_failure(&self, failure: &GuestFailure) {
        let c = &self.host.counters;
        let counter = match failure {
            GuestFailure::OutOfFuel { .. } => &c.fuel_exhausted,
            GuestFailure::Deadline { .. } => &c.deadlines_missed,
            GuestFailure::MemoryLimit { .. } => &c.memory_limit_hits,
            GuestFailure::TableLimit { .. } => &c.table_limit_hits,
            GuestFailure::Trap { .. } => &c.traps,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a deadline that passed while the guest waited in a host import.
    #[cfg_attr(
        not(feature = "wasmtime"),
        expect(dead_code, reason = "only the WASM runtime has import deadlines")
    )]
    pub(crate) fn record_deadline_missed(&self) {
        self.host
            .counters
            .deadlines_missed
            .fetch_add(1, Ordering::Relaxed);
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
        self.spend(Emission::StateWrite)?;
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
        self.spend(Emission::StateWrite)?;
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
    /// every entity the pattern can match, [`HostError::TooManySubscriptions`] past the
    /// plugin's cap ([`crate::ResourceLimits::subscriptions`]).
    pub fn subscribe(&self, pattern: &str) -> Result<(), HostError> {
        self.count_call();
        let glob = EntityGlob::new(pattern)?;
        if !self.host.grant.may_read_all_of(&glob) {
            return Err(self.deny(HostAction::Subscribe, pattern));
        }
        self.add_filter(EventFilter::Entity(glob))
    }

    /// Subscribes the plugin to generic events of `event_type`; they arrive at
    /// [`crate::HomeCorePlugin::on_event`]. Needs the same permission as firing them; event
    /// types the core owns ([`homecore::is_core_event_type`]) are never delivered to plugins.
    ///
    /// # Errors
    /// [`HostError::EventType`], [`HostError::Denied`], or [`HostError::TooManySubscriptions`]
    /// past the plugin's cap ([`crate::ResourceLimits::subscriptions`]).
    pub fn subscribe_events(&self, event_type: &str) -> Result<(), HostError> {
        self.count_call();
        let event_type = EventType::new(event_type)?;
        self.check_not_core_owned(HostAction::Subscribe, &event_type)?;
        if !self.host.grant.may_fire(event_type.as_str()) {
            return Err(self.deny(HostAction::FireEvent, event_type.as_str()));
        }
        self.add_filter(EventFilter::EventType(event_type))
    }

    /// Calls `domain.service` with `data`; returns the states it changed that the plugin may
    /// read (a call it may make never shows it states it may not read).
    ///
    /// # Errors
    /// [`HostError::Denied`], [`HostError::Reentrant`] for the plugin's own services,
    /// [`HostError::QuotaExceeded`] over the plugin's budget, or the service's error.
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
        self.spend(Emission::ServiceCall)?;
        let mut response = self
            .host
            .home
            .services
            .call(domain, service, data, self.write_context())
            .await?;
        response
            .changed_states
            .retain(|state| self.host.grant.may_read(state.entity_id()));
        Ok(response)
    }

    /// Fires a generic event.
    ///
    /// # Errors
    /// [`HostError::EventType`], [`HostError::Denied`] (also for every event type the core
    /// owns, such as `state_changed`: [`homecore::is_core_event_type`]),
    /// [`HostError::QuotaExceeded`] over the plugin's budget, or [`HostError::Bus`] (loop guard).
    pub fn fire_event(&self, event_type: &str, data: Value) -> Result<(), HostError> {
        self.count_call();
        let event_type = EventType::new(event_type)?;
        self.check_not_core_owned(HostAction::FireEvent, &event_type)?;
        if !self.host.grant.may_fire(event_type.as_str()) {
            return Err(self.deny(HostAction::FireEvent, event_type.as_str()));
        }
        self.spend(Emission::Event)?;
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
        let mut own = lock(&self.host.own_services);
        if own.contains(&name) {
            // Registering again (e.g. a WASM plugin's setup re-run after re-instantiation) is a no-op.
            return Ok(());
        }
        self.host
            .home
            .services
            .register(name.clone(), Arc::clone(&self.host.service_handler))?;
        own.push(name);
        Ok(())
    }

    /// Starts (or restarts) timer `token`: after `delay` (at least [`MIN_TIMER_DELAY`]),
    /// [`crate::HomeCorePlugin::on_timer`] is called with it on the plugin's task.
    ///
    /// A timer shorter than [`TIMER_STARTS_NEW_CHAIN`] is a reaction: its firing is one more
    /// step of this call's causal chain, so writes made then descend from this call's cause,
    /// and a timer re-armed from its own callback deepens the chain until the loop guard stops
    /// it (docs/adr/0002-loop-guard.md). A longer timer starts a chain of its own, as Home
    /// Assistant's time triggers do: its context is a new root whose `parent_id` names this
    /// call's cause.
    ///
    /// # Errors
    /// [`HostError::TooManyTimers`] past [`MAX_TIMERS`] pending timers,
    /// [`HostError::QuotaExceeded`] over the plugin's budget of timers, [`HostError::Bus`]
    /// when a short timer would take its chain past the loop guard.
    pub fn start_timer(&self, token: u64, delay: Duration) -> Result<(), HostError> {
        self.count_call();
        let delay = delay.max(MIN_TIMER_DELAY);
        let cause = if delay < TIMER_STARTS_NEW_CHAIN {
            let step = self.write_context();
            self.host
                .home
                .bus
                .check_loop_guard(&step)
                .map_err(|err| HostError::Bus(EventBusError::LoopGuard(err)))?;
            step
        } else {
            let mut root = Context::new();
            root.origin = Some(Arc::clone(&self.host.domain));
            root.parent_id = self.cause.as_ref().map(|c| c.id);
            root
        };
        let mut timers = lock(&self.host.timers);
        if !timers.pending.contains_key(&token) && timers.pending.len() >= MAX_TIMERS {
            return Err(HostError::TooManyTimers {
                plugin: self.host.domain.to_string(),
                max: MAX_TIMERS,
            });
        }
        self.spend(Emission::Timer)?;
        let deadline = tokio::time::Instant::now() + delay;
        timers.pending.insert(token, (deadline, cause));
        Ok(())
    }

    /// Cancels timer `token`; returns whether it was pending.
    pub fn cancel_timer(&self, token: u64) -> bool {
        self.count_call();
        lock(&self.host.timers).pending.remove(&token).is_some()
    }

    /// Logs a line under the plugin's name. Lines are cut to [`MAX_LOG_LEN`] bytes and limited
    /// to [`LOG_LINES_PER_SECOND`](crate::LOG_LINES_PER_SECOND) (bursts of [`LOG_BURST`](crate::LOG_BURST)); lines over the limit are counted
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
        self.host.admit_log()
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

/// `text` cut to at most [`MAX_LOG_LEN`] bytes at a character boundary (`homecore_abi::text`).
pub(crate) fn cap(text: &str) -> &str {
    homecore_abi::text::capped(text, MAX_LOG_LEN)
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
}
