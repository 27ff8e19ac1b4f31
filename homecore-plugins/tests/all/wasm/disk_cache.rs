//! The compiled-module cache on disk: a restart loads without compiling, and a broken or
//! unusable cache only costs a compilation, never a failed load.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use homecore::Home;
use homecore_plugins::{
    Lifecycle, PluginManifest, PluginRegistry, PluginSource, WasmtimeConfig, WasmtimeRuntime,
};
use serde_json::json;

use super::guests::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "homecore-plugins-disk-cache-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn runtime(cache_dir: &Path) -> WasmtimeRuntime {
    WasmtimeRuntime::new(WasmtimeConfig {
        cache_dir: Some(cache_dir.to_owned()),
        ..WasmtimeConfig::default()
    })
    .expect("engine")
}

fn guest() -> Arc<[u8]> {
    Arc::from(Guest::default().bytes())
}

fn manifest() -> PluginManifest {
    wasm_manifest("cached", json!({}), json!({}))
}

/// Loads `source` into a fresh registry on `wasm` and checks the plugin runs.
async fn loads_and_runs(wasm: &WasmtimeRuntime, source: PluginSource) {
    let registry = PluginRegistry::builder(Home::new())
        .runtime(Arc::new(wasm.clone()))
        .build();
    let spec = homecore_plugins::PluginSpec::new(manifest(), source);
    let info = registry.load(spec).await.expect("loads");
    assert_eq!(info.lifecycle, Lifecycle::Running);
    registry.shutdown().await;
}

fn artifacts(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect()
}

#[tokio::test]
async fn a_restart_loads_the_compiled_module_from_disk() {
    let dir = temp_dir("restart");
    let first = runtime(&dir);
    loads_and_runs(&first, PluginSource::Wasm(guest())).await;
    assert_eq!(
        (first.compiled_modules(), first.modules_from_disk_cache()),
        (1, 0)
    );
    assert_eq!(artifacts(&dir).len(), 1);
    let restarted = runtime(&dir);
    loads_and_runs(&restarted, PluginSource::Wasm(guest())).await;
    assert_eq!(restarted.modules_from_disk_cache(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_cache_over_its_size_limit_is_pruned_when_the_runtime_opens_it() {
    let dir = temp_dir("limit");
    loads_and_runs(&runtime(&dir), PluginSource::Wasm(guest())).await;
    assert_eq!(artifacts(&dir).len(), 1);
    let small = WasmtimeRuntime::new(WasmtimeConfig {
        cache_dir: Some(dir.clone()),
        cache_max_bytes: 1,
        ..WasmtimeConfig::default()
    })
    .expect("engine");
    assert!(artifacts(&dir).is_empty(), "pruned when opened");
    // The module is compiled again, and the artifact just stored stays whatever the limit.
    loads_and_runs(&small, PluginSource::Wasm(guest())).await;
    assert_eq!(
        (small.compiled_modules(), small.modules_from_disk_cache()),
        (1, 0)
    );
    assert_eq!(artifacts(&dir).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_verified_digest_finds_the_same_artifact() {
    let dir = temp_dir("verified");
    loads_and_runs(&runtime(&dir), PluginSource::Wasm(guest())).await;
    let module = guest();
    let sha256 = sha2_of(&module);
    let restarted = runtime(&dir);
    loads_and_runs(&restarted, PluginSource::VerifiedWasm { module, sha256 }).await;
    assert_eq!(restarted.modules_from_disk_cache(), 1);
    assert_eq!(artifacts(&dir).len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_corrupted_or_truncated_artifact_is_compiled_again_and_replaced() {
    let dir = temp_dir("corrupt");
    loads_and_runs(&runtime(&dir), PluginSource::Wasm(guest())).await;
    let [path] = artifacts(&dir).try_into().expect("one artifact");
    let good = std::fs::read(&path).expect("readable");
    let mut corrupted = good.clone();
    corrupted[..32].fill(0xff);
    for (what, bytes) in [
        ("corrupted", corrupted),
        ("truncated", good[..good.len() / 3].to_vec()),
    ] {
        std::fs::write(&path, bytes).expect("writable");
        let wasm = runtime(&dir);
        loads_and_runs(&wasm, PluginSource::Wasm(guest())).await;
        assert_eq!(
            (wasm.compiled_modules(), wasm.modules_from_disk_cache()),
            (1, 0),
            "{what}: compiled"
        );
        let again = runtime(&dir);
        loads_and_runs(&again, PluginSource::Wasm(guest())).await;
        assert_eq!(again.modules_from_disk_cache(), 1, "{what}: replaced");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unusable_cache_directory_only_costs_compilation() {
    let dir = temp_dir("unusable");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("not-a-directory");
    std::fs::write(&file, b"x").expect("file");
    for cache_dir in [file.clone(), file.join("below")] {
        let wasm = runtime(&cache_dir);
        loads_and_runs(&wasm, PluginSource::Wasm(guest())).await;
        assert_eq!(
            (wasm.compiled_modules(), wasm.modules_from_disk_cache()),
            (1, 0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The SHA-256 of `bytes`, as a signed package's verification computes it.
fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}
