//! Native dispatch: a state change reaching 1 to 1,000 native plugins, end to end.
//!
//! Each iteration writes `CHANGES` alternating states to one entity (`StateMachine::set` with
//! publish) from a task on the 2-worker tokio runtime the plugins run on (as the server's API
//! handlers and other plugins write), and waits until every plugin has handled every change.
//! One variant writes from a thread outside the runtime, where every wake-up crosses threads. Divan reports time per iteration; the README
//! divides by `CHANGES` for the per-change figure. A baseline of `set` with no plugin
//! subscribed runs in the same process.
//!
//! `cargo bench -p homecore-plugins --bench dispatch`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use divan::Bencher;
use divan::counter::ItemsCount;
use homecore::{Attributes, Context, EntityId, Home, StateChanged};
use homecore_plugins::{
    HomeCorePlugin, PluginContext, PluginError, PluginManifest, PluginRegistry, PluginSource,
    PluginSpec,
};
use serde_json::{Value, json};

fn main() {
    divan::main();
}

struct Counter {
    handled: Arc<AtomicU64>,
}

#[async_trait]
impl HomeCorePlugin for Counter {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        ctx.subscribe("sensor.bench")?;
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        _ctx: &PluginContext,
        event: &StateChanged,
    ) -> Result<(), PluginError> {
        // Touch the event like a real plugin would: read the new state.
        if event
            .new_state
            .as_ref()
            .is_some_and(|s| !s.state().is_empty())
        {
            self.handled.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

struct Setup {
    runtime: tokio::runtime::Runtime,
    home: Home,
    handled: Arc<AtomicU64>,
    _registry: PluginRegistry,
}

fn setup(plugins: usize) -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let home = Home::new();
    let registry = PluginRegistry::new(home.clone());
    let handled = Arc::new(AtomicU64::new(0));
    let specs: Vec<PluginSpec> = (0..plugins)
        .map(|i| {
            let manifest = PluginManifest::from_value(json!({
                "domain": format!("counter_{i}"),
                "name": "Counter",
                "version": "1.0.0",
                "homecore": {
                    "runtime": "native",
                    "api_version": "^1",
                    "permissions": {"states_read": ["sensor.*"]},
                    "limits": {"mailbox_capacity": 65536}
                }
            }))
            .expect("valid manifest");
            let handled = Arc::clone(&handled);
            PluginSpec::new(
                manifest,
                PluginSource::native(move || Counter {
                    handled: Arc::clone(&handled),
                }),
            )
        })
        .collect();
    let report = runtime.block_on(registry.load_all(specs));
    assert_eq!(report.started().len(), plugins);
    Setup {
        runtime,
        home,
        handled,
        _registry: registry,
    }
}

/// Where the writes come from.
#[derive(Clone, Copy)]
enum Writer {
    /// A task on the runtime, as the server's API handlers and plugins write.
    Task,
    /// A thread outside the runtime: every wake-up crosses threads (a worst case).
    OutsideThread,
}

fn run(bencher: Bencher<'_, '_>, plugins: usize, changes: u64) {
    run_from(bencher, plugins, changes, Writer::Task);
}

fn run_from(bencher: Bencher<'_, '_>, plugins: usize, changes: u64, writer: Writer) {
    let s = setup(plugins);
    if let Writer::Task = writer {
        let home = s.home.clone();
        let handled = Arc::clone(&s.handled);
        let mut n = 0u64;
        bencher.counter(ItemsCount::new(changes)).bench_local(|| {
            let home = home.clone();
            let handled = Arc::clone(&handled);
            let start = n;
            n += changes;
            s.runtime.block_on(async move {
                tokio::spawn(async move {
                    let id: EntityId = "sensor.bench".parse().expect("valid");
                    let ctx = Context::new();
                    let attributes = Attributes::try_from(
                        json!({"unit_of_measurement": "W", "friendly_name": "Bench"}),
                    )
                    .expect("object");
                    let target = handled.load(Ordering::Relaxed) + changes * plugins as u64;
                    for i in start..start + changes {
                        let state = if i.is_multiple_of(2) { "on" } else { "off" };
                        home.states
                            .set(&id, state, attributes.clone(), &ctx)
                            .expect("valid write");
                        // A real writer is one task among many: let the plugins run now and
                        // then (mailboxes hold 65,536 events; nothing may be dropped here).
                        if i % 4096 == 4095 {
                            tokio::task::yield_now().await;
                        }
                    }
                    while handled.load(Ordering::Relaxed) < target {
                        tokio::task::yield_now().await;
                    }
                })
                .await
                .expect("producer task");
            });
        });
        drop(s.runtime);
        return;
    }
    let id: EntityId = "sensor.bench".parse().expect("valid");
    let ctx = Context::new();
    let attributes =
        Attributes::try_from(json!({"unit_of_measurement": "W", "friendly_name": "Bench"}))
            .expect("object");
    let mut n = 0u64;
    bencher.counter(ItemsCount::new(changes)).bench_local(|| {
        let target = s.handled.load(Ordering::Relaxed) + changes * plugins as u64;
        for _ in 0..changes {
            n += 1;
            let state = if n.is_multiple_of(2) { "on" } else { "off" };
            s.home
                .states
                .set(&id, state, attributes.clone(), &ctx)
                .expect("valid write");
        }
        while s.handled.load(Ordering::Relaxed) < target {
            std::hint::spin_loop();
        }
    });
    drop(s.runtime);
}

/// Baseline: the same writes with no plugin subscribed.
#[divan::bench]
fn set_without_plugins(bencher: Bencher<'_, '_>) {
    run(bencher, 0, 1000);
}

/// 1,000 changes into one plugin, written from a thread outside the runtime.
#[divan::bench]
fn changes_from_outside_thread_into_1_plugin(bencher: Bencher<'_, '_>) {
    run_from(bencher, 1, 1000, Writer::OutsideThread);
}

/// 1,000 changes into N plugins; per change = median / 1,000.
#[divan::bench(args = [1, 10, 100])]
fn changes_into_plugins(bencher: Bencher<'_, '_>, plugins: usize) {
    run(bencher, plugins, 1000);
}

/// 100 changes into 1,000 plugins; per change = median / 100.
#[divan::bench(sample_count = 20)]
fn changes_into_1000_plugins(bencher: Bencher<'_, '_>) {
    run(bencher, 1000, 100);
}

/// Sustained: 100,000 changes into one plugin per iteration.
#[divan::bench(sample_count = 20)]
fn sustained_into_one_plugin(bencher: Bencher<'_, '_>) {
    run(bencher, 1, 100_000);
}
