//! The event bus: indexed subscriptions and bounded, never-blocking delivery.
//!
//! # Overflow policy
//!
//! Every subscriber has its own bounded queue. Publishing never waits: when a subscriber's
//! queue is full, the event being published is **not** queued for that subscriber (drop-newest),
//! the subscriber's drop counter and the bus-wide drop counter go up, and a warning is logged
//! for the first drop of each burst. Events already queued keep their order, so a subscriber sees
//! a gap, never a reordering. Other subscribers are unaffected. See docs/adr/0003-event-bus.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use chrono::Utc;
use foldhash::fast::RandomState;
use serde_json::Value;
use smallvec::SmallVec;
use tokio::sync::mpsc;

use crate::{
    Context, CustomEvent, EntityGlob, EntityId, Event, EventType, GlobKind, LoopGuardError,
    StateChanged,
};

/// What a subscriber wants to receive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventFilter {
    /// State changes of entities matching the glob (an exact id is a glob without wildcards).
    Entity(EntityGlob),
    /// Generic events of one type.
    EventType(EventType),
    /// Every state change.
    AllStateChanges,
    /// Every event, state changes included.
    AllEvents,
}

impl EventFilter {
    /// State changes of exactly one entity.
    #[must_use]
    pub fn entity(id: &EntityId) -> Self {
        Self::Entity(EntityGlob::new(id.as_str()).expect("an entity id is a valid glob"))
    }
}

/// A subscriber's id, unique per bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberId(u64);

/// Why a subscription could not be changed or an event not fired.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventBusError {
    /// The subscriber was dropped or unsubscribed.
    #[error("subscriber {id:?} is not subscribed")]
    UnknownSubscriber {
        /// The id.
        id: SubscriberId,
    },
    /// The subscription already has as many filters as its cap allows.
    #[error("subscriber {id:?} already has {max} filters")]
    TooManyFilters {
        /// The id.
        id: SubscriberId,
        /// The cap.
        max: usize,
    },
    /// A queue capacity of zero was asked for.
    #[error("queue capacity must be at least 1")]
    ZeroCapacity,
    /// The event was refused by the loop guard.
    #[error(transparent)]
    LoopGuard(#[from] LoopGuardError),
}

/// Delivery figures of one subscriber.
#[derive(Debug, Default)]
struct SubscriberCounters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    overflowing: AtomicBool,
}

struct Subscriber {
    id: SubscriberId,
    tx: mpsc::Sender<Event>,
    counters: Arc<SubscriberCounters>,
}

impl Subscriber {
    /// Queues `event` or, if the queue is full, drops it and counts (see the module docs).
    /// Returns `false` when the receiver is gone.
    fn offer(&self, event: &Event, bus: &BusCounters) -> bool {
        match self.tx.try_send(event.clone()) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                if self.counters.overflowing.load(Ordering::Relaxed) {
                    self.counters.overflowing.store(false, Ordering::Relaxed);
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                bus.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.counters.overflowing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        subscriber = self.id.0,
                        event_type = event.event_type(),
                        "subscriber queue full; dropping newest events until it drains"
                    );
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The index's maps: foldhash (seeded per map, as hashbrown's default) rather than SipHash,
/// since every state change does two lookups here and SipHash was a fifth of a publish's cost.
type Map<K, V> = HashMap<K, V, RandomState>;

/// Globs of one kind, grouped by subscriber: a subscriber's globs are added and removed without
/// scanning anyone else's.
type GlobGroup = Map<SubscriberId, (Arc<Subscriber>, SmallVec<[EntityGlob; 1]>)>;

/// Entity ids whose glob-matched subscribers are remembered at most; past it the memo starts
/// over. A home has far fewer entities; the bound only caps a flood of distinct ids.
const GLOB_MEMO_MAX: usize = 65_536;

/// Subscriptions by what they select.
///
/// Exact ids are hashed; globs are grouped by literal domain (`light.*`) or kept apart when
/// their domain has a wildcard (`*.kitchen_*`). Which glob subscribers want a change of an id
/// is worked out once per id and remembered (`glob_memo`) until a glob is added or removed, so
/// publishing costs the same however many globs subscribers hold: matching every glob happens
/// only on an id's first change after the globs changed (docs/adr/0003-event-bus.md).
#[derive(Default)]
struct SubscriptionIndex {
    exact: Map<EntityId, Vec<Arc<Subscriber>>>,
    by_domain: Map<Box<str>, GlobGroup>,
    scanned: GlobGroup,
    glob_count: usize,
    glob_memo: Map<EntityId, Box<[Arc<Subscriber>]>>,
    all_states: Vec<Arc<Subscriber>>,
    by_event_type: Map<EventType, Vec<Arc<Subscriber>>>,
    all_events: Vec<Arc<Subscriber>>,
    filters: Map<SubscriberId, (Arc<Subscriber>, Vec<EventFilter>)>,
}

impl SubscriptionIndex {
    fn insert(&mut self, sub: &Arc<Subscriber>, filter: &EventFilter) {
        fn add_glob(group: &mut GlobGroup, sub: &Arc<Subscriber>, glob: &EntityGlob) {
            group
                .entry(sub.id)
                .or_insert_with(|| (Arc::clone(sub), SmallVec::new()))
                .1
                .push(glob.clone());
        }
        match filter {
            EventFilter::Entity(glob) => match glob.kind() {
                GlobKind::All => self.all_states.push(Arc::clone(sub)),
                GlobKind::Exact(id) => self
                    .exact
                    .entry(id.clone())
                    .or_default()
                    .push(Arc::clone(sub)),
                GlobKind::Domain(domain) => {
                    add_glob(self.by_domain.entry(domain.clone()).or_default(), sub, glob);
                    self.globs_changed(1);
                }
                _ => {
                    add_glob(&mut self.scanned, sub, glob);
                    self.globs_changed(1);
                }
            },
            EventFilter::EventType(t) => self
                .by_event_type
                .entry(t.clone())
                .or_default()
                .push(Arc::clone(sub)),
            EventFilter::AllStateChanges => self.all_states.push(Arc::clone(sub)),
            EventFilter::AllEvents => self.all_events.push(Arc::clone(sub)),
        }
    }

