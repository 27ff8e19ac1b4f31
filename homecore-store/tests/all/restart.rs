//! Restart round trips: states and plugin data come back as they were.

use homecore::{Attributes, Context, Home};
use homecore_plugins::PluginStorage;
use homecore_store::{RecorderConfig, RestoreReport, SqlitePluginStorage, StateRecorder, Store};

use super::{id, set};

#[tokio::test]
async fn states_and_kv_survive_a_graceful_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("home.db");
    let ctx = Context::for_user("alice");
    let attrs =
        Attributes::try_from(serde_json::json!({"brightness": 99, "friendly_name": "Hall"}))
            .expect("object");
    let before = {
        let store = Store::open(&path).expect("opens");
        let home = Home::new();
        assert_eq!(
            store.restore(&home).expect("restores"),
            RestoreReport::default()
        );
        let recorder =
            StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
        home.states
            .set(&id("light.hall"), "on", attrs.clone(), &ctx)
            .expect("valid");
        set(&home, "sensor.temp", "21.5");
        set(&home, "switch.gone", "on");
        home.states
            .remove(&id("switch.gone"), &Context::new())
            .expect("removes");
        let storage = SqlitePluginStorage::open(&store).expect("loads");
        storage
            .set("motion_lights", "delay", b"30", 1024)
            .expect("fits");
        storage.set("weather", "token", b"abc", 1024).expect("fits");
        recorder.shutdown().await.expect("commits");
        let mut all = home.states.all();
        all.sort_by(|a, b| a.entity_id().cmp(b.entity_id()));
        all
    };

    let store = Store::open(&path).expect("reopens");
    let home = Home::new();
    // A plugin (or the API) that wrote before the restore keeps its state.
    set(&home, "sensor.temp", "19.0");
    let report = store.restore(&home).expect("restores");
    assert_eq!(report.restored, 1);
    assert_eq!(report.kept_live, 1);
    let hall = home.states.get(&id("light.hall")).expect("restored");
    let old_hall = before
        .iter()
        .find(|s| s.entity_id().as_str() == "light.hall")
        .expect("was there");
    assert_eq!(
        *hall, **old_hall,
        "state, attributes, timestamps and context as they were"
    );
    assert!(
        hall.attributes().get("restored").is_none(),
        "no marker attribute"
    );
    assert_eq!(
        home.states
            .get(&id("sensor.temp"))
            .map(|s| s.state().to_owned()),
        Some("19.0".into())
    );
    assert!(
        home.states.get(&id("switch.gone")).is_none(),
        "a removal is durable"
    );
    let storage = SqlitePluginStorage::open(&store).expect("loads");
    assert_eq!(
        storage.get("motion_lights", "delay").as_deref(),
        Some(&b"30"[..])
    );
    assert_eq!(
        storage.get("weather", "token").as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(storage.used("weather"), 8);
}

#[tokio::test]
async fn a_recorder_attached_after_restore_does_not_lose_unrestored_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("home.db");
    {
        let store = Store::open(&path).expect("opens");
        let home = Home::new();
        let recorder =
            StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
        set(&home, "light.a", "on");
        recorder.shutdown().await.expect("commits");
    }
    // Attaching a recorder to an empty home (restore forgotten) must not wipe the table.
    let store = Store::open(&path).expect("reopens");
    let home = Home::new();
    let recorder =
        StateRecorder::start(&store, &home.states, RecorderConfig::default()).expect("starts");
    set(&home, "light.b", "off");
    recorder.shutdown().await.expect("commits");
    let mut ids: Vec<_> = store
        .load_states()
        .expect("reads")
        .iter()
        .map(|s| s.entity_id().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["light.a", "light.b"]);
}
