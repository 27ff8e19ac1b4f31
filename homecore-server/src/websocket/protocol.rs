//! Home Assistant's WebSocket messages: parsing commands, building replies.
//!
//! Mirrors `homeassistant/components/websocket_api` (`connection.py`, `commands.py`,
//! `messages.py`, `const.py`): an envelope with a positive integer `id` and a string `type`,
//! ids strictly increasing per connection, extra keys refused like voluptuous' default
//! `PREVENT_EXTRA`, and the same error codes and messages.

use std::fmt;

use homecore::EventType;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::ha_json::ServiceFailure;

/// Home Assistant's WebSocket error codes (`websocket_api/const.py`) that HomeCore sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `id_reuse`: an id not above the last one handled.
    IdReuse,
    /// `invalid_format`: a malformed message or field.
    InvalidFormat,
    /// `unknown_command`: no such command type.
    UnknownCommand,
    /// `not_found`: no such subscription or service.
    NotFound,
    /// `service_validation_error`: a service refused its input.
    ServiceValidationError,
    /// `home_assistant_error`: a service failed.
    HomeAssistantError,
    /// `unknown_error`: anything else.
    UnknownError,
}

impl ErrorCode {
    /// The code as sent.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IdReuse => "id_reuse",
            Self::InvalidFormat => "invalid_format",
            Self::UnknownCommand => "unknown_command",
            Self::NotFound => "not_found",
            Self::ServiceValidationError => "service_validation_error",
            Self::HomeAssistantError => "home_assistant_error",
            Self::UnknownError => "unknown_error",
        }
    }
}

impl From<ServiceFailure> for ErrorCode {
    fn from(failure: ServiceFailure) -> Self {
        match failure {
            ServiceFailure::NotFound => Self::NotFound,
            ServiceFailure::InvalidFormat => Self::InvalidFormat,
            ServiceFailure::Validation => Self::ServiceValidationError,
            ServiceFailure::HomeAssistant => Self::HomeAssistantError,
            ServiceFailure::Unknown => Self::UnknownError,
        }
    }
}

/// What is wrong with one field of a command, worded as voluptuous words it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldProblem {
    /// A key the command does not take.
    Extra,
    /// A required key is missing.
    Required,
    /// The value has the wrong JSON type; names the expected Python type (`str`, `dict`, …).
    Expected(&'static str),
    /// The value has the right type but is refused.
    Invalid(String),
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Extra => f.write_str("extra keys not allowed"),
            Self::Required => f.write_str("required key not provided"),
            Self::Expected(what) => write!(f, "expected {what}"),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

/// Why a command message was refused before it ran.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not an object, or no positive integer `id`, or no string `type`.
    #[error("Message incorrectly formatted.")]
    Malformed {
        /// The `id` as given (null when missing; 0 for a message that is not an object).
        id: Value,
    },
    /// The id is not above the last one handled.
    #[error("Identifier values have to increase.")]
    IdReuse {
        /// The id given.
        id: u64,
        /// The last id handled.
        last_id: u64,
    },
    /// No such command.
    #[error("Unknown command.")]
    UnknownCommand {
        /// The message id.
        id: u64,
        /// The `type` given (capped at 64 characters).
        command: String,
    },
    /// A field is missing, extra or of the wrong type.
    #[error("{problem} @ data['{field}']")]
    InvalidField {
        /// The message id.
        id: u64,
        /// The field (capped at 64 characters).
        field: String,
        /// What is wrong.
        problem: FieldProblem,
    },
}

impl ProtocolError {
    /// The error code sent.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed { .. } | Self::InvalidField { .. } => ErrorCode::InvalidFormat,
            Self::IdReuse { .. } => ErrorCode::IdReuse,
            Self::UnknownCommand { .. } => ErrorCode::UnknownCommand,
        }
    }

    /// The error message as sent.
    #[must_use]
    pub fn to_message(&self) -> String {
        let id = match self {
            Self::Malformed { id } => id.clone(),
            Self::IdReuse { id, .. }
            | Self::UnknownCommand { id, .. }
            | Self::InvalidField { id, .. } => Value::from(*id),
        };
        error_message(&id, self.code(), &self.to_string())
    }
}

