//! Property-based fuzzing of the WebSocket command decoder (issue 14 §8; docs/fuzzing.md),
//! through a real socket: the decoder (`websocket/protocol.rs`) is crate-private, so mutated
//! and arbitrary messages go to a served `WebSocketApi` after `auth`. Every message that is
//! JSON gets one reply per command (a batch: one per item), each a `result` (or `pong`) with a
//! typed error code when it failed; a message that is not JSON closes the connection, as Home
//! Assistant does; and the server keeps accepting connections. The unmutated seeds succeed.
//! Cases: `PROPTEST_CASES` (default 128; each case is one connection).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use homecore::Home;
use homecore_fuzz_kit::{Edits, apply, config, json_value};
use homecore_plugins::PluginRegistry;
use homecore_server::websocket::{TokenCheck, WebSocketApi, WebSocketSettings};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TOKEN: &str = "fuzz-token";

/// Valid commands, each succeeding on a fresh connection: the mutations start from these.
const SEEDS: &[&str] = &[
    r#"{"id":1,"type":"ping"}"#,
    r#"{"id":2,"type":"get_states"}"#,
    r#"{"id":3,"type":"get_config"}"#,
    r#"{"id":4,"type":"get_services"}"#,
    r#"{"id":5,"type":"supported_features","features":{"coalesce_messages":1}}"#,
    r#"{"id":6,"type":"subscribe_events","event_type":"state_changed"}"#,
    r#"{"id":7,"type":"subscribe_events"}"#,
    r#"{"id":8,"type":"call_service","domain":"input_boolean","service":"toggle","target":{"entity_id":"input_boolean.porch"},"service_data":{},"return_response":false}"#,
    r#"[{"id":9,"type":"ping"},{"id":10,"type":"get_config"}]"#,
];

struct OneToken;

impl TokenCheck for OneToken {
    fn is_valid(&self, token: &str) -> bool {
        token == TOKEN
    }
}

