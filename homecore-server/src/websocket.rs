//! The WebSocket API at `/api/websocket`, in Home Assistant's protocol.
//!
//! # Flow
//!
//! 1. The server sends `{"type": "auth_required", "ha_version": …}`.
//! 2. The client sends `{"type": "auth", "access_token": …}` within
//!    [`WebSocketSettings::auth_timeout`] (10 s, as Home Assistant); the server answers
//!    `auth_ok` or `auth_invalid` (with a `message`) and closes. Invalid JSON or a non-text
//!    message in this phase closes the connection, as Home Assistant.
//! 3. Commands `{id, type, …}`, ids strictly increasing (`id_reuse` otherwise): `ping`,
//!    `get_states`, `get_config`, `get_services`, `subscribe_events` (optional `event_type`,
//!    default every event), `unsubscribe_events` (`subscription`), `call_service` (`domain`,
//!    `service`, optional `service_data`, `target`, `return_response`), and
//!    `supported_features` (acknowledged). Replies are `{id, type: "result", success,
//!    result | error {code, message}}`, `{id, type: "pong"}`, and events
//!    `{id, type: "event", event {event_type, data, origin, time_fired, context}}`. A JSON list
//!    of commands is handled as its commands in order (Home Assistant's coalesced form). A
//!    message that is not JSON closes the connection, as Home Assistant; a JSON message of the
//!    wrong shape gets an `invalid_format` error and the connection stays up.
//!
//! # Ordering and slow clients
//!
//! Each connection has one task that owns one bus subscription (its queue holds
//! [`WebSocketSettings::queue_capacity`] events) and one bounded outgoing queue of the same
//! capacity, drained by a writer task. A `call_service` runs on the connection's task; when it
//! returns, every event it caused is already in the subscription's queue (the bus delivers
//! while the state machine writes), so the task forwards those events before it writes the
//! result: a client sees a call's `state_changed` events before its result.
//!
//! Each event is serialized once for all connections: the first connection to forward it
//! writes its JSON, the others reuse that text from a small shared memo of recent events and
//! only add their envelope (`{"id":…,"type":"event","event":` … `}`).
//!
//! The bus never waits for a connection. When a connection's subscription drops an event
//! (its queue was full) or its outgoing queue is full, that client is too slow: it is
//! disconnected (as Home Assistant does past its pending-message limit), so it never sees a
//! gap, and no other client or the bus is slowed.

mod event_json;
mod protocol;
mod session;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use homecore::Home;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::event_json::SharedEventJson;
pub use self::protocol::{ErrorCode, FieldProblem, ProtocolError};
use crate::durability::Durability;
use crate::ha_json::ConfigBody;

/// Decides whether an access token is valid (the server's token store).
pub trait TokenCheck: Send + Sync {
    /// Whether `token` may use the API.
    fn is_valid(&self, token: &str) -> bool;
}

/// How the WebSocket API behaves.
#[derive(Clone)]
pub struct WebSocketSettings {
    /// Events and replies queued per connection before the client counts as too slow and is
    /// disconnected (Home Assistant: 4096 pending messages).
    pub queue_capacity: usize,
    /// The version sent in `auth_required` and `auth_ok` (clients read it as Home Assistant's
    /// version to pick features).
    pub ha_version: String,
    /// The `get_config` result, built when asked (see [`ConfigBody`]).
    pub config: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// How long a client has to authenticate (Home Assistant: 10 s).
    pub auth_timeout: Duration,
    /// How long a closing connection may take to flush what is queued for it.
    pub close_timeout: Duration,
    /// Connections waiting for `auth` at once; over it, [`WebSocketApi::admit`] says no (the
    /// server answers the upgrade with 503). 0 is taken as 1.
    pub max_unauthenticated: usize,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        let version = env!("CARGO_PKG_VERSION").to_owned();
        let config_version = version.clone();
        Self {
            queue_capacity: 4096,
            ha_version: version,
            config: Arc::new(move || {
                ConfigBody::new(config_version.clone(), Vec::new()).to_value()
            }),
            auth_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            max_unauthenticated: 64,
        }
    }
}

impl fmt::Debug for WebSocketSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketSettings")
            .field("queue_capacity", &self.queue_capacity)
            .field("ha_version", &self.ha_version)
            .field("auth_timeout", &self.auth_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("max_unauthenticated", &self.max_unauthenticated)
            .finish_non_exhaustive()
    }
}

