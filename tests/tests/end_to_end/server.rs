//! The `homecore` server end to end: the compiled-in motion lights and the signed WASM example
//! loaded as `homecore run` loads them (no plugin config), driven over loopback with a real
//! HTTP client and a real WebSocket client.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use homecore_server::{ApiConfig, Config};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "end-to-end-token-0123456789";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn send_json(ws: &mut Socket, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_turns_the_hall_light_on_through_the_wasm_plugin_seen_over_rest_and_websocket() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = homecore_server::start(Config {
        listen: "127.0.0.1:0".parse().expect("valid"),
        data_dir: Some(data.path().to_owned()),
        api: ApiConfig {
            tokens: vec![TOKEN.to_owned()],
            ..ApiConfig::default()
        },
        ..Config::default()
    })
    .await
    .expect("the server starts");
    server.plugins_started().await;
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::new();

    // Both example plugins are running: native and signed WASM.
    let plugins: Value = http
        .get(format!("{base}/api/homecore/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let runtime_of = |domain: &str| {
        plugins["plugins"]
            .as_array()
            .expect("list")
            .iter()
            .find(|p| p["domain"] == domain)
            .map(|p| (p["runtime"].clone(), p["lifecycle"].clone()))
    };
    assert_eq!(
        runtime_of("motion_lights"),
        Some((json!("native"), json!("running"))),
        "{plugins}"
    );
    assert_eq!(
        runtime_of("motion_lights_wasm"),
        Some((json!("wasm"), json!("running"))),
        "{plugins}"
    );
    assert_eq!(plugins["rejected"], json!([]));

    // A WebSocket client authenticates and subscribes to state changes.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/websocket", server.addr()))
            .await
            .expect("connected");
    assert_eq!(next_json(&mut ws).await["type"], "auth_required");
    send_json(&mut ws, json!({"type": "auth", "access_token": TOKEN})).await;
    assert_eq!(next_json(&mut ws).await["type"], "auth_ok");
    send_json(
        &mut ws,
        json!({"id": 1, "type": "subscribe_events", "event_type": "state_changed"}),
    )
    .await;
    let subscribed = next_json(&mut ws).await;
    assert_eq!(subscribed["success"], true, "{subscribed}");

    // Motion in the hall, over REST.
    let response = http
        .post(format!("{base}/api/states/binary_sensor.hall_motion"))
        .bearer_auth(TOKEN)
        .json(&json!({"state": "on", "attributes": {"device_class": "motion"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 201);

    // The socket sees the sensor change, then the light the WASM plugin turned on.
    let mut sensor_context = None;
    let light = loop {
        let message = next_json(&mut ws).await;
        assert_eq!(message["type"], "event", "{message}");
        assert_eq!(message["id"], 1);
        let event = &message["event"];
        assert_eq!(event["event_type"], "state_changed");
        let data = &event["data"];
        match data["entity_id"].as_str() {
            Some("binary_sensor.hall_motion") => {
                assert_eq!(data["new_state"]["state"], "on");
                sensor_context = Some(data["new_state"]["context"]["id"].clone());
            }
            Some("light.hall") if data["new_state"]["state"] == "on" => break data.clone(),
            _ => {}
        }
    };
    let sensor_context = sensor_context.expect("the sensor's change came first");
    assert_eq!(
        light["new_state"]["context"]["parent_id"], sensor_context,
        "the light's change was caused by the sensor's: {light}"
    );

    // REST agrees.
    let hall: Value = http
        .get(format!("{base}/api/states/light.hall"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(hall["state"], "on");

    // The plugin list shows the WASM plugin handled events.
    let plugins: Value = http
        .get(format!("{base}/api/homecore/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    let wasm = plugins["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["domain"] == "motion_lights_wasm")
        .cloned()
        .expect("listed");
    assert!(
        wasm["stats"]["events"].as_u64().is_some_and(|n| n >= 1),
        "{wasm}"
    );

    let report = server.shutdown().await;
    assert!(report.plugins_stopped, "{report:?}");
}
