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

use std::sync::Arc;
use std::time::Duration;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use homecore::{Attributes, Context, EntityId, EventFilter, Home, StateObserver, Subscription};
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

    /// What is attached besides the one subscriber.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Extra {
        Nothing,
        Recorder,
        /// For reference: a second bus subscriber of every change (drained on this thread).
        SecondSubscriber,
        /// For reference: an observer doing the recorder's synchronous work (a mutexed push of
        /// the id and a count), with no writer thread.
        LogOnly,
    }

    #[derive(Default)]
    struct LogOnly(std::sync::Mutex<(u64, Vec<EntityId>)>);

    impl StateObserver for LogOnly {
        fn state_changed(&self, entity_id: &EntityId) {
            let mut log = self.0.lock().expect("not poisoned");
            log.0 += 1;
            log.1.push(entity_id.clone());
        }
    }

    /// Writes alternate "on"/"off"; with `entities` > 1 they go round-robin over that many
    /// entities (each write a different entity from the last).
    fn alternating(bencher: Bencher<'_, '_>, extra: Extra, entities: usize) {
        let dir = temp_dir();
        let store = open(&dir, Durability::PowerLoss);
        let home = Home::new();
        let ids: Vec<EntityId> = if entities == 1 {
            vec![id("light.hall")]
        } else {
            (0..entities).map(|i| id(&format!("light.l{i}"))).collect()
        };
        let filter = if entities == 1 {
            EventFilter::entity(&ids[0])
        } else {
            EventFilter::AllStateChanges
        };
        let mut watcher: Subscription = home
            .bus
            .subscribe([filter], QUEUE)
            .expect("capacity is not zero");
        let recorder = (extra == Extra::Recorder).then(|| {
            StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts")
        });
        let log = Arc::new(LogOnly::default());
        if extra == Extra::LogOnly {
            home.states
                .add_observer(Arc::clone(&log) as Arc<dyn StateObserver>);
        }
        let mut other: Option<Subscription> = (extra == Extra::SecondSubscriber).then(|| {
            home.bus
                .subscribe([EventFilter::AllStateChanges], QUEUE)
                .expect("capacity is not zero")
        });
        let attrs = attrs();
        let ctx = Context::for_user("bench");
        let mut n = 0usize;
        bencher
            .with_inputs(|| {
                while watcher.try_recv().is_some() {}
                if let Some(other) = other.as_mut() {
                    while other.try_recv().is_some() {}
                }
                log.0.lock().expect("not poisoned").1.clear();
                n += 1;
                let entity = &ids[n % ids.len()];
                let on = (n / ids.len()).is_multiple_of(2);
                (entity, if on { "on" } else { "off" })
            })
            .bench_local_values(|(entity, state)| {
                home.states.set(entity, state, attrs.clone(), &ctx)
            });
        if let Some(recorder) = recorder {
            let durable = runtime()
                .block_on(recorder.shutdown())
                .expect("the recorder kept up");
            assert!(durable > 0, "the recorder recorded");
        }
        assert_eq!(watcher.dropped(), 0, "the watcher's queue overflowed");
    }

    /// One entity (core.rs's `set::one_subscriber`): `Nothing` is the baseline, `Recorder` adds
    /// a recorder (its observer, its writer thread committing every 20 ms); for reference,
    /// `SecondSubscriber` adds a bus subscriber instead and `LogOnly` an observer doing the
    /// recorder's synchronous work without its writer thread.
    #[divan::bench(
        sample_count = 500,
        sample_size = 64,
        args = [Extra::Nothing, Extra::Recorder, Extra::SecondSubscriber, Extra::LogOnly],
    )]
    fn one_entity(bencher: Bencher<'_, '_>, extra: Extra) {
        alternating(bencher, extra, 1);
    }

    /// Round-robin over 1,000 entities (no two consecutive changes of one entity, so the
    /// recorder's log never coalesces).
    #[divan::bench(sample_count = 500, sample_size = 64, args = [Extra::Nothing, Extra::Recorder])]
    fn round_robin_1000_entities(bencher: Bencher<'_, '_>, extra: Extra) {
        alternating(bencher, extra, 1000);
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
