//! Hostile use of resources: loops, memory and table bombs, deep recursion. Each is stopped
//! by its limit with an error naming it, and never delays a well-behaved neighbour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use homecore_plugins::{GuestFailure, Lifecycle, PluginStats};
use serde_json::json;

use super::guests::*;
use crate::support::{all_permissions, set, state_of};

/// Permissions of a guest that listens to the trigger and writes `hostile.*`.
fn listener() -> serde_json::Value {
    json!({"states_read": ["sensor.trigger", "hostile.*"], "states_write": ["hostile.*"]})
}

/// A guest that runs `body` on every event once armed (after its setup).
fn on_events(body: &str) -> Guest {
    let mut guest = Guest::hostile().arm_after_setup();
    guest.on_state_changed = format!("(if (global.get $armed) (then {body})) (i32.const 0)");
    guest
}

const SPIN: &str = "(loop $spin (br $spin))";

#[tokio::test]
async fn an_infinite_loop_in_setup_is_stopped_by_fuel_or_deadline() {
    let (_home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let guest = Guest {
        setup: format!("{SPIN} (i32.const 0)"),
        ..Guest::hostile()
    };
    let fuel = json!({"fuel_per_call": 1_000_000, "call_timeout_ms": 10_000});
    let clock = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 100});
    let report = registry
        .load_all(vec![
            wasm_spec("fuel", all_permissions(), fuel, guest.bytes()),
            wasm_spec("clock", all_permissions(), clock, guest.bytes()),
        ])
        .await;
    for (domain, expected, reason) in [
        (
            "fuel",
            GuestFailure::OutOfFuel { limit: 1_000_000 },
            "fuel exhausted: more than 1000000 instructions in one call",
        ),
        (
            "clock",
            GuestFailure::Deadline { limit_ms: 100 },
            "deadline exceeded: call ran longer than 100 ms",
        ),
    ] {
        let err = report.error(domain).expect("setup never ends");
        assert_eq!(*setup_failure(err), expected, "{domain}");
        let info = registry.get(domain).expect("listed");
        assert_eq!(info.lifecycle, Lifecycle::Failed);
        assert_last_error(&info, reason);
    }
    let (fuel, clock) = (stats(&registry, "fuel"), stats(&registry, "clock"));
    assert_eq!((fuel.fuel_exhausted, fuel.deadlines_missed), (1, 0));
    assert_eq!((clock.fuel_exhausted, clock.deadlines_missed), (0, 1));
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn an_infinite_loop_in_the_second_event_fails_that_call_only() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile();
    guest
        .data
        .push_str("(global $events (mut i32) (i32.const 0))");
    // Spins on its second event; writes hostile.flag on the others.
    guest.on_state_changed = format!(
        "(global.set $events (i32.add (global.get $events) (i32.const 1)))
        (if (i32.eq (global.get $events) (i32.const 2)) (then {SPIN}))
        (drop (call $state_set {FLAG} {ON} {}))
        (i32.const 0)",
        OBJECT.empty()
    );
    let limits = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 100});
    registry
        .load(wasm_spec("second", listener(), limits, guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 3);
    // Host calls: setup, the first event's write, setup again on the fresh instance made after
    // the failure, and the third event's write (the fresh instance counts from zero again, so
    // the third event is its first).
    eventually("the third event to go through", || {
        registry
            .get("second")
            .is_some_and(|i| i.stats.host_calls == 4)
    })
    .await;
    let info = registry.get("second").expect("listed");
    assert_eq!((info.stats.events, info.stats.errors), (3, 1));
    assert_last_error(&info, "deadline exceeded: call ran longer than 100 ms");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn memory_grow_bombs_hit_the_memory_limit() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let limits = json!({"memory_bytes": 16 << 20, "call_timeout_ms": 1000});
    // If growing failed quietly (-1) instead of trapping, these would spin to the deadline.
    let stepwise = on_events("(loop $grow (drop (memory.grow (i32.const 16))) (br $grow))");
    let at_once = on_events("(loop $grow (drop (memory.grow (i32.const 65535))) (br $grow))");
    registry
        .load_all(vec![
            wasm_spec("stepwise", listener(), limits.clone(), stepwise.bytes()),
            wasm_spec("at_once", listener(), limits, at_once.bytes()),
        ])
        .await;
    neighbour.trigger(&home, 2);
    for domain in ["stepwise", "at_once"] {
        let info = failed_calls(&registry, domain, 2).await;
        assert_last_error(&info, "memory limit of 16777216 bytes hit");
        assert_eq!(info.lifecycle, Lifecycle::Running);
    }
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn initial_memory_or_tables_above_the_cap_are_refused_at_load() {
    let (_home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let huge_memory = Guest {
        memory: r#"(memory (export "memory") 2000)"#.into(),
        ..Guest::hostile()
    };
    let mut huge_table = Guest::hostile();
    huge_table.data.push_str("(table 20000 funcref)");
    let mut many_tables = Guest::hostile();
    many_tables.data.push_str(&"(table 1 funcref)".repeat(9));
    // A large declared maximum costs nothing until it is grown into.
    let large_maximum = Guest {
        memory: r#"(memory (export "memory") 2 65536)"#.into(),
        ..Guest::hostile()
    };
    let report = registry
        .load_all(vec![
            wasm_spec(
                "huge_memory",
                all_permissions(),
                json!({"memory_bytes": 16 << 20}),
                huge_memory.bytes(),
            ),
            // The manifest may not raise the host's cap (256 MiB by default).
            wasm_spec(
                "greedy",
                all_permissions(),
                json!({"memory_bytes": 1u64 << 40}),
                Guest {
                    memory: r#"(memory (export "memory") 5000)"#.into(),
                    ..Guest::hostile()
                }
                .bytes(),
            ),
            wasm_spec(
                "huge_table",
                all_permissions(),
                json!({"table_elements": 10_000}),
                huge_table.bytes(),
            ),
            wasm_spec(
                "many_tables",
                all_permissions(),
                json!({}),
                many_tables.bytes(),
            ),
            wasm_spec(
                "large_maximum",
                all_permissions(),
                json!({"memory_bytes": 16 << 20}),
                large_maximum.bytes(),
            ),
        ])
        .await;
    let cases: [(&str, &FailureCheck); 4] = [
        ("huge_memory", &|f| {
            matches!(
                f,
                GuestFailure::MemoryLimit {
                    limit_bytes: 16_777_216,
                    ..
                }
            )
        }),
        ("greedy", &|f| {
            matches!(
                f,
                GuestFailure::MemoryLimit {
                    limit_bytes: 268_435_456,
                    ..
                }
            )
        }),
        ("huge_table", &|f| {
            *f == GuestFailure::TableLimit {
                limit_elements: 10_000,
                requested_elements: 20_000,
            }
        }),
        ("many_tables", &|f| matches!(f, GuestFailure::Engine { .. })),
    ];
    for (domain, expected) in cases {
        let failure = instantiate_failure(report.error(domain));
        assert!(expected(failure), "{domain}: {failure:?}");
        assert_eq!(
            registry.get(domain).expect("listed").lifecycle,
            Lifecycle::Failed
        );
    }
    assert!(
        report.error("large_maximum").is_none(),
        "{:?}",
        report.error("large_maximum")
    );
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_table_grow_bomb_hits_the_table_limit() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = on_events(
        "(loop $grow (drop (table.grow $t (ref.null func) (i32.const 1000))) (br $grow))",
    );
    guest.data.push_str("(table $t 1 funcref)");
    let limits = json!({"table_elements": 10_000, "call_timeout_ms": 1000});
    registry
        .load(wasm_spec("tables", listener(), limits, guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 1);
    let info = failed_calls(&registry, "tables", 1).await;
    assert_last_error(&info, "table limit of 10000 elements hit");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn deep_recursion_overflows_the_guest_stack_not_the_host() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = on_events("(drop (call $deep (i32.const 0)))");
    guest.funcs = "(func $deep (param $n i32) (result i32) (i32.add (call $deep (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))".into();
    registry
        .load(wasm_spec("deep", listener(), json!({}), guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 2);
    let info = failed_calls(&registry, "deep", 2).await;
    assert_last_error(&info, "stack overflow");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    neighbour.assert_unharmed(&registry).await;
}

/// A guest that, on an event for `hostile.entity`, writes `hostile.flag` = "on" and then spins.
fn spinner(call_timeout_ms: u64) -> (Guest, serde_json::Value) {
    let mut guest = Guest::hostile();
    guest.setup = format!("(call $subscribe {MINE})");
    guest.on_state_changed = format!(
        "(drop (call $state_set {FLAG} {ON} {})) {SPIN} (i32.const 0)",
        OBJECT.empty()
    );
    let limits = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": call_timeout_ms});
    (guest, limits)
}

/// Events and timers keep flowing while a plugin spins: the neighbour gets `events` events
/// and a 10 ms sleep completes, all before the spinner's call ends.
async fn spinning_delays_nobody(events: usize, call_timeout_ms: u64) {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let (guest, limits) = spinner(call_timeout_ms);
    registry
        .load(wasm_spec("spinner", listener(), limits, guest.bytes()))
        .await
        .expect("starts");
    set(&home, "hostile.entity", "spin");
    eventually("the spinner to start spinning", || {
        state_of(&home, "hostile.flag").is_some()
    })
    .await;
    for _ in 0..events {
        neighbour.write(&home, "sensor.burst");
    }
    eventually("the burst to reach the neighbour", || {
        neighbour.received().len() >= events
    })
    .await;
    tokio::spawn(tokio::time::sleep(Duration::from_millis(10)))
        .await
        .expect("the sleep completes");
    let spinner = registry.get("spinner").expect("listed");
    assert_eq!(
        (spinner.stats.errors, spinner.health.last_error.as_deref()),
        (0, None),
        "all of the above happened while the spinner's call was still running"
    );
    let burst: Vec<String> = (1..=events).map(|i| format!("sensor.burst={i}")).collect();
    assert_eq!(neighbour.received(), burst, "every event, in order");
    let spinner = failed_calls(&registry, "spinner", 1).await;
    let last = spinner.health.last_error.as_deref().unwrap_or_default();
    assert!(
        last.contains("deadline exceeded") || last.contains("fuel exhausted"),
        "{last}"
    );
    assert_eq!(spinner.lifecycle, Lifecycle::Running);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_stuck_in_a_loop_never_delays_other_plugins_or_the_runtime() {
    spinning_delays_nobody(100, 2000).await;
}

#[tokio::test]
async fn a_plugin_stuck_in_a_loop_yields_even_on_a_single_thread_runtime() {
    spinning_delays_nobody(20, 1000).await;
}

#[tokio::test]
async fn a_plugin_stuck_in_hc_alloc_never_delays_the_runtime() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile().arm_after_setup();
    guest.alloc = format!(
        "(if (global.get $armed) (then (drop (call $state_set {FLAG} {ON} {})) {SPIN}))
        (call $bump_alloc (local.get $size))",
        OBJECT.empty()
    );
    let limits = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 1000});
    registry
        .load(wasm_spec("allocspin", listener(), limits, guest.bytes()))
        .await
        .expect("starts");
    let seen = Arc::new(Mutex::new(None));
    neighbour.trigger(&home, 1);
    eventually("the spinner to start spinning", || {
        state_of(&home, "hostile.flag").is_some()
    })
    .await;
    let probe = Arc::clone(&seen);
    let check = registry.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        *probe.lock().expect("not poisoned") = check.get("allocspin").map(|i| i.stats.errors);
    })
    .await
    .expect("the sleep completes");
    assert_eq!(
        *seen.lock().expect("not poisoned"),
        Some(0),
        "the sleep completed while hc_alloc was still spinning"
    );
    let info = failed_calls(&registry, "allocspin", 1).await;
    assert_last_error(&info, "hc_alloc");
    neighbour.assert_unharmed(&registry).await;
}

