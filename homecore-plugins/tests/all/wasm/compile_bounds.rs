//! Compilation is bounded (module size, function size, time) and its results are not kept
//! after no plugin uses them.

use std::sync::Arc;
use std::time::Duration;

use homecore_plugins::{LoadError, WasmtimeConfig, WasmtimeRuntime};
use serde_json::json;

use super::guests::*;
use crate::support::all_permissions;

fn runtime(config: WasmtimeConfig) -> WasmtimeRuntime {
    WasmtimeRuntime::new(config).expect("engine")
}

/// A guest that differs from every other by `tag` (a data segment), so each is compiled.
fn tagged(tag: usize) -> Vec<u8> {
    let mut guest = Guest::default();
    guest
        .data
        .push_str(&format!(r#"(data (i32.const 2048) "tag {tag}")"#));
    guest.bytes()
}

#[tokio::test]
async fn a_module_over_the_size_cap_is_refused_before_compiling() {
    let wasm = runtime(WasmtimeConfig {
        max_module_bytes: 4096,
        ..WasmtimeConfig::default()
    });
    let mut guest = Guest::default();
    guest.data.push_str(&format!(
        r#"(data (i32.const 4096) "{}")"#,
        "x".repeat(8192)
    ));
    let bytes = guest.bytes();
    let size = bytes.len();
    let err = wasm.prepare(Arc::from(bytes)).await.expect_err("too large");
    assert!(
        matches!(err, LoadError::ModuleTooLarge { size: s, limit: 4096 } if s == size),
        "{err:?}"
    );
    assert_eq!(wasm.compiled_modules(), 0, "nothing compiled");
}

#[tokio::test]
async fn a_function_body_over_the_cap_is_refused_before_compiling() {
    let wasm = runtime(WasmtimeConfig {
        max_function_body_bytes: 256,
        ..WasmtimeConfig::default()
    });
    let guest = Guest {
        funcs: format!("(func {})", "(drop (i32.const 1000))".repeat(200)),
        ..Guest::default()
    };
    let err = wasm
        .prepare(Arc::from(guest.bytes()))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, LoadError::FunctionTooLarge { size, limit: 256, .. } if size > 256),
        "{err:?}"
    );
    assert_eq!(wasm.compiled_modules(), 0, "nothing compiled");
    // The same module passes under the default cap.
    runtime(WasmtimeConfig::default())
        .prepare(Arc::from(guest.bytes()))
        .await
        .expect("within the default cap");
}

#[tokio::test]
async fn a_compilation_past_its_budget_is_refused() {
    let wasm = runtime(WasmtimeConfig {
        compile_budget: Some(Duration::from_millis(1)),
        ..WasmtimeConfig::default()
    });
    // Thousands of functions: far more than a millisecond of compiling.
    let guest = Guest {
        funcs: (0..4000)
            .map(|i| format!("(func (param i32) (result i32) (i32.mul (i32.add (local.get 0) (i32.const {i})) (i32.const 3)))"))
            .collect(),
        ..Guest::default()
    };
    let err = wasm
        .prepare(Arc::from(guest.bytes()))
        .await
        .expect_err("over budget");
    assert!(
        matches!(err, LoadError::CompileTimeout { budget_ms: 1 }),
        "{err:?}"
    );
    assert_eq!(wasm.compiled_modules(), 0, "the late result is dropped");
}

#[tokio::test]
async fn unloaded_modules_are_not_memoized_forever() {
    let (_home, registry, wasm) = home_with_wasm();
    let spec =
        |domain: &str, bytes: Vec<u8>| wasm_spec(domain, all_permissions(), json!({}), bytes);
    registry
        .load(spec("kept", tagged(1000)))
        .await
        .expect("starts");
    registry
        .load(spec("gone", tagged(1001)))
        .await
        .expect("starts");
    registry.unload("gone").await.expect("unloads");
    assert_eq!(
        wasm.memoized_modules(),
        1,
        "the unload forgot the module: nobody holds its source any more"
    );
    // Sources prepared and dropped at once are not kept either.
    for tag in 0..16 {
        wasm.prepare(Arc::from(tagged(tag)))
            .await
            .expect("compiles");
    }
    assert_eq!(wasm.compiled_modules(), 18);
    // The last one prepared may still be remembered until the next load or unload.
    assert!(
        wasm.memoized_modules() <= 2,
        "the running plugin's module (and at most the last source); not the unloaded one's"
    );
    registry
        .load(spec("gone", tagged(1001)))
        .await
        .expect("starts again");
    assert_eq!(
        wasm.compiled_modules(),
        19,
        "compiled again: it was dropped"
    );
    // The running plugin's module is still shared, not compiled again.
    registry
        .load(spec("kept_twin", tagged(1000)))
        .await
        .expect("starts");
    assert_eq!(wasm.compiled_modules(), 19);
}

/// Forgetting unused modules must not cost a running plugin its module: with more plugins
/// loaded than any small recency window, a reload of the first still finds its module, and a
/// byte-identical source from another allocation (a package read again from disk) shares the
/// one compiled module and keeps it after the first copy's plugin is gone.
#[tokio::test]
async fn reloads_keep_their_modules_however_many_plugins_are_loaded() {
    let (_home, registry, wasm) = home_with_wasm();
    for tag in 0..24 {
        registry
            .load(wasm_spec(
                &format!("p{tag}"),
                all_permissions(),
                json!({}),
                tagged(2000 + tag),
            ))
            .await
            .expect("starts");
    }
    assert_eq!(wasm.compiled_modules(), 24);
    registry.reload("p0").await.expect("reloads");
    assert_eq!(wasm.compiled_modules(), 24, "the reload reused p0's module");
    // A twin of p1 from a fresh allocation of the same bytes.
    registry
        .load(wasm_spec(
            "twin",
            all_permissions(),
            json!({}),
            tagged(2001),
        ))
        .await
        .expect("starts");
    registry.unload("p1").await.expect("unloads");
    registry.reload("twin").await.expect("reloads");
    assert_eq!(
        wasm.compiled_modules(),
        24,
        "the twin shared p1's module and kept it after p1 went"
    );
}
