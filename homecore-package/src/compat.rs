//! Compatibility: host API version, ABI version (read from the module's custom section without
//! compiling it), and dependency version requirements.
//!
//! Dependency versions are declared in the manifest's `homecore` section, beside Home
//! Assistant's plain `dependencies` list:
//!
//! ```json
//! "dependencies": ["presence"],
//! "homecore": { "dependency_versions": { "presence": "^1.2" }, ... }
//! ```

use std::collections::BTreeMap;

use homecore_abi::v1::ABI_SECTION;
use homecore_abi::{AbiSectionError, SUPPORTED_VERSIONS, module_abi_version};
use homecore_plugins::{HOST_API_VERSION, PluginManifest};
use semver::{Version, VersionReq};

use crate::key::cap;

/// The `homecore` section key holding dependency version requirements.
pub const DEPENDENCY_VERSIONS_KEY: &str = "dependency_versions";

/// Why a plugin is incompatible with this host or with the other plugins.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompatError {
    /// The plugin requires a host API version this host does not provide.
    #[error("plugin {domain} requires host API {required}, but this host provides {host}")]
    IncompatibleApi {
        /// The plugin.
        domain: String,
        /// Its requirement.
        required: VersionReq,
        /// The host's version.
        host: Version,
    },
    /// The module is not a WebAssembly core module, or its section headers or its ABI section
    /// are malformed.
    #[error("plugin {domain}'s module is malformed: {error}")]
    MalformedModule {
        /// The plugin.
        domain: String,
        /// What is wrong, and where.
        error: AbiSectionError,
    },
    /// The module declares no ABI version.
    #[error(
        "plugin {domain}'s module declares no HomeCore ABI version (custom section {ABI_SECTION:?} is missing); this host serves ABI {supported:?}"
    )]
    MissingAbiVersion {
        /// The plugin.
        domain: String,
        /// The versions this host serves.
        supported: &'static [u32],
    },
    /// The module was built for an ABI this host does not serve.
    #[error(
        "plugin {domain} is built for HomeCore ABI {found}, but this host serves ABI {supported:?}"
    )]
    IncompatibleAbi {
        /// The plugin.
        domain: String,
        /// The module's ABI version.
        found: u32,
        /// The versions this host serves.
        supported: &'static [u32],
    },
    /// `homecore.dependency_versions` is malformed.
    #[error("plugin {domain}: homecore.{DEPENDENCY_VERSIONS_KEY}.{dependency}: {reason}")]
    BadDependencyRequirement {
        /// The plugin.
        domain: String,
        /// The entry's key (capped), or `*` when the value is not an object.
        dependency: String,
        /// What is wrong.
        reason: String,
    },
    /// A required dependency is neither a native plugin nor another accepted package.
    #[error("plugin {domain} depends on {dependency}, which is not installed")]
    MissingDependency {
        /// The plugin.
        domain: String,
        /// The dependency.
        dependency: String,
    },
    /// A dependency's package was refused, so its dependents do not start either.
    #[error("plugin {domain} depends on {dependency}, which was refused")]
    DependencyRefused {
        /// The plugin.
        domain: String,
        /// The dependency.
        dependency: String,
    },
    /// A dependency is installed at a version outside the requirement.
    #[error(
        "plugin {domain} requires {dependency} {required}, but {dependency} {found} is installed"
    )]
    DependencyVersion {
        /// The plugin.
        domain: String,
        /// The dependency.
        dependency: String,
        /// The requirement.
        required: VersionReq,
        /// The installed version.
        found: Version,
    },
}

/// The ABI version a module declares in its [`ABI_SECTION`] custom section, read from the
/// section headers only (no compilation, no validation of code) by
/// [`homecore_abi::module_abi_version`], the reader the runtime uses too (ADR 14).
///
/// # Errors
/// [`CompatError::MalformedModule`], [`CompatError::MissingAbiVersion`],
/// [`CompatError::IncompatibleAbi`].
pub fn abi_version(domain: &str, module: &[u8]) -> Result<u32, CompatError> {
    let declared = module_abi_version(module).map_err(|error| CompatError::MalformedModule {
        domain: domain.to_owned(),
        error,
    })?;
    let found = declared.ok_or_else(|| CompatError::MissingAbiVersion {
        domain: domain.to_owned(),
        supported: SUPPORTED_VERSIONS,
    })?;
    if !SUPPORTED_VERSIONS.contains(&found) {
        return Err(CompatError::IncompatibleAbi {
            domain: domain.to_owned(),
            found,
            supported: SUPPORTED_VERSIONS,
        });
    }
    Ok(found)
}

/// Checks the plugin against this host: its host API requirement and its module's ABI version.
/// Returns the ABI version.
///
/// # Errors
/// [`CompatError::IncompatibleApi`] and the errors of [`abi_version`].
pub fn check_host(manifest: &PluginManifest, module: &[u8]) -> Result<u32, CompatError> {
    check_api(manifest, &HOST_API_VERSION)?;
    abi_version(&manifest.domain, module)
}

/// Checks the plugin's host API requirement against `host`.
///
/// # Errors
/// [`CompatError::IncompatibleApi`] naming both versions.
pub fn check_api(manifest: &PluginManifest, host: &Version) -> Result<(), CompatError> {
    match &manifest.homecore {
        Some(section) if !section.api_version.matches(host) => Err(CompatError::IncompatibleApi {
            domain: manifest.domain.clone(),
            required: section.api_version.clone(),
            host: host.clone(),
        }),
        _ => Ok(()),
    }
}

