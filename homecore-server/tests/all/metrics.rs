//! `GET /metrics` and `GET /api/prometheus`: auth, content type, and the figures after known
//! traffic (REST writes, a service call, a plugin that errs and is denied, a WebSocket client).

use std::collections::BTreeMap;

use async_trait::async_trait;
use homecore::{EntityId, StateChanged};
use homecore_plugins::{
    HomeCorePlugin, PluginContext, PluginError, PluginHook, PluginManifest, PluginSource,
    PluginSpec,
};
use serde_json::{Value, json};

use crate::support::{TestServer, eventually, send};

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format's sample lines (label values here never hold `,` `"` or `}`).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("a number in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, BTreeMap::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("key=value");
                            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                            (k.to_owned(), v.expect("quoted value").to_owned())
                        })
                        .collect();
                    (name, labels)
                }
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

/// The samples of `name` whose labels include all of `labels`.
fn matching<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one sample of `name` with exactly these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = matching(samples, name, labels)
        .into_iter()
        .filter(|s| s.labels.len() == labels.len())
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0].value
}

async fn scrape(s: &TestServer, path: &str) -> Vec<Sample> {
    let response = s.get(path).send().await.expect("scraped");
    assert_eq!(response.status().as_u16(), 200);
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&response.text().await.expect("body"))
}

/// A plugin that tries a write it has no permission for on every event, fails on `fail`, and
/// provides `probe.ping`.
struct Probe;

#[async_trait]
impl HomeCorePlugin for Probe {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        ctx.subscribe("sensor.probe")?;
        ctx.register_service("ping")?;
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &StateChanged,
    ) -> Result<(), PluginError> {
        let forbidden: EntityId = "light.forbidden".parse().expect("valid");
        let denied = ctx.set_state(&forbidden, "on", homecore::Attributes::new());
        assert!(denied.is_err(), "the grant has no light writes");
        if event
            .new_state
            .as_ref()
            .is_some_and(|s| s.state() == "fail")
        {
            return Err(PluginError::config("", "asked to fail"));
        }
        Ok(())
    }

    async fn call_service(
        &mut self,
        _ctx: &PluginContext,
        _call: &homecore::ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        Ok(None)
    }
}

