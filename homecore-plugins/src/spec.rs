//! A plugin to load: manifest, code, configuration and the operator's grant.

use std::sync::Arc;

use serde_json::Value;

use crate::{Permissions, PluginManifest, PluginSource};

/// A plugin to load: manifest, code, configuration and the operator's grant.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// The manifest.
    pub manifest: Arc<PluginManifest>,
    /// The code.
    pub source: PluginSource,
    /// The configuration passed to setup.
    pub config: Value,
    /// What the operator grants (`None`: everything the manifest declares).
    pub grant: Option<Permissions>,
}

impl PluginSpec {
    /// A spec with empty configuration and everything declared granted.
    #[must_use]
    pub fn new(manifest: PluginManifest, source: PluginSource) -> Self {
        Self {
            manifest: Arc::new(manifest),
            source,
            config: Value::Object(serde_json::Map::new()),
            grant: None,
        }
    }

    /// With this configuration.
    #[must_use]
    pub fn with_config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// With this operator grant.
    #[must_use]
    pub fn with_grant(mut self, grant: Permissions) -> Self {
        self.grant = Some(grant);
        self
    }
}
