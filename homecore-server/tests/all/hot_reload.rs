//! Hot reload of signed WASM packages in a running server (docs/adr/0013-hot-reload.md): a new
//! version written to the plugins directory is verified and swapped in without a restart and
//! without disturbing other plugins; bad versions are refused with a reason while the old one
//! keeps running; a package written in small pieces never loads half-written; a removed
//! package is unloaded; `POST /api/homecore/plugins/{domain}/reload` re-verifies from disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use homecore::{Attributes, Context, StateChanged};
use homecore_package::{KeygenReport, keygen, pack, sign};
use homecore_plugins::{
    HomeCorePlugin, Lifecycle, PluginContext, PluginError, PluginManifest, PluginSource, PluginSpec,
};
use homecore_server::{
    Config, EXAMPLE_DOMAIN, EXAMPLE_MANIFEST, EXAMPLE_MODULE, EXAMPLE_MODULE_FILE,
};
use serde_json::{Value, json};

use crate::support::{TestServer, eventually_within, listed_domains, send, test_config};

/// A publisher key and a scratch directory to build packages in, outside the plugins
/// directory.
struct Publisher {
    key: KeygenReport,
    work: tempfile::TempDir,
    _keys: tempfile::TempDir,
}

impl Publisher {
    fn new(name: &str) -> Self {
        let keys = tempfile::tempdir().expect("tempdir");
        let key = keygen(keys.path(), name).expect("keygen");
        Self {
            key,
            work: tempfile::tempdir().expect("tempdir"),
            _keys: keys,
        }
    }

