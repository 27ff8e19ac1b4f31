//! Plugin manifests: Home Assistant's integration `manifest.json`, plus a `homecore` section.
//!
//! Parsing goes through [`serde_json::Value`] and then a validating walk (`parse.rs`) that
//! records every problem with its JSON path, instead of stopping at serde's first error.

mod discovery;
mod error;
mod parse;
mod path;
mod section;
#[cfg(test)]
mod tests;

pub use self::error::*;

use std::fmt;
use std::str::FromStr;

use semver::{Version, VersionReq};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use self::parse::Mode;
use crate::{Permissions, ResourceLimits};

/// The largest manifest accepted by [`PluginManifest::from_slice`] and friends, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// A plugin's manifest: a superset of Home Assistant's integration `manifest.json`.
///
/// Every field Home Assistant's `hassfest` schema knows is parsed into a typed field; other
/// top-level fields (`locations`, `preview_features`, the virtual-integration fields
/// `supported_by` and `iot_standards`, anything newer) are kept in [`extra`](Self::extra)
/// in their original order and written back unchanged. The `homecore` section says how
/// HomeCore runs the plugin.
///
/// Validation reports every problem at once, each with its JSON path
/// (see [`ManifestError::Invalid`]).
///
/// ```
/// use homecore_plugins::{PluginManifest, RuntimeKind};
///
/// let manifest = PluginManifest::parse(
///     r#"{
///         "domain": "motion_lights",
///         "name": "Motion lights",
///         "version": "1.2.0",
///         "iot_class": "calculated",
///         "homecore": {
///             "runtime": "wasm",
///             "api_version": "^1.0",
///             "module": "motion_lights.wasm",
///             "permissions": {
///                 "states_read": ["binary_sensor.*_motion"],
///                 "states_write": ["light.*"]
///             }
///         }
///     }"#,
/// )?;
/// assert_eq!(manifest.runtime(), RuntimeKind::Wasm);
/// assert_eq!(manifest.version, semver::Version::new(1, 2, 0));
///
/// let err = PluginManifest::parse(r#"{"domain": "Motion", "name": ""}"#).expect_err("invalid");
/// let paths: Vec<_> = err.problems().iter().map(|p| p.path.as_str()).collect();
/// assert_eq!(paths, ["domain", "name", "version", "homecore"]);
/// # Ok::<(), homecore_plugins::ManifestError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginManifest {
    /// The integration's domain (`hue`), by Home Assistant's domain rule.
    pub domain: String,
    /// Human-readable name; not empty.
    pub name: String,
    /// The plugin's version. Home Assistant manifests without one get `0.0.0`
    /// (see [`PluginManifest::from_home_assistant_slice`]).
    pub version: Version,
    /// Documentation URL (http or https).
    pub documentation: Option<String>,
    /// Issue tracker URL (http or https).
    pub issue_tracker: Option<String>,
    /// GitHub users or teams that own the code, each starting with `@`.
    pub codeowners: Vec<String>,
    /// Python requirements (kept for Home Assistant compatibility; HomeCore ignores them).
    pub requirements: Vec<String>,
    /// Domains that must be set up before this plugin.
    pub dependencies: Vec<String>,
    /// Domains that, if present, are set up before this plugin.
    pub after_dependencies: Vec<String>,
    /// How the plugin talks to its devices.
    pub iot_class: Option<IotClass>,
    /// What kind of integration this is.
    pub integration_type: Option<IntegrationType>,
    /// Whether the plugin is set up through a UI config flow.
    pub config_flow: Option<bool>,
    /// Home Assistant's quality tier.
    pub quality_scale: Option<QualityScale>,
    /// Logger names the plugin's libraries use.
    pub loggers: Vec<String>,
    /// Whether at most one config entry may exist.
    pub single_config_entry: Option<bool>,
    /// Why the integration is disabled, if it is.
    pub disabled: Option<String>,
    /// Whether Home Assistant imports the integration in an executor.
    pub import_executor: Option<bool>,
    /// Whether the integration ships with Home Assistant (normally set by its loader).
    pub is_built_in: Option<bool>,
    /// Bluetooth discovery matchers (objects).
    pub bluetooth: Vec<Map<String, Value>>,
    /// Zeroconf discovery matchers: a service type string or an object with a `type`.
    pub zeroconf: Vec<Value>,
    /// SSDP discovery matchers (non-empty objects).
    pub ssdp: Vec<Map<String, Value>>,
    /// DHCP discovery matchers (objects).
    pub dhcp: Vec<Map<String, Value>>,
    /// USB discovery matchers (objects).
    pub usb: Vec<Map<String, Value>>,
    /// HomeKit discovery matcher: an object with a `models` list.
    pub homekit: Option<Map<String, Value>>,
    /// MQTT discovery topics.
    pub mqtt: Vec<String>,
    /// How HomeCore runs the plugin; required except in Home Assistant manifests.
    pub homecore: Option<HomecoreSection>,
    /// Unknown top-level fields, in their original order. Entries whose key is one of the
    /// fields above are not written by [`Serialize`].
    pub extra: Map<String, Value>,
}

