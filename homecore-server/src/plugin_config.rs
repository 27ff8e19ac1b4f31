//! Plugin config entries checked against their manifests: the domain must be known, and the
//! config must match the manifest's `config_schema` (JSON Schema; every error with its path).

use std::collections::BTreeMap;

use homecore_plugins::PluginManifest;
use serde_json::Value;

use crate::{ConfigProblem, ConfigProblemKind, PluginConfig};

/// Checks `config` against the manifest's `homecore.config_schema`. No schema: anything goes.
/// Each problem's path is `plugins.<domain>.config` followed by the JSON pointer of the value
/// at fault (`plugins.motion_lights.config/rooms/0`).
#[must_use]
pub fn check_plugin_config(manifest: &PluginManifest, config: &Value) -> Vec<ConfigProblem> {
    let base = format!("plugins.{}.config", manifest.domain);
    let Some(schema) = manifest
        .homecore
        .as_ref()
        .and_then(|h| h.config_schema.as_ref())
    else {
        return Vec::new();
    };
    let validator = match jsonschema::validator_for(schema) {
        Ok(v) => v,
        Err(err) => {
            return vec![ConfigProblem::new(
                base,
                ConfigProblemKind::InvalidSchema {
                    message: err.to_string(),
                },
            )];
        }
    };
    validator
        .iter_errors(config)
        .map(|err| {
            let pointer = err.instance_path.to_string();
            ConfigProblem::new(
                format!("{base}{pointer}"),
                ConfigProblemKind::Schema {
                    message: err.to_string(),
                },
            )
        })
        .collect()
}

/// Checks every `[plugins.<domain>]` entry: the domain is one of `known` (or was refused for
/// other reasons and is in `refused`), and its config matches the manifest's schema.
#[must_use]
pub fn check_plugin_entries(
    entries: &BTreeMap<String, PluginConfig>,
    known: &BTreeMap<String, &PluginManifest>,
    refused: &[String],
) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    for (domain, entry) in entries {
        match known.get(domain) {
            Some(manifest) => {
                if let Some(config) = &entry.config {
                    problems.extend(check_plugin_config(manifest, config));
                }
            }
            None if refused.iter().any(|d| d == domain) => {}
            None => problems.push(ConfigProblem::new(
                format!("plugins.{domain}"),
                ConfigProblemKind::UnknownPlugin {
                    domain: domain.clone(),
                    known: known.keys().cloned().collect(),
                },
            )),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn motion_lights() -> PluginManifest {
        PluginManifest::parse(homecore_integrations::motion_lights::MANIFEST).expect("valid")
    }

    #[test]
    fn every_schema_error_has_its_path() {
        let problems = check_plugin_config(
            &motion_lights(),
            &json!({"rooms": ["hall", "Bad Room", 3], "quiet_seconds": -1, "extra": true}),
        );
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "plugins.motion_lights.config/rooms/1",
            "plugins.motion_lights.config/rooms/2",
            "plugins.motion_lights.config/quiet_seconds",
            "plugins.motion_lights.config",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }

    #[test]
    fn a_valid_config_has_no_problems() {
        let problems = check_plugin_config(
            &motion_lights(),
            &json!({"rooms": ["hall"], "quiet_seconds": 5}),
        );
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn unknown_domains_are_reported_unless_refused_elsewhere() {
        let m = motion_lights();
        let known = BTreeMap::from([("motion_lights".to_owned(), &m)]);
        let entries = BTreeMap::from([
            ("motion_lights".to_owned(), PluginConfig::default()),
            ("nope".to_owned(), PluginConfig::default()),
            ("broken_pkg".to_owned(), PluginConfig::default()),
        ]);
        let problems = check_plugin_entries(&entries, &known, &["broken_pkg".to_owned()]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "plugins.nope");
        assert!(problems[0].to_string().contains("motion_lights"));
    }

    #[test]
    fn an_invalid_schema_is_reported() {
        let mut m = motion_lights();
        if let Some(h) = m.homecore.as_mut() {
            h.config_schema = Some(json!({"type": "no-such-type"}));
        }
        let problems = check_plugin_config(&m, &json!({}));
        assert!(matches!(
            problems[0].kind,
            ConfigProblemKind::InvalidSchema { .. }
        ));
    }
}
