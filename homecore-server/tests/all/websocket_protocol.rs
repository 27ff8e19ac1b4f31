//! The WebSocket API on its own, over a real loopback socket: Home Assistant's auth flow, every
//! command with good and bad input, call ordering, and slow-client disconnection. The home has
//! the first-party `input_boolean` and `input_number` helpers loaded.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use homecore::{Attributes, Context, Home};
use homecore_plugins::PluginRegistry;
use homecore_server::websocket::{TokenCheck, WebSocketApi, WebSocketSettings};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const TOKEN: &str = "ws-protocol-token";

struct OneToken;

impl TokenCheck for OneToken {
    fn is_valid(&self, token: &str) -> bool {
        token == TOKEN
    }
}

struct Harness {
    home: Home,
    _registry: PluginRegistry,
    url: String,
}

async fn start_with(edit: impl FnOnce(&mut WebSocketSettings)) -> Harness {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    registry
        .load(homecore_integrations::input_boolean::spec().expect("spec"))
        .await
        .expect("input_boolean loads");
    registry
        .load(
            homecore_integrations::input_number::spec()
                .expect("spec")
                .with_config(json!({
                    "volume": {"min": 0, "max": 10, "step": 2, "initial": 4},
                })),
        )
        .await
        .expect("input_number loads");
    let mut settings = WebSocketSettings {
        ha_version: "2024.3.0".into(),
        config: Arc::new(|| json!({"location_name": "Test home"})),
        ..WebSocketSettings::default()
    };
    edit(&mut settings);
    let api = WebSocketApi::new(home.clone(), Arc::new(OneToken), settings);
    let app = Router::new().route(
        "/api/websocket",
        get(move |ws: WebSocketUpgrade| {
            let api = api.clone();
            async move { ws.on_upgrade(move |socket| async move { api.serve(socket).await }) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bound");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Harness {
        home,
        _registry: registry,
        url: format!("ws://{addr}/api/websocket"),
    }
}

async fn start() -> Harness {
    start_with(|_| {}).await
}

/// The next JSON message; `None` once the server closed the connection.
async fn next(ws: &mut Socket) -> Option<Value> {
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

async fn send(ws: &mut Socket, value: Value) {
    ws.send(Message::Text(value.to_string().into()))
        .await
        .expect("sent");
}

async fn connect(h: &Harness) -> Socket {
    let (ws, _) = tokio_tungstenite::connect_async(&h.url)
        .await
        .expect("connected");
    ws
}

async fn authed(h: &Harness) -> Socket {
    let mut ws = connect(h).await;
    assert_eq!(next(&mut ws).await.expect("hello")["type"], "auth_required");
    send(&mut ws, json!({"type": "auth", "access_token": TOKEN})).await;
    let ok = next(&mut ws).await.expect("auth_ok");
    assert_eq!(ok, json!({"type": "auth_ok", "ha_version": "2024.3.0"}));
    ws
}

/// Sends a command and returns its reply.
async fn ask(ws: &mut Socket, command: Value) -> Value {
    send(ws, command).await;
    next(ws).await.expect("a reply")
}

fn assert_error(reply: &Value, id: Value, code: &str) {
    assert_eq!(reply["id"], id, "{reply}");
    assert_eq!(reply["type"], "result", "{reply}");
    assert_eq!(reply["success"], false, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    assert!(reply["error"]["message"].is_string(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_flow_follows_home_assistant() {
    let h = start().await;
    let mut ws = connect(&h).await;
    let hello = next(&mut ws).await.expect("auth_required");
    assert_eq!(
        hello,
        json!({"type": "auth_required", "ha_version": "2024.3.0"})
    );
    send(&mut ws, json!({"type": "auth", "access_token": "wrong"})).await;
    let refused = next(&mut ws).await.expect("auth_invalid");
    assert_eq!(refused["type"], "auth_invalid");
    assert_eq!(refused["message"], "Invalid access token or password");
    assert!(next(&mut ws).await.is_none(), "closed after auth_invalid");

    let mut ws = connect(&h).await;
    next(&mut ws).await.expect("hello");
    send(&mut ws, json!({"type": "auth", "access_token": 5})).await;
    let refused = next(&mut ws).await.expect("auth_invalid");
    assert_eq!(refused["type"], "auth_invalid");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Auth message incorrectly formatted")),
        "{refused}"
    );
    assert!(next(&mut ws).await.is_none());

    let mut ws = connect(&h).await;
    next(&mut ws).await.expect("hello");
    ws.send(Message::Text("{not json".into()))
        .await
        .expect("sent");
    assert!(next(&mut ws).await.is_none(), "invalid JSON closes at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_auth_timeout() {
    let h = start_with(|s| s.auth_timeout = Duration::from_millis(100)).await;
    let mut ws = connect(&h).await;
    next(&mut ws).await.expect("hello");
    assert!(next(&mut ws).await.is_none(), "closed without auth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_states_config_and_services() {
    let h = start().await;
    h.home
        .states
        .set(
            &"light.hall".parse().expect("valid"),
            "on",
            Attributes::new(),
            &Context::new(),
        )
        .expect("set");
    let mut ws = authed(&h).await;
    assert_eq!(
        ask(&mut ws, json!({"id": 1, "type": "ping"})).await,
        json!({"id": 1, "type": "pong"})
    );

    let states = ask(&mut ws, json!({"id": 2, "type": "get_states"})).await;
    assert_eq!(states["success"], true);
    let list = states["result"].as_array().expect("a list");
    let ids: Vec<_> = list.iter().map(|s| s["entity_id"].clone()).collect();
    assert_eq!(
        ids,
        [
            "input_boolean.guest_mode",
            "input_boolean.vacation_mode",
            "input_number.volume",
            "light.hall"
        ]
    );
    let volume = &list[2];
    assert_eq!(volume["state"], "4.0");
    assert_eq!(volume["attributes"]["step"], 2.0);
    assert!(
        volume["last_changed"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00"))
    );

    let config = ask(&mut ws, json!({"id": 3, "type": "get_config"})).await;
    assert_eq!(
        config,
        json!({"id": 3, "type": "result", "success": true, "result": {"location_name": "Test home"}})
    );

    let services = ask(&mut ws, json!({"id": 4, "type": "get_services"})).await;
    let result = &services["result"];
    for (domain, service) in [
        ("input_boolean", "turn_on"),
        ("input_boolean", "turn_off"),
        ("input_boolean", "toggle"),
        ("input_number", "set_value"),
        ("input_number", "increment"),
        ("input_number", "decrement"),
    ] {
        assert!(
            result[domain][service].is_object(),
            "{domain}.{service}: {services}"
        );
    }

    for (id, kind) in [
        (5, "ping"),
        (6, "get_states"),
        (7, "get_config"),
        (8, "get_services"),
    ] {
        let reply = ask(&mut ws, json!({"id": id, "type": kind, "extra": 1})).await;
        assert_error(&reply, json!(id), "invalid_format");
        assert_eq!(
            reply["error"]["message"],
            "extra keys not allowed @ data['extra']"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_must_increase_and_bad_envelopes_keep_the_connection() {
    let h = start().await;
    let mut ws = authed(&h).await;
    assert_eq!(
        ask(&mut ws, json!({"id": 5, "type": "ping"})).await["type"],
        "pong"
    );
    let reuse = ask(&mut ws, json!({"id": 5, "type": "ping"})).await;
    assert_error(&reuse, json!(5), "id_reuse");
    assert_eq!(
        reuse["error"]["message"],
        "Identifier values have to increase."
    );
    assert_error(
        &ask(&mut ws, json!({"id": 4, "type": "ping"})).await,
        json!(4),
        "id_reuse",
    );

    // As Home Assistant: an unknown command does not use up its id.
    let unknown = ask(&mut ws, json!({"id": 6, "type": "reboot"})).await;
    assert_error(&unknown, json!(6), "unknown_command");
    assert_eq!(unknown["error"]["message"], "Unknown command.");
    assert_eq!(
        ask(&mut ws, json!({"id": 6, "type": "ping"})).await["type"],
        "pong"
    );

    for (bad, id) in [
        (json!({"type": "ping"}), Value::Null),
        (json!({"id": "7", "type": "ping"}), json!("7")),
        (json!({"id": 7}), json!(7)),
        (json!(42), json!(0)),
    ] {
        let reply = ask(&mut ws, bad).await;
        assert_error(&reply, id, "invalid_format");
        assert_eq!(reply["error"]["message"], "Message incorrectly formatted.");
    }
    // A list of commands is handled in order (Home Assistant's coalesced form).
    send(
        &mut ws,
        json!([{"id": 7, "type": "ping"}, {"id": 8, "type": "ping"}]),
    )
    .await;
    assert_eq!(next(&mut ws).await.expect("pong")["id"], 7);
    assert_eq!(next(&mut ws).await.expect("pong")["id"], 8);
    assert_eq!(
        ask(&mut ws, json!({"id": 9, "type": "ping"})).await["type"],
        "pong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_or_binary_after_auth_closes_like_home_assistant() {
    let h = start().await;
    let mut ws = authed(&h).await;
    ws.send(Message::Text("{\"id\": 1,".into()))
        .await
        .expect("sent");
    assert!(next(&mut ws).await.is_none(), "closed on invalid JSON");

    let mut ws = authed(&h).await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("sent");
    assert!(next(&mut ws).await.is_none(), "closed on a binary message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_filter_and_unsubscribe() {
    let h = start().await;
    let mut ws = authed(&h).await;
    let ok = ask(&mut ws, json!({"id": 1, "type": "subscribe_events"})).await;
    assert_eq!(
        ok,
        json!({"id": 1, "type": "result", "success": true, "result": null})
    );
    let ok = ask(
        &mut ws,
        json!({"id": 2, "type": "subscribe_events", "event_type": "doorbell"}),
    )
    .await;
    assert_eq!(ok["success"], true);

    h.home
        .bus
        .fire(
            "doorbell".parse().expect("valid"),
            json!({"button": 1}),
            Context::new(),
        )
        .expect("fired");
    // The same event for each matching subscription, in subscription order.
    let first = next(&mut ws).await.expect("event");
    let second = next(&mut ws).await.expect("event");
    assert_eq!(
        (first["id"].clone(), second["id"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(first["type"], "event");
    assert_eq!(first["event"], second["event"]);
    assert_eq!(first["event"]["event_type"], "doorbell");
    assert_eq!(first["event"]["data"], json!({"button": 1}));
    assert_eq!(first["event"]["origin"], "LOCAL");
    assert!(first["event"]["time_fired"].is_string());
    assert!(first["event"]["context"]["id"].is_string());

    // Subscription 2 only wants doorbells: a state change reaches subscription 1 only.
    h.home
        .states
        .set(
            &"sensor.door".parse().expect("valid"),
            "open",
            Attributes::new(),
            &Context::new(),
        )
        .expect("set");
    let change = next(&mut ws).await.expect("event");
    assert_eq!(change["id"], 1);
    assert_eq!(change["event"]["event_type"], "state_changed");
    assert_eq!(change["event"]["data"]["entity_id"], "sensor.door");
    assert_eq!(change["event"]["data"]["old_state"], Value::Null);
    assert_eq!(change["event"]["data"]["new_state"]["state"], "open");

    let done = ask(
        &mut ws,
        json!({"id": 3, "type": "unsubscribe_events", "subscription": 1}),
    )
    .await;
    assert_eq!(done["success"], true);
    let missing = ask(
        &mut ws,
        json!({"id": 4, "type": "unsubscribe_events", "subscription": 1}),
    )
    .await;
    assert_error(&missing, json!(4), "not_found");
    assert_eq!(missing["error"]["message"], "Subscription not found.");
    let bad = ask(&mut ws, json!({"id": 5, "type": "unsubscribe_events"})).await;
    assert_error(&bad, json!(5), "invalid_format");
    let bad = ask(
        &mut ws,
        json!({"id": 6, "type": "subscribe_events", "event_type": ["x"]}),
    )
    .await;
    assert_error(&bad, json!(6), "invalid_format");

    // Only the doorbell subscription is left: a state change is not sent, a doorbell is.
    h.home
        .states
        .set(
            &"sensor.door".parse().expect("valid"),
            "closed",
            Attributes::new(),
            &Context::new(),
        )
        .expect("set");
    h.home
        .bus
        .fire(
            "doorbell".parse().expect("valid"),
            json!({}),
            Context::new(),
        )
        .expect("fired");
    let only = next(&mut ws).await.expect("event");
    assert_eq!(only["id"], 2);
    assert_eq!(only["event"]["event_type"], "doorbell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_service_events_arrive_before_its_result() {
    let h = start().await;
    let mut ws = authed(&h).await;
    ask(
        &mut ws,
        json!({"id": 1, "type": "subscribe_events", "event_type": "state_changed"}),
    )
    .await;
    send(
        &mut ws,
        json!({
            "id": 2, "type": "call_service", "domain": "input_boolean", "service": "toggle",
            "target": {"entity_id": ["input_boolean.guest_mode", "input_boolean.vacation_mode"]},
        }),
    )
    .await;
    let mut events = Vec::new();
    let result = loop {
        let msg = next(&mut ws).await.expect("a message");
        if msg["type"] == "result" {
            break msg;
        }
        events.push(msg);
    };
    assert_eq!(result["id"], 2);
    assert_eq!(result["success"], true, "{result}");
    let context_id = result["result"]["context"]["id"].clone();
    assert!(context_id.is_string(), "{result}");
    let changed: Vec<_> = events
        .iter()
        .map(|e| {
            assert_eq!(e["id"], 1);
            assert_eq!(
                e["event"]["context"]["parent_id"], context_id,
                "caused by the call"
            );
            (
                e["event"]["data"]["entity_id"].clone(),
                e["event"]["data"]["new_state"]["state"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changed,
        [
            (json!("input_boolean.guest_mode"), json!("on")),
            (json!("input_boolean.vacation_mode"), json!("on")),
        ]
    );

    // service_data and target are merged; return_response adds `response`.
    send(
        &mut ws,
        json!({
            "id": 3, "type": "call_service", "domain": "input_number", "service": "set_value",
            "service_data": {"value": "8"}, "target": {"entity_id": "input_number.volume"},
            "return_response": true,
        }),
    )
    .await;
    let event = next(&mut ws).await.expect("event");
    assert_eq!(event["event"]["data"]["new_state"]["state"], "8.0");
    let result = next(&mut ws).await.expect("result");
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["result"]["response"], Value::Null);
    assert_eq!(
        h.home
            .states
            .get_str("input_number.volume")
            .map(|s| s.state().to_owned()),
        Some("8.0".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_service_errors_use_home_assistants_codes() {
    let h = start().await;
    let mut ws = authed(&h).await;
    let call = |id: u64, domain: &str, service: &str, data: Value| json!({"id": id, "type": "call_service", "domain": domain, "service": service, "service_data": data});
    let reply = ask(&mut ws, call(1, "light", "explode", json!({}))).await;
    assert_error(&reply, json!(1), "not_found");
    assert_eq!(
        reply["error"]["message"],
        "Service light.explode not found."
    );

    for (id, data, what) in [
        (
            2,
            json!({"entity_id": "input_number.volume", "value": 11}),
            "out of range",
        ),
        (
            3,
            json!({"entity_id": "input_number.volume", "value": "loud"}),
            "not a number",
        ),
        (
            4,
            json!({"entity_id": "input_number.nope", "value": 1}),
            "unknown entity",
        ),
        (5, json!({"value": 1}), "no entity"),
        (6, json!({"entity_id": "input_number.volume"}), "no value"),
    ] {
        let reply = ask(&mut ws, call(id, "input_number", "set_value", data)).await;
        assert_error(&reply, json!(id), "service_validation_error");
        assert!(
            !reply["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{what}"
        );
    }
    let reply = ask(
        &mut ws,
        call(
            7,
            "input_number",
            "set_value",
            json!({"entity_id": "input_number.volume", "value": 11}),
        ),
    )
    .await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid value for input_number.volume: 11 (range 0 - 10)")),
        "{reply}"
    );
    // Incrementing past max is refused and changes nothing (4 + 2 + 2 + 2 = 10, then 12).
    for id in 8..11 {
        let ok = ask(&mut ws, json!({"id": id, "type": "call_service", "domain": "input_number", "service": "increment", "target": {"entity_id": "input_number.volume"}})).await;
        assert_eq!(ok["success"], true, "{ok}");
    }
    let refused = ask(&mut ws, json!({"id": 11, "type": "call_service", "domain": "input_number", "service": "increment", "target": {"entity_id": "input_number.volume"}})).await;
    assert_error(&refused, json!(11), "service_validation_error");
    assert_eq!(
        h.home
            .states
            .get_str("input_number.volume")
            .map(|s| s.state().to_owned()),
        Some("10.0".into())
    );

    let reply = ask(
        &mut ws,
        call(
            12,
            "input_boolean",
            "turn_on",
            json!({"entity_id": "light.hall"}),
        ),
    )
    .await;
    assert_error(&reply, json!(12), "service_validation_error");

    for (id, bad) in [
        (
            13,
            json!({"id": 13, "type": "call_service", "service": "turn_on"}),
        ),
        (
            14,
            json!({"id": 14, "type": "call_service", "domain": "input_boolean", "service": "turn_on", "service_data": [1]}),
        ),
        (
            15,
            json!({"id": 15, "type": "call_service", "domain": "input_boolean", "service": "turn_on", "target": {"entity_id": 5}}),
        ),
        (
            16,
            json!({"id": 16, "type": "call_service", "domain": "input_boolean", "service": 3}),
        ),
    ] {
        assert_error(&ask(&mut ws, bad).await, json!(id), "invalid_format");
    }
    assert_eq!(
        ask(&mut ws, json!({"id": 17, "type": "ping"})).await["type"],
        "pong"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_and_others_get_every_event() {
    let h = start_with(|s| s.queue_capacity = 256).await;
    let base = h.home.bus.subscriber_count();
    let mut slow = authed(&h).await;
    let mut fast = authed(&h).await;
    assert_eq!(
        ask(&mut slow, json!({"id": 1, "type": "subscribe_events"})).await["success"],
        true
    );
    assert_eq!(
        ask(&mut fast, json!({"id": 1, "type": "subscribe_events"})).await["success"],
        true
    );
    assert_eq!(h.home.bus.subscriber_count(), base + 2);

    // The fast client reads on its own task; the slow one is never read again.
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&received);
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(msg) = next(&mut fast).await {
            let n = msg["event"]["data"]["n"]
                .as_u64()
                .expect("a numbered event");
            seen.push(n);
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n == u64::MAX {
                break;
            }
        }
        seen
    });
    // Large events fill the slow client's socket buffers, then its queues. Each burst of 64
    // waits for the fast client to read it, so only the slow one falls behind.
    let padding = "x".repeat(4096);
    let mut sent = 0u64;
    while h.home.bus.subscriber_count() == base + 2 {
        assert!(sent < 200_000, "the slow client was never disconnected");
        for _ in 0..64 {
            h.home
                .bus
                .fire(
                    "burst".parse().expect("valid"),
                    json!({"n": sent, "padding": padding}),
                    Context::new(),
                )
                .expect("fired");
            sent += 1;
        }
        let caught_up = async {
            while received.load(std::sync::atomic::Ordering::Relaxed) < sent {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), caught_up)
            .await
            .expect("the fast client keeps up");
    }
    h.home
        .bus
        .fire(
            "burst".parse().expect("valid"),
            json!({"n": u64::MAX}),
            Context::new(),
        )
        .expect("fired");
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the fast client finishes")
        .expect("reader ran");
    let expected: Vec<u64> = (0..sent).chain([u64::MAX]).collect();
    assert_eq!(seen.len(), expected.len(), "the fast client lost events");
    assert!(seen == expected, "the fast client got every event in order");

    // The slow client finds its connection closed once it reads what was sent before.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        let mut events = 0u64;
        while let Some(msg) = next(&mut slow).await {
            assert_eq!(msg["type"], "event");
            events += 1;
        }
        events
    })
    .await
    .expect("the slow client's stream ends");
    assert!(
        drained < sent,
        "the slow client was cut off ({drained} of {sent})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_each_receive_every_event_of_a_burst_in_order() {
    const CLIENTS: usize = 50;
    const CHANGES: u64 = 1000;
    let h = start().await;
    let entity: homecore::EntityId = "sensor.burst".parse().expect("valid");
    let mut readers = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let mut ws = authed(&h).await;
        // Different subscription ids: the shared event JSON gets each client's own envelope.
        let id = 1 + client as u64;
        let ok = ask(
            &mut ws,
            json!({"id": id, "type": "subscribe_events", "event_type": "state_changed"}),
        )
        .await;
        assert_eq!(ok["success"], true, "{ok}");
        readers.push(tokio::spawn(async move {
            let mut states = Vec::with_capacity(usize::try_from(CHANGES).expect("fits"));
            let mut first = None;
            while (states.len() as u64) < CHANGES {
                let msg = next(&mut ws).await.expect("every event before a close");
                assert_eq!(msg["id"], id, "{msg}");
                assert_eq!(msg["type"], "event", "{msg}");
                let data = &msg["event"]["data"];
                assert_eq!(data["entity_id"], "sensor.burst", "{msg}");
                let state = data["new_state"]["state"].as_str().expect("a state");
                states.push(state.parse::<u64>().expect("a number"));
                first.get_or_insert_with(|| msg["event"].clone());
            }
            (states, first.expect("an event"))
        }));
    }
    // The whole burst is published before any client has read much: it sits in the queues.
    for n in 0..CHANGES {
        h.home
            .states
            .set(&entity, &n.to_string(), Attributes::new(), &Context::new())
            .expect("set");
    }
    let expected: Vec<u64> = (0..CHANGES).collect();
    let mut first_events = Vec::with_capacity(CLIENTS);
    for reader in readers {
        let (states, first) = tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("every client finishes")
            .expect("reader ran");
        assert!(states == expected, "a client lost or reordered events");
        first_events.push(first);
    }
    // Every client got the same event (one serialization, shared).
    assert!(first_events.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(first_events[0]["data"]["new_state"]["state"], "0");
    assert_eq!(first_events[0]["data"]["old_state"], Value::Null);
}
