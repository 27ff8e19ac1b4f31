//! Hot reload timing (issue 6, docs/adr/0013-hot-reload.md): how long from a package written to
//! the plugins directory until the new version runs, and what the parts cost.
//!
//! Starts the real server in-process (a temporary data directory, a publisher key trusted in
//! `[trust]`, the WASM example installed as a signed `motion_lights_wasm.hcpkg` bundle,
//! `[hot_reload] debounce_ms = --debounce-ms`), then for `--rounds` rounds each:
//!
//! 1. **file change → running**: a new version (the example's module with a custom section
//!    naming the round, so the runtime compiles a module it has never seen) is written beside
//!    the bundle under a hidden name and renamed over it; timed from the rename until the
//!    registry shows the new version running. Includes the debounce delay.
//! 2. **API reload**: another new version is renamed into place while the watcher is told to
//!    ignore it (a second server with `hot_reload.enabled = false`), then
//!    `POST /api/homecore/plugins/{domain}/reload` is timed: verify (read, hash, signature,
//!    rollback record) + compile + swap, no debounce.
//! 3. **verify**: `discover_one` alone on the package in place (read, SHA-256, Ed25519,
//!    compatibility, rollback record), the part the reloader runs on the blocking pool.
//! 4. **swap**: `PluginRegistry::replace` with a spec whose module is already compiled: check,
//!    instantiate, stop the old instance, set up the new one.
//!
//! It prints each figure's median and the slowest round.
//!
//! ```text
//! cargo run -p homecore-server --example hot_reload -- --rounds 20
//! cargo run -p homecore-server --example hot_reload -- --rounds 20 --debounce-ms 50
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use homecore_package::{KeygenReport, MemoryAcceptedVersions, TrustPolicy, discover_one, keygen};
use homecore_plugins::{Lifecycle, PluginRegistry};
use homecore_server::{
    ApiConfig, Config, EXAMPLE_DOMAIN, EXAMPLE_MANIFEST, EXAMPLE_MODULE, EXAMPLE_MODULE_FILE,
    RunningServer,
};

#[derive(Parser)]
struct Args {
    /// Rounds per figure.
    #[arg(long, default_value_t = 20)]
    rounds: u32,
    /// The watcher's debounce delay, in milliseconds.
    #[arg(long, default_value_t = homecore_server::DEFAULT_HOT_RELOAD_DEBOUNCE_MS)]
    debounce_ms: u64,
}

