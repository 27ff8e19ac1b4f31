//! The in-process runtime: native plugins compiled into the host.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;
use homecore::{CustomEvent, ServiceCall, StateChanged};
use serde_json::Value;

use crate::runtime::panic_message;
use crate::{
    HomeCorePlugin, LoadError, PluginContext, PluginError, PluginInstance, PluginManifest,
    PluginRuntime, PluginSource, RuntimeKind,
};

/// Runs native plugins in the host process. A panic inside a plugin is caught at every call
/// boundary and becomes that call's [`PluginError::Panicked`]; the host keeps running.
#[derive(Debug, Default, Clone, Copy)]
pub struct InProcessRuntime;

impl InProcessRuntime {
    /// The runtime.
    #[must_use]
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl PluginRuntime for InProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Native
    }

    async fn load(
        &self,
        _manifest: &PluginManifest,
        source: &PluginSource,
    ) -> Result<Box<dyn PluginInstance>, LoadError> {
        let PluginSource::Native(factory) = source else {
            return Err(LoadError::WrongRuntime {
                runtime: RuntimeKind::Native,
                source_kind: source.kind(),
            });
        };
        let plugin =
            std::panic::catch_unwind(AssertUnwindSafe(|| factory())).map_err(|payload| {
                LoadError::Panicked {
                    message: panic_message(&*payload),
                }
            })?;
        Ok(Box::new(NativeInstance { plugin }))
    }
}

struct NativeInstance {
    plugin: Box<dyn HomeCorePlugin>,
}

/// Awaits a plugin call, turning a panic into [`PluginError::Panicked`].
async fn guarded<T>(
    call: impl std::future::Future<Output = Result<T, PluginError>>,
) -> Result<T, PluginError> {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(PluginError::Panicked {
            message: panic_message(&*payload),
        }),
    }
}

#[async_trait]
impl PluginInstance for NativeInstance {
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError> {
        guarded(self.plugin.setup(ctx, config)).await
    }

    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &Arc<StateChanged>,
    ) -> Result<(), PluginError> {
        guarded(self.plugin.on_state_changed(ctx, event)).await
    }

    async fn on_event(
        &mut self,
        ctx: &PluginContext,
        event: &Arc<CustomEvent>,
    ) -> Result<(), PluginError> {
        guarded(self.plugin.on_event(ctx, event)).await
    }

    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        guarded(self.plugin.call_service(ctx, call)).await
    }

    async fn on_timer(&mut self, ctx: &PluginContext, token: u64) -> Result<(), PluginError> {
        guarded(self.plugin.on_timer(ctx, token)).await
    }

    async fn teardown(&mut self, ctx: &PluginContext) -> Result<(), PluginError> {
        guarded(self.plugin.teardown(ctx)).await
    }
}
