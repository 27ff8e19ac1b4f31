//! The WebSocket API as mounted by the server: in-band auth, commands, events caused by REST.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TOKEN, TestServer, send};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")?;
        match message.ok()? {
            Message::Text(text) => return Some(serde_json::from_str(&text).expect("JSON")),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn send_json(ws: &mut Socket, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("sent");
}

async fn connect(s: &TestServer) -> Socket {
    let (ws, _) = tokio_tungstenite::connect_async(s.ws_url())
        .await
        .expect("connected");
    ws
}

async fn authed(s: &TestServer) -> Socket {
    let mut ws = connect(s).await;
    let hello = next_json(&mut ws).await.expect("auth_required");
    assert_eq!(hello["type"], "auth_required");
    assert!(hello["ha_version"].is_string(), "{hello}");
    send_json(&mut ws, json!({"type": "auth", "access_token": TOKEN})).await;
    assert_eq!(
        next_json(&mut ws).await.expect("auth_ok")["type"],
        "auth_ok"
    );
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_and_closed() {
    let s = TestServer::start().await;
    let mut ws = connect(&s).await;
    assert_eq!(
        next_json(&mut ws).await.expect("hello")["type"],
        "auth_required"
    );
    send_json(
        &mut ws,
        json!({"type": "auth", "access_token": "nope-nope-nope-nope"}),
    )
    .await;
    let refused = next_json(&mut ws).await.expect("auth_invalid");
    assert_eq!(refused["type"], "auth_invalid");
    assert!(
        next_json(&mut ws).await.is_none(),
        "closed after auth_invalid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_websocket_route_is_a_json_4xx() {
    let s = TestServer::start().await;
    let (status, body) = send(s.client.get(s.ws_url().replace("ws://", "http://"))).await;
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body["message"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_writes_arrive_as_events_and_commands_answer() {
    let s = TestServer::start().await;
    let mut ws = authed(&s).await;
    send_json(
        &mut ws,
        json!({"id": 1, "type": "subscribe_events", "event_type": "state_changed"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await.expect("result")["success"], true);
    let (status, _) = send(
        s.post("/api/states/sensor.door")
            .json(&json!({"state": "open"})),
    )
    .await;
    assert_eq!(status, 201);
    let event = next_json(&mut ws).await.expect("event");
    assert_eq!(event["type"], "event");
    assert_eq!(event["id"], 1);
    assert_eq!(event["event"]["data"]["entity_id"], "sensor.door");
    assert_eq!(event["event"]["data"]["new_state"]["state"], "open");

    send_json(&mut ws, json!({"id": 2, "type": "get_config"})).await;
    let config = next_json(&mut ws).await.expect("config");
    assert_eq!(config["id"], 2);
    let components = config["result"]["components"].as_array().expect("list");
    assert!(components.contains(&json!("motion_lights")), "{config}");

    send_json(&mut ws, json!({"id": 2, "type": "ping"})).await;
    let reuse = next_json(&mut ws).await.expect("error");
    assert_eq!(reuse["success"], false);
    assert_eq!(reuse["error"]["code"], "id_reuse");

    send_json(&mut ws, json!({"id": 3, "type": "no_such_command"})).await;
    let unknown = next_json(&mut ws).await.expect("error");
    assert_eq!(unknown["success"], false, "{unknown}");
}

/// A `call_service` result means the call's state changes are in the database, as a REST
/// call's answer does (docs/adr/0010-persistence.md): read back through a second connection
/// to the file the moment the result arrives (the recorder's own interval is 20 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_service_result_waits_until_its_changes_are_committed() {
    let s = TestServer::start().await;
    let database = s.server.startup().database.clone();
    let mut ws = authed(&s).await;
    for (id, state) in [(1, "on"), (2, "off"), (3, "on")] {
        send_json(
            &mut ws,
            json!({
                "id": id, "type": "call_service", "domain": "input_boolean", "service": "toggle",
                "target": {"entity_id": "input_boolean.vacation_mode"},
            }),
        )
        .await;
        let result = next_json(&mut ws).await.expect("result");
        assert_eq!(
            (result["id"].clone(), result["success"].clone()),
            (json!(id), json!(true)),
            "{result}"
        );
        let stored = homecore_store::Store::open(&database)
            .expect("a second connection opens")
            .load_states()
            .expect("readable");
        let vacation = stored
            .iter()
            .find(|state| state.entity_id().as_str() == "input_boolean.vacation_mode")
            .map(|state| state.state().to_owned());
        assert_eq!(
            vacation.as_deref(),
            Some(state),
            "committed before call {id}'s result"
        );
    }
}

/// A message far larger than a connection's 16 KiB read buffer arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_larger_than_the_read_buffer_arrives_whole() {
    let s = TestServer::start().await;
    let mut ws = authed(&s).await;
    let pad = "x".repeat(200 * 1024);
    send_json(
        &mut ws,
        json!({
            "id": 1, "type": "call_service", "domain": "input_boolean", "service": "toggle",
            "target": {"entity_id": "input_boolean.vacation_mode"}, "service_data": {"pad": pad},
        }),
    )
    .await;
    let result = next_json(&mut ws).await.expect("result");
    let shown = result.to_string().chars().take(300).collect::<String>();
    assert_eq!(
        (result["id"].clone(), result["type"].clone()),
        (json!(1), json!("result")),
        "{shown}"
    );
    // Read whole and parsed: the service saw the call (and refused or ran it), not a cut message.
    assert_ne!(result["error"]["code"], "invalid_format", "{shown}");
}
