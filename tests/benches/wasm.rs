//! WASM plugin costs, with bare Wasmtime doing the same guest work as the baseline.
//!
//! `cargo bench -p homecore-tests --bench wasm`
//!
//! - `load::cold`: check + compile + link the reference plugin (49 KB-ish module) on a fresh
//!   runtime without a disk cache.
//! - `load::cached`: a fresh runtime (empty in-memory memo) whose disk cache holds the module:
//!   check, SHA-256 of the module, cache lookup + deserialize, link, instantiate.
//! - `load::cached_verified`: the same with the module's SHA-256 handed over with it
//!   (`PluginSource::VerifiedWasm`, as a signed package's verification does): what a restart
//!   pays per plugin.
//! - `load::bare_wasmtime_cached`: the baseline, bare Wasmtime on a fresh engine with the same
//!   settings: `Module::deserialize_file` of the serialized module, link (stub imports),
//!   instantiate.
//! - `load::memoized`: the same runtime loading the same bytes again: link memo hit + instantiate.
//! - `load::*_pooling`: the same with Wasmtime's pooling allocator (1,100 slots, as in the
//!   `wasm_rss` example).
//! - `event::*`: one state change delivered to the reference plugin. `homecore_end_to_end` goes
//!   through `StateMachine::set`, the bus, the plugin's mailbox and task, the ABI (event
//!   serialized once, copied in, parsed by the guest SDK), with fuel and epoch deadlines on. `bare_wasmtime` calls the same module's
//!   `hc_on_state_changed` with the same bytes on a plain engine with stub imports;
//!   `bare_wasmtime_limits` adds fuel and epoch interruption.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use divan::Bencher;
use divan::counter::ItemsCount;
use homecore::{Attributes, Context, EntityId, Home};
use homecore_plugins::{
    HomeCorePlugin, PluginContext, PluginError, PluginManifest, PluginRegistry, PluginRuntime,
    PluginSource, PluginSpec, WasmtimeConfig, WasmtimeRuntime,
};
use homecore_tests::bare::{BareGuest, state_changed_payload};
use homecore_tests::guest::{example_manifest, example_wasm};
use serde_json::json;
use sha2::Digest as _;

fn main() {
    divan::main();
}

fn bytes() -> Arc<[u8]> {
    Arc::from(example_wasm())
}

