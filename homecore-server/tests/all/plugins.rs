//! `GET /api/homecore/plugins`, `POST /api/homecore/plugins/{domain}/reload`, and plugins
//! failing at startup while the server serves.

use serde_json::json;

use crate::support::{TestServer, listed_domains, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_in_plugins_are_listed_running() {
    let s = TestServer::start().await;
    let (status, body) = send(s.get("/api/homecore/plugins")).await;
    assert_eq!(status, 200);
    let plugins = body["plugins"].as_array().expect("list");
    for domain in ["input_boolean", "input_number", "motion_lights"] {
        let p = plugins
            .iter()
            .find(|p| p["domain"] == domain)
            .unwrap_or_else(|| panic!("{domain} missing: {body}"));
        assert_eq!(p["runtime"], "native");
        assert_eq!(p["lifecycle"], "running");
        assert_eq!(p["ready"], true);
        assert_eq!(p["last_error"], json!(null));
        assert!(p["version"].is_string() && p["name"].is_string());
        for counter in [
            "events",
            "errors",
            "denied",
            "host_calls",
            "mailbox_dropped",
        ] {
            assert!(p["stats"][counter].is_u64(), "{counter}: {p}");
        }
    }
    assert_eq!(body["rejected"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_restarts_a_plugin_and_unknown_is_404() {
    let s = TestServer::start().await;
    let (status, body) = send(s.post("/api/homecore/plugins/motion_lights/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["domain"], "motion_lights");
    assert_eq!(body["lifecycle"], "running");
    // Still reacting after the reload (default config: the kitchen).
    s.home()
        .states
        .set(
            &"binary_sensor.kitchen_motion".parse().expect("valid"),
            "on",
            homecore::Attributes::new(),
            &homecore::Context::new(),
        )
        .expect("set");
    crate::support::eventually("light.kitchen on", || {
        s.home()
            .states
            .get_str("light.kitchen")
            .is_some_and(|st| st.state() == "on")
    })
    .await;
    assert_eq!(
        send(s.post("/api/homecore/plugins/nope/reload")).await,
        (404, json!({"message": "Plugin nope not found."}))
    );
    let (status, _) = send(s.get("/api/homecore/plugins/motion_lights/reload")).await;
    assert_eq!(status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_package_is_reported_and_the_server_still_serves() {
    let s = TestServer::start_with(|c| {
        let plugins = c.data_dir.clone().expect("set").join("plugins");
        let bad = plugins.join("broken_pkg");
        std::fs::create_dir_all(&bad).expect("mkdir");
        std::fs::write(bad.join("manifest.json"), "{ not json").expect("write");
    })
    .await;
    let (status, body) = send(s.get("/api/homecore/plugins")).await;
    assert_eq!(status, 200);
    let rejected = body["rejected"].as_array().expect("list");
    assert_eq!(rejected.len(), 1, "{body}");
    assert_eq!(rejected[0]["domain"], "broken_pkg");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(send(s.get("/api/")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_plugins_are_not_loaded() {
    let s = TestServer::start_with(|c| {
        c.plugins.insert(
            "motion_lights".into(),
            homecore_server::PluginConfig {
                enabled: false,
                ..homecore_server::PluginConfig::default()
            },
        );
    })
    .await;
    let domains = listed_domains(&s).await;
    assert!(!domains.iter().any(|d| d == "motion_lights"), "{domains:?}");
    assert!(domains.iter().any(|d| d == "input_boolean"), "{domains:?}");
}

#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_wasm_example_runs_out_of_the_box() {
    let s = TestServer::start_with(|c| c.examples = true).await;
    let (_, body) = send(s.get("/api/homecore/plugins")).await;
    let wasm = body["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["domain"] == "motion_lights_wasm")
        .cloned()
        .unwrap_or_else(|| panic!("example missing: {body}"));
    assert_eq!(wasm["runtime"], "wasm");
    assert_eq!(wasm["lifecycle"], "running", "{wasm}");
    assert_eq!(body["rejected"], json!([]));
    let (status, _) = send(
        s.post("/api/states/binary_sensor.hall_motion")
            .json(&json!({"state": "on"})),
    )
    .await;
    assert_eq!(status, 201);
    crate::support::eventually("light.hall on through the WASM plugin", || {
        s.home()
            .states
            .get_str("light.hall")
            .is_some_and(|st| st.state() == "on")
    })
    .await;
    let (_, light) = send(s.get("/api/states/light.hall")).await;
    assert!(light["context"]["parent_id"].is_string(), "{light}");
}

/// The operator's limits for a plugin apply, and are kept beside its grant: the manifest the
/// API shows is the one the plugin declared (issue 14 §4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_limits_apply_without_rewriting_the_declared_manifest() {
    let s = TestServer::start_with(|c| {
        let entry = c.plugins.entry("motion_lights".to_owned()).or_default();
        entry.enabled = true;
        entry.limits = Some(homecore_plugins::ResourceLimits {
            mailbox_capacity: Some(16),
            ..homecore_plugins::ResourceLimits::default()
        });
    })
    .await;
    let info = s
        .server
        .api()
        .registry()
        .get("motion_lights")
        .expect("listed");
    assert_eq!(
        info.stats.mailbox_capacity, 16,
        "the operator's limit applies"
    );
    let declared = info
        .manifest
        .homecore
        .as_ref()
        .map(|h| h.limits.mailbox_capacity);
    assert_eq!(
        declared,
        Some(Some(4096)),
        "the manifest still shows what the plugin declared"
    );
}
