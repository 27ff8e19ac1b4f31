//! One connection: the auth phase, then the command loop with its subscriptions and queues.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use homecore::{
    Context, Event, EventFilter, EventType, Home, STATE_CHANGED, ServiceError, ServiceResponse,
    Subscription,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event_json::SharedEventJson;
use super::protocol::{self, Command, ErrorCode, ProtocolError};
use super::{TokenCheck, WebSocketSettings};
use crate::durability::Durability;
use crate::error_chain::error_chain;
use crate::ha_json::{self, ServiceFailure, ServiceListing};

/// Messages taken from the outgoing queue per write before a flush.
const WRITE_BATCH: usize = 64;

/// Events taken from the subscription per wake-up.
const EVENT_BATCH: usize = 256;

/// What the writer task sends.
enum Outgoing {
    Text(Utf8Bytes),
    /// An event for a client subscription: the shared event JSON, put in its envelope only
    /// when written, so a queued event costs a reference count rather than a copy.
    Event {
        subscription: u64,
        json: Arc<str>,
    },
    /// A close frame, after which the writer stops.
    Close(u16, &'static str),
}

/// Why a connection ended (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    ClientLeft,
    InvalidJson,
    NonText,
    TooSlow,
    WriterGone,
}

/// A finished service call: its id, context, `return_response`, the call's result and, when it
/// succeeded, whether its state changes were committed.
type CallOutcome = (
    u64,
    Context,
    bool,
    Result<ServiceResponse, ServiceError>,
    Result<(), String>,
);
type PendingCall = Pin<Box<dyn Future<Output = CallOutcome> + Send>>;

pub(super) async fn run(
    home: &Home,
    tokens: &dyn TokenCheck,
    settings: &WebSocketSettings,
    events: &SharedEventJson,
    durability: &Durability,
    socket: WebSocket,
    admission: super::Admission,
) {
    let (mut sink, mut stream) = socket.split();
    if !authenticate(tokens, settings, &mut sink, &mut stream).await {
        return;
    }
    // Authenticated: the place among the unauthenticated goes to the next client.
    drop(admission);
    let (tx, rx) = mpsc::channel(settings.queue_capacity);
    let mut writer = tokio::spawn(write_loop(sink, rx));
    let mut session = Session {
        home,
        settings,
        shared: events,
        durability,
        tx,
        subscription: None,
        subscriptions: BTreeMap::new(),
        filter_refs: HashMap::new(),
        last_id: 0,
        calls: FuturesUnordered::new(),
        events: Vec::with_capacity(EVENT_BATCH),
        json: Vec::with_capacity(EVENT_BATCH),
    };
    let end = session.run(&mut stream, &mut writer).await;
    tracing::debug!(?end, "websocket connection ended");
    match end {
        End::TooSlow => {
            tracing::warn!(
                capacity = settings.queue_capacity,
                "websocket client unable to keep up with pending messages; disconnected"
            );
            writer.abort();
        }
        End::WriterGone => {}
        End::ClientLeft | End::InvalidJson | End::NonText => {
            if matches!(end, End::InvalidJson | End::NonText) {
                tracing::warn!(
                    ?end,
                    "websocket client sent an invalid message; disconnected"
                );
                // Best effort: the queue may be full, and the writer stops at the close.
                let _ = session.tx.try_send(Outgoing::Close(
                    close_code::UNSUPPORTED,
                    if end == End::InvalidJson {
                        "Received invalid JSON."
                    } else {
                        "Received non-Text message."
                    },
                ));
            }
            drop(session);
            if tokio::time::timeout(settings.close_timeout, &mut writer)
                .await
                .is_err()
            {
                writer.abort();
            }
        }
    }
}

/// Closes a connection that was not admitted (too many waiting for `auth`).
pub(super) async fn refuse(mut socket: WebSocket) {
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        socket.send(Message::Close(Some(CloseFrame {
            code: close_code::AGAIN,
            reason: Utf8Bytes::from_static("Too many unauthenticated connections."),
        }))),
    )
    .await;
}

