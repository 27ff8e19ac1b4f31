//! `GET /metrics` (and `GET /api/prometheus`, where Home Assistant serves its Prometheus
//! export): the server's and every plugin's figures in the Prometheus text format 0.0.4,
//! behind the same bearer token as `/api/*` (docs/adr/0011-metrics-and-tracing.md).
//!
//! Each [`Api`](crate::Api) owns its own `prometheus_client` registry, so servers started side
//! by side in one process (as the tests do) never share or double-count. Server figures are
//! counted as they happen: HTTP requests by matched route template, method and status (an
//! axum middleware), WebSocket clients (a gauge held by each connection), state changes (a
//! [`StateObserver`] on the state machine: one atomic increment per change). Plugin figures
//! are the plugins crate's own atomic counters, read from [`PluginRegistry::list`] at scrape
//! time, so the plugin hot path knows nothing of Prometheus.

use std::fmt;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use homecore::{EntityId, Home, StateMachine, StateObserver};
use homecore_plugins::{LATENCY_BUCKETS, PluginInfo, PluginRegistry, PluginStats, RuntimeKind};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

use crate::Api;

/// The `route` label of requests that matched no route (404s): never the raw path, which
/// would let clients create series at will.
const UNMATCHED: &str = "unmatched";

/// Labels of `homecore_http_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

/// One server's metrics: its own registry, the live server-side metrics, and the collectors
/// that read plugin and bus figures at scrape time.
pub(crate) struct ServerMetrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    websocket_clients: Gauge,
    pub(crate) clients: ClientMetrics,
    states: StateMachine,
    observer: Arc<dyn StateObserver>,
}

impl ServerMetrics {
    /// Metrics over `home` and `plugins`; starts counting `home`'s state changes now.
    pub(crate) fn new(home: &Home, plugins: &PluginRegistry) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "homecore_http_requests",
            "HTTP requests answered, by matched route template, method and status",
            http_requests.clone(),
        );
        let websocket_clients = Gauge::default();
        registry.register(
            "homecore_websocket_clients",
            "WebSocket connections open (authenticated or not yet)",
            websocket_clients.clone(),
        );
        let clients = ClientMetrics::default();
        registry.register(
            "homecore_http_connections",
            "TCP connections open (HTTP and WebSocket, authenticated or not)",
            clients.connections.clone(),
        );
        registry.register(
            "homecore_http_connections_refused",
            "Connections closed as soon as accepted because api.max_connections were open",
            clients.connections_refused.clone(),
        );
        registry.register(
            "homecore_http_header_timeouts",
            "Connections closed because a request's headers did not arrive within api.header_read_timeout_ms",
            clients.header_timeouts.clone(),
        );
        registry.register(
            "homecore_websocket_unauthenticated_refused",
            "WebSocket upgrades refused (503) because api.max_unauthenticated_websockets were waiting for auth",
            clients.websocket_refused.clone(),
        );
        let state_changes = Counter::default();
        registry.register(
            "homecore_state_changes",
            "State changes (creations, changes, removals, restores); rate() gives changes per second",
            state_changes.clone(),
        );
        registry.register_collector(Box::new(HomeCollector { home: home.clone() }));
        registry.register_collector(Box::new(PluginCollector {
            plugins: plugins.clone(),
        }));
        let observer: Arc<dyn StateObserver> = Arc::new(CountChanges(state_changes));
        home.states.add_observer(Arc::clone(&observer));
        Self {
            registry,
            http_requests,
            websocket_clients,
            clients,
            states: home.states.clone(),
            observer,
        }
    }

    /// Everything, in the Prometheus text format 0.0.4.
    pub(crate) fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry)
            .expect("encoding into a String cannot fail");
        text
    }

    /// Counts one WebSocket connection until the returned guard is dropped.
    pub(crate) fn websocket_client(&self) -> WebSocketClient {
        self.websocket_clients.inc();
        WebSocketClient(self.websocket_clients.clone())
    }
}

impl Drop for ServerMetrics {
    fn drop(&mut self) {
        self.states.remove_observer(&self.observer);
    }
}

/// What hostile or broken clients cost: open connections and the ones refused or timed out
/// (docs/hostile-catalogue.md, "Clients"). Cheap to clone (shared atomics).
#[derive(Debug, Clone, Default)]
pub(crate) struct ClientMetrics {
    pub(crate) connections: Gauge,
    pub(crate) connections_refused: Counter,
    pub(crate) header_timeouts: Counter,
    pub(crate) websocket_refused: Counter,
}

