//! Benchmarks of HomeCore's hot paths: a state write with its publish, a no-op write, the bus
//! alone, and entity id / glob handling.
//!
//! Run with `cargo bench -p homecore --bench core`. The target is a state write plus publish
//! to its subscribers within 1 µs.
//!
//! A subscriber's queue is drained between samples (divan builds every input of a sample
//! before timing it) and is far larger than any sample, so what is timed is queueing, never
//! the drop-newest path; each benchmark asserts afterwards that nothing was dropped.

use std::sync::Arc;

use divan::{Bencher, black_box};
use homecore::{
    Attributes, Context, EntityGlob, EntityId, EventBus, EventFilter, State, StateChanged,
    StateMachine, Subscription,
};

fn main() {
    divan::main();
}

/// Queue capacity of a watching subscriber: far more than divan's samples hold.
const QUEUE: usize = 1 << 16;

/// The entity every write goes to.
const ENTITY: &str = "light.hall";

fn id(s: &str) -> EntityId {
    EntityId::new(s).expect("benchmark ids are valid")
}

fn filter(glob: &str) -> EventFilter {
    EventFilter::Entity(EntityGlob::new(glob).expect("benchmark globs are valid"))
}

/// Small attributes, as a light reports them.
fn attrs() -> Attributes {
    Attributes::try_from(serde_json::json!({"brightness": 128, "friendly_name": "Hall"}))
        .expect("an object")
}

/// Subscriptions that never match [`ENTITY`]: 1,000 exact ids, 50 domain globs on other
/// domains and 10 globs with a wildcard domain (the ones the bus has to scan).
fn unrelated(bus: &EventBus) -> Vec<Subscription> {
    let exact = (0..1000).map(|i| filter(&format!("sensor.s{i}")));
    let domains = (0..50).map(|i| filter(&format!("domain{i}.*")));
    let scanned = (0..10).map(|i| filter(&format!("*.room{i}_*")));
    exact
        .chain(domains)
        .chain(scanned)
        .map(|f| bus.subscribe([f], 1).expect("capacity is not zero"))
        .collect()
}

/// Who listens to [`ENTITY`]'s changes.
#[derive(Clone, Copy)]
enum Listeners {
    None,
    One,
    OneAmongUnrelated,
}

struct Fixture {
    states: StateMachine,
    watcher: Option<Subscription>,
    _unrelated: Vec<Subscription>,
    id: EntityId,
    attrs: Attributes,
    ctx: Context,
}

impl Fixture {
    fn new(listeners: Listeners) -> Self {
        let bus = EventBus::new();
        let watcher = match listeners {
            Listeners::None => None,
            Listeners::One | Listeners::OneAmongUnrelated => Some(
                bus.subscribe([EventFilter::entity(&id(ENTITY))], QUEUE)
                    .expect("capacity is not zero"),
            ),
        };
        let unrelated = match listeners {
            Listeners::OneAmongUnrelated => unrelated(&bus),
            Listeners::None | Listeners::One => Vec::new(),
        };
        let states = StateMachine::new(bus);
        let id = id(ENTITY);
        let attrs = attrs();
        let ctx = Context::for_user("bench");
        states
            .set(&id, "off", attrs.clone(), &ctx)
            .expect("a valid write");
        let mut fixture = Self {
            states,
            watcher,
            _unrelated: unrelated,
            id,
            attrs,
            ctx,
        };
        fixture.drain();
        fixture
    }

    /// Empties the watcher's queue (outside the timed loop).
    fn drain(&mut self) {
        if let Some(watcher) = &mut self.watcher {
            while watcher.try_recv().is_some() {}
        }
    }

    /// Checks that the benchmark measured deliveries, not drops.
    fn assert_no_drops(&self) {
        assert_eq!(self.states.bus().dropped(), 0, "a queue overflowed");
    }
}

/// `StateMachine::set` of a state alternating between "on" and "off", with its publish.
mod set {
    use super::*;

