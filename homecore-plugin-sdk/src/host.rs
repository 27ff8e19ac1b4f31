//! Safe host calls: every import of ABI v1 as a Rust function.

use std::cell::RefCell;
use std::time::Duration;

use homecore_abi::v1::{self, Status, log_level};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::state::{ServiceAnswer, StateAnswer};
use crate::{Error, OwnedState, RawJson, Result, ServiceResult, State, ffi};

/// Bytes of the buffer the SDK offers the host for a call's result. A larger result (a state
/// with big attributes, a big stored value) is fetched with the `take_result` import into a
/// buffer of its exact size.
pub const SCRATCH_CAPACITY: usize = 4096;

thread_local! {
    /// The result buffer offered to the host (see [`SCRATCH_CAPACITY`]).
    static SCRATCH: RefCell<[u8; SCRATCH_CAPACITY]> = const { RefCell::new([0; SCRATCH_CAPACITY]) };
    /// A reusable buffer for arguments the SDK serializes (attributes, service requests).
    static ARGS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

impl Level {
    /// The ABI's code for the level.
    #[must_use]
    pub const fn code(self) -> i32 {
        match self {
            Self::Debug => log_level::DEBUG,
            Self::Info => log_level::INFO,
            Self::Warn => log_level::WARN,
            Self::Error => log_level::ERROR,
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub(crate) fn capped(text: &str, max: usize) -> &str {
    homecore_abi::text::capped(text, max)
}

/// Writes a line to the host's log, under the plugin's name. Lines longer than
/// [`MAX_LOG_LINE`](homecore_abi::v1::MAX_LOG_LINE) bytes are cut (here, before the copy).
///
/// Logging is best effort: a refusal (quota exceeded) is ignored. See also the
/// [`debug!`](crate::debug), [`info!`](crate::info), [`warn!`](crate::warn) and
/// [`error!`](crate::error) macros.
pub fn log(level: Level, message: &str) {
    let _ = ffi::log(level.code(), capped(message, v1::MAX_LOG_LINE).as_bytes());
}

/// Hands `message` to the host as the current export call's error, cut to
/// [`MAX_LOG_LINE`](homecore_abi::v1::MAX_LOG_LINE) bytes.
pub(crate) fn report_error(message: &str) {
    let _ = ffi::error(capped(message, v1::MAX_LOG_LINE).as_bytes());
}

/// Success (`Ok(code)`) or the error for a negative code.
fn check(call: &'static str, code: i32) -> Result<i32> {
    if code < 0 {
        Err(Error::from_code(call, code.into()))
    } else {
        Ok(code)
    }
}

/// For imports answering 1 (yes) or 0 (no).
fn check_bool(call: &'static str, code: i32) -> Result<bool> {
    match check(call, code)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Error::UnexpectedCode {
            call,
            code: other.into(),
        }),
    }
}

/// Runs an import that answers a result through `(out_ptr, out_cap)`, then `parse` on the
/// result's bytes; `Ok(None)` when the host answers `NotFound`.
///
/// The result lands in the scratch buffer when it fits; otherwise (the import answered a length
/// above the capacity) it is fetched with `take_result` into a buffer of exactly that length.
fn with_result<R>(
    call: &'static str,
    import: impl FnOnce(&mut [u8]) -> i32,
    parse: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<Option<R>> {
    let run = |scratch: &mut [u8]| -> Result<Option<R>> {
        let code = import(scratch);
        if code == Status::NotFound.code() {
            return Ok(None);
        }
        let len = usize::try_from(check(call, code)?).expect("a non-negative i32 fits usize");
        if let Some(bytes) = scratch.get(..len) {
            return parse(bytes).map(Some);
        }
        let mut large = vec![0; len];
        let taken = check("take_result", ffi::take_result(&mut large))?;
        if usize::try_from(taken).ok() != Some(len) {
            return Err(Error::UnexpectedCode {
                call: "take_result",
                code: taken.into(),
            });
        }
        parse(&large).map(Some)
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => run(&mut scratch[..]),
        // Only when called from inside `with_state`'s closure: use a buffer of its own.
        Err(_) => run(&mut vec![0; SCRATCH_CAPACITY]),
    })
}

/// Runs `f` with a cleared, reusable buffer for serialized arguments.
fn with_args<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    ARGS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let result = f(&mut buf);
            // Don't keep a huge buffer alive after a one-off large write.
            if buf.capacity() > v1::MAX_PAYLOAD {
                *buf = Vec::new();
            }
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

fn parse_json<'a, T: serde::Deserialize<'a>>(call: &'static str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::BadResponse { call, source })
}

/// An entity's current state, owned; `None` when the entity does not exist.
///
/// ```no_run
/// # fn main() -> homecore_plugin_sdk::Result<()> {
/// if let Some(light) = homecore_plugin_sdk::get_state("light.hall")? {
///     let brightness: Option<u8> = light.attribute("brightness")?;
///     homecore_plugin_sdk::info!("hall is {} at {brightness:?}", light.state);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Host`] with `Denied` without read permission for the entity, `InvalidEntityId`, …
pub fn get_state(entity_id: &str) -> Result<Option<OwnedState>> {
    with_result(
        "state_get",
        |out| ffi::state_get(entity_id.as_bytes(), out),
        |bytes| parse_json::<StateAnswer<'_>>("state_get", bytes).map(OwnedState::from),
    )
}

/// Runs `f` on an entity's current state borrowed from the host's answer, without copying it
/// (`None` when the entity does not exist). Host calls made inside `f` work but use a buffer of
/// their own.
///
/// # Errors
/// As [`get_state`].
pub fn with_state<R>(entity_id: &str, f: impl FnOnce(Option<&State<'_>>) -> R) -> Result<R> {
    let mut f = Some(f);
    let found = with_result(
        "state_get",
        |out| ffi::state_get(entity_id.as_bytes(), out),
        |bytes| {
            let state = parse_json::<State<'_>>("state_get", bytes)?;
            let f = f.take().expect("parse runs at most once");
            Ok(f(Some(&state)))
        },
    )?;
    match found {
        Some(result) => Ok(result),
        None => Ok(f.take().expect("f is taken only when a state was found")(
            None,
        )),
    }
}

/// Writes an entity's state with attributes given as JSON text (`None`: no attributes). Pass
/// another state's `attributes` (or an [`OwnedState::raw_attributes`]) to keep them unchanged:
/// they go to the host as they are, unparsed (the host checks them). Answers whether anything
/// changed.
///
/// # Errors
/// [`Error::Host`] with `Denied` without write permission, `InvalidEntityId`, `InvalidState`
/// (over 255 characters), `BadJson` (attributes that are not JSON), `NotAnObject`,
/// `LoopGuard`, …; [`Error::Json`] for empty attribute text (the ABI would read it as "no
/// attributes").
pub fn set_state(entity_id: &str, state: &str, attributes: Option<RawJson<'_>>) -> Result<bool> {
    if let Some(raw) = attributes.filter(|raw| raw.get().is_empty()) {
        raw.checked()?;
    }
    let attrs = attributes.map_or(&[][..], |raw| raw.get().as_bytes());
    check_bool(
        "state_set",
        ffi::state_set(entity_id.as_bytes(), state.as_bytes(), attrs),
    )
}

/// [`set_state`] with attributes serialized from any [`Serialize`] value that is an object
/// (a struct, a map, a `serde_json::Value::Object`).
///
/// ```no_run
/// # fn main() -> homecore_plugin_sdk::Result<()> {
/// #[derive(serde::Serialize)]
/// struct Attributes<'a> { friendly_name: &'a str, unit_of_measurement: &'a str }
/// homecore_plugin_sdk::set_state_with(
///     "sensor.hall_count",
///     "3",
///     &Attributes { friendly_name: "hall count", unit_of_measurement: "times" },
/// )?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Json`] when `attributes` cannot be serialized, else as [`set_state`].
pub fn set_state_with<A: Serialize + ?Sized>(
    entity_id: &str,
    state: &str,
    attributes: &A,
) -> Result<bool> {
    with_args(|buf| {
        serde_json::to_writer(&mut *buf, attributes)?;
        check_bool(
            "state_set",
            ffi::state_set(entity_id.as_bytes(), state.as_bytes(), buf),
        )
    })
}

/// Removes an entity's state; answers whether it existed.
///
/// # Errors
/// [`Error::Host`] with `Denied` without write permission, `InvalidEntityId`, …
pub fn remove_state(entity_id: &str) -> Result<bool> {
    check_bool("state_remove", ffi::state_remove(entity_id.as_bytes()))
}

/// Subscribes to state changes of an entity id or glob (`binary_sensor.*_motion`), delivered
/// to [`Plugin::on_state_changed`](crate::Plugin::on_state_changed).
///
/// # Errors
/// [`Error::Host`] with `Denied` when the glob reaches beyond the read permission,
/// `InvalidName`, …
pub fn subscribe(pattern: &str) -> Result<()> {
    check("subscribe", ffi::subscribe(pattern.as_bytes())).map(drop)
}

/// Subscribes to generic events of a type, delivered to
/// [`Plugin::on_event`](crate::Plugin::on_event).
///
/// # Errors
/// [`Error::Host`] with `InvalidName`, `Denied`, …
pub fn subscribe_event(event_type: &str) -> Result<()> {
    check(
        "subscribe_event",
        ffi::subscribe_event(event_type.as_bytes()),
    )
    .map(drop)
}

/// A `service_call` request; `data` is left out (meaning `{}`) when `None`.
#[derive(Serialize)]
struct Request<'a, D: ?Sized> {
    domain: &'a str,
    service: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a D>,
}

fn service_call_request<D: Serialize + ?Sized>(
    domain: &str,
    service: &str,
    data: Option<&D>,
) -> Result<ServiceResult> {
    let result = with_args(|buf| {
        serde_json::to_writer(
            &mut *buf,
            &Request {
                domain,
                service,
                data,
            },
        )?;
        with_result(
            "service_call",
            |out| ffi::service_call(buf, out),
            |bytes| parse_json::<ServiceAnswer<'_>>("service_call", bytes).map(ServiceResult::from),
        )
    })?;
    // A service call never answers NotFound for "no result"; treat it as the status it is.
    result.ok_or(Error::Host {
        call: "service_call",
        status: Status::NotFound,
    })
}

/// Calls a service (`light.turn_on`) with data given as JSON text (`None`: `{}`), and waits for
/// its result: the states it changed and its response data.
///
/// # Errors
/// [`Error::Host`] with `Denied`, `UnknownService`, `ServiceFailed`, `NotAnObject`, …
pub fn call_service(domain: &str, service: &str, data: Option<&RawValue>) -> Result<ServiceResult> {
    service_call_request(domain, service, data)
}

/// [`call_service`] with data serialized from any [`Serialize`] value that is an object.
///
/// # Errors
/// [`Error::Json`] when `data` cannot be serialized, else as [`call_service`].
pub fn call_service_with<D: Serialize + ?Sized>(
    domain: &str,
    service: &str,
    data: &D,
) -> Result<ServiceResult> {
    service_call_request(domain, service, Some(data))
}

/// Registers the service `<plugin domain>.<name>`; its calls go to
/// [`Plugin::call_service`](crate::Plugin::call_service).
///
/// # Errors
/// [`Error::Host`] with `InvalidName`, …
pub fn register_service(name: &str) -> Result<()> {
    check("service_register", ffi::service_register(name.as_bytes())).map(drop)
}

/// Fires a generic event with data given as JSON text (`None`: `{}`).
///
/// # Errors
/// [`Error::Host`] with `Denied` without permission for the event type, `InvalidName`,
/// `NotAnObject`, …
pub fn fire_event(event_type: &str, data: Option<&RawValue>) -> Result<()> {
    let data = data.map_or(&[][..], |raw| raw.get().as_bytes());
    check("event_fire", ffi::event_fire(event_type.as_bytes(), data)).map(drop)
}

/// [`fire_event`] with data serialized from any [`Serialize`] value that is an object.
///
/// # Errors
/// [`Error::Json`] when `data` cannot be serialized, else as [`fire_event`].
pub fn fire_event_with<D: Serialize + ?Sized>(event_type: &str, data: &D) -> Result<()> {
    with_args(|buf| {
        serde_json::to_writer(&mut *buf, data)?;
        check("event_fire", ffi::event_fire(event_type.as_bytes(), buf)).map(drop)
    })
}

/// A value from the plugin's key-value storage; `None` when the key is not set.
///
/// # Errors
/// [`Error::Host`] with `Denied` without the storage permission, `InvalidName`, …
pub fn kv_get(key: &str) -> Result<Option<Vec<u8>>> {
    with_result(
        "kv_get",
        |out| ffi::kv_get(key.as_bytes(), out),
        |bytes| Ok(bytes.to_vec()),
    )
}

/// Stores a value under `key` in the plugin's key-value storage (kept across reloads).
///
/// # Errors
/// [`Error::Host`] with `Denied`, `QuotaExceeded` when storage is full, `TooLarge`, …
pub fn kv_set(key: &str, value: &[u8]) -> Result<()> {
    check("kv_set", ffi::kv_set(key.as_bytes(), value)).map(drop)
}

/// Deletes `key` from the plugin's key-value storage; answers whether it was set.
///
/// # Errors
/// [`Error::Host`] with `Denied`, `InvalidName`, …
pub fn kv_delete(key: &str) -> Result<bool> {
    check_bool("kv_delete", ffi::kv_delete(key.as_bytes()))
}

/// Time on the host's monotonic clock (for measuring intervals; its zero is arbitrary).
/// A host failure reads as zero.
#[must_use]
pub fn monotonic_time() -> Duration {
    Duration::from_nanos(u64::try_from(ffi::time_monotonic_ns()).unwrap_or(0))
}

/// Starts (or restarts) timer `token`: after `delay`, [`Plugin::on_timer`](crate::Plugin::on_timer)
/// is called with it. The delay is rounded up to whole milliseconds.
///
/// # Errors
/// [`Error::Host`] with `QuotaExceeded` past [`MAX_TIMERS`](homecore_abi::v1::MAX_TIMERS)
/// pending timers, …
pub fn start_timer(token: u64, delay: Duration) -> Result<()> {
    let millis = delay.as_nanos().div_ceil(1_000_000);
    let delay_ms = i64::try_from(millis).unwrap_or(i64::MAX);
    check("timer_start", ffi::timer_start(wire_token(token), delay_ms)).map(drop)
}

/// Cancels timer `token`; answers whether it was pending.
///
/// # Errors
/// [`Error::Host`] for a host failure.
pub fn cancel_timer(token: u64) -> Result<bool> {
    check_bool("timer_cancel", ffi::timer_cancel(wire_token(token)))
}

/// A token as the ABI's i64, bit for bit.
fn wire_token(token: u64) -> i64 {
    i64::from_ne_bytes(token.to_ne_bytes())
}

/// Writes a debug line to the host's log, `format!`-style. See [`log`](crate::log()).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)+)) };
}

/// Writes an info line to the host's log, `format!`-style. See [`log`](crate::log()).
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log($crate::Level::Info, &::std::format!($($arg)+)) };
}