/// A command, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    Ping,
    GetStates,
    GetConfig,
    GetServices,
    /// Accepted and acknowledged; HomeCore sends every message on its own.
    SupportedFeatures,
    SubscribeEvents {
        /// `None` for every event.
        event_type: Option<EventType>,
    },
    UnsubscribeEvents {
        subscription: u64,
    },
    CallService {
        domain: String,
        service: String,
        /// `service_data` with `target`'s keys merged in (target wins, as Home Assistant).
        data: Map<String, Value>,
        return_response: bool,
    },
}

fn capped(text: &str) -> String {
    homecore_abi::text::capped(text, 64).to_owned()
}

/// The `id` and `type` of a command message (Home Assistant's envelope check).
///
/// # Errors
/// [`ProtocolError::Malformed`].
pub(crate) fn envelope(msg: &Value) -> Result<(u64, &str, &Map<String, Value>), ProtocolError> {
    let Value::Object(map) = msg else {
        return Err(ProtocolError::Malformed { id: Value::from(0) });
    };
    let malformed = || ProtocolError::Malformed {
        id: map.get("id").cloned().unwrap_or(Value::Null),
    };
    let id = map
        .get("id")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0)
        .ok_or_else(malformed)?;
    let command = map
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(malformed)?;
    Ok((id, command, map))
}

/// Checks a command's fields: `allowed` besides `id` and `type`.
struct Fields<'a> {
    id: u64,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn invalid(&self, field: &str, problem: FieldProblem) -> ProtocolError {
        ProtocolError::InvalidField {
            id: self.id,
            field: capped(field),
            problem,
        }
    }

    fn only(&self, allowed: &[&str]) -> Result<(), ProtocolError> {
        match self
            .map
            .keys()
            .find(|k| !matches!(k.as_str(), "id" | "type") && !allowed.contains(&k.as_str()))
        {
            Some(extra) => Err(self.invalid(extra, FieldProblem::Extra)),
            None => Ok(()),
        }
    }

    fn str(&self, key: &str) -> Result<Option<&'a str>, ProtocolError> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.invalid(key, FieldProblem::Expected("str"))),
        }
    }

    fn required_str(&self, key: &str) -> Result<&'a str, ProtocolError> {
        self.str(key)?
            .ok_or_else(|| self.invalid(key, FieldProblem::Required))
    }

    fn object(&self, key: &str) -> Result<Option<&'a Map<String, Value>>, ProtocolError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(self.invalid(key, FieldProblem::Expected("dict"))),
        }
    }
}

/// Target keys `call_service` accepts (Home Assistant's `ENTITY_SERVICE_FIELDS`).
const TARGET_KEYS: [&str; 5] = ["entity_id", "device_id", "area_id", "floor_id", "label_id"];

/// Validates command `command` of message `id`.
///
/// # Errors
/// [`ProtocolError::UnknownCommand`] or [`ProtocolError::InvalidField`].
pub(crate) fn command(
    id: u64,
    command: &str,
    map: &Map<String, Value>,
) -> Result<Command, ProtocolError> {
    let f = Fields { id, map };
    let simple = |cmd: Command| f.only(&[]).map(|()| cmd);
    match command {
        "ping" => simple(Command::Ping),
        "get_states" => simple(Command::GetStates),
        "get_config" => simple(Command::GetConfig),
        "get_services" => simple(Command::GetServices),
        "supported_features" => {
            f.only(&["features"])?;
            f.object("features")?;
            Ok(Command::SupportedFeatures)
        }
        "subscribe_events" => {
            f.only(&["event_type"])?;
            let event_type =
                match f.str("event_type")? {
                    None => None,
                    Some(t) => Some(EventType::new(t).map_err(|e| {
                        f.invalid("event_type", FieldProblem::Invalid(e.to_string()))
                    })?),
                };
            Ok(Command::SubscribeEvents { event_type })
        }
        "unsubscribe_events" => {
            f.only(&["subscription"])?;
            let subscription = match map.get("subscription") {
                None => return Err(f.invalid("subscription", FieldProblem::Required)),
                // `cv.positive_int` coerces numeric strings, as here.
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                Some(v) => v.as_u64(),
            }
            .ok_or_else(|| {
                f.invalid(
                    "subscription",
                    FieldProblem::Expected("a non-negative integer"),
                )
            })?;
            Ok(Command::UnsubscribeEvents { subscription })
        }
        "call_service" => {
            f.only(&[
                "domain",
                "service",
                "service_data",
                "target",
                "return_response",
            ])?;
            let domain = f.required_str("domain")?.to_owned();
            let service = f.required_str("service")?.to_owned();
            let mut data = f.object("service_data")?.cloned().unwrap_or_default();
            if let Some(target) = f.object("target")? {
                for (key, value) in target {
                    let field = format!("target.{key}");
                    if !TARGET_KEYS.contains(&key.as_str()) {
                        return Err(f.invalid(&field, FieldProblem::Extra));
                    }
                    let ok = match value {
                        Value::String(_) => true,
                        Value::Array(items) => items.iter().all(Value::is_string),
                        _ => false,
                    };
                    if !ok {
                        return Err(f.invalid(&field, FieldProblem::Expected("str or list of str")));
                    }
                    data.insert(key.clone(), value.clone());
                }
            }
            let return_response = match map.get("return_response") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(f.invalid("return_response", FieldProblem::Expected("bool"))),
            };
            Ok(Command::CallService {
                domain,
                service,
                data,
                return_response,
            })
        }
        other => Err(ProtocolError::UnknownCommand {
            id,
            command: capped(other),
        }),
    }
}

