//! From export calls to the plugin: the plugin instance's slot, payload decoding and error
//! reporting. Safe code over byte slices, shared by the wasm32 export glue and
//! `testing::FakeHost`.

use std::cell::RefCell;

use homecore_abi::v1::{self, Status};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event_reader;
use crate::{Config, CustomEvent, Error, Plugin, Result, ServiceCall, StateChangedEvent};

/// A [`Plugin`] behind a pointer (`Plugin` is `Sized` through `Default`, so it is not
/// dyn-compatible itself).
#[doc(hidden)]
pub trait DynPlugin {
    fn setup(&mut self, config: &Config<'_>) -> Result<()>;
    fn teardown(&mut self) -> Result<()>;
    fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> Result<()>;
    fn on_event(&mut self, event: &CustomEvent<'_>) -> Result<()>;
    fn on_timer(&mut self, token: u64) -> Result<()>;
    fn call_service(&mut self, call: &ServiceCall<'_>) -> Result<Option<Value>>;
}

impl<P: Plugin> DynPlugin for P {
    fn setup(&mut self, config: &Config<'_>) -> Result<()> {
        Plugin::setup(self, config)
    }
    fn teardown(&mut self) -> Result<()> {
        Plugin::teardown(self)
    }
    fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> Result<()> {
        Plugin::on_state_changed(self, event)
    }
    fn on_event(&mut self, event: &CustomEvent<'_>) -> Result<()> {
        Plugin::on_event(self, event)
    }
    fn on_timer(&mut self, token: u64) -> Result<()> {
        Plugin::on_timer(self, token)
    }
    fn call_service(&mut self, call: &ServiceCall<'_>) -> Result<Option<Value>> {
        Plugin::call_service(self, call)
    }
}

/// A fresh `P::default()`, boxed (what `hc_setup` is given by [`crate::export_plugin!`]).
#[doc(hidden)]
#[must_use]
pub fn new_plugin<P: Plugin>() -> Box<dyn DynPlugin> {
    Box::new(P::default())
}

thread_local! {
    /// The set-up plugin instance. It is taken out for the duration of a call and put back
    /// after, so no borrow is held while plugin code runs.
    static PLUGIN: RefCell<Option<Box<dyn DynPlugin>>> = const { RefCell::new(None) };
}

/// Hands `message` to the host as the current call's error (capped, see
/// [`crate::host::report_error`]) and answers `status`'s code.
pub(crate) fn fail(status: Status, message: &str) -> i32 {
    crate::host::report_error(message);
    status.code()
}

/// Reports `err` to the host and answers the status an export gives for it.
pub(crate) fn report(err: &Error) -> i32 {
    fail(err.export_status(), &err.report())
}

fn status_of(result: Result<()>) -> i32 {
    match result {
        Ok(()) => Status::Ok.code(),
        Err(err) => report(&err),
    }
}

/// Decodes a payload, or reports it as malformed.
///
/// The whole payload is checked for UTF-8 once and then parsed as a `str`: parsing bytes would
/// validate every string token again (a third of the parse in a 700-byte state change).
fn decode<'a, T: serde::Deserialize<'a>>(what: &str, payload: &'a [u8]) -> Result<T, i32> {
    let text = crate::ffi::payload_text(payload)
        .map_err(|err| fail(Status::BadJson, &format!("malformed {what} payload: {err}")))?;
    serde_json::from_str(text)
        .map_err(|err| fail(Status::BadJson, &format!("malformed {what} payload: {err}")))
}

/// Runs `f` on the set-up plugin.
fn with_plugin<R>(f: impl FnOnce(&mut dyn DynPlugin) -> R) -> Result<R, i32> {
    let Some(mut plugin) = PLUGIN.with_borrow_mut(Option::take) else {
        return Err(fail(Status::GuestError, "plugin is not set up"));
    };
    let result = f(plugin.as_mut());
    PLUGIN.with_borrow_mut(|slot| {
        // A nested setup (not something a host does) would have filled the slot; the instance
        // that was running wins.
        *slot = Some(plugin);
    });
    Ok(result)
}

/// `hc_setup`: a fresh instance from `new`, set up with the configuration JSON (an empty
/// payload reads as `null`). The instance is kept only when its setup succeeds.
pub(crate) fn setup(payload: &[u8], new: fn() -> Box<dyn DynPlugin>) -> i32 {
    // Any earlier instance is dropped first: a setup retried after a failure starts afresh.
    drop(PLUGIN.with_borrow_mut(Option::take));
    let raw: &RawValue = if payload.is_empty() {
        RawValue::NULL
    } else {
        match decode("configuration", payload) {
            Ok(raw) => raw,
            Err(code) => return code,
        }
    };
    let mut plugin = new();
    match plugin.setup(&Config::new(raw)) {
        Ok(()) => {
            PLUGIN.with_borrow_mut(|slot| *slot = Some(plugin));
            Status::Ok.code()
        }
        Err(err) => report(&err),
    }
}

/// `hc_teardown`: the plugin's teardown, then the instance is dropped.
pub(crate) fn teardown() -> i32 {
    let Some(mut plugin) = PLUGIN.with_borrow_mut(Option::take) else {
        return Status::Ok.code();
    };
    status_of(plugin.teardown())
}

/// `hc_on_state_changed`, read by the SDK's own reader for this one hot payload (see
/// `event_reader`).
pub(crate) fn on_state_changed(payload: &[u8]) -> i32 {
    let malformed = |err: &dyn std::fmt::Display| {
        fail(
            Status::BadJson,
            &format!("malformed state_changed payload: {err}"),
        )
    };
    let event = match crate::ffi::payload_text(payload) {
        Ok(text) => event_reader::state_changed(text),
        Err(err) => return malformed(&err),
    };
    match event {
        Ok(event) => {
            with_plugin(|p| status_of(p.on_state_changed(&event))).unwrap_or_else(|code| code)
        }
        Err(err) => malformed(&err),
    }
}

/// `hc_on_event`.
pub(crate) fn on_event(payload: &[u8]) -> i32 {
    match decode::<CustomEvent<'_>>("event", payload) {
        Ok(event) => with_plugin(|p| status_of(p.on_event(&event))).unwrap_or_else(|code| code),
        Err(code) => code,
    }
}

/// `hc_on_timer`.
pub(crate) fn on_timer(token: i64) -> i32 {
    // Tokens are u64 to plugins and i64 on the wire, bit for bit.
    let token = u64::from_ne_bytes(token.to_ne_bytes());
    with_plugin(|p| status_of(p.on_timer(token))).unwrap_or_else(|code| code)
}

/// `hc_call_service`: the response's JSON, if any, or a status code.
pub(crate) fn call_service(payload: &[u8]) -> Result<Option<Vec<u8>>, i32> {
    let call = decode::<ServiceCall<'_>>("service call", payload)?;
    match with_plugin(|p| p.call_service(&call))? {
        Ok(None) => Ok(None),
        Ok(Some(response)) => {
            let json = serde_json::to_vec(&response).map_err(|err| report(&Error::Json(err)))?;
            if json.len() > v1::MAX_PAYLOAD {
                return Err(fail(
                    Status::TooLarge,
                    &format!(
                        "service response of {} bytes exceeds the limit of {}",
                        json.len(),
                        v1::MAX_PAYLOAD
                    ),
                ));
            }
            Ok(Some(json))
        }
        Err(err) => Err(report(&err)),
    }
}

/// Drops the plugin instance, if any (a fake host starting or ending).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn reset() {
    drop(PLUGIN.with_borrow_mut(Option::take));
}

// The fake host exists on the build machine only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::FakeHost;