    /// Forgets every memoized glob match after globs were added (`added` > 0) or removed.
    fn globs_changed(&mut self, added: isize) {
        self.glob_count = self.glob_count.saturating_add_signed(added);
        self.glob_memo.clear();
    }

    /// Removes one occurrence of `filter` for subscriber `id`.
    fn remove(&mut self, id: SubscriberId, filter: &EventFilter) {
        fn drop_one<T>(list: &mut Vec<T>, is_it: impl Fn(&T) -> bool) {
            if let Some(pos) = list.iter().position(is_it) {
                list.remove(pos);
            }
        }
        /// Removes one occurrence of `glob` of subscriber `id`; whether it was there.
        fn drop_glob(group: &mut GlobGroup, id: SubscriberId, glob: &EntityGlob) -> bool {
            let Some((_, globs)) = group.get_mut(&id) else {
                return false;
            };
            let Some(pos) = globs.iter().position(|g| g == glob) else {
                return false;
            };
            globs.remove(pos);
            if globs.is_empty() {
                group.remove(&id);
            }
            true
        }
        match filter {
            EventFilter::Entity(glob) => match glob.kind() {
                GlobKind::All => drop_one(&mut self.all_states, |s| s.id == id),
                GlobKind::Exact(eid) => {
                    if let Some(list) = self.exact.get_mut(eid) {
                        drop_one(list, |s| s.id == id);
                        if list.is_empty() {
                            self.exact.remove(eid);
                        }
                    }
                }
                GlobKind::Domain(domain) => {
                    let (removed, emptied) = match self.by_domain.get_mut(domain) {
                        Some(group) => (drop_glob(group, id, glob), group.is_empty()),
                        None => (false, false),
                    };
                    if emptied {
                        self.by_domain.remove(domain);
                    }
                    if removed {
                        self.globs_changed(-1);
                    }
                }
                _ => {
                    if drop_glob(&mut self.scanned, id, glob) {
                        self.globs_changed(-1);
                    }
                }
            },
            EventFilter::EventType(t) => {
                if let Some(list) = self.by_event_type.get_mut(t) {
                    drop_one(list, |s| s.id == id);
                    if list.is_empty() {
                        self.by_event_type.remove(t);
                    }
                }
            }
            EventFilter::AllStateChanges => drop_one(&mut self.all_states, |s| s.id == id),
            EventFilter::AllEvents => drop_one(&mut self.all_events, |s| s.id == id),
        }
    }

