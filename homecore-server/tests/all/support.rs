//! A server on a loopback port with a temporary data directory, and an HTTP client for it.

use std::time::Duration;

use homecore_server::{Config, RunningServer};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

/// The access token every test server accepts.
pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";

/// A running test server; shut down (or dropped with its data directory) at the end.
pub(crate) struct TestServer {
    pub(crate) server: RunningServer,
    pub(crate) client: Client,
    pub(crate) base: String,
    /// The data directory, when the server owns it.
    pub(crate) _data: Option<tempfile::TempDir>,
}

/// A config on 127.0.0.1:0 with a fresh data directory, one token, no example plugins.
pub(crate) fn test_config(data: &tempfile::TempDir) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("valid"),
        data_dir: Some(data.path().to_owned()),
        examples: false,
        api: homecore_server::ApiConfig {
            tokens: vec![TOKEN.to_owned()],
            ..homecore_server::ApiConfig::default()
        },
        ..Config::default()
    }
}

impl TestServer {
    /// A server with [`test_config`].
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server with [`test_config`] changed by `edit`.
    pub(crate) async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(&data);
        edit(&mut config);
        let mut server = Self::start_config(config).await;
        server._data = Some(data);
        server
    }

    /// A server with `config` (whose data directory the caller keeps).
    pub(crate) async fn start_config(config: Config) -> Self {
        let mut server = homecore_server::start(config).await.expect("server starts");
        server.plugins_started().await;
        let base = format!("http://{}", server.addr());
        Self {
            server,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base,
            _data: None,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(TOKEN)
    }

    pub(crate) fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(TOKEN)
    }

    pub(crate) fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path)).bearer_auth(TOKEN)
    }

    pub(crate) fn ws_url(&self) -> String {
        format!("ws://{}/api/websocket", self.server.addr())
    }

    pub(crate) fn home(&self) -> &homecore::Home {
        self.server.api().home()
    }
}

/// The status and JSON body of a response (the body must be JSON).
pub(crate) async fn json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("{status} body is not JSON ({err}): {text:?}"));
    assert!(
        ct.starts_with("application/json"),
        "{status} content-type {ct:?}"
    );
    (status, body)
}

/// Sends and returns the status and JSON body.
pub(crate) async fn send(request: RequestBuilder) -> (u16, Value) {
    json(request.send().await.expect("request sent")).await
}

/// Waits until `check` holds (polling every 10 ms, up to 10 s).
pub(crate) async fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(10), check).await;
}

/// Waits until `check` holds, polling every 10 ms, up to `limit`.
pub(crate) async fn eventually_within(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) {
    let polls = limit.as_millis() / 10;
    for _ in 0..polls {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The domains `GET /api/homecore/plugins` lists.
pub(crate) async fn listed_domains(s: &TestServer) -> Vec<String> {
    let (status, body) = send(s.get("/api/homecore/plugins")).await;
    assert_eq!(status, 200, "{body}");
    body["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["domain"].as_str().map(str::to_owned))
        .collect()
}