/// The `homecore` section of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomecoreSection {
    /// How the plugin is run (`"runtime"`, required).
    pub runtime: RuntimeKind,
    /// The host API versions the plugin works with (`"api_version"`, required, e.g. `"^1.0"`).
    pub api_version: VersionReq,
    /// The plugin's WebAssembly module, relative to the manifest (`"module"`): required for
    /// [`RuntimeKind::Wasm`], absent for [`RuntimeKind::Native`]. Relative, without `..`
    /// or NUL, ending in `.wasm`.
    pub module: Option<String>,
    /// What the plugin asks to be allowed (`"permissions"`); unknown keys are errors.
    pub permissions: Permissions,
    /// The resources it asks for (`"limits"`); unknown keys are errors, values are above 0.
    pub limits: ResourceLimits,
    /// A JSON Schema for the plugin's configuration (`"config_schema"`): an object or a
    /// boolean.
    pub config_schema: Option<Value>,
    /// Unknown keys of the section, in their original order. Entries whose key is one of
    /// the fields above are not written by [`Serialize`].
    pub extra: Map<String, Value>,
}

/// Defines a fieldless enum spelled as fixed strings in manifests.
macro_rules! name_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every spelling a manifest may use, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The spelling used in manifests.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }

            /// The variant spelled `name` in manifests, if any.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_enum! {
    /// How HomeCore runs a plugin (`homecore.runtime`).
    RuntimeKind {
        /// Compiled into the host (`"native"`).
        Native => "native",
        /// A sandboxed WebAssembly module (`"wasm"`).
        Wasm => "wasm",
    }
}

name_enum! {
    /// How an integration talks to its devices (`iot_class`).
    IotClass {
        /// State is assumed, not read back (`"assumed_state"`).
        AssumedState => "assumed_state",
        /// Computed from other data (`"calculated"`).
        Calculated => "calculated",
        /// Polls a cloud service (`"cloud_polling"`).
        CloudPolling => "cloud_polling",
        /// Pushed from a cloud service (`"cloud_push"`).
        CloudPush => "cloud_push",
        /// Polls a local device (`"local_polling"`).
        LocalPolling => "local_polling",
        /// Pushed from a local device (`"local_push"`).
        LocalPush => "local_push",
    }
}

name_enum! {
    /// What kind of integration it is (`integration_type`).
    IntegrationType {
        /// A single device (`"device"`).
        Device => "device",
        /// An entity platform (`"entity"`).
        Entity => "entity",
        /// Hardware support (`"hardware"`).
        Hardware => "hardware",
        /// A helper (`"helper"`).
        Helper => "helper",
        /// A hub of devices, Home Assistant's default (`"hub"`).
        Hub => "hub",
        /// A service (`"service"`).
        Service => "service",
        /// A system integration (`"system"`).
        System => "system",
        /// A brand pointing at another integration (`"virtual"`).
        Virtual => "virtual",
    }
}

name_enum! {
    /// Home Assistant's quality tier (`quality_scale`), current and legacy spellings.
    QualityScale {
        /// `"bronze"`.
        Bronze => "bronze",
        /// `"silver"`.
        Silver => "silver",
        /// `"gold"`.
        Gold => "gold",
        /// `"platinum"`.
        Platinum => "platinum",
        /// Internal integration, not rated (`"internal"`).
        Internal => "internal",
        /// A custom integration (`"custom"`).
        Custom => "custom",
        /// Not rated yet (`"no_score"`).
        NoScore => "no_score",
        /// Legacy, not rated (`"legacy"`).
        Legacy => "legacy",
    }
}

