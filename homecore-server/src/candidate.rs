//! What the server knows of a plugin before loading it — a compiled-in plugin or a verified
//! package, with the config it gets when the operator gives none — and how the operator's
//! `[plugins.<domain>]` entry turns it into a registry spec. Used by startup (server.rs) and
//! by hot reload (hot_reload.rs); it depends on neither.

use homecore_plugins::{ManifestError, PluginSpec};
use serde_json::Value;

use crate::PluginConfig;

/// A plugin the server knows before loading: compiled in, or a verified package.
pub(crate) struct Candidate {
    pub(crate) spec: PluginSpec,
    pub(crate) default_config: Option<Value>,
}

/// The compiled-in plugins, with the config each gets when the operator gives none.
///
/// # Errors
/// The [`ManifestError`] of a compiled-in manifest (a build defect).
pub(crate) fn native_candidates() -> Result<Vec<Candidate>, ManifestError> {
    use homecore_integrations::{input_boolean, input_number, motion_lights};
    Ok(vec![
        Candidate {
            spec: motion_lights::spec()?,
            // The WASM example drives the hall; the native one the kitchen, so both run side
            // by side out of the box without counting the same room twice.
            default_config: Some(serde_json::json!({"rooms": ["kitchen"]})),
        },
        Candidate {
            spec: input_boolean::spec()?,
            default_config: Some(input_boolean::default_config()),
        },
        Candidate {
            spec: input_number::spec()?,
            default_config: Some(input_number::default_config()),
        },
    ])
}

/// An embedder's compiled-in plugins, with no default config.
pub(crate) fn natives_extra(specs: Vec<PluginSpec>) -> impl Iterator<Item = Candidate> {
    specs.into_iter().map(|spec| Candidate {
        spec,
        default_config: None,
    })
}

/// The compiled-in plugins' domains and versions: what a package may not shadow
/// (`homecore package verify` checks against them as `homecore run` does).
///
/// # Errors
/// The [`ManifestError`] of a compiled-in manifest (a build defect).
pub fn native_plugins() -> Result<Vec<(String, semver::Version)>, ManifestError> {
    Ok(native_candidates()?
        .iter()
        .map(|c| {
            (
                c.spec.manifest.domain.clone(),
                c.spec.manifest.version.clone(),
            )
        })
        .collect())
}

/// The config the WASM example gets when the operator gives none.
fn example_default_config(domain: &str) -> Option<Value> {
    (domain == "motion_lights_wasm").then(|| serde_json::json!({"rooms": ["hall"]}))
}

impl Candidate {
    /// A verified package, before the operator's configuration is applied (at startup and
    /// at every reload).
    pub(crate) fn from_package(package: homecore_package::VerifiedPackage) -> Self {
        let default_config = example_default_config(package.domain());
        Self {
            spec: package.into_spec(Value::Object(serde_json::Map::new()), None),
            default_config,
        }
    }
}

/// Applies the operator's entry to a candidate: config (or the default), grant, limits. The
/// limits are kept beside the grant (`PluginSpec::limits`), never written into the manifest,
/// so `PluginInfo::manifest` shows what the plugin declared.
pub(crate) fn configure(candidate: Candidate, entry: PluginConfig) -> PluginSpec {
    let mut spec = candidate.spec;
    spec.config = entry
        .config
        .or(candidate.default_config)
        .unwrap_or(Value::Object(serde_json::Map::new()));
    spec.grant = entry.grant;
    spec.limits = entry.limits;
    spec
}