    /// Makes sure the glob subscribers of `id` are memoized (see the type's docs).
    fn memoize_globs(&mut self, id: &EntityId) {
        if self.glob_count == 0 || self.glob_memo.contains_key(id.as_str()) {
            return;
        }
        let mut matched: Vec<Arc<Subscriber>> = Vec::new();
        let mut add_matches = |group: &GlobGroup| {
            for (sub, globs) in group.values() {
                if globs.iter().any(|g| g.matches(id)) {
                    matched.push(Arc::clone(sub));
                }
            }
        };
        if let Some(group) = self.by_domain.get(id.domain()) {
            add_matches(group);
        }
        add_matches(&self.scanned);
        if self.glob_memo.len() >= GLOB_MEMO_MAX {
            self.glob_memo.clear();
        }
        self.glob_memo
            .insert(id.clone(), matched.into_boxed_slice());
    }

    /// The distinct subscribers that want a change of `id` (after [`Self::memoize_globs`]).
    fn state_targets<'a>(&'a self, id: &EntityId, out: &mut Targets<'a>) {
        if let Some(list) = self.exact.get(id.as_str()) {
            out.extend(list);
        }
        if let Some(list) = self.glob_memo.get(id.as_str()) {
            out.extend(list);
        }
        out.extend(&self.all_states);
        out.extend(&self.all_events);
    }

    /// How many filters subscriber `id` has.
    fn filter_count(&self, id: SubscriberId) -> Option<usize> {
        self.filters.get(&id).map(|(_, filters)| filters.len())
    }
}

/// The subscribers one event goes to, each once.
#[derive(Default)]
struct Targets<'a>(SmallVec<[&'a Arc<Subscriber>; 8]>);

impl<'a> Targets<'a> {
    fn push(&mut self, sub: &'a Arc<Subscriber>) {
        if !self.0.iter().any(|s| s.id == sub.id) {
            self.0.push(sub);
        }
    }

    fn extend(&mut self, subs: &'a [Arc<Subscriber>]) {
        for sub in subs {
            self.push(sub);
        }
    }
}

#[derive(Debug, Default)]
struct BusCounters {
    published: AtomicU64,
    dropped: AtomicU64,
    loop_guard_refusals: AtomicU64,
}

struct BusInner {
    /// One lock for subscribing and publishing: publishes are serialized, so every subscriber
    /// sees any two events in the same order, and a reaction to an event (published by another
    /// thread after it received the event) can never overtake the event at a third subscriber.
    /// A publish holds it for the index lookup and one `try_send` per target only.
    index: Mutex<SubscriptionIndex>,
    next_id: AtomicU64,
    counters: BusCounters,
}

