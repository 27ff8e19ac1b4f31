//! The services and events routes.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use homecore::{Context, EventType, STATE_CHANGED};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::JsonBody;
use super::{Api, ApiError, json};
use crate::error_chain::error_chain;
use crate::ha_json::{self, ServiceFailure, ServiceListing};

/// `GET /api/services`.
pub(super) async fn list(State(api): State<Api>) -> Response {
    json(
        StatusCode::OK,
        &ServiceListing::of(&api.home().services).rest_body(),
    )
}

/// The query of `POST /api/services/{domain}/{service}`.
#[derive(Debug, Deserialize)]
pub(super) struct CallQuery {
    /// Present (any value): answer `{changed_states, service_response}`, as Home Assistant
    /// does for `?return_response`.
    return_response: Option<String>,
}

/// `POST /api/services/{domain}/{service}`: the body is the service data; the answer is the
/// states the call changed.
pub(super) async fn call(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<CallQuery>, QueryRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Path((domain, service)) =
        path.map_err(|_| ApiError::bad_request("Invalid service specified."))?;
    let Query(query) = query.map_err(|err| ApiError::bad_request(err.body_text()))?;
    let data = match body {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => return Err(ApiError::bad_request("Data should be valid JSON.")),
    };
    let outcome = api
        .home()
        .services
        .call(&domain, &service, data, Context::new())
        .await;
    if outcome.is_ok() {
        api.durable().await?;
    }
    match outcome {
        Ok(response) if query.return_response.is_some() => Ok(json(
            StatusCode::OK,
            &json!({
                "changed_states": response.changed_states,
                "service_response": response.response,
            }),
        )),
        Ok(response) => Ok(json(StatusCode::OK, &response.changed_states)),
        Err(err) => {
            let failure = ServiceFailure::of(&err);
            let status = StatusCode::from_u16(failure.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match failure {
                ServiceFailure::NotFound => format!("Service {domain}.{service} not found."),
                _ => error_chain(&err),
            };
            if status.is_server_error() {
                tracing::warn!(service = %format!("{domain}.{service}"), error = %err, "service call failed");
            }
            Err(ApiError::new(status, message))
        }
    }
}

/// `GET /api/events`.
pub(super) async fn event_listing(State(api): State<Api>) -> Response {
    json(StatusCode::OK, &ha_json::event_listing(api.home()))
}

/// `POST /api/events/{event_type}`: the body is the event data (an object, or empty).
pub(super) async fn fire(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::bad_request("Invalid event type specified."))?;
    let event_type = EventType::new(&raw)
        .map_err(|err| ApiError::bad_request(format!("Invalid event type specified: {err}.")))?;
    if event_type.as_str() == STATE_CHANGED {
        return Err(ApiError::bad_request(
            "state_changed events come from state writes; use POST /api/states/<entity_id>.",
        ));
    }
    let data = match body {
        None | Some(Value::Null) => Value::Object(serde_json::Map::new()),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => return Err(ApiError::bad_request("Event data should be a JSON object")),
    };
    api.home()
        .bus
        .fire(event_type, data, Context::new())
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(json(
        StatusCode::OK,
        &json!({"message": format!("Event {raw} fired.")}),
    ))
}
