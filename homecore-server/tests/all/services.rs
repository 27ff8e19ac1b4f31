//! `GET /api/services`, `POST /api/services/{domain}/{service}` against the compiled-in
//! helpers.

use serde_json::json;

use crate::support::{TestServer, eventually, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_listed_by_domain() {
    let s = TestServer::start().await;
    let (status, body) = send(s.get("/api/services")).await;
    assert_eq!(status, 200);
    let list = body.as_array().expect("list");
    let booleans = list
        .iter()
        .find(|d| d["domain"] == "input_boolean")
        .expect("input_boolean listed");
    for service in ["turn_on", "turn_off", "toggle"] {
        assert!(booleans["services"].get(service).is_some(), "{body}");
    }
    let numbers = list
        .iter()
        .find(|d| d["domain"] == "input_number")
        .expect("input_number listed");
    for service in ["set_value", "increment", "decrement"] {
        assert!(numbers["services"].get(service).is_some(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_returns_the_states_it_changed() {
    let s = TestServer::start().await;
    eventually("the default helpers", || {
        s.home()
            .states
            .get_str("input_boolean.guest_mode")
            .is_some()
    })
    .await;
    let (status, body) = send(
        s.post("/api/services/input_boolean/turn_on")
            .json(&json!({"entity_id": "input_boolean.guest_mode"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed = body.as_array().expect("list of states");
    assert_eq!(changed.len(), 1, "{body}");
    assert_eq!(changed[0]["entity_id"], "input_boolean.guest_mode");
    assert_eq!(changed[0]["state"], "on");

    // Again: nothing changes, nothing is returned.
    let (status, body) = send(
        s.post("/api/services/input_boolean/turn_on")
            .json(&json!({"entity_id": "input_boolean.guest_mode"})),
    )
    .await;
    assert_eq!((status, body), (200, json!([])));

    // ?return_response wraps the list.
    let (status, body) = send(
        s.post("/api/services/input_boolean/toggle?return_response")
            .json(&json!({"entity_id": "input_boolean.guest_mode"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["changed_states"][0]["state"], "off", "{body}");
    assert!(body.get("service_response").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_number_changes_within_its_range() {
    let s = TestServer::start().await;
    eventually("the default helpers", || {
        s.home()
            .states
            .get_str("input_number.target_temperature")
            .is_some()
    })
    .await;
    let (status, body) = send(
        s.post("/api/services/input_number/set_value")
            .json(&json!({"entity_id": "input_number.target_temperature", "value": 21.5})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["state"], "21.5");
    let (status, body) = send(
        s.post("/api/services/input_number/set_value")
            .json(&json!({"entity_id": "input_number.target_temperature", "value": 99})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("range")),
        "{body}"
    );
    assert_eq!(
        s.home()
            .states
            .get_str("input_number.target_temperature")
            .map(|st| st.state().to_owned()),
        Some("21.5".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_services_and_bad_data_get_400() {
    let s = TestServer::start().await;
    assert_eq!(
        send(s.post("/api/services/light/warp").json(&json!({}))).await,
        (400, json!({"message": "Service light.warp not found."}))
    );
    assert_eq!(
        send(s.post("/api/services/Bad-Domain/x")).await,
        (400, json!({"message": "Service Bad-Domain.x not found."}))
    );
    let (status, body) = send(s.post("/api/services/input_boolean/turn_on").body("{oops")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid JSON specified."))
    );
    let (status, body) = send(
        s.post("/api/services/input_boolean/turn_on")
            .json(&json!([1])),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Data should be valid JSON."))
    );
    let (status, body) = send(
        s.post("/api/services/input_boolean/turn_on")
            .json(&json!({"entity_id": "input_boolean.no_such"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        s.post("/api/services/input_boolean/turn_on")
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("entity_id")),
        "{body}"
    );
}