/// The WebSocket API: hand it every upgraded socket. Cheap to clone.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::{Router, extract::ws::WebSocketUpgrade, routing::get};
/// use homecore_server::websocket::{TokenCheck, WebSocketApi, WebSocketSettings};
///
/// struct OneToken;
/// impl TokenCheck for OneToken {
///     fn is_valid(&self, token: &str) -> bool { token == "secret" }
/// }
///
/// let api = WebSocketApi::new(homecore::Home::new(), Arc::new(OneToken), WebSocketSettings::default());
/// let app: Router = Router::new().route(
///     "/api/websocket",
///     get(move |ws: WebSocketUpgrade| {
///         let api = api.clone();
///         async move { ws.on_upgrade(move |socket| async move { api.serve(socket).await }) }
///     }),
/// );
/// ```
#[derive(Clone)]
pub struct WebSocketApi {
    inner: Arc<Inner>,
}

struct Inner {
    home: Home,
    tokens: Arc<dyn TokenCheck>,
    settings: WebSocketSettings,
    events: SharedEventJson,
    /// Service calls are answered once their state changes are committed (when set).
    durability: Durability,
    /// One permit per connection that has not authenticated yet.
    unauthenticated: Arc<Semaphore>,
}

/// A connection's place among those waiting for `auth` ([`WebSocketApi::admit`]); given back
/// when the client authenticates or leaves.
#[derive(Debug)]
pub struct Admission(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl fmt::Debug for WebSocketApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketApi")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl WebSocketApi {
    /// The API over `home`, authenticating with `tokens`. A `queue_capacity` of 0 is taken as 1.
    #[must_use]
    pub fn new(home: Home, tokens: Arc<dyn TokenCheck>, settings: WebSocketSettings) -> Self {
        Self::with_durability(home, tokens, settings, Durability::default())
    }

    /// The API whose `call_service` results wait for `durability` (the REST API's).
    pub(crate) fn with_durability(
        home: Home,
        tokens: Arc<dyn TokenCheck>,
        mut settings: WebSocketSettings,
        durability: Durability,
    ) -> Self {
        settings.queue_capacity = settings.queue_capacity.max(1);
        // A connection lags the others by at most its queue, so within that many events
        // every connection finds the JSON another one made.
        let events = SharedEventJson::new(settings.queue_capacity);
        let unauthenticated = Arc::new(Semaphore::new(settings.max_unauthenticated.max(1)));
        Self {
            inner: Arc::new(Inner {
                home,
                tokens,
                settings,
                events,
                durability,
                unauthenticated,
            }),
        }
    }

    /// A place for one more connection waiting for `auth`, or `None` when
    /// [`WebSocketSettings::max_unauthenticated`] are waiting already. Take it before the
    /// upgrade, so a refused client costs no WebSocket.
    #[must_use]
    pub fn admit(&self) -> Option<Admission> {
        Arc::clone(&self.inner.unauthenticated)
            .try_acquire_owned()
            .ok()
            .map(Admission)
    }

    /// Speaks the protocol on `socket` until the client leaves, fails to authenticate, sends
    /// invalid JSON, or falls too far behind. When [`WebSocketApi::admit`] says no, the
    /// socket is closed at once ("try again later").
    pub async fn serve(&self, socket: WebSocket) {
        match self.admit() {
            Some(admission) => self.serve_admitted(socket, admission).await,
            None => session::refuse(socket).await,
        }
    }

    /// As [`WebSocketApi::serve`], for a connection admitted before its upgrade; `admission`
    /// is given back once the client authenticated (or left).
    pub async fn serve_admitted(&self, socket: WebSocket, admission: Admission) {
        session::run(
            &self.inner.home,
            &*self.inner.tokens,
            &self.inner.settings,
            &self.inner.events,
            &self.inner.durability,
            socket,
            admission,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn api_is_send_sync_and_settings_default_like_home_assistant() {
        assert_send_sync::<WebSocketApi>();
        assert_send_sync::<WebSocketSettings>();
        let s = WebSocketSettings::default();
        assert_eq!(s.queue_capacity, 4096);
        assert_eq!(s.auth_timeout, Duration::from_secs(10));
        assert_eq!((s.config)()["version"], env!("CARGO_PKG_VERSION"));
    }
}
