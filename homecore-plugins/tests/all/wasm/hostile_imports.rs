//! Hostile input to the host imports: every pointer, length, text and JSON a guest passes is
//! checked and answered with a status code; grants, quotas and the loop guard hold.
//!
//! The guests run their calls through [`Checks`]: each import's answer is compared with the
//! documented status, and a wrong answer fails the call. So "the plugin is running with no
//! errors" means every answer was the documented one.

use std::sync::Arc;

use homecore::MAX_CONTEXT_DEPTH;
use homecore_abi::v1::{MAX_PAYLOAD, Status};
use homecore_plugins::{
    Lifecycle, MemoryStorage, Permissions, PluginRegistry, PluginStorage, WasmtimeConfig,
};
use serde_json::json;

use super::guests::*;
use crate::support::{all_permissions, set, state_of};

/// Longest name (entity id, glob, key, event type, service) an import reads.
const MAX_NAME: i32 = 255;
#[expect(
    clippy::cast_possible_truncation,
    reason = "MAX_PAYLOAD is 64 KiB (const context: no try_from)"
)]
const PAYLOAD: i32 = MAX_PAYLOAD as i32;

/// Hostile `(ptr, len)` pairs for a buffer the host reads with limit `max`, and the answer
/// each must get. The host checks, in order: a negative pointer or length (BadPointer), a
/// length over the limit (TooLarge), then the end against the memory (BadPointer).
fn bad_inputs(max: i32) -> Vec<(&'static str, i32, i32, Status)> {
    use Status::{BadPointer, TooLarge};
    vec![
        ("negative pointer", -1, 4, BadPointer),
        ("most negative pointer", i32::MIN, 4, BadPointer),
        ("negative length", 16, -1, BadPointer),
        ("most negative length", 16, i32::MIN, BadPointer),
        (
            "negative pointer before a length over the limit",
            -1,
            i32::MAX,
            BadPointer,
        ),
        ("empty buffer at a negative pointer", -1, 0, BadPointer),
        ("one byte past the end", MEM, 1, BadPointer),
        ("straddling the end", MEM - 2, 4, BadPointer),
        ("empty buffer past the end", MEM + 1, 0, BadPointer),
        ("far past the end", 0x4000_0000, 4, BadPointer),
        ("ptr + len past 2 GiB", i32::MAX, 1, BadPointer),
        ("ptr + len overflowing i32", i32::MAX - 1, 4, BadPointer),
        ("one byte over the limit", 0, max + 1, TooLarge),
        (
            "over the limit and out of bounds",
            i32::MAX,
            i32::MAX,
            TooLarge,
        ),
    ]
}

/// Hostile `(ptr, cap)` output buffers; every one is BadPointer.
fn bad_outputs() -> Vec<(&'static str, i32, i32)> {
    vec![
        ("negative pointer", -1, 16),
        ("most negative pointer", i32::MIN, 16),
        ("negative capacity", OUT.ptr, -1),
        ("one byte past the end", MEM, 1),
        ("straddling the end", MEM - 8, 16),
        ("empty buffer past the end", MEM + 1, 0),
        ("capacity reaching past the end", OUT.ptr, i32::MAX),
        ("both at i32::MAX", i32::MAX, i32::MAX),
    ]
}