/// The event bus. Cheap to clone; clones share subscribers.
///
/// Subscriptions are indexed: exact entity ids by hash, `domain.*`-style globs by domain, so a
/// state change looks at its own entity's subscribers, its domain's globs and the few globs
/// with a wildcard domain, never at every subscriber. Publishing never blocks; see the
/// module docs for the overflow policy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use homecore::{Context, EventBus, EventFilter};
/// let bus = EventBus::new();
/// let mut sub = bus.subscribe([EventFilter::EventType("doorbell".parse()?)], 16)?;
/// bus.fire("doorbell".parse()?, serde_json::json!({"button": 1}), Context::new())?;
/// let event = sub.recv().await.expect("queued");
/// assert_eq!(event.event_type(), "doorbell");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.subscriber_count())
            .field("published", &self.published())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// An empty bus.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(BusInner {
                index: Mutex::new(SubscriptionIndex::default()),
                next_id: AtomicU64::new(1),
                counters: BusCounters::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SubscriptionIndex> {
        lock_index(&self.inner)
    }

    /// Subscribes with a bounded queue of `capacity` events.
    ///
    /// # Errors
    /// [`EventBusError::ZeroCapacity`] when `capacity` is 0.
    pub fn subscribe(
        &self,
        filters: impl IntoIterator<Item = EventFilter>,
        capacity: usize,
    ) -> Result<Subscription, EventBusError> {
        if capacity == 0 {
            return Err(EventBusError::ZeroCapacity);
        }
        let (tx, rx) = mpsc::channel(capacity);
        let id = SubscriberId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let counters = Arc::new(SubscriberCounters::default());
        let sub = Arc::new(Subscriber {
            id,
            tx,
            counters: Arc::clone(&counters),
        });
        let filters: Vec<EventFilter> = filters.into_iter().collect();
        let mut index = self.lock();
        for filter in &filters {
            index.insert(&sub, filter);
        }
        index.filters.insert(id, (sub, filters));
        drop(index);
        Ok(Subscription {
            id,
            rx,
            counters,
            bus: Arc::downgrade(&self.inner),
        })
    }

    /// Adds a filter to an existing subscription. Adding a filter twice is a no-op.
    ///
    /// # Errors
    /// [`EventBusError::UnknownSubscriber`] when the subscription is gone.
    pub fn add_filter(&self, id: SubscriberId, filter: EventFilter) -> Result<(), EventBusError> {
        self.add_filter_capped(id, filter, usize::MAX)
    }

    /// Adds a filter to an existing subscription unless it already has `max_filters` filters
    /// (the cap a host puts on what one plugin may make the bus match). Adding a filter it
    /// already has is a no-op, even at the cap.
    ///
    /// # Errors
    /// [`EventBusError::UnknownSubscriber`] when the subscription is gone,
    /// [`EventBusError::TooManyFilters`] at the cap.
    pub fn add_filter_capped(
        &self,
        id: SubscriberId,
        filter: EventFilter,
        max_filters: usize,
    ) -> Result<(), EventBusError> {
        let mut index = self.lock();
        let (sub, filters) = index
            .filters
            .get_mut(&id)
            .ok_or(EventBusError::UnknownSubscriber { id })?;
        if filters.contains(&filter) {
            return Ok(());
        }
        if filters.len() >= max_filters {
            return Err(EventBusError::TooManyFilters {
                id,
                max: max_filters,
            });
        }
        filters.push(filter.clone());
        let sub = Arc::clone(sub);
        index.insert(&sub, &filter);
        Ok(())
    }

    /// How many filters subscription `id` has (`None` when it is gone).
    #[must_use]
    pub fn filter_count(&self, id: SubscriberId) -> Option<usize> {
        self.lock().filter_count(id)
    }

    /// Removes a filter from a subscription; returns whether it was there.
    ///
    /// # Errors
    /// [`EventBusError::UnknownSubscriber`] when the subscription is gone.
    pub fn remove_filter(
        &self,
        id: SubscriberId,
        filter: &EventFilter,
    ) -> Result<bool, EventBusError> {
        let mut index = self.lock();
        let (_, filters) = index
            .filters
            .get_mut(&id)
            .ok_or(EventBusError::UnknownSubscriber { id })?;
        let Some(pos) = filters.iter().position(|f| f == filter) else {
            return Ok(false);
        };
        filters.remove(pos);
        index.remove(id, filter);
        Ok(true)
    }

    /// Removes a subscription; dropping the [`Subscription`] does the same.
    pub fn unsubscribe(&self, id: SubscriberId) {
        remove_subscriber(&self.inner, id);
    }

    /// Publishes a state change to every matching subscriber. Never blocks.
    pub fn publish_state_changed(&self, event: StateChanged) {
        let event = Event::StateChanged(Arc::new(event));
        // The id is borrowed from the event rather than cloned (one reference count less).
        let id = event.as_state_changed().map(|change| &change.entity_id);
        self.publish_with(
            &event,
            |index| {
                if let Some(id) = id {
                    index.memoize_globs(id);
                }
            },
            |index, targets| {
                if let Some(id) = id {
                    index.state_targets(id, targets);
                }
            },
        );
    }

    /// Fires a generic event. Never blocks.
    ///
    /// # Errors
    /// [`EventBusError::LoopGuard`] when `context` is too deep a reaction chain.
    pub fn fire(
        &self,
        event_type: EventType,
        data: Value,
        context: Context,
    ) -> Result<(), EventBusError> {
        self.check_loop_guard(&context)?;
        let event = Event::Custom(Arc::new(CustomEvent {
            event_type: event_type.clone(),
            data,
            context,
            time_fired: Utc::now(),
        }));
        self.publish_with(
            &event,
            |_| {},
            |index, targets| {
                if let Some(list) = index.by_event_type.get(&event_type) {
                    targets.extend(list);
                }
                targets.extend(&index.all_events);
            },
        );
        Ok(())
    }

    fn publish_with(
        &self,
        event: &Event,
        prepare: impl FnOnce(&mut SubscriptionIndex),
        select: impl for<'a> Fn(&'a SubscriptionIndex, &mut Targets<'a>),
    ) {
        self.inner
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        let mut closed: SmallVec<[SubscriberId; 2]> = SmallVec::new();
        {
            let mut guard = self.lock();
            prepare(&mut guard);
            let index = &*guard;
            let mut targets = Targets::default();
            select(index, &mut targets);
            for sub in targets.0 {
                if !sub.offer(event, &self.inner.counters) {
                    closed.push(sub.id);
                }
            }
        }
        for id in closed {
            remove_subscriber(&self.inner, id);
        }
    }

    /// Applies the loop guard to a write's context, counting refusals.
    ///
    /// # Errors
    /// [`LoopGuardError`] when the context is deeper than [`crate::MAX_CONTEXT_DEPTH`].
    pub fn check_loop_guard(&self, context: &Context) -> Result<(), LoopGuardError> {
        context.check_depth().inspect_err(|err| {
            self.inner
                .counters
                .loop_guard_refusals
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                context_id = %err.context_id,
                depth = err.depth,
                origin = context.origin.as_deref().unwrap_or("-"),
                "loop guard refused a write"
            );
        })
    }

    /// Events published so far.
    #[must_use]
    pub fn published(&self) -> u64 {
        self.inner.counters.published.load(Ordering::Relaxed)
    }

    /// Deliveries dropped because a subscriber's queue was full, over all subscribers.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.inner.counters.dropped.load(Ordering::Relaxed)
    }

    /// Writes and events refused by the loop guard.
    #[must_use]
    pub fn loop_guard_refusals(&self) -> u64 {
        self.inner
            .counters
            .loop_guard_refusals
            .load(Ordering::Relaxed)
    }

    /// Current number of subscriptions.
    #[must_use]
    pub fn subscriber_count(&self) -> usize {
        self.lock().filters.len()
    }

    /// How many subscriptions listen to each event type, sorted by type, as Home Assistant's
    /// `GET /api/events` lists them: entity and state-change filters count for
    /// `state_changed`, [`EventFilter::AllEvents`] for `*`; a subscription counts once per type.
    #[must_use]
    pub fn listener_counts(&self) -> Vec<(String, usize)> {
        let index = self.lock();
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        let mut types: SmallVec<[&str; 4]> = SmallVec::new();
        for (_, filters) in index.filters.values() {
            types.clear();
            for filter in filters {
                let name = match filter {
                    EventFilter::Entity(_) | EventFilter::AllStateChanges => crate::STATE_CHANGED,
                    EventFilter::EventType(t) => t.as_str(),
                    EventFilter::AllEvents => "*",
                };
                if !types.contains(&name) {
                    types.push(name);
                }
            }
            for name in &types {
                *counts.entry(name).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .map(|(name, count)| (name.to_owned(), count))
            .collect()
    }
}

fn lock_index(inner: &BusInner) -> MutexGuard<'_, SubscriptionIndex> {
    // A panic while holding the lock cannot leave the index half-updated in a way that matters
    // (every mutation is a push or a remove), so poisoning is ignored.
    crate::lock_unpoisoned(&inner.index)
}