/// `{"type": "auth_required", "ha_version": …}`.
pub(crate) fn auth_required(version: &str) -> String {
    json!({"type": "auth_required", "ha_version": version}).to_string()
}

/// `{"type": "auth_ok", "ha_version": …}`.
pub(crate) fn auth_ok(version: &str) -> String {
    json!({"type": "auth_ok", "ha_version": version}).to_string()
}

/// `{"type": "auth_invalid", "message": …}`.
pub(crate) fn auth_invalid(message: &str) -> String {
    json!({"type": "auth_invalid", "message": message}).to_string()
}

/// A successful result with `result` serialized.
pub(crate) fn result_message(id: u64, result: &impl Serialize) -> String {
    match serde_json::to_string(result) {
        Ok(raw) => result_raw(id, &raw),
        Err(err) => error_message(
            &Value::from(id),
            ErrorCode::UnknownError,
            &format!("result could not be serialized: {err}"),
        ),
    }
}

/// A successful result whose JSON is already written.
pub(crate) fn result_raw(id: u64, raw_json: &str) -> String {
    format!(r#"{{"id":{id},"type":"result","success":true,"result":{raw_json}}}"#)
}

/// A failed result.
pub(crate) fn error_message(id: &Value, code: ErrorCode, message: &str) -> String {
    json!({
        "id": id,
        "type": "result",
        "success": false,
        "error": {"code": code.as_str(), "message": message},
    })
    .to_string()
}

/// An event for subscription `id`, the event's JSON already written.
pub(crate) fn event_message(id: u64, event_json: &str) -> String {
    use std::fmt::Write as _;
    // The shared event text spliced into this subscription's envelope: one allocation.
    let mut message = String::with_capacity(event_json.len() + 48);
    write!(message, r#"{{"id":{id},"type":"event","event":"#)
        .expect("writing to a String cannot fail");
    message.push_str(event_json);
    message.push('}');
    message
}

/// `{"id": …, "type": "pong"}`.
pub(crate) fn pong(id: u64) -> String {
    format!(r#"{{"id":{id},"type":"pong"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(msg: Value) -> Result<Command, ProtocolError> {
        let (id, t, map) = envelope(&msg)?;
        command(id, t, map)
    }

    #[test]
    fn envelopes_follow_home_assistant() {
        for (bad, id) in [
            (json!([1]), json!(0)),
            (json!("x"), json!(0)),
            (json!({"type": "ping"}), Value::Null),
            (json!({"id": 0, "type": "ping"}), json!(0)),
            (json!({"id": -3, "type": "ping"}), json!(-3)),
            (json!({"id": 1.5, "type": "ping"}), json!(1.5)),
            (json!({"id": "1", "type": "ping"}), json!("1")),
            (json!({"id": 1}), json!(1)),
            (json!({"id": 1, "type": 5}), json!(1)),
        ] {
            let err = parse(bad.clone()).expect_err("malformed");
            assert_eq!(err, ProtocolError::Malformed { id: id.clone() }, "{bad}");
            let msg: Value = serde_json::from_str(&err.to_message()).expect("json");
            assert_eq!(msg["id"], id);
            assert_eq!(msg["error"]["code"], "invalid_format");
            assert_eq!(msg["error"]["message"], "Message incorrectly formatted.");
        }
    }

    #[test]
    fn simple_commands_refuse_extra_keys() {
        assert_eq!(parse(json!({"id": 1, "type": "ping"})), Ok(Command::Ping));
        let err = parse(json!({"id": 2, "type": "get_states", "x": 1})).expect_err("extra");
        assert_eq!(err.to_string(), "extra keys not allowed @ data['x']");
        assert_eq!(err.code(), ErrorCode::InvalidFormat);
        let err = parse(json!({"id": 3, "type": "reboot"})).expect_err("unknown");
        assert_eq!(err.code(), ErrorCode::UnknownCommand);
        assert_eq!(err.to_string(), "Unknown command.");
    }

    #[test]
    fn subscribe_and_unsubscribe_fields() {
        assert_eq!(
            parse(json!({"id": 1, "type": "subscribe_events"})),
            Ok(Command::SubscribeEvents { event_type: None })
        );
        assert!(matches!(
            parse(json!({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})),
            Ok(Command::SubscribeEvents { event_type: Some(t) }) if t.as_str() == "state_changed"
        ));
        let err =
            parse(json!({"id": 1, "type": "subscribe_events", "event_type": 3})).expect_err("type");
        assert_eq!(err.to_string(), "expected str @ data['event_type']");
        assert!(matches!(
            parse(json!({"id": 1, "type": "subscribe_events", "event_type": "a b"})),
            Err(ProtocolError::InvalidField {
                problem: FieldProblem::Invalid(_),
                ..
            })
        ));
        assert_eq!(
            parse(json!({"id": 1, "type": "unsubscribe_events", "subscription": "7"})),
            Ok(Command::UnsubscribeEvents { subscription: 7 })
        );
        for bad in [
            json!({}),
            json!({"subscription": -1}),
            json!({"subscription": "x"}),
        ] {
            let mut msg = bad.as_object().cloned().expect("object");
            msg.insert("id".into(), json!(1));
            msg.insert("type".into(), json!("unsubscribe_events"));
            assert!(
                matches!(
                    parse(Value::Object(msg)),
                    Err(ProtocolError::InvalidField { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn call_service_merges_target_and_checks_types() {
        let cmd = parse(json!({
            "id": 1, "type": "call_service", "domain": "light", "service": "turn_on",
            "service_data": {"brightness": 3, "entity_id": "light.a"},
            "target": {"entity_id": ["light.b"]},
        }))
        .expect("valid");
        assert_eq!(
            cmd,
            Command::CallService {
                domain: "light".into(),
                service: "turn_on".into(),
                data: json!({"brightness": 3, "entity_id": ["light.b"]})
                    .as_object()
                    .cloned()
                    .expect("object"),
                return_response: false,
            }
        );
        for (bad, text) in [
            (
                json!({"service": "x"}),
                "required key not provided @ data['domain']",
            ),
            (
                json!({"domain": 1, "service": "x"}),
                "expected str @ data['domain']",
            ),
            (
                json!({"domain": "a", "service": "x", "service_data": [1]}),
                "expected dict @ data['service_data']",
            ),
            (
                json!({"domain": "a", "service": "x", "target": {"entity_id": 3}}),
                "expected str or list of str @ data['target.entity_id']",
            ),
            (
                json!({"domain": "a", "service": "x", "target": {"room": "x"}}),
                "extra keys not allowed @ data['target.room']",
            ),
            (
                json!({"domain": "a", "service": "x", "return_response": "yes"}),
                "expected bool @ data['return_response']",
            ),
        ] {
            let mut msg = bad.as_object().cloned().expect("object");
            msg.insert("id".into(), json!(1));
            msg.insert("type".into(), json!("call_service"));
            let err = parse(Value::Object(msg)).expect_err("invalid");
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn replies_have_home_assistants_shape() {
        let r: Value = serde_json::from_str(&result_message(4, &json!([1]))).expect("json");
        assert_eq!(
            r,
            json!({"id": 4, "type": "result", "success": true, "result": [1]})
        );
        let p: Value = serde_json::from_str(&pong(5)).expect("json");
        assert_eq!(p, json!({"id": 5, "type": "pong"}));
        let e: Value = serde_json::from_str(&event_message(6, r#"{"a":1}"#)).expect("json");
        assert_eq!(e, json!({"id": 6, "type": "event", "event": {"a": 1}}));
        let a: Value = serde_json::from_str(&auth_invalid("no")).expect("json");
        assert_eq!(a, json!({"type": "auth_invalid", "message": "no"}));
    }
}