    fn alternating(bencher: Bencher<'_, '_>, listeners: Listeners) {
        let mut fixture = Fixture::new(listeners);
        let mut on = false;
        let Fixture {
            states,
            watcher,
            id,
            attrs,
            ctx,
            ..
        } = &mut fixture;
        bencher
            .with_inputs(|| {
                if let Some(watcher) = watcher.as_mut() {
                    while watcher.try_recv().is_some() {}
                }
                on = !on;
                if on { "on" } else { "off" }
            })
            .bench_local_values(|state| states.set(id, state, attrs.clone(), ctx));
        fixture.assert_no_drops();
    }

    /// No subscribers: the write and an event nobody receives.
    #[divan::bench]
    fn no_subscribers(bencher: Bencher<'_, '_>) {
        alternating(bencher, Listeners::None);
    }

    /// One exact-id subscriber.
    #[divan::bench]
    fn one_subscriber(bencher: Bencher<'_, '_>) {
        alternating(bencher, Listeners::One);
    }

    /// One exact-id subscriber among 1,000 unrelated exact ids, 50 domain globs and
    /// 10 wildcard-domain globs.
    #[divan::bench]
    fn one_subscriber_among_1060(bencher: Bencher<'_, '_>) {
        alternating(bencher, Listeners::OneAmongUnrelated);
    }

    /// One subscriber; the attributes are a new, equal map on every write (as a plugin that
    /// builds them each time), so they are compared rather than recognised by pointer.
    #[divan::bench]
    fn one_subscriber_fresh_attributes(bencher: Bencher<'_, '_>) {
        let mut fixture = Fixture::new(Listeners::One);
        let mut on = false;
        let Fixture {
            states,
            watcher,
            id,
            ctx,
            ..
        } = &mut fixture;
        bencher
            .with_inputs(|| {
                if let Some(watcher) = watcher.as_mut() {
                    while watcher.try_recv().is_some() {}
                }
                on = !on;
                (if on { "on" } else { "off" }, attrs())
            })
            .bench_local_values(|(state, attrs)| states.set(id, state, attrs, ctx));
        fixture.assert_no_drops();
    }
}

/// A write of the state and attributes already stored: no new state, no event.
mod noop_set {
    use super::*;

    /// The stored attributes passed again (recognised by pointer).
    #[divan::bench]
    fn same_attributes(bencher: Bencher<'_, '_>) {
        let fixture = Fixture::new(Listeners::One);
        bencher.bench_local(|| {
            fixture
                .states
                .set(&fixture.id, "off", fixture.attrs.clone(), &fixture.ctx)
        });
        assert_eq!(fixture.watcher.as_ref().map(Subscription::queued), Some(0));
    }

    /// A new map equal to the stored one (compared key by key).
    #[divan::bench]
    fn equal_attributes(bencher: Bencher<'_, '_>) {
        let fixture = Fixture::new(Listeners::One);
        bencher.with_inputs(attrs).bench_local_values(|attrs| {
            fixture.states.set(&fixture.id, "off", attrs, &fixture.ctx)
        });
        assert_eq!(fixture.watcher.as_ref().map(Subscription::queued), Some(0));
    }
}

/// `EventBus::publish_state_changed` alone.
mod publish {
    use super::*;

    pub(super) fn event(entity: &str) -> StateChanged {
        let entity_id = id(entity);
        let now = chrono::Utc::now();
        let ctx = Context::for_user("bench");
        let state = |s: &str| {
            State::restore(entity_id.clone(), s, attrs(), now, now, ctx.clone())
                .map(Arc::new)
                .expect("a valid state")
        };
        StateChanged {
            entity_id: entity_id.clone(),
            old_state: Some(state("off")),
            new_state: Some(state("on")),
            context: ctx.clone(),
            time_fired: now,
        }
    }

    fn publish(bencher: Bencher<'_, '_>, listeners: Listeners, entity: &str) {
        let mut fixture = Fixture::new(listeners);
        let template = event(entity);
        let bus = fixture.states.bus().clone();
        let watcher = &mut fixture.watcher;
        bencher
            .with_inputs(|| {
                if let Some(watcher) = watcher.as_mut() {
                    while watcher.try_recv().is_some() {}
                }
                template.clone()
            })
            .bench_local_values(|event| bus.publish_state_changed(event));
        fixture.assert_no_drops();
    }

