//! Home Assistant JSON shapes shared by the REST and WebSocket APIs.
//!
//! States and events already serialize in Home Assistant's shape (`homecore`'s `Serialize`
//! impls); this module adds the listings and bodies built from several of them:
//!
//! | shape | REST | WebSocket |
//! |---|---|---|
//! | [`states`] (sorted by entity id) | `GET /api/states` | `get_states` |
//! | [`ServiceListing`] | `GET /api/services` via [`ServiceListing::rest_body`] | `get_services` via [`ServiceListing::websocket_result`] |
//! | [`event_listing`] | `GET /api/events` | — |
//! | [`ConfigBody`] | `GET /api/config` | `get_config` |
//! | [`ErrorBody`] | every 4xx / 5xx body | — |
//! | [`ServiceFailure`] | `POST /api/services/…` status | `call_service` error code |

use std::collections::BTreeMap;
use std::sync::Arc;

use homecore::{Home, ServiceError, ServiceRegistry, State};
use homecore_plugins::{HostError, PluginError};
use serde::Serialize;
use serde_json::{Map, Value};

/// Every state, sorted by entity id (a stable order for clients and tests).
#[must_use]
pub fn states(home: &Home) -> Vec<Arc<State>> {
    let mut all = home.states.all();
    all.sort_unstable_by(|a, b| a.entity_id().as_str().cmp(b.entity_id().as_str()));
    all
}

/// The description of one service, as Home Assistant's `services.yaml` entries are served:
/// `{name, description, fields}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceDescription {
    /// Display name (empty when the provider gave none).
    pub name: String,
    /// What the service does (empty when the provider gave none).
    pub description: String,
    /// The service's fields by name (an object; empty when undescribed).
    pub fields: Map<String, Value>,
}

/// Every registered service, grouped by domain, both sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceListing {
    /// Domain → service → description.
    pub domains: BTreeMap<String, BTreeMap<String, ServiceDescription>>,
}

/// One entry of `GET /api/services`.
#[derive(Debug, Serialize)]
struct DomainServices<'a> {
    domain: &'a str,
    services: &'a BTreeMap<String, ServiceDescription>,
}

impl ServiceListing {
    /// The services registered in `services` (no descriptions yet: the registry has none).
    #[must_use]
    pub fn of(services: &ServiceRegistry) -> Self {
        let mut domains: BTreeMap<String, BTreeMap<String, ServiceDescription>> = BTreeMap::new();
        for name in services.names() {
            domains
                .entry(name.domain().to_owned())
                .or_default()
                .insert(name.service().to_owned(), ServiceDescription::default());
        }
        Self { domains }
    }

    /// The REST body: `[{"domain": "light", "services": {"turn_on": {...}}}, ...]`.
    #[must_use]
    pub fn rest_body(&self) -> Value {
        let list: Vec<DomainServices<'_>> = self
            .domains
            .iter()
            .map(|(domain, services)| DomainServices { domain, services })
            .collect();
        serde_json::to_value(list).expect("service descriptions serialize to JSON")
    }

    /// The WebSocket `get_services` result: `{"light": {"turn_on": {...}}, ...}`.
    #[must_use]
    pub fn websocket_result(&self) -> Value {
        serde_json::to_value(&self.domains).expect("service descriptions serialize to JSON")
    }
}

/// One entry of `GET /api/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventListener {
    /// The event type (`*` for listeners of every event, as Home Assistant's `MATCH_ALL`).
    pub event: String,
    /// How many subscriptions listen to it.
    pub listener_count: usize,
}

/// `GET /api/events`: the event types listened to and how many listeners each has.
#[must_use]
pub fn event_listing(home: &Home) -> Vec<EventListener> {
    home.bus
        .listener_counts()
        .into_iter()
        .map(|(event, listener_count)| EventListener {
            event,
            listener_count,
        })
        .collect()
}

