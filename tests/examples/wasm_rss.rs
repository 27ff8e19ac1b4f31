//! Resident memory per loaded, idle WASM plugin instance.
//!
//! `cargo run --release -p homecore-tests --example wasm_rss`
//!
//! Loads the reference plugin 100 and then 1,000 times (one module compiled once, one `Store`
//! and instance per plugin, each set up), and prints the growth of the process's resident set
//! (VmRSS from /proc/self/status) divided by the number of instances. It also prints the growth
//! of the proportional set size (Pss from /proc/self/smaps_rollup), which counts a page shared
//! by n mappings as 1/n in each: every instance maps the module's data image from the same
//! memory file, and RSS counts those pages once per instance.

use std::sync::Arc;

use homecore::Home;
use homecore_plugins::{
    PluginManifest, PluginRegistry, PluginSource, PluginSpec, WasmtimeConfig, WasmtimeRuntime,
};
use homecore_tests::guest::{example_manifest, example_wasm};

/// The value in KiB of the line starting with `key` in the proc file `path`; 0 when absent.
fn proc_kib(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:")
}

fn pss_kib() -> u64 {
    proc_kib("/proc/self/smaps_rollup", "Pss:")
}

fn spec(i: usize, bytes: &Arc<[u8]>, manifest: &serde_json::Value) -> PluginSpec {
    let mut m = manifest.clone();
    m["domain"] = serde_json::json!(format!("motion_lights_wasm_{i}"));
    let manifest = PluginManifest::from_value(m).expect("valid manifest");
    PluginSpec::new(manifest, PluginSource::Wasm(Arc::clone(bytes)))
        .with_config(serde_json::json!({"rooms": [format!("room{i}")], "quiet_seconds": 60}))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bytes: Arc<[u8]> = Arc::from(example_wasm());
    let manifest: serde_json::Value = serde_json::from_str(&example_manifest()).expect("json");
    for (pooling, label) in [
        (None, "on-demand allocator"),
        (Some(1100), "pooling allocator"),
    ] {
        let home = Home::new();
        let wasm = WasmtimeRuntime::new(WasmtimeConfig {
            pooling_slots: pooling,
            ..WasmtimeConfig::default()
        })
        .expect("engine");
        let registry = PluginRegistry::builder(home)
            .runtime(Arc::new(wasm.clone()))
            .build();
        // Compile and load one first, so the module itself is not counted per instance.
        registry
            .load(spec(0, &bytes, &manifest))
            .await
            .expect("loads");
        let mut loaded = 1;
        for target in [100usize, 1000] {
            let before = rss_kib();
            let pss_before = pss_kib();
            let from = loaded;
            let specs: Vec<_> = (from..=target)
                .map(|i| spec(i, &bytes, &manifest))
                .collect();
            let report = registry.load_all(specs).await;
            assert_eq!(report.started().len(), target + 1 - from, "{report:?}");
            loaded = target + 1;
            let after = rss_kib();
            let count = (target + 1 - from) as f64;
            let per = (after.saturating_sub(before)) as f64 / count;
            let pss_per = (pss_kib().saturating_sub(pss_before)) as f64 / count;
            println!(
                "{label}: {target} instances: +{} KiB for {} instances = {per:.1} KiB each (RSS now {after} KiB); PSS {pss_per:.1} KiB each",
                after.saturating_sub(before),
                target + 1 - from
            );
        }
        assert_eq!(wasm.compiled_modules(), 1);
        registry.shutdown().await;
    }
}
