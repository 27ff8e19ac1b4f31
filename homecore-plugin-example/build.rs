//! Keeps the release module small without touching the workspace's profiles: a release build
//! for wasm32 is linked with `--strip-all`, which drops the `name`, `producers` and
//! `target_features` custom sections (about 15% of the module). The `homecore_abi` section
//! stays: the linker keeps custom sections it does not own. A panic's message and location
//! still reach the host through the SDK's panic hook.

fn main() {
    let wasm32 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if wasm32 && release {
        println!("cargo::rustc-link-arg-cdylib=--strip-all");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