/// Home Assistant's unit system object (`unit_system` in `GET /api/config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitSystem {
    /// Length unit (`km` / `mi`).
    pub length: String,
    /// Accumulated precipitation unit (`mm` / `in`).
    pub accumulated_precipitation: String,
    /// Area unit (`m²` / `ft²`).
    pub area: String,
    /// Mass unit (`g` / `lb`).
    pub mass: String,
    /// Pressure unit (`Pa` / `psi`).
    pub pressure: String,
    /// Temperature unit (`°C` / `°F`).
    pub temperature: String,
    /// Volume unit (`L` / `gal`).
    pub volume: String,
    /// Wind speed unit (`m/s` / `mph`).
    pub wind_speed: String,
}

impl UnitSystem {
    /// Home Assistant's metric system.
    #[must_use]
    pub fn metric() -> Self {
        Self {
            length: "km".into(),
            accumulated_precipitation: "mm".into(),
            area: "m²".into(),
            mass: "g".into(),
            pressure: "Pa".into(),
            temperature: "°C".into(),
            volume: "L".into(),
            wind_speed: "m/s".into(),
        }
    }

    /// Home Assistant's US customary system.
    #[must_use]
    pub fn us_customary() -> Self {
        Self {
            length: "mi".into(),
            accumulated_precipitation: "in".into(),
            area: "ft²".into(),
            mass: "lb".into(),
            pressure: "psi".into(),
            temperature: "°F".into(),
            volume: "gal".into(),
            wind_speed: "mph".into(),
        }
    }
}

/// The body of `GET /api/config` and the result of `get_config`, with Home Assistant's keys
/// (`hass.config.as_dict()`). Build it with [`ConfigBody::new`] and set what the operator
/// configured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigBody {
    /// Latitude of the home.
    pub latitude: f64,
    /// Longitude of the home.
    pub longitude: f64,
    /// Elevation in metres.
    pub elevation: i64,
    /// Radius of the home zone in metres.
    pub radius: i64,
    /// Units.
    pub unit_system: UnitSystem,
    /// The home's name.
    pub location_name: String,
    /// IANA time zone (`UTC`, `Europe/Amsterdam`).
    pub time_zone: String,
    /// Loaded integrations' domains, sorted.
    pub components: Vec<String>,
    /// Where the configuration lives (HomeCore: the data directory).
    pub config_dir: String,
    /// Directories integrations may read from.
    pub allowlist_external_dirs: Vec<String>,
    /// URLs integrations may fetch.
    pub allowlist_external_urls: Vec<String>,
    /// Server version.
    pub version: String,
    /// Where the location settings come from (`yaml`, `storage`, `default`).
    pub config_source: String,
    /// Whether the server runs in recovery mode.
    pub recovery_mode: bool,
    /// Whether the server runs in safe mode.
    pub safe_mode: bool,
    /// Core state (`RUNNING`, `STARTING`, `STOPPING`, …).
    pub state: String,
    /// URL the server is reached at from outside, if configured.
    pub external_url: Option<String>,
    /// URL the server is reached at on the local network, if configured.
    pub internal_url: Option<String>,
    /// ISO 4217 currency code.
    pub currency: String,
    /// ISO 3166 country code, if configured.
    pub country: Option<String>,
    /// Language code.
    pub language: String,
    /// Whether debug mode is on.
    pub debug: bool,
}

impl ConfigBody {
    /// Home Assistant's defaults for a fresh install, with our version and components.
    #[must_use]
    pub fn new(version: impl Into<String>, mut components: Vec<String>) -> Self {
        components.sort_unstable();
        components.dedup();
        Self {
            latitude: 0.0,
            longitude: 0.0,
            elevation: 0,
            radius: 100,
            unit_system: UnitSystem::metric(),
            location_name: "Home".into(),
            time_zone: "UTC".into(),
            components,
            config_dir: String::new(),
            allowlist_external_dirs: Vec::new(),
            allowlist_external_urls: Vec::new(),
            version: version.into(),
            config_source: "default".into(),
            recovery_mode: false,
            safe_mode: false,
            state: "RUNNING".into(),
            external_url: None,
            internal_url: None,
            currency: "EUR".into(),
            country: None,
            language: "en".into(),
            debug: false,
        }
    }

    /// As JSON.
    #[must_use]
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("the config body serializes to JSON")
    }
}

