//! The HTTP API: Home Assistant's REST routes, HomeCore's plugin routes and the WebSocket
//! endpoint, behind bearer-token auth (ADR 9).

mod body;
mod error;
mod plugins;
mod services;
mod states;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, Request, State, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use homecore::Home;
use homecore_plugins::PluginRegistry;
use homecore_store::StateRecorder;

pub use self::error::ApiError;
pub use self::plugins::{PluginSummary, RejectedPlugin};

use crate::TokenStore;
use crate::durability::Durability;
use crate::metrics::ServerMetrics;
use crate::websocket::{TokenCheck, WebSocketApi, WebSocketSettings};

/// The server version reported by `GET /api/config` and the WebSocket `auth_required`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything the HTTP handlers share. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use homecore::Home;
/// use homecore_plugins::PluginRegistry;
/// use homecore_server::{Api, TokenStore};
///
/// let home = Home::new();
/// let registry = PluginRegistry::new(home.clone());
/// let api = Api::new(home, registry, Arc::new(TokenStore::new(["a-long-enough-token"])));
/// let router: axum::Router = api.router();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # drop((router, listener));
/// // axum::serve(listener, router).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Api {
    inner: Arc<ApiInner>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("home", &self.inner.home)
            .field("registry", &self.inner.registry)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

struct ApiInner {
    home: Home,
    registry: PluginRegistry,
    tokens: Arc<TokenStore>,
    max_body_bytes: usize,
    config_dir: PathBuf,
    /// Shared with the hot reloader, which adds and clears entries.
    rejected: Arc<Mutex<Vec<RejectedPlugin>>>,
    websocket: WebSocketApi,
    metrics: Arc<ServerMetrics>,
    /// When set, state-changing requests answer only once their changes are on disk.
    durability: Durability,
    /// When set, plugin reloads re-verify packages from disk (docs/adr/0013-hot-reload.md).
    #[cfg(feature = "wasm")]
    reloader: Option<Arc<crate::hot_reload::PackageReloader>>,
}

/// Builds an [`Api`] once, complete: limits, WebSocket settings, the plugins refused before
/// loading, the recorder acknowledgements wait for, and (hot reload) the package reloader.
/// Nothing is set on an `Api` after it is built.
///
/// ```
/// use std::sync::Arc;
/// use homecore::Home;
/// use homecore_plugins::PluginRegistry;
/// use homecore_server::{Api, TokenStore};
///
/// let home = Home::new();
/// let registry = PluginRegistry::new(home.clone());
/// let api = Api::builder(home, registry, Arc::new(TokenStore::new(["a-long-enough-token"])))
///     .max_body_bytes(64 * 1024)
///     .config_dir("/etc/homecore".into())
///     .build();
/// # drop(api);
/// ```
#[must_use = "an ApiBuilder does nothing until built"]
pub struct ApiBuilder {
    home: Home,
    registry: PluginRegistry,
    tokens: Arc<TokenStore>,
    max_body_bytes: usize,
    websocket: WebSocketSettings,
    config_dir: PathBuf,
    rejected: Arc<Mutex<Vec<RejectedPlugin>>>,
    recorder: Option<Arc<StateRecorder>>,
    #[cfg(feature = "wasm")]
    reloader: Option<Arc<crate::hot_reload::PackageReloader>>,
}

impl std::fmt::Debug for ApiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiBuilder")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("websocket", &self.websocket)
            .field("config_dir", &self.config_dir)
            .finish_non_exhaustive()
    }
}

impl ApiBuilder {
    /// The largest request body read (default [`crate::DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// How the WebSocket API behaves (its `config` is replaced by the API's own
    /// `GET /api/config` body).
    pub fn websocket(mut self, settings: WebSocketSettings) -> Self {
        self.websocket = settings;
        self
    }

    /// What `GET /api/config` reports as the config directory.
    pub fn config_dir(mut self, dir: PathBuf) -> Self {
        self.config_dir = dir;
        self
    }

    /// Plugins refused before they reached the registry (bad package, bad config), listed by
    /// `GET /api/homecore/plugins`.
    pub fn rejected(self, rejected: Vec<RejectedPlugin>) -> Self {
        *homecore::lock_unpoisoned(&self.rejected) = rejected;
        self
    }

