//! What [`crate::PluginRegistry::load_all`] did with each plugin.

use crate::RegistryError;

/// What [`PluginRegistry::load_all`](crate::PluginRegistry::load_all) did with each plugin, in the order given.
#[derive(Debug, Default)]
pub struct StartReport {
    /// Each plugin's domain and outcome.
    pub outcomes: Vec<(String, Result<(), RegistryError>)>,
}

impl StartReport {
    /// Domains now running.
    #[must_use]
    pub fn started(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(d, _)| d.as_str())
            .collect()
    }

    /// The error for `domain`, if it did not start.
    #[must_use]
    pub fn error(&self, domain: &str) -> Option<&RegistryError> {
        self.outcomes
            .iter()
            .find(|(d, _)| d == domain)
            .and_then(|(_, r)| r.as_ref().err())
    }
}
