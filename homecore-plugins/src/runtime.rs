//! The abstraction every execution environment implements (in-process now, Wasmtime next).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use homecore::{CustomEvent, ServiceCall, StateChanged};
use serde_json::Value;

use crate::{
    GuestFailure, HomeCorePlugin, PluginContext, PluginError, PluginManifest, RuntimeKind,
};

/// The host API version plugins declare a requirement on (`homecore.api_version`).
pub const HOST_API_VERSION: semver::Version = semver::Version::new(1, 0, 0);

/// Makes a fresh instance of a native plugin (called at load and at every reload).
pub type NativeFactory = Arc<dyn Fn() -> Box<dyn HomeCorePlugin> + Send + Sync>;

/// Where a plugin's code comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum PluginSource {
    /// A plugin compiled into the host.
    Native(NativeFactory),
    /// A WASM module's bytes.
    Wasm(Arc<[u8]>),
    /// A WASM module's bytes with their SHA-256, as computed by whoever verified them (a
    /// signed package's verification does). The Wasmtime runtime takes the digest as the
    /// module's identity in its compiled-module cache instead of hashing the bytes again, so
    /// it must be the SHA-256 of exactly these bytes: another digest could hand this plugin
    /// another module's compiled code (debug builds check it).
    VerifiedWasm {
        /// The module's bytes.
        module: Arc<[u8]>,
        /// The SHA-256 of `module`.
        sha256: [u8; 32],
    },
}

impl PluginSource {
    /// A native plugin made by `factory`.
    pub fn native<P: HomeCorePlugin>(factory: impl Fn() -> P + Send + Sync + 'static) -> Self {
        Self::Native(Arc::new(move || {
            Box::new(factory()) as Box<dyn HomeCorePlugin>
        }))
    }

    /// The runtime kind this source needs.
    #[must_use]
    pub fn kind(&self) -> RuntimeKind {
        match self {
            Self::Native(_) => RuntimeKind::Native,
            Self::Wasm(_) | Self::VerifiedWasm { .. } => RuntimeKind::Wasm,
        }
    }
}

impl fmt::Debug for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native(_) => f.write_str("Native(..)"),
            Self::Wasm(bytes) => write!(f, "Wasm({} bytes)", bytes.len()),
            Self::VerifiedWasm { module, .. } => {
                write!(f, "VerifiedWasm({} bytes)", module.len())
            }
        }
    }
}

