//! Request bodies: read up to the configured limit (413 beyond it), parsed as JSON (400 with
//! Home Assistant's message when malformed).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;

use super::ApiError;

/// A request body parsed as JSON; `None` when the body is empty.
pub(super) struct JsonBody(pub(super) Option<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body is larger than the server's limit.",
                ),
                status => ApiError::new(
                    status,
                    format!("Cannot read the request body: {}", rejection.body_text()),
                ),
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(|_| ApiError::bad_request("Invalid JSON specified."))
    }
}