/// The plugin's dependency version requirements (`homecore.dependency_versions`). Each key
/// must be listed in `dependencies` or `after_dependencies`.
///
/// # Errors
/// [`CompatError::BadDependencyRequirement`] naming the entry.
pub fn dependency_requirements(
    manifest: &PluginManifest,
) -> Result<BTreeMap<String, VersionReq>, CompatError> {
    let bad = |dependency: &str, reason: String| CompatError::BadDependencyRequirement {
        domain: manifest.domain.clone(),
        dependency: cap(dependency),
        reason,
    };
    let Some(value) = manifest
        .homecore
        .as_ref()
        .and_then(|h| h.extra.get(DEPENDENCY_VERSIONS_KEY))
    else {
        return Ok(BTreeMap::new());
    };
    let Some(map) = value.as_object() else {
        return Err(bad(
            "*",
            "must be an object of domain to version requirement".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (dependency, req) in map {
        let listed = manifest.dependencies.contains(dependency)
            || manifest.after_dependencies.contains(dependency);
        if !listed {
            return Err(bad(
                dependency,
                "not listed in dependencies or after_dependencies".into(),
            ));
        }
        let Some(text) = req.as_str() else {
            return Err(bad(
                dependency,
                "must be a version requirement string".into(),
            ));
        };
        let req = text.parse::<VersionReq>().map_err(|e| {
            bad(
                dependency,
                format!("{:?} is not a version requirement: {e}", cap(text)),
            )
        })?;
        out.insert(dependency.clone(), req);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with the given custom sections (name, content) and nothing else.
    fn module(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        for (name, content) in sections {
            let mut body = vec![u8::try_from(name.len()).expect("short")];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(content);
            out.push(0);
            out.push(u8::try_from(body.len()).expect("short"));
            out.extend(body);
        }
        out
    }

    #[test]
    fn the_abi_version_is_read_from_the_custom_section() {
        let m = module(&[("name", b"xx"), ("homecore_abi", &1u32.to_le_bytes())]);
        assert_eq!(abi_version("p", &m), Ok(1));
    }

    #[test]
    fn an_unsupported_abi_names_both_versions() {
        let m = module(&[("homecore_abi", &2u32.to_le_bytes())]);
        let err = abi_version("p", &m).expect_err("v2");
        assert!(matches!(err, CompatError::IncompatibleAbi { found: 2, .. }));
        assert_eq!(
            err.to_string(),
            "plugin p is built for HomeCore ABI 2, but this host serves ABI [1]"
        );
    }

    #[test]
    fn missing_and_malformed_abi_sections_are_refused() {
        assert!(matches!(
            abi_version("p", &module(&[])),
            Err(CompatError::MissingAbiVersion { .. })
        ));
        for bad in [
            b"\x7fELF\x01\0\0\0".to_vec(),
            b"\0asm\x0d\0\x01\0".to_vec(),
            b"\0asm\x01\0\0\0\x00\x7f".to_vec(),
            b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\xff".to_vec(),
            module(&[("homecore_abi", b"\x01\0\0")]),
            module(&[
                ("homecore_abi", &1u32.to_le_bytes()),
                ("homecore_abi", &2u32.to_le_bytes()),
            ]),
        ] {
            assert!(
                matches!(
                    abi_version("p", &bad),
                    Err(CompatError::MalformedModule { .. })
                ),
                "{bad:?}"
            );
        }
    }

    fn manifest(extra: &str) -> PluginManifest {
        PluginManifest::parse(&format!(
            r#"{{"domain": "p", "name": "P", "version": "1.0.0", "dependencies": ["a"],
                "after_dependencies": ["b"],
                "homecore": {{"runtime": "wasm", "api_version": "^1", "module": "p.wasm" {extra}}}}}"#
        ))
        .expect("valid manifest")
    }

    #[test]
    fn an_incompatible_api_names_both_versions() {
        let m = manifest("");
        check_api(&m, &Version::new(1, 4, 0)).expect("compatible");
        let err = check_api(&m, &Version::new(2, 0, 0)).expect_err("incompatible");
        assert_eq!(
            err.to_string(),
            "plugin p requires host API ^1, but this host provides 2.0.0"
        );
    }

    #[test]
    fn dependency_requirements_are_parsed_and_checked() {
        let reqs = dependency_requirements(&manifest(
            r#", "dependency_versions": {"a": "^1.2", "b": ">=0.3"}"#,
        ))
        .expect("valid");
        assert_eq!(reqs["a"], "^1.2".parse().expect("req"));
        assert_eq!(reqs["b"], ">=0.3".parse().expect("req"));
        assert!(
            dependency_requirements(&manifest(""))
                .expect("none")
                .is_empty()
        );
        for bad in [
            r#", "dependency_versions": ["a"]"#,
            r#", "dependency_versions": {"c": "1"}"#,
            r#", "dependency_versions": {"a": 1}"#,
            r#", "dependency_versions": {"a": "not a req"}"#,
        ] {
            assert!(
                matches!(
                    dependency_requirements(&manifest(bad)),
                    Err(CompatError::BadDependencyRequirement { .. })
                ),
                "{bad}"
            );
        }
    }
}