impl PluginManifest {
    /// Parses and validates a HomeCore manifest: the `homecore` section and `version` are
    /// required.
    ///
    /// # Errors
    /// [`ManifestError::TooLarge`] over [`MAX_MANIFEST_BYTES`], [`ManifestError::Syntax`] for
    /// malformed JSON, [`ManifestError::NotAnObject`], or [`ManifestError::Invalid`] listing
    /// every problem.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ManifestError> {
        parse::manifest(parse::json(bytes)?, Mode::HomeCore)
    }

    /// Parses and validates a HomeCore manifest from text; as [`PluginManifest::from_slice`]
    /// (and [`FromStr`]).
    ///
    /// # Errors
    /// As [`PluginManifest::from_slice`].
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        Self::from_slice(text.as_bytes())
    }

    /// Validates a HomeCore manifest already parsed as JSON.
    ///
    /// # Errors
    /// [`ManifestError::NotAnObject`] or [`ManifestError::Invalid`] listing every problem.
    pub fn from_value(value: Value) -> Result<Self, ManifestError> {
        parse::manifest(value, Mode::HomeCore)
    }

    /// Parses a plain Home Assistant `manifest.json`. The `homecore` section is optional
    /// (validated when present; without it the plugin is [`RuntimeKind::Native`]). `version`
    /// is optional, as for Home Assistant's core integrations: a missing one becomes `0.0.0`
    /// (and is written back as such). Versions Home Assistant's custom integrations commonly
    /// use are accepted and normalised: a leading `v`, one or two components (`"1.0"` is
    /// `1.0.0`), leading zeros (`"2024.01.5"` is `2024.1.5`).
    ///
    /// # Errors
    /// As [`PluginManifest::from_slice`].
    pub fn from_home_assistant_slice(bytes: &[u8]) -> Result<Self, ManifestError> {
        parse::manifest(parse::json(bytes)?, Mode::HomeAssistant)
    }

    /// As [`PluginManifest::from_home_assistant_slice`], for JSON already parsed.
    ///
    /// # Errors
    /// [`ManifestError::NotAnObject`] or [`ManifestError::Invalid`] listing every problem.
    pub fn from_home_assistant_value(value: Value) -> Result<Self, ManifestError> {
        parse::manifest(value, Mode::HomeAssistant)
    }

    /// How the plugin is run: [`RuntimeKind::Native`] without a `homecore` section.
    #[must_use]
    pub fn runtime(&self) -> RuntimeKind {
        self.homecore
            .as_ref()
            .map_or(RuntimeKind::Native, |h| h.runtime)
    }

    /// The manifest as pretty JSON (two-space indent, as Home Assistant writes them):
    /// `domain`, `name`, the other known fields alphabetically (empty lists and absent
    /// options left out, except `codeowners`, which Home Assistant requires), then
    /// [`extra`](Self::extra) in its order. Parsing the result gives an equal manifest.
    #[must_use]
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self)
            .expect("a manifest serializes: string keys and finite numbers only")
    }
}