    /// Records what it is called with; fails on demand.
    #[derive(Default)]
    struct Probe {
        timers: Vec<u64>,
    }

    impl Plugin for Probe {
        fn setup(&mut self, config: &Config<'_>) -> Result<()> {
            if config.is_null() {
                return Ok(());
            }
            let fail: bool = crate::attribute(config.raw(), "fail")?.unwrap_or(false);
            if fail {
                let source = serde_json::from_str::<u8>("x").expect_err("not json");
                return Err(Error::Json(source));
            }
            crate::subscribe("switch.*")?;
            crate::subscribe_event("ping")?;
            crate::register_service("echo")
        }

        fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> Result<()> {
            match event.new_state.as_ref().map(|s| &*s.state) {
                Some("panic") => panic!("asked to"),
                Some("fail") => Err(Error::other("x".repeat(5000))),
                _ => Ok(()),
            }
        }

        fn on_event(&mut self, event: &CustomEvent<'_>) -> Result<()> {
            crate::fire_event("pong", Some(event.data))
        }

        fn on_timer(&mut self, token: u64) -> Result<()> {
            self.timers.push(token);
            crate::kv_set("timers", format!("{:?}", self.timers).as_bytes())
        }

        fn call_service(&mut self, call: &ServiceCall<'_>) -> Result<Option<Value>> {
            match &*call.service {
                "echo" => Ok(Some(crate::from_raw(call.data)?)),
                "quiet" => Ok(None),
                _ => Err(Error::UnknownService {
                    service: call.service.to_string(),
                }),
            }
        }
    }

