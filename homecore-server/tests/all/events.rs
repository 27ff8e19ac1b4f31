//! `GET /api/events`, `POST /api/events/{event_type}`.

use homecore::EventFilter;
use serde_json::json;

use crate::support::{TestServer, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_reaches_subscribers_with_the_data() {
    let s = TestServer::start().await;
    let mut sub = s
        .home()
        .bus
        .subscribe(
            [EventFilter::EventType("doorbell".parse().expect("valid"))],
            8,
        )
        .expect("subscribed");
    assert_eq!(
        send(s.post("/api/events/doorbell").json(&json!({"button": 1}))).await,
        (200, json!({"message": "Event doorbell fired."}))
    );
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), sub.recv())
        .await
        .expect("in time")
        .expect("delivered");
    let event = serde_json::to_value(&event).expect("serializes");
    assert_eq!(event["event_type"], "doorbell");
    assert_eq!(event["data"], json!({"button": 1}));
    // No body is an empty object.
    assert_eq!(send(s.post("/api/events/doorbell")).await.0, 200);
    let event = sub.recv().await.expect("delivered");
    assert_eq!(
        serde_json::to_value(&event).expect("json")["data"],
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_counts_listeners() {
    let s = TestServer::start().await;
    let _sub = s
        .home()
        .bus
        .subscribe(
            [EventFilter::EventType("doorbell".parse().expect("valid"))],
            8,
        )
        .expect("subscribed");
    let (status, body) = send(s.get("/api/events")).await;
    assert_eq!(status, 200);
    let doorbell = body
        .as_array()
        .expect("list")
        .iter()
        .find(|e| e["event"] == "doorbell")
        .cloned();
    assert_eq!(
        doorbell,
        Some(json!({"event": "doorbell", "listener_count": 1}))
    );
    assert!(
        body.as_array()
            .expect("list")
            .iter()
            .any(|e| e["event"] == "state_changed"),
        "plugins listen to state changes: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_get_400() {
    let s = TestServer::start().await;
    let (status, body) = send(s.post("/api/events/doorbell").json(&json!([1, 2]))).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Event data should be a JSON object"))
    );
    let (status, body) = send(s.post("/api/events/doorbell").body("nope")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid JSON specified."))
    );
    let (status, body) = send(s.post("/api/events/state_changed").json(&json!({}))).await;
    assert_eq!(status, 400, "{body}");
    let long = "x".repeat(65);
    let (status, body) = send(s.post(&format!("/api/events/{long}"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid event type")),
        "{body}"
    );
    let (status, _) = send(s.post("/api/events/with%20space")).await;
    assert_eq!(status, 400);
}