/// One server for every case, on its own runtime.
struct Server {
    rt: tokio::runtime::Runtime,
    url: String,
    _home: Home,
    _registry: PluginRegistry,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (url, home, registry) = rt.block_on(async {
            let home = Home::new();
            let registry = PluginRegistry::new(home.clone());
            registry
                .load(
                    homecore_integrations::input_boolean::spec()
                        .expect("spec")
                        .with_config(json!({"porch": {}})),
                )
                .await
                .expect("input_boolean loads");
            let settings = WebSocketSettings {
                ha_version: "2024.3.0".into(),
                config: Arc::new(|| json!({"location_name": "Fuzz home"})),
                ..WebSocketSettings::default()
            };
            let api = WebSocketApi::new(home.clone(), Arc::new(OneToken), settings);
            let app =
                Router::new().route(
                    "/api/websocket",
                    get(move |ws: WebSocketUpgrade| {
                        let api = api.clone();
                        async move {
                            ws.on_upgrade(move |socket| async move { api.serve(socket).await })
                        }
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bound");
            let addr = listener.local_addr().expect("address");
            tokio::spawn(async move { axum::serve(listener, app).await });
            (format!("ws://{addr}/api/websocket"), home, registry)
        });
        Server {
            rt,
            url,
            _home: home,
            _registry: registry,
        }
    })
}

/// The next message that is not an event: `Some(json)`, or `None` once the server closed.
/// (The bound is a safety net against a hang, not a timing assertion.)
async fn next_reply(ws: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("the server answers or closes")?;
        match message.ok()? {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).expect("the server sends JSON");
                if value["type"] != "event" {
                    return Some(value);
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn authed(url: &str) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the server accepts connections");
    assert_eq!(
        next_reply(&mut ws).await.expect("hello")["type"],
        "auth_required"
    );
    ws.send(Message::Text(
        json!({"type": "auth", "access_token": TOKEN})
            .to_string()
            .into(),
    ))
    .await
    .expect("sent");
    assert_eq!(
        next_reply(&mut ws).await.expect("auth_ok")["type"],
        "auth_ok"
    );
    ws
}

/// Sends `text` on a fresh connection and checks every reply; returns the replies.
async fn exchange(text: &str) -> Result<Vec<Value>, TestCaseError> {
    let mut ws = authed(&server().url).await;
    ws.send(Message::Text(text.to_owned().into()))
        .await
        .expect("sent");
    let expected = match serde_json::from_str::<Value>(text) {
        Err(_) => {
            prop_assert!(
                next_reply(&mut ws).await.is_none(),
                "invalid JSON closes the connection: {text:?}"
            );
            return Ok(Vec::new());
        }
        Ok(Value::Array(items)) => items.len(),
        Ok(_) => 1,
    };
    let mut replies = Vec::with_capacity(expected);
    for _ in 0..expected {
        let reply = next_reply(&mut ws).await;
        let reply = reply
            .ok_or_else(|| TestCaseError::fail(format!("closed without a reply to {text:?}")))?;
        match reply["type"].as_str() {
            Some("pong") => {}
            Some("result") if reply["success"] == true => {}
            Some("result") => {
                prop_assert_eq!(&reply["success"], &Value::Bool(false), "{}", reply);
                prop_assert!(reply["error"]["code"].is_string(), "{}", reply);
                prop_assert!(reply["error"]["message"].is_string(), "{}", reply);
            }
            _ => prop_assert!(false, "not a reply: {reply} to {text:?}"),
        }
        replies.push(reply);
    }
    // The connection is still usable after any JSON message.
    ws.send(Message::Text(
        json!({"id": u64::MAX, "type": "ping"}).to_string().into(),
    ))
    .await
    .expect("sent");
    let after = next_reply(&mut ws).await;
    prop_assert!(after.is_some(), "closed after {text:?}");
    Ok(replies)
}

#[test]
fn the_seed_commands_succeed() {
    let s = server();
    s.rt.block_on(async {
        for seed in SEEDS {
            let replies = exchange(seed).await.unwrap_or_else(|e| panic!("{e}"));
            for reply in replies {
                assert!(
                    reply["type"] == "pong" || reply["success"] == true,
                    "{seed}: {reply}"
                );
            }
        }
    });
}

/// Mutations of a valid sample (homecore_fuzz_kit), inserting this format's own bytes.
fn edits() -> impl Strategy<Value = Vec<homecore_fuzz_kit::Edit>> {
    Edits {
        flip: 1..=127,
        ..Edits::default()
    }
    .inserting(b"{}[]\",:\\ 0a_.-9e")
    .strategy()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_websocket_mutated_commands(which in any::<prop::sample::Index>(), edits in edits()) {
        let seed = which.get(SEEDS);
        let text = String::from_utf8_lossy(&apply(seed.as_bytes(), &edits)).into_owned();
        server().rt.block_on(exchange(&text))?;
    }

    #[test]
    fn fuzz_websocket_mutated_members(
        which in any::<prop::sample::Index>(),
        key in prop::sample::select(vec![
            "id", "type", "event_type", "subscription", "domain", "service", "service_data",
            "target", "return_response", "features", "extra",
        ]),
        replacement in json_value("[a-z_.]{0,12}", 2),
    ) {
        let seed = which.get(SEEDS);
        let mut value: Value = serde_json::from_str(seed).expect("JSON");
        let object = match &mut value {
            Value::Array(items) => &mut items[0],
            other => other,
        };
        object[key] = replacement;
        server().rt.block_on(exchange(&value.to_string()))?;
    }

    #[test]
    fn fuzz_websocket_arbitrary_json(value in json_value("[a-z_.]{0,12}", 2)) {
        server().rt.block_on(exchange(&value.to_string()))?;
    }

    #[test]
    fn fuzz_websocket_arbitrary_text(text in any::<String>()) {
        server().rt.block_on(exchange(&text))?;
    }
}
