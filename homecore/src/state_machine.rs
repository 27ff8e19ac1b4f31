//! The state machine: every entity's current state, with Home Assistant's write semantics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use chrono::Utc;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use foldhash::fast::RandomState;

use crate::state::check_state_len;
use crate::{Attributes, Context, ContextId, EntityId, EventBus, State, StateChanged, StateError};

/// The result of a write.
#[derive(Debug, Clone, PartialEq)]
pub struct SetOutcome {
    /// The entity's state after the write.
    pub state: Arc<State>,
    /// Whether the write changed anything (and so published a `state_changed` event).
    pub changed: bool,
}

/// Told synchronously about every change of a [`StateMachine`], unlike a bus subscriber
/// (whose bounded queue may drop): for a consumer that must not miss a change, such as the
/// durable store's recorder (docs/adr/0010-persistence.md).
///
/// Called on the writer's thread while the entity's shard is held, so one entity's changes
/// arrive in write order. It must be cheap, must never block for long, and must not call back
/// into the state machine.
pub trait StateObserver: Send + Sync + 'static {
    /// `entity_id` was created, changed, removed or restored.
    fn state_changed(&self, entity_id: &EntityId);
}

/// Every entity's current state. Cheap to clone; clones share states.
///
/// Writes follow Home Assistant: writing the same state and attributes again is a no-op that
/// publishes nothing; `last_changed` moves only when the state string changes, `last_updated`
/// when the state or attributes change. Every change is published on the [`EventBus`] while the
/// entity's shard is held, so subscribers see one entity's changes in write order.
///
/// ```
/// use homecore::{Attributes, Context, EntityId, EventBus, StateMachine};
/// let states = StateMachine::new(EventBus::new());
/// let id: EntityId = "light.hall".parse()?;
/// let first = states.set(&id, "on", Attributes::new(), &Context::new())?;
/// assert!(first.changed);
/// let again = states.set(&id, "on", Attributes::new(), &Context::new())?;
/// assert!(!again.changed);
/// assert_eq!(states.get(&id).map(|s| s.state().to_owned()), Some("on".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("entities", &self.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Hashed with foldhash (seeded per map, as hashbrown's default) rather than SipHash:
    /// every write looks its entity up here.
    states: DashMap<EntityId, Arc<State>, RandomState>,
    bus: EventBus,
    trackers: DashMap<ContextId, Vec<Arc<State>>, RandomState>,
    active_trackers: AtomicUsize,
    observers: RwLock<Vec<Arc<dyn StateObserver>>>,
    /// `observers.len()`, read without the lock on every change.
    observer_count: AtomicUsize,
}

impl StateMachine {
    /// An empty state machine publishing on `bus`.
    #[must_use]
    pub fn new(bus: EventBus) -> Self {
        Self {
            inner: Arc::new(Inner {
                states: DashMap::with_hasher(RandomState::default()),
                bus,
                trackers: DashMap::with_hasher(RandomState::default()),
                active_trackers: AtomicUsize::new(0),
                observers: RwLock::new(Vec::new()),
                observer_count: AtomicUsize::new(0),
            }),
        }
    }

    /// The bus changes are published on.
    #[must_use]
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The current state of `entity_id`.
    #[must_use]
    pub fn get(&self, entity_id: &EntityId) -> Option<Arc<State>> {
        self.inner.states.get(entity_id).map(|s| Arc::clone(&s))
    }

    /// The current state of an entity named by a string; `None` for unknown or invalid ids.
    #[must_use]
    pub fn get_str(&self, entity_id: &str) -> Option<Arc<State>> {
        self.inner.states.get(entity_id).map(|s| Arc::clone(&s))
    }