const TOKEN: &str = "hot-reload-bench-token-0123456789";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let keys = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    let key = keygen(keys.path(), "bench")?;
    let mut version = Versions::default();

    // 1. File change → running, through the watcher.
    let data = tempfile::tempdir()?;
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    deploy(&bundle(work.path(), &key, &version.next())?, &plugins)?;
    let mut server = homecore_server::start(config(data.path(), &key, true, args.debounce_ms))
        .await
        .context("server starts")?;
    server.plugins_started().await;
    let registry = server.api().registry().clone();
    wait_running(&registry, &version.current(), Duration::from_secs(60)).await?;
    let mut watched = Vec::new();
    for _ in 0..args.rounds {
        let next = version.next();
        let file = bundle(work.path(), &key, &next)?;
        let start = Instant::now();
        deploy(&file, &plugins)?;
        wait_running(&registry, &next, Duration::from_secs(60)).await?;
        watched.push(start.elapsed());
    }
    stop(server).await;

    // 2 and 3. API reload and swap, without the watcher.
    let data = tempfile::tempdir()?;
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    deploy(&bundle(work.path(), &key, &version.next())?, &plugins)?;
    let mut server = homecore_server::start(config(data.path(), &key, false, args.debounce_ms))
        .await
        .context("server starts")?;
    server.plugins_started().await;
    let registry = server.api().registry().clone();
    wait_running(&registry, &version.current(), Duration::from_secs(60)).await?;
    let client = reqwest::Client::new();
    let url = format!(
        "http://{}/api/homecore/plugins/{EXAMPLE_DOMAIN}/reload",
        server.addr()
    );
    let mut api = Vec::new();
    for _ in 0..args.rounds {
        let next = version.next();
        deploy(&bundle(work.path(), &key, &next)?, &plugins)?;
        let start = Instant::now();
        let response = client.post(&url).bearer_auth(TOKEN).send().await?;
        let elapsed = start.elapsed();
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() || !body.contains(&format!("\"version\":\"{next}\"")) {
            bail!("reload of {next} answered {status}: {body}");
        }
        api.push(elapsed);
    }
    let policy = trust(&key);
    let seen = MemoryAcceptedVersions::new();
    let mut verify = Vec::new();
    for _ in 0..args.rounds {
        let start = Instant::now();
        discover_one(&plugins, EXAMPLE_DOMAIN, &policy, &seen, &[], &[])?;
        verify.push(start.elapsed());
    }
    let package = discover_one(&plugins, EXAMPLE_DOMAIN, &policy, &seen, &[], &[])?;
    let spec = package.into_spec(serde_json::json!({"rooms": ["hall"]}), None);
    let mut swaps = Vec::new();
    for _ in 0..args.rounds {
        let start = Instant::now();
        let info = registry.replace(spec.clone()).await?;
        swaps.push(start.elapsed());
        if info.lifecycle != Lifecycle::Running {
            bail!("swap left {:?}", info.lifecycle);
        }
    }
    stop(server).await;

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "hot reload of the WASM example ({} KiB module), {} rounds, load average {}",
        EXAMPLE_MODULE.len() / 1024,
        args.rounds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("{:<58} {:>10} {:>10}", "what", "median", "slowest");
    for (what, times) in [
        (
            format!(
                "file renamed -> new version running (debounce {} ms)",
                args.debounce_ms
            ),
            &mut watched,
        ),
        (
            "POST .../reload: verify + compile + swap".to_owned(),
            &mut api,
        ),
        (
            "discover_one: read + hash + signature + checks".to_owned(),
            &mut verify,
        ),
        (
            "PluginRegistry::replace, module compiled: the swap".to_owned(),
            &mut swaps,
        ),
    ] {
        times.sort();
        println!(
            "{what:<58} {:>10} {:>10}",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Versions 1.0.0, 1.0.1, ...
#[derive(Default)]
struct Versions(u32);

impl Versions {
    fn next(&mut self) -> String {
        self.0 += 1;
        self.current()
    }

    fn current(&self) -> String {
        format!("1.0.{}", self.0 - 1)
    }
}

fn trust(key: &KeygenReport) -> TrustPolicy {
    TrustPolicy {
        publishers: vec![homecore_package::TrustedPublisher {
            name: Some("bench".to_owned()),
            key: key.public_key,
            domains: None,
        }],
        ..TrustPolicy::default()
    }
}

fn config(data: &Path, key: &KeygenReport, hot_reload: bool, debounce_ms: u64) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("valid"),
        data_dir: Some(data.to_owned()),
        examples: false,
        api: ApiConfig {
            tokens: vec![TOKEN.to_owned()],
            ..ApiConfig::default()
        },
        trust: Some(
            toml::from_str(&format!(
                "[[publishers]]\nname = \"bench\"\nkey = \"{}\"\n",
                key.public_key
            ))
            .expect("a valid trust table"),
        ),
        ..Config::default()
    };
    config.hot_reload.enabled = hot_reload;
    config.hot_reload.debounce_ms = debounce_ms;
    config
}

/// The example at `version`, with a module the runtime has not seen, signed and packed into a
/// bundle in `work`.
fn bundle(work: &Path, key: &KeygenReport, version: &str) -> anyhow::Result<PathBuf> {
    let dir = work.join(format!("package-{version}"));
    std::fs::create_dir_all(&dir)?;
    let manifest = EXAMPLE_MANIFEST.replace(
        r#""version": "1.0.0""#,
        &format!(r#""version": "{version}""#),
    );
    std::fs::write(dir.join("manifest.json"), manifest)?;
    let mut module = EXAMPLE_MODULE.to_vec();
    // A custom section `round` holding the version: another module, the same behaviour.
    let payload = version.as_bytes();
    let size = u8::try_from(1 + 5 + payload.len()).expect("a version is short");
    module.extend([0, size, 5]);
    module.extend(b"round");
    module.extend(payload);
    std::fs::write(dir.join(EXAMPLE_MODULE_FILE), module)?;
    homecore_package::sign(&dir, &key.private_key_path)?;
    let out = work.join(format!("bundle-{version}"));
    std::fs::create_dir_all(&out)?;
    Ok(homecore_package::pack(&dir, &out)?.bundle_path)
}

/// Copies a bundle beside the live one under a hidden name, then renames it into place (one
/// atomic step).
fn deploy(bundle: &Path, plugins: &Path) -> anyhow::Result<()> {
    let staging = plugins.join(format!(".{EXAMPLE_DOMAIN}.hcpkg.new"));
    std::fs::copy(bundle, &staging)?;
    std::fs::rename(&staging, plugins.join(format!("{EXAMPLE_DOMAIN}.hcpkg")))?;
    Ok(())
}

async fn wait_running(
    registry: &PluginRegistry,
    version: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Some(info) = registry.get(EXAMPLE_DOMAIN)
            && info.manifest.version.to_string() == version
            && info.lifecycle == Lifecycle::Running
        {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!(
                "{EXAMPLE_DOMAIN} {version} not running after {limit:?}: {:?}",
                registry.get(EXAMPLE_DOMAIN).map(|i| i.lifecycle)
            );
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

async fn stop(server: RunningServer) {
    server.shutdown().await;
}