    /// State-changing requests (`POST`/`DELETE /api/states/...`, service calls) answer only
    /// once every state change made before the answer is committed by `recorder`: what the
    /// API acknowledges survives a process kill (and, with the store's default durability, a
    /// power cut). See docs/adr/0010-persistence.md.
    pub fn recorder(mut self, recorder: Arc<StateRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The `rejected` list the built API will list, for the hot reloader (built before the
    /// API, as it is handed to it).
    #[cfg(feature = "wasm")]
    pub(crate) fn rejected_list(&self) -> crate::hot_reload::RejectedList {
        Arc::clone(&self.rejected)
    }

    /// `POST /api/homecore/plugins/{domain}/reload` goes through `reloader`.
    #[cfg(feature = "wasm")]
    pub(crate) fn reloader(mut self, reloader: Arc<crate::hot_reload::PackageReloader>) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// The API.
    #[must_use]
    pub fn build(self) -> Api {
        let Self {
            home,
            registry,
            tokens,
            max_body_bytes,
            mut websocket,
            config_dir,
            rejected,
            recorder,
            #[cfg(feature = "wasm")]
            reloader,
        } = self;
        let (config_registry, config_path) = (registry.clone(), config_dir.clone());
        websocket.config =
            Arc::new(move || states::config_body(&config_registry, &config_path).to_value());
        let durability = Durability::new(recorder);
        let websocket = WebSocketApi::with_durability(
            home.clone(),
            Arc::clone(&tokens) as Arc<dyn TokenCheck>,
            websocket,
            durability.clone(),
        );
        let metrics = Arc::new(ServerMetrics::new(&home, &registry));
        Api {
            inner: Arc::new(ApiInner {
                home,
                registry,
                tokens,
                max_body_bytes,
                config_dir,
                rejected,
                websocket,
                metrics,
                durability,
                #[cfg(feature = "wasm")]
                reloader,
            }),
        }
    }
}

impl Api {
    /// An API over `home` and `registry`, accepting `tokens`, with default limits.
    #[must_use]
    pub fn new(home: Home, registry: PluginRegistry, tokens: Arc<TokenStore>) -> Self {
        Self::builder(home, registry, tokens).build()
    }

    /// A builder for an API over `home` and `registry`, accepting `tokens`.
    pub fn builder(home: Home, registry: PluginRegistry, tokens: Arc<TokenStore>) -> ApiBuilder {
        ApiBuilder {
            home,
            registry,
            tokens,
            max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
            websocket: WebSocketSettings::default(),
            config_dir: PathBuf::new(),
            rejected: Arc::new(Mutex::new(Vec::new())),
            recorder: None,
            #[cfg(feature = "wasm")]
            reloader: None,
        }
    }

    /// The home served.
    #[must_use]
    pub fn home(&self) -> &Home {
        &self.inner.home
    }

    /// The plugin registry served.
    #[must_use]
    pub fn registry(&self) -> &PluginRegistry {
        &self.inner.registry
    }

    #[cfg(feature = "wasm")]
    pub(crate) fn reloader(&self) -> Option<&Arc<crate::hot_reload::PackageReloader>> {
        self.inner.reloader.as_ref()
    }

    /// Waits until every state change made so far is durable, when a recorder is set.
    ///
    /// # Errors
    /// A 500 [`ApiError`] when the change could not be committed: it is in memory (and was
    /// announced on the bus) but not acknowledged as durable.
    pub(crate) async fn durable(&self) -> Result<(), ApiError> {
        self.inner
            .durability
            .committed()
            .await
            .map_err(ApiError::internal)
    }

    pub(crate) fn metrics(&self) -> &ServerMetrics {
        &self.inner.metrics
    }

    fn rejected(&self) -> Vec<RejectedPlugin> {
        homecore::lock_unpoisoned(&self.inner.rejected).clone()
    }

    /// The router: every `/api/*` route and `/metrics` (Prometheus text, also at
    /// `/api/prometheus`), auth on all but `/api/websocket` (which authenticates in-band),
    /// JSON bodies for every error.
    pub fn router(&self) -> Router {
        let authed = Router::new()
            .route("/api/", get(states::api_running))
            .route("/api/config", get(states::config))
            .route("/api/states", get(states::list))
            .route(
                "/api/states/{entity_id}",
                get(states::get_one)
                    .post(states::set)
                    .delete(states::remove),
            )
            .route("/api/services", get(services::list))
            .route("/api/services/{domain}/{service}", post(services::call))
            .route("/api/events", get(services::event_listing))
            .route("/api/events/{event_type}", post(services::fire))
            .route("/api/homecore/plugins", get(plugins::list))
            .route(
                "/api/homecore/plugins/{domain}/reload",
                post(plugins::reload),
            )
            .route("/metrics", get(crate::metrics::scrape))
            .route("/api/prometheus", get(crate::metrics::scrape))
            .route_layer(middleware::from_fn_with_state(self.clone(), require_token));
        Router::new()
            .merge(authed)
            .route("/api/websocket", get(websocket))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.inner.max_body_bytes))
            .layer(middleware::from_fn_with_state(
                Arc::clone(&self.inner.metrics),
                crate::metrics::track_requests,
            ))
            .with_state(self.clone())
    }
}

/// Refuses requests without `Authorization: Bearer <token>` with 401.
async fn require_token(State(api): State<Api>, request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| api.inner.tokens.check_header(v));
    if authorized {
        next.run(request).await
    } else {
        let mut response =
            ApiError::new(StatusCode::UNAUTHORIZED, "401: Unauthorized").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

/// Each connection's read buffer. Clients send small commands; tungstenite's default (128 KiB)
/// is held per connection and zero-filled before every read, which the load tests measured at a
/// third of the CPU of a one-message-at-a-time client. A longer message still arrives whole
/// (the buffer is only the unit of reading).
const WEBSOCKET_READ_BUFFER: usize = 16 * 1024;

/// `GET /api/websocket`: upgrades and hands the socket to the WebSocket API, which
/// authenticates in-band (`auth_required` → `auth`).
async fn websocket(
    State(api): State<Api>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => {
            let (ws, metrics) = (api.inner.websocket.clone(), Arc::clone(&api.inner.metrics));
            // Admitted before the upgrade: a refused client costs no WebSocket.
            let Some(admission) = ws.admit() else {
                metrics.clients.websocket_refused.inc();
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Too many unauthenticated WebSocket connections; try again later.",
                )
                .into_response();
            };
            upgrade
                .read_buffer_size(WEBSOCKET_READ_BUFFER)
                .on_upgrade(move |socket| async move {
                    let _client = metrics.websocket_client();
                    ws.serve_admitted(socket, admission).await
                })
        }
        Err(rejection) => ApiError::new(rejection.status(), rejection.body_text()).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Not found.")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// A `200 OK` JSON response from bytes already serialized.
fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// Serializes `value` as a JSON response.
fn json<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(err) => {
            ApiError::internal(format!("cannot serialize the response: {err}")).into_response()
        }
    }
}
