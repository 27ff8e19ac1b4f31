//! Benchmarks of persistence: what the state recorder costs the set path, how many changes per
//! second it commits, how long an acknowledgement (a flush) takes, and a plugin storage write.
//!
//! Run with `cargo bench -p homecore-store --bench store`. Databases live in a temporary
//! directory under the target directory (a real disk, so fsync costs what it costs).
//!
//! The set benchmarks have the shape of `homecore/benches/core.rs`'s `set::one_subscriber`: one
//! exact-id subscriber whose queue is drained between samples, a state alternating between "on"
//! and "off". `with_recorder` adds a running recorder (default config, `Durability::PowerLoss`)
//! in the same run; the target is ≤ 10% over `without_recorder`.

use std::time::Duration;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use homecore::{Attributes, Context, EntityId, EventFilter, Home, Subscription};
use homecore_plugins::PluginStorage;
use homecore_store::{
    Durability, RecorderConfig, SqlitePluginStorage, StateRecorder, Store, StoreOptions,
};

fn main() {
    divan::main();
}

/// Queue capacity of the watching subscriber: far more than divan's samples hold.
const QUEUE: usize = 1 << 16;

fn id(s: &str) -> EntityId {
    EntityId::new(s).expect("benchmark ids are valid")
}

fn attrs() -> Attributes {
    Attributes::try_from(serde_json::json!({"brightness": 128, "friendly_name": "Hall"}))
        .expect("an object")
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory")
}

fn open(dir: &tempfile::TempDir, durability: Durability) -> Store {
    Store::open_with(
        dir.path().join("bench.db"),
        StoreOptions::default().with_durability(durability),
    )
    .expect("opens")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// `StateMachine::set` + publish to one subscriber, with and without the recorder attached.
mod set {
    use super::*;

    fn alternating(bencher: Bencher<'_, '_>, recorded: bool) {
        alternating_with(bencher, recorded, false);
    }

    fn alternating_with(bencher: Bencher<'_, '_>, recorded: bool, second: bool) {
        let dir = temp_dir();
        let store = open(&dir, Durability::PowerLoss);
        let home = Home::new();
        let hall = id("light.hall");
        let mut watcher: Subscription = home
            .bus
            .subscribe([EventFilter::entity(&hall)], QUEUE)
            .expect("capacity is not zero");
        let recorder = recorded.then(|| {
            StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts")
        });
        let mut other: Option<Subscription> = second.then(|| {
            home.bus
                .subscribe([EventFilter::AllStateChanges], QUEUE)
                .expect("capacity is not zero")
        });
        let attrs = attrs();
        let ctx = Context::for_user("bench");
        let mut on = false;
        bencher
            .with_inputs(|| {
                while watcher.try_recv().is_some() {}
                if let Some(other) = other.as_mut() {
                    while other.try_recv().is_some() {}
                }
                on = !on;
                if on { "on" } else { "off" }
            })
            .bench_local_values(|state| home.states.set(&hall, state, attrs.clone(), &ctx));
        if let Some(recorder) = recorder {
            let durable = runtime()
                .block_on(recorder.shutdown())
                .expect("the recorder kept up");
            assert!(durable > 0, "the recorder recorded");
        }
        assert_eq!(watcher.dropped(), 0, "the watcher's queue overflowed");
    }

    /// The baseline: set + publish to one subscriber, no recorder.
    #[divan::bench(sample_count = 500, sample_size = 64)]
    fn without_recorder(bencher: Bencher<'_, '_>) {
        alternating(bencher, false);
    }

    /// The same with a recorder attached (its queue, its writer thread committing every 20 ms).
    #[divan::bench(sample_count = 500, sample_size = 64)]
    fn with_recorder(bencher: Bencher<'_, '_>) {
        alternating(bencher, true);
    }

    /// For reference: a second subscriber of every change, drained on the benchmark's thread
    /// (the bus's cost of one more queue, without the recorder's thread).
    #[divan::bench(sample_count = 500, sample_size = 64)]
    fn with_second_subscriber(bencher: Bencher<'_, '_>) {
        alternating_with(bencher, false, true);
    }
}

/// Changes committed per second: 10,000 changes to 10,000 distinct entities (no coalescing:
/// every change is a row), from the first set to the flush that covers the last.
mod writer_throughput {
    use super::*;

    const CHANGES: usize = 10_000;

    fn burst(bencher: Bencher<'_, '_>, durability: Durability) {
        let dir = temp_dir();
        let store = open(&dir, durability);
        let home = Home::new();
        let recorder =
            StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
        let rt = runtime();
        let ids: Vec<EntityId> = (0..CHANGES).map(|i| id(&format!("sensor.s{i}"))).collect();
        let attrs = attrs();
        let ctx = Context::new();
        let mut round = 0u64;
        bencher.counter(ItemsCount::new(CHANGES)).bench_local(|| {
            round += 1;
            let value = round.to_string();
            for entity in &ids {
                home.states
                    .set(entity, &value, attrs.clone(), &ctx)
                    .expect("valid");
            }
            rt.block_on(recorder.flush()).expect("commits")
        });
        assert!(recorder.stats().rows_written > 0);
    }

    /// `PowerLoss` is synchronous=FULL (an fsync per commit), `ProcessCrash` synchronous=NORMAL.
    #[divan::bench(sample_count = 20, sample_size = 1, args = [Durability::PowerLoss, Durability::ProcessCrash])]
    fn durability(bencher: Bencher<'_, '_>, durability: Durability) {
        burst(bencher, durability);
    }
}

/// The acknowledgement latency: one change, then a flush (a commit of one row).
mod ack_latency {
    use super::*;

    fn one_change(bencher: Bencher<'_, '_>, durability: Durability) {
        let dir = temp_dir();
        let store = open(&dir, durability);
        let home = Home::new();
        let recorder = StateRecorder::start(
            &store,
            &home.states,
            RecorderConfig::default().with_commit_interval(Duration::from_secs(1)),
        )
        .expect("starts");
        let rt = runtime();
        let hall = id("light.hall");
        let mut round = 0u64;
        bencher.bench_local(|| {
            round += 1;
            home.states
                .set(
                    &hall,
                    &round.to_string(),
                    Attributes::new(),
                    &Context::new(),
                )
                .expect("valid");
            rt.block_on(recorder.flush()).expect("commits")
        });
    }

    /// `PowerLoss` is synchronous=FULL (an fsync per commit), `ProcessCrash` synchronous=NORMAL.
    #[divan::bench(sample_count = 50, sample_size = 1, args = [Durability::PowerLoss, Durability::ProcessCrash])]
    fn durability(bencher: Bencher<'_, '_>, durability: Durability) {
        one_change(bencher, durability);
    }
}

/// One plugin storage write (its own transaction, durable when it returns).
mod kv_set {
    use super::*;

    fn write(bencher: Bencher<'_, '_>, durability: Durability) {
        let dir = temp_dir();
        let store = open(&dir, durability);
        let storage = SqlitePluginStorage::open(&store).expect("loads");
        let mut round = 0u64;
        bencher.bench_local(|| {
            round += 1;
            storage
                .set("bench", "counter", round.to_string().as_bytes(), 1 << 20)
                .expect("fits");
        });
        black_box(storage.used("bench"));
    }

    /// `PowerLoss` is synchronous=FULL (an fsync per commit), `ProcessCrash` synchronous=NORMAL.
    #[divan::bench(sample_count = 50, sample_size = 1, args = [Durability::PowerLoss, Durability::ProcessCrash])]
    fn durability(bencher: Bencher<'_, '_>, durability: Durability) {
        write(bencher, durability);
    }
}
