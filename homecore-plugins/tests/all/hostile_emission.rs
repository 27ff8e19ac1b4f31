//! Hostile plugins that make too much or lie: forged core events, storms of writes, events and
//! timers, glob floods, and reads through service results. Each case is tested as its class
//! (docs/hostile-catalogue.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use homecore::{Attributes, EventFilter, Home, ServiceCall};
use homecore_plugins::{
    DenyReason, Emission, HomeCorePlugin, HostAction, HostError, HostPolicy, Lifecycle,
    PluginContext, PluginError, PluginManifest, PluginRegistry, PluginSource, PluginSpec,
    ResourceLimits,
};
use serde_json::{Value, json};

use crate::support::{all_permissions, id, set, settle};

/// What an [`Attacker`] does in each hook.
/// (The token is the timer's, 0 at setup.)
type Hook = Arc<dyn Fn(&PluginContext, u64) -> Result<(), HostError> + Send + Sync>;

/// A native plugin that runs `at_setup` once and `on_timer` at every timer.
#[derive(Clone)]
struct Attacker {
    at_setup: Hook,
    on_timer: Hook,
}

#[async_trait]
impl HomeCorePlugin for Attacker {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        (self.at_setup)(ctx, 0)?;
        Ok(())
    }

    async fn on_timer(&mut self, ctx: &PluginContext, token: u64) -> Result<(), PluginError> {
        (self.on_timer)(ctx, token)?;
        Ok(())
    }
}

fn manifest(domain: &str, permissions: Value, limits: Value) -> PluginManifest {
    PluginManifest::from_value(json!({
        "domain": domain, "name": domain, "version": "1.0.0",
        "homecore": {"runtime": "native", "api_version": "^1",
                     "permissions": permissions, "limits": limits}
    }))
    .expect("valid manifest")
}

fn attacker(manifest: PluginManifest, at_setup: Hook, on_timer: Hook) -> PluginSpec {
    let plugin = Attacker { at_setup, on_timer };
    PluginSpec::new(manifest, PluginSource::native(move || plugin.clone()))
}

fn nothing() -> Hook {
    Arc::new(|_, _| Ok(()))
}

/// Event types only the core makes: every listed name, and names of every reserved prefix and
/// suffix.
fn core_event_types() -> Vec<String> {
    let mut all: Vec<String> = homecore::CORE_EVENT_TYPES
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    for prefix in homecore::CORE_EVENT_PREFIXES {
        all.push(format!("{prefix}start"));
        all.push(format!("{prefix}anything_at_all"));
    }
    for suffix in homecore::CORE_EVENT_SUFFIXES {
        all.push(format!("entity{suffix}"));
        all.push(format!("x{suffix}"));
    }
    all
}

/// A plugin granted every event (`"*"`) can neither fire nor listen to an event the core owns,
/// native or WASM (tests/all/wasm/hostile_imports.rs has the WASM case): a WebSocket client
/// subscribed to `state_changed` can never be told a lock opened while it stays locked.
#[tokio::test]
async fn no_plugin_can_forge_or_hear_an_event_the_core_owns() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let mut watcher = home
        .bus
        .subscribe([EventFilter::AllEvents], 4096)
        .expect("subscribed");
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&refusals);
    let at_setup: Hook = Arc::new(move |ctx, _| {
        let forged = json!({"entity_id": "lock.front_door",
                            "new_state": {"entity_id": "lock.front_door", "state": "unlocked"}});
        for event_type in core_event_types() {
            for result in [
                ctx.fire_event(&event_type, forged.clone()),
                ctx.subscribe_events(&event_type),
            ] {
                match result {
                    Err(HostError::Denied {
                        action: HostAction::FireEvent | HostAction::Subscribe,
                        reason: DenyReason::CoreOwnedEvent,
                        target,
                        ..
                    }) => seen.lock().expect("not poisoned").push(target),
                    other => panic!("{event_type}: expected a core-owned denial, got {other:?}"),
                }
            }
        }
        // An event type of its own still works.
        ctx.fire_event("doorbell_pressed", json!({}))
    });
    registry
        .load(attacker(
            manifest("forger", all_permissions(), json!({})),
            at_setup,
            nothing(),
        ))
        .await
        .expect("loads");
    assert_eq!(
        refusals.lock().expect("not poisoned").len(),
        core_event_types().len() * 2
    );
    let mut types = Vec::new();
    while let Some(event) = watcher.try_recv() {
        types.push(event.event_type().to_owned());
    }
    assert_eq!(
        types,
        ["doorbell_pressed"],
        "only the plugin's own event was published"
    );
    let info = registry.get("forger").expect("listed");
    assert_eq!(info.stats.denied, core_event_types().len() as u64 * 2);
}

