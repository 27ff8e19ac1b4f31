//! `GET|POST|DELETE /api/states[/{entity_id}]`.

use serde_json::json;

use crate::support::{TestServer, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_creates_with_201_and_location_then_updates_with_200() {
    let s = TestServer::start().await;
    let response = s
        .post("/api/states/sensor.kitchen_temperature")
        .json(&json!({"state": "21.5", "attributes": {"unit_of_measurement": "°C"}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response.headers().get("location").map(|v| v.as_bytes()),
        Some(&b"/api/states/sensor.kitchen_temperature"[..])
    );
    let (_, created) = crate::support::json(response).await;
    assert_eq!(created["entity_id"], "sensor.kitchen_temperature");
    assert_eq!(created["state"], "21.5");
    assert_eq!(created["attributes"]["unit_of_measurement"], "°C");
    for key in ["last_changed", "last_updated"] {
        let ts = created[key].as_str().expect("timestamp");
        // ISO-8601 with microseconds and +00:00, as Home Assistant writes them.
        assert_eq!(ts.len(), "2024-03-01T12:00:00.500000+00:00".len(), "{ts}");
        assert!(ts.ends_with("+00:00"), "{ts}");
    }
    assert!(created["context"]["id"].is_string());
    assert!(created["context"].get("parent_id").is_some());
    assert!(created["context"].get("user_id").is_some());

    let (status, updated) = send(
        s.post("/api/states/sensor.kitchen_temperature")
            .json(&json!({"state": 22})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(updated["state"], "22");
    assert_eq!(updated["attributes"], json!({}));

    let (status, got) = send(s.get("/api/states/sensor.kitchen_temperature")).await;
    assert_eq!(status, 200);
    assert_eq!(got, updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_lists_every_state_sorted() {
    let s = TestServer::start().await;
    for id in ["switch.b", "light.a"] {
        let (status, _) = send(
            s.post(&format!("/api/states/{id}"))
                .json(&json!({"state": "on"})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, body) = send(s.get("/api/states")).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["entity_id"].as_str())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(
        ids.contains(&"light.a") && ids.contains(&"switch.b"),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_entities_get_404() {
    let s = TestServer::start().await;
    assert_eq!(
        send(s.get("/api/states/light.nowhere")).await,
        (404, json!({"message": "Entity not found."}))
    );
    assert_eq!(
        send(s.delete("/api/states/light.nowhere")).await,
        (404, json!({"message": "Entity not found."}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_the_entity() {
    let s = TestServer::start().await;
    send(
        s.post("/api/states/light.gone")
            .json(&json!({"state": "on"})),
    )
    .await;
    assert_eq!(
        send(s.delete("/api/states/light.gone")).await,
        (200, json!({"message": "Entity removed."}))
    );
    assert!(s.home().states.get_str("light.gone").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_entity_ids_get_400() {
    let s = TestServer::start().await;
    for id in ["Light.Hall", "nodot", "light.", "light..x", "light.a%20b"] {
        let path = format!("/api/states/{id}");
        let bad = json!({"message": "Invalid entity ID specified."});
        assert_eq!(send(s.get(&path)).await, (400, bad.clone()), "GET {id}");
        assert_eq!(
            send(s.post(&path).json(&json!({"state": "on"}))).await,
            (400, bad.clone()),
            "POST {id}"
        );
        assert_eq!(send(s.delete(&path)).await, (400, bad), "DELETE {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_get_400_with_a_message() {
    let s = TestServer::start().await;
    let path = "/api/states/light.hall";
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (s.post(path).body("{not json"), "Invalid JSON specified."),
        (s.post(path), "No state specified."),
        (
            s.post(path).json(&json!({"attributes": {}})),
            "No state specified.",
        ),
        (
            s.post(path).json(&json!({"state": null})),
            "No state specified.",
        ),
        (s.post(path).json(&json!(["on"])), "Invalid JSON specified."),
        (
            s.post(path).json(&json!({"state": {"nested": 1}})),
            "Invalid state specified: expected a string.",
        ),
        (
            s.post(path)
                .json(&json!({"state": "on", "attributes": [1]})),
            "Invalid attributes specified: attributes must be a JSON object, found array.",
        ),
        (
            s.post(path)
                .json(&json!({"state": "on", "force_update": "yes"})),
            "Invalid force_update specified: expected a boolean.",
        ),
    ];
    for (request, message) in cases {
        let (status, body) = send(request).await;
        assert_eq!((status, body["message"].as_str()), (400, Some(message)));
    }
    let (status, body) = send(s.post(path).json(&json!({"state": "x".repeat(256)}))).await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit is 255")),
        "{body}"
    );
    assert!(s.home().states.get_str("light.hall").is_none());
}