/// Why a runtime could not load a plugin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The source is for another runtime.
    #[error("runtime {runtime:?} cannot load a {source_kind:?} plugin")]
    WrongRuntime {
        /// This runtime.
        runtime: RuntimeKind,
        /// What the source needs.
        source_kind: RuntimeKind,
    },
    /// No runtime of this kind is available (e.g. the `wasmtime` feature is off).
    #[error("no {kind:?} runtime is available in this build")]
    NoRuntime {
        /// The kind asked for.
        kind: RuntimeKind,
    },
    /// The plugin's constructor panicked.
    #[error("plugin constructor panicked: {message}")]
    Panicked {
        /// The panic message (capped).
        message: String,
    },
    /// The module is malformed, truncated or fails validation (WASM).
    #[error("invalid module: {reason}")]
    InvalidModule {
        /// What the validator reported.
        reason: String,
    },
    /// The module declares no ABI version (no `homecore_abi` custom section).
    #[error("module declares no HomeCore ABI version (custom section {section:?} is missing)")]
    MissingAbiVersion {
        /// The section's name.
        section: &'static str,
    },
    /// The module was built for an ABI version this host does not serve.
    #[error("module needs HomeCore ABI version {found}; this host serves {supported:?}")]
    UnsupportedAbiVersion {
        /// The version the module declares.
        found: u32,
        /// The versions this host serves.
        supported: &'static [u32],
    },
    /// The module imports something the ABI does not provide.
    #[error("module imports {module}::{name}, which HomeCore ABI v1 does not provide")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
    },
    /// An import or export has the wrong signature.
    #[error("{kind} {name} has signature {found}, ABI v1 requires {expected}")]
    WrongSignature {
        /// `"import"` or `"export"`.
        kind: &'static str,
        /// The function.
        name: String,
        /// The ABI's signature.
        expected: String,
        /// The module's.
        found: String,
    },
    /// A required export is missing.
    #[error("module does not export {name}, which ABI v1 requires")]
    MissingExport {
        /// The export.
        name: &'static str,
    },
    /// The module is larger than the runtime allows (`WasmtimeConfig::max_module_bytes`);
    /// refused before compiling.
    #[error("module of {size} bytes exceeds the limit of {limit} bytes")]
    ModuleTooLarge {
        /// The module's size, bytes.
        size: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// A function body is larger than the runtime allows
    /// (`WasmtimeConfig::max_function_body_bytes`); refused before compiling.
    #[error("function {index} has a body of {size} bytes, above the limit of {limit} bytes")]
    FunctionTooLarge {
        /// The function's index among the module's defined functions (imports not counted).
        index: u32,
        /// Its body's size, bytes.
        size: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// Compiling the module took longer than the runtime allows
    /// (`WasmtimeConfig::compile_budget`); the compilation's result is dropped.
    #[error("compiling the module took longer than its budget of {budget_ms} ms")]
    CompileTimeout {
        /// The budget, milliseconds.
        budget_ms: u64,
    },
    /// Instantiation failed (e.g. initial memory above the plugin's limit, or a trap in the
    /// start function).
    #[error("could not instantiate module: {failure}")]
    Instantiate {
        /// What failed, by kind (e.g. [`GuestFailure::MemoryLimit`]).
        failure: GuestFailure,
    },
}

/// An execution environment for plugins.
#[async_trait]
pub trait PluginRuntime: Send + Sync + 'static {
    /// The kind of plugin this runtime runs.
    fn kind(&self) -> RuntimeKind;

    /// Loads a plugin's code and makes an instance ready for [`PluginInstance::setup`].
    ///
    /// # Errors
    /// A [`LoadError`] naming what is wrong.
    async fn load(
        &self,
        manifest: &PluginManifest,
        source: &PluginSource,
    ) -> Result<Box<dyn PluginInstance>, LoadError>;

    /// Drops what the runtime keeps for plugins that are gone (compiled modules no instance
    /// and no held source uses). The registry calls it after every unload; the default does
    /// nothing.
    fn release_unused(&self) {}
}

/// One loaded plugin, driven by its own task: one call at a time, in order.
#[async_trait]
pub trait PluginInstance: Send + 'static {
    /// Runs the plugin's setup with its configuration.
    ///
    /// # Errors
    /// The plugin's error; panics and runtime failures become errors too.
    async fn setup(&mut self, ctx: &PluginContext, config: &Value) -> Result<(), PluginError>;

    /// Delivers a state change.
    ///
    /// # Errors
    /// As [`PluginInstance::setup`].
    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &Arc<StateChanged>,
    ) -> Result<(), PluginError>;

    /// Delivers a generic event.
    ///
    /// # Errors
    /// As [`PluginInstance::setup`].
    async fn on_event(
        &mut self,
        ctx: &PluginContext,
        event: &Arc<CustomEvent>,
    ) -> Result<(), PluginError>;

    /// Calls one of the plugin's services.
    ///
    /// # Errors
    /// As [`PluginInstance::setup`].
    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError>;

    /// A timer the plugin started with [`PluginContext::start_timer`] fired.
    ///
    /// # Errors
    /// As [`PluginInstance::setup`].
    async fn on_timer(&mut self, ctx: &PluginContext, token: u64) -> Result<(), PluginError>;

    /// Runs the plugin's teardown.
    ///
    /// # Errors
    /// As [`PluginInstance::setup`].
    async fn teardown(&mut self, ctx: &PluginContext) -> Result<(), PluginError>;

    /// Releases the instance (memory, engine resources). The default just drops it.
    fn unload(self: Box<Self>) {}
}

/// The text of a caught panic, capped for logging.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload");
    crate::context::cap(text).to_owned()
}
