//! `homecore manifest check FILE... [--ha]`: what Home Assistant's `hassfest` does for
//! manifests — every problem with its path.
//!
//! Without `--ha` a file must be a HomeCore manifest (the `homecore` section and `version`
//! required). With `--ha` a plain Home Assistant integration manifest is accepted (the
//! `homecore` section optional) and Home Assistant's own rules are applied on top of the
//! manifest parser's: the keys hassfest requires (`domain`, `name`, `codeowners`,
//! `documentation`), an `iot_class` for every integration that talks to devices or services,
//! `supported_by` or `iot_standards` for virtual integrations, and hassfest's key order
//! (`domain`, `name`, then alphabetical). Values of `iot_class`, `integration_type` and
//! `quality_scale` are checked against Home Assistant's sets by the parser in both modes.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use homecore_plugins::{MAX_MANIFEST_BYTES, ManifestError, PluginManifest};
use serde_json::Value;

/// One problem found in a manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckProblem {
    /// JSON path of the value at fault (empty for the whole file).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CheckProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The result of checking one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestCheck {
    /// The file.
    pub file: PathBuf,
    /// The domain, when the file had a string `domain`.
    pub domain: Option<String>,
    /// Every problem; empty when the manifest passes.
    pub problems: Vec<CheckProblem>,
}

impl ManifestCheck {
    /// Whether the manifest passed.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for ManifestCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.file.display();
        if self.problems.is_empty() {
            let domain = self.domain.as_deref().unwrap_or("?");
            return write!(f, "{name}: ok ({domain})");
        }
        let n = self.problems.len();
        write!(f, "{name}: {n} problem{}", if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Which rules to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestRules {
    /// A HomeCore plugin manifest.
    HomeCore,
    /// A plain Home Assistant integration manifest, with hassfest's rules.
    HomeAssistant,
}

/// Checks one manifest file. Never fails: unreadable files are reported as problems.
#[must_use]
pub fn check_manifest_file(file: &Path, rules: ManifestRules) -> ManifestCheck {
    let bytes = match read_capped(file) {
        Ok(bytes) => bytes,
        Err(message) => {
            return ManifestCheck {
                file: file.to_owned(),
                domain: None,
                problems: vec![CheckProblem {
                    path: String::new(),
                    message,
                }],
            };
        }
    };
    let mut check = check_manifest_bytes(&bytes, rules);
    check.file = file.to_owned();
    check
}

/// Checks manifest bytes (the `file` of the result is empty).
#[must_use]
pub fn check_manifest_bytes(bytes: &[u8], rules: ManifestRules) -> ManifestCheck {
    let parsed = match rules {
        ManifestRules::HomeCore => PluginManifest::from_slice(bytes),
        ManifestRules::HomeAssistant => PluginManifest::from_home_assistant_slice(bytes),
    };
    let mut problems: Vec<CheckProblem> = Vec::new();
    let domain = match parsed {
        Ok(manifest) => Some(manifest.domain),
        Err(ManifestError::Invalid {
            domain,
            problems: found,
        }) => {
            problems.extend(found.into_iter().map(|p| CheckProblem {
                path: p.path,
                message: p.kind.to_string(),
            }));
            domain
        }
        Err(other) => {
            return ManifestCheck {
                file: PathBuf::new(),
                domain: None,
                problems: vec![CheckProblem {
                    path: String::new(),
                    message: other.to_string(),
                }],
            };
        }
    };
    if rules == ManifestRules::HomeAssistant
        && let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes)
    {
        home_assistant_rules(&object, &mut problems);
    }
    ManifestCheck {
        file: PathBuf::new(),
        domain,
        problems,
    }
}

/// Home Assistant's `integration_type`s that need no `iot_class` (they do not talk to
/// devices or services themselves).
const NO_IOT_CLASS_TYPES: &[&str] = &["virtual", "entity", "helper", "system"];

/// hassfest's rules the manifest parser does not apply.
fn home_assistant_rules(object: &serde_json::Map<String, Value>, problems: &mut Vec<CheckProblem>) {
    let mut missing = |key: &str| {
        if !object.contains_key(key) && !problems.iter().any(|p| p.path == key) {
            problems.push(CheckProblem {
                path: key.to_owned(),
                message: "is required".to_owned(),
            });
        }
    };
    let integration_type = object.get("integration_type").and_then(Value::as_str);
    if integration_type == Some("virtual") {
        missing("domain");
        missing("name");
        if !object.contains_key("supported_by") && !object.contains_key("iot_standards") {
            problems.push(CheckProblem {
                path: "supported_by".to_owned(),
                message: "a virtual integration needs supported_by or iot_standards".to_owned(),
            });
        }
    } else {
        for key in ["domain", "name", "codeowners", "documentation"] {
            missing(key);
        }
        let exempt = integration_type.is_some_and(|t| NO_IOT_CLASS_TYPES.contains(&t));
        if !exempt {
            missing("iot_class");
        }
    }
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| *k != "domain" && *k != "name")
        .collect();
    expected.sort_unstable();
    for first in ["name", "domain"] {
        if keys.contains(&first) {
            expected.insert(0, first);
        }
    }
    if keys != expected {
        problems.push(CheckProblem {
            path: String::new(),
            message: format!(
                "keys are not sorted correctly: expected domain, name, then alphabetical ({})",
                expected.join(", ")
            ),
        });
    }
}

