//! Motion lights as a WASM plugin: HomeCore's reference plugin for the guest SDK.
//!
//! It behaves exactly like the native `motion_lights` integration (in
//! `homecore-integrations`), under the domain `motion_lights_wasm`:
//!
//! - When `binary_sensor.<room>_motion` turns `on`, `light.<room>` turns on (its attributes are
//!   kept) and `sensor.<room>_motion_activations` counts one more activation, with the
//!   attributes `friendly_name` (`"<room> motion activations"`, underscores as spaces),
//!   `state_class` (`total_increasing`) and `unit_of_measurement` (`activations`). The count
//!   is persisted in the plugin's storage under `activations:<room>`, so it survives reloads.
//! - When motion turns `off` (after `on`), the light turns off after `quiet_seconds` unless
//!   motion comes back first. The wait is a host timer (one token per room): motion `on`
//!   cancels it; when it fires the light turns off (a failure there is logged as a warning).
//! - Unavailable, unknown or removed sensors leave the light as it is.
//!
//! Configuration (JSON Schema in `manifest.json`):
//!
//! ```json
//! { "rooms": ["hall", "kitchen"], "quiet_seconds": 120 }
//! ```
//!
//! `rooms` is optional: without it every `binary_sensor.*_motion` is followed.
//!
//! Build the module with
//! `cargo build --release --target wasm32-unknown-unknown -p homecore-plugin-example`
//! (`target/wasm32-unknown-unknown/release/homecore_plugin_example.wasm`). On the build
//! machine the plugin runs against the SDK's fake host:
//!
//! ```
//! use homecore_plugin_example::MotionLights;
//! use homecore_plugin_sdk::testing::FakeHost;
//! use serde_json::json;
//! use std::time::Duration;
//!
//! let host = FakeHost::with_domain(homecore_plugin_example::DOMAIN);
//! host.setup::<MotionLights>(&json!({"quiet_seconds": 30}))?;
//! host.set_state("binary_sensor.hall_motion", "on", json!({}))?;
//! assert_eq!(host.state("light.hall").as_deref(), Some("on"));
//! host.set_state("binary_sensor.hall_motion", "off", json!({}))?;
//! host.advance(Duration::from_secs(30))?;
//! assert_eq!(host.state("light.hall").as_deref(), Some("off"));
//! # Ok::<(), homecore_plugin_sdk::testing::Failure>(())
//! ```
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use homecore_plugin_sdk::{self as sdk, Config, Error, Plugin, StateChangedEvent};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The plugin's manifest (`manifest.json` beside this crate's `Cargo.toml`).
pub const MANIFEST: &str = include_str!("../manifest.json");

/// The plugin's domain.
pub const DOMAIN: &str = "motion_lights_wasm";

/// Default quiet time before the light turns off, in seconds.
pub const DEFAULT_QUIET_SECONDS: f64 = 120.0;

/// The configuration, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct MotionLightsConfig {
    /// Rooms followed; `None` for every room with a motion sensor.
    pub rooms: Option<Vec<String>>,
    /// Quiet time before the light turns off.
    pub quiet: Duration,
}

/// Whether `domain.object_id` is an entity id the host accepts (`domain` is one of ours): the
/// host's own rule, `homecore_abi::check_entity_id`.
fn valid_entity_id(domain: &str, object_id: &str) -> bool {
    sdk::homecore_abi::check_entity_id(&format!("{domain}.{object_id}")).is_ok()
}

/// The configuration's members, unparsed: only the two known options are read, and the
/// first unknown one is remembered (the native plugin reports it before anything else).
#[derive(Default)]
struct Options<'a> {
    rooms: Option<&'a RawValue>,
    quiet_seconds: Option<&'a RawValue>,
    unknown: Option<String>,
}

impl<'de> Deserialize<'de> for Options<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OptionsVisitor;

        impl<'de> Visitor<'de> for OptionsVisitor {
            type Value = Options<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or null")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Options::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut options = Options::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value = map.next_value::<&'de RawValue>()?;
                    match &*key {
                        "rooms" => options.rooms = Some(value),
                        "quiet_seconds" => options.quiet_seconds = Some(value),
                        _ => {
                            options.unknown.get_or_insert_with(|| key.into_owned());
                        }
                    }
                }
                Ok(options)
            }
        }

        deserializer.deserialize_any(OptionsVisitor)
    }
}

