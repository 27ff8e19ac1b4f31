//! Hostile exports: traps in every export, an `hc_alloc` that lies, `hc_call_service` results
//! pointing anywhere. Each fails its call with a reason, repeated failures quarantine, and
//! nothing reaches the host's own memory or stops unloading.

use std::error::Error;

use homecore::{Context, Home};
use homecore_plugins::{GuestFailure, Lifecycle, PluginInfo, PluginRegistry, TrapCode};
use serde_json::{Value, json};

use super::guests::*;
use crate::support::{all_permissions, state_of};

/// Permissions of a guest that listens to the trigger and writes `hostile.*`.
fn listener() -> Value {
    json!({"states_read": ["sensor.trigger", "hostile.*"], "states_write": ["hostile.*"]})
}

/// An error and its sources, one line.
fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Calls `<domain>.svc` from outside any plugin.
async fn call_svc(home: &Home, domain: &str) -> Result<Option<Value>, String> {
    home.services
        .call(domain, "svc", json!({}), Context::new())
        .await
        .map(|r| r.response)
        .map_err(|e| chain(&e))
}

/// A guest that registers `svc` and listens to the trigger.
fn with_service() -> Guest {
    Guest {
        setup: format!(
            "(if (call $service_register {SERVICE}) (then (return (i32.const -1)))) (call $subscribe {TRIGGER})"
        ),
        ..Guest::hostile()
    }
}

#[tokio::test]
async fn a_trap_or_refusal_in_setup_fails_the_plugin_with_the_reason() {
    let (_home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut chatty = Guest::hostile();
    chatty
        .data
        .push_str(&data_segment(65536, &json_object_of(60_000)));
    chatty.setup = format!(
        "(drop (call $error {})) (i32.const -15)",
        raw(65536, 60_000)
    );
    fn trap(code: TrapCode) -> GuestFailure {
        GuestFailure::Trap { code }
    }
    let cases: [(&str, String, &FailureCheck); 6] = [
        ("unreachable", "unreachable".to_owned(), &|f| {
            *f == trap(TrapCode::UnreachableCodeReached)
        }),
        (
            "divide",
            "(i32.div_s (i32.const 1) (i32.const 0))".to_owned(),
            &|f| *f == trap(TrapCode::IntegerDivisionByZero),
        ),
        ("wild_load", "(i32.load (i32.const -4))".to_owned(), &|f| {
            *f == trap(TrapCode::MemoryOutOfBounds)
        }),
        (
            "indirect",
            "(call_indirect (result i32) (i32.const 0))".to_owned(),
            &|f| matches!(f, GuestFailure::Trap { .. }),
        ),
        (
            "refused",
            format!("(drop (call $error {BAD_ID})) (i32.const -15)"),
            &|f| matches!(f, GuestFailure::Status { code: -15, message: Some(m) } if m.contains("no dot here")),
        ),
        ("odd_status", "(i32.const 7)".to_owned(), &|f| {
            *f == GuestFailure::Status {
                code: 7,
                message: None,
            }
        }),
    ];
    let mut specs = vec![wasm_spec(
        "chatty",
        all_permissions(),
        json!({}),
        chatty.bytes(),
    )];
    for (domain, setup, _) in &cases {
        let mut guest = Guest {
            setup: setup.clone(),
            ..Guest::hostile()
        };
        guest.data.push_str("(table 1 funcref)");
        specs.push(wasm_spec(
            domain,
            all_permissions(),
            json!({}),
            guest.bytes(),
        ));
    }
    let report = registry.load_all(specs).await;
    for (domain, _, expected) in &cases {
        let err = report.error(domain).expect("setup fails");
        assert!(expected(setup_failure(err)), "{domain}: {err:?}");
        assert_eq!(
            registry.get(domain).expect("listed").lifecycle,
            Lifecycle::Failed
        );
    }
    // A 60,000-byte error message is cut before it reaches the plugin's status.
    let chatty = setup_error(report.error("chatty").expect("setup fails")).to_string();
    assert!(
        chatty.starts_with("runtime failure: guest returned guest error (-15): {\"x\":\"yyy"),
        "{chatty}"
    );
    assert!(chatty.len() < 1200, "{} bytes", chatty.len());
    neighbour.assert_unharmed(&registry).await;
}

/// Triggers one event at a time, each after the previous one failed, until `domain` is
/// quarantined; returns its snapshot.
async fn fail_one_by_one(
    registry: &PluginRegistry,
    neighbour: &mut Neighbour,
    domain: &str,
) -> PluginInfo {
    for errors in 1..=3 {
        neighbour.trigger(registry.home(), 1);
        failed_calls(registry, domain, errors).await;
    }
    quarantined(registry, domain).await
}

#[tokio::test]
async fn a_trap_in_every_event_quarantines_the_plugin() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let guest = Guest {
        on_state_changed: "unreachable".into(),
        ..Guest::hostile()
    };
    registry
        .load(wasm_spec("trapper", listener(), json!({}), guest.bytes()))
        .await
        .expect("starts");
    let info = fail_one_by_one(&registry, &mut neighbour, "trapper").await;
    assert_last_error(
        &info,
        "quarantined after 3 consecutive failures; last: runtime failure: wasm trap: ",
    );
    assert_last_error(&info, "`unreachable` instruction executed");
    assert_eq!((info.stats.events, info.stats.errors), (3, 3));
    neighbour.trigger(&home, 2);
    neighbour.assert_unharmed(&registry).await;
    assert_eq!(
        registry.get("trapper").expect("listed").stats.events,
        3,
        "nothing is delivered after the quarantine"
    );
}