/// One open WebSocket connection in `homecore_websocket_clients`.
pub(crate) struct WebSocketClient(Gauge);

impl Drop for WebSocketClient {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The state observer behind `homecore_state_changes_total`.
struct CountChanges(Counter);

impl StateObserver for CountChanges {
    fn state_changed(&self, _entity_id: &EntityId) {
        self.0.inc();
    }
}

/// Middleware: counts every answered request under its matched route template.
pub(crate) async fn track_requests(
    State(metrics): State<Arc<ServerMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let labels = HttpLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}

/// The method as a label; methods outside the standard set are one `OTHER` series.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("OTHER")
}

/// `GET /metrics`, `GET /api/prometheus`.
pub(crate) async fn scrape(State(api): State<Api>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
        )],
        api.metrics().render(),
    )
        .into_response()
}

/// Event-bus and state-machine figures, read at scrape time.
struct HomeCollector {
    home: Home,
}

impl fmt::Debug for HomeCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeCollector").finish_non_exhaustive()
    }
}

impl Collector for HomeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let bus = &self.home.bus;
        let counters = [
            (
                "homecore_events_published",
                "Events published on the event bus (state changes and fired events).",
                bus.published(),
            ),
            (
                "homecore_events_dropped",
                "Deliveries dropped because a subscriber's queue was full.",
                bus.dropped(),
            ),
            (
                "homecore_loop_guard_refusals",
                "Writes and events refused by the loop guard.",
                bus.loop_guard_refusals(),
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        let entities = ConstGauge::new(i64::try_from(self.home.states.len()).unwrap_or(i64::MAX));
        entities.encode(encoder.encode_descriptor(
            "homecore_entities",
            "Entities with a state.",
            None,
            MetricType::Gauge,
        )?)
    }
}

/// Every plugin's counters, read from the registry at scrape time.
struct PluginCollector {
    plugins: PluginRegistry,
}

impl fmt::Debug for PluginCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginCollector").finish_non_exhaustive()
    }
}

/// A per-plugin figure: name (without `_total`), help, type, and how to read it (`None`:
/// no sample for this plugin).
type PluginFigure = (
    &'static str,
    &'static str,
    MetricType,
    fn(&PluginInfo) -> Option<u64>,
);

const PLUGIN_FIGURES: [PluginFigure; 11] = [
    (
        "homecore_plugin_up",
        "1 while the plugin is running, 0 otherwise (loading, failed, quarantined, stopped).",
        MetricType::Gauge,
        |p| Some(u64::from(p.health.ready)),
    ),
    (
        "homecore_plugin_events",
        "Events delivered to the plugin.",
        MetricType::Counter,
        |p| Some(p.stats.events),
    ),
    (
        "homecore_plugin_errors",
        "Failed calls into the plugin (events, service calls, timers, setups).",
        MetricType::Counter,
        |p| Some(p.stats.errors),
    ),
    (
        "homecore_plugin_host_calls",
        "Host calls the plugin made.",
        MetricType::Counter,
        |p| Some(p.stats.host_calls),
    ),
    (
        "homecore_plugin_host_calls_denied",
        "Host calls refused by the plugin's permissions.",
        MetricType::Counter,
        |p| Some(p.stats.denied),
    ),
    (
        "homecore_plugin_fuel_used",
        "WASM fuel (guest instructions) consumed by calls into the plugin.",
        MetricType::Counter,
        |p| (p.runtime == homecore_plugins::RuntimeKind::Wasm).then_some(p.stats.fuel_used),
    ),
    (
        "homecore_plugin_mailbox_depth",
        "Events waiting in the plugin's mailbox.",
        MetricType::Gauge,
        |p| Some(p.stats.mailbox_depth),
    ),
    (
        "homecore_plugin_mailbox_capacity",
        "Capacity of the plugin's mailbox.",
        MetricType::Gauge,
        |p| Some(p.stats.mailbox_capacity),
    ),
    (
        "homecore_plugin_mailbox_dropped",
        "Events dropped because the plugin's mailbox was full.",
        MetricType::Counter,
        |p| Some(p.stats.mailbox_dropped),
    ),
    (
        "homecore_plugin_logs_dropped",
        "Log lines of the plugin dropped by the rate limit.",
        MetricType::Counter,
        |p| Some(p.stats.logs_dropped),
    ),
    (
        "homecore_plugin_quarantines",
        "Times the plugin was quarantined after repeated failures.",
        MetricType::Counter,
        |p| Some(p.stats.quarantines),
    ),
];

