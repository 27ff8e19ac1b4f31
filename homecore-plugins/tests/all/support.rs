//! Test plugins and helpers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use homecore::{Attributes, Context, EntityId, Home, ServiceCall, StateChanged};
use homecore_plugins::{
    HomeCorePlugin, PluginContext, PluginError, PluginManifest, PluginSource, PluginSpec,
};
use serde_json::{Value, json};

pub(crate) fn id(s: &str) -> EntityId {
    s.parse().expect("valid entity id")
}

/// A native manifest for `domain` with these permissions and dependencies.
pub(crate) fn manifest(domain: &str, permissions: Value, dependencies: &[&str]) -> PluginManifest {
    PluginManifest::from_value(json!({
        "domain": domain,
        "name": domain,
        "version": "1.0.0",
        "dependencies": dependencies,
        "homecore": {"runtime": "native", "api_version": "^1", "permissions": permissions}
    }))
    .expect("valid manifest")
}

pub(crate) fn to_value(manifest: &PluginManifest) -> Value {
    serde_json::to_value(manifest).expect("a manifest serializes")
}

pub(crate) fn all_permissions() -> Value {
    json!({"states_read": ["*"], "states_write": ["*"], "services": ["*"], "events": ["*"], "storage": true})
}

pub(crate) fn set(home: &Home, entity: &str, state: &str) {
    home.states
        .set(&id(entity), state, Attributes::new(), &Context::new())
        .expect("valid write");
}

pub(crate) fn state_of(home: &Home, entity: &str) -> Option<String> {
    home.states.get_str(entity).map(|s| s.state().to_owned())
}

/// Lets spawned tasks run (time is paused in most tests, so this costs nothing).
pub(crate) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

pub(crate) type Log = Arc<Mutex<Vec<String>>>;

/// What a [`Scripted`] plugin does.
#[derive(Clone, Default)]
pub(crate) struct Script {
    pub(crate) subscribe: Vec<&'static str>,
    pub(crate) log: Log,
    /// Fail setup this many times first.
    pub(crate) setup_failures: Arc<Mutex<u32>>,
    /// Panic on events whose new state equals this.
    pub(crate) panic_on: Option<&'static str>,
    /// Fail (error) on events whose new state equals this.
    pub(crate) fail_on: Option<&'static str>,
    /// Write this entity from inside every event: (entity, state).
    pub(crate) write_on_event: Option<(&'static str, &'static str)>,
    /// Increment this counter entity from inside every event (feeds itself if subscribed).
    pub(crate) bump: Option<&'static str>,
    /// Sleep this long per event.
    pub(crate) slow: Option<Duration>,
    /// Register this service in the plugin's domain.
    pub(crate) service: Option<&'static str>,
    /// Panic in the constructor.
    pub(crate) panic_in_new: bool,
}

pub(crate) struct Scripted {
    script: Script,
}

impl Script {
    pub(crate) fn spec(&self, manifest: PluginManifest) -> PluginSpec {
        let script = self.clone();
        PluginSpec::new(
            manifest,
            PluginSource::native(move || {
                assert!(!script.panic_in_new, "constructor exploded");
                Scripted {
                    script: script.clone(),
                }
            }),
        )
    }

    pub(crate) fn entries(&self) -> Vec<String> {
        self.log.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl HomeCorePlugin for Scripted {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        {
            let mut left = self.script.setup_failures.lock().expect("not poisoned");
            if *left > 0 {
                *left -= 1;
                return Err(PluginError::config("", "not ready yet"));
            }
        }
        for pattern in &self.script.subscribe {
            ctx.subscribe(pattern)?;
        }
        if let Some(service) = self.script.service {
            ctx.register_service(service)?;
        }
        self.script
            .log
            .lock()
            .expect("not poisoned")
            .push("setup".into());
        Ok(())
    }

    async fn teardown(&mut self, _ctx: &PluginContext) -> Result<(), PluginError> {
        self.script
            .log
            .lock()
            .expect("not poisoned")
            .push("teardown".into());
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        ctx: &PluginContext,
        event: &StateChanged,
    ) -> Result<(), PluginError> {
        let new = event
            .new_state
            .as_ref()
            .map_or("<removed>", |s| s.state())
            .to_owned();
        self.script
            .log
            .lock()
            .expect("not poisoned")
            .push(format!("{}={new}", event.entity_id));
        if let Some(delay) = self.script.slow {
            tokio::time::sleep(delay).await;
        }
        if self.script.panic_on == Some(new.as_str()) {
            panic!("plugin exploded on {new}");
        }
        if self.script.fail_on == Some(new.as_str()) {
            return Err(PluginError::config("", "refusing this event"));
        }
        if let Some((entity, state)) = self.script.write_on_event {
            ctx.set_state(&id(entity), state, Attributes::new())?;
        }
        if let Some(counter) = self.script.bump {
            let counter = id(counter);
            let next = ctx
                .get_state(&counter)?
                .and_then(|s| s.state().parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            ctx.set_state(&counter, &next.to_string(), Attributes::new())?;
        }
        Ok(())
    }

    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        let target = call
            .data
            .get("entity_id")
            .and_then(Value::as_str)
            .ok_or_else(|| PluginError::config("entity_id", "required"))?;
        if target == "light.boom" {
            panic!("service exploded");
        }
        ctx.set_state(&id(target), "on", Attributes::new())?;
        Ok(Some(json!({"handled_by": ctx.domain()})))
    }
}
