//! Manifest parsing and validation: a realistic ~1.5 KB plugin manifest (target ≤ 20 µs).

use divan::black_box;
use homecore_plugins::PluginManifest;

/// A wasm plugin's manifest with permissions, limits and a config schema.
const MOTION_LIGHTS: &str = include_str!("../tests/fixtures/manifests/motion_lights.json");

/// Home Assistant's Hue manifest, with discovery matchers.
const HUE: &str = include_str!("../tests/fixtures/manifests/hue.json");

fn main() {
    divan::main();
}

/// Bytes to a validated manifest.
#[divan::bench]
fn parse_and_validate() -> PluginManifest {
    PluginManifest::from_slice(black_box(MOTION_LIGHTS.as_bytes())).expect("fixture is valid")
}

/// Baseline: the same bytes to a `serde_json::Value`, without validation.
#[divan::bench]
fn json_only() -> serde_json::Value {
    serde_json::from_slice(black_box(MOTION_LIGHTS.as_bytes())).expect("fixture is json")
}

/// A Home Assistant manifest without a `homecore` section.
#[divan::bench]
fn parse_home_assistant() -> PluginManifest {
    PluginManifest::from_home_assistant_slice(black_box(HUE.as_bytes())).expect("fixture is valid")
}

/// A manifest with problems in many fields: the cost of reporting all of them.
#[divan::bench]
fn parse_invalid() -> usize {
    let bad = br#"{"domain": "Motion", "version": "x", "homecore": {"runtime": "wasm",
        "api_version": "^1", "permissions": {"states_write": ["light..x"], "bogus": 1}}}"#;
    PluginManifest::from_slice(black_box(bad))
        .expect_err("fixture is invalid")
        .problems()
        .len()
}

/// A validated manifest back to pretty JSON.
#[divan::bench]
fn to_json_pretty(bencher: divan::Bencher<'_, '_>) {
    let manifest = PluginManifest::parse(MOTION_LIGHTS).expect("fixture is valid");
    bencher.bench(|| black_box(&manifest).to_json_pretty());
}