/// The counters of `domain`.
fn stats(registry: &homecore_plugins::PluginRegistry, domain: &str) -> PluginStats {
    registry.get(domain).expect("listed").stats
}

/// What a failing event call of a guest with `body` and `limits` reports: (last error, stats).
async fn one_failed_event(
    domain: &str,
    body: &str,
    data: &str,
    limits: serde_json::Value,
) -> (String, PluginStats) {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = on_events(body);
    guest.data.push_str(data);
    registry
        .load(wasm_spec(domain, listener(), limits, guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 1);
    let info = failed_calls(&registry, domain, 1).await;
    assert_eq!(info.lifecycle, Lifecycle::Running);
    neighbour.assert_unharmed(&registry).await;
    (info.health.last_error.unwrap_or_default(), info.stats)
}

#[tokio::test]
async fn a_table_limit_hit_is_reported_as_a_table_limit_not_fuel_exhaustion() {
    let (last, stats) = one_failed_event(
        "table_kind",
        "(loop $grow (drop (table.grow $t (ref.null func) (i32.const 1000))) (br $grow))",
        "(table $t 1 funcref)",
        json!({"table_elements": 10_000, "fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 1000}),
    )
    .await;
    let expected = GuestFailure::TableLimit {
        limit_elements: 10_000,
        requested_elements: 10_001,
    };
    assert!(last.contains(&expected.to_string()), "{last}");
    assert_eq!(
        (
            stats.table_limit_hits,
            stats.fuel_exhausted,
            stats.memory_limit_hits
        ),
        (1, 0, 0)
    );
    assert_eq!((stats.deadlines_missed, stats.traps), (0, 0));
}

#[tokio::test]
async fn a_memory_limit_hit_is_classified_and_counted() {
    let (last, stats) = one_failed_event(
        "memory_kind",
        "(loop $grow (drop (memory.grow (i32.const 16))) (br $grow))",
        "",
        json!({"memory_bytes": 4 << 20, "call_timeout_ms": 1000}),
    )
    .await;
    assert!(last.contains("memory limit of 4194304 bytes hit"), "{last}");
    assert_eq!(
        (
            stats.memory_limit_hits,
            stats.table_limit_hits,
            stats.fuel_exhausted
        ),
        (1, 0, 0)
    );
    assert_eq!((stats.deadlines_missed, stats.traps), (0, 0));
}

#[tokio::test]
async fn fuel_exhaustion_is_classified_and_counted() {
    let (last, stats) = one_failed_event(
        "fuel_kind",
        SPIN,
        "",
        json!({"fuel_per_call": 1_000_000, "call_timeout_ms": 10_000}),
    )
    .await;
    let expected = GuestFailure::OutOfFuel { limit: 1_000_000 };
    assert!(last.contains(&expected.to_string()), "{last}");
    assert_eq!(
        (
            stats.fuel_exhausted,
            stats.deadlines_missed,
            stats.memory_limit_hits
        ),
        (1, 0, 0)
    );
    assert_eq!((stats.table_limit_hits, stats.traps), (0, 0));
}

#[tokio::test]
async fn a_missed_deadline_is_classified_and_counted() {
    let (last, stats) = one_failed_event(
        "deadline_kind",
        SPIN,
        "",
        json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 50}),
    )
    .await;
    let expected = GuestFailure::Deadline { limit_ms: 50 };
    assert!(last.contains(&expected.to_string()), "{last}");
    assert_eq!(
        (
            stats.deadlines_missed,
            stats.fuel_exhausted,
            stats.memory_limit_hits
        ),
        (1, 0, 0)
    );
    assert_eq!((stats.table_limit_hits, stats.traps), (0, 0));
}

#[tokio::test]
async fn operator_limits_cap_what_the_manifest_asks() {
    let (_home, registry) = hostile_registry();
    let guest = Guest {
        setup: format!("{SPIN} (i32.const 0)"),
        ..Guest::hostile()
    };
    let asked = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 10_000});
    let operator = homecore_plugins::ResourceLimits {
        fuel_per_call: Some(1_000_000),
        ..homecore_plugins::ResourceLimits::default()
    };
    let spec = wasm_spec("capped", all_permissions(), asked, guest.bytes()).with_limits(operator);
    let err = registry.load(spec).await.expect_err("setup never ends");
    assert_eq!(
        *setup_failure(&err),
        GuestFailure::OutOfFuel { limit: 1_000_000 }
    );
    assert_eq!(stats(&registry, "capped").fuel_exhausted, 1);
}