/// 128 timers at 0 ms that each write a sensor and re-arm themselves: the storm is held to the
/// plugin's budget of writes and timers (refusals counted), the minimum delay applies, and the
/// chain of a short timer re-armed from its own callback deepens until the loop guard ends it.
#[tokio::test]
async fn a_self_rearming_zero_delay_timer_storm_is_budgeted_and_dies_out() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let mut watcher = home
        .bus
        .subscribe([EventFilter::AllStateChanges], 1 << 16)
        .expect("subscribed");
    let rearm_errors = Arc::new(AtomicU64::new(0));
    let errors = Arc::clone(&rearm_errors);
    let at_setup: Hook = Arc::new(|ctx, _| {
        for token in 0..128 {
            ctx.start_timer(token, Duration::ZERO)?;
        }
        Ok(())
    });
    let on_timer: Hook = Arc::new(move |ctx, token| {
        let _ = ctx.set_state(&id("sensor.storm"), "x", Attributes::new());
        if ctx.start_timer(token, Duration::ZERO).is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    let limits =
        json!({"state_writes_per_second": 100, "timers_per_second": 2000, "burst_seconds": 1});
    let started = Instant::now();
    registry
        .load(attacker(
            manifest("storm", all_permissions(), limits),
            at_setup,
            on_timer,
        ))
        .await
        .expect("loads");
    // Wait until the storm is over: no timer pending and no change for a while.
    let mut changes = 0u64;
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut any = false;
        while watcher.try_recv().is_some() {
            changes += 1;
            any = true;
        }
        if any {
            quiet_since = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the storm never ended"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    // At most the burst plus the rate over the time it ran (and one write of slack per second).
    let allowed = 100.0 + 101.0 * elapsed;
    assert!(
        (changes as f64) <= allowed,
        "{changes} changes in {elapsed:.2} s, budget allows {allowed:.0}"
    );
    let info = registry.get("storm").expect("listed");
    assert!(info.stats.quota_exceeded > 0, "refusals are counted");
    assert!(
        rearm_errors.load(Ordering::Relaxed) > 0,
        "re-arming met the budget or the loop guard"
    );
}

/// Long timers start a chain of their own, so the loop guard never sees a storm of them; the
/// budget does, and a plugin that stays over it is quarantined with the reason.
#[tokio::test]
async fn a_plugin_that_stays_over_budget_is_quarantined_with_the_reason() {
    let home = Home::new();
    let registry = PluginRegistry::builder(home.clone())
        .policy(HostPolicy {
            quarantine_over_budget: Duration::from_millis(1500),
            ..HostPolicy::default()
        })
        .build();
    let at_setup: Hook = Arc::new(|ctx, _| {
        for token in 0..64 {
            ctx.start_timer(token, Duration::from_millis(1000 + token))?;
        }
        Ok(())
    });
    let on_timer: Hook = Arc::new(|ctx, token| {
        // Every timer writes twice, events too: far over 5 writes a second.
        for _ in 0..2 {
            let _ = ctx.set_state(&id("sensor.flood"), "x", Attributes::new());
            let _ = ctx.fire_event("flood", json!({}));
        }
        let _ = ctx.start_timer(token, Duration::from_millis(1000 + token));
        Ok(())
    });
    let limits = json!({"state_writes_per_second": 5, "events_per_second": 5, "burst_seconds": 1});
    registry
        .load(attacker(
            manifest("flood", all_permissions(), limits),
            at_setup,
            on_timer,
        ))
        .await
        .expect("loads");
    let give_up = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = registry.get("flood").expect("listed");
        if info.lifecycle == Lifecycle::Quarantined {
            break info;
        }
        assert!(Instant::now() < give_up, "never quarantined: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reason = info.health.last_error.unwrap_or_default();
    assert!(reason.contains("over its budget"), "{reason}");
    assert!(info.stats.quota_exceeded > 0);
    assert_eq!(info.stats.quarantines, 1);
}

/// A budget refusal is a typed error naming what, how fast and the burst; other kinds keep
/// their own budget, and the operator's policy caps what a manifest asks for.
#[tokio::test]
async fn over_budget_calls_are_refused_with_what_and_the_rate() {
    let home = Home::new();
    let registry = PluginRegistry::builder(home.clone())
        .policy(HostPolicy {
            limits: ResourceLimits {
                events_per_second: Some(3),
                ..HostPolicy::default().limits
            },
            ..HostPolicy::default()
        })
        .build();
    let results = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&results);
    let at_setup: Hook = Arc::new(move |ctx, _| {
        let mut out = out.lock().expect("not poisoned");
        for _ in 0..5 {
            out.push(ctx.fire_event("ping", json!({})).map_err(|e| e.to_string()));
        }
        for i in 0..3 {
            let entity = id(&format!("sensor.s{i}"));
            out.push(
                ctx.set_state(&entity, "1", Attributes::new())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        }
        match ctx.fire_event("ping", json!({})) {
            Err(HostError::QuotaExceeded {
                what: Emission::Event,
                per_second: 3,
                burst: 3,
                ..
            }) => Ok(()),
            other => panic!("expected QuotaExceeded for events, got {other:?}"),
        }
    });
    // The manifest asks for 1,000 events a second; the operator allows 3.
    let limits = json!({"events_per_second": 1000, "burst_seconds": 1});
    registry
        .load(attacker(
            manifest("greedy", all_permissions(), limits),
            at_setup,
            nothing(),
        ))
        .await
        .expect("loads");
    let results = results.lock().expect("not poisoned").clone();
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    for refused in &results[3..5] {
        let text = refused.as_ref().expect_err("over budget");
        assert!(
            text.contains("over its budget of 3 events per second (bursts of 3)"),
            "{text}"
        );
    }
    assert!(
        results[5..].iter().all(Result::is_ok),
        "writes have their own budget"
    );
    assert_eq!(
        registry.get("greedy").expect("listed").stats.quota_exceeded,
        3
    );
}

/// A plugin may hold only so many subscriptions; the cap is per plugin, so its globs never
/// make another plugin's subscriptions fail.
#[tokio::test]
async fn subscriptions_are_capped_per_plugin() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let at_setup: Hook = Arc::new(|ctx, _| {
        for i in 0..10 {
            ctx.subscribe(&format!("*.x{i}_*"))?;
        }
        match ctx.subscribe("*.one_more_*") {
            Err(HostError::TooManySubscriptions { max: 10, .. }) => {}
            other => panic!("expected TooManySubscriptions, got {other:?}"),
        }
        match ctx.subscribe_events("doorbell") {
            Err(HostError::TooManySubscriptions { max: 10, .. }) => {}
            other => panic!("event types count too, got {other:?}"),
        }
        // One it already holds is not a new one.
        ctx.subscribe("*.x0_*")
    });
    registry
        .load(attacker(
            manifest("globber", all_permissions(), json!({"subscriptions": 10})),
            at_setup,
            nothing(),
        ))
        .await
        .expect("loads");
    let neighbour: Hook = Arc::new(|ctx, _| {
        for i in 0..20 {
            ctx.subscribe(&format!("light.n{i}"))?;
        }
        Ok(())
    });
    registry
        .load(attacker(
            manifest("neighbour", all_permissions(), json!({})),
            neighbour,
            nothing(),
        ))
        .await
        .expect("the neighbour's own subscriptions are not affected");
}

/// A provider of `vault.unlock` that writes a state the caller may not read and one it may.
struct Vault;

#[async_trait]
impl HomeCorePlugin for Vault {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        ctx.register_service("unlock")?;
        Ok(())
    }

    async fn call_service(
        &mut self,
        ctx: &PluginContext,
        _call: &ServiceCall,
    ) -> Result<Option<Value>, PluginError> {
        ctx.set_state(&id("input_boolean.secret"), "on", Attributes::new())?;
        ctx.set_state(&id("light.visible"), "on", Attributes::new())?;
        Ok(None)
    }
}

/// A plugin allowed to call a service but not to read what it changes gets the call's result
/// without those states: service results are filtered by the caller's read grant.
#[tokio::test]
async fn service_results_show_only_states_the_caller_may_read() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    set(&home, "input_boolean.secret", "off");
    registry
        .load(PluginSpec::new(
            manifest("vault", all_permissions(), json!({})),
            PluginSource::native(|| Vault),
        ))
        .await
        .expect("loads");
    let changed = Arc::new(Mutex::new(None));
    let out = Arc::clone(&changed);
    struct Caller(Arc<Mutex<Option<Vec<String>>>>);
    #[async_trait]
    impl HomeCorePlugin for Caller {
        async fn setup(&mut self, ctx: &PluginContext, _c: &Value) -> Result<(), PluginError> {
            let response = ctx.call_service("vault", "unlock", json!({})).await?;
            let ids = response
                .changed_states
                .iter()
                .map(|s| s.entity_id().to_string())
                .collect();
            *self.0.lock().expect("not poisoned") = Some(ids);
            Ok(())
        }
    }
    let permissions = json!({"services": ["vault.*"], "states_read": ["light.*"]});
    registry
        .load(PluginSpec::new(
            manifest("caller", permissions, json!({})),
            PluginSource::native(move || Caller(Arc::clone(&out))),
        ))
        .await
        .expect("loads");
    settle().await;
    assert_eq!(
        changed.lock().expect("not poisoned").clone(),
        Some(vec!["light.visible".to_owned()])
    );
    // The write itself happened: the filter hides, it does not undo.
    assert_eq!(
        home.states
            .get_str("input_boolean.secret")
            .map(|s| s.state().to_owned()),
        Some("on".into())
    );
}

