//! Startup (config refusal, first-start token) and graceful shutdown.

use homecore_server::{Config, PluginConfig, StartError};
use serde_json::json;

use crate::support::{TestServer, send, test_config};

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