    /// Writes a state, replacing the attributes, and publishes the change.
    ///
    /// # Errors
    /// [`StateError::StateTooLong`] for a state over 255 characters; [`StateError::LoopGuard`]
    /// when `context` is too deep a chain of reactions.
    pub fn set(
        &self,
        entity_id: &EntityId,
        state: &str,
        attributes: Attributes,
        context: &Context,
    ) -> Result<SetOutcome, StateError> {
        check_state_len(entity_id, state)?;
        self.inner.bus.check_loop_guard(context)?;
        let now = Utc::now();
        // Look the entity up by reference first: an existing entity (the common case) needs
        // no clone of the key.
        let outcome = if let Some(mut slot) = self.inner.states.get_mut(entity_id) {
            self.replace(&mut slot, entity_id, state, attributes, context, now)
        } else {
            match self.inner.states.entry(entity_id.clone()) {
                // Another writer created the entity in between.
                Entry::Occupied(mut slot) => {
                    self.replace(slot.get_mut(), entity_id, state, attributes, context, now)
                }
                Entry::Vacant(slot) => {
                    let next = Arc::new(
                        State::next(None, entity_id, state, attributes, context, now)
                            .expect("a first state is always a change"),
                    );
                    slot.insert(Arc::clone(&next));
                    self.publish(entity_id, None, Some(Arc::clone(&next)), context, now);
                    SetOutcome {
                        state: next,
                        changed: true,
                    }
                }
            }
        };
        if outcome.changed {
            self.track(context, &outcome.state);
        }
        Ok(outcome)
    }

    /// Replaces an existing state and publishes the change, while the caller holds the
    /// entity's shard; a write that changes nothing leaves the state alone.
    fn replace(
        &self,
        slot: &mut Arc<State>,
        entity_id: &EntityId,
        state: &str,
        attributes: Attributes,
        context: &Context,
        now: chrono::DateTime<Utc>,
    ) -> SetOutcome {
        let Some(next) = State::next(Some(slot), entity_id, state, attributes, context, now) else {
            return SetOutcome {
                state: Arc::clone(slot),
                changed: false,
            };
        };
        let next = Arc::new(next);
        let old = std::mem::replace(slot, Arc::clone(&next));
        self.publish(entity_id, Some(old), Some(Arc::clone(&next)), context, now);
        SetOutcome {
            state: next,
            changed: true,
        }
    }

    /// Puts a state read back from storage into the machine as it was stored: its
    /// `last_changed`, `last_updated` and context are kept (a [`StateMachine::set`] would stamp
    /// the current time). An entity that already has a state keeps it (a write since start is
    /// newer than anything stored) and `false` is returned. An inserted state is published
    /// like a new entity's first state.
    pub fn restore(&self, state: State) -> bool {
        let entity_id = state.entity_id().clone();
        let Entry::Vacant(slot) = self.inner.states.entry(entity_id.clone()) else {
            return false;
        };
        let state = Arc::new(state);
        slot.insert(Arc::clone(&state));
        let context = state.context().clone();
        self.publish(&entity_id, None, Some(state), &context, Utc::now());
        true
    }

    /// Removes an entity, publishing a change with no new state. Returns the removed state.
    ///
    /// # Errors
    /// [`StateError::LoopGuard`] when `context` is too deep a chain of reactions.
    pub fn remove(
        &self,
        entity_id: &EntityId,
        context: &Context,
    ) -> Result<Option<Arc<State>>, StateError> {
        self.inner.bus.check_loop_guard(context)?;
        let Entry::Occupied(slot) = self.inner.states.entry(entity_id.clone()) else {
            return Ok(None);
        };
        let old = slot.remove();
        self.publish(entity_id, Some(Arc::clone(&old)), None, context, Utc::now());
        Ok(Some(old))
    }

    fn publish(
        &self,
        entity_id: &EntityId,
        old_state: Option<Arc<State>>,
        new_state: Option<Arc<State>>,
        context: &Context,
        now: chrono::DateTime<Utc>,
    ) {
        if self.inner.observer_count.load(Ordering::Acquire) != 0 {
            let observers = crate::read_unpoisoned(&self.inner.observers);
            for observer in observers.iter() {
                observer.state_changed(entity_id);
            }
        }
        self.inner.bus.publish_state_changed(StateChanged {
            entity_id: entity_id.clone(),
            old_state,
            new_state,
            context: context.clone(),
            time_fired: now,
        });
    }