fn remove_subscriber(inner: &BusInner, id: SubscriberId) {
    let mut index = lock_index(inner);
    if let Some((_, filters)) = index.filters.remove(&id) {
        for filter in &filters {
            index.remove(id, filter);
        }
    }
}

/// A subscription: the receiving end of a bounded queue. Dropping it unsubscribes.
pub struct Subscription {
    id: SubscriberId,
    rx: mpsc::Receiver<Event>,
    counters: Arc<SubscriberCounters>,
    bus: Weak<BusInner>,
}

impl Subscription {
    /// This subscription's id, for [`EventBus::add_filter`].
    #[must_use]
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// The next event; `None` once the bus is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Receives up to `limit` queued events into `buffer` (waiting for the first); returns how
    /// many arrived, 0 once the bus is gone.
    pub async fn recv_many(&mut self, buffer: &mut Vec<Event>, limit: usize) -> usize {
        self.rx.recv_many(buffer, limit).await
    }

    /// Events queued for this subscriber so far.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.counters.delivered.load(Ordering::Relaxed)
    }

    /// Events dropped because this subscriber's queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the queue.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// A handle on this subscription's counters that outlives borrows of it (for monitoring
    /// a subscription owned by another task).
    #[must_use]
    pub fn stats(&self) -> SubscriptionStats {
        SubscriptionStats(Arc::clone(&self.counters))
    }
}

/// Delivery counters of one subscription; see [`Subscription::stats`].
#[derive(Clone, Debug)]
pub struct SubscriptionStats(Arc<SubscriberCounters>);

