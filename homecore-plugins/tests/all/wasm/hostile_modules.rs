//! Hostile modules: missing or mistyped exports, foreign imports, bad ABI version sections,
//! truncated bytes, start functions. All are refused at load with an error naming the problem;
//! nothing of theirs ever runs against the home.

use std::sync::Arc;

use homecore_plugins::{
    GuestFailure, Lifecycle, LoadError, RegistryError, TrapCode, WasmtimeConfig, WasmtimeRuntime,
};
use serde_json::json;

use super::guests::*;
use crate::support::{all_permissions, state_of};

/// What a refused module's load error must satisfy.
type Expect = Box<dyn Fn(&LoadError) -> bool>;

/// A plugin domain, its module, and what its load error must satisfy.
type Case<'a> = (&'a str, Guest, Expect);

/// The load error of a plugin that did not start.
fn load_error(err: Option<&RegistryError>) -> &LoadError {
    match err {
        Some(RegistryError::Load { source, .. }) => source,
        other => panic!("expected a load error, got {other:?}"),
    }
}

/// Loads each `(domain, guest)` beside a neighbour and checks its load error with `expected`.
async fn refused(cases: Vec<Case<'_>>) {
    let (_home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let specs = cases
        .iter()
        .map(|(domain, guest, _)| wasm_spec(domain, all_permissions(), json!({}), guest.bytes()))
        .collect();
    let report = registry.load_all(specs).await;
    for (domain, _, expected) in &cases {
        let err = load_error(report.error(domain));
        assert!(expected(err), "{domain}: unexpected {err:?}");
        assert!(!err.to_string().is_empty());
        assert_eq!(
            registry.get(domain).expect("listed").lifecycle,
            Lifecycle::Failed
        );
    }
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn every_missing_required_export_is_named() {
    let mut cases: Vec<Case<'_>> = vec![(
        "no_memory",
        Guest {
            memory: "(memory 2)".into(),
            ..Guest::hostile()
        },
        Box::new(|e| matches!(e, LoadError::MissingExport { name: "memory" })),
    )];
    for name in [
        "hc_alloc",
        "hc_free",
        "hc_setup",
        "hc_teardown",
        "hc_on_state_changed",
        "hc_call_service",
    ] {
        cases.push((
            name,
            Guest {
                omit: vec![name],
                ..Guest::hostile()
            },
            Box::new(move |e| matches!(e, LoadError::MissingExport { name: n } if *n == name)),
        ));
    }
    refused(cases).await;
}

#[tokio::test]
async fn exports_and_imports_of_the_wrong_kind_or_signature_are_refused() {
    let wrong_export = |kind: &'static str, name: &'static str| -> Expect {
        Box::new(
            move |e| matches!(e, LoadError::WrongSignature { kind: k, name: n, .. } if *k == kind && n == name),
        )
    };
    let unknown_import = |name: &'static str| -> Expect {
        Box::new(move |e| matches!(e, LoadError::UnknownImport { name: n, .. } if n == name))
    };
    let cases: Vec<Case<'_>> = vec![
        (
            "setup_sig",
            Guest {
                omit: vec!["hc_setup"],
                funcs: r#"(func (export "hc_setup") (param i32) (result i32) (i32.const 0))"#.into(),
                ..Guest::default()
            },
            wrong_export("export", "hc_setup"),
        ),
        (
            "service_sig",
            Guest {
                omit: vec!["hc_call_service"],
                funcs: r#"(func (export "hc_call_service") (param i32 i32) (result i32) (i32.const 0))"#.into(),
                ..Guest::default()
            },
            wrong_export("export", "hc_call_service"),
        ),
        (
            "optional_sig",
            Guest {
                funcs: r#"(func (export "hc_on_event") (param i64) (result i32) (i32.const 0))"#.into(),
                ..Guest::default()
            },
            wrong_export("export", "hc_on_event"),
        ),
        (
            "timer_global",
            Guest {
                data: r#"(global (export "hc_on_timer") i32 (i32.const 0))"#.into(),
                ..Guest::default()
            },
            Box::new(|e| matches!(e, LoadError::WrongSignature { name, found, .. } if name == "hc_on_timer" && found == "not a function")),
        ),
        (
            "memory_func",
            Guest {
                memory: "(memory 2)".into(),
                funcs: r#"(func (export "memory"))"#.into(),
                ..Guest::default()
            },
            Box::new(|e| matches!(e, LoadError::MissingExport { name: "memory" })),
        ),
        (
            "import_sig",
            Guest {
                imports: r#"(import "homecore_v1" "state_get" (func (param i32 i32) (result i32)))"#.into(),
                ..Guest::default()
            },
            wrong_export("import", "state_get"),
        ),
        (
            "import_global",
            Guest {
                imports: r#"(import "homecore_v1" "log" (global i32))"#.into(),
                ..Guest::default()
            },
            unknown_import("log"),
        ),
        (
            "import_memory",
            Guest {
                imports: r#"(import "homecore_v1" "memory" (memory 1))"#.into(),
                memory: String::new(),
                ..Guest::default()
            },
            unknown_import("memory"),
        ),
        (
            "import_unknown",
            Guest {
                imports: r#"(import "homecore_v1" "state_set_v2" (func))"#.into(),
                ..Guest::default()
            },
            unknown_import("state_set_v2"),
        ),
        (
            "import_env",
            Guest {
                imports: r#"(import "env" "abort" (func (param i32 i32 i32 i32)))"#.into(),
                ..Guest::default()
            },
            unknown_import("abort"),
        ),
        (
            "import_wasi",
            Guest {
                imports: r#"(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))"#.into(),
                ..Guest::default()
            },
            unknown_import("proc_exit"),
        ),
    ];
    refused(cases).await;
}

