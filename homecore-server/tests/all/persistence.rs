//! Persistence through the server: states and plugin storage survive a graceful restart and
//! a `kill -9` in the middle of a write burst; what the API acknowledged is on disk.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use homecore::{Attributes, StateChanged};
use homecore_plugins::{
    HomeCorePlugin, PluginContext, PluginError, PluginManifest, PluginSource, PluginSpec,
};
use homecore_server::DATABASE_FILE;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestServer, send, test_config};

/// Counts its own starts in its key-value storage and shows the count as a state.
struct StartCounter;

#[async_trait]
impl HomeCorePlugin for StartCounter {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        let before = ctx
            .kv_get("starts")?
            .map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0))
            .unwrap_or(0);
        let now = before + 1;
        ctx.kv_set("starts", now.to_string().as_bytes())?;
        ctx.set_state(
            &"sensor.counter_starts".parse().expect("valid id"),
            &now.to_string(),
            Attributes::new(),
        )?;
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        _ctx: &PluginContext,
        _event: &StateChanged,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

fn counter_spec() -> PluginSpec {
    let manifest = PluginManifest::from_value(json!({
        "domain": "start_counter",
        "name": "Start counter",
        "version": "1.0.0",
        "homecore": {
            "runtime": "native",
            "api_version": "^1",
            "permissions": {"states_write": ["sensor.counter_*"], "storage": true}
        }
    }))
    .expect("valid manifest");
    PluginSpec::new(manifest, PluginSource::native(|| StartCounter))
}

async fn start_in(data: &tempfile::TempDir) -> TestServer {
    let config = test_config(data);
    TestServer::start_config(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_and_plugin_storage_survive_a_graceful_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let server = start_in(&data).await;
        assert_eq!(server.server.startup().restored_states, 0);
        let (status, _) = send(
            server
                .post("/api/states/sensor.kitchen_temperature")
                .json(&json!({"state": "21.5", "attributes": {"unit_of_measurement": "°C"}})),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _) = send(
            server
                .post("/api/services/input_boolean/turn_on")
                .json(&json!({"entity_id": "input_boolean.vacation_mode"})),
        )
        .await;
        assert_eq!(status, 200);
        server
            .server
            .api()
            .registry()
            .load(counter_spec())
            .await
            .expect("counter starts");
        let report = server.server.shutdown().await;
        assert!(report.states_saved, "{report:?}");
    }
    assert!(data.path().join(DATABASE_FILE).exists());

    let server = start_in(&data).await;
    assert!(server.server.startup().restored_states >= 3);
    let (status, body) = send(server.get("/api/states/sensor.kitchen_temperature")).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "21.5");
    assert_eq!(body["attributes"]["unit_of_measurement"], "°C");
    // No `initial` in its config: Home Assistant's helper starts from its last state (kept in
    // its plugin storage, now in the database).
    let (_, body) = send(server.get("/api/states/input_boolean.vacation_mode")).await;
    assert_eq!(
        body["state"], "on",
        "the helper's state is restored: {body}"
    );
    // The plugin's storage kept its count: this is its second start.
    server
        .server
        .api()
        .registry()
        .load(counter_spec())
        .await
        .expect("counter starts again");
    let (_, body) = send(server.get("/api/states/sensor.counter_starts")).await;
    assert_eq!(body["state"], "2", "{body}");
    assert!(server.server.shutdown().await.states_saved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_entity_stays_deleted_after_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let server = start_in(&data).await;
        for id in ["sensor.keep", "sensor.gone"] {
            let (status, _) = send(
                server
                    .post(&format!("/api/states/{id}"))
                    .json(&json!({"state": "1"})),
            )
            .await;
            assert_eq!(status, 201);
        }
        let (status, _) = send(server.delete("/api/states/sensor.gone")).await;
        assert_eq!(status, 200);
        server.server.shutdown().await;
    }
    let server = start_in(&data).await;
    assert_eq!(send(server.get("/api/states/sensor.keep")).await.0, 200);
    assert_eq!(send(server.get("/api/states/sensor.gone")).await.0, 404);
    server.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_database_is_reported_and_kept() {
    let data = tempfile::tempdir().expect("tempdir");
    let db = data.path().join(DATABASE_FILE);
    let garbage = b"this is not an SQLite database, and it must not be replaced".repeat(100);
    std::fs::write(&db, &garbage).expect("write");
    let err = homecore_server::start(test_config(&data))
        .await
        .expect_err("refused");
    let text = format!("{err}");
    assert!(text.contains(DATABASE_FILE), "names the file: {text}");
    assert!(
        matches!(err, homecore_server::StartError::Store(_)),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&db).expect("still there"), garbage);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_builds_accepted_versions_file_is_imported() {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        data.path().join("accepted_versions.json"),
        r#"{"some_plugin": "2.1.0"}"#,
    )
    .expect("write");
    let server = start_in(&data).await;
    server.server.shutdown().await;
    assert!(!data.path().join("accepted_versions.json").exists());
    assert!(data.path().join("accepted_versions.json.imported").exists());
    let store = homecore_store::Store::open(data.path().join(DATABASE_FILE)).expect("opens");
    assert_eq!(
        store.accepted_version("some_plugin").expect("reads"),
        Some(semver::Version::new(2, 1, 0))
    );
}

