//! Clients that never finish: half-sent headers, more connections than the cap, WebSockets
//! that never authenticate (issue 13 §7; docs/hostile-catalogue.md, "Clients").

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::{TOKEN, TestServer, send};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A guard against a hung test, never a measured figure.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn next_json(ws: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(HANG_GUARD, ws.next())
            .await
            .expect("a message before the hang guard")?;
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

async fn authenticate(ws: &mut Socket) {
    assert_eq!(
        next_json(ws).await.expect("auth_required")["type"],
        "auth_required"
    );
    send_json(ws, json!({"type": "auth", "access_token": TOKEN})).await;
    assert_eq!(next_json(ws).await.expect("auth_ok")["type"], "auth_ok");
}

/// Reads until the server closes the connection; what it sent before closing.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(HANG_GUARD, stream.read(&mut buf))
            .await
            .expect("the server closes the connection before the hang guard");
        match read {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// The value of an unlabelled sample in `/metrics`.
async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = s
        .get("/metrics")
        .send()
        .await
        .expect("scraped")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_header_is_closed_after_the_header_read_timeout() {
    let s = TestServer::start_with(|c| c.api.header_read_timeout_ms = 200).await;
    let mut half = TcpStream::connect(s.server.addr()).await.expect("connect");
    half.write_all(b"GET /api/ HTTP/1.1\r\nHost: loc")
        .await
        .expect("half a header");
    let answer = read_until_closed(&mut half).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    // A client that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(s.server.addr()).await.expect("connect");
    read_until_closed(&mut silent).await;
    assert!(metric(&s, "homecore_http_header_timeouts_total").await >= 2.0);
}

/// One keep-alive HTTP/1.1 connection, used for every request: a pooling client may open a
/// second connection for a request sent right after another, and during an attack that
/// second connection is over the cap.
struct KeepAlive(tokio::io::BufReader<TcpStream>);

impl KeepAlive {
    async fn connect(s: &TestServer) -> Self {
        let stream = TcpStream::connect(s.server.addr()).await.expect("connect");
        Self(tokio::io::BufReader::new(stream))
    }

    /// Sends a request with the token and returns the status and body.
    async fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        use tokio::io::AsyncBufReadExt;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let io = tokio::time::timeout(HANG_GUARD, async {
            self.0.get_mut().write_all(request.as_bytes()).await?;
            let mut status = String::new();
            self.0.read_line(&mut status).await?;
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                self.0.read_line(&mut line).await?;
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().expect("a length");
                }
            }
            let mut body = vec![0; length];
            self.0.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>((status, body))
        })
        .await
        .expect("an answer before the hang guard");
        let (status, body) = io.expect("the connection stays up");
        let code = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("status line {status:?}"));
        (code, String::from_utf8_lossy(&body).into_owned())
    }

    /// An unlabelled sample of `/metrics`.
    async fn metric(&mut self, name: &str) -> f64 {
        let (status, text) = self.request("GET", "/metrics", "").await;
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(' ')?;
                (key == name).then(|| value.parse().expect("a number"))
            })
            .unwrap_or_else(|| panic!("{name} not in {text}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_while_connected_clients_keep_working() {
    const CAP: usize = 8;
    const OVER: usize = 5;
    let s = TestServer::start_with(|c| {
        c.api.max_connections = CAP;
        c.api.header_read_timeout_ms = 600_000;
    })
    .await;
    // The authenticated clients connect first: a REST client on one keep-alive connection,
    // a WebSocket with a subscription.
    let mut rest = KeepAlive::connect(&s).await;
    assert_eq!(rest.request("GET", "/api/", "").await.0, 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url())
        .await
        .expect("connected");
    authenticate(&mut ws).await;
    send_json(
        &mut ws,
        json!({"id": 1, "type": "subscribe_events", "event_type": "state_changed"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await.expect("result")["success"], true);

    // The attack: the remaining slots filled with half headers, then more.
    let mut attackers = Vec::new();
    for _ in 0..(CAP - 2 + OVER) {
        let mut c = TcpStream::connect(s.server.addr()).await.expect("connect");
        // One over the cap may already be closed by the server: its write may fail.
        let _ = c.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").await;
        attackers.push(c);
    }
    let mut refused = 0.0;
    for _ in 0..1000 {
        refused = rest.metric("homecore_http_connections_refused_total").await;
        if refused >= OVER as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(refused, OVER as f64);
    assert_eq!(rest.metric("homecore_http_connections").await, CAP as f64);

    // The REST client and the WebSocket subscription still work during the attack.
    let (status, body) = rest
        .request(
            "POST",
            "/api/states/sensor.during_attack",
            r#"{"state": "fine"}"#,
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let event = next_json(&mut ws).await.expect("event");
    assert_eq!(
        event["event"]["data"]["entity_id"], "sensor.during_attack",
        "{event}"
    );
    assert_eq!(rest.request("GET", "/api/", "").await.0, 200);
    drop(attackers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_websockets_over_the_cap_get_503() {
    let s = TestServer::start_with(|c| c.api.max_unauthenticated_websockets = 2).await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url())
            .await
            .expect("connected");
        assert_eq!(
            next_json(&mut ws).await.expect("auth_required")["type"],
            "auth_required"
        );
        waiting.push(ws);
    }
    match tokio_tungstenite::connect_async(s.ws_url()).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        Err(other) => panic!("expected 503, got {other}"),
        Ok(_) => panic!("a third unauthenticated WebSocket was admitted"),
    }
    assert_eq!(
        metric(&s, "homecore_websocket_unauthenticated_refused_total").await,
        1.0
    );
    // One authenticates: its place goes to the next client.
    send_json(
        &mut waiting[0],
        json!({"type": "auth", "access_token": TOKEN}),
    )
    .await;
    assert_eq!(
        next_json(&mut waiting[0]).await.expect("auth_ok")["type"],
        "auth_ok"
    );
    let (mut next, _) = tokio_tungstenite::connect_async(s.ws_url())
        .await
        .expect("admitted once a place is free");
    authenticate(&mut next).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_authenticates_is_closed() {
    let s = TestServer::start_with(|c| c.api.websocket_auth_timeout_ms = 200).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url())
        .await
        .expect("connected");
    assert_eq!(
        next_json(&mut ws).await.expect("auth_required")["type"],
        "auth_required"
    );
    let closed = tokio::time::timeout(HANG_GUARD, ws.next())
        .await
        .expect("closed before the hang guard");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
        }
        None | Some(Err(_)) | Some(Ok(Message::Close(None))) => {}
        Some(Ok(other)) => panic!("expected a close, got {other:?}"),
    }
}

/// A client that sends its headers and then trickles its body (here: a tenth of it, then
/// nothing) is answered 408 and closed once the request timeout passes, instead of holding its
/// connection slot for as long as it likes (found in review, issue 13 §7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_is_answered_408_and_closed() {
    let s = TestServer::start_with(|c| c.api.request_timeout_ms = 300).await;
    let mut slow = TcpStream::connect(s.server.addr()).await.expect("connect");
    let head = format!(
        "POST /api/states/sensor.slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"state\":"
    );
    slow.write_all(head.as_bytes())
        .await
        .expect("headers and a bit");
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(s.home().states.get_str("sensor.slow").is_none());
    // The server still answers others.
    let (status, _) = send(s.get("/api/")).await;
    assert_eq!(status, 200);
}
