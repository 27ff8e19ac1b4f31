//! With the `wasm` feature, builds the reference WASM plugin (`homecore-plugin-example`) for
//! `wasm32-unknown-unknown` so the server can embed it and install it, signed, on first start
//! (docs/adr/0009-server.md).
//!
//! The nested cargo uses its own target directory (`target/wasm-guest`, shared with the
//! `tests` crate's guest build), never the outer build's, so it cannot wait on the lock the
//! outer cargo holds.

use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE: &str = "homecore-plugin-example";
const MODULE: &str = "homecore_plugin_example.wasm";
const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_WASM").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("the server crate lives inside the workspace")
        .to_owned();
    for watched in [
        "homecore-plugin-example/src",
        "homecore-plugin-example/Cargo.toml",
        "homecore-plugin-example/build.rs",
        "homecore-plugin-example/manifest.json",
        "homecore-plugin-sdk/src",
        "homecore-plugin-sdk/Cargo.toml",
        "homecore-abi/src",
        "homecore-abi/Cargo.toml",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let module = build_guest(&root);
    std::fs::copy(&module, out_dir.join(MODULE)).unwrap_or_else(|err| {
        panic!("cannot copy {} to OUT_DIR: {err}", module.display());
    });
}

fn build_guest(root: &Path) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = root.join("target").join("wasm-guest");
    let output = Command::new(&cargo)
        .current_dir(root)
        .args(["build", "--release", "--target", TARGET, "-p", PACKAGE])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags and wrappers of the outer build (coverage, clippy) do not apply to the guest.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", cargo.to_string_lossy()));
    if !output.status.success() {
        panic!(
            "building {PACKAGE} for {TARGET} failed ({}); is the target installed \
             (`rustup target add {TARGET}`)?\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    target_dir.join(TARGET).join("release").join(MODULE)
}
