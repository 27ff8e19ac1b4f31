//! Why the registry refused or failed a plugin.

use crate::{Lifecycle, LoadError, OrderError, PluginError, RuntimeKind};

/// Why the registry refused or failed a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A plugin with this domain is already loaded (or listed twice).
    #[error("a plugin with domain {domain} is already loaded")]
    DuplicateDomain {
        /// The domain.
        domain: String,
    },
    /// The plugin needs a host API version this host does not provide.
    #[error("plugin {plugin} requires host API {required}, this host provides {host}")]
    IncompatibleApi {
        /// The plugin.
        plugin: String,
        /// What it requires.
        required: semver::VersionReq,
        /// What the host provides.
        host: semver::Version,
    },
    /// The manifest's runtime kind and the code given differ.
    #[error("plugin {plugin} declares runtime {declared:?} but its code is {given:?}")]
    RuntimeMismatch {
        /// The plugin.
        plugin: String,
        /// Declared in the manifest.
        declared: RuntimeKind,
        /// Given as source.
        given: RuntimeKind,
    },
    /// No runtime for the plugin's kind.
    #[error("no {kind:?} runtime is registered for plugin {plugin}")]
    NoRuntime {
        /// The plugin.
        plugin: String,
        /// The kind.
        kind: RuntimeKind,
    },
    /// Dependency cycle, missing dependency, or a dependency that cannot start.
    #[error(transparent)]
    Order(#[from] OrderError),
    /// A dependency failed to start.
    #[error("plugin {plugin} not started: dependency {dependency} is {lifecycle:?}")]
    DependencyFailed {
        /// The plugin.
        plugin: String,
        /// The dependency.
        dependency: String,
        /// The dependency's state.
        lifecycle: Lifecycle,
    },
    /// The runtime could not load the plugin.
    #[error("plugin {plugin} could not be loaded")]
    Load {
        /// The plugin.
        plugin: String,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// Setup failed on every attempt.
    // The message keeps the last error's text (what `{err}` printed before it was typed);
    // chains that also walk the source skip the repeat (see `error_chain`).
    #[error("setup of plugin {plugin} failed {attempts} times; last error: {last_error}")]
    SetupFailed {
        /// The plugin.
        plugin: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error (match on it, e.g. [`PluginError::guest_failure`]).
        #[source]
        last_error: PluginError,
    },
    /// No plugin with this domain.
    #[error("no plugin with domain {domain} is loaded")]
    NotFound {
        /// The domain.
        domain: String,
    },
    /// The plugin was unloaded while starting.
    #[error("plugin {plugin} was unloaded while starting")]
    Cancelled {
        /// The plugin.
        plugin: String,
    },
}

/// `err` and its sources, joined by ": ", each source's text once (what the registry shows as
/// a plugin's last error).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_failure_names_its_last_error_once() {
        let err = RegistryError::SetupFailed {
            plugin: "p".into(),
            attempts: 2,
            last_error: PluginError::config("quiet_seconds", "must be positive"),
        };
        assert_eq!(
            error_chain(&err),
            "setup of plugin p failed 2 times; last error: invalid configuration at quiet_seconds: must be positive"
        );
        let source = std::error::Error::source(&err).expect("typed source");
        assert!(matches!(
            source.downcast_ref::<PluginError>(),
            Some(PluginError::Config { .. })
        ));
    }
}