/// Writes a warning to the host's log, `format!`-style. See [`log`](crate::log()).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)+)) };
}

/// Writes an error line to the host's log, `format!`-style. See [`log`](crate::log()).
///
/// This logs; to fail a call, return an [`Error`](crate::Error) from the plugin method.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log($crate::Level::Error, &::std::format!($($arg)+)) };
}

// The fake host exists on the build machine only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::FakeHost;

    #[test]
    fn a_state_larger_than_the_scratch_buffer_is_fetched_with_take_result() {
        let host = FakeHost::new();
        let blob = "é".repeat(SCRATCH_CAPACITY);
        host.put_state("light.hall", "on", json!({"brightness": 77, "blob": blob}));
        let state = get_state("light.hall").expect("readable").expect("exists");
        assert_eq!(state.state, "on");
        assert_eq!(
            state.attribute::<u8>("brightness").expect("number"),
            Some(77)
        );
        assert_eq!(
            state.attribute::<String>("blob").expect("text"),
            Some(blob.clone())
        );
        assert_eq!(host.calls("take_result"), 1);

        // A small one arrives in the scratch buffer.
        host.put_state("light.small", "off", json!({}));
        assert!(get_state("light.small").expect("readable").is_some());
        assert_eq!(host.calls("take_result"), 1);
        assert!(get_state("light.absent").expect("readable").is_none());
    }

    #[test]
    fn large_stored_values_are_fetched_with_take_result() {
        let host = FakeHost::new();
        let value = vec![7; SCRATCH_CAPACITY * 3 + 1];
        kv_set("big", &value).expect("stored");
        assert_eq!(kv_get("big").expect("readable"), Some(value));
        assert_eq!(host.calls("take_result"), 1);
        assert!(kv_delete("big").expect("deleted"));
        assert!(!kv_delete("big").expect("absent"));
        assert_eq!(kv_get("big").expect("readable"), None);
    }

    #[test]
    fn with_state_borrows_and_allows_host_calls_inside() {
        let host = FakeHost::new();
        host.put_state("light.hall", "on", json!({"brightness": 3}));
        host.put_state("light.desk", "off", json!({"brightness": 9}));
        let copied = with_state("light.hall", |hall| {
            let hall = hall.expect("exists");
            // A nested read uses a buffer of its own.
            let desk = get_state("light.desk").expect("readable").expect("exists");
            set_state("light.desk", &hall.state, Some(hall.attributes)).expect("written");
            desk.state
        })
        .expect("readable");
        assert_eq!(copied, "off");
        assert_eq!(host.state("light.desk").as_deref(), Some("on"));
        assert_eq!(
            host.attributes("light.desk"),
            Some(json!({"brightness": 3}))
        );
        assert!(with_state("light.absent", |s| s.is_none()).expect("readable"));
    }

    #[test]
    fn attributes_pass_through_unparsed_and_empty_text_is_refused() {
        let host = FakeHost::new();
        host.put_state("light.hall", "on", json!({"brightness": 3}));
        let hall = get_state("light.hall").expect("readable").expect("exists");
        set_state("light.desk", "on", Some(hall.raw_attributes())).expect("written");
        assert_eq!(
            host.attributes("light.desk"),
            Some(json!({"brightness": 3}))
        );
        let err = set_state("light.desk", "off", Some(RawJson::unchecked("")))
            .expect_err("empty text is not JSON");
        assert!(matches!(err, Error::Json(_)), "{err:?}");
        assert_eq!(
            host.state("light.desk").as_deref(),
            Some("on"),
            "nothing written"
        );
    }

    #[test]
    fn writes_report_changes_and_host_refusals() {
        let host = FakeHost::new();
        assert!(set_state("switch.a", "on", None).expect("written"));
        assert!(
            !set_state("switch.a", "on", None).expect("written"),
            "unchanged"
        );
        #[derive(Serialize)]
        struct Attrs {
            friendly_name: &'static str,
        }
        assert!(set_state_with("switch.a", "on", &Attrs { friendly_name: "A" }).expect("written"));
        assert_eq!(
            host.attributes("switch.a"),
            Some(json!({"friendly_name": "A"}))
        );
        let err = set_state_with("switch.a", "on", &[1, 2]).expect_err("not an object");
        assert_eq!(err.status(), Some(Status::NotAnObject));
        let err = set_state("Switch.a", "on", None).expect_err("bad id");
        assert!(matches!(
            err,
            Error::Host {
                call: "state_set",
                status: Status::InvalidEntityId
            }
        ));
        assert!(remove_state("switch.a").expect("removed"));
        assert!(!remove_state("switch.a").expect("absent"));
        host.deny("state_set");
        assert_eq!(
            set_state("switch.b", "on", None)
                .expect_err("denied")
                .status(),
            Some(Status::Denied)
        );
    }

    #[test]
    fn service_calls_round_trip_and_omit_absent_data() {
        let host = FakeHost::new();
        host.add_service("light.turn_on", Some(json!({"ok": true})));
        let result = call_service("light", "turn_on", None).expect("called");
        let response: serde_json::Value =
            crate::from_raw(result.response.as_deref().expect("data")).expect("json");
        assert_eq!(response, json!({"ok": true}));
        call_service_with("light", "turn_on", &json!({"brightness": 5})).expect("called");
        assert_eq!(
            host.service_requests(),
            [
                json!({"service": "light.turn_on", "data": {}}),
                json!({"service": "light.turn_on", "data": {"brightness": 5}}),
            ]
        );
        let err = call_service("light", "nope", None).expect_err("unknown");
        assert_eq!(err.status(), Some(Status::UnknownService));

        let mut buf = Vec::new();
        serde_json::to_writer(
            &mut buf,
            &Request::<RawValue> {
                domain: "a",
                service: "b",
                data: None,
            },
        )
        .expect("json");
        assert_eq!(buf, br#"{"domain":"a","service":"b"}"#);
        let parsed: homecore_abi::v1::wire::ServiceRequest<'_> =
            serde_json::from_slice(&buf).expect("the wire shape");
        assert!(parsed.data.is_none());
    }

    #[test]
    fn events_subscriptions_and_services_reach_the_host() {
        let host = FakeHost::new();
        subscribe("light.*").expect("subscribed");
        subscribe_event("doorbell").expect("subscribed");
        register_service("flash").expect("registered");
        fire_event("doorbell", None).expect("fired");
        fire_event_with("doorbell", &json!({"ring": 2})).expect("fired");
        assert_eq!(host.subscriptions(), ["light.*"]);
        assert_eq!(host.event_subscriptions(), ["doorbell"]);
        assert_eq!(host.services(), ["flash"]);
        assert_eq!(
            host.fired_events(),
            [
                ("doorbell".to_owned(), json!({})),
                ("doorbell".to_owned(), json!({"ring": 2}))
            ]
        );
        let err = fire_event_with("doorbell", &3).expect_err("not an object");
        assert_eq!(err.status(), Some(Status::NotAnObject));
    }

    #[test]
    fn timers_round_delays_up_and_keep_every_token_bit() {
        let host = FakeHost::new();
        start_timer(u64::MAX, Duration::from_micros(1500)).expect("started");
        start_timer(7, Duration::from_secs(2)).expect("started");
        assert_eq!(
            host.timers(),
            [
                (7, Duration::from_secs(2)),
                (u64::MAX, Duration::from_millis(2))
            ]
        );
        assert!(cancel_timer(u64::MAX).expect("cancelled"));
        assert!(!cancel_timer(u64::MAX).expect("not pending"));
        host.advance(Duration::from_millis(1500))
            .expect("nothing due yet");
        assert_eq!(monotonic_time(), Duration::from_millis(1500));
    }

    #[test]
    fn log_lines_are_capped_at_a_character_boundary() {
        let host = FakeHost::new();
        log(Level::Warn, &"é".repeat(v1::MAX_LOG_LINE));
        crate::info!("{} + {}", 1, 2);
        let logs = host.logs();
        assert_eq!(logs[0].0, Level::Warn);
        assert_eq!(logs[0].1.len(), v1::MAX_LOG_LINE);
        assert_eq!(logs[1], (Level::Info, "1 + 2".to_owned()));
        assert_eq!(capped("aé", 2), "a");
    }

    #[test]
    fn without_a_host_calls_fail_with_internal() {
        let err = get_state("light.hall").expect_err("no host");
        assert_eq!(err.status(), Some(Status::Internal));
        assert_eq!(monotonic_time(), Duration::ZERO);
        log(Level::Info, "dropped");
    }
}