fn probe_spec() -> PluginSpec {
    let manifest = PluginManifest::from_value(json!({
        "domain": "probe",
        "name": "Probe",
        "version": "1.0.0",
        "homecore": {
            "runtime": "native",
            "api_version": "^1",
            "permissions": {"states_read": ["sensor.probe"]}
        }
    }))
    .expect("valid manifest");
    PluginSpec::new(manifest, PluginSource::native(|| Probe))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token() {
    let s = TestServer::start().await;
    for path in ["/metrics", "/api/prometheus"] {
        let response = s.client.get(s.url(path)).send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let response = s
            .client
            .get(s.url(path))
            .bearer_auth("not-the-token-0123456789")
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    let samples = scrape(&s, "/api/prometheus").await;
    // The refusals were counted under their route, the scrape itself is counted after it.
    assert_eq!(
        value(
            &samples,
            "homecore_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "401")]
        ),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_known_traffic() {
    const WRITES: usize = 7;
    let s = TestServer::start().await;
    let registry = s.server.api().registry().clone();
    registry.load(probe_spec()).await.expect("probe starts");

    for i in 0..WRITES {
        let (status, body) = send(
            s.post("/api/states/sensor.metrics_test")
                .json(&json!({"state": i.to_string()})),
        )
        .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    for state in ["a", "fail", "b"] {
        send(
            s.post("/api/states/sensor.probe")
                .json(&json!({"state": state})),
        )
        .await;
    }
    send(
        s.post("/api/states/binary_sensor.kitchen_motion")
            .json(&json!({"state": "on"})),
    )
    .await;
    let (status, body) = send(s.post("/api/services/probe/ping").json(&json!({}))).await;
    assert_eq!(status, 200, "{body}");
    let unknown = s.get("/api/nothing/here").send().await.expect("sent");
    assert_eq!(unknown.status().as_u16(), 404);

    // Each plugin has finished the calls it was given (events are counted before the call,
    // latency after it).
    eventually("plugins done", || {
        ["probe", "motion_lights"].iter().all(|d| {
            registry.get(d).is_some_and(|p| {
                p.stats.events > 0
                    && p.latency.get(PluginHook::OnStateChanged).count() == p.stats.events
            })
        }) && registry.get("probe").is_some_and(|p| p.stats.events == 3)
    })
    .await;

    let samples = scrape(&s, "/metrics").await;
    let requests = |route: &str, method: &str, status: &str| {
        value(
            &samples,
            "homecore_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    let states = "/api/states/{entity_id}";
    // HA answers the creating write with 201 and the others with 200.
    assert_eq!(
        requests(states, "POST", "201"),
        3.0,
        "metrics_test, probe, kitchen_motion"
    );
    assert_eq!(requests(states, "POST", "200"), (WRITES - 1 + 2) as f64);
    assert_eq!(
        requests("/api/services/{domain}/{service}", "POST", "200"),
        1.0
    );
    assert_eq!(requests("unmatched", "GET", "404"), 1.0);

    let changes = value(&samples, "homecore_state_changes_total", &[]);
    assert!(changes >= (WRITES + 4) as f64, "{changes}");
    assert_eq!(value(&samples, "homecore_websocket_clients", &[]), 0.0);

    let probe = [("plugin", "probe"), ("runtime", "native")];
    assert_eq!(value(&samples, "homecore_plugin_up", &probe), 1.0);
    assert_eq!(value(&samples, "homecore_plugin_events_total", &probe), 3.0);
    assert_eq!(value(&samples, "homecore_plugin_errors_total", &probe), 1.0);
    assert_eq!(
        value(&samples, "homecore_plugin_host_calls_denied_total", &probe),
        3.0
    );
    assert_eq!(
        value(&samples, "homecore_plugin_quarantines_total", &probe),
        0.0
    );
    assert_eq!(
        value(&samples, "homecore_plugin_mailbox_depth", &probe),
        0.0
    );
    assert_eq!(
        value(&samples, "homecore_plugin_mailbox_dropped_total", &probe),
        0.0
    );
    let capacity = registry
        .get("probe")
        .expect("listed")
        .stats
        .mailbox_capacity;
    assert!(capacity > 0);
    assert_eq!(
        value(&samples, "homecore_plugin_mailbox_capacity", &probe),
        capacity as f64
    );
    assert!(
        matching(&samples, "homecore_plugin_fuel_used_total", &probe).is_empty(),
        "fuel is for WASM plugins only"
    );
    assert!(
        matching(&samples, "homecore_plugin_guest_failures_total", &probe).is_empty(),
        "guest failures (fuel, deadline, memory, table, trap) are for WASM plugins only"
    );
    let service = [
        ("plugin", "probe"),
        ("runtime", "native"),
        ("hook", "call_service"),
    ];
    assert_eq!(
        value(
            &samples,
            "homecore_plugin_call_duration_seconds_count",
            &service
        ),
        1.0
    );

    let motion = [("plugin", "motion_lights"), ("runtime", "native")];
    let events = value(&samples, "homecore_plugin_events_total", &motion);
    assert!(events > 0.0);
    let hook = [
        ("plugin", "motion_lights"),
        ("runtime", "native"),
        ("hook", "on_state_changed"),
    ];
    let buckets = matching(
        &samples,
        "homecore_plugin_call_duration_seconds_bucket",
        &hook,
    );
    assert_eq!(
        buckets.len(),
        homecore_plugins::LATENCY_BUCKETS.len() + 1,
        "{buckets:?}"
    );
    let mut last = (0.0, 0.0);
    for b in &buckets {
        let le: f64 = match b.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            le => le.parse().expect("a bound"),
        };
        assert!(
            le > last.0 && b.value >= last.1,
            "not ascending and cumulative: {buckets:?}"
        );
        last = (le, b.value);
    }
    assert!(last.0.is_infinite());
    let count = value(
        &samples,
        "homecore_plugin_call_duration_seconds_count",
        &hook,
    );
    assert_eq!(count, events);
    assert_eq!(last.1, count, "+Inf bucket is the count");
    assert!(value(&samples, "homecore_plugin_call_duration_seconds_sum", &hook) > 0.0);
    let setup = [
        ("plugin", "motion_lights"),
        ("runtime", "native"),
        ("hook", "setup"),
    ];
    assert_eq!(
        value(
            &samples,
            "homecore_plugin_call_duration_seconds_count",
            &setup
        ),
        1.0
    );
}

/// The `homecore_websocket_clients` gauge once it reads `expected` (the server counts a
/// connection in its own task, so a client can see its handshake done first), or after 5 s.
async fn websocket_clients_reaching(s: &TestServer, expected: f64) -> f64 {
    let mut now = f64::NAN;
    for _ in 0..500 {
        now = value(
            &scrape(s, "/metrics").await,
            "homecore_websocket_clients",
            &[],
        );
        if now == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_are_counted_while_connected() {
    let s = TestServer::start().await;
    let (ws, _) = tokio_tungstenite::connect_async(s.ws_url())
        .await
        .expect("connected");
    assert_eq!(
        websocket_clients_reaching(&s, 1.0).await,
        1.0,
        "the gauge counts the connected client"
    );
    drop(ws);
    assert_eq!(
        websocket_clients_reaching(&s, 0.0).await,
        0.0,
        "the gauge goes down when the client leaves"
    );
    let samples = scrape(&s, "/metrics").await;
    assert_eq!(
        value(
            &samples,
            "homecore_http_requests_total",
            &[
                ("route", "/api/websocket"),
                ("method", "GET"),
                ("status", "101")
            ]
        ),
        1.0
    );
}