/// The auth phase; true when the client authenticated.
async fn authenticate(
    tokens: &dyn TokenCheck,
    settings: &WebSocketSettings,
    sink: &mut SplitSink<WebSocket, Message>,
    stream: &mut SplitStream<WebSocket>,
) -> bool {
    let version = &settings.ha_version;
    if sink
        .send(Message::Text(protocol::auth_required(version).into()))
        .await
        .is_err()
    {
        return false;
    }
    let first = tokio::time::timeout(settings.auth_timeout, next_message(stream)).await;
    let text = match first {
        Err(_) => {
            tracing::info!("websocket client did not authenticate in time");
            // A client that does not read either must not hold the connection open.
            let _ = tokio::time::timeout(
                settings.close_timeout,
                close(
                    sink,
                    close_code::POLICY,
                    "Did not receive auth message in time.",
                ),
            )
            .await;
            return false;
        }
        Ok(None) => return false,
        Ok(Some(Message::Text(text))) => text,
        Ok(Some(_)) => {
            close(sink, close_code::UNSUPPORTED, "Received non-Text message.").await;
            return false;
        }
    };
    let Ok(msg) = serde_json::from_str::<Value>(text.as_str()) else {
        close(sink, close_code::UNSUPPORTED, "Received invalid JSON.").await;
        return false;
    };
    let verdict = match auth_token(&msg) {
        Err(reason) => Err(format!("Auth message incorrectly formatted: {reason}")),
        Ok(Some(token)) if tokens.is_valid(token) => Ok(()),
        Ok(_) => Err("Invalid access token or password".to_owned()),
    };
    match verdict {
        Ok(()) => sink
            .send(Message::Text(protocol::auth_ok(version).into()))
            .await
            .is_ok(),
        Err(message) => {
            let _ = sink
                .send(Message::Text(protocol::auth_invalid(&message).into()))
                .await;
            close(sink, close_code::POLICY, "").await;
            false
        }
    }
}