/// Under the default policy a manifest cannot switch its own budget off: asking for the most
/// a limit can hold gets the host's defaults (the policy caps every rate, the burst and the
/// subscription count).
#[tokio::test]
async fn a_manifest_cannot_ask_its_budget_away_under_the_default_policy() {
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let results = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&results);
    let at_setup: Hook = Arc::new(move |ctx, _| {
        let mut out = out.lock().expect("not poisoned");
        let burst =
            homecore_plugins::DEFAULT_EVENTS_PER_SECOND * homecore_plugins::DEFAULT_BURST_SECONDS;
        for _ in 0..burst + 10 {
            out.push(ctx.fire_event("ping", json!({})).is_ok());
        }
        Ok(())
    });
    let greedy = json!({
        "events_per_second": u32::MAX,
        "burst_seconds": u32::MAX,
        "subscriptions": u32::MAX,
    });
    registry
        .load(attacker(
            manifest("unbounded", all_permissions(), greedy),
            at_setup,
            nothing(),
        ))
        .await
        .expect("loads");
    let results = results.lock().expect("not poisoned").clone();
    let passed = results.iter().filter(|ok| **ok).count();
    let burst = usize::try_from(
        homecore_plugins::DEFAULT_EVENTS_PER_SECOND * homecore_plugins::DEFAULT_BURST_SECONDS,
    )
    .expect("small");
    // The burst, plus what refills while the loop runs.
    assert!(
        passed >= burst && passed < burst + 10,
        "{passed} of {} passed",
        results.len()
    );
}
