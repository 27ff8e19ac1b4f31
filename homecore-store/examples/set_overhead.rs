//! The state recorder's cost on the set path, measured A/B interleaved so that load drift on a
//! busy machine hits both sides alike (divan runs one benchmark after the other).
//!
//! `cargo run --release -p homecore-store --example set_overhead`
//!
//! Two homes, each with one exact-id subscriber (the shape of `homecore/benches/core.rs`'s
//! `set::one_subscriber`); home B also has a `StateRecorder` (default config, `PowerLoss`).
//! Each round times 64,000 writes alternating "on"/"off" on each home in turn (order swapped
//! every round), draining the subscriber between 1,000-write segments outside the timed part.
//! Prints the median ns per write of each side over the rounds and the overhead; a third home
//! with only a log-pushing observer shows the synchronous part of the cost.

use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use homecore::{Attributes, Context, EntityId, EventFilter, Home, StateObserver, Subscription};
use homecore_store::{RecorderConfig, StateRecorder, Store};

const ROUNDS: usize = 41;
const SEGMENTS: usize = 64;
const SEGMENT: usize = 1000;

struct Side {
    home: Home,
    watcher: Subscription,
    id: EntityId,
    attrs: Attributes,
    ctx: Context,
    on: bool,
}

impl Side {
    fn new() -> Self {
        let home = Home::new();
        let id: EntityId = "light.hall".parse().expect("valid");
        let watcher = home
            .bus
            .subscribe([EventFilter::entity(&id)], 1 << 16)
            .expect("capacity is not zero");
        let attrs =
            Attributes::try_from(serde_json::json!({"brightness": 128, "friendly_name": "Hall"}))
                .expect("an object");
        Self {
            home,
            watcher,
            id,
            attrs,
            ctx: Context::for_user("bench"),
            on: false,
        }
    }

    /// Nanoseconds per write over one round.
    fn round(&mut self) -> f64 {
        let mut timed = Duration::ZERO;
        for _ in 0..SEGMENTS {
            while self.watcher.try_recv().is_some() {}
            let start = Instant::now();
            for _ in 0..SEGMENT {
                self.on = !self.on;
                let state = if self.on { "on" } else { "off" };
                std::hint::black_box(
                    self.home
                        .states
                        .set(&self.id, state, self.attrs.clone(), &self.ctx)
                        .expect("valid"),
                );
            }
            timed += start.elapsed();
        }
        timed.as_nanos() as f64 / (SEGMENTS * SEGMENT) as f64
    }
}

/// For reference: an observer doing only a mutexed push of the id and a count (the recorder's
/// synchronous work, without its writer thread and its de-duplication).
#[derive(Default)]
struct LogOnly(Mutex<(u64, Vec<EntityId>)>);

impl StateObserver for LogOnly {
    fn state_changed(&self, entity_id: &EntityId) {
        let mut log = self.0.lock().expect("not poisoned");
        log.0 += 1;
        if log.1.len() > 4096 {
            log.1.clear();
        }
        log.1.push(entity_id.clone());
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("a temporary directory");
    let store = Store::open(dir.path().join("overhead.db")).expect("opens");
    let mut plain = Side::new();
    let mut recorded = Side::new();
    let recorder = StateRecorder::start(&store, &recorded.home.states, RecorderConfig::default())
        .expect("starts");
    let mut observed = Side::new();
    observed
        .home
        .states
        .add_observer(Arc::new(LogOnly::default()) as Arc<dyn StateObserver>);
    // Warm-up.
    plain.round();
    recorded.round();
    observed.round();
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round.is_multiple_of(2) {
            a.push(plain.round());
            b.push(recorded.round());
            c.push(observed.round());
        } else {
            c.push(observed.round());
            b.push(recorded.round());
            a.push(plain.round());
        }
    }
    let (a, b, c) = (median(&mut a), median(&mut b), median(&mut c));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let durable = runtime.block_on(recorder.shutdown()).expect("commits");
    println!("set + publish, 1 subscriber: {a:.1} ns without recorder, {b:.1} ns with");
    println!(
        "overhead: {:+.1}% ({durable} changes recorded)",
        (b / a - 1.0) * 100.0
    );
    println!(
        "reference, an observer pushing to a mutexed log only: {c:.1} ns ({:+.1}%)",
        (c / a - 1.0) * 100.0
    );
}
