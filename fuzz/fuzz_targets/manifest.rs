//! The manifest parsers on any bytes: never a panic, and an accepted manifest survives its own
//! `to_json_pretty`.
#![no_main]

use homecore_plugins::PluginManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for parsed in [
        PluginManifest::from_slice(data),
        PluginManifest::from_home_assistant_slice(data),
    ] {
        if let Ok(manifest) = parsed {
            let again =
                PluginManifest::from_home_assistant_slice(manifest.to_json_pretty().as_bytes())
                    .expect("a manifest's own JSON parses");
            assert_eq!(again, manifest);
        }
    }
});
