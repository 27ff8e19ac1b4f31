//! The state recorder: batches, removals, floods, failures, shutdown.

use std::time::Duration;

use homecore::{Attributes, Context, Home};
use homecore_store::{RecorderConfig, StateRecorder, Store, StoreError, StoreOptions};

use super::{id, set};

/// The stored (entity, state) pairs, sorted.
fn stored(store: &Store) -> Vec<(String, String)> {
    let mut rows: Vec<_> = store
        .load_states()
        .expect("reads")
        .iter()
        .map(|s| (s.entity_id().to_string(), s.state().to_owned()))
        .collect();
    rows.sort();
    rows
}

/// The state machine's (entity, state) pairs, sorted.
fn live(home: &Home) -> Vec<(String, String)> {
    let mut rows: Vec<_> = home
        .states
        .all()
        .iter()
        .map(|s| (s.entity_id().to_string(), s.state().to_owned()))
        .collect();
    rows.sort();
    rows
}

/// A fresh store in a temporary directory, an empty home and a recorder on it.
fn recording(config: RecorderConfig) -> (tempfile::TempDir, Store, Home, StateRecorder) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("home.db")).expect("opens");
    let home = Home::new();
    let recorder = StateRecorder::start(&store, &home.states, config).expect("starts");
    (dir, store, home, recorder)
}

#[tokio::test]
async fn flush_makes_every_earlier_change_durable() {
    let (_dir, store, home, recorder) = recording(RecorderConfig::default());
    for i in 0..500 {
        set(&home, &format!("sensor.s{}", i % 20), &i.to_string());
    }
    let seq = recorder.seq();
    assert_eq!(seq, 500, "one sequence number per change");
    let durable = recorder.flush().await.expect("commits");
    assert!(durable >= seq);
    assert!(recorder.durable_seq() >= seq);
    assert_eq!(stored(&store), live(&home));
    let stats = recorder.stats();
    assert!(stats.commits >= 1);
    assert!(
        stats.rows_written <= 500 + 20,
        "a batch writes each entity once"
    );
    // A repeated write is no change: no new sequence number.
    set(&home, "sensor.s0", "480");
    assert_eq!(recorder.seq(), 500);
}

#[tokio::test]
async fn attributes_timestamps_and_context_are_recorded() {
    let (_dir, store, home, recorder) = recording(RecorderConfig::default());
    let ctx = Context::for_user("alice");
    let attrs = Attributes::try_from(serde_json::json!({"brightness": 12, "rgb": [1, 2, 3]}))
        .expect("object");
    let written = home
        .states
        .set(&id("light.hall"), "on", attrs, &ctx)
        .expect("valid")
        .state;
    recorder.flush().await.expect("commits");
    let loaded = store.load_states().expect("reads");
    assert_eq!(loaded.len(), 1);
    let got = &loaded[0];
    assert_eq!(got.attributes(), written.attributes());
    assert_eq!(got.last_changed(), written.last_changed());
    assert_eq!(got.last_updated(), written.last_updated());
    assert_eq!(got.context().id, ctx.id);
    assert_eq!(got.context().user_id.as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_removed_entity_loses_its_row() {
    let (_dir, store, home, recorder) = recording(RecorderConfig::default());
    set(&home, "light.a", "on");
    set(&home, "light.b", "on");
    recorder.flush().await.expect("commits");
    home.states
        .remove(&id("light.a"), &Context::new())
        .expect("removes");
    recorder.flush().await.expect("commits");
    assert_eq!(stored(&store), [("light.b".to_owned(), "on".to_owned())]);
}

#[tokio::test]
async fn a_flood_from_many_threads_loses_nothing_where_a_bus_queue_would_drop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("home.db")).expect("opens");
    let home = Home::new();
    set(&home, "light.doomed", "on");
    let recorder =
        StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
    assert_eq!(
        stored(&store).len(),
        1,
        "states present at start are committed by start"
    );
    // A bus subscriber with a small queue, for comparison: it drops.
    let lossy = home
        .bus
        .subscribe([homecore::EventFilter::AllStateChanges], 16)
        .expect("capacity is not zero");
    std::thread::scope(|s| {
        for t in 0..4 {
            let home = home.clone();
            s.spawn(move || {
                for i in 0..25_000 {
                    set(&home, &format!("sensor.t{t}_{}", i % 300), &i.to_string());
                }
            });
        }
    });
    home.states
        .remove(&id("light.doomed"), &Context::new())
        .expect("removes");
    let seq = recorder.seq();
    assert_eq!(seq, 100_000 + 1, "one sequence number per change");
    assert!(recorder.flush().await.expect("commits") >= seq);
    assert_eq!(
        stored(&store),
        live(&home),
        "every change, the removal included"
    );
    assert!(lossy.dropped() > 0, "the bus queue did overflow");
}

