//! `homecore manifest check FILE... [--ha]`: what Home Assistant's `hassfest` does for
//! manifests — every problem with its path.
//!
//! Without `--ha` a file must be a HomeCore manifest (the `homecore` section and `version`
//! required). With `--ha` a plain Home Assistant integration manifest is accepted (the
//! `homecore` section optional) and Home Assistant's own rules are applied on top of the
//! manifest parser's: the keys hassfest requires (`domain`, `name`, `codeowners`,
//! `documentation`), an `iot_class` unless the domain is in hassfest's `NO_IOT_CLASS` (entity
//! platforms and core integrations that talk to no device or service) or it is virtual,
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

/// The domains that need no `iot_class`: hassfest's `NO_IOT_CLASS` (Home Assistant's
/// script/hassfest/manifest.py, read from its current source): every entity platform (its
/// `Platform` enum), then the core integrations that talk to no device or service (with
/// `assist_pipeline`, which the issue lists, kept although the current source omits it; the
/// rule here only ever exempts). hassfest exempts nothing by `integration_type` except
/// `virtual`: a helper or system integration outside this list needs an `iot_class` (most say
/// `calculated`). hassfest also refuses an `iot_class` on a listed domain; not checked here.
const NO_IOT_CLASS: &[&str] = &[
    // `Platform` values (entity platforms).
    "ai_task",
    "air_quality",
    "alarm_control_panel",
    "assist_satellite",
    "binary_sensor",
    "button",
    "calendar",
    "camera",
    "climate",
    "conversation",
    "cover",
    "date",
    "datetime",
    "device_tracker",
    "event",
    "fan",
    "geo_location",
    "humidifier",
    "image",
    "image_processing",
    "lawn_mower",
    "light",
    "lock",
    "media_player",
    "notify",
    "number",
    "remote",
    "scene",
    "select",
    "sensor",
    "siren",
    "stt",
    "switch",
    "text",
    "time",
    "todo",
    "tts",
    "update",
    "vacuum",
    "valve",
    "wake_word",
    "water_heater",
    "weather",
    // The rest of the list.
    "api",
    "application_credentials",
    "assist_pipeline",
    "auth",
    "automation",
    "battery",
    "blueprint",
    "brands",
    "color_extractor",
    "config",
    "configurator",
    "counter",
    "default_config",
    "device_automation",
    "diagnostics",
    "door",
    "doorbell",
    "downloader",
    "ffmpeg",
    "file_upload",
    "frontend",
    "garage_door",
    "gate",
    "hardkernel",
    "hardware",
    "history",
    "homeassistant",
    "homeassistant_alerts",
    "homeassistant_connect_zbt2",
    "homeassistant_green",
    "homeassistant_hardware",
    "homeassistant_sky_connect",
    "homeassistant_yellow",
    "humidity",
    "illuminance",
    "image_upload",
    "input_boolean",
    "input_button",
    "input_datetime",
    "input_number",
    "input_select",
    "input_text",
    "intent",
    "intent_script",
    "logbook",
    "logger",
    "lovelace",
    "map_tiles",
    "media_source",
    "moisture",
    "motion",
    "my",
    "occupancy",
    "onboarding",
    "panel_custom",
    "plant",
    "power",
    "profiler",
    "proxy",
    "python_script",
    "raspberry_pi",
    "recovery_mode",
    "repairs",
    "schedule",
    "script",
    "search",
    "system_health",
    "system_log",
    "tag",
    "temperature",
    "timer",
    "trace",
    "vibration",
    "web_rtc",
    "webhook",
    "websocket_api",
    "window",
    "zone",
];

/// Whether hassfest requires an `iot_class` of this manifest: unless its domain is in
/// [`NO_IOT_CLASS`] or it is a `virtual` integration.
fn needs_iot_class(domain: Option<&str>, integration_type: Option<&str>) -> bool {
    integration_type != Some("virtual") && !domain.is_some_and(|d| NO_IOT_CLASS.contains(&d))
}

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
        let domain = object.get("domain").and_then(Value::as_str);
        if needs_iot_class(domain, integration_type) {
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

    fn without_iot_class(domain: &str, integration_type: &str) -> ManifestCheck {
        let text = format!(
            r#"{{"domain": "{domain}", "name": "X", "codeowners": [], "documentation": "https://x.io", "integration_type": "{integration_type}"}}"#
        );
        check_manifest_bytes(text.as_bytes(), ManifestRules::HomeAssistant)
    }

    #[test]
    fn iot_class_is_required_of_a_hub() {
        let hub = without_iot_class("x", "hub");
        assert_eq!(hub.problems.len(), 1, "{hub}");
        assert_eq!(hub.problems[0].path, "iot_class");
    }

    #[test]
    fn iot_class_is_required_of_helpers_and_system_integrations_outside_the_list() {
        // hassfest exempts by domain, not by type: `derivative` (a helper) says `calculated`.
        for integration_type in ["helper", "system", "service", "entity"] {
            let check = without_iot_class("derivative", integration_type);
            assert_eq!(check.problems.len(), 1, "{integration_type}: {check}");
            assert_eq!(check.problems[0].path, "iot_class");
        }
    }

    #[test]
    fn home_assistants_own_manifests_without_iot_class_pass() {
        // The core manifests an earlier list refused (Home Assistant 2026.2.3), with the
        // type each declares (or none).
        for (domain, integration_type) in [
            ("color_extractor", None),
            ("downloader", Some("service")),
            ("plant", None),
            ("profiler", None),
            ("proxy", None),
            ("raspberry_pi", Some("hardware")),
            ("assist_pipeline", None),
            ("homeassistant_sky_connect", Some("hardware")),
            ("homeassistant_connect_zbt2", Some("hardware")),
            ("motion", Some("system")),
            ("web_rtc", Some("system")),
        ] {
            let text = match integration_type {
                Some(t) => format!(
                    r#"{{"domain": "{domain}", "name": "X", "codeowners": [], "documentation": "https://x.io", "integration_type": "{t}"}}"#
                ),
                None => format!(
                    r#"{{"domain": "{domain}", "name": "X", "codeowners": [], "documentation": "https://x.io"}}"#
                ),
            };
            let check = check_manifest_bytes(text.as_bytes(), ManifestRules::HomeAssistant);
            assert!(check.is_ok(), "{domain}: {check}");
        }
    }

    #[test]
    fn entity_platforms_and_helpers_in_the_list_need_no_iot_class() {
        for (domain, integration_type) in [
            ("light", "entity"),
            ("sensor", "entity"),
            ("input_boolean", "helper"),
            ("homeassistant", "system"),
        ] {
            let check = without_iot_class(domain, integration_type);
            assert!(check.is_ok(), "{domain}: {check}");
        }
    }

    #[test]
    fn a_virtual_integration_needs_no_iot_class() {
        let virt = br#"{"domain": "v", "name": "V", "integration_type": "virtual"}"#;
        let virt = check_manifest_bytes(virt, ManifestRules::HomeAssistant);
        assert_eq!(virt.problems[0].path, "supported_by", "{virt}");
        assert!(
            !virt.problems.iter().any(|p| p.path == "iot_class"),
            "{virt}"
        );
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