/// Writers, each owning its entities, post increasing values; every answer received is an
/// acknowledgement. The server process is killed with SIGKILL while they run; after a
/// restart every entity holds at least its last acknowledged value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_burst_loses_nothing_acknowledged() {
    const WRITERS: usize = 4;
    const ENTITIES_PER_WRITER: usize = 5;
    let data = tempfile::tempdir().expect("tempdir");
    let config_file = data.path().join("homecore.toml");
    std::fs::write(
        &config_file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nexamples = false\n[api]\ntokens = [\"{TOKEN}\"]\n",
            data.path().display()
        ),
    )
    .expect("config written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_homecore"))
        .args(["run", "--config"])
        .arg(&config_file)
        .env_remove("HOMECORE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawned");
    let stdout = child.stdout.take().expect("piped");
    let url = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("is running on ")
                .nth(1)
                .map(|u| u.trim().to_owned())
        });
    let Some(url) = url else {
        let _ = child.kill();
        panic!("the server did not start");
    };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let acked: Arc<Vec<AtomicU64>> = Arc::new(
        (0..WRITERS * ENTITIES_PER_WRITER)
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let total = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, url, acked, total) = (
            client.clone(),
            url.clone(),
            Arc::clone(&acked),
            Arc::clone(&total),
        );
        writers.push(tokio::spawn(async move {
            for value in 1u64.. {
                let slot = w * ENTITIES_PER_WRITER
                    + usize::try_from(value).expect("fits") % ENTITIES_PER_WRITER;
                let answer = client
                    .post(format!("{url}/api/states/sensor.burst_{slot}"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"state": value.to_string()}))
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        acked[slot].store(value, Ordering::SeqCst);
                        total.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => break, // the server is gone
                }
            }
        }));
    }
    // Let the burst run, then kill the process mid-burst. If every writer stopped (the server
    // refused or failed), stop waiting and fail below with what was seen.
    let waited = std::time::Instant::now();
    while total.load(Ordering::SeqCst) < 500
        && !writers.iter().all(tokio::task::JoinHandle::is_finished)
        && waited.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live_writers = writers.iter().filter(|w| !w.is_finished()).count();
    child.kill().expect("SIGKILL sent");
    assert_eq!(
        live_writers,
        WRITERS,
        "writers stopped before the kill ({} acknowledged)",
        total.load(Ordering::SeqCst)
    );
    let _ = child.wait();
    for writer in writers {
        writer.await.expect("writer ends");
    }
    let acknowledged: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    assert!(acknowledged.iter().all(|&v| v > 0), "{acknowledged:?}");

    let server = start_in(&data).await;
    for (slot, &want) in acknowledged.iter().enumerate() {
        let (status, body) = send(server.get(&format!("/api/states/sensor.burst_{slot}"))).await;
        assert_eq!(status, 200, "sensor.burst_{slot} lost entirely");
        let got: u64 = body["state"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("a number");
        assert!(
            got >= want,
            "sensor.burst_{slot}: {want} was acknowledged, {got} restored"
        );
    }
    server.server.shutdown().await;
}
