//! The contract a WASM plugin implements, mirroring the host's native `HomeCorePlugin`.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::{CustomEvent, Error, Result, ServiceCall, StateChangedEvent};

/// What a plugin implements; [`export_plugin!`](crate::export_plugin) turns it into a module.
///
/// It mirrors the host's native `HomeCorePlugin`, without the context argument: the host is
/// reached through the SDK's free functions ([`get_state`](crate::get_state),
/// [`set_state`](crate::set_state), [`subscribe`](crate::subscribe), …), which the host checks
/// against the plugin's granted permissions.
///
/// The host calls one method at a time, in event order. `setup` runs on a fresh
/// `Self::default()`; after `teardown` the instance is dropped. A method returning `Err` has
/// its message (with sources) handed to the host, which counts and logs it; a panic traps the
/// module after its message was handed over the same way.
pub trait Plugin: Default + 'static {
    /// Starts the plugin with its configuration (validated by the host against the manifest's
    /// `config_schema` when it has one): read states, subscribe, register services.
    ///
    /// # Errors
    /// A failed setup is retried by the host with backoff, then the plugin is marked failed.
    /// Use [`Error::config`] to name the offending option.
    fn setup(&mut self, config: &Config<'_>) -> Result<()>;

    /// Stops the plugin: cancel timers, release resources.
    ///
    /// # Errors
    /// Logged; the plugin is unloaded anyway.
    fn teardown(&mut self) -> Result<()> {
        Ok(())
    }

    /// Reacts to a change of an entity the plugin subscribed to. Writes it makes carry a
    /// child of the event's context.
    ///
    /// Attributes arrive unparsed and unchecked ([`RawJson`](crate::RawJson)); parse only what
    /// you read, e.g. with [`attribute`](crate::attribute) or [`from_raw`](crate::from_raw),
    /// which check what they parse. (Should a host ever send malformed attributes, the event
    /// is still delivered and reading them fails with [`Error::Json`](crate::Error::Json);
    /// returned with `?`, that fails the call like any other error.)
    ///
    /// # Errors
    /// Counted and logged; repeated failures quarantine the plugin.
    fn on_state_changed(&mut self, event: &StateChangedEvent<'_>) -> Result<()>;

    /// Reacts to a generic event the plugin subscribed to with
    /// [`subscribe_event`](crate::subscribe_event).
    ///
    /// # Errors
    /// As [`Plugin::on_state_changed`].
    fn on_event(&mut self, event: &CustomEvent<'_>) -> Result<()> {
        let _ = event;
        Ok(())
    }

    /// A timer started with [`start_timer`](crate::start_timer) fired.
    ///
    /// # Errors
    /// As [`Plugin::on_state_changed`].
    fn on_timer(&mut self, token: u64) -> Result<()> {
        let _ = token;
        Ok(())
    }

    /// Carries out one of the services the plugin registered with
    /// [`register_service`](crate::register_service); `Some` is the call's response data.
    ///
    /// # Errors
    /// [`Error::UnknownService`] by default (the host sees `UnknownService`).
    fn call_service(&mut self, call: &ServiceCall<'_>) -> Result<Option<Value>> {
        Err(Error::UnknownService {
            service: format!("{}.{}", call.domain, call.service),
        })
    }
}

/// A plugin's configuration, as the host passed it: JSON, unparsed until asked.
///
/// ```
/// use homecore_plugin_sdk::Config;
/// use serde_json::value::RawValue;
///
/// #[derive(serde::Deserialize)]
/// struct Options { rooms: Vec<String> }
///
/// let raw = RawValue::from_string(r#"{"rooms": ["hall"]}"#.to_owned())?;
/// let config = Config::new(&raw);
/// let options: Options = config.parse()?;
/// assert_eq!(options.rooms, ["hall"]);
/// assert_eq!(config.value()?["rooms"][0], "hall");
/// # Ok::<(), homecore_plugin_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Config<'a> {
    raw: &'a RawValue,
}

impl<'a> Config<'a> {
    /// Wraps configuration JSON (for tests; plugins receive theirs in [`Plugin::setup`]).
    #[must_use]
    pub fn new(raw: &'a RawValue) -> Self {
        Self { raw }
    }

    /// The JSON text; `null` when the plugin has no configuration.
    #[must_use]
    pub fn raw(&self) -> &'a RawValue {
        self.raw
    }

    /// Whether the plugin has no configuration (`null`).
    #[must_use]
    pub fn is_null(&self) -> bool {
        self.raw.get() == "null"
    }

    /// The configuration as a [`Value`].
    ///
    /// # Errors
    /// [`Error::Json`] only if the text were not JSON (the host sends JSON).
    pub fn value(&self) -> Result<Value> {
        Ok(serde_json::from_str(self.raw.get())?)
    }

    /// The configuration deserialized into `T` (which may borrow from it).
    ///
    /// # Errors
    /// [`Error::Json`] when it does not have `T`'s shape.
    pub fn parse<T: Deserialize<'a>>(&self) -> Result<T> {
        Ok(serde_json::from_str(self.raw.get())?)
    }
}