impl MotionLightsConfig {
    /// Parses the configuration, naming the first bad field (as the native plugin does).
    ///
    /// Only what it needs is parsed: the options stay [`RawValue`]s until read.
    ///
    /// # Errors
    /// [`Error::Config`] with the field's path.
    pub fn parse(config: &RawValue) -> sdk::Result<Self> {
        let options: Options<'_> = sdk::from_raw(config)
            .map_err(|_| Error::config("", "configuration must be an object"))?;
        if let Some(key) = options.unknown {
            return Err(Error::config(key, "unknown option"));
        }
        let rooms = match options.rooms {
            None => None,
            Some(raw) => {
                let items: Vec<&RawValue> = sdk::from_raw(raw)
                    .map_err(|_| Error::config("rooms", "must be a list of room names"))?;
                let mut rooms = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let room = sdk::from_raw::<Cow<'_, str>>(item).ok().filter(|r| {
                        valid_entity_id("light", r)
                            && valid_entity_id("binary_sensor", &format!("{r}_motion"))
                    });
                    match room {
                        Some(room) => rooms.push(room.into_owned()),
                        None => {
                            return Err(Error::config(
                                format!("rooms[{i}]"),
                                "must be a room name of a-z, 0-9 and '_'",
                            ));
                        }
                    }
                }
                Some(rooms)
            }
        };
        let quiet = match options.quiet_seconds {
            None => DEFAULT_QUIET_SECONDS,
            Some(raw) => match sdk::from_raw::<f64>(raw) {
                Ok(s) if s > 0.0 && s.is_finite() && s <= 86_400.0 * 7.0 => s,
                _ => {
                    return Err(Error::config(
                        "quiet_seconds",
                        "must be a number of seconds above 0 and at most a week",
                    ));
                }
            },
        };
        Ok(Self {
            rooms,
            quiet: Duration::from_secs_f64(quiet),
        })
    }
}

/// A room the plugin has seen; its index in [`MotionLights::rooms`] is its off-timer's token.
#[derive(Debug)]
struct Room {
    name: String,
    timer_pending: bool,
}

/// The plugin.
#[derive(Debug, Default)]
pub struct MotionLights {
    config: Option<MotionLightsConfig>,
    /// Rooms seen so far (the configured ones from the start).
    rooms: Vec<Room>,
}

/// The activation sensor's attributes, in the native plugin's order.
#[derive(Serialize)]
struct SensorAttributes<'a> {
    friendly_name: String,
    state_class: &'a str,
    unit_of_measurement: &'a str,
}

impl MotionLights {
    /// The room of a motion sensor this plugin follows.
    fn room_of<'a>(&self, entity_id: &'a str) -> Option<&'a str> {
        let object_id = entity_id.strip_prefix("binary_sensor.")?;
        let room = object_id.strip_suffix("_motion")?;
        let config = self.config.as_ref()?;
        match &config.rooms {
            Some(rooms) if !rooms.iter().any(|r| r == room) => None,
            _ => Some(room),
        }
    }

    /// The room's timer token, registering the room when it is new.
    fn token(&mut self, room: &str) -> u64 {
        let index = match self.rooms.iter().position(|r| r.name == room) {
            Some(index) => index,
            None => {
                self.rooms.push(Room {
                    name: room.to_owned(),
                    timer_pending: false,
                });
                self.rooms.len() - 1
            }
        };
        u64::try_from(index).expect("a room index fits u64")
    }

    fn room_mut(&mut self, token: u64) -> Option<&mut Room> {
        self.rooms.get_mut(usize::try_from(token).ok()?)
    }

    fn cancel_timer(&mut self, token: u64) -> sdk::Result<()> {
        if let Some(room) = self.room_mut(token)
            && room.timer_pending
        {
            room.timer_pending = false;
            sdk::cancel_timer(token)?;
        }
        Ok(())
    }

    /// Switches a light, keeping its attributes (brightness, colour): they are passed back to
    /// the host as they came, never parsed.
    fn turn_light(light: &str, on_off: &str) -> sdk::Result<()> {
        sdk::with_state(light, |state| {
            sdk::set_state(light, on_off, state.map(|s| s.attributes))
        })??;
        Ok(())
    }

    fn count_activation(room: &str) -> sdk::Result<u64> {
        let key = format!("activations:{room}");
        let previous = sdk::kv_get(&key)?
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0);
        let count = previous.saturating_add(1);
        let count_text = count.to_string();
        sdk::kv_set(&key, count_text.as_bytes())?;
        let attributes = SensorAttributes {
            friendly_name: format!("{} motion activations", room.replace('_', " ")),
            state_class: "total_increasing",
            unit_of_measurement: "activations",
        };
        sdk::set_state_with(
            &format!("sensor.{room}_motion_activations"),
            &count_text,
            &attributes,
        )?;
        Ok(count)
    }
}