impl SubscriptionStats {
    /// Events queued for the subscriber so far.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.0.delivered.load(Ordering::Relaxed)
    }

    /// Events dropped because the subscriber's queue was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.bus.upgrade() {
            remove_subscriber(&inner, self.id);
        }
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("delivered", &self.delivered())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attributes, State};

    fn change(id: &str) -> StateChanged {
        let entity_id = EntityId::new(id).expect("valid");
        let now = Utc::now();
        let state = State::restore(
            entity_id.clone(),
            "on",
            Attributes::new(),
            now,
            now,
            Context::new(),
        )
        .expect("valid");
        StateChanged {
            entity_id,
            old_state: None,
            new_state: Some(Arc::new(state)),
            context: Context::new(),
            time_fired: now,
        }
    }

    fn glob(s: &str) -> EventFilter {
        EventFilter::Entity(EntityGlob::new(s).expect("valid"))
    }

    fn drain(sub: &mut Subscription) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(e) = sub.try_recv() {
            out.push(
                e.as_state_changed()
                    .map_or_else(|| e.event_type().to_owned(), |s| s.entity_id.to_string()),
            );
        }
        out
    }

    #[test]
    fn filters_route_by_exact_id_domain_glob_and_all() {
        let bus = EventBus::new();
        let mut exact = bus.subscribe([glob("light.hall")], 16).expect("ok");
        let mut domain = bus.subscribe([glob("light.*")], 16).expect("ok");
        let mut other = bus.subscribe([glob("*.kitchen_*")], 16).expect("ok");
        let mut all = bus
            .subscribe([EventFilter::AllStateChanges], 16)
            .expect("ok");
        for id in [
            "light.hall",
            "light.kitchen_main",
            "switch.kitchen_fan",
            "switch.porch",
        ] {
            bus.publish_state_changed(change(id));
        }
        assert_eq!(drain(&mut exact), ["light.hall"]);
        assert_eq!(drain(&mut domain), ["light.hall", "light.kitchen_main"]);
        assert_eq!(
            drain(&mut other),
            ["light.kitchen_main", "switch.kitchen_fan"]
        );
        assert_eq!(drain(&mut all).len(), 4);
    }

    #[test]
    fn overlapping_filters_deliver_once() {
        let bus = EventBus::new();
        let mut sub = bus
            .subscribe(
                [
                    glob("light.hall"),
                    glob("light.*"),
                    glob("*.hall"),
                    EventFilter::AllEvents,
                ],
                16,
            )
            .expect("ok");
        bus.publish_state_changed(change("light.hall"));
        assert_eq!(drain(&mut sub), ["light.hall"]);
    }

    #[test]
    fn full_queue_drops_newest_counts_and_keeps_order() {
        let bus = EventBus::new();
        let mut slow = bus
            .subscribe([EventFilter::AllStateChanges], 2)
            .expect("ok");
        let mut fast = bus
            .subscribe([EventFilter::AllStateChanges], 16)
            .expect("ok");
        for id in ["a.one", "a.two", "a.three", "a.four"] {
            bus.publish_state_changed(change(id));
        }
        assert_eq!(drain(&mut slow), ["a.one", "a.two"]);
        assert_eq!(slow.dropped(), 2);
        assert_eq!(slow.delivered(), 2);
        assert_eq!(bus.dropped(), 2);
        assert_eq!(
            drain(&mut fast).len(),
            4,
            "a slow subscriber does not affect another"
        );
        bus.publish_state_changed(change("a.five"));
        assert_eq!(
            drain(&mut slow),
            ["a.five"],
            "delivery resumes once drained"
        );
    }

    #[test]
    fn dropping_a_subscription_unsubscribes() {
        let bus = EventBus::new();
        let sub = bus
            .subscribe([glob("light.*"), glob("light.hall")], 1)
            .expect("ok");
        assert_eq!(bus.subscriber_count(), 1);
        drop(sub);
        assert_eq!(bus.subscriber_count(), 0);
        bus.publish_state_changed(change("light.hall"));
        let index = bus.lock();
        assert!(index.exact.is_empty() && index.by_domain.is_empty());
    }

    #[test]
    fn filters_can_be_added_and_removed() {
        let bus = EventBus::new();
        let mut sub = bus.subscribe([], 8).expect("ok");
        bus.add_filter(sub.id(), glob("light.*"))
            .expect("subscribed");
        bus.add_filter(sub.id(), glob("light.*"))
            .expect("idempotent");
        bus.publish_state_changed(change("light.a"));
        assert!(
            bus.remove_filter(sub.id(), &glob("light.*"))
                .expect("subscribed")
        );
        bus.publish_state_changed(change("light.b"));
        assert_eq!(drain(&mut sub), ["light.a"]);
        let gone = SubscriberId(999);
        assert_eq!(
            bus.add_filter(gone, EventFilter::AllEvents),
            Err(EventBusError::UnknownSubscriber { id: gone })
        );
    }

    #[test]
    fn generic_events_by_type_and_all() {
        let bus = EventBus::new();
        let t = EventType::new("doorbell").expect("valid");
        let mut typed = bus
            .subscribe([EventFilter::EventType(t.clone())], 4)
            .expect("ok");
        let mut all = bus.subscribe([EventFilter::AllEvents], 4).expect("ok");
        let mut states = bus
            .subscribe([EventFilter::AllStateChanges], 4)
            .expect("ok");
        bus.fire(t, Value::Null, Context::new()).expect("fired");
        bus.fire(
            EventType::new("other").expect("valid"),
            Value::Null,
            Context::new(),
        )
        .expect("fired");
        assert_eq!(drain(&mut typed), ["doorbell"]);
        assert_eq!(drain(&mut all), ["doorbell", "other"]);
        assert!(drain(&mut states).is_empty());
        assert_eq!(
            bus.subscribe([], 0).err(),
            Some(EventBusError::ZeroCapacity)
        );
    }

    #[test]
    fn listener_counts_group_subscriptions_by_event_type() {
        let bus = EventBus::new();
        let t = EventType::new("doorbell").expect("valid");
        let _a = bus
            .subscribe(
                [
                    glob("light.*"),
                    glob("light.hall"),
                    EventFilter::EventType(t.clone()),
                ],
                4,
            )
            .expect("ok");
        let _b = bus
            .subscribe([EventFilter::AllStateChanges], 4)
            .expect("ok");
        let _c = bus.subscribe([EventFilter::AllEvents], 4).expect("ok");
        assert_eq!(
            bus.listener_counts(),
            [
                ("*".to_owned(), 1),
                ("doorbell".to_owned(), 1),
                ("state_changed".to_owned(), 2)
            ]
        );
    }

    #[test]
    fn loop_guard_refuses_deep_events_and_counts() {
        let bus = EventBus::new();
        let mut ctx = Context::new();
        for _ in 0..=crate::MAX_CONTEXT_DEPTH {
            ctx = ctx.child(None);
        }
        let err = bus.fire(EventType::new("x").expect("valid"), Value::Null, ctx);
        assert!(matches!(err, Err(EventBusError::LoopGuard(_))));
        assert_eq!(bus.loop_guard_refusals(), 1);
    }

    #[test]
    fn a_reaction_never_overtakes_its_cause_at_a_third_subscriber() {
        // The reactor publishes "b" from another thread as soon as it receives "a"; the
        // observer (matched after the reactor) must still see "a" first, every time.
        let bus = EventBus::new();
        let mut reactor = bus.subscribe([glob("test.a")], 1 << 16).expect("ok");
        let mut observer = bus
            .subscribe([EventFilter::AllStateChanges], 1 << 16)
            .expect("ok");
        let rounds = 2000;
        std::thread::scope(|s| {
            let bus2 = bus.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    for _ in 0..rounds {
                        reactor.recv().await.expect("a arrives");
                        bus2.publish_state_changed(change("test.b"));
                    }
                });
            });
            for _ in 0..rounds {
                bus.publish_state_changed(change("test.a"));
                std::hint::spin_loop();
            }
        });
        let seen = drain(&mut observer);
        assert_eq!(seen.len(), rounds * 2);
        let mut a_seen = 0usize;
        for id in &seen {
            if id == "test.a" {
                a_seen += 1;
            } else {
                assert!(a_seen > 0, "a reaction arrived before any cause");
            }
        }
        let mut balance = 0i64;
        for id in &seen {
            balance += if id == "test.a" { 1 } else { -1 };
            assert!(balance >= 0, "a 'b' overtook its 'a'");
        }
    }

    #[test]
    fn index_scales_with_thousands_of_exact_subscribers() {
        let bus = EventBus::new();
        let subs: Vec<_> = (0..5000)
            .map(|i| {
                bus.subscribe([glob(&format!("sensor.s{i}"))], 1)
                    .expect("ok")
            })
            .collect();
        bus.publish_state_changed(change("sensor.s4321"));
        let got: Vec<_> = subs.iter().map(Subscription::queued).collect();
        assert_eq!(got.iter().sum::<usize>(), 1);
        assert_eq!(got[4321], 1);
    }

    #[test]
    fn glob_memo_follows_globs_added_and_removed() {
        let bus = EventBus::new();
        let mut a = bus.subscribe([], 64).expect("subscribed");
        // First change of light.hall: nobody has a glob yet.
        bus.publish_state_changed(change("light.hall"));
        assert!(drain(&mut a).is_empty());
        bus.add_filter(a.id(), glob("light.h*")).expect("added");
        bus.publish_state_changed(change("light.hall"));
        assert_eq!(drain(&mut a), ["light.hall"]);
        // A second subscriber's wildcard-domain glob is seen at once, the first keeps its own.
        let mut b = bus.subscribe([glob("*.hall")], 64).expect("subscribed");
        bus.publish_state_changed(change("light.hall"));
        assert_eq!(drain(&mut a), ["light.hall"]);
        assert_eq!(drain(&mut b), ["light.hall"]);
        assert!(bus.remove_filter(a.id(), &glob("light.h*")).expect("known"));
        bus.publish_state_changed(change("light.hall"));
        assert!(drain(&mut a).is_empty());
        assert_eq!(drain(&mut b), ["light.hall"]);
        drop(b);
        bus.publish_state_changed(change("light.hall"));
        assert!(drain(&mut a).is_empty());
    }

    #[test]
    fn a_subscriber_with_two_matching_globs_gets_one_copy() {
        let bus = EventBus::new();
        let mut a = bus
            .subscribe([glob("light.*"), glob("*.hall"), glob("light.hall")], 64)
            .expect("subscribed");
        bus.publish_state_changed(change("light.hall"));
        assert_eq!(drain(&mut a), ["light.hall"]);
    }

    #[test]
    fn filters_are_capped_per_subscriber() {
        let bus = EventBus::new();
        let a = bus.subscribe([], 4).expect("subscribed");
        for i in 0..3 {
            bus.add_filter_capped(a.id(), glob(&format!("sensor.s{i}*")), 3)
                .expect("under the cap");
        }
        assert_eq!(
            bus.add_filter_capped(a.id(), glob("sensor.x*"), 3),
            Err(EventBusError::TooManyFilters { id: a.id(), max: 3 })
        );
        // A filter it already has is not a new one.
        bus.add_filter_capped(a.id(), glob("sensor.s0*"), 3)
            .expect("already there");
        assert_eq!(bus.filter_count(a.id()), Some(3));
        let gone = a.id();
        drop(a);
        assert_eq!(bus.filter_count(gone), None);
    }

    /// Delivery through the index and its memo equals matching every glob directly, over
    /// random globs added and removed between publishes.
    #[test]
    fn indexed_delivery_equals_matching_every_glob() {
        const GLOBS: [&str; 10] = [
            "light.*",
            "light.h*",
            "*.hall",
            "*",
            "l*.k?",
            "sensor.s1",
            "*.*_x",
            "light.k?",
            "s*.s*",
            "light.hall",
        ];
        const IDS: [&str; 6] = [
            "light.hall",
            "light.k1",
            "sensor.s1",
            "sensor.a_x",
            "lock.k2",
            "light.kx",
        ];
        let bus = EventBus::new();
        let mut subs: Vec<(Subscription, Vec<&str>)> = (0..4)
            .map(|_| (bus.subscribe([], 1024).expect("subscribed"), Vec::new()))
            .collect();
        // A small deterministic generator: the test needs variety, not randomness.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % n as u64).expect("small")
        };
        for _ in 0..2_000 {
            let which = next(subs.len());
            let g = GLOBS[next(GLOBS.len())];
            let (sub, held) = &mut subs[which];
            if next(3) == 0 {
                if let Some(pos) = held.iter().position(|h| *h == g) {
                    held.remove(pos);
                    assert!(bus.remove_filter(sub.id(), &glob(g)).expect("known"));
                }
            } else if !held.contains(&g) {
                held.push(g);
                bus.add_filter(sub.id(), glob(g)).expect("added");
            }
            let id = IDS[next(IDS.len())];
            bus.publish_state_changed(change(id));
            let entity = EntityId::new(id).expect("valid");
            for (sub, held) in &mut subs {
                let want = held
                    .iter()
                    .any(|g| EntityGlob::new(g).expect("valid").matches(&entity));
                let got = drain(sub);
                assert_eq!(got.len(), usize::from(want), "{id} for globs {held:?}");
            }
        }
    }
}
