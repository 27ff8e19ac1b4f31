//! The reference WASM plugin builds for wasm32 and has exactly ABI v1's shape: the version
//! section, imports only from the v1 table, every export with its v1 signature, and a manifest
//! that names the module and matches the native plugin it reproduces.

use std::collections::BTreeMap;

use homecore_abi::v1::{self, FuncSig, ValType};
use homecore_integrations::motion_lights;
use homecore_plugins::{PluginManifest, RuntimeKind};
use homecore_tests::guest;
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// A function signature in the ABI table's terms.
type Sig = (Vec<ValType>, Vec<ValType>);

/// What the tests look at in a module.
#[derive(Default)]
struct ModuleShape {
    /// Custom sections by name (contents concatenated, as a linker would).
    custom: BTreeMap<String, Vec<u8>>,
    /// `(module, name, signature)`; `None` for a non-function import or a signature outside
    /// the ABI's types.
    imports: Vec<(String, String, Option<Sig>)>,
    /// `(name, kind, signature)`, as for imports.
    exports: Vec<(String, ExternalKind, Option<Sig>)>,
}

/// A signature in the ABI's terms; `None` when it uses a type the ABI has no use for.
fn abi_sig(ty: &wasmparser::FuncType) -> Option<Sig> {
    let convert = |types: &[wasmparser::ValType]| {
        types
            .iter()
            .map(|ty| match ty {
                wasmparser::ValType::I32 => Some(ValType::I32),
                wasmparser::ValType::I64 => Some(ValType::I64),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
    };
    Some((convert(ty.params())?, convert(ty.results())?))
}

fn shape(bytes: &[u8]) -> ModuleShape {
    let mut shape = ModuleShape::default();
    let mut types: Vec<wasmparser::FuncType> = Vec::new();
    // The function index space: imported functions first, then the module's own.
    let mut funcs: Vec<u32> = Vec::new();
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.expect("a valid module") {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    types.push(ty.expect("a function type"));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.expect("a valid import");
                    let sig = match import.ty {
                        TypeRef::Func(index) => {
                            funcs.push(index);
                            abi_sig(&types[index as usize])
                        }
                        _ => None,
                    };
                    shape
                        .imports
                        .push((import.module.to_owned(), import.name.to_owned(), sig));
                }
            }
            Payload::FunctionSection(reader) => {
                for index in reader {
                    funcs.push(index.expect("a type index"));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.expect("a valid export");
                    exports.push((export.name.to_owned(), export.kind, export.index));
                }
            }
            Payload::CustomSection(reader) => {
                shape
                    .custom
                    .entry(reader.name().to_owned())
                    .or_default()
                    .extend_from_slice(reader.data());
            }
            _ => {}
        }
    }
    shape.exports = exports
        .into_iter()
        .map(|(name, kind, index)| {
            let sig = match kind {
                ExternalKind::Func => abi_sig(&types[funcs[index as usize] as usize]),
                _ => None,
            };
            (name, kind, sig)
        })
        .collect();
    shape
}

fn sig_of(f: &FuncSig) -> Sig {
    (f.params.to_vec(), f.results.to_vec())
}

#[test]
fn example_module_declares_abi_v1() {
    let shape = shape(guest::example_wasm());
    let section = shape
        .custom
        .get(v1::ABI_SECTION)
        .expect("the homecore_abi section is kept");
    assert_eq!(v1::declared_version(section), Ok(v1::ABI_VERSION));
}

#[test]
fn example_module_imports_only_the_v1_table_with_its_signatures() {
    let shape = shape(guest::example_wasm());
    assert!(!shape.imports.is_empty(), "the plugin calls the host");
    for (module, name, sig) in &shape.imports {
        assert_eq!(
            module,
            v1::IMPORT_MODULE,
            "{module}.{name} is imported from another module"
        );
        let expected = v1::IMPORTS
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} is not an ABI v1 import"));
        assert_eq!(
            sig.as_ref(),
            Some(&sig_of(expected)),
            "signature of import {name}"
        );
    }
}

#[test]
fn example_module_exports_every_v1_export_with_its_signature() {
    let shape = shape(guest::example_wasm());
    let memory = shape
        .exports
        .iter()
        .find(|(name, ..)| name == v1::EXPORT_MEMORY);
    assert!(
        matches!(memory, Some((_, ExternalKind::Memory, None))),
        "memory is exported: {memory:?}",
        memory = memory.map(|(n, k, _)| (n, k))
    );
    // The SDK exports the optional ones too (hc_on_event, hc_on_timer).
    for f in v1::EXPORTS {
        let export = shape.exports.iter().find(|(name, ..)| name == f.name);
        let Some((_, kind, sig)) = export else {
            panic!("{} is not exported", f.name);
        };
        assert_eq!(*kind, ExternalKind::Func, "{} is a function", f.name);
        assert_eq!(
            sig.as_ref(),
            Some(&sig_of(f)),
            "signature of export {}",
            f.name
        );
    }
}

#[test]
fn example_manifest_names_the_module_and_matches_the_native_plugin() {
    let manifest =
        PluginManifest::from_slice(guest::example_manifest().as_bytes()).expect("a valid manifest");
    assert_eq!(manifest.domain, "motion_lights_wasm");
    assert_eq!(manifest.runtime(), RuntimeKind::Wasm);
    let section = manifest.homecore.as_ref().expect("a homecore section");
    assert_eq!(section.module.as_deref(), Some(guest::EXAMPLE_MODULE));
    assert_eq!(
        guest::example_wasm_path()
            .file_name()
            .and_then(|n| n.to_str()),
        Some(guest::EXAMPLE_MODULE),
        "the manifest names the file cargo builds"
    );
    assert_eq!(section.api_version.to_string(), "^1.0");
    assert_eq!(section.limits.memory_bytes, Some(16 << 20));
    assert!(section.limits.fuel_per_call.is_some() && section.limits.call_timeout_ms.is_some());

    let native = PluginManifest::from_slice(motion_lights::MANIFEST.as_bytes()).expect("valid");
    let native = native.homecore.expect("a homecore section");
    assert_eq!(
        section.permissions, native.permissions,
        "the same permissions as the native plugin"
    );
    assert_eq!(
        section.config_schema, native.config_schema,
        "the same configuration schema"
    );
}