/// The access token of an auth message (`None` for an `api_password` login, which HomeCore
/// does not have), or what is wrong with the message, as Home Assistant's schema words it.
fn auth_token(msg: &Value) -> Result<Option<&str>, String> {
    let Value::Object(map) = msg else {
        return Err("expected a dictionary".into());
    };
    if let Some(extra) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "access_token" | "api_password"))
    {
        let extra: String = extra.chars().take(64).collect();
        return Err(format!("extra keys not allowed @ data['{extra}']"));
    }
    match map.get("type") {
        Some(Value::String(t)) if t == "auth" => {}
        Some(_) => return Err("value must be one of ['auth'] @ data['type']".into()),
        None => return Err("required key not provided @ data['type']".into()),
    }
    if map.contains_key("access_token") && map.contains_key("api_password") {
        return Err("two or more values in the same group of exclusion 'auth'".into());
    }
    match map.get("access_token") {
        Some(Value::String(token)) => Ok(Some(token)),
        Some(_) => Err("expected str @ data['access_token']".into()),
        None => match map.get("api_password") {
            Some(Value::String(_)) | None => Ok(None),
            Some(_) => Err("expected str @ data['api_password']".into()),
        },
    }
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &'static str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// The next data message; `None` once the client closed or the connection failed.
async fn next_message(stream: &mut SplitStream<WebSocket>) -> Option<Message> {
    loop {
        match stream.next().await? {
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(msg) => return Some(msg),
        }
    }
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        for item in batch.drain(..) {
            match item {
                Outgoing::Text(text) => {
                    if sink.feed(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Outgoing::Event { subscription, json } => {
                    let text = protocol::event_message(subscription, &json);
                    if sink.feed(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Outgoing::Close(code, reason) => {
                    close(&mut sink, code, reason).await;
                    return;
                }
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

struct Session<'a> {
    home: &'a Home,
    settings: &'a WebSocketSettings,
    /// Event JSON shared with the other connections.
    shared: &'a SharedEventJson,
    /// What a successful service call waits for before its result is sent.
    durability: &'a Durability,
    tx: mpsc::Sender<Outgoing>,
    /// The connection's bus subscription, made at the first `subscribe_events`.
    subscription: Option<Subscription>,
    /// Client subscription id → event type (`None`: every event).
    subscriptions: BTreeMap<u64, Option<EventType>>,
    /// How many client subscriptions need each bus filter.
    filter_refs: HashMap<EventFilter, usize>,
    last_id: u64,
    calls: FuturesUnordered<PendingCall>,
    events: Vec<Event>,
    /// The JSON of `events` this connection forwards (a reused buffer).
    json: Vec<Option<Arc<str>>>,
}

/// A message could not be queued: the client is too slow or gone.
struct Stop(End);

impl Session<'_> {
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        writer: &mut JoinHandle<()>,
    ) -> End {
        loop {
            let step = tokio::select! {
                _ = &mut *writer => return End::WriterGone,
                Some(outcome) = self.calls.next(), if !self.calls.is_empty() => {
                    self.finish_call(outcome)
                }
                received = recv_events(self.subscription.as_mut(), &mut self.events) => {
                    if received == 0 {
                        // The bus is gone (the home is shutting down).
                        self.subscription = None;
                        Ok(())
                    } else {
                        self.forward_events()
                    }
                }
                msg = next_message(stream) => match msg {
                    None => return End::ClientLeft,
                    Some(Message::Text(text)) => self.handle_text(text.as_str()),
                    Some(_) => return End::NonText,
                },
            };
            if let Err(Stop(end)) = step {
                return end;
            }
        }
    }

    fn send(&self, text: String) -> Result<(), Stop> {
        self.queue(Outgoing::Text(text.into()))
    }

    fn queue(&self, message: Outgoing) -> Result<(), Stop> {
        match self.tx.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Stop(End::TooSlow)),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Stop(End::WriterGone)),
        }
    }

    fn handle_text(&mut self, text: &str) -> Result<(), Stop> {
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return Err(Stop(End::InvalidJson));
        };
        match msg {
            Value::Array(items) => items.iter().try_for_each(|m| self.handle(m)),
            msg => self.handle(&msg),
        }
    }

    fn handle(&mut self, msg: &Value) -> Result<(), Stop> {
        let (id, kind, map) = match protocol::envelope(msg) {
            Ok(parts) => parts,
            Err(err) => return self.send(err.to_message()),
        };
        if id <= self.last_id {
            let err = ProtocolError::IdReuse {
                id,
                last_id: self.last_id,
            };
            return self.send(err.to_message());
        }
        let command = match protocol::command(id, kind, map) {
            Ok(command) => command,
            // As Home Assistant: an unknown command does not use up its id.
            Err(err @ ProtocolError::UnknownCommand { .. }) => return self.send(err.to_message()),
            Err(err) => {
                self.last_id = id;
                return self.send(err.to_message());
            }
        };
        self.last_id = id;
        self.execute(id, command)
    }

    fn execute(&mut self, id: u64, command: Command) -> Result<(), Stop> {
        match command {
            Command::Ping => self.send(protocol::pong(id)),
            Command::GetStates => {
                self.send(protocol::result_message(id, &ha_json::states(self.home)))
            }
            Command::GetConfig => {
                self.send(protocol::result_message(id, &(self.settings.config)()))
            }
            Command::GetServices => self.send(protocol::result_message(
                id,
                &ServiceListing::of(&self.home.services).websocket_result(),
            )),
            Command::SupportedFeatures => self.send(protocol::result_message(id, &Value::Null)),
            Command::SubscribeEvents { event_type } => self.subscribe(id, event_type),
            Command::UnsubscribeEvents { subscription } => self.unsubscribe(id, subscription),
            Command::CallService {
                domain,
                service,
                data,
                return_response,
            } => {
                self.start_call(id, domain, service, data, return_response);
                Ok(())
            }
        }
    }

    /// The bus filters one client subscription needs.
    fn filters_for(event_type: Option<&EventType>) -> Vec<EventFilter> {
        match event_type {
            None => vec![EventFilter::AllEvents],
            // State changes are published apart from generic events; a generic event fired
            // with the type `state_changed` is caught too.
            Some(t) if t.as_str() == STATE_CHANGED => {
                vec![
                    EventFilter::AllStateChanges,
                    EventFilter::EventType(t.clone()),
                ]
            }
            Some(t) => vec![EventFilter::EventType(t.clone())],
        }
    }

    fn subscribe(&mut self, id: u64, event_type: Option<EventType>) -> Result<(), Stop> {
        if self.subscription.is_none() {
            match self.home.bus.subscribe([], self.settings.queue_capacity) {
                Ok(sub) => self.subscription = Some(sub),
                Err(err) => {
                    return self.send(protocol::error_message(
                        &Value::from(id),
                        ErrorCode::UnknownError,
                        &err.to_string(),
                    ));
                }
            }
        }
        let Some(sub_id) = self.subscription.as_ref().map(Subscription::id) else {
            return Ok(());
        };
        for filter in Self::filters_for(event_type.as_ref()) {
            let refs = self.filter_refs.entry(filter.clone()).or_default();
            *refs += 1;
            if *refs == 1
                && let Err(err) = self.home.bus.add_filter(sub_id, filter)
            {
                tracing::warn!(%err, "websocket subscription lost its bus subscriber");
            }
        }
        self.subscriptions.insert(id, event_type);
        self.send(protocol::result_message(id, &Value::Null))
    }

    fn unsubscribe(&mut self, id: u64, subscription: u64) -> Result<(), Stop> {
        let Some(event_type) = self.subscriptions.remove(&subscription) else {
            return self.send(protocol::error_message(
                &Value::from(id),
                ErrorCode::NotFound,
                "Subscription not found.",
            ));
        };
        if let Some(sub_id) = self.subscription.as_ref().map(Subscription::id) {
            for filter in Self::filters_for(event_type.as_ref()) {
                if let Some(refs) = self.filter_refs.get_mut(&filter) {
                    *refs -= 1;
                    if *refs == 0 {
                        self.filter_refs.remove(&filter);
                        let _ = self.home.bus.remove_filter(sub_id, &filter);
                    }
                }
            }
        }
        self.send(protocol::result_message(id, &Value::Null))
    }

    fn start_call(
        &mut self,
        id: u64,
        domain: String,
        service: String,
        data: Map<String, Value>,
        return_response: bool,
    ) {
        let mut context = Context::new();
        context.origin = Some("websocket_api".into());
        let services = self.home.services.clone();
        let call_context = context.clone();
        let durability = self.durability.clone();
        self.calls.push(Box::pin(async move {
            let result = services
                .call(&domain, &service, Value::Object(data), call_context)
                .await;
            let saved = match &result {
                Ok(_) => durability.committed().await,
                Err(_) => Ok(()),
            };
            (id, context, return_response, result, saved)
        }));
    }

    fn finish_call(
        &mut self,
        (id, context, return_response, result, saved): CallOutcome,
    ) -> Result<(), Stop> {
        // The call's events are queued already: send them before its result.
        while let Some(event) = self.subscription.as_mut().and_then(Subscription::try_recv) {
            self.events.push(event);
        }
        self.forward_events()?;
        match result {
            Ok(_) if let Err(message) = saved => self.send(protocol::error_message(
                &Value::from(id),
                ErrorCode::UnknownError,
                &message,
            )),
            Ok(response) => {
                let mut result = serde_json::json!({ "context": context });
                if return_response {
                    result["response"] = response.response.unwrap_or(Value::Null);
                }
                self.send(protocol::result_message(id, &result))
            }
            Err(err) => {
                let failure = ServiceFailure::of(&err);
                let message = match (&err, failure) {
                    (ServiceError::UnknownService { name }, _) => {
                        format!("Service {name} not found.")
                    }
                    _ => error_chain(&err),
                };
                self.send(protocol::error_message(
                    &Value::from(id),
                    ErrorCode::from(failure),
                    &message,
                ))
            }
        }
    }

    /// Sends the events in `self.events` to every client subscription they match.
    fn forward_events(&mut self) -> Result<(), Stop> {
        if self.subscription.as_ref().is_some_and(|s| s.dropped() > 0) {
            return Err(Stop(End::TooSlow));
        }
        let events = std::mem::take(&mut self.events);
        let mut json = std::mem::take(&mut self.json);
        // Serialized once for every connection; only the envelope is this client's, added by
        // the writer.
        let subscriptions = &self.subscriptions;
        self.shared.get_all(
            &events,
            |event| {
                subscriptions
                    .values()
                    .any(|wanted| wants(wanted.as_ref(), event))
            },
            &mut json,
        );
        let mut result = Ok(());
        'events: for (event, raw) in events.iter().zip(&json) {
            let Some(raw) = raw else { continue };
            for (sub_id, wanted) in &self.subscriptions {
                if wants(wanted.as_ref(), event) {
                    result = self.queue(Outgoing::Event {
                        subscription: *sub_id,
                        json: Arc::clone(raw),
                    });
                    if result.is_err() {
                        break 'events;
                    }
                }
            }
        }
        self.events = events;
        self.events.clear();
        json.clear();
        self.json = json;
        result
    }
}