impl Plugin for MotionLights {
    fn setup(&mut self, config: &Config<'_>) -> sdk::Result<()> {
        let config = MotionLightsConfig::parse(config.raw())?;
        match &config.rooms {
            Some(rooms) => {
                for room in rooms {
                    sdk::subscribe(&format!("binary_sensor.{room}_motion"))?;
                    self.token(room);
                }
            }
            None => sdk::subscribe("binary_sensor.*_motion")?,
        }
        sdk::info!(
            "following {} with a quiet time of {:?}",
            config
                .rooms
                .as_ref()
                .map_or_else(|| "every room".to_owned(), |r| r.join(", ")),
            config.quiet
        );
        self.config = Some(config);
        Ok(())
    }

    fn teardown(&mut self) -> sdk::Result<()> {
        let mut first_error = None;
        for token in 0..self.rooms.len() {
            let token = u64::try_from(token).expect("a room index fits u64");
            if let Err(err) = self.cancel_timer(token) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> sdk::Result<()> {
        let Some(room) = self.room_of(&event.entity_id) else {
            return Ok(());
        };
        let was_on = event.old_state.as_ref().is_some_and(|s| s.state == "on");
        let now = event.new_state.as_ref().map(|s| &*s.state);
        match now {
            Some("on") => {
                let token = self.token(room);
                self.cancel_timer(token)?;
                if !was_on {
                    Self::turn_light(&format!("light.{room}"), "on")?;
                    Self::count_activation(room)?;
                }
            }
            Some("off") if was_on => {
                let token = self.token(room);
                let quiet = self
                    .config
                    .as_ref()
                    .map_or(Duration::from_secs_f64(DEFAULT_QUIET_SECONDS), |c| c.quiet);
                // Starting a pending token restarts it: the native plugin's cancel + spawn.
                sdk::start_timer(token, quiet)?;
                if let Some(room) = self.room_mut(token) {
                    room.timer_pending = true;
                }
            }
            // Unavailable, unknown or removed sensors leave the light as it is.
            _ => {}
        }
        Ok(())
    }

    fn on_timer(&mut self, token: u64) -> sdk::Result<()> {
        let Some(room) = self.room_mut(token) else {
            return Ok(());
        };
        room.timer_pending = false;
        let light = format!("light.{}", room.name);
        if let Err(err) = Self::turn_light(&light, "off") {
            sdk::warn!("could not turn {light} off: {err}");
        }
        Ok(())
    }
}

sdk::export_plugin!(MotionLights);

// The fake host exists on the build machine only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use homecore_plugin_sdk::testing::FakeHost;
    use homecore_plugin_sdk::{Level, Status};
    use serde_json::{Value, json};

    use super::*;

    fn start(config: Value) -> FakeHost {
        let host = FakeHost::with_domain(DOMAIN);
        host.setup::<MotionLights>(&config)
            .expect("motion_lights_wasm starts");
        host
    }

    fn motion(host: &FakeHost, room: &str, state: &str) {
        host.set_state(&format!("binary_sensor.{room}_motion"), state, json!({}))
            .expect("event handled");
    }

    #[test]
    fn embedded_manifest_names_the_module_and_domain() {
        let manifest: Value = serde_json::from_str(MANIFEST).expect("valid JSON");
        assert_eq!(manifest["domain"], DOMAIN);
        assert_eq!(manifest["homecore"]["runtime"], "wasm");
        assert_eq!(
            manifest["homecore"]["module"],
            "homecore_plugin_example.wasm"
        );
        assert_eq!(manifest["homecore"]["limits"]["memory_bytes"], 16 << 20);
    }

    fn parse(config: &Value) -> sdk::Result<MotionLightsConfig> {
        MotionLightsConfig::parse(&serde_json::value::to_raw_value(config).expect("serializes"))
    }

    #[test]
    fn config_defaults_and_errors() {
        let c = parse(&Value::Null).expect("defaults");
        assert_eq!(c.quiet, Duration::from_secs(120));
        assert_eq!(c.rooms, None);
        let c = parse(&json!({"rooms": ["hall"], "quiet_seconds": 0.5})).expect("valid");
        assert_eq!(c.rooms, Some(vec!["hall".to_owned()]));
        assert_eq!(c.quiet, Duration::from_millis(500));
        for (bad, path) in [
            (json!({"quiet_seconds": 0}), "quiet_seconds"),
            (json!({"quiet_seconds": "1"}), "quiet_seconds"),
            (json!({"quiet_seconds": 86_400 * 8}), "quiet_seconds"),
            (json!({"rooms": ["Hall"]}), "rooms[0]"),
            (json!({"rooms": ["hall", "a__b"]}), "rooms[1]"),
            (json!({"rooms": ["_hall"]}), "rooms[0]"),
            (json!({"rooms": ["hall_"]}), "rooms[0]"),
            (json!({"rooms": ["x".repeat(240)]}), "rooms[0]"),
            (json!({"rooms": "hall"}), "rooms"),
            (json!({"colour": 1}), "colour"),
            (
                json!({"quiet_seconds": 5, "rooms": 1, "colour": 1}),
                "colour",
            ),
            (json!({"rooms": [1]}), "rooms[0]"),
            (json!({"quiet_seconds": null}), "quiet_seconds"),
            (json!([1]), ""),
            (json!("x"), ""),
        ] {
            match parse(&bad) {
                Err(Error::Config { path: p, .. }) => assert_eq!(p, path, "{bad}"),
                other => panic!("{bad}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn motion_turns_the_light_on_and_quiet_turns_it_off() {
        let host = start(json!({"quiet_seconds": 30}));
        assert_eq!(host.subscriptions(), ["binary_sensor.*_motion"]);
        assert_eq!(
            host.logs(),
            [(
                Level::Info,
                "following every room with a quiet time of 30s".to_owned()
            )]
        );
        motion(&host, "hall", "on");
        assert_eq!(host.state("light.hall").as_deref(), Some("on"));
        assert_eq!(
            host.state("sensor.hall_motion_activations").as_deref(),
            Some("1")
        );
        assert_eq!(
            host.attributes("sensor.hall_motion_activations"),
            Some(json!({
                "friendly_name": "hall motion activations",
                "state_class": "total_increasing",
                "unit_of_measurement": "activations",
            }))
        );
        assert_eq!(host.kv("activations:hall").as_deref(), Some(&b"1"[..]));

        motion(&host, "hall", "off");
        assert_eq!(host.timers(), [(0, Duration::from_secs(30))]);
        host.advance(Duration::from_secs(29)).expect("no timer yet");
        assert_eq!(
            host.state("light.hall").as_deref(),
            Some("on"),
            "still within the quiet time"
        );
        host.advance(Duration::from_secs(2)).expect("timer handled");
        assert_eq!(host.state("light.hall").as_deref(), Some("off"));
        assert_eq!(host.origin("light.hall").as_deref(), Some(DOMAIN));
        assert!(host.timers().is_empty());
    }

    #[test]
    fn motion_returning_cancels_the_off_timer_and_counts_again() {
        let host = start(json!({"quiet_seconds": 10}));
        motion(&host, "kitchen", "on");
        motion(&host, "kitchen", "off");
        host.advance(Duration::from_secs(5)).expect("no timer yet");
        motion(&host, "kitchen", "on");
        assert!(host.timers().is_empty(), "motion cancels the off timer");
        host.advance(Duration::from_secs(20)).expect("nothing due");
        assert_eq!(
            host.state("light.kitchen").as_deref(),
            Some("on"),
            "the old timer was cancelled"
        );
        assert_eq!(
            host.state("sensor.kitchen_motion_activations").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn repeated_on_does_not_count_again() {
        let host = start(json!({}));
        motion(&host, "hall", "on");
        host.set_state("binary_sensor.hall_motion", "on", json!({"battery": 90}))
            .expect("handled");
        assert_eq!(
            host.state("sensor.hall_motion_activations").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn light_attributes_are_kept_and_other_rooms_ignored() {
        let host = start(json!({"rooms": ["hall"], "quiet_seconds": 1}));
        assert_eq!(host.subscriptions(), ["binary_sensor.hall_motion"]);
        host.put_state(
            "light.hall",
            "off",
            json!({"brightness": 77, "color": [1, 2, 3]}),
        );
        motion(&host, "hall", "on");
        assert_eq!(host.state("light.hall").as_deref(), Some("on"));
        assert_eq!(
            host.attributes("light.hall"),
            Some(json!({"brightness": 77, "color": [1, 2, 3]}))
        );
        motion(&host, "hall", "off");
        host.advance(Duration::from_secs(1)).expect("timer handled");
        assert_eq!(
            host.attributes("light.hall"),
            Some(json!({"brightness": 77, "color": [1, 2, 3]}))
        );

        // Even if the host delivered another room's event, it is ignored.
        let garage = json!({
            "entity_id": "binary_sensor.garage_motion",
            "old_state": null,
            "new_state": {
                "entity_id": "binary_sensor.garage_motion", "state": "on", "attributes": {},
                "last_changed": "t", "last_updated": "t", "context": {"id": "c"}
            },
            "context": {"id": "c"}
        });
        host.deliver_state_changed(garage.to_string().as_bytes())
            .expect("ignored");
        assert_eq!(host.state("light.garage"), None, "garage is not configured");
    }

    #[test]
    fn unavailable_sensors_leave_the_light_alone() {
        let host = start(json!({"quiet_seconds": 1}));
        motion(&host, "hall", "on");
        motion(&host, "hall", "unavailable");
        host.remove_state("binary_sensor.hall_motion")
            .expect("handled");
        host.advance(Duration::from_secs(60)).expect("nothing due");
        assert_eq!(host.state("light.hall").as_deref(), Some("on"));
        assert!(host.timers().is_empty());
    }

    #[test]
    fn activation_counts_survive_a_reload() {
        let host = start(json!({"quiet_seconds": 1}));
        motion(&host, "hall", "on");
        motion(&host, "hall", "off");
        host.teardown().expect("tears down");
        assert!(host.timers().is_empty(), "teardown cancels pending timers");
        host.setup::<MotionLights>(&json!({"quiet_seconds": 1}))
            .expect("starts again");
        motion(&host, "hall", "on");
        assert_eq!(
            host.state("sensor.hall_motion_activations").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn bad_configuration_fails_setup_with_the_path() {
        let host = FakeHost::with_domain(DOMAIN);
        let err = host
            .setup::<MotionLights>(&json!({"quiet_seconds": -1}))
            .expect_err("invalid config");
        assert_eq!(err.status, Some(Status::GuestError));
        let message = err.message.expect("a message");
        assert!(message.contains("quiet_seconds"), "{message}");
        assert!(host.subscriptions().is_empty());
    }

    #[test]
    fn a_refused_write_fails_the_event_and_a_failed_timer_logs_a_warning() {
        let host = start(json!({"quiet_seconds": 1}));
        motion(&host, "hall", "on");
        motion(&host, "hall", "off");
        host.deny("state_set");
        host.advance(Duration::from_secs(1))
            .expect("a timer failure is only logged");
        let warning = host.logs().pop().expect("a warning");
        assert_eq!(warning.0, Level::Warn);
        assert!(
            warning.1.starts_with("could not turn light.hall off:"),
            "{}",
            warning.1
        );
        let err = host
            .set_state("binary_sensor.hall_motion", "on", json!({}))
            .expect_err("the light write is refused");
        assert_eq!(err.status, Some(Status::GuestError));
        assert!(
            err.message
                .expect("a message")
                .contains("permission denied")
        );
    }

    #[test]
    fn counts_stay_exact_past_ten_thousand_events() {
        // Regression guard: the SDK's published alpha corrupted its memory after ~10,000
        // events. Here that exercises the dispatch path; the wasm allocator itself is driven by
        // homecore-tests' `wasm_example` against the real module.
        let host = start(json!({"rooms": ["hall", "kitchen"], "quiet_seconds": 1}));
        for _ in 0..3_000 {
            for room in ["hall", "kitchen"] {
                motion(&host, room, "on");
                motion(&host, room, "off");
            }
        }
        assert_eq!(
            host.state("sensor.hall_motion_activations").as_deref(),
            Some("3000")
        );
        assert_eq!(
            host.state("sensor.kitchen_motion_activations").as_deref(),
            Some("3000")
        );
        assert_eq!(host.timers().len(), 2);
    }
}
