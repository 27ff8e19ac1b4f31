//! WAT building blocks: a minimal well-formed ABI v1 guest whose parts tests replace.

use std::sync::Arc;

use homecore::Home;
use homecore_plugins::{PluginManifest, PluginRegistry, PluginSource, PluginSpec, WasmtimeConfig, WasmtimeRuntime};
use serde_json::{Value, json};

/// Pieces of a guest module; `module()` assembles them.
#[derive(Clone)]
pub(crate) struct Guest {
    /// Extra imports, e.g. `(import "homecore_v1" "log" (func $log (param i32 i32 i32) (result i32)))`.
    pub(crate) imports: String,
    /// Data segments and globals.
    pub(crate) data: String,
    /// Body of hc_setup (params $ptr $len, result i32).
    pub(crate) setup: String,
    /// Body of hc_on_state_changed (params $ptr $len, result i32).
    pub(crate) on_state_changed: String,
    /// Body of hc_call_service (params $ptr $len, result i64).
    pub(crate) call_service: String,
    /// Body of hc_teardown (result i32).
    pub(crate) teardown: String,
    /// Extra functions.
    pub(crate) funcs: String,
    /// Memory declaration.
    pub(crate) memory: String,
    /// The ABI section, or none.
    pub(crate) abi_section: Option<&'static str>,
    /// Exports to leave out.
    pub(crate) omit: Vec<&'static str>,
}

impl Default for Guest {
    fn default() -> Self {
        Self {
            imports: String::new(),
            data: String::new(),
            setup: "(i32.const 0)".into(),
            on_state_changed: "(i32.const 0)".into(),
            call_service: "(i64.const 0)".into(),
            teardown: "(i32.const 0)".into(),
            funcs: String::new(),
            memory: "(memory (export \"memory\") 2)".into(),
            abi_section: Some("\\01\\00\\00\\00"),
            omit: Vec::new(),
        }
    }
}

impl Guest {
    /// The module's WAT text.
    pub(crate) fn wat(&self) -> String {
        let export = |name: &str| {
            if self.omit.contains(&name) {
                String::new()
            } else {
                format!("(export \"{name}\")")
            }
        };
        let section = self
            .abi_section
            .map(|bytes| format!("(@custom \"homecore_abi\" \"{bytes}\")"))
            .unwrap_or_default();
        format!(
            r#"(module
  {section}
  {imports}
  {memory}
  (global $bump (mut i32) (i32.const 1024))
  {data}
  (func $alloc {alloc_export} (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.and (i32.add (local.get $size) (i32.const 7)) (i32.const -8))))
    (if (i32.gt_u (global.get $bump) (i32.const 65536)) (then (global.set $bump (i32.const 1024)) (local.set $ptr (i32.const 1024))))
    (local.get $ptr))
  (func {free_export} (param i32 i32))
  (func {setup_export} (param $ptr i32) (param $len i32) (result i32) {setup})
  (func {teardown_export} (result i32) {teardown})
  (func {on_state_changed_export} (param $ptr i32) (param $len i32) (result i32) {on_state_changed})
  (func {call_service_export} (param $ptr i32) (param $len i32) (result i64) {call_service})
  {funcs}
)"#,
            imports = self.imports,
            memory = self.memory,
            data = self.data,
            alloc_export = export("hc_alloc"),
            free_export = export("hc_free"),
            setup_export = export("hc_setup"),
            teardown_export = export("hc_teardown"),
            on_state_changed_export = export("hc_on_state_changed"),
            call_service_export = export("hc_call_service"),
            setup = self.setup,
            teardown = self.teardown,
            on_state_changed = self.on_state_changed,
            call_service = self.call_service,
            funcs = self.funcs,
        )
    }

    /// The module's bytes.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        wat::parse_str(self.wat()).unwrap_or_else(|e| panic!("test WAT is valid: {e}\n{}", self.wat()))
    }
}

/// A wasm manifest for `domain` with these permissions and limits.
pub(crate) fn wasm_manifest(domain: &str, permissions: Value, limits: Value) -> PluginManifest {
    PluginManifest::from_value(json!({
        "domain": domain,
        "name": domain,
        "version": "1.0.0",
        "homecore": {
            "runtime": "wasm",
            "api_version": "^1",
            "module": format!("{domain}.wasm"),
            "permissions": permissions,
            "limits": limits,
        }
    }))
    .expect("valid manifest")
}

pub(crate) fn wasm_spec(domain: &str, permissions: Value, limits: Value, bytes: Vec<u8>) -> PluginSpec {
    PluginSpec::new(wasm_manifest(domain, permissions, limits), PluginSource::Wasm(Arc::from(bytes)))
}

/// A home and a registry with both runtimes.
pub(crate) fn home_with_wasm() -> (Home, PluginRegistry, WasmtimeRuntime) {
    let home = Home::new();
    let wasm = WasmtimeRuntime::new(WasmtimeConfig::default()).expect("engine");
    let registry = PluginRegistry::builder(home.clone()).runtime(Arc::new(wasm.clone())).build();
    (home, registry, wasm)
}