#[tokio::test]
async fn every_pointer_into_every_import_is_bounds_checked() {
    let mut c = Checks::default();
    c.expect(
        "state_set prepares an entity to read",
        format!("(call $state_set {MINE} {ON} {OBJECT})"),
        Want::AtLeast(0),
    );
    c.expect(
        "kv_set prepares a key to read",
        format!("(call $kv_set {KEY} {ON})"),
        Status::Ok,
    );
    // Every buffer the host reads, with `BUF` standing for it; the other arguments are valid.
    let payloads = [
        ("log message", "(call $log (i32.const 1) BUF)".to_owned()),
        ("error message", "(call $error BUF)".to_owned()),
        (
            "state_set state",
            format!("(call $state_set {MINE} BUF {OBJECT})"),
        ),
        (
            "state_set attributes",
            format!("(call $state_set {MINE} {ON} BUF)"),
        ),
        ("event_fire data", format!("(call $event_fire {EVENT} BUF)")),
        ("kv_set value", format!("(call $kv_set {KEY} BUF)")),
    ];
    let names = [
        ("state_get id", format!("(call $state_get BUF {OUT})")),
        (
            "state_set id",
            format!("(call $state_set BUF {ON} {OBJECT})"),
        ),
        ("state_remove id", "(call $state_remove BUF)".to_owned()),
        ("subscribe pattern", "(call $subscribe BUF)".to_owned()),
        (
            "subscribe_event type",
            "(call $subscribe_event BUF)".to_owned(),
        ),
        (
            "service_register name",
            "(call $service_register BUF)".to_owned(),
        ),
        (
            "event_fire type",
            format!("(call $event_fire BUF {OBJECT})"),
        ),
        ("kv_get key", format!("(call $kv_get BUF {OUT})")),
        ("kv_set key", format!("(call $kv_set BUF {ON})")),
        ("kv_delete key", "(call $kv_delete BUF)".to_owned()),
    ];
    // And every buffer it writes (after finding something to write).
    let outputs = [
        ("state_get output", format!("(call $state_get {MINE} BUF)")),
        ("kv_get output", format!("(call $kv_get {KEY} BUF)")),
    ];
    for (args, limit) in [(&payloads[..], PAYLOAD), (&names[..], MAX_NAME)] {
        for (what, p, l, want) in bad_inputs(limit) {
            for (arg, call) in args {
                c.expect(
                    format!("{arg}: {what}"),
                    call.replace("BUF", &raw(p, l)),
                    want,
                );
            }
        }
    }
    for (what, p, l) in bad_outputs() {
        for (arg, call) in &outputs {
            c.expect(
                format!("{arg}: {what}"),
                call.replace("BUF", &raw(p, l)),
                Status::BadPointer,
            );
        }
    }
    // Lengths at the limit are not too large; what they hold is judged on its own.
    let top_page = raw(MEM - PAYLOAD, PAYLOAD);
    c.expect(
        "log of exactly MAX_PAYLOAD bytes",
        format!("(call $log (i32.const 1) {top_page})"),
        Status::Ok,
    );
    c.expect(
        "state of exactly MAX_PAYLOAD bytes",
        format!("(call $state_set {MINE} {top_page} {OBJECT})"),
        Status::InvalidState,
    );
    c.expect(
        "entity id of exactly 255 bytes",
        format!("(call $state_get {} {OUT})", raw(MEM - MAX_NAME, MAX_NAME)),
        Status::InvalidEntityId,
    );
    // An empty buffer ending exactly at the end of memory is in bounds: the result waits.
    c.expect(
        "take_result with nothing pending",
        format!("(call $take_result {OUT})"),
        Status::NotFound,
    );
    c.expect(
        "state_get into an empty buffer at the end of memory",
        format!("(call $state_get {MINE} {})", raw(MEM, 0)),
        Want::AtLeast(1),
    );
    for (what, p, l) in bad_outputs() {
        let b = raw(p, l);
        c.expect(
            format!("take_result output: {what}"),
            format!("(call $take_result {b})"),
            Status::BadPointer,
        );
    }
    c.expect(
        "the pending result survives the refused take_result calls",
        format!("(call $take_result {OUT})"),
        Want::AtLeast(1),
    );
    c.expect(
        "and is gone once taken",
        format!("(call $take_result {OUT})"),
        Status::NotFound,
    );

    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let spec = wasm_spec(
        "pointers",
        all_permissions(),
        json!({}),
        checking_guest(&c).bytes(),
    );
    let info = load_checked(&registry, spec, &c).await;
    assert_eq!(info.lifecycle, Lifecycle::Running);
    neighbour.trigger(&home, 3);
    let info = checks_passed(&registry, "pointers", 3, &c).await;
    assert_eq!(info.stats.events, 3);
    assert_eq!(
        state_of(&home, "hostile.entity").as_deref(),
        Some("on"),
        "no refused write got through"
    );
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn text_json_and_arguments_are_validated() {
    // 20,000 nested arrays: the host's JSON parser must refuse it, not overflow its stack.
    const DEEP: i32 = 100 * 1024;
    let deep = raw(DEEP, 20_000);
    let mut c = Checks::default();
    // Invalid UTF-8 in every text argument; values are bytes and may hold anything.
    let bad = BAD_UTF8;
    c.expect(
        "log message",
        format!("(call $log (i32.const 1) {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "error message",
        format!("(call $error {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "state_get id",
        format!("(call $state_get {bad} {OUT})"),
        Status::BadUtf8,
    );
    c.expect(
        "state_set id",
        format!("(call $state_set {bad} {ON} {OBJECT})"),
        Status::BadUtf8,
    );
    c.expect(
        "state_set state",
        format!("(call $state_set {MINE} {bad} {OBJECT})"),
        Status::BadUtf8,
    );
    c.expect(
        "state_set attributes",
        format!("(call $state_set {MINE} {ON} {bad})"),
        Status::BadJson,
    );
    c.expect(
        "state_remove id",
        format!("(call $state_remove {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "subscribe pattern",
        format!("(call $subscribe {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "subscribe_event type",
        format!("(call $subscribe_event {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "service_register name",
        format!("(call $service_register {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "event_fire type",
        format!("(call $event_fire {bad} {OBJECT})"),
        Status::BadUtf8,
    );
    c.expect(
        "event_fire data",
        format!("(call $event_fire {EVENT} {bad})"),
        Status::BadJson,
    );
    c.expect(
        "kv_get key",
        format!("(call $kv_get {bad} {OUT})"),
        Status::BadUtf8,
    );
    c.expect(
        "kv_set key",
        format!("(call $kv_set {bad} {ON})"),
        Status::BadUtf8,
    );
    c.expect(
        "kv_delete key",
        format!("(call $kv_delete {bad})"),
        Status::BadUtf8,
    );
    c.expect(
        "kv_set value of any bytes",
        format!("(call $kv_set {KEY} {bad})"),
        Status::Ok,
    );
    c.expect(
        "kv_get returns them",
        format!("(call $kv_get {KEY} {OUT})"),
        Want::Value(BAD_UTF8.len()),
    );
    // Attributes and event data: JSON objects only.
    for (what, span) in [
        ("truncated", BAD_JSON),
        ("array", ARRAY),
        ("null", NULL),
        ("number", NUMBER),
        ("string", STRING),
    ] {
        let want = if what == "truncated" {
            Status::BadJson
        } else {
            Status::NotAnObject
        };
        c.expect(
            format!("state_set attributes: {what}"),
            format!("(call $state_set {MINE} {ON} {span})"),
            want,
        );
        c.expect(
            format!("event_fire data: {what}"),
            format!("(call $event_fire {EVENT} {span})"),
            want,
        );
    }
    c.expect(
        "state_set attributes nested 20,000 deep",
        format!("(call $state_set {MINE} {ON} {deep})"),
        Status::BadJson,
    );
    c.expect(
        "event_fire data nested 20,000 deep",
        format!("(call $event_fire {EVENT} {deep})"),
        Status::BadJson,
    );
    c.expect(
        "attributes of length 0 are none, wherever they point",
        format!("(call $state_set {MINE} {ON} {})", BAD_JSON.empty()),
        Want::AtLeast(0),
    );
    // Names and states.
    c.expect(
        "state_get: invalid entity id",
        format!("(call $state_get {BAD_ID} {OUT})"),
        Status::InvalidEntityId,
    );
    c.expect(
        "state_get: absent entity",
        format!("(call $state_get {SECRET} {OUT})"),
        Status::NotFound,
    );
    c.expect(
        "state_set: invalid entity id",
        format!("(call $state_set {BAD_ID} {ON} {OBJECT})"),
        Status::InvalidEntityId,
    );
    c.expect(
        "state_set: state of 256 characters",
        format!("(call $state_set {MINE} {} {OBJECT})", raw(MEM - 256, 256)),
        Status::InvalidState,
    );
    c.expect(
        "state_remove: invalid entity id",
        format!("(call $state_remove {BAD_ID})"),
        Status::InvalidEntityId,
    );
    c.expect(
        "subscribe: invalid glob",
        format!("(call $subscribe {BAD_ID})"),
        Status::InvalidName,
    );
    c.expect(
        "subscribe: empty glob",
        format!("(call $subscribe {})", ON.empty()),
        Status::InvalidName,
    );
    c.expect(
        "subscribe_event: invalid type",
        format!("(call $subscribe_event {BAD_ID})"),
        Status::InvalidName,
    );
    c.expect(
        "service_register: invalid name",
        format!("(call $service_register {BAD_ID})"),
        Status::InvalidName,
    );
    c.expect(
        "event_fire: invalid type",
        format!("(call $event_fire {BAD_ID} {OBJECT})"),
        Status::InvalidName,
    );
    c.expect(
        "kv_set: empty key",
        format!("(call $kv_set {} {ON})", KEY.empty()),
        Status::InvalidName,
    );
    // Arguments out of range.
    for level in [-1, 4, i32::MAX] {
        c.expect(
            format!("log level {level}"),
            format!("(call $log (i32.const {level}) {ON})"),
            Status::InvalidArgument,
        );
    }
    c.expect(
        "log level is checked before the pointer",
        format!("(call $log (i32.const 9) {})", raw(-1, -1)),
        Status::InvalidArgument,
    );
    c.expect(
        "timer_start: negative delay",
        "(call $timer_start (i64.const 5000) (i64.const -1))",
        Status::InvalidArgument,
    );
    c.expect(
        "timer_start: most negative delay",
        format!(
            "(call $timer_start (i64.const 5000) (i64.const {}))",
            i64::MIN
        ),
        Status::InvalidArgument,
    );
    c.expect(
        "timer_start: more than a week",
        "(call $timer_start (i64.const 5000) (i64.const 604800001))",
        Status::InvalidArgument,
    );
    c.expect(
        "timer_cancel: never started",
        "(call $timer_cancel (i64.const 5000))",
        Want::Value(0),
    );
    c.expect(
        "timer_start: any token",
        format!(
            "(call $timer_start (i64.const {}) (i64.const 604800000))",
            i64::MIN
        ),
        Status::Ok,
    );
    c.expect(
        "timer_cancel: that token",
        format!("(call $timer_cancel (i64.const {}))", i64::MIN),
        Want::Value(1),
    );
    c.expect(
        "more than MAX_TIMERS pending timers",
        "(call $many_timers)",
        Status::QuotaExceeded,
    );
    c.expect(
        "time_monotonic_ns is never negative",
        "(i32.wrap_i64 (i64.shr_u (call $time_monotonic_ns) (i64.const 63)))",
        Want::Value(0),
    );

    let mut guest = checking_guest(&c);
    guest.data.push_str(&data_segment(DEEP, &[b'['; 20_000]));
    // Starts timers 0..=1024 a week out, cancels them all, and answers the 1025th's status.
    guest.funcs.push_str(
        "(func $many_timers (result i32) (local $i i64) (local $r i32)
           (loop $next
             (local.set $r (call $timer_start (local.get $i) (i64.const 604800000)))
             (local.set $i (i64.add (local.get $i) (i64.const 1)))
             (br_if $next (i64.lt_u (local.get $i) (i64.const 1025))))
           (loop $cancel
             (local.set $i (i64.sub (local.get $i) (i64.const 1)))
             (drop (call $timer_cancel (local.get $i)))
             (br_if $cancel (i64.ne (local.get $i) (i64.const 0))))
           (local.get $r))",
    );
    // Each run of the checks starts over a thousand timers: far over the default budget of
    // timers (issue 13 §2), which this test is not about. The operator allows more, and the
    // manifest asks for it.
    let policy = fast_policy();
    let (home, registry) = registry_with(
        WasmtimeConfig::default(),
        homecore_plugins::HostPolicy {
            limits: homecore_plugins::ResourceLimits {
                timers_per_second: Some(1_000_000),
                ..policy.limits
            },
            ..policy
        },
    );
    let mut neighbour = Neighbour::load(&registry).await;
    let limits = json!({"timers_per_second": 1_000_000});
    let spec = wasm_spec("texts", all_permissions(), limits, guest.bytes());
    load_checked(&registry, spec, &c).await;
    neighbour.trigger(&home, 2);
    checks_passed(&registry, "texts", 2, &c).await;
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_70_kib_payload_is_too_large_and_changes_nothing() {
    let big = raw(0, 70 * 1024);
    let mut c = Checks::default();
    c.expect(
        "a 70 KiB state",
        format!("(call $state_set {MINE} {big} {OBJECT})"),
        Status::TooLarge,
    );
    c.expect(
        "70 KiB of attributes",
        format!("(call $state_set {MINE} {ON} {big})"),
        Status::TooLarge,
    );
    c.expect(
        "70 KiB of event data",
        format!("(call $event_fire {EVENT} {big})"),
        Status::TooLarge,
    );
    c.expect(
        "a 70 KiB stored value",
        format!("(call $kv_set {KEY} {big})"),
        Status::TooLarge,
    );
    c.expect(
        "a 70 KiB log line",
        format!("(call $log (i32.const 2) {big})"),
        Status::TooLarge,
    );
    c.expect(
        "a 70 KiB error message",
        format!("(call $error {big})"),
        Status::TooLarge,
    );
    c.expect(
        "nothing was stored",
        format!("(call $kv_get {KEY} {OUT})"),
        Status::NotFound,
    );

    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let spec = wasm_spec(
        "large",
        all_permissions(),
        json!({}),
        checking_guest(&c).bytes(),
    );
    load_checked(&registry, spec, &c).await;
    neighbour.trigger(&home, 2);
    checks_passed(&registry, "large", 2, &c).await;
    assert_eq!(
        state_of(&home, "hostile.entity"),
        None,
        "no state was written"
    );
    neighbour.assert_unharmed(&registry).await;
}

/// Calls a plugin is not granted, made by a plugin whose manifest does not declare them and
/// by one whose manifest does but whose operator grant does not.
fn denied_checks() -> Checks {
    let mut c = Checks::default();
    c.expect(
        "read a foreign entity",
        format!("(call $state_get {SECRET} {OUT})"),
        Status::Denied,
    );
    c.expect(
        "write a foreign entity",
        format!("(call $state_set {SECRET} {ON} {OBJECT})"),
        Status::Denied,
    );
    c.expect(
        "remove a foreign entity",
        format!("(call $state_remove {SECRET})"),
        Status::Denied,
    );
    c.expect(
        "subscribe to foreign entities",
        format!("(call $subscribe {SENSORS})"),
        Status::Denied,
    );
    c.expect(
        "subscribe to everything",
        format!("(call $subscribe {ANY})"),
        Status::Denied,
    );
    c.expect(
        "subscribe to an event type",
        format!("(call $subscribe_event {DOORBELL})"),
        Status::Denied,
    );
    c.expect(
        "fire an event",
        format!("(call $event_fire {DOORBELL} {OBJECT})"),
        Status::Denied,
    );
    c.expect(
        "read storage",
        format!("(call $kv_get {KEY} {OUT})"),
        Status::Denied,
    );
    c.expect(
        "write storage",
        format!("(call $kv_set {KEY} {ON})"),
        Status::Denied,
    );
    c.expect(
        "delete from storage",
        format!("(call $kv_delete {KEY})"),
        Status::Denied,
    );
    // What is granted still works.
    c.expect(
        "write an own entity",
        format!("(call $state_set {MINE} {ON} {OBJECT})"),
        Want::AtLeast(0),
    );
    c.expect(
        "read it back",
        format!("(call $state_get {MINE} {OUT})"),
        Want::AtLeast(1),
    );
    c
}

const DENIALS_PER_RUN: u64 = 10;

#[tokio::test]
async fn calls_not_granted_are_denied_and_counted() {
    let c = denied_checks();
    let narrow =
        json!({"states_read": ["sensor.trigger", "hostile.*"], "states_write": ["hostile.*"]});
    let grant: Permissions = serde_json::from_value(narrow.clone()).expect("valid permissions");
    let undeclared = wasm_spec("undeclared", narrow, json!({}), checking_guest(&c).bytes());
    let ungranted = wasm_spec(
        "ungranted",
        all_permissions(),
        json!({}),
        checking_guest(&c).bytes(),
    )
    .with_grant(grant);
    for spec in [undeclared, ungranted] {
        let domain = spec.manifest.domain.clone();
        let (home, registry) = hostile_registry();
        let mut neighbour = Neighbour::load(&registry).await;
        neighbour.write(&home, "sensor.secret");
        load_checked(&registry, spec, &c).await;
        neighbour.trigger(&home, 2);
        let info = checks_passed(&registry, &domain, 2, &c).await;
        // Setup and two events each made every denied call once.
        assert_eq!(
            info.stats.denied,
            3 * DENIALS_PER_RUN,
            "{domain}: every denial counted once"
        );
        assert_eq!(
            state_of(&home, "sensor.secret").as_deref(),
            Some("1"),
            "the foreign entity is untouched"
        );
        neighbour.assert_unharmed(&registry).await;
    }
}

/// A guest that, on its first event after setup, calls state_set a million times (1 KiB of
/// attributes each) and checks that exactly `host_calls_per_call` were accepted and the rest
/// answered QuotaExceeded (time_monotonic_ns too); on every later event it writes
/// `hostile.flag`, so the test knows the flood's call is over.
fn flooder(accepted: i32, attributes: i32) -> Guest {
    let attrs = raw(65536, attributes);
    let mut guest = Guest::hostile().arm_after_setup();
    guest
        .data
        .push_str(&data_segment(65536, &json_object_of(attributes as usize)));
    guest.on_state_changed = format!(
        "(local $i i32) (local $ok i32) (local $refused i32) (local $r i32)
        (if (i32.eqz (global.get $armed)) (then (return (i32.const 0))))
        (if (i32.eq (global.get $armed) (i32.const 2))
          (then (return (select (i32.const 0) (i32.const -1) (i32.ge_s (call $state_set {FLAG} {ON} {}) (i32.const 0))))))
        (global.set $armed (i32.const 2))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (i32.const 1000000)))
          ;; alternate the state between 'a' and 'b' so every accepted write changes something
          (i32.store8 (i32.const {on}) (i32.add (i32.const 97) (i32.and (local.get $i) (i32.const 1))))
          (local.set $r (call $state_set {MINE} {ON} {attrs}))
          (if (i32.eq (local.get $r) (i32.const 1))
            (then (local.set $ok (i32.add (local.get $ok) (i32.const 1))))
            (else (if (i32.eq (local.get $r) (i32.const -12))
              (then (local.set $refused (i32.add (local.get $refused) (i32.const 1))))
              (else (return (i32.sub (i32.const 3000000) (local.get $r)))))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
        (if (i32.ne (local.get $ok) (i32.const {accepted})) (then (return (i32.add (i32.const 1000000) (local.get $ok)))))
        (if (i32.ne (local.get $refused) (i32.const {refused})) (then (return (i32.const 2000000))))
        (if (i64.ne (call $time_monotonic_ns) (i64.const -12)) (then (return (i32.const 2000001))))
        (if (i32.ne (call $take_result {OUT}) (i32.const -12)) (then (return (i32.const 2000002))))
        (i32.const 0)",
        OBJECT.empty(),
        on = ON.ptr,
        refused = 1_000_000 - accepted,
    );
    guest
}

#[tokio::test]
async fn a_million_host_calls_in_one_call_are_cut_off_by_the_quota() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let limits = json!({"host_calls_per_call": 1000, "fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 10_000});
    let permissions = json!({"states_read": ["sensor.trigger"], "states_write": ["hostile.*"]});
    registry
        .load(wasm_spec(
            "flood",
            permissions,
            limits,
            flooder(1000, 1024).bytes(),
        ))
        .await
        .expect("starts");
    let published = home.bus.published();
    neighbour.trigger(&home, 2);
    eventually("the flood's call to end", || {
        state_of(&home, "hostile.flag").is_some()
            || registry.get("flood").is_some_and(|i| i.stats.errors > 0)
    })
    .await;
    let info = registry.get("flood").expect("listed");
    assert_eq!(info.stats.errors, 0, "{:?}", info.health.last_error);
    assert_eq!(info.lifecycle, Lifecycle::Running);
    // One subscribe in setup, 1000 accepted writes, one flag write: the other 999,000 calls
    // never reached the host.
    assert_eq!(info.stats.host_calls, 1 + 1000 + 1);
    // 1000 writes of about 1 KiB, two triggers and the flag: about a megabyte, not a gigabyte.
    assert_eq!(home.bus.published() - published, 1000 + 2 + 1);
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_write_refused_for_the_byte_quota_has_no_effect() {
    // 1 MiB per call: 17 writes of 1 + 61,440 bytes fit, the 18th does not.
    const ATTRIBUTES: i32 = 60 * 1024;
    const FIT: i32 = (1 << 20) / (1 + ATTRIBUTES);
    let home = homecore::Home::new();
    let config = WasmtimeConfig {
        bytes_per_call: 1 << 20,
        ..WasmtimeConfig::default()
    };
    let storage = Arc::new(MemoryStorage::new());
    let registry = PluginRegistry::builder(home.clone())
        .runtime(Arc::new(
            homecore_plugins::WasmtimeRuntime::new(config).expect("engine"),
        ))
        .storage(Arc::clone(&storage) as Arc<dyn PluginStorage>)
        .policy(fast_policy())
        .build();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile().arm_after_setup();
    let attrs = raw(65536, ATTRIBUTES);
    guest
        .data
        .push_str(&data_segment(65536, &json_object_of(ATTRIBUTES as usize)));
    guest.on_state_changed = format!(
        "(local $i i32) (local $r i32)
        (if (i32.eqz (global.get $armed)) (then (return (i32.const 0))))
        (if (i32.eq (global.get $armed) (i32.const 2))
          (then (return (select (i32.const 0) (i32.const -1) (i32.ge_s (call $state_set {FLAG} {ON} {empty}) (i32.const 0))))))
        (global.set $armed (i32.const 2))
        (block $done (loop $next
          (i32.store8 (i32.const {on}) (i32.add (i32.const 97) (local.get $i)))
          (local.set $r (call $state_set {MINE} (i32.const {on}) (i32.const 1) {attrs}))
          (br_if $done (i32.eq (local.get $r) (i32.const -12)))
          (if (i32.ne (local.get $r) (i32.const 1)) (then (return (i32.sub (i32.const 3000000) (local.get $r)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
        (if (i32.ne (local.get $i) (i32.const {FIT})) (then (return (i32.add (i32.const 1000000) (local.get $i)))))
        (if (i32.ne (call $kv_set {KEY} {attrs}) (i32.const -12)) (then (return (i32.const 2000000))))
        (i32.const 0)",
        on = ON.ptr,
        empty = OBJECT.empty(),
    );
    let permissions =
        json!({"states_read": ["sensor.trigger"], "states_write": ["hostile.*"], "storage": true});
    registry
        .load(wasm_spec("bytes", permissions, json!({}), guest.bytes()))
        .await
        .expect("starts");
    neighbour.trigger(&home, 2);
    eventually("the writing call to end", || {
        state_of(&home, "hostile.flag").is_some()
            || registry.get("bytes").is_some_and(|i| i.stats.errors > 0)
    })
    .await;
    let info = registry.get("bytes").expect("listed");
    assert_eq!(info.stats.errors, 0, "{:?}", info.health.last_error);
    let last_accepted = char::from(b'a' + u8::try_from(FIT).expect("a letter") - 1).to_string();
    assert_eq!(
        state_of(&home, "hostile.entity"),
        Some(last_accepted),
        "the refused write did not happen"
    );
    assert_eq!(
        storage.get("bytes", "key"),
        None,
        "the refused value was not stored"
    );
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_plugin_writing_what_it_listens_to_is_stopped_by_the_loop_guard() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile();
    guest.setup = format!("(call $subscribe {MINE})");
    guest.data.push_str("(global $n (mut i32) (i32.const 0))");
    // Each event writes the next letter to the entity it listens to; a refused write's status
    // becomes the call's.
    guest.on_state_changed = format!(
        "(local $r i32)
        (i32.store8 (i32.const {on}) (i32.add (i32.const 97) (global.get $n)))
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (local.set $r (call $state_set {MINE} (i32.const {on}) (i32.const 1) {}))
        (select (i32.const 0) (local.get $r) (i32.eq (local.get $r) (i32.const 1)))",
        OBJECT.empty(),
        on = ON.ptr,
    );
    let permissions =
        json!({"states_read": ["hostile.*", "sensor.trigger"], "states_write": ["hostile.*"]});
    registry
        .load(wasm_spec("echo", permissions, json!({}), guest.bytes()))
        .await
        .expect("starts");
    set(&home, "hostile.entity", "start");
    let info = failed_calls(&registry, "echo", 1).await;
    assert_last_error(&info, &format!("guest returned {}", Status::LoopGuard));
    // The outside write, then one reaction per level: the write at depth 17 is refused.
    let depth = u64::from(MAX_CONTEXT_DEPTH);
    assert_eq!(info.stats.events, depth + 1);
    let last =
        char::from(b'a' + u8::try_from(MAX_CONTEXT_DEPTH).expect("a letter") - 1).to_string();
    assert_eq!(state_of(&home, "hostile.entity"), Some(last));
    assert_eq!(home.bus.loop_guard_refusals(), 1);
    assert_eq!(
        info.lifecycle,
        Lifecycle::Running,
        "one refused write is no reason for quarantine"
    );
    // The chain is over; the plugin still handles what comes next.
    let published = home.bus.published();
    neighbour.trigger(&home, 2);
    neighbour.assert_unharmed(&registry).await;
    assert_eq!(
        home.bus.published(),
        published + 2 + 3,
        "only the neighbour's writes were published"
    );
    assert_eq!(
        registry.get("echo").expect("listed").stats.events,
        depth + 1
    );
}

const SERVICE_CALL_BUG: &str = "bug: a guest importing service_call (an async import) fails setup: hc_alloc is called with the sync TypedFunc::call, which Wasmtime refuses on a store with async imports";

#[tokio::test]
async fn a_guest_importing_service_call_starts() {
    let (_home, registry) = hostile_registry();
    let guest = Guest {
        imports: SERVICE_CALL_IMPORT.into(),
        ..Guest::default()
    };
    let info = registry
        .load(wasm_spec("caller", json!({}), json!({}), guest.bytes()))
        .await
        .unwrap_or_else(|e| panic!("{SERVICE_CALL_BUG}: {e}"));
    assert_eq!(info.lifecycle, Lifecycle::Running);
}

#[tokio::test]
async fn service_call_requests_and_outputs_are_checked() {
    let mut c = Checks::default();
    for (what, p, l, want) in bad_inputs(PAYLOAD) {
        c.expect(
            format!("request: {what}"),
            format!("(call $service_call {} {OUT})", raw(p, l)),
            want,
        );
    }
    for (what, p, l) in bad_outputs() {
        // The output buffer is checked before the request is even read.
        c.expect(
            format!("output: {what}"),
            format!("(call $service_call {REQUEST} {})", raw(p, l)),
            Status::BadPointer,
        );
    }
    c.expect(
        "invalid UTF-8",
        format!("(call $service_call {BAD_UTF8} {OUT})"),
        Status::BadJson,
    );
    c.expect(
        "truncated JSON",
        format!("(call $service_call {BAD_JSON} {OUT})"),
        Status::BadJson,
    );
    c.expect(
        "nested 20,000 deep",
        format!("(call $service_call {} {OUT})", raw(100 * 1024, 20_000)),
        Status::BadJson,
    );
    c.expect(
        "not a request",
        format!("(call $service_call {ARRAY} {OUT})"),
        Status::BadJson,
    );
    c.expect(
        "no domain",
        format!("(call $service_call {REQUEST_SHAPE} {OUT})"),
        Status::BadJson,
    );
    c.expect(
        "data not an object",
        format!("(call $service_call {REQUEST_ARRAY} {OUT})"),
        Status::NotAnObject,
    );
    c.expect(
        "a 70 KiB request",
        format!("(call $service_call {} {OUT})", raw(0, 70 * 1024)),
        Status::TooLarge,
    );
    c.expect(
        "a service nobody provides",
        format!("(call $service_call {REQUEST} {OUT})"),
        Status::UnknownService,
    );
    c.expect(
        "a service not granted",
        format!("(call $service_call {NEIGHBOUR_REQUEST} {OUT})"),
        Status::Denied,
    );
    let mut guest = checking_guest(&c);
    guest.imports.push_str(SERVICE_CALL_IMPORT);
    guest
        .data
        .push_str(&data_segment(100 * 1024, &[b'['; 20_000]));
    let permissions = json!({"states_read": ["sensor.trigger"], "states_write": ["hostile.*"], "services": ["nope.*"]});
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    load_checked(
        &registry,
        wasm_spec("requests", permissions, json!({}), guest.bytes()),
        &c,
    )
    .await;
    neighbour.trigger(&home, 2);
    let info = checks_passed(&registry, "requests", 2, &c).await;
    assert_eq!(info.stats.denied, 3);
    assert_eq!(
        state_of(&home, "sensor.called"),
        None,
        "the neighbour's service never ran"
    );
    neighbour.assert_unharmed(&registry).await;
}

/// A service that never answers.
struct Hang;

#[async_trait::async_trait]
impl homecore::ServiceHandler for Hang {
    async fn call(
        &self,
        _call: homecore::ServiceCall,
    ) -> Result<Option<serde_json::Value>, homecore::ServiceError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_service_call_that_never_answers_times_out_at_the_call_deadline() {
    let (home, registry) = hostile_registry();
    home.services
        .register(
            homecore::ServiceName::new("slow", "hang").expect("valid"),
            Arc::new(Hang),
        )
        .expect("registered");
    let mut neighbour = Neighbour::load(&registry).await;
    let mut guest = Guest::hostile();
    guest.imports.push_str(SERVICE_CALL_IMPORT);
    guest.on_state_changed = format!("(drop (call $service_call {HANG} {OUT})) (i32.const 0)");
    let permissions = json!({"states_read": ["sensor.trigger"], "services": ["slow.*"]});
    registry
        .load(wasm_spec(
            "waiter",
            permissions,
            json!({"call_timeout_ms": 50}),
            guest.bytes(),
        ))
        .await
        .expect("loads");
    neighbour.trigger(&home, 2);
    let info = failed_calls(&registry, "waiter", 2).await;
    assert_last_error(&info, "call exceeded its 50 ms deadline");
    assert_eq!(info.stats.events, 2, "{info:?}");
    neighbour.assert_unharmed(&registry).await;
}