/// Home Assistant's REST error body: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub message: String,
}

impl ErrorBody {
    /// A body with `message`.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// As JSON.
    #[must_use]
    pub fn to_value(&self) -> Value {
        serde_json::json!({ "message": self.message })
    }
}

/// What kind of failure a service call ended in, mapped to Home Assistant's WebSocket error
/// codes (`websocket_api/const.py`) and REST status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceFailure {
    /// No such service (HA's `ServiceNotFound`): `not_found`, HTTP 400.
    NotFound,
    /// The call's data has the wrong shape (HA's `vol.Invalid`): `invalid_format`, HTTP 400.
    InvalidFormat,
    /// The data is well-formed but refused (HA's `ServiceValidationError`: a value out of
    /// range, an unknown entity): `service_validation_error`, HTTP 400.
    Validation,
    /// The service failed (HA's `HomeAssistantError`): `home_assistant_error`, HTTP 500.
    HomeAssistant,
    /// The provider crashed or its runtime failed: `unknown_error`, HTTP 500.
    Unknown,
}

impl ServiceFailure {
    /// Classifies a service error, looking into plugin errors for the first-party helpers'
    /// validation errors.
    #[must_use]
    pub fn of(err: &ServiceError) -> Self {
        match err {
            ServiceError::UnknownService { .. } | ServiceError::InvalidName { .. } => {
                Self::NotFound
            }
            ServiceError::DataNotAnObject { .. } => Self::InvalidFormat,
            ServiceError::InvalidData { .. } => Self::Validation,
            ServiceError::Failed { source, .. } => match source.downcast_ref::<PluginError>() {
                Some(plugin) => Self::of_plugin(plugin),
                None => Self::HomeAssistant,
            },
            _ => Self::HomeAssistant,
        }
    }

    fn of_plugin(err: &PluginError) -> Self {
        match err {
            PluginError::UnknownService { .. } => Self::NotFound,
            PluginError::Config { .. } => Self::Validation,
            PluginError::Host(HostError::Service(inner)) => Self::of(inner),
            PluginError::Other(inner) if is_validation_error(&**inner) => Self::Validation,
            PluginError::Panicked { .. } | PluginError::Runtime { .. } => Self::Unknown,
            _ => Self::HomeAssistant,
        }
    }

    /// Home Assistant's WebSocket error code.
    #[must_use]
    pub fn websocket_code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::InvalidFormat => "invalid_format",
            Self::Validation => "service_validation_error",
            Self::HomeAssistant => "home_assistant_error",
            Self::Unknown => "unknown_error",
        }
    }

    /// The REST status code: 400 for the caller's mistakes, 500 for the provider's failures.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            Self::NotFound | Self::InvalidFormat | Self::Validation => 400,
            Self::HomeAssistant | Self::Unknown => 500,
        }
    }
}