#[tokio::test]
async fn changes_commit_within_the_interval_without_a_flush() {
    let (_dir, store, home, recorder) =
        recording(RecorderConfig::default().with_commit_interval(Duration::from_millis(5)));
    set(&home, "light.a", "on");
    let seq = recorder.seq();
    // No flush: the writer's own deadline commits it (the wait bound is generous, not a
    // timing assertion).
    for _ in 0..1000 {
        if recorder.durable_seq() >= seq {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(recorder.durable_seq() >= seq);
    assert_eq!(stored(&store), [("light.a".to_owned(), "on".to_owned())]);
}

#[tokio::test]
async fn a_stuck_disk_never_blocks_set_and_a_failed_commit_is_reported_then_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("home.db");
    let store = Store::open_with(
        &path,
        StoreOptions::default().with_busy_timeout(Duration::from_millis(20)),
    )
    .expect("opens");
    let home = Home::new();
    let recorder =
        StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
    recorder.flush().await.expect("nothing to commit");
    let blocker = rusqlite::Connection::open(&path).expect("raw open");
    blocker.execute_batch("BEGIN IMMEDIATE").expect("locks");
    for i in 0..10_000 {
        set(&home, &format!("sensor.s{}", i % 100), &i.to_string());
    }
    let err = recorder
        .flush()
        .await
        .expect_err("the commit cannot get the lock");
    assert!(
        matches!(&err, StoreError::RecorderFailed { path: p, .. } if p == &path),
        "{err:?}"
    );
    assert!(recorder.durable_seq() < recorder.seq());
    assert!(recorder.stats().failures >= 1);
    blocker.execute_batch("ROLLBACK").expect("unlocks");
    let seq = recorder.seq();
    let mut durable = 0;
    for _ in 0..100 {
        match recorder.flush().await {
            Ok(n) => {
                durable = n;
                break;
            }
            // A retry that was already under way when the lock was released may still fail.
            Err(StoreError::RecorderFailed { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(durable >= seq);
    assert_eq!(stored(&store), live(&home));
}

#[tokio::test]
async fn shutdown_commits_everything_and_a_new_recorder_can_take_over() {
    let (_dir, store, home, recorder) = recording(RecorderConfig::default());
    for i in 0..300 {
        set(&home, &format!("switch.s{}", i % 7), &i.to_string());
    }
    let seq = recorder.seq();
    assert!(recorder.shutdown().await.expect("final commit") >= seq);
    assert_eq!(stored(&store), live(&home));
    set(&home, "switch.s0", "after");
    let next =
        StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
    assert_eq!(next.seq(), 0, "a new recorder counts from zero");
    set(&home, "switch.s1", "later");
    next.flush().await.expect("commits");
    assert_eq!(stored(&store), live(&home));
}

#[tokio::test]
async fn dropping_the_recorder_still_commits() {
    let (_dir, store, home, recorder) =
        recording(RecorderConfig::default().with_commit_interval(Duration::from_secs(3600)));
    set(&home, "light.a", "on");
    drop(recorder);
    for _ in 0..1000 {
        if !stored(&store).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored(&store), [("light.a".to_owned(), "on".to_owned())]);
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<StateRecorder>();
    check::<homecore_store::SqlitePluginStorage>();
    check::<StoreError>();
}
