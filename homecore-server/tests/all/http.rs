//! Cross-cutting HTTP behaviour: auth, body limits, unknown routes and methods, `GET /api/`,
//! `GET /api/config`.

use serde_json::json;

use crate::support::{TOKEN, TestServer, json, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_root_says_running() {
    let s = TestServer::start().await;
    assert_eq!(
        send(s.get("/api/")).await,
        (200, json!({"message": "API running."}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_route_needs_the_token() {
    let s = TestServer::start().await;
    let routes = [
        ("GET", "/api/"),
        ("GET", "/api/config"),
        ("GET", "/api/states"),
        ("GET", "/api/states/light.hall"),
        ("POST", "/api/states/light.hall"),
        ("DELETE", "/api/states/light.hall"),
        ("GET", "/api/services"),
        ("POST", "/api/services/input_boolean/toggle"),
        ("GET", "/api/events"),
        ("POST", "/api/events/doorbell"),
        ("GET", "/api/homecore/plugins"),
        ("POST", "/api/homecore/plugins/motion_lights/reload"),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        for auth in [None, Some("Bearer wrong-token-wrong-token"), Some(TOKEN)] {
            let mut request = s.client.request(method.clone(), s.url(path));
            match auth {
                Some(TOKEN) => request = request.header("Authorization", format!("Basic {TOKEN}")),
                Some(value) => request = request.header("Authorization", value),
                None => {}
            }
            let response = request.send().await.expect("sent");
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{method} {path}"
            );
            let (status, body) = json(response).await;
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
            assert_eq!(body["message"], "401: Unauthorized");
        }
    }
    // Nothing was changed by the refused requests.
    assert!(s.home().states.get_str("light.hall").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_has_home_assistants_shape() {
    let s = TestServer::start().await;
    let (status, body) = send(s.get("/api/config")).await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], homecore_server::VERSION);
    assert_eq!(body["state"], "RUNNING");
    assert_eq!(body["unit_system"]["temperature"], "°C");
    let components: Vec<&str> = body["components"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for want in [
        "api",
        "input_boolean",
        "input_number",
        "motion_lights",
        "websocket_api",
    ] {
        assert!(components.contains(&want), "{want} missing: {components:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_get_json_errors() {
    let s = TestServer::start().await;
    let (status, body) = send(s.get("/api/nope")).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Not found."))
    );
    let (status, body) = send(s.client.get(s.url("/elsewhere"))).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("Not found."))
    );
    let (status, body) = send(s.client.put(s.url("/api/states")).bearer_auth(TOKEN)).await;
    assert_eq!(status, 405);
    assert_eq!(body["message"], "Method not allowed.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let s = TestServer::start_with(|c| c.api.max_body_bytes = 1024).await;
    let big = json!({"state": "on", "attributes": {"blob": "x".repeat(2048)}});
    let (status, body) = send(s.post("/api/states/sensor.big").json(&big)).await;
    assert_eq!(status, 413);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger")),
        "{body}"
    );
    // Chunked (no Content-Length) is cut off the same way.
    let mut request = format!(
        "POST /api/events/doorbell HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for _ in 0..8 {
        request.push_str(&format!("200\r\n{}\r\n", " ".repeat(512)));
    }
    request.push_str("0\r\n\r\n");
    let response = raw_http(s.server.addr(), request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    // Under the limit is fine.
    let (status, _) = send(
        s.post("/api/states/sensor.small")
            .json(&json!({"state": "1"})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(s.home().states.get_str("sensor.big").is_none());
}

/// Sends raw bytes and returns everything the server answers until it closes.
pub(crate) async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_never_gets_a_500() {
    let s = TestServer::start().await;
    let response = raw_http(
        s.server.addr(),
        format!(
            "POST /api/states/light.x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\nnot json"
        )
        .as_bytes(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains("Invalid JSON specified."), "{response}");
}