    /// Adds an observer of every change from now on (see [`StateObserver`]).
    pub fn add_observer(&self, observer: Arc<dyn StateObserver>) {
        let mut observers = crate::write_unpoisoned(&self.inner.observers);
        observers.push(observer);
        self.inner
            .observer_count
            .store(observers.len(), Ordering::Release);
    }

    /// Removes an observer added with [`StateMachine::add_observer`] (compared by pointer);
    /// returns whether it was there.
    pub fn remove_observer(&self, observer: &Arc<dyn StateObserver>) -> bool {
        let mut observers = crate::write_unpoisoned(&self.inner.observers);
        let before = observers.len();
        observers.retain(|o| !Arc::ptr_eq(o, observer));
        self.inner
            .observer_count
            .store(observers.len(), Ordering::Release);
        observers.len() != before
    }

    /// Every state.
    #[must_use]
    pub fn all(&self) -> Vec<Arc<State>> {
        self.inner.states.iter().map(|s| Arc::clone(&s)).collect()
    }

    /// Every state of one domain (`light`, `sensor`, …).
    #[must_use]
    pub fn by_domain(&self, domain: &str) -> Vec<Arc<State>> {
        self.inner
            .states
            .iter()
            .filter(|s| s.key().domain() == domain)
            .map(|s| Arc::clone(&s))
            .collect()
    }

    /// Number of entities.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.states.len()
    }

    /// Whether there are no entities.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner.states.is_empty()
    }

    /// Starts collecting the states changed by writes whose context is `context_id` or a child
    /// of it; used by the service registry to answer "which states did this call change".
    #[must_use]
    pub fn track_changes(&self, context_id: ContextId) -> ChangeTracker {
        self.inner.trackers.insert(context_id, Vec::new());
        self.inner.active_trackers.fetch_add(1, Ordering::AcqRel);
        ChangeTracker {
            inner: Arc::clone(&self.inner),
            context_id,
        }
    }

    fn track(&self, context: &Context, state: &Arc<State>) {
        if self.inner.active_trackers.load(Ordering::Acquire) == 0 {
            return;
        }
        for id in std::iter::once(context.id).chain(context.parent_id) {
            if let Some(mut changed) = self.inner.trackers.get_mut(&id) {
                changed.push(Arc::clone(state));
            }
        }
    }
}

/// Collects the states changed under one context; see [`StateMachine::track_changes`].
pub struct ChangeTracker {
    inner: Arc<Inner>,
    context_id: ContextId,
}

impl std::fmt::Debug for ChangeTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeTracker")
            .field("context_id", &self.context_id)
            .finish_non_exhaustive()
    }
}

impl ChangeTracker {
    /// The states changed so far, latest version of each entity once, in first-change order.
    #[must_use]
    pub fn finish(self) -> Vec<Arc<State>> {
        let changed = self
            .inner
            .trackers
            .get_mut(&self.context_id)
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        let mut out: Vec<Arc<State>> = Vec::with_capacity(changed.len());
        for state in changed {
            match out.iter_mut().find(|s| s.entity_id() == state.entity_id()) {
                Some(slot) => *slot = state,
                None => out.push(state),
            }
        }
        out
    }
}