    /// A complete package of the example for `domain` at `version`, with `module` and the
    /// manifest changed by `edit`; signed unless `signed` is false. Returns its directory.
    fn package(
        &self,
        domain: &str,
        version: &str,
        module: &[u8],
        edit: impl FnOnce(String) -> String,
        signed: bool,
    ) -> PathBuf {
        let dir = self
            .work
            .path()
            .join(format!("{domain}-{version}-{}", unique()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let manifest = EXAMPLE_MANIFEST.replace(EXAMPLE_DOMAIN, domain).replace(
            r#""version": "1.0.0""#,
            &format!(r#""version": "{version}""#),
        );
        std::fs::write(dir.join("manifest.json"), edit(manifest)).expect("manifest");
        std::fs::write(dir.join(EXAMPLE_MODULE_FILE), module).expect("module");
        if signed {
            sign(&dir, &self.key.private_key_path).expect("signs");
        }
        dir
    }

    /// The example at `version`, signed.
    fn example(&self, version: &str) -> PathBuf {
        self.package(EXAMPLE_DOMAIN, version, EXAMPLE_MODULE, |m| m, true)
    }

    /// `[trust]` trusting this key for every domain.
    fn trust(&self) -> toml::Table {
        toml::from_str(&format!(
            "[[publishers]]\nname = \"tests\"\nkey = \"{}\"\n",
            self.key.public_key
        ))
        .expect("valid trust table")
    }
}

fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Copies a package's files into `plugins/<domain>/` in place (the files of a package already
/// there are overwritten one by one, as `cp` does; signature.json is removed when `from` has
/// none).
fn install(from: &Path, plugins: &Path, domain: &str) {
    let to = plugins.join(domain);
    std::fs::create_dir_all(&to).expect("mkdir");
    for name in ["manifest.json", EXAMPLE_MODULE_FILE, "signature.json"] {
        let source = from.join(name);
        if source.exists() {
            std::fs::copy(&source, to.join(name)).expect("copies");
        } else if to.join(name).exists() {
            std::fs::remove_file(to.join(name)).expect("removes");
        }
    }
}

/// A config with hot reload on (50 ms debounce) trusting `publisher`.
fn config(data: &tempfile::TempDir, publisher: &Publisher, hot_reload: bool) -> Config {
    let mut config = test_config(data);
    config.trust = Some(publisher.trust());
    config.hot_reload.enabled = hot_reload;
    config.hot_reload.debounce_ms = 50;
    config
}

fn plugins_dir(data: &tempfile::TempDir) -> PathBuf {
    data.path().join("plugins")
}

/// Waits up to a minute (compiling a module on a loaded machine takes seconds).
async fn wait_for(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(60), check).await;
}

/// A server whose plugins directory holds `publisher`'s example 1.0.0, trusted, with the
/// watcher on or off; the data directory lives as long as the caller keeps it.
async fn start_with_example(
    publisher: &Publisher,
    hot_reload: bool,
) -> (tempfile::TempDir, PathBuf, TestServer) {
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = plugins_dir(&data);
    install(&publisher.example("1.0.0"), &plugins, EXAMPLE_DOMAIN);
    let s = TestServer::start_config(config(&data, publisher, hot_reload)).await;
    (data, plugins, s)
}

/// The registry's (version, lifecycle) for `domain`.
fn running(s: &TestServer, domain: &str) -> Option<(String, Lifecycle)> {
    s.server
        .api()
        .registry()
        .get(domain)
        .map(|p| (p.manifest.version.to_string(), p.lifecycle))
}

fn is_running(s: &TestServer, domain: &str, version: &str) -> bool {
    running(s, domain) == Some((version.to_owned(), Lifecycle::Running))
}

/// The `rejected` entries of `GET /api/homecore/plugins` for `domain`.
async fn rejected(s: &TestServer, domain: &str) -> Vec<Value> {
    let (status, body) = send(s.get("/api/homecore/plugins")).await;
    assert_eq!(status, 200);
    body["rejected"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["domain"] == domain)
        .cloned()
        .collect()
}

/// Waits until `domain`'s `rejected` reason satisfies `check`, and returns it.
async fn wait_rejected(s: &TestServer, domain: &str, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..6000 {
        if let Some(reason) = rejected(s, domain)
            .await
            .first()
            .and_then(|r| r["reason"].as_str().map(String::from))
            && check(&reason)
        {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "timed out waiting for a refusal of {domain}; rejected: {:?}",
        rejected(s, domain).await
    );
}

fn set(s: &TestServer, id: &str, state: &str) {
    s.home()
        .states
        .set(
            &id.parse().expect("valid id"),
            state,
            Attributes::new(),
            &Context::new(),
        )
        .expect("set");
}

/// Records every `sensor.tick` state it is handed, in order.
struct TickCounter {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[async_trait]
impl HomeCorePlugin for TickCounter {
    async fn setup(&mut self, ctx: &PluginContext, _config: &Value) -> Result<(), PluginError> {
        ctx.subscribe("sensor.tick")?;
        Ok(())
    }

    async fn on_state_changed(
        &mut self,
        _ctx: &PluginContext,
        event: &StateChanged,
    ) -> Result<(), PluginError> {
        if let Some(state) = &event.new_state
            && let Ok(n) = state.state().parse()
        {
            self.seen.lock().expect("not poisoned").push(n);
        }
        Ok(())
    }
}

fn tick_counter(seen: Arc<Mutex<Vec<u64>>>) -> PluginSpec {
    let manifest = PluginManifest::from_value(json!({
        "domain": "tick_counter",
        "name": "Tick counter",
        "version": "1.0.0",
        "homecore": {
            "runtime": "native",
            "api_version": "^1",
            "permissions": {"states_read": ["sensor.tick"]},
            "limits": {"mailbox_capacity": 65536}
        }
    }))
    .expect("valid manifest");
    PluginSpec::new(
        manifest,
        PluginSource::native(move || TickCounter {
            seen: Arc::clone(&seen),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_on_disk_is_swapped_in_while_other_plugins_miss_no_event() {
    let publisher = Publisher::new("tests");
    let (_data, plugins, s) = start_with_example(&publisher, true).await;
    assert!(is_running(&s, EXAMPLE_DOMAIN, "1.0.0"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    s.server
        .api()
        .registry()
        .load(tick_counter(Arc::clone(&seen)))
        .await
        .expect("counter starts");

    // A steady stream of events: ticks for the native counter, motion for the WASM plugin.
    let stop = Arc::new(AtomicBool::new(false));
    let home = s.home().clone();
    let stream = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let tick = "sensor.tick".parse().expect("valid");
            let motion = "binary_sensor.hall_motion".parse().expect("valid");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                home.states
                    .set(&tick, &n.to_string(), Attributes::new(), &Context::new())
                    .expect("set");
                if n.is_multiple_of(10) {
                    let on = if n.is_multiple_of(20) { "on" } else { "off" };
                    home.states
                        .set(&motion, on, Attributes::new(), &Context::new())
                        .expect("set");
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A new version, with a different module (a custom section added), written in place.
    let module = with_custom_section(EXAMPLE_MODULE, b"v1.1.0");
    let v2 = publisher.package(EXAMPLE_DOMAIN, "1.1.0", &module, |m| m, true);
    install(&v2, &plugins, EXAMPLE_DOMAIN);
    wait_for("1.1.0 running", || is_running(&s, EXAMPLE_DOMAIN, "1.1.0")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = stream.await.expect("stream ran");
    assert!(sent > 100, "a steady stream: {sent} ticks");

    // The counter saw every tick exactly once, in order.
    wait_for("the counter to catch up", || {
        seen.lock().expect("not poisoned").len() as u64 >= sent
    })
    .await;
    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen, (1..=sent).collect::<Vec<_>>());
    let counter = s
        .server
        .api()
        .registry()
        .get("tick_counter")
        .expect("listed");
    assert_eq!(counter.lifecycle, Lifecycle::Running);
    assert_eq!(counter.stats.mailbox_dropped, 0);

    // The API shows the new version and no refusal; the new instance reacts.
    let (_, body) = send(s.get("/api/homecore/plugins")).await;
    let example = body["plugins"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["domain"] == EXAMPLE_DOMAIN)
        .cloned()
        .expect("listed");
    assert_eq!(example["version"], "1.1.0");
    assert_eq!(example["lifecycle"], "running");
    assert!(rejected(&s, EXAMPLE_DOMAIN).await.is_empty());
    set(&s, "binary_sensor.hall_motion", "off");
    set(&s, "light.hall", "off");
    set(&s, "binary_sensor.hall_motion", "on");
    wait_for("light.hall on", || {
        s.home()
            .states
            .get_str("light.hall")
            .is_some_and(|l| l.state() == "on")
    })
    .await;
    assert!(s.server.shutdown().await.plugins_stopped);
}

/// `module` with a custom section `hc_test` holding `payload` appended (another module for the
/// runtime, the same behaviour).
fn with_custom_section(module: &[u8], payload: &[u8]) -> Vec<u8> {
    let name = b"hc_test";
    let size = 1 + name.len() + payload.len();
    assert!(size < 128 && name.len() < 128, "one-byte LEB128 sizes");
    let mut out = module.to_vec();
    out.push(0);
    out.push(u8::try_from(size).expect("asserted above"));
    out.push(u8::try_from(name.len()).expect("asserted above"));
    out.extend_from_slice(name);
    out.extend_from_slice(payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_versions_are_refused_with_a_reason_and_the_old_one_keeps_running() {
    let publisher = Publisher::new("tests");
    let stranger = Publisher::new("stranger");
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = plugins_dir(&data);
    let good = publisher.example("1.0.0");
    install(&good, &plugins, EXAMPLE_DOMAIN);
    let s = TestServer::start_config(config(&data, &publisher, true)).await;
    assert!(is_running(&s, EXAMPLE_DOMAIN, "1.0.0"));

    // A module that is not valid WebAssembly past its header and ABI section, signed.
    let mut corrupt = b"\0asm\x01\0\0\0\x00\x11\x0chomecore_abi".to_vec();
    corrupt.extend(1u32.to_le_bytes());
    corrupt.extend([0x01, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let cases: Vec<(&str, PathBuf, &[&str])> = vec![
        (
            "corrupt module",
            publisher.package(EXAMPLE_DOMAIN, "1.0.0", &corrupt, |m| m, true),
            &[EXAMPLE_DOMAIN][..],
        ),
        (
            "unsigned",
            publisher.package(EXAMPLE_DOMAIN, "1.2.0", EXAMPLE_MODULE, |m| m, false),
            &["is not signed"][..],
        ),
        (
            "untrusted key",
            stranger.package(EXAMPLE_DOMAIN, "1.2.0", EXAMPLE_MODULE, |m| m, true),
            &["not a trusted publisher"][..],
        ),
        (
            "downgrade",
            publisher.package(EXAMPLE_DOMAIN, "0.9.0", EXAMPLE_MODULE, |m| m, true),
            &["0.9.0 is older than 1.0.0"][..],
        ),
        (
            "incompatible api_version",
            publisher.package(
                EXAMPLE_DOMAIN,
                "1.2.0",
                EXAMPLE_MODULE,
                |m| m.replace(r#""api_version": "^1.0""#, r#""api_version": "^2.0""#),
                true,
            ),
            &["requires host API ^2.0"][..],
        ),
    ];
    for (case, package, expected) in cases {
        install(&package, &plugins, EXAMPLE_DOMAIN);
        let reason = wait_rejected(&s, EXAMPLE_DOMAIN, |r| {
            expected.iter().all(|e| r.contains(e))
                // Half-copied files are refused too (for another reason) before the last one
                // lands; the corrupt module's reason must not be a signature mismatch.
                && !(case == "corrupt module" && r.contains("signature"))
        })
        .await;
        assert!(
            is_running(&s, EXAMPLE_DOMAIN, "1.0.0"),
            "{case}: the old version keeps running ({reason}); {:?}",
            running(&s, EXAMPLE_DOMAIN)
        );
        // Putting the good package back clears the refusal without a restart.
        install(&good, &plugins, EXAMPLE_DOMAIN);
        for _ in 0..6000 {
            if rejected(&s, EXAMPLE_DOMAIN).await.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            rejected(&s, EXAMPLE_DOMAIN).await.is_empty(),
            "{case}: cleared"
        );
        assert!(is_running(&s, EXAMPLE_DOMAIN, "1.0.0"), "{case}");
    }
    // The old instance still works.
    set(&s, "binary_sensor.hall_motion", "on");
    wait_for("light.hall on", || {
        s.home()
            .states
            .get_str("light.hall")
            .is_some_and(|l| l.state() == "on")
    })
    .await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_written_in_small_pieces_loads_only_when_complete() {
    const DOMAIN: &str = "chunky_lights";
    let publisher = Publisher::new("tests");
    let data = tempfile::tempdir().expect("tempdir");
    let plugins = plugins_dir(&data);
    std::fs::create_dir_all(&plugins).expect("mkdir");
    let v1 = publisher.package(DOMAIN, "1.0.0", EXAMPLE_MODULE, |m| m, true);
    pack(&v1, &plugins).expect("packs");
    let s = TestServer::start_config(config(&data, &publisher, true)).await;
    assert!(is_running(&s, DOMAIN, "1.0.0"), "{:?}", running(&s, DOMAIN));

    let bundles = tempfile::tempdir().expect("tempdir");
    let module = with_custom_section(EXAMPLE_MODULE, b"v2.0.0");
    let v2 = publisher.package(DOMAIN, "2.0.0", &module, |m| m, true);
    let bytes =
        std::fs::read(pack(&v2, bundles.path()).expect("packs").bundle_path).expect("reads");

    // Sample the registry while the bundle is rewritten 1 KiB at a time, pausing longer than
    // the debounce now and then so the watcher sees (and refuses) partial files.
    let done = Arc::new(AtomicBool::new(false));
    let registry = s.server.api().registry().clone();
    let sampler = {
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(
                    registry
                        .get(DOMAIN)
                        .map(|p| (p.manifest.version.to_string(), p.lifecycle)),
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            samples
        })
    };
    let path = plugins.join(format!("{DOMAIN}.hcpkg"));
    let writer = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::create(&path).expect("truncates");
        for (i, chunk) in bytes.chunks(1024).enumerate() {
            file.write_all(chunk).expect("writes");
            file.flush().expect("flushes");
            file.sync_data().expect("syncs");
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(150));
            }
        }
    });
    writer.await.expect("written");
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.expect("sampled");
    assert!(samples.len() > 10, "{} samples", samples.len());
    for sample in &samples {
        assert_eq!(
            sample.as_ref(),
            Some(&("1.0.0".to_owned(), Lifecycle::Running)),
            "the old version runs until the bundle is complete"
        );
    }
    wait_for("2.0.0 running", || is_running(&s, DOMAIN, "2.0.0")).await;
    for _ in 0..6000 {
        if rejected(&s, DOMAIN).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rejected(&s, DOMAIN).await.is_empty());
    assert_eq!(send(s.get("/api/states")).await.0, 200, "still serving");
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_package_is_unloaded_and_native_plugins_stay() {
    let publisher = Publisher::new("tests");
    let (_data, plugins, s) = start_with_example(&publisher, true).await;
    assert!(is_running(&s, EXAMPLE_DOMAIN, "1.0.0"));

    std::fs::remove_dir_all(plugins.join(EXAMPLE_DOMAIN)).expect("removes");
    wait_for("the plugin unloaded", || {
        s.server.api().registry().get(EXAMPLE_DOMAIN).is_none()
    })
    .await;
    let domains = listed_domains(&s).await;
    assert!(!domains.iter().any(|d| d == EXAMPLE_DOMAIN), "{domains:?}");
    for native in ["input_boolean", "input_number", "motion_lights"] {
        assert_eq!(
            running(&s, native).map(|(_, l)| l),
            Some(Lifecycle::Running),
            "{native} still runs"
        );
    }

    // Put back, it loads again as a new plugin.
    install(&publisher.example("1.0.1"), &plugins, EXAMPLE_DOMAIN);
    wait_for("the plugin back", || {
        is_running(&s, EXAMPLE_DOMAIN, "1.0.1")
    })
    .await;
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_reload_re_verifies_the_package_on_disk() {
    let publisher = Publisher::new("tests");
    // The watcher is off: only the API reloads.
    let (_data, plugins, s) = start_with_example(&publisher, false).await;
    let reload = format!("/api/homecore/plugins/{EXAMPLE_DOMAIN}/reload");

    let (status, body) = send(s.post(&reload)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(body["lifecycle"], "running");

    // Tampered on disk: the reload is refused, the running instance is kept.
    let module = plugins.join(EXAMPLE_DOMAIN).join(EXAMPLE_MODULE_FILE);
    let mut bytes = std::fs::read(&module).expect("reads");
    bytes.extend_from_slice(&[0, 3, 2, b'h', b'c']);
    std::fs::write(&module, &bytes).expect("tampers");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rejected(&s, EXAMPLE_DOMAIN).await.is_empty(), "no watcher");
    let (status, body) = send(s.post(&reload)).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains(EXAMPLE_DOMAIN) && message.contains("signature"),
        "{message}"
    );
    assert!(is_running(&s, EXAMPLE_DOMAIN, "1.0.0"));
    let listed = rejected(&s, EXAMPLE_DOMAIN).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    set(&s, "binary_sensor.hall_motion", "on");
    wait_for("light.hall on", || {
        s.home()
            .states
            .get_str("light.hall")
            .is_some_and(|l| l.state() == "on")
    })
    .await;

    // A good new version: swapped in, the refusal cleared.
    install(&publisher.example("1.1.0"), &plugins, EXAMPLE_DOMAIN);
    let (status, body) = send(s.post(&reload)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "1.1.0");
    assert!(rejected(&s, EXAMPLE_DOMAIN).await.is_empty());

    // A native plugin is restarted as before; an unknown domain or a path is 404.
    let (status, body) = send(s.post("/api/homecore/plugins/motion_lights/reload")).await;
    assert_eq!((status, &body["lifecycle"]), (200, &json!("running")));
    for bad in ["nope", "..%2Fplugins"] {
        let (status, _) = send(s.post(&format!("/api/homecore/plugins/{bad}/reload"))).await;
        assert_eq!(status, 404, "{bad}");
    }
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_that_fails_to_load_does_not_raise_the_rollback_floor() {
    let publisher = Publisher::new("tests");
    let (_data, plugins, s) = start_with_example(&publisher, false).await;
    let reload = format!("/api/homecore/plugins/{EXAMPLE_DOMAIN}/reload");

    // 2.0.0 verifies (signed, ABI section present) but its module does not compile.
    let mut corrupt = b"\0asm\x01\0\0\0\x00\x11\x0chomecore_abi".to_vec();
    corrupt.extend(1u32.to_le_bytes());
    corrupt.extend([0x01, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]);
    install(
        &publisher.package(EXAMPLE_DOMAIN, "2.0.0", &corrupt, |m| m, true),
        &plugins,
        EXAMPLE_DOMAIN,
    );
    let (status, body) = send(s.post(&reload)).await;
    assert!(status >= 400, "{status} {body}");
    assert!(is_running(&s, EXAMPLE_DOMAIN, "1.0.0"));

    // 1.5.0 is newer than what runs: accepted (2.0.0 never ran, so it is not the floor).
    install(&publisher.example("1.5.0"), &plugins, EXAMPLE_DOMAIN);
    let (status, body) = send(s.post(&reload)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], "1.5.0");

    // 1.5.0 ran, so it is the floor now.
    install(&publisher.example("1.2.0"), &plugins, EXAMPLE_DOMAIN);
    let (status, body) = send(s.post(&reload)).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("1.2.0 is older than 1.5.0"), "{message}");
    assert!(is_running(&s, EXAMPLE_DOMAIN, "1.5.0"));
    s.server.shutdown().await;
}
