//! The reference WASM plugin (`homecore-plugin-example`), built for wasm32 once per test process.
//!
//! ```no_run
//! let wasm: &[u8] = homecore_tests::guest::example_wasm();
//! let manifest: String = homecore_tests::guest::example_manifest();
//! assert!(wasm.starts_with(b"\0asm"));
//! assert!(manifest.contains("motion_lights_wasm"));
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The example's package name.
pub const EXAMPLE_PACKAGE: &str = "homecore-plugin-example";

/// The module's file name, as the example's manifest names it.
pub const EXAMPLE_MODULE: &str = "homecore_plugin_example.wasm";

/// The wasm target the example is built for.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The workspace root (the parent of this crate's directory).
///
/// # Panics
/// Never in this workspace: the tests crate is a direct child of the root.
#[must_use]
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
}

/// The target directory the guest is built in: separate from the one the tests run from, so
/// the nested cargo never waits on the outer cargo's lock.
#[must_use]
pub fn guest_target_dir() -> PathBuf {
    workspace_root().join("target").join("wasm-guest")
}

/// The built module: its path and bytes.
#[derive(Debug)]
pub struct GuestModule {
    /// Where the module was written.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Builds the example plugin for wasm32 in release mode (once per process) and returns the
/// module.
///
/// Runs `cargo build --release --target wasm32-unknown-unknown -p homecore-plugin-example` in
/// the workspace root with `CARGO_TARGET_DIR` set to [`guest_target_dir`], using the `CARGO`
/// of the running cargo when set.
///
/// # Panics
/// When cargo cannot be run or the build fails (with cargo's output), or the module cannot be
/// read.
pub fn example_module() -> &'static GuestModule {
    static MODULE: OnceLock<GuestModule> = OnceLock::new();
    MODULE.get_or_init(build_example)
}

/// The example plugin's module bytes (see [`example_module`]).
///
/// # Panics
/// As [`example_module`].
#[must_use]
pub fn example_wasm() -> &'static [u8] {
    &example_module().bytes
}

/// The path of the example plugin's built module (see [`example_module`]).
///
/// # Panics
/// As [`example_module`].
#[must_use]
pub fn example_wasm_path() -> &'static Path {
    &example_module().path
}

/// The example plugin's directory (holding `manifest.json`).
#[must_use]
pub fn example_dir() -> PathBuf {
    workspace_root().join(EXAMPLE_PACKAGE)
}

/// The example plugin's `manifest.json`, as written.
///
/// # Panics
/// When the file cannot be read.
#[must_use]
pub fn example_manifest() -> String {
    let path = example_dir().join("manifest.json");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

fn build_example() -> GuestModule {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = guest_target_dir();
    let output = Command::new(&cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "-p",
            EXAMPLE_PACKAGE,
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the outer build (coverage, sanitizers) do not apply to the guest.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", cargo.to_string_lossy()));
    assert!(
        output.status.success(),
        "building {EXAMPLE_PACKAGE} for {WASM_TARGET} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let path = target_dir
        .join(WASM_TARGET)
        .join("release")
        .join(EXAMPLE_MODULE);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    GuestModule { path, bytes }
}
