//! Load-time checks: the declared ABI version and sizes (before compiling), then imports and
//! exports.

use homecore_abi::SUPPORTED_VERSIONS;
use homecore_abi::v1::{self, ABI_SECTION, EXPORTS, FuncSig, IMPORT_MODULE, IMPORTS};
use wasmtime::{ExternType, FuncType, Module};

use crate::LoadError;

/// Refuses a module larger than `max_module` bytes or with a function body larger than
/// `max_body` bytes, before anything is compiled. Walks the code section's entry headers only
/// (each body is skipped by its length); runs only when the module is not memoized.
///
/// # Errors
/// [`LoadError::ModuleTooLarge`], [`LoadError::FunctionTooLarge`], or
/// [`LoadError::InvalidModule`] for malformed bytes.
pub(crate) fn check_sizes(
    bytes: &[u8],
    max_module: usize,
    max_body: usize,
) -> Result<(), LoadError> {
    if bytes.len() > max_module {
        return Err(LoadError::ModuleTooLarge {
            size: bytes.len(),
            limit: max_module,
        });
    }
    let mut index = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::InvalidModule {
            reason: format!("malformed or truncated module: {e}"),
        })?;
        if let wasmparser::Payload::CodeSectionEntry(body) = payload {
            let size = body.range().len();
            if size > max_body {
                return Err(LoadError::FunctionTooLarge {
                    index,
                    size,
                    limit: max_body,
                });
            }
            index += 1;
        }
    }
    Ok(())
}

/// The ABI version the module declares in its `homecore_abi` custom section, read by the
/// contract's one reader ([`homecore_abi::module_abi_version`], shared with package
/// verification). Runs before any compilation, so a module for another ABI costs one walk of
/// its section headers; the sections' contents are the compiler's to validate.
///
/// # Errors
/// [`LoadError::InvalidModule`] for malformed bytes or a malformed section,
/// [`LoadError::MissingAbiVersion`], [`LoadError::UnsupportedAbiVersion`].
pub(crate) fn abi_version(bytes: &[u8]) -> Result<u32, LoadError> {
    let found = homecore_abi::module_abi_version(bytes)
        .map_err(|e| LoadError::InvalidModule {
            reason: format!("malformed or truncated module: {e}"),
        })?
        .ok_or(LoadError::MissingAbiVersion {
            section: ABI_SECTION,
        })?;
    if !SUPPORTED_VERSIONS.contains(&found) {
        return Err(LoadError::UnsupportedAbiVersion {
            found,
            supported: SUPPORTED_VERSIONS,
        });
    }
    Ok(found)
}

fn render(params: &[&str], results: &[&str]) -> String {
    format!("({}) -> ({})", params.join(", "), results.join(", "))
}

fn abi_types(types: &[v1::ValType]) -> Vec<&'static str> {
    types
        .iter()
        .map(|t| match t {
            v1::ValType::I32 => "i32",
            v1::ValType::I64 => "i64",
        })
        .collect()
}

fn wasm_types(types: impl Iterator<Item = wasmtime::ValType>) -> Vec<&'static str> {
    types
        .map(|t| match t {
            wasmtime::ValType::I32 => "i32",
            wasmtime::ValType::I64 => "i64",
            wasmtime::ValType::F32 => "f32",
            wasmtime::ValType::F64 => "f64",
            wasmtime::ValType::V128 => "v128",
            wasmtime::ValType::Ref(_) => "ref",
        })
        .collect()
}

fn check_sig(kind: &'static str, sig: &FuncSig, ty: &FuncType) -> Result<(), LoadError> {
    let (want_p, want_r) = (abi_types(sig.params), abi_types(sig.results));
    let (got_p, got_r) = (wasm_types(ty.params()), wasm_types(ty.results()));
    if want_p == got_p && want_r == got_r {
        Ok(())
    } else {
        Err(LoadError::WrongSignature {
            kind,
            name: sig.name.to_owned(),
            expected: render(&want_p, &want_r),
            found: render(&got_p, &got_r),
        })
    }
}

/// Checks every import is an ABI v1 function with its exact signature, and every required
/// export exists with its exact signature.
///
/// # Errors
/// [`LoadError::UnknownImport`], [`LoadError::WrongSignature`] or [`LoadError::MissingExport`],
/// naming the symbol.
pub(crate) fn check_imports_and_exports(module: &Module) -> Result<(), LoadError> {
    for import in module.imports() {
        let unknown = || LoadError::UnknownImport {
            module: import.module().to_owned(),
            name: import.name().to_owned(),
        };
        if import.module() != IMPORT_MODULE {
            return Err(unknown());
        }
        let sig = IMPORTS
            .iter()
            .find(|f| f.name == import.name())
            .ok_or_else(unknown)?;
        match import.ty() {
            ExternType::Func(ty) => check_sig("import", sig, &ty)?,
            _ => return Err(unknown()),
        }
    }
    match module.get_export(v1::EXPORT_MEMORY) {
        Some(ExternType::Memory(_)) => {}
        _ => {
            return Err(LoadError::MissingExport {
                name: v1::EXPORT_MEMORY,
            });
        }
    }
    for sig in EXPORTS {
        match module.get_export(sig.name) {
            Some(ExternType::Func(ty)) => check_sig("export", sig, &ty)?,
            Some(_) => {
                return Err(LoadError::WrongSignature {
                    kind: "export",
                    name: sig.name.to_owned(),
                    expected: render(&abi_types(sig.params), &abi_types(sig.results)),
                    found: "not a function".to_owned(),
                });
            }
            None if sig.required => return Err(LoadError::MissingExport { name: sig.name }),
            None => {}
        }
    }
    Ok(())
}