impl Drop for ChangeTracker {
    fn drop(&mut self) {
        self.inner.trackers.remove(&self.context_id);
        self.inner.active_trackers.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventFilter;
    use serde_json::json;

    fn id(s: &str) -> EntityId {
        EntityId::new(s).expect("valid")
    }

    fn attrs(v: serde_json::Value) -> Attributes {
        Attributes::try_from(v).expect("object")
    }

    #[test]
    fn same_write_is_a_no_op_without_event() {
        let sm = StateMachine::new(EventBus::new());
        let mut sub = sm
            .bus()
            .subscribe([EventFilter::AllStateChanges], 8)
            .expect("ok");
        let hall = id("light.hall");
        assert!(
            sm.set(&hall, "on", attrs(json!({"b": 1})), &Context::new())
                .expect("ok")
                .changed
        );
        let again = sm
            .set(&hall, "on", attrs(json!({"b": 1})), &Context::new())
            .expect("ok");
        assert!(!again.changed);
        assert!(sub.try_recv().is_some());
        assert!(sub.try_recv().is_none(), "no event for a no-op write");
    }

    #[test]
    fn last_changed_moves_only_with_the_state_string() {
        let sm = StateMachine::new(EventBus::new());
        let hall = id("light.hall");
        let first = sm
            .set(&hall, "on", Attributes::new(), &Context::new())
            .expect("ok")
            .state;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let attr_only = sm
            .set(&hall, "on", attrs(json!({"b": 2})), &Context::new())
            .expect("ok")
            .state;
        assert_eq!(attr_only.last_changed(), first.last_changed());
        assert!(attr_only.last_updated() > first.last_updated());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let state_change = sm
            .set(&hall, "off", attrs(json!({"b": 2})), &Context::new())
            .expect("ok")
            .state;
        assert!(state_change.last_changed() > attr_only.last_changed());
        assert_eq!(state_change.last_changed(), state_change.last_updated());
    }

    #[test]
    fn events_carry_old_and_new_state_and_context() {
        let sm = StateMachine::new(EventBus::new());
        let mut sub = sm
            .bus()
            .subscribe([EventFilter::entity(&id("lock.front"))], 8)
            .expect("ok");
        let ctx = Context::for_user("alice");
        sm.set(&id("lock.front"), "locked", Attributes::new(), &ctx)
            .expect("ok");
        sm.set(&id("lock.front"), "unlocked", Attributes::new(), &ctx)
            .expect("ok");
        sm.remove(&id("lock.front"), &ctx).expect("ok");
        let events: Vec<_> = std::iter::from_fn(|| sub.try_recv()).collect();
        assert_eq!(events.len(), 3);
        let e0 = events[0].as_state_changed().expect("state change");
        assert!(e0.old_state.is_none());
        assert_eq!(e0.context.user_id.as_deref(), Some("alice"));
        let e1 = events[1].as_state_changed().expect("state change");
        assert_eq!(e1.old_state.as_ref().map(|s| s.state()), Some("locked"));
        assert_eq!(e1.new_state.as_ref().map(|s| s.state()), Some("unlocked"));
        let e2 = events[2].as_state_changed().expect("state change");
        assert!(e2.new_state.is_none());
        assert!(sm.get(&id("lock.front")).is_none());
        assert_eq!(sm.remove(&id("lock.front"), &ctx), Ok(None));
    }

    #[test]
    fn restore_keeps_timestamps_and_never_overwrites() {
        let sm = StateMachine::new(EventBus::new());
        let mut sub = sm
            .bus()
            .subscribe([EventFilter::AllStateChanges], 8)
            .expect("ok");
        let at = chrono::DateTime::parse_from_rfc3339("2024-03-01T12:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let ctx = Context::for_user("alice");
        let stored = State::restore(id("light.a"), "on", Attributes::new(), at, at, ctx.clone())
            .expect("valid");
        assert!(sm.restore(stored.clone()));
        let got = sm.get(&id("light.a")).expect("restored");
        assert_eq!(got.last_changed(), at);
        assert_eq!(got.last_updated(), at);
        assert_eq!(got.context(), &ctx);
        assert!(sub.try_recv().is_some(), "a restore is published");
        sm.set(&id("light.a"), "off", Attributes::new(), &Context::new())
            .expect("ok");
        assert!(!sm.restore(stored), "a live state is never replaced");
        assert_eq!(
            sm.get(&id("light.a")).map(|s| s.state().to_owned()),
            Some("off".into())
        );
    }

    #[test]
    fn observers_see_every_change_in_order_until_removed() {
        struct Log(std::sync::Mutex<Vec<String>>);
        impl StateObserver for Log {
            fn state_changed(&self, entity_id: &EntityId) {
                self.0
                    .lock()
                    .expect("not poisoned")
                    .push(entity_id.to_string());
            }
        }
        let sm = StateMachine::new(EventBus::new());
        let log = Arc::new(Log(std::sync::Mutex::new(Vec::new())));
        let observer: Arc<dyn StateObserver> = log.clone();
        sm.add_observer(Arc::clone(&observer));
        let ctx = Context::new();
        sm.set(&id("light.a"), "on", Attributes::new(), &ctx)
            .expect("ok");
        sm.set(&id("light.a"), "on", Attributes::new(), &ctx)
            .expect("ok");
        sm.set(&id("light.b"), "on", Attributes::new(), &ctx)
            .expect("ok");
        sm.remove(&id("light.a"), &ctx).expect("ok");
        let now = Utc::now();
        let stored = State::restore(
            id("light.c"),
            "on",
            Attributes::new(),
            now,
            now,
            ctx.clone(),
        )
        .expect("valid");
        assert!(sm.restore(stored));
        assert_eq!(
            *log.0.lock().expect("not poisoned"),
            ["light.a", "light.b", "light.a", "light.c"],
            "no-op writes are not changes"
        );
        assert!(sm.remove_observer(&observer));
        assert!(!sm.remove_observer(&observer));
        sm.set(&id("light.d"), "on", Attributes::new(), &ctx)
            .expect("ok");
        assert_eq!(log.0.lock().expect("not poisoned").len(), 4);
    }

    #[test]
    fn all_and_by_domain() {
        let sm = StateMachine::new(EventBus::new());
        for e in ["light.a", "light.b", "switch.c"] {
            sm.set(&id(e), "on", Attributes::new(), &Context::new())
                .expect("ok");
        }
        assert_eq!(sm.all().len(), 3);
        assert_eq!(sm.by_domain("light").len(), 2);
        assert_eq!(sm.len(), 3);
    }

    #[test]
    fn invalid_writes_are_typed_errors_and_change_nothing() {
        let sm = StateMachine::new(EventBus::new());
        let long = "x".repeat(300);
        assert!(matches!(
            sm.set(&id("sensor.t"), &long, Attributes::new(), &Context::new()),
            Err(StateError::StateTooLong { len: 300, .. })
        ));
        let mut ctx = Context::new();
        for _ in 0..=crate::MAX_CONTEXT_DEPTH {
            ctx = ctx.child(Some("looper".into()));
        }
        assert!(matches!(
            sm.set(&id("sensor.t"), "1", Attributes::new(), &ctx),
            Err(StateError::LoopGuard(_))
        ));
        assert_eq!(sm.bus().loop_guard_refusals(), 1);
        assert!(sm.is_empty());
    }

    #[test]
    fn concurrent_writers_each_entity_ends_consistent() {
        let sm = StateMachine::new(EventBus::new());
        std::thread::scope(|s| {
            for t in 0..4 {
                let sm = sm.clone();
                s.spawn(move || {
                    for i in 0..1000 {
                        let e = id(&format!("sensor.t{}", i % 10));
                        sm.set(&e, &format!("{t}-{i}"), Attributes::new(), &Context::new())
                            .expect("ok");
                    }
                });
            }
        });
        assert_eq!(sm.len(), 10);
    }

    #[test]
    fn tracker_collects_changes_of_a_context_and_its_children() {
        let sm = StateMachine::new(EventBus::new());
        let call = Context::new();
        let tracker = sm.track_changes(call.id);
        sm.set(&id("light.a"), "on", Attributes::new(), &call)
            .expect("ok");
        sm.set(&id("light.b"), "on", Attributes::new(), &call.child(None))
            .expect("ok");
        sm.set(&id("light.a"), "off", Attributes::new(), &call)
            .expect("ok");
        sm.set(&id("light.c"), "on", Attributes::new(), &Context::new())
            .expect("ok");
        let changed: Vec<_> = tracker
            .finish()
            .iter()
            .map(|s| (s.entity_id().to_string(), s.state().to_owned()))
            .collect();
        assert_eq!(
            changed,
            [
                ("light.a".to_owned(), "off".to_owned()),
                ("light.b".to_owned(), "on".to_owned())
            ]
        );
        assert_eq!(sm.inner.active_trackers.load(Ordering::Acquire), 0);
    }
}