fn manifest() -> PluginManifest {
    PluginManifest::parse(&example_manifest()).expect("valid manifest")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn cache_dir() -> std::path::PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "homecore-bench-cache-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

mod load {
    use super::*;

    #[divan::bench(sample_count = 20)]
    fn cold(bencher: Bencher<'_, '_>) {
        let rt = current_thread();
        let wasm = bytes();
        bencher
            .with_inputs(|| WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine"))
            .bench_local_values(|runtime| {
                rt.block_on(runtime.prepare(Arc::clone(&wasm)))
                    .expect("compiles");
                runtime
            });
    }

    #[divan::bench(sample_count = 50)]
    fn cached(bencher: Bencher<'_, '_>) {
        run_cached(bencher, PluginSource::Wasm(bytes()), None);
    }

    #[divan::bench(sample_count = 50)]
    fn cached_verified(bencher: Bencher<'_, '_>) {
        run_cached(bencher, verified(), None);
    }

    #[divan::bench(sample_count = 50)]
    fn cached_verified_pooling(bencher: Bencher<'_, '_>) {
        run_cached(bencher, verified(), POOLING);
    }

    /// Slots of the pooling variants (as in the `wasm_rss` example).
    const POOLING: Option<u32> = Some(1100);

    fn verified() -> PluginSource {
        let module = bytes();
        let sha256 = sha2::Sha256::digest(&module).into();
        PluginSource::VerifiedWasm { module, sha256 }
    }

    fn run_cached(bencher: Bencher<'_, '_>, source: PluginSource, pooling_slots: Option<u32>) {
        let rt = current_thread();
        let wasm = bytes();
        let manifest = manifest();
        let dir = cache_dir();
        let config = WasmtimeConfig {
            cache_dir: Some(dir.clone()),
            pooling_slots,
            ..WasmtimeConfig::default()
        };
        // Warm the disk cache once.
        let warm = WasmtimeRuntime::new(config.clone()).expect("engine");
        rt.block_on(warm.prepare(Arc::clone(&wasm)))
            .expect("compiles");
        let check = WasmtimeRuntime::new(config.clone()).expect("engine");
        rt.block_on(check.load(&manifest, &source)).expect("loads");
        assert_eq!(check.modules_from_disk_cache(), 1, "the disk cache is warm");
        bencher
            .with_inputs(|| WasmtimeRuntime::new(config.clone()).expect("engine"))
            .bench_local_values(|runtime| {
                let instance = rt
                    .block_on(runtime.load(&manifest, &source))
                    .expect("loads");
                (runtime, instance)
            });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[divan::bench(sample_count = 50)]
    #[allow(
        unsafe_code,
        reason = "the baseline deserializes an artifact this bench just serialized"
    )]
    fn bare_wasmtime_cached(bencher: Bencher<'_, '_>) {
        let engine = || {
            let mut config = wasmtime::Config::new();
            config
                .consume_fuel(true)
                .epoch_interruption(true)
                .cranelift_opt_level(wasmtime::OptLevel::Speed)
                .memory_init_cow(true);
            wasmtime::Engine::new(&config).expect("engine")
        };
        let dir = cache_dir();
        let path = dir.join("module.cwasm");
        let compiled = engine()
            .precompile_module(example_wasm())
            .expect("compiles");
        std::fs::write(&path, compiled).expect("writable");
        bencher.with_inputs(engine).bench_local_values(|engine| {
            // SAFETY: the file is the unmodified output of `precompile_module` with the
            // same settings, written above and not changed while the module lives.
            let module =
                unsafe { wasmtime::Module::deserialize_file(&engine, &path) }.expect("loads");
            let mut linker = wasmtime::Linker::<()>::new(&engine);
            linker
                .define_unknown_imports_as_traps(&module)
                .expect("stubs");
            let pre = linker.instantiate_pre(&module).expect("links");
            let mut store = wasmtime::Store::new(&engine, ());
            store.set_fuel(u64::MAX).expect("fuel on");
            let instance = pre.instantiate(&mut store).expect("instantiates");
            (engine, store, instance)
        });
        let _ = std::fs::remove_dir_all(dir);
    }

    #[divan::bench]
    fn memoized(bencher: Bencher<'_, '_>) {
        run_memoized(bencher, None);
    }

    #[divan::bench]
    fn memoized_pooling(bencher: Bencher<'_, '_>) {
        run_memoized(bencher, POOLING);
    }

    fn run_memoized(bencher: Bencher<'_, '_>, pooling_slots: Option<u32>) {
        let rt = current_thread();
        let manifest = manifest();
        let source = PluginSource::Wasm(bytes());
        let runtime = WasmtimeRuntime::new(WasmtimeConfig {
            pooling_slots,
            ..WasmtimeConfig::default()
        })
        .expect("engine");
        rt.block_on(runtime.load(&manifest, &source))
            .expect("loads");
        bencher.bench_local(|| {
            rt.block_on(runtime.load(&manifest, &source))
                .expect("loads")
        });
    }
}

mod event {
    use super::*;

    const EVENTS: u64 = 1000;

    /// The bench's `hc_on_state_changed` payload, the `n`th of a series.
    fn payload(n: u64) -> Vec<u8> {
        state_changed_payload(
            json!({"device_class": "motion", "friendly_name": "Hall motion", "n": n}),
        )
    }

    #[divan::bench]
    fn homecore_end_to_end(bencher: Bencher<'_, '_>) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let home = Home::new();
        let wasm = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
        let registry = PluginRegistry::builder(home.clone())
            .runtime(Arc::new(wasm))
            .build();
        let spec = PluginSpec::new(manifest(), PluginSource::Wasm(bytes()))
            .with_config(json!({"rooms": ["hall"], "quiet_seconds": 120}));
        rt.block_on(registry.load(spec)).expect("loads");
        let id: EntityId = "binary_sensor.hall_motion".parse().expect("valid");
        home.states
            .set(&id, "on", Attributes::new(), &Context::new())
            .expect("valid");
        let calls = || {
            registry
                .get("motion_lights_wasm")
                .map_or(0, |p| p.stats.events)
        };
        // Let the first "on" (light on, counters) settle.
        std::thread::sleep(Duration::from_millis(100));
        let mut n = 0u64;
        bencher.counter(ItemsCount::new(EVENTS)).bench_local(|| {
            let target = calls() + EVENTS;
            let home = home.clone();
            let id = id.clone();
            let start = n;
            n += EVENTS;
            rt.block_on(async move {
                tokio::spawn(async move {
                    let ctx = Context::new();
                    for i in start..start + EVENTS {
                        let attrs = Attributes::try_from(json!({"device_class": "motion", "friendly_name": "Hall motion", "n": i}))
                            .expect("object");
                        home.states.set(&id, "on", attrs, &ctx).expect("valid");
                    }
                })
                .await
                .expect("writer");
            });
            while calls() < target {
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        let info = registry.get("motion_lights_wasm").expect("loaded");
        assert_eq!(info.stats.errors, 0, "{info:?}");
        assert_eq!(info.stats.mailbox_dropped, 0, "{info:?}");
    }

    /// Holds the [`PluginContext`] a native probe plugin is given at setup, so the delivery
    /// bench can drive a WASM instance with a real context (grants, quotas, timers).
    struct Probe {
        slot: Arc<std::sync::Mutex<Option<PluginContext>>>,
    }

    #[async_trait::async_trait]
    impl HomeCorePlugin for Probe {
        async fn setup(
            &mut self,
            ctx: &PluginContext,
            _config: &serde_json::Value,
        ) -> Result<(), PluginError> {
            *self.slot.lock().expect("not poisoned") = Some(ctx.clone());
            Ok(())
        }

        async fn on_state_changed(
            &mut self,
            _ctx: &PluginContext,
            _event: &homecore::StateChanged,
        ) -> Result<(), PluginError> {
            Ok(())
        }
    }

    /// `EVENTS` fresh state changes of the hall sensor ("on" again, new attributes), each
    /// one's old state being the previous one's new state, as the bus delivers them.
    fn fresh_events(
        home: &Home,
        sub: &mut homecore::Subscription,
        id: &EntityId,
        next: &mut u64,
    ) -> Vec<Arc<homecore::StateChanged>> {
        let ctx = Context::new();
        (0..EVENTS)
            .map(|_| {
                *next += 1;
                let attrs = Attributes::try_from(
                    json!({"device_class": "motion", "friendly_name": "Hall motion", "n": *next}),
                )
                .expect("object");
                home.states.set(id, "on", attrs, &ctx).expect("valid");
                let event = sub.try_recv().expect("published");
                Arc::clone(event.as_state_changed().expect("a state change"))
            })
            .collect()
    }

    /// One state change delivered to the reference plugin's instance by the runtime, as issue 3
    /// (§8, "per-event delivery") counts it: serialize the event once (the old state is already serialized, as the
    /// previous event's new state), `hc_alloc` + copy in, the guest SDK reads it and the plugin
    /// makes its one host call (`timer_cancel`), fuel and epoch deadline on. No bus, mailbox or
    /// task switch (`homecore_end_to_end` has those).
    #[divan::bench]
    fn homecore_delivery(bencher: Bencher<'_, '_>) {
        let rt = current_thread();
        let home = Home::new();
        let registry = PluginRegistry::new(home.clone());
        let slot = Arc::new(std::sync::Mutex::new(None));
        let mut probe_manifest: serde_json::Value =
            serde_json::from_str(&example_manifest()).expect("json");
        probe_manifest["domain"] = json!("delivery_probe");
        probe_manifest["homecore"]["runtime"] = json!("native");
        probe_manifest["homecore"]
            .as_object_mut()
            .expect("object")
            .remove("module");
        let probe_manifest = PluginManifest::from_value(probe_manifest).expect("valid manifest");
        let probe_slot = Arc::clone(&slot);
        rt.block_on(registry.load(PluginSpec::new(
            probe_manifest,
            PluginSource::native(move || Probe {
                slot: Arc::clone(&probe_slot),
            }),
        )))
        .expect("probe loads");
        let ctx = slot
            .lock()
            .expect("not poisoned")
            .take()
            .expect("probe set up");
        let runtime = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
        let mut instance = rt
            .block_on(runtime.load(&manifest(), &PluginSource::Wasm(bytes())))
            .expect("loads");
        rt.block_on(instance.setup(&ctx, &json!({"rooms": ["hall"], "quiet_seconds": 120})))
            .expect("setup");
        let id: EntityId = "binary_sensor.hall_motion".parse().expect("valid");
        let mut sub = home
            .bus
            .subscribe(
                [homecore::EventFilter::AllStateChanges],
                usize::try_from(EVENTS).expect("small"),
            )
            .expect("ok");
        let mut next = 0;
        // The first "on" turns the light on; every later one is the measured path.
        for event in fresh_events(&home, &mut sub, &id, &mut next) {
            rt.block_on(instance.on_state_changed(&ctx, &event))
                .expect("delivered");
        }
        bencher
            .counter(ItemsCount::new(EVENTS))
            .with_inputs(|| fresh_events(&home, &mut sub, &id, &mut next))
            .bench_local_values(|events| {
                rt.block_on(async {
                    for event in &events {
                        instance
                            .on_state_changed(&ctx, event)
                            .await
                            .expect("delivered");
                    }
                });
                events
            });
    }

    /// Delivers `bytes` to the bare guest; with `limits`, fuel and epoch deadline are reset
    /// first, as our runtime does before every call.
    fn deliver(bare: &mut BareGuest, limits: bool, bytes: &[u8]) {
        if limits {
            bare.store.set_fuel(10_000_000).expect("fuel on");
            bare.store.set_epoch_deadline(1000);
        }
        let args = bare.copy_in(bytes);
        assert_eq!(bare.on_state_changed(args), 0);
    }

    fn run_bare(bencher: Bencher<'_, '_>, limits: bool) {
        let mut bare = BareGuest::new(limits);
        let payloads: Vec<Vec<u8>> = (0..16).map(payload).collect();
        let mut i = 0;
        bencher.bench_local(|| {
            i = (i + 1) % payloads.len();
            deliver(&mut bare, limits, &payloads[i]);
        });
    }

    #[divan::bench]
    fn bare_wasmtime(bencher: Bencher<'_, '_>) {
        run_bare(bencher, false);
    }

    #[divan::bench]
    fn bare_wasmtime_limits(bencher: Bencher<'_, '_>) {
        run_bare(bencher, true);
    }

    #[divan::bench]
    fn payload_bytes(bencher: Bencher<'_, '_>) {
        // Not a timing of interest: prints the payload size once for the README.
        let len = payload(1).len();
        bencher.bench_local(|| len);
        println!("state_changed payload: {len} bytes");
    }
}