/// Whether a plugin's own error is one of the first-party helpers' validation errors.
fn is_validation_error(err: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    err.is::<homecore_integrations::input_boolean::InputBooleanError>()
        || err.is::<homecore_integrations::input_number::InputNumberError>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use homecore::{Attributes, Context, EventFilter, ServiceName};
    use serde_json::json;

    #[test]
    fn states_are_sorted_by_entity_id() {
        let home = Home::new();
        for id in ["switch.b", "light.z", "light.a"] {
            home.states
                .set(
                    &id.parse().expect("valid"),
                    "on",
                    Attributes::new(),
                    &Context::new(),
                )
                .expect("set");
        }
        let ids: Vec<_> = states(&home)
            .iter()
            .map(|s| s.entity_id().as_str().to_owned())
            .collect();
        assert_eq!(ids, ["light.a", "light.z", "switch.b"]);
    }

    struct Nop;
    #[async_trait::async_trait]
    impl homecore::ServiceHandler for Nop {
        async fn call(&self, _: homecore::ServiceCall) -> Result<Option<Value>, ServiceError> {
            Ok(None)
        }
    }

    #[test]
    fn services_list_in_both_shapes() {
        let home = Home::new();
        for (d, s) in [
            ("light", "turn_on"),
            ("light", "turn_off"),
            ("switch", "toggle"),
        ] {
            home.services
                .register(ServiceName::new(d, s).expect("valid"), Arc::new(Nop))
                .expect("registered");
        }
        let listing = ServiceListing::of(&home.services);
        let empty = json!({"name": "", "description": "", "fields": {}});
        assert_eq!(
            listing.rest_body(),
            json!([
                {"domain": "light", "services": {"turn_off": empty, "turn_on": empty}},
                {"domain": "switch", "services": {"toggle": empty}},
            ])
        );
        assert_eq!(
            listing.websocket_result(),
            json!({"light": {"turn_off": empty, "turn_on": empty}, "switch": {"toggle": empty}})
        );
    }

    #[test]
    fn event_listing_counts_listeners() {
        let home = Home::new();
        let _a = home
            .bus
            .subscribe([EventFilter::AllStateChanges], 4)
            .expect("ok");
        let _b = home
            .bus
            .subscribe(
                [EventFilter::EventType("doorbell".parse().expect("valid"))],
                4,
            )
            .expect("ok");
        let _c = home.bus.subscribe([EventFilter::AllEvents], 4).expect("ok");
        let listing = serde_json::to_value(event_listing(&home)).expect("serializes");
        assert_eq!(
            listing,
            json!([
                {"event": "*", "listener_count": 1},
                {"event": "doorbell", "listener_count": 1},
                {"event": "state_changed", "listener_count": 1},
            ])
        );
    }

    #[test]
    fn config_body_has_home_assistants_keys() {
        let body =
            ConfigBody::new("0.1.0", vec!["zeta".into(), "alpha".into(), "zeta".into()]).to_value();
        for key in [
            "latitude",
            "longitude",
            "elevation",
            "unit_system",
            "location_name",
            "time_zone",
            "components",
            "config_dir",
            "allowlist_external_dirs",
            "allowlist_external_urls",
            "version",
            "config_source",
            "recovery_mode",
            "state",
            "external_url",
            "internal_url",
            "currency",
            "country",
            "language",
            "safe_mode",
            "debug",
            "radius",
        ] {
            assert!(body.get(key).is_some(), "missing {key}");
        }
        assert_eq!(body["components"], json!(["alpha", "zeta"]));
        assert_eq!(body["unit_system"]["temperature"], "°C");
        assert_eq!(body["state"], "RUNNING");
        assert_eq!(
            ErrorBody::new("Entity not found.").to_value(),
            json!({"message": "Entity not found."})
        );
    }

    #[test]
    fn service_failures_map_to_home_assistant_codes() {
        let name = ServiceName::new("input_number", "set_value").expect("valid");
        let failed = |e: PluginError| ServiceError::Failed {
            name: name.clone(),
            source: Box::new(e),
        };
        let cases = [
            (
                ServiceError::UnknownService { name: "a.b".into() },
                "not_found",
                400,
            ),
            (
                ServiceError::DataNotAnObject {
                    name: name.clone(),
                    found: "array",
                },
                "invalid_format",
                400,
            ),
            (
                ServiceError::InvalidData {
                    name: name.clone(),
                    reason: "x".into(),
                },
                "service_validation_error",
                400,
            ),
            (
                failed(PluginError::other(
                    homecore_integrations::input_number::InputNumberError::NotANumber {
                        value: "\"warm\"".into(),
                    },
                )),
                "service_validation_error",
                400,
            ),
            (
                failed(PluginError::Panicked {
                    message: "boom".into(),
                }),
                "unknown_error",
                500,
            ),
            (
                failed(PluginError::Timeout { limit_ms: 5 }),
                "home_assistant_error",
                500,
            ),
            (
                failed(PluginError::UnknownService {
                    service: "a.b".into(),
                }),
                "not_found",
                400,
            ),
        ];
        for (err, code, status) in cases {
            let kind = ServiceFailure::of(&err);
            assert_eq!(kind.websocket_code(), code, "{err}");
            assert_eq!(kind.http_status(), status, "{err}");
        }
    }
}
