//! The runtime's basics: load, deliver, write back through an import, limits, errors at load.

use std::time::Duration;

use homecore_plugins::{Lifecycle, LoadError, RegistryError};
use serde_json::json;

use super::guests::*;
use crate::support::{set, settle, state_of};

/// On every event, writes `sensor.seen` = "1" through state_set.
fn writer() -> Guest {
    Guest {
        imports: r#"(import "homecore_v1" "state_set" (func $state_set (param i32 i32 i32 i32 i32 i32) (result i32)))"#.into(),
        data: r#"(data (i32.const 16) "sensor.seen") (data (i32.const 32) "1")"#.into(),
        on_state_changed: "(drop (call $state_set (i32.const 16) (i32.const 11) (i32.const 32) (i32.const 1) (i32.const 0) (i32.const 0))) (i32.const 0)".into(),
        ..Guest::default()
    }
}

#[tokio::test]
async fn a_wat_guest_receives_events_and_writes_through_the_abi() {
    let (home, registry, wasm) = home_with_wasm();
    let mut guest = writer();
    guest.imports.push_str(
        r#"(import "homecore_v1" "subscribe" (func $subscribe (param i32 i32) (result i32)))"#,
    );
    guest.data.push_str(r#"(data (i32.const 48) "light.*")"#);
    guest.setup = "(call $subscribe (i32.const 48) (i32.const 7))".into();
    let spec = wasm_spec(
        "writer",
        json!({"states_read": ["light.*"], "states_write": ["sensor.*"]}),
        json!({}),
        guest.bytes(),
    );
    let info = registry.load(spec.clone()).await.expect("loads");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    set(&registry.home().clone(), "light.hall", "on");
    for _ in 0..50 {
        if state_of(&home, "sensor.seen").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(state_of(&home, "sensor.seen").as_deref(), Some("1"));
    let written = home.states.get_str("sensor.seen").expect("written");
    assert_eq!(written.context().origin.as_deref(), Some("writer"));
    // Loading the same bytes again does not compile again.
    assert_eq!(wasm.compiled_modules(), 1);
    registry.reload("writer").await.expect("reloads");
    assert_eq!(wasm.compiled_modules(), 1);
    settle().await;
}

#[tokio::test]
async fn wrong_or_missing_abi_versions_and_bad_modules_are_refused_at_load() {
    let (_home, registry, _wasm) = home_with_wasm();
    type Expect = Box<dyn Fn(&LoadError) -> bool>;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "noabi",
            Guest { abi_section: None, ..Guest::default() }.bytes(),
            Box::new(|e| matches!(e, LoadError::MissingAbiVersion { .. })),
        ),
        (
            "abitwo",
            Guest { abi_section: Some("\\02\\00\\00\\00"), ..Guest::default() }.bytes(),
            Box::new(|e| matches!(e, LoadError::UnsupportedAbiVersion { found: 2, .. })),
        ),
        (
            "noexport",
            Guest { omit: vec!["hc_on_state_changed"], ..Guest::default() }.bytes(),
            Box::new(|e| matches!(e, LoadError::MissingExport { name: "hc_on_state_changed" })),
        ),
        (
            "strangeimport",
            Guest { imports: r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#.into(), ..Guest::default() }.bytes(),
            Box::new(|e| matches!(e, LoadError::UnknownImport { name, .. } if name == "fd_write")),
        ),
        (
            "badsig",
            Guest { imports: r#"(import "homecore_v1" "log" (func (param i32) (result i32)))"#.into(), ..Guest::default() }.bytes(),
            Box::new(|e| matches!(e, LoadError::WrongSignature { kind: "import", name, .. } if name == "log")),
        ),
        (
            "truncated",
            {
                let mut b = Guest::default().bytes();
                b.truncate(b.len() / 2);
                b
            },
            Box::new(|e| matches!(e, LoadError::InvalidModule { .. })),
        ),
    ];
    for (domain, bytes, expected) in cases {
        let err = registry
            .load(wasm_spec(domain, json!({}), json!({}), bytes))
            .await
            .expect_err(domain);
        match &err {
            RegistryError::Load { source, .. } => {
                assert!(expected(source), "{domain}: unexpected {source:?}")
            }
            other => panic!("{domain}: expected a load error, got {other:?}"),
        }
        assert!(!err.to_string().is_empty());
        assert_eq!(
            registry.get(domain).expect("listed").lifecycle,
            Lifecycle::Failed
        );
    }
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_fuel_or_deadline_and_the_plugin_recovers() {
    let (home, registry, _wasm) = home_with_wasm();
    let mut guest = writer();
    guest.imports.push_str(
        r#"(import "homecore_v1" "subscribe" (func $subscribe (param i32 i32) (result i32)))"#,
    );
    guest.data.push_str(r#"(data (i32.const 48) "light.*")"#);
    guest.setup = "(call $subscribe (i32.const 48) (i32.const 7))".into();
    // Loops forever when the event's first byte is '{' and "loop" appears... simply: loop on
    // the first event only, using a global flag.
    guest
        .data
        .push_str("(global $first (mut i32) (i32.const 1))");
    guest.on_state_changed = "(if (global.get $first) (then (global.set $first (i32.const 0)) (loop $l (br $l)))) (drop (call $state_set (i32.const 16) (i32.const 11) (i32.const 32) (i32.const 1) (i32.const 0) (i32.const 0))) (i32.const 0)".into();
    let spec = wasm_spec(
        "looper",
        json!({"states_read": ["light.*"], "states_write": ["sensor.*"]}),
        json!({"fuel_per_call": 5_000_000, "call_timeout_ms": 200}),
        guest.bytes(),
    );
    registry.load(spec).await.expect("loads");
    set(&home, "light.a", "1");
    set(&home, "light.a", "2");
    for _ in 0..200 {
        if state_of(&home, "sensor.seen").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The re-instantiated guest has $first = 1 again; it loops once more on "2"? No: setup
    // runs again on the fresh instance, and the fresh instance loops on its first event too.
    let info = registry.get("looper").expect("listed");
    assert!(info.stats.errors >= 1, "{info:?}");
    assert!(
        info.health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("fuel exhausted") || e.contains("deadline")),
        "{info:?}"
    );
    assert_eq!(info.lifecycle, Lifecycle::Running);
}

/// The linker provides every import of the frozen table, with its exact signature.
#[tokio::test]
async fn the_linker_provides_every_abi_v1_import() {
    use homecore_abi::v1::{IMPORT_MODULE, IMPORTS, ValType};
    let wat_type = |t: &ValType| match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
    };
    let imports: String = IMPORTS
        .iter()
        .map(|f| {
            let params: Vec<&str> = f.params.iter().map(wat_type).collect();
            let results: Vec<&str> = f.results.iter().map(wat_type).collect();
            format!(
                "(import \"{IMPORT_MODULE}\" \"{}\" (func (param {}) (result {})))\n",
                f.name,
                params.join(" "),
                results.join(" ")
            )
        })
        .collect();
    let guest = Guest {
        imports,
        ..Guest::default()
    };
    let (_home, _registry, wasm) = home_with_wasm();
    wasm.prepare(std::sync::Arc::from(guest.bytes()))
        .await
        .expect("every import in the table is provided by the linker");
    assert_eq!(IMPORTS.len(), 17);
}

#[tokio::test]
async fn modules_that_differ_only_in_the_middle_are_linked_separately() {
    // Same length, same first and last 4 KiB (the memo's fingerprint), one byte apart in the
    // middle of a 24 KiB data segment: the memo must compare the bytes, not trust the
    // fingerprint.
    let module = |middle: u8| {
        let mut bytes = vec![b'x'; 24 * 1024];
        bytes[12 * 1024] = middle;
        Guest {
            data: data_segment(1024, &bytes),
            ..Guest::default()
        }
        .bytes()
    };
    let (a, b) = (module(b'a'), module(b'b'));
    assert_eq!(a.len(), b.len());
    assert_eq!(a[..4096], b[..4096]);
    assert_eq!(a[a.len() - 4096..], b[b.len() - 4096..]);
    assert_ne!(a, b);
    let (_home, _registry, wasm) = home_with_wasm();
    wasm.prepare(std::sync::Arc::from(a.as_slice()))
        .await
        .expect("loads");
    wasm.prepare(std::sync::Arc::from(b.as_slice()))
        .await
        .expect("loads");
    assert_eq!(wasm.compiled_modules(), 2, "two distinct modules");
    wasm.prepare(std::sync::Arc::from(b.as_slice()))
        .await
        .expect("loads");
    assert_eq!(
        wasm.compiled_modules(),
        2,
        "the same bytes again, from a new Arc"
    );
}

#[tokio::test]
async fn fuel_used_by_calls_is_counted() {
    let (home, registry, _wasm) = home_with_wasm();
    let mut guest = writer();
    guest.imports.push_str(
        r#"(import "homecore_v1" "subscribe" (func $subscribe (param i32 i32) (result i32)))"#,
    );
    guest.data.push_str(r#"(data (i32.const 48) "light.*")"#);
    guest.setup = "(call $subscribe (i32.const 48) (i32.const 7))".into();
    let spec = wasm_spec(
        "burner",
        json!({"states_read": ["light.*"], "states_write": ["sensor.*"]}),
        json!({}),
        guest.bytes(),
    );
    let after_setup = registry.load(spec).await.expect("loads").stats.fuel_used;
    assert!(after_setup > 0, "setup runs guest code");
    let mut seen = vec![after_setup];
    for state in ["a", "b"] {
        set(&home, "light.hall", state);
        for _ in 0..200 {
            let info = registry.get("burner").expect("listed");
            if info
                .latency
                .get(homecore_plugins::PluginHook::OnStateChanged)
                .count()
                == seen.len() as u64
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen.push(registry.get("burner").expect("listed").stats.fuel_used);
    }
    assert!(seen[1] > seen[0] && seen[2] > seen[1], "{seen:?}");
    // The same guest code on a payload of the same size: the same instructions.
    assert_eq!(seen[2] - seen[1], seen[1] - seen[0], "{seen:?}");
}
