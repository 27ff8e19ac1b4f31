//! Property-based fuzzing of the REST request decoders (issue 14 §8; docs/fuzzing.md) through
//! a running server: mutated JSON bodies and arbitrary path segments for `POST
//! /api/states/<id>`, `POST /api/services/<domain>/<service>` and `POST /api/events/<type>`.
//! Every answer is a client error or a success (never a 5xx), errors carry a JSON `message`,
//! and the server keeps answering. The unmutated seeds succeed.
//! Cases: `PROPTEST_CASES` (default 128).

use std::sync::OnceLock;

use homecore_fuzz_kit::{Edits, apply, config};
use proptest::prelude::*;
use serde_json::Value;

use crate::support::TestServer;

/// Valid requests (path, body): the mutations start from these.
const SEEDS: &[(&str, &str)] = &[
    (
        "/api/states/light.hall",
        r#"{"state":"on","attributes":{"brightness":3,"name":"Hall"},"force_update":true}"#,
    ),
    ("/api/states/sensor.t", r#"{"state":"21.5"}"#),
    ("/api/events/fuzz_event", r#"{"a":[1,2.5,"x"],"b":null}"#),
    ("/api/events/fuzz_event", ""),
];

struct Server {
    rt: tokio::runtime::Runtime,
    server: TestServer,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let server = rt.block_on(TestServer::start());
        Server { rt, server }
    })
}

/// Percent-encodes every byte but `[A-Za-z0-9._~-]`, so any string is one path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'~' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Posts `body` to `path`: the answer is a success or a client error with a JSON message,
/// and the server answers the next request.
async fn post(path: &str, body: Vec<u8>) -> Result<u16, TestCaseError> {
    let s = &server().server;
    let response = s
        .post(path)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer to {path}: {e}")))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    prop_assert!(
        status < 500,
        "{status} for {path} {:?}: {text}",
        String::from_utf8_lossy(&body)
    );
    if status >= 400 && status != 404 && status != 405 {
        let value: Value = serde_json::from_str(&text).map_err(|e| {
            TestCaseError::fail(format!("{status} body is not JSON ({e}): {text:?}"))
        })?;
        prop_assert!(value["message"].is_string(), "{status}: {text}");
    }
    let alive = s.get("/api/").send().await.map(|r| r.status().as_u16());
    prop_assert_eq!(
        alive.ok(),
        Some(200),
        "the server stopped answering after {}",
        path
    );
    Ok(status)
}

#[test]
fn the_seed_requests_succeed() {
    let s = server();
    s.rt.block_on(async {
        for (path, body) in SEEDS {
            let status = post(path, body.as_bytes().to_vec())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!((200..300).contains(&status), "{path}: {status}");
        }
    });
}

/// Mutations of a valid sample (homecore_fuzz_kit), inserting this format's own bytes.
fn edits() -> impl Strategy<Value = Vec<homecore_fuzz_kit::Edit>> {
    Edits::default().inserting(b"{}[]\",:\\ 0a_.-9e").strategy()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_rest_mutated_bodies(which in any::<prop::sample::Index>(), edits in edits()) {
        let (path, body) = which.get(SEEDS);
        server().rt.block_on(post(path, apply(body.as_bytes(), &edits)))?;
    }

    #[test]
    fn fuzz_rest_arbitrary_path_segments(
        kind in 0..3usize,
        a in any::<String>(),
        b in "[a-z_.]{0,12}",
        body in prop::sample::select(SEEDS.iter().map(|(_, body)| *body).collect::<Vec<_>>()),
    ) {
        let path = match kind {
            0 => format!("/api/states/{}", segment(&a)),
            1 => format!("/api/services/{}/{}", segment(&a), segment(&b)),
            _ => format!("/api/events/{}", segment(&a)),
        };
        server().rt.block_on(post(&path, body.as_bytes().to_vec()))?;
    }
}
