//! Startup (config refusal, first-start token) and graceful shutdown.

use std::sync::Arc;

use async_trait::async_trait;
use homecore_plugins::{
    HomeCorePlugin, PluginContext, PluginError, PluginManifest, PluginSource, PluginSpec,
};
use homecore_server::{Config, PluginConfig, StartError};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::support::{TOKEN, TestServer, send, test_config};

/// A plugin whose setup waits until the test releases it.
struct Gate(Arc<Notify>);

#[async_trait]
impl HomeCorePlugin for Gate {
    async fn setup(&mut self, _ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        self.0.notified().await;
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        _ctx: &PluginContext,
        _event: &homecore::StateChanged,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

fn gate_spec(release: Arc<Notify>) -> PluginSpec {
    let manifest = PluginManifest::from_value(json!({
        "domain": "gate",
        "name": "Gate",
        "version": "1.0.0",
        "homecore": {"runtime": "native", "api_version": "^1"}
    }))
    .expect("valid manifest");
    PluginSpec::new(
        manifest,
        PluginSource::native(move || Gate(Arc::clone(&release))),
    )
}

/// The lifecycle `GET /api/homecore/plugins` reports for `domain`.
async fn lifecycle(client: &reqwest::Client, base: &str, domain: &str) -> Value {
    let body: Value = client
        .get(format!("{base}/api/homecore/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    body["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["domain"] == domain)
        .map_or(Value::Null, |p| p["lifecycle"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_while_a_plugin_is_still_loading() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(&data);
    config.limits.setup_timeout_ms = 600_000;
    let release = Arc::new(Notify::new());
    let mut server = homecore_server::start_with(config, vec![gate_spec(Arc::clone(&release))])
        .await
        .expect("starts while the gate's setup waits");
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr());
    let ok = client
        .get(format!("{base}/api/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(lifecycle(&client, &base, "gate").await, "loading");

    release.notify_one();
    let report = server.plugins_started().await;
    assert!(
        report
            .outcomes
            .iter()
            .any(|(domain, outcome)| domain == "gate" && outcome.is_ok()),
        "{report:?}"
    );
    assert_eq!(lifecycle(&client, &base, "gate").await, "running");
    let report = server.shutdown().await;
    assert!(report.plugins_stopped, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_while_a_plugin_loads_still_finishes() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(&data);
    config.limits.setup_timeout_ms = 600_000;
    config.limits.shutdown_timeout_ms = 300;
    let release = Arc::new(Notify::new());
    let server = homecore_server::start_with(config, vec![gate_spec(release)])
        .await
        .expect("starts");
    let report = server.shutdown().await;
    assert!(report.states_saved, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_with_every_problem() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(&data);
    config.plugins.insert(
        "motion_lights".into(),
        PluginConfig {
            config: Some(json!({"rooms": ["Hall"], "quiet_seconds": 0, "colour": "red"})),
            ..PluginConfig::default()
        },
    );
    config.plugins.insert(
        "input_number".into(),
        PluginConfig {
            config: Some(json!({"volume": {"min": "low"}})),
            ..PluginConfig::default()
        },
    );
    config
        .plugins
        .insert("no_such_plugin".into(), PluginConfig::default());
    let err = homecore_server::start(config).await.expect_err("refused");
    let StartError::Config(err) = err else {
        panic!("not a config error: {err}");
    };
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    for want in [
        "plugins.motion_lights.config/rooms/0",
        "plugins.motion_lights.config/quiet_seconds",
        "plugins.motion_lights.config",
        "plugins.input_number.config/volume/min",
        "plugins.no_such_plugin",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_trust_table_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = Config::parse(
        r#"
        [trust]
        publishers = [{ key = "ed25519:not-base64!" }]
        "#,
    )
    .expect("the table parses as TOML");
    config.listen = "127.0.0.1:0".parse().expect("valid");
    config.data_dir = Some(data.path().to_owned());
    let err = homecore_server::start(config).await.expect_err("refused");
    assert!(err.to_string().contains("trust"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_creates_a_token_and_later_starts_reuse_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(&data);
    config.api.tokens.clear();
    let first = homecore_server::start(config.clone())
        .await
        .expect("starts");
    let token = first
        .startup()
        .new_token
        .clone()
        .expect("created on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token.path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/", first.addr());
    let ok = client
        .get(&url)
        .bearer_auth(&token.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
    first.shutdown().await;

    let second = homecore_server::start(config).await.expect("starts again");
    assert!(second.startup().new_token.is_none());
    assert_eq!(second.startup().token_file.as_ref(), Some(&token.path));
    let url = format!("http://{}/api/", second.addr());
    let ok = client
        .get(&url)
        .bearer_auth(&token.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status().as_u16(), 200);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_a_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(&data);
    config.listen = taken.local_addr().expect("addr");
    let err = homecore_server::start(config).await.expect_err("busy");
    assert!(matches!(err, StartError::Bind { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tears_every_plugin_down_and_closes_the_port() {
    let s = TestServer::start().await;
    let addr = s.server.addr();
    let registry = s.server.api().registry().clone();
    assert_eq!(send(s.get("/api/")).await.0, 200);
    let report = s.server.shutdown().await;
    assert!(
        report.connections_drained && report.plugins_stopped,
        "{report:?}"
    );
    assert!(registry.list().is_empty(), "every plugin unloaded");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port closed"
    );
}