#[tokio::test]
async fn abi_version_sections_are_checked_before_compiling() {
    let section = |bytes: &'static str| Guest {
        abi_section: Some(bytes),
        ..Guest::hostile()
    };
    let invalid = |needle: &'static str| -> Expect {
        Box::new(
            move |e| matches!(e, LoadError::InvalidModule { reason } if reason.contains(needle)),
        )
    };
    let unsupported = |version: u32| -> Expect {
        Box::new(
            move |e| matches!(e, LoadError::UnsupportedAbiVersion { found, .. } if *found == version),
        )
    };
    let mut twice = Guest::hostile();
    twice
        .data
        .push_str(r#"(@custom "homecore_abi" "\02\00\00\00")"#);
    let cases: Vec<Case<'_>> = vec![
        (
            "missing",
            Guest {
                abi_section: None,
                ..Guest::hostile()
            },
            Box::new(|e| {
                matches!(
                    e,
                    LoadError::MissingAbiVersion {
                        section: "homecore_abi"
                    }
                )
            }),
        ),
        ("zero", section("\\00\\00\\00\\00"), unsupported(0)),
        ("two", section("\\02\\00\\00\\00"), unsupported(2)),
        ("max", section("\\ff\\ff\\ff\\ff"), unsupported(u32::MAX)),
        ("empty", section(""), invalid("not a list of u32 versions")),
        (
            "short",
            section("\\01\\00\\00"),
            invalid("not a list of u32 versions"),
        ),
        (
            "long",
            section("\\01\\00\\00\\00\\01"),
            invalid("not a list of u32 versions"),
        ),
        (
            "mixed",
            section("\\01\\00\\00\\00\\02\\00\\00\\00"),
            invalid("declares both version 1 and 2"),
        ),
        (
            "twice",
            twice,
            invalid("appears twice with different versions"),
        ),
    ];
    refused(cases).await;
    // Copies of the same version, in one section or several, are what linkers produce.
    let (_home, registry) = hostile_registry();
    let mut twice_same = Guest::hostile();
    twice_same
        .data
        .push_str(r#"(@custom "homecore_abi" "\01\00\00\00")"#);
    for (domain, guest) in [
        ("copies", section("\\01\\00\\00\\00\\01\\00\\00\\00")),
        ("twice_same", twice_same),
    ] {
        let info = registry
            .load(wasm_spec(
                domain,
                all_permissions(),
                json!({}),
                guest.bytes(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{domain}: {e}"));
        assert_eq!(info.lifecycle, Lifecycle::Running);
    }
}

#[tokio::test]
async fn every_truncation_of_a_module_is_refused_cleanly() {
    let wasm = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
    // The version section last (where `@custom` puts it) and first, so that truncated modules
    // reach both the section check and the compiler.
    let last = Guest::hostile().bytes();
    let mut first = Guest {
        abi_section: None,
        ..Guest::hostile()
    };
    first
        .data
        .push_str(r#"(@custom "homecore_abi" (before first) "\01\00\00\00")"#);
    let first = first.bytes();
    let mut compiled_prefixes = 0;
    for full in [&last, &first] {
        wasm.prepare(Arc::from(full.as_slice()))
            .await
            .expect("the whole module loads");
        for len in 0..full.len() {
            match wasm.prepare(Arc::from(&full[..len])).await {
                Err(LoadError::InvalidModule { .. } | LoadError::MissingAbiVersion { .. }) => {}
                // A cut exactly between sections leaves a well-formed module: it compiles and
                // is refused for what it lacks, or, cut after its code, loads without its data
                // or custom sections (nothing tells such a module from a truncated one).
                Err(LoadError::MissingExport { .. }) | Ok(()) => compiled_prefixes += 1,
                Err(other) => panic!("cut at {len} of {}: unexpected {other:?}", full.len()),
            }
        }
    }
    assert!(compiled_prefixes > 0, "some prefixes reached the compiler");
    // Through the registry: refused, listed as failed, nothing else disturbed.
    let (_home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    for (domain, bytes) in [
        ("empty", Vec::new()),
        ("magic_only", b"\0asm".to_vec()),
        ("wrong_version", b"\0asm\x02\0\0\0".to_vec()),
        (
            "garbage",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ),
        ("cut", first[..first.len() - 1].to_vec()),
    ] {
        let err = registry
            .load(wasm_spec(domain, all_permissions(), json!({}), bytes))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, RegistryError::Load { .. }),
            "{domain}: {err:?}"
        );
        assert_eq!(
            registry.get(domain).expect("listed").lifecycle,
            Lifecycle::Failed
        );
    }
    neighbour.assert_unharmed(&registry).await;
}

#[tokio::test]
async fn a_start_function_runs_under_the_limits_and_without_host_access() {
    let (home, registry) = hostile_registry();
    let mut neighbour = Neighbour::load(&registry).await;
    let start = |body: &str| {
        let mut guest = Guest::hostile();
        guest.funcs = format!("(func $start {body}) (start $start)");
        guest
    };
    // Imports answer QuotaExceeded before the first call into the plugin: no host access
    // while instantiating. Any other answer traps, failing the load.
    let quiet = start(&format!(
        "(if (i32.ne (call $state_set {MINE} {ON} {}) (i32.const -12)) (then unreachable))
         (if (i32.ne (call $log (i32.const 1) {ON}) (i32.const -12)) (then unreachable))",
        OBJECT.empty()
    ));
    let limits = json!({"fuel_per_call": 1_000_000_000u64, "call_timeout_ms": 100});
    let report = registry
        .load_all(vec![
            wasm_spec(
                "start_spin",
                all_permissions(),
                limits,
                start("(loop $spin (br $spin))").bytes(),
            ),
            wasm_spec(
                "start_burn",
                all_permissions(),
                json!({"fuel_per_call": 1_000_000}),
                start("(loop $spin (br $spin))").bytes(),
            ),
            wasm_spec(
                "start_trap",
                all_permissions(),
                json!({}),
                start("unreachable").bytes(),
            ),
            wasm_spec(
                "start_grow",
                all_permissions(),
                json!({"memory_bytes": 1 << 20}),
                start("(drop (memory.grow (i32.const 100)))").bytes(),
            ),
            wasm_spec("start_quiet", all_permissions(), json!({}), quiet.bytes()),
        ])
        .await;
    for (domain, expected) in [
        ("start_spin", GuestFailure::Deadline { limit_ms: 100 }),
        ("start_burn", GuestFailure::OutOfFuel { limit: 1_000_000 }),
        (
            "start_trap",
            GuestFailure::Trap {
                code: TrapCode::UnreachableCodeReached,
            },
        ),
    ] {
        assert_eq!(
            *instantiate_failure(report.error(domain)),
            expected,
            "{domain}"
        );
    }
    assert!(
        matches!(
            instantiate_failure(report.error("start_grow")),
            GuestFailure::MemoryLimit {
                limit_bytes: 1_048_576,
                ..
            }
        ),
        "{:?}",
        report.error("start_grow")
    );
    assert!(
        report.error("start_quiet").is_none(),
        "{:?}",
        report.error("start_quiet")
    );
    assert_eq!(state_of(&home, "hostile.entity"), None);
    neighbour.assert_unharmed(&registry).await;
}
