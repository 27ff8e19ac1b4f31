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

/// The ABI version the module declares in its `homecore_abi` custom section. Runs before any
/// compilation, so a module for another ABI costs one parse of its section headers: the code
/// section is skipped whole (its function bodies are the compiler's to validate), never
/// walked entry by entry.
///
/// # Errors
/// [`LoadError::InvalidModule`] for malformed bytes or a malformed section,
/// [`LoadError::MissingAbiVersion`], [`LoadError::UnsupportedAbiVersion`].
pub(crate) fn abi_version(bytes: &[u8]) -> Result<u32, LoadError> {
    let malformed = |reason: String| LoadError::InvalidModule {
        reason: format!("malformed or truncated module: {reason}"),
    };
    let mut declared: Option<u32> = None;
    let mut parser = wasmparser::Parser::new(0);
    let mut rest = bytes;
    loop {
        let (consumed, payload) = match parser.parse(rest, true) {
            Ok(wasmparser::Chunk::Parsed { consumed, payload }) => (consumed, payload),
            // With `eof` set the parser never asks for more data; treat it as truncation.
            Ok(wasmparser::Chunk::NeedMoreData(_)) => {
                return Err(malformed("unexpected end of module".to_owned()));
            }
            Err(e) => return Err(malformed(e.to_string())),
        };
        rest = rest
            .get(consumed..)
            .ok_or_else(|| malformed("unexpected end of module".to_owned()))?;
        match payload {
            wasmparser::Payload::End(_) => break,
            wasmparser::Payload::CodeSectionStart { size, .. } => {
                parser.skip_section();
                rest = usize::try_from(size)
                    .ok()
                    .and_then(|size| rest.get(size..))
                    .ok_or_else(|| malformed("code section runs past the end".to_owned()))?;
            }
            wasmparser::Payload::CustomSection(section) => {
                if section.name() != ABI_SECTION {
                    continue;
                }
                let version =
                    v1::declared_version(section.data()).map_err(|e| LoadError::InvalidModule {
                        reason: format!("custom section {ABI_SECTION}: {e}"),
                    })?;
                if declared.is_some_and(|d| d != version) {
                    return Err(LoadError::InvalidModule {
                        reason: format!(
                            "custom section {ABI_SECTION} appears twice with different versions"
                        ),
                    });
                }
                declared = Some(version);
            }
            _ => {}
        }
    }
    let found = declared.ok_or(LoadError::MissingAbiVersion {
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
