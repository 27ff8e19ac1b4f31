//! A plugin to load: manifest, code, configuration and the operator's grant and limits.

use std::sync::Arc;

use serde_json::Value;

use crate::{Permissions, PluginManifest, PluginSource, ResourceLimits};

/// A plugin to load: manifest, code, configuration and the operator's grant and limits.
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
    /// The operator's limits for this plugin (`None`: only the host policy's). The plugin runs
    /// under what its manifest asks ∩ these ∩ the host policy ([`PluginSpec::effective_limits`]).
    pub limits: Option<ResourceLimits>,
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
            limits: None,
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

    /// With these operator limits (each at most what the host policy allows, whatever is set
    /// here; a limit the manifest asks below them stays lower).
    #[must_use]
    pub fn with_limits(mut self, limits: ResourceLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The limits the plugin runs under: what its manifest asks, capped by the operator's
    /// limits, capped by `policy` (a limit missing on one side takes the other's; see
    /// [`ResourceLimits::capped_by`]).
    #[must_use]
    pub fn effective_limits(&self, policy: &ResourceLimits) -> ResourceLimits {
        let asked = self
            .manifest
            .homecore
            .as_ref()
            .map(|h| h.limits)
            .unwrap_or_default();
        asked
            .capped_by(&self.limits.unwrap_or_default())
            .capped_by(policy)
    }

    /// The manifest a runtime loads: the spec's own, with its limits capped by the operator's
    /// (the runtime then caps them by its own policy).
    pub(crate) fn runtime_manifest(&self) -> Arc<PluginManifest> {
        match (&self.limits, &self.manifest.homecore) {
            (Some(operator), Some(section)) => {
                let mut manifest = PluginManifest::clone(&self.manifest);
                let limits = section.limits.capped_by(operator);
                if let Some(section) = manifest.homecore.as_mut() {
                    section.limits = limits;
                }
                Arc::new(manifest)
            }
            _ => Arc::clone(&self.manifest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PluginSource;

    fn spec(asked: serde_json::Value) -> PluginSpec {
        let manifest = PluginManifest::parse(
            &serde_json::json!({
                "domain": "limited", "name": "Limited", "version": "1.0.0",
                "homecore": {"runtime": "native", "api_version": "^1", "limits": asked}
            })
            .to_string(),
        )
        .expect("valid manifest");
        PluginSpec::new(manifest, PluginSource::native(|| Noop))
    }

    struct Noop;

    #[async_trait::async_trait]
    impl crate::HomeCorePlugin for Noop {
        async fn setup(
            &mut self,
            _ctx: &crate::PluginContext,
            _config: &Value,
        ) -> Result<(), crate::PluginError> {
            Ok(())
        }
    }

    #[test]
    fn effective_limits_are_asked_and_operator_and_policy() {
        let policy = ResourceLimits {
            memory_bytes: Some(64 << 20),
            fuel_per_call: Some(1_000_000),
            mailbox_capacity: Some(1024),
            ..ResourceLimits::default()
        };
        let operator = ResourceLimits {
            memory_bytes: Some(128 << 20),
            fuel_per_call: Some(500_000),
            storage_bytes: Some(4096),
            ..ResourceLimits::default()
        };
        let spec = spec(serde_json::json!({"memory_bytes": 1u64 << 30, "mailbox_capacity": 16}))
            .with_limits(operator);
        let eff = spec.effective_limits(&policy);
        assert_eq!(
            eff.memory_bytes,
            Some(64 << 20),
            "the policy caps the operator"
        );
        assert_eq!(
            eff.fuel_per_call,
            Some(500_000),
            "the operator caps the policy"
        );
        assert_eq!(
            eff.mailbox_capacity,
            Some(16),
            "the manifest may ask for less"
        );
        assert_eq!(eff.storage_bytes, Some(4096), "the operator fills a gap");
        let runtime = spec.runtime_manifest();
        let limits = runtime.homecore.as_ref().expect("section").limits;
        assert_eq!(limits.memory_bytes, Some(128 << 20));
        assert_eq!(limits.fuel_per_call, Some(500_000));
    }

    #[test]
    fn without_operator_limits_the_manifest_is_shared() {
        let spec = spec(serde_json::json!({"memory_bytes": 1 << 20}));
        assert!(Arc::ptr_eq(&spec.runtime_manifest(), &spec.manifest));
        assert_eq!(
            spec.effective_limits(&ResourceLimits::default())
                .memory_bytes,
            Some(1 << 20)
        );
    }
}
