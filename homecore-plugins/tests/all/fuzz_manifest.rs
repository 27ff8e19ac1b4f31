//! Property-based fuzzing of the manifest parser (issue 14 §8; docs/fuzzing.md): arbitrary
//! bytes, byte mutations of the reference plugin's manifest, and JSON-level mutations (one
//! member replaced by an arbitrary value). Never a panic, every error a typed
//! [`ManifestError`] with a message, and every accepted manifest survives its own
//! `to_json_pretty` round trip. Cases: `PROPTEST_CASES` (default 256).

use homecore_fuzz_kit::{Edits, apply, config, json_value};
use homecore_plugins::{ManifestError, PluginManifest};
use proptest::prelude::*;
use serde_json::Value;

/// The reference plugin's manifest: a valid HomeCore manifest using every section.
const SAMPLE: &str = include_str!("../../../homecore-plugin-example/manifest.json");

/// Every member path of `value` (objects only, arrays by index).
fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                prefix.push(key.clone());
                out.push(prefix.clone());
                paths(inner, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                prefix.push(i.to_string());
                out.push(prefix.clone());
                paths(inner, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn slot<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Object(map) => map.get_mut(key),
        Value::Array(items) => items.get_mut(key.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The outcome is a typed result; an accepted manifest round-trips through its own writer.
fn check(result: Result<PluginManifest, ManifestError>) -> Result<(), TestCaseError> {
    match result {
        Ok(manifest) => {
            let text = manifest.to_json_pretty();
            let again = PluginManifest::from_home_assistant_slice(text.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e}: written as {text}")))?;
            prop_assert_eq!(again, manifest, "{}", text);
        }
        Err(err) => prop_assert!(!err.to_string().is_empty()),
    }
    Ok(())
}

#[test]
fn the_sample_manifest_is_valid_and_round_trips() {
    let manifest = PluginManifest::parse(SAMPLE).expect("valid");
    let again = PluginManifest::parse(&manifest.to_json_pretty()).expect("valid");
    assert_eq!(again, manifest);
}

/// Found by `fuzz_manifest_mutated_members`: a float in `config_schema` came back from the
/// manifest's own JSON a unit in the last place off, until serde_json's `float_roundtrip`
/// (root Cargo.toml, ADR 14).
#[test]
fn a_manifest_float_survives_the_round_trip_exactly() {
    let mut value: Value = serde_json::from_str(SAMPLE).expect("JSON");
    value["homecore"]["config_schema"]["$schema"] =
        serde_json::json!([{"": 3.032497161104497e-249}, -3.373224142507373e-274]);
    let manifest = PluginManifest::from_value(value).expect("valid");
    let again = PluginManifest::parse(&manifest.to_json_pretty()).expect("valid");
    assert_eq!(again, manifest);
}

/// Mutations of a valid sample (homecore_fuzz_kit), inserting this format's own bytes.
fn edits() -> impl Strategy<Value = Vec<homecore_fuzz_kit::Edit>> {
    Edits::default().inserting(b"{}[]\",:\\ 0a_.*-^").strategy()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_manifest_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(PluginManifest::from_slice(&bytes))?;
        check(PluginManifest::from_home_assistant_slice(&bytes))?;
    }

    #[test]
    fn fuzz_manifest_mutated_bytes(edits in edits()) {
        let bytes = apply(SAMPLE.as_bytes(), &edits);
        check(PluginManifest::from_slice(&bytes))?;
        check(PluginManifest::from_home_assistant_slice(&bytes))?;
    }

    #[test]
    fn fuzz_manifest_mutated_members(
        which in any::<prop::sample::Index>(),
        replacement in json_value("[a-z_*.^0-9 ]{0,12}", 3),
        remove in any::<bool>(),
    ) {
        let mut value: Value = serde_json::from_str(SAMPLE).expect("JSON");
        let mut all = Vec::new();
        paths(&value, &mut Vec::new(), &mut all);
        let path = which.get(&all).clone();
        if remove {
            let (last, parent) = path.split_last().expect("a path is not empty");
            if let Some(Value::Object(map)) = slot(&mut value, parent) {
                map.remove(last);
            }
        } else if let Some(slot) = slot(&mut value, &path) {
            *slot = replacement;
        }
        check(PluginManifest::from_value(value.clone()))?;
        check(PluginManifest::from_home_assistant_value(value))?;
    }
}