impl FromStr for PluginManifest {
    type Err = ManifestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Known top-level keys, as serialized; extras with these keys are skipped on output.
const MANIFEST_FIELDS: &[&str] = &[
    "domain",
    "name",
    "after_dependencies",
    "bluetooth",
    "codeowners",
    "config_flow",
    "dependencies",
    "dhcp",
    "disabled",
    "documentation",
    "homecore",
    "homekit",
    "import_executor",
    "integration_type",
    "iot_class",
    "is_built_in",
    "issue_tracker",
    "loggers",
    "mqtt",
    "quality_scale",
    "requirements",
    "single_config_entry",
    "ssdp",
    "usb",
    "version",
    "zeroconf",
];

/// Known keys of the `homecore` section.
const HOMECORE_FIELDS: &[&str] = &[
    "runtime",
    "api_version",
    "module",
    "permissions",
    "limits",
    "config_schema",
];

/// Writes `key: value` unless `value` is `None`.
fn entry_opt<M: SerializeMap, T: Serialize>(
    map: &mut M,
    key: &str,
    value: Option<&T>,
) -> Result<(), M::Error> {
    match value {
        Some(value) => map.serialize_entry(key, value),
        None => Ok(()),
    }
}

/// Writes `key: list` unless the list is empty.
fn entry_list<M: SerializeMap, T: Serialize>(
    map: &mut M,
    key: &str,
    list: &[T],
) -> Result<(), M::Error> {
    if list.is_empty() {
        Ok(())
    } else {
        map.serialize_entry(key, list)
    }
}

/// Writes the entries of `extra` whose keys are not in `known`.
fn entry_extras<M: SerializeMap>(
    map: &mut M,
    extra: &Map<String, Value>,
    known: &[&str],
) -> Result<(), M::Error> {
    for (key, value) in extra {
        if !known.contains(&key.as_str()) {
            map.serialize_entry(key, value)?;
        }
    }
    Ok(())
}

impl Serialize for PluginManifest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("domain", &self.domain)?;
        m.serialize_entry("name", &self.name)?;
        entry_list(&mut m, "after_dependencies", &self.after_dependencies)?;
        entry_list(&mut m, "bluetooth", &self.bluetooth)?;
        m.serialize_entry("codeowners", &self.codeowners)?;
        entry_opt(&mut m, "config_flow", self.config_flow.as_ref())?;
        entry_list(&mut m, "dependencies", &self.dependencies)?;
        entry_list(&mut m, "dhcp", &self.dhcp)?;
        entry_opt(&mut m, "disabled", self.disabled.as_ref())?;
        entry_opt(&mut m, "documentation", self.documentation.as_ref())?;
        entry_opt(&mut m, "homecore", self.homecore.as_ref())?;
        entry_opt(&mut m, "homekit", self.homekit.as_ref())?;
        entry_opt(&mut m, "import_executor", self.import_executor.as_ref())?;
        entry_opt(&mut m, "integration_type", self.integration_type.as_ref())?;
        entry_opt(&mut m, "iot_class", self.iot_class.as_ref())?;
        entry_opt(&mut m, "is_built_in", self.is_built_in.as_ref())?;
        entry_opt(&mut m, "issue_tracker", self.issue_tracker.as_ref())?;
        entry_list(&mut m, "loggers", &self.loggers)?;
        entry_list(&mut m, "mqtt", &self.mqtt)?;
        entry_opt(&mut m, "quality_scale", self.quality_scale.as_ref())?;
        entry_list(&mut m, "requirements", &self.requirements)?;
        entry_opt(
            &mut m,
            "single_config_entry",
            self.single_config_entry.as_ref(),
        )?;
        entry_list(&mut m, "ssdp", &self.ssdp)?;
        entry_list(&mut m, "usb", &self.usb)?;
        m.serialize_entry("version", &self.version)?;
        entry_list(&mut m, "zeroconf", &self.zeroconf)?;
        entry_extras(&mut m, &self.extra, MANIFEST_FIELDS)?;
        m.end()
    }
}

impl Serialize for HomecoreSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("runtime", &self.runtime)?;
        m.serialize_entry("api_version", &self.api_version)?;
        entry_opt(&mut m, "module", self.module.as_ref())?;
        if self.permissions != Permissions::default() {
            m.serialize_entry("permissions", &PermissionsOut(&self.permissions))?;
        }
        if self.limits != ResourceLimits::default() {
            m.serialize_entry("limits", &LimitsOut(&self.limits))?;
        }
        entry_opt(&mut m, "config_schema", self.config_schema.as_ref())?;
        entry_extras(&mut m, &self.extra, HOMECORE_FIELDS)?;
        m.end()
    }
}

/// Permissions without empty lists or a `false` storage flag.
struct PermissionsOut<'a>(&'a Permissions);

impl Serialize for PermissionsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = serializer.serialize_map(None)?;
        entry_list(&mut m, "states_read", &p.states_read)?;
        entry_list(&mut m, "states_write", &p.states_write)?;
        entry_list(&mut m, "services", &p.services)?;
        entry_list(&mut m, "events", &p.events)?;
        if p.storage {
            m.serialize_entry("storage", &true)?;
        }
        m.end()
    }
}

/// Limits without the ones left to the host's default.
struct LimitsOut<'a>(&'a ResourceLimits);

impl Serialize for LimitsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = serializer.serialize_map(None)?;
        entry_opt(&mut m, "memory_bytes", l.memory_bytes.as_ref())?;
        entry_opt(&mut m, "table_elements", l.table_elements.as_ref())?;
        entry_opt(&mut m, "fuel_per_call", l.fuel_per_call.as_ref())?;
        entry_opt(&mut m, "call_timeout_ms", l.call_timeout_ms.as_ref())?;
        entry_opt(
            &mut m,
            "host_calls_per_call",
            l.host_calls_per_call.as_ref(),
        )?;
        entry_opt(&mut m, "mailbox_capacity", l.mailbox_capacity.as_ref())?;
        entry_opt(&mut m, "storage_bytes", l.storage_bytes.as_ref())?;
        m.end()
    }
}

/// Deserializes and validates like [`PluginManifest::from_value`] (the `homecore` section is
/// required); the error message lists every problem.
impl<'de> Deserialize<'de> for PluginManifest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}