fn read_capped(file: &Path) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(file).map_err(|err| format!("cannot read: {err}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read: {err}"))?;
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(format!(
            "file is over the {MAX_MANIFEST_BYTES}-byte manifest limit"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_manifests_pass() {
        for text in [
            homecore_integrations::motion_lights::MANIFEST,
            homecore_integrations::input_boolean::MANIFEST,
            homecore_integrations::input_number::MANIFEST,
        ] {
            let check = check_manifest_bytes(text.as_bytes(), ManifestRules::HomeCore);
            assert!(check.is_ok(), "{check}");
            // HomeCore writes `version` third; hassfest wants strict alphabetical after `name`.
            let ha = check_manifest_bytes(text.as_bytes(), ManifestRules::HomeAssistant);
            assert_eq!(ha.problems.len(), 1, "{ha}");
            assert!(
                ha.problems[0].message.starts_with("keys are not sorted"),
                "{ha}"
            );
        }
    }

    #[test]
    fn plain_home_assistant_manifest_passes_only_with_ha_rules() {
        let hue = br#"{
            "domain": "hue",
            "name": "Philips Hue",
            "codeowners": ["@balloob", "@marcelveldt"],
            "config_flow": true,
            "documentation": "https://www.home-assistant.io/integrations/hue",
            "integration_type": "hub",
            "iot_class": "local_push",
            "quality_scale": "platinum",
            "requirements": ["aiohue==4.7.1"]
        }"#;
        assert!(check_manifest_bytes(hue, ManifestRules::HomeAssistant).is_ok());
        let strict = check_manifest_bytes(hue, ManifestRules::HomeCore);
        let paths: Vec<&str> = strict.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["version", "homecore"]);
    }

    #[test]
    fn home_assistant_rules_list_every_problem() {
        let bad = br#"{
            "name": "Broken",
            "domain": "Broken-Domain",
            "iot_class": "cloud_pushing",
            "quality_scale": "diamond",
            "integration_type": "hub"
        }"#;
        let check = check_manifest_bytes(bad, ManifestRules::HomeAssistant);
        let paths: Vec<&str> = check.problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "domain",
            "iot_class",
            "quality_scale",
            "codeowners",
            "documentation",
            "",
        ] {
            assert!(paths.contains(&want), "{want:?} missing: {check}");
        }
        assert!(check.to_string().contains("keys are not sorted"), "{check}");
    }

    #[test]
    fn iot_class_is_required_unless_exempt() {
        let base = |t: &str| {
            format!(
                r#"{{"domain": "x", "name": "X", "codeowners": [], "documentation": "https://x.io", "integration_type": "{t}"}}"#
            )
        };
        let hub = check_manifest_bytes(base("hub").as_bytes(), ManifestRules::HomeAssistant);
        assert_eq!(hub.problems.len(), 1, "{hub}");
        assert_eq!(hub.problems[0].path, "iot_class");
        let helper = check_manifest_bytes(base("helper").as_bytes(), ManifestRules::HomeAssistant);
        assert!(helper.is_ok(), "{helper}");
        let virt = br#"{"domain": "v", "name": "V", "integration_type": "virtual"}"#;
        let virt = check_manifest_bytes(virt, ManifestRules::HomeAssistant);
        assert_eq!(virt.problems[0].path, "supported_by", "{virt}");
    }

    #[test]
    fn unreadable_and_malformed_files_are_problems() {
        let missing = check_manifest_file(
            Path::new("/nonexistent/manifest.json"),
            ManifestRules::HomeCore,
        );
        assert!(!missing.is_ok());
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        let syntax = check_manifest_bytes(b"{", ManifestRules::HomeAssistant);
        assert!(
            syntax.problems[0].message.contains("not valid json"),
            "{syntax}"
        );
    }
}
