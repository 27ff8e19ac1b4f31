//! The contract every plugin implements.

use async_trait::async_trait;
use homecore::{BoxError, CustomEvent, ServiceCall, StateChanged};
use serde_json::Value;

use crate::{GuestFailure, HostError, PluginContext};

/// Why a plugin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A host call made by the plugin failed (denied, invalid, loop guard, …).
    #[error(transparent)]
    Host(#[from] HostError),
    /// The plugin's configuration is invalid.
    #[error("invalid configuration at {path}: {reason}")]
    Config {
        /// Where in the configuration, e.g. `quiet_seconds`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin does not provide the service it was asked for.
    #[error("plugin does not provide service {service}")]
    UnknownService {
        /// The service asked for.
        service: String,
    },
    /// The plugin panicked; the panic was caught at the call boundary.
    #[error("plugin panicked: {message}")]
    Panicked {
        /// The panic message (capped).
        message: String,
    },
    /// The call took longer than the plugin's limit.
    #[error("call exceeded its {limit_ms} ms deadline")]
    Timeout {
        /// The limit.
        limit_ms: u64,
    },
    /// The runtime (the WASM engine) failed the call: fuel, deadline, memory or table limit,
    /// trap, an error status from the guest, or an ABI violation.
    #[error("runtime failure: {}{failure}", helper.map(|h| format!("{h} failed: ")).unwrap_or_default())]
    Runtime {
        /// What failed, by kind.
        failure: GuestFailure,
        /// The ABI helper export (`hc_alloc`, `hc_free`) it failed in, when not the hook called.
        helper: Option<&'static str>,
    },
    /// Any other failure inside the plugin.
    #[error(transparent)]
    Other(BoxError),
}

impl From<GuestFailure> for PluginError {
    fn from(failure: GuestFailure) -> Self {
        Self::Runtime {
            failure,
            helper: None,
        }
    }
}

impl PluginError {
    /// The guest failure behind this error, if the runtime failed the call.
    #[must_use]
    pub fn guest_failure(&self) -> Option<&GuestFailure> {
        match self {
            Self::Runtime { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// Wraps any error as [`PluginError::Other`].
    pub fn other(err: impl Into<BoxError>) -> Self {
        Self::Other(err.into())
    }

    /// A configuration error at `path`.
    pub fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// What a plugin implements: native plugins directly, WASM plugins through the guest SDK.
///
/// Every method is called from the plugin's own task, one call at a time, in event order; a
/// panic in any of them is caught and becomes that call's [`PluginError::Panicked`]. All access
/// to the home goes through the [`PluginContext`], which checks the plugin's permissions.
#[async_trait]
pub trait HomeCorePlugin: Send + 'static {
    /// Starts the plugin with its configuration: read states, subscribe, register services.
    ///
    /// # Errors
    /// A failed setup is retried with backoff, then the plugin is marked failed.
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError>;

    /// Stops the plugin: cancel timers, release resources.
    ///
    /// # Errors
    /// Logged; the plugin is unloaded anyway.
    async fn teardown(&mut self, ctx: &PluginContext) -> Result<(), PluginError> {
        let _ = ctx;
        Ok(())
    }

    /// Reacts to a change of an entity the plugin subscribed to. Writes made through `ctx`
    /// carry a child of the event's context (the loop guard's input).
    ///
    /// # Errors
    /// Counted and logged; repeated failures quarantine the plugin.
    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &StateChanged,
    ) -> Result<(), PluginError> {
        let _ = (ctx, event);
        Ok(())
    }

    /// Reacts to a generic event the plugin subscribed to.
    ///
    /// # Errors
    /// As [`HomeCorePlugin::on_state_changed`].
    async fn on_event(
        &mut self,
        ctx: &PluginContext,
        event: &CustomEvent,
    ) -> Result<(), PluginError> {
        let _ = (ctx, event);
        Ok(())
    }

    /// A timer started with [`PluginContext::start_timer`] fired. Runs on the plugin's task
    /// like every other call; writes carry a child of the context that started the timer.
    ///
    /// # Errors
    /// As [`HomeCorePlugin::on_state_changed`].
    async fn on_timer(&mut self, ctx: &PluginContext, token: u64) -> Result<(), PluginError> {
        let _ = (ctx, token);
        Ok(())
    }

    /// Carries out one of the services the plugin registered with
    /// [`PluginContext::register_service`].
    ///
    /// # Errors
    /// [`PluginError::UnknownService`] by default.
    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        let _ = ctx;
        Err(PluginError::UnknownService {
            service: call.name.to_string(),
        })
    }
}