    /// Delivered to the one exact-id subscriber.
    #[divan::bench]
    fn matched(bencher: Bencher<'_, '_>) {
        publish(bencher, Listeners::One, ENTITY);
    }

    /// Delivered to one exact-id subscriber among 1,060 unrelated subscriptions.
    #[divan::bench]
    fn matched_among_1060(bencher: Bencher<'_, '_>) {
        publish(bencher, Listeners::OneAmongUnrelated, ENTITY);
    }

    /// Nobody subscribed to this entity, with 1,060 unrelated subscriptions installed.
    #[divan::bench]
    fn unmatched_among_1060(bencher: Bencher<'_, '_>) {
        publish(bencher, Listeners::OneAmongUnrelated, "switch.porch");
    }
}

/// A publish while other subscribers hold many globs (issue 13 §3: one plugin holding 50,000
/// wildcard subscriptions made every state write 2.4× slower). Half the globs have a wildcard
/// domain (`*.x{i}_*`), half sit in the written entity's own domain (`light.x{i}_*`); none
/// matches. The delivery to one exact-id subscriber is timed in steady state, so the figure
/// for 1,000,000 globs should equal the figure for none.
mod publish_among_globs {
    use super::*;

    /// Subscribers holding `globs` globs, 1,000 each (the default cap per plugin).
    fn glob_holders(bus: &EventBus, globs: usize) -> Vec<Subscription> {
        let mut holders = Vec::new();
        let mut made = 0;
        while made < globs {
            let sub = bus.subscribe([], 1).expect("capacity is not zero");
            for _ in 0..1000.min(globs - made) {
                let glob = if made % 2 == 0 {
                    format!("*.x{made}_*")
                } else {
                    format!("light.x{made}_*")
                };
                bus.add_filter(sub.id(), filter(&glob)).expect("subscribed");
                made += 1;
            }
            holders.push(sub);
        }
        holders
    }

    #[divan::bench(args = [0, 1_000, 50_000, 1_000_000], sample_count = 50)]
    fn matched(bencher: Bencher<'_, '_>, globs: usize) {
        let bus = EventBus::new();
        let holders = glob_holders(&bus, globs);
        let mut watcher = bus
            .subscribe([EventFilter::entity(&id(ENTITY))], QUEUE)
            .expect("capacity is not zero");
        let template = super::publish::event(ENTITY);
        // The first change of the entity after the globs changed matches them all once.
        bus.publish_state_changed(template.clone());
        bencher
            .with_inputs(|| {
                while watcher.try_recv().is_some() {}
                template.clone()
            })
            .bench_local_values(|event| bus.publish_state_changed(event));
        assert_eq!(
            bus.dropped(),
            0,
            "no sample may overflow the watcher's queue"
        );
        // Dropping a million globs' subscribers is not what is measured.
        std::mem::forget(holders);
    }
}

/// Entity ids and globs.
mod ids {
    use super::*;

    /// `EntityId::new` of a typical id. The sample size is fixed: tuning it from a cold first
    /// call would settle on one parse per sample, below the timer's precision.
    #[divan::bench(sample_size = 256)]
    fn entity_id_parse() -> EntityId {
        id(black_box("light.kitchen_ceiling"))
    }

    /// `EntityGlob::matches` by glob kind, for an id that matches and one that does not.
    #[divan::bench(args = [
        ("light.kitchen_ceiling", "light.kitchen_ceiling"),
        ("light.kitchen_ceiling", "light.hall"),
        ("light.*", "light.kitchen_ceiling"),
        ("light.*", "switch.kitchen_ceiling"),
        ("light.kitchen_*", "light.hall"),
        ("*.kitchen_*", "light.kitchen_ceiling"),
        ("*.kitchen_*", "light.hall_kitchen_x"),
    ])]
    fn glob_matches(bencher: Bencher<'_, '_>, (glob, entity): (&str, &str)) {
        let glob = EntityGlob::new(glob).expect("a valid glob");
        let entity = id(entity);
        bencher.bench_local(|| black_box(&glob).matches(black_box(&entity)));
    }
}