    #[test]
    fn calls_before_setup_fail_with_a_message() {
        let host = FakeHost::new();
        let err = host
            .deliver_state_changed(
                br#"{"entity_id":"a.b","old_state":null,"new_state":null,"context":{"id":"c"}}"#,
            )
            .expect_err("not set up");
        assert_eq!(err.status, Some(Status::GuestError));
        assert_eq!(err.message.as_deref(), Some("plugin is not set up"));
        host.teardown().expect("nothing to tear down");
    }

    #[test]
    fn malformed_payloads_answer_bad_json() {
        let host = FakeHost::new();
        let err = host.setup_raw::<Probe>(b"{oops").expect_err("malformed");
        assert_eq!(err.status, Some(Status::BadJson));
        assert!(
            err.message
                .expect("a message")
                .starts_with("malformed configuration payload: ")
        );
        host.setup_raw::<Probe>(b"")
            .expect("an empty configuration reads as null");
        let err = host.deliver_state_changed(b"[]").expect_err("malformed");
        assert_eq!(err.status, Some(Status::BadJson));
        let err = host
            .deliver_state_changed(b"{\"entity_id\":\"a.\xff\"}")
            .expect_err("not UTF-8");
        assert_eq!(err.status, Some(Status::BadJson));
        assert!(
            err.message
                .expect("a message")
                .starts_with("malformed state_changed payload: invalid utf-8"),
        );
    }

    #[test]
    fn failures_are_reported_with_their_sources_and_capped() {
        let host = FakeHost::new();
        let err = host
            .setup::<Probe>(&json!({"fail": true}))
            .expect_err("fails");
        assert_eq!(err.status, Some(Status::GuestError));
        let message = err.message.expect("a message");
        assert!(
            message.starts_with("json data could not be converted: expected value"),
            "{message}"
        );

        host.setup::<Probe>(&json!({})).expect("starts");
        let err = host
            .set_state("switch.a", "fail", json!({}))
            .expect_err("fails");
        assert_eq!(err.message.map(|m| m.len()), Some(v1::MAX_LOG_LINE));
        host.set_state("switch.a", "on", json!({}))
            .expect("the plugin keeps running");
    }

    #[test]
    fn a_failed_setup_keeps_no_instance_and_a_new_setup_starts_afresh() {
        let host = FakeHost::new();
        host.setup::<Probe>(&json!({})).expect("starts");
        host.setup::<Probe>(&json!({"fail": true}))
            .expect_err("fails");
        let err = host
            .set_state("switch.a", "on", json!({}))
            .expect_err("no instance");
        assert_eq!(err.message.as_deref(), Some("plugin is not set up"));
    }

    #[test]
    fn events_timers_and_services_reach_the_plugin() {
        let host = FakeHost::new();
        host.setup::<Probe>(&json!({})).expect("starts");
        host.fire_event("ping", json!({"n": 1})).expect("handled");
        assert_eq!(host.fired_events(), [("pong".to_owned(), json!({"n": 1}))]);

        crate::start_timer(3, std::time::Duration::from_secs(1)).expect("started");
        crate::start_timer(u64::MAX, std::time::Duration::from_secs(2)).expect("started");
        host.advance(std::time::Duration::from_secs(5))
            .expect("fired");
        assert_eq!(
            host.kv("timers").as_deref(),
            Some(&b"[3, 18446744073709551615]"[..])
        );

        assert_eq!(
            host.call_service("echo", json!({"a": [1]}))
                .expect("answers"),
            Some(json!({"a": [1]}))
        );
        assert_eq!(
            host.call_service("quiet", json!({})).expect("answers"),
            None
        );
        let err = host.call_service("nope", json!({})).expect_err("unknown");
        assert_eq!(err.status, Some(Status::UnknownService));
        assert_eq!(
            err.message.as_deref(),
            Some("plugin does not provide service nope")
        );
        let big = "x".repeat(v1::MAX_PAYLOAD);
        let err = host
            .call_service("echo", json!({"big": big}))
            .expect_err("too large");
        assert_eq!(err.status, Some(Status::TooLarge));
    }

    #[test]
    fn teardown_drops_the_instance() {
        let host = FakeHost::new();
        host.setup::<Probe>(&json!({})).expect("starts");
        host.teardown().expect("tears down");
        let err = host.call_service("echo", json!({})).expect_err("gone");
        assert_eq!(err.message.as_deref(), Some("plugin is not set up"));
    }

    #[test]
    #[should_panic(expected = "asked to")]
    fn panics_propagate_on_the_build_machine() {
        let host = FakeHost::new();
        host.setup::<Probe>(&json!({})).expect("starts");
        let _ = host.set_state("switch.a", "panic", json!({}));
    }
}
