//! `GET /api/`, `GET /api/config`, and the states routes.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use homecore::{Attributes, Context, EntityId, StateError};
use homecore_plugins::PluginRegistry;
use serde_json::{Value, json};

use super::body::JsonBody;
use super::{Api, ApiError, VERSION, json, json_bytes};
use crate::ha_json::{self, ConfigBody};

/// `GET /api/`.
pub(super) async fn api_running() -> Response {
    json(StatusCode::OK, &json!({"message": "API running."}))
}

/// `GET /api/config`.
pub(super) async fn config(State(api): State<Api>) -> Response {
    json(
        StatusCode::OK,
        &config_body(api.registry(), &api.inner.config_dir),
    )
}

/// The `GET /api/config` (and WebSocket `get_config`) body: Home Assistant's defaults, our
/// version, the loaded plugins as components, the data directory as `config_dir`.
pub(super) fn config_body(registry: &PluginRegistry, config_dir: &std::path::Path) -> ConfigBody {
    let mut components: Vec<String> = registry.list().into_iter().map(|p| p.domain).collect();
    components.extend(["api", "websocket_api", "homecore"].map(String::from));
    let mut body = ConfigBody::new(VERSION, components);
    body.config_dir = config_dir.display().to_string();
    body
}

/// `GET /api/states`.
pub(super) async fn list(State(api): State<Api>) -> Response {
    json(StatusCode::OK, &ha_json::states(api.home()))
}

/// The entity id of a `/api/states/{entity_id}` route, or Home Assistant's 400.
fn entity_id(path: Result<Path<String>, PathRejection>) -> Result<EntityId, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::bad_request("Invalid entity ID specified."))?;
    EntityId::new(&id).map_err(|_| ApiError::bad_request("Invalid entity ID specified."))
}

/// `GET /api/states/{entity_id}`.
pub(super) async fn get_one(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = entity_id(path)?;
    let state = api
        .home()
        .states
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Entity not found."))?;
    Ok(json(StatusCode::OK, &*state))
}

/// `POST /api/states/{entity_id}`: `{"state": ..., "attributes": {...}}`. 201 with a
/// `Location` header for a new entity, 200 otherwise; the body is the state.
pub(super) async fn set(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let id = entity_id(path)?;
    let Some(Value::Object(mut body)) = body else {
        return Err(match body {
            None => ApiError::bad_request("No state specified."),
            Some(_) => ApiError::bad_request("Invalid JSON specified."),
        });
    };
    let state = match body.remove("state") {
        None | Some(Value::Null) => return Err(ApiError::bad_request("No state specified.")),
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "Invalid state specified: expected a string.",
            ));
        }
    };
    let attributes = Attributes::try_from(body.remove("attributes").unwrap_or(Value::Null))
        .map_err(|err| ApiError::bad_request(format!("Invalid attributes specified: {err}.")))?;
    match body.get("force_update") {
        None | Some(Value::Bool(_)) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "Invalid force_update specified: expected a boolean.",
            ));
        }
    }
    let states = &api.home().states;
    let is_new = states.get(&id).is_none();
    let outcome = states
        .set(&id, &state, attributes, &Context::new())
        .map_err(|err| match err {
            StateError::StateTooLong { .. } => {
                ApiError::bad_request(format!("Invalid state specified: {err}."))
            }
            other => ApiError::bad_request(other.to_string()),
        })?;
    let bytes = serde_json::to_vec(&*outcome.state)
        .map_err(|err| ApiError::internal(format!("cannot serialize the state: {err}")))?;
    api.durable().await?;
    if is_new {
        let mut response = json_bytes(StatusCode::CREATED, bytes);
        if let Ok(location) = HeaderValue::from_str(&format!("/api/states/{id}")) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    } else {
        Ok(json_bytes(StatusCode::OK, bytes))
    }
}

/// `DELETE /api/states/{entity_id}`.
pub(super) async fn remove(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = entity_id(path)?;
    match api.home().states.remove(&id, &Context::new()) {
        Ok(Some(_)) => {
            api.durable().await?;
            Ok(json(StatusCode::OK, &json!({"message": "Entity removed."})))
        }
        Ok(None) => Err(ApiError::not_found("Entity not found.")),
        Err(err) => Err(ApiError::bad_request(err.to_string())),
    }
}
