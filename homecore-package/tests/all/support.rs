//! Packages, keys and policies for the tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use homecore_package::{
    DiscoveryReport, KeygenReport, MemoryAcceptedVersions, PackageLimits, TrustPolicy,
    TrustedPublisher, discover_with_limits, keygen, sign,
};

/// A module declaring ABI `abi` in its `homecore_abi` section, padded with a custom section of
/// `padding` bytes (nothing compiles it here: discovery reads section headers only).
pub(crate) fn module(abi: u32, padding: usize) -> Vec<u8> {
    let mut out = b"\0asm\x01\0\0\0".to_vec();
    custom_section(&mut out, "homecore_abi", &abi.to_le_bytes());
    if padding > 0 {
        custom_section(&mut out, "padding", &vec![0xa5; padding]);
    }
    out
}

fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = u8::try_from(n & 0x7f).expect("seven bits");
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn custom_section(out: &mut Vec<u8>, name: &str, content: &[u8]) {
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(content);
    out.push(0);
    leb(body.len(), out);
    out.extend(body);
}

/// A manifest for `domain` at `version`; `homecore_extra` is spliced into the `homecore`
/// section and `top_extra` at the top level (each starting with `,` when not empty).
pub(crate) fn manifest(
    domain: &str,
    version: &str,
    top_extra: &str,
    homecore_extra: &str,
) -> String {
    format!(
        r#"{{
  "domain": "{domain}",
  "name": "Plugin {domain}",
  "version": "{version}"{top_extra},
  "homecore": {{
    "runtime": "wasm",
    "api_version": "^1.0",
    "module": "plugin.wasm",
    "permissions": {{"states_read": ["binary_sensor.*"], "states_write": ["light.*"]}}{homecore_extra}
  }}
}}
"#
    )
}

/// Writes an unsigned package `plugins/<dir>/` and returns its path.
pub(crate) fn write_package(plugins: &Path, dir: &str, manifest: &str, module: &[u8]) -> PathBuf {
    let path = plugins.join(dir);
    std::fs::create_dir_all(&path).expect("mkdir");
    std::fs::write(path.join("manifest.json"), manifest).expect("write manifest");
    std::fs::write(path.join("plugin.wasm"), module).expect("write module");
    path
}

/// A publisher: a key pair in its own directory.
pub(crate) struct Publisher {
    _dir: tempfile::TempDir,
    pub(crate) key: KeygenReport,
}

impl Publisher {
    pub(crate) fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = keygen(dir.path(), name).expect("keygen");
        Self { _dir: dir, key }
    }

    /// Signs the package at `path`.
    pub(crate) fn sign(&self, path: &Path) {
        sign(path, &self.key.private_key_path).expect("signs");
    }

    /// This publisher as a trusted entry.
    pub(crate) fn trusted(&self, domains: Option<&[&str]>) -> TrustedPublisher {
        TrustedPublisher {
            name: Some(self.key.name.clone()),
            key: self.key.public_key,
            domains: domains.map(|d| d.iter().map(|s| (*s).to_owned()).collect()),
        }
    }
}

/// A policy trusting these publishers for any domain.
pub(crate) fn trusting(publishers: &[&Publisher]) -> TrustPolicy {
    TrustPolicy {
        publishers: publishers.iter().map(|p| p.trusted(None)).collect(),
        ..TrustPolicy::default()
    }
}

/// A signed package `plugins/<domain>/` at `version`.
pub(crate) fn signed_package(
    plugins: &Path,
    publisher: &Publisher,
    domain: &str,
    version: &str,
) -> PathBuf {
    let path = write_package(
        plugins,
        domain,
        &manifest(domain, version, "", ""),
        &module(1, 64),
    );
    publisher.sign(&path);
    path
}

/// Captures warning-level log messages emitted on this thread while `f` runs.
pub(crate) fn warnings_during<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let collector = Collector::default();
    let seen = Arc::clone(&collector.messages);
    let out = tracing::subscriber::with_default(collector, f);
    let messages = seen.lock().expect("not poisoned").clone();
    (out, messages)
}

#[derive(Default)]
struct Collector {
    messages: Arc<Mutex<Vec<String>>>,
}

struct MessageVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for Collector {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut MessageVisitor(&mut text));
            self.messages.lock().expect("not poisoned").push(text);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Discovers `plugins` trusting `publisher` for every domain, with a fresh version store.
pub(crate) fn discover_trusting(
    plugins: &Path,
    publisher: &Publisher,
    native: &[(String, semver::Version)],
    limits: &PackageLimits,
) -> DiscoveryReport {
    discover_with_limits(
        plugins,
        &trusting(&[publisher]),
        &MemoryAcceptedVersions::new(),
        native,
        limits,
    )
    .expect("lists the plugins directory")
}

/// Discovers `plugins` under the default (strict, empty) policy.
pub(crate) fn discover_strict(plugins: &Path) -> DiscoveryReport {
    discover_with_limits(
        plugins,
        &TrustPolicy::default(),
        &MemoryAcceptedVersions::new(),
        &[],
        &PackageLimits::default(),
    )
    .expect("lists the plugins directory")
}