/// Whether a client subscription to `wanted` (`None`: every event) gets `event`.
fn wants(wanted: Option<&EventType>, event: &Event) -> bool {
    wanted.is_none_or(|t| t.as_str() == event.event_type())
}

/// Receives a batch of events, or waits forever without a subscription.
async fn recv_events(subscription: Option<&mut Subscription>, buffer: &mut Vec<Event>) -> usize {
    match subscription {
        Some(sub) => sub.recv_many(buffer, EVENT_BATCH).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn auth_messages_are_checked_like_home_assistant() {
        assert_eq!(
            auth_token(&json!({"type": "auth", "access_token": "t"})),
            Ok(Some("t"))
        );
        assert_eq!(
            auth_token(&json!({"type": "auth", "api_password": "p"})),
            Ok(None)
        );
        for (bad, text) in [
            (json!([1]), "expected a dictionary"),
            (
                json!({"access_token": "t"}),
                "required key not provided @ data['type']",
            ),
            (
                json!({"type": "login", "access_token": "t"}),
                "value must be one of ['auth'] @ data['type']",
            ),
            (
                json!({"type": "auth", "access_token": 5}),
                "expected str @ data['access_token']",
            ),
            (
                json!({"type": "auth", "access_token": "t", "x": 1}),
                "extra keys not allowed @ data['x']",
            ),
            (
                json!({"type": "auth", "access_token": "t", "api_password": "p"}),
                "two or more values in the same group of exclusion 'auth'",
            ),
        ] {
            assert_eq!(auth_token(&bad), Err(text.to_owned()), "{bad}");
        }
    }
}