/// The `kind` label of `homecore_plugin_guest_failures_total` and how many calls failed so.
fn guest_failures(stats: &PluginStats) -> [(&'static str, u64); 5] {
    [
        ("fuel_exhausted", stats.fuel_exhausted),
        ("deadline_missed", stats.deadlines_missed),
        ("memory_limit", stats.memory_limit_hits),
        ("table_limit", stats.table_limit_hits),
        ("trap", stats.traps),
    ]
}

impl Collector for PluginCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let plugins = self.plugins.list();
        let mut metric = encoder.encode_descriptor(
            "homecore_plugin_guest_failures",
            "WASM calls stopped by a limit or a trap, by kind (fuel_exhausted, deadline_missed, memory_limit, table_limit, trap).",
            None,
            MetricType::Counter,
        )?;
        for plugin in plugins.iter().filter(|p| p.runtime == RuntimeKind::Wasm) {
            for (kind, value) in guest_failures(&plugin.stats) {
                let labels = [
                    ("plugin", plugin.domain.as_str()),
                    ("runtime", plugin.runtime.as_str()),
                    ("kind", kind),
                ];
                ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
            }
        }
        for (name, help, kind, read) in PLUGIN_FIGURES {
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for plugin in &plugins {
                let Some(value) = read(plugin) else { continue };
                let labels = [
                    ("plugin", plugin.domain.as_str()),
                    ("runtime", plugin.runtime.as_str()),
                ];
                let sample = metric.encode_family(&labels)?;
                if kind == MetricType::Counter {
                    ConstCounter::new(value).encode(sample)?;
                } else {
                    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample)?;
                }
            }
        }

        let bounds: Vec<f64> = LATENCY_BUCKETS.iter().map(|b| b.as_secs_f64()).collect();
        let mut metric = encoder.encode_descriptor(
            "homecore_plugin_call_duration",
            "Time spent in calls into the plugin, per hook (setup, on_state_changed, on_event, on_timer, call_service, teardown).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for plugin in &plugins {
            for (hook, latency) in plugin.latency.iter() {
                let count = latency.count();
                if count == 0 {
                    continue;
                }
                let labels = [
                    ("plugin", plugin.domain.as_str()),
                    ("runtime", plugin.runtime.as_str()),
                    ("hook", hook.as_str()),
                ];
                // Per-bucket counts; the encoder makes them cumulative and adds `+Inf`.
                let buckets: Vec<(f64, u64)> = bounds
                    .iter()
                    .copied()
                    .zip(latency.buckets.iter().copied())
                    .collect();
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(
                        latency.sum.as_secs_f64(),
                        count,
                        &buckets,
                        None,
                    )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_failures_are_labelled_by_kind() {
        let stats = PluginStats {
            fuel_exhausted: 1,
            deadlines_missed: 2,
            memory_limit_hits: 3,
            table_limit_hits: 4,
            traps: 5,
            ..PluginStats::default()
        };
        assert_eq!(
            guest_failures(&stats),
            [
                ("fuel_exhausted", 1),
                ("deadline_missed", 2),
                ("memory_limit", 3),
                ("table_limit", 4),
                ("trap", 5)
            ]
        );
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(
            method_label(&Method::from_bytes(b"PROPFIND").expect("valid")),
            "OTHER"
        );
    }

    #[test]
    fn state_changes_are_counted_by_the_observer() {
        let home = Home::new();
        let metrics = ServerMetrics::new(&home, &PluginRegistry::new(home.clone()));
        let id: EntityId = "sensor.a".parse().expect("valid");
        for state in ["1", "2", "2", "3"] {
            home.states
                .set(
                    &id,
                    state,
                    homecore::Attributes::new(),
                    &homecore::Context::new(),
                )
                .expect("set");
        }
        let text = metrics.render();
        assert!(
            text.lines().any(|l| l == "homecore_state_changes_total 3"),
            "the repeated write is no change:\n{text}"
        );
        assert!(text.lines().any(|l| l == "homecore_entities 1"), "{text}");
    }

    #[test]
    fn websocket_clients_go_down_when_a_connection_ends() {
        let home = Home::new();
        let metrics = ServerMetrics::new(&home, &PluginRegistry::new(home.clone()));
        let one = metrics.websocket_client();
        let two = metrics.websocket_client();
        drop(one);
        assert!(
            metrics
                .render()
                .lines()
                .any(|l| l == "homecore_websocket_clients 1")
        );
        drop(two);
        assert!(
            metrics
                .render()
                .lines()
                .any(|l| l == "homecore_websocket_clients 0")
        );
    }
}