#[tokio::test]
async fn quarantine_stops_delivery_in_the_middle_of_a_batch() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let guest = Guest {
        on_state_changed: "unreachable".into(),
        ..Guest::hostile()
    };
    registry
        .load(wasm_spec("trapper", listener(), json!({}), guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 10);
    let info = quarantined(&registry, "trapper").await;
    assert_last_error(&info, "quarantined after 3 consecutive failures");
    assert_eq!(
        (info.stats.events, info.stats.errors),
        (3, 3),
        "no delivery after the third failure in a row"
    );
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_trap_or_loop_in_hc_call_service_fails_that_call() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let trap = Guest {
        call_service: "unreachable".into(),
        ..with_service()
    };
    let spin = Guest {
        call_service: "(loop $spin (br $spin)) (i64.const 0)".into(),
        ..with_service()
    };
    let limits = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 100});
    registry
        .load_all(vec![
            wasm_spec("svc_trap", listener(), json!({}), trap.bytes()),
            wasm_spec("svc_spin", listener(), limits, spin.bytes()),
        ])
        .await;
    for _ in 0..2 {
        let err = call_svc(&home, "svc_trap")
            .await
            .expect_err("the handler traps");
        assert!(
            err.contains("service svc_trap.svc failed") && err.contains("unreachable"),
            "{err}"
        );
    }
    let err = call_svc(&home, "svc_spin")
        .await
        .expect_err("the handler spins");
    assert!(
        err.contains("deadline exceeded: call ran longer than 100 ms"),
        "{err}"
    );
    for (domain, errors) in [("svc_trap", 2), ("svc_spin", 1)] {
        let info = registry.get(domain).expect("listed");
        assert_eq!(info.stats.errors, errors);
        assert_eq!(info.lifecycle, Lifecycle::Running);
    }
    // Other services still answer.
    let response = home
        .services
        .call(
            "neighbour",
            "ping",
            json!({"entity_id": "other.pinged"}),
            Context::new(),
        )
        .await
        .expect("the neighbour answers");
    assert_eq!(response.response, Some(json!({"handled_by": "neighbour"})));
    neighbour.trigger(&home, 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_trap_or_loop_in_teardown_does_not_stop_reload_or_unload() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let trap = Guest {
        teardown: "unreachable".into(),
        ..with_service()
    };
    let spin = Guest {
        teardown: "(loop $spin (br $spin)) (i32.const 0)".into(),
        ..with_service()
    };
    let limits = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 100});
    registry
        .load_all(vec![
            wasm_spec("teardown_trap", listener(), json!({}), trap.bytes()),
            wasm_spec("teardown_spin", listener(), limits, spin.bytes()),
        ])
        .await;
    for domain in ["teardown_trap", "teardown_spin"] {
        let info = registry
            .reload(domain)
            .await
            .expect("reloads despite the failed teardown");
        assert_eq!(info.lifecycle, Lifecycle::Running);
        assert!(home.services.has(domain, "svc"));
        registry
            .unload(domain)
            .await
            .expect("unloads despite the failed teardown");
        assert!(registry.get(domain).is_none());
        assert!(
            !home.services.has(domain, "svc"),
            "{domain}'s service is gone"
        );
    }
    neighbour.trigger(&home, 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_trap_in_hc_on_event_or_hc_on_timer_fails_that_call() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let on_event = Guest {
        setup: format!("(call $subscribe_event {DOORBELL})"),
        funcs: r#"(func (export "hc_on_event") (param i32 i32) (result i32) unreachable)"#.into(),
        ..Guest::hostile()
    };
    let on_timer = Guest {
        setup: "(call $timer_start (i64.const 7) (i64.const 1))".into(),
        funcs: r#"(func (export "hc_on_timer") (param i64) (result i32) unreachable)"#.into(),
        ..Guest::hostile()
    };
    let permissions = json!({"events": ["doorbell"]});
    registry
        .load_all(vec![
            wasm_spec(
                "event_trap",
                permissions.clone(),
                json!({}),
                on_event.bytes(),
            ),
            wasm_spec("timer_trap", permissions, json!({}), on_timer.bytes()),
        ])
        .await;
    let doorbell = homecore::EventType::new("doorbell").expect("valid");
    home.bus
        .fire(doorbell, json!({"button": 1}), Context::new())
        .expect("fired");
    for domain in ["event_trap", "timer_trap"] {
        let info = failed_calls(&registry, domain, 1).await;
        assert_last_error(&info, "`unreachable` instruction executed");
        assert_eq!(info.lifecycle, Lifecycle::Running);
    }
    neighbour.trigger(&home, 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_trap_in_hc_alloc_fails_every_delivery_and_quarantines() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile().arm_after_setup();
    guest.alloc =
        "(if (global.get $armed) (then unreachable)) (call $bump_alloc (local.get $size))".into();
    registry
        .load(wasm_spec(
            "alloc_trap",
            listener(),
            json!({}),
            guest.bytes(),
        ))
        .await
        .expect("starts");
    let info = fail_one_by_one(&registry, &mut neighbour, "alloc_trap").await;
    assert_last_error(&info, "hc_alloc failed");
    assert_last_error(&info, "unreachable");
    assert_eq!((info.stats.events, info.stats.errors), (3, 3));
    neighbour.trigger(&home, 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn an_hc_alloc_buffer_that_cannot_hold_the_payload_fails_the_call() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let cases = [
        ("alloc_zero", "(i32.const 0)", "hc_alloc could not allocate"),
        (
            "alloc_end",
            "(i32.const 131068)",
            "hc_alloc returned 131068, which cannot hold",
        ),
        ("alloc_past", "(i32.const 2147483647)", "which cannot hold"),
        (
            "alloc_negative",
            "(i32.const -8)",
            "hc_alloc returned a negative pointer -8",
        ),
        (
            "alloc_deep",
            "(call $deep (i32.const 0))",
            "wasm trap: stack overflow",
        ),
    ];
    let mut specs = Vec::new();
    for (domain, answer, _) in cases {
        let mut guest = Guest::hostile().arm_after_setup();
        guest.alloc = format!(
            "(if (global.get $armed) (then (return {answer}))) (call $bump_alloc (local.get $size))"
        );
        guest.funcs = "(func $deep (param $n i32) (result i32) (i32.add (call $deep (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))".into();
        specs.push(wasm_spec(domain, listener(), json!({}), guest.bytes()));
    }
    let report = registry.load_all(specs).await;
    assert_eq!(report.started().len(), cases.len(), "setup is not armed");
    neighbour.trigger(&home, 2);
    for (domain, _, reason) in cases {
        let info = failed_calls(&registry, domain, 2).await;
        assert_last_error(&info, reason);
        assert_eq!(info.lifecycle, Lifecycle::Running);
        assert_eq!(info.stats.events, 2);
    }
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn hc_call_service_results_are_checked_before_they_are_read() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let packed = |ptr: i64, len: i64| (ptr << 32) | len;
    let cases: Vec<(&str, i64, Result<Value, &str>)> = vec![
        (
            "resp_ok",
            packed(OBJECT.ptr.into(), OBJECT.len().into()),
            Ok(json!({"a": 1})),
        ),
        (
            "resp_outside",
            packed(i64::from(MEM) + 16, 8),
            Err("service response lies outside guest memory"),
        ),
        (
            "resp_straddle",
            packed(i64::from(MEM) - 4, 8),
            Err("service response lies outside guest memory"),
        ),
        (
            "resp_far",
            packed(0x7fff_fff0, 8),
            Err("service response lies outside guest memory"),
        ),
        ("resp_huge", i64::MAX, Err("exceeds the ABI limit of 65536")),
        (
            "resp_too_large",
            packed(0, 70 * 1024),
            Err("exceeds the ABI limit of 65536"),
        ),
        (
            "resp_not_json",
            packed(BAD_JSON.ptr.into(), BAD_JSON.len().into()),
            Err("service response is not JSON"),
        ),
        (
            "resp_bad_utf8",
            packed(BAD_UTF8.ptr.into(), BAD_UTF8.len().into()),
            Err("service response is not JSON"),
        ),
        (
            "resp_empty",
            packed(OBJECT.ptr.into(), 0),
            Err("service response is not JSON"),
        ),
        ("resp_status", -15, Err("guest returned guest error (-15)")),
        (
            "resp_odd_status",
            -1_000,
            Err("guest returned unknown status -1000"),
        ),
    ];
    let specs = cases
        .iter()
        .map(|(domain, result, _)| {
            let guest = Guest {
                call_service: format!("(i64.const {result})"),
                ..with_service()
            };
            wasm_spec(domain, listener(), json!({}), guest.bytes())
        })
        .collect();
    registry.load_all(specs).await;
    for (domain, _, want) in &cases {
        match (call_svc(&home, domain).await, want) {
            (Ok(got), Ok(want)) => assert_eq!(got.as_ref(), Some(want), "{domain}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{domain}: {got}"),
            (got, want) => panic!("{domain}: got {got:?}, want {want:?}"),
        }
        let info = registry.get(domain).expect("listed");
        assert_eq!(info.lifecycle, Lifecycle::Running, "{domain}");
    }
    neighbour.trigger(&home, 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn every_negative_hc_call_service_result_is_a_failure() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let cases = [
        ("resp_min", i64::MIN),
        ("resp_wrapped", -(1i64 << 32)),
        ("resp_wrapped_ok", -(1i64 << 32) + 1),
    ];
    let specs = cases
        .iter()
        .map(|(domain, result)| {
            let guest = Guest {
                call_service: format!("(i64.const {result})"),
                ..with_service()
            };
            wasm_spec(domain, listener(), json!({}), guest.bytes())
        })
        .collect();
    registry.load_all(specs).await;
    for (domain, result) in cases {
        let got = call_svc(&home, domain).await;
        assert!(
            got.is_err(),
            "{domain}: hc_call_service returned {result}, the call answered {got:?}"
        );
    }
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_trap_in_hc_free_fails_the_call() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let guest = Guest {
        call_service: format!(
            "(i64.const {})",
            (i64::from(OBJECT.ptr) << 32) | i64::from(OBJECT.len())
        ),
        free: "unreachable".into(),
        ..with_service()
    };
    registry
        .load(wasm_spec("free_trap", listener(), json!({}), guest.bytes()))
        .await
        .expect("starts");
    let err = call_svc(&home, "free_trap")
        .await
        .expect_err("hc_free traps");
    assert!(
        err.contains("hc_free failed") && err.contains("unreachable"),
        "{err}"
    );
    assert_eq!(
        registry.get("free_trap").expect("listed").lifecycle,
        Lifecycle::Running
    );
    neighbour.trigger(&home, 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn the_failure_streak_in_health_ends_with_a_success() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile();
    guest
        .data
        .push_str("(global $events (mut i32) (i32.const 0))");
    // Refuses its first event (a status, so the instance is kept), then writes hostile.flag.
    guest.on_state_changed = format!(
        "(global.set $events (i32.add (global.get $events) (i32.const 1)))
        (if (i32.eq (global.get $events) (i32.const 1)) (then (return (i32.const -15))))
        (drop (call $state_set {FLAG} {ON} {}))
        (i32.const 0)",
        OBJECT.empty()
    );
    registry
        .load(wasm_spec("streak", listener(), json!({}), guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 2);
    eventually("the second event to go through", || {
        state_of(&home, "hostile.flag").is_some()
    })
    .await;
    let info = registry.get("streak").expect("listed");
    assert_eq!(info.stats.errors, 1);
    assert_eq!(
        info.health.consecutive_failures, 0,
        "the last call succeeded"
    );
    neighbour.assert_unharmed(&registry).await;
}
