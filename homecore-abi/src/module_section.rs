//! The ABI version a module declares, read from its section headers without compiling it.
//!
//! This is the one reader of the [`ABI_SECTION`](crate::v1::ABI_SECTION) custom section: the
//! package verifier and the runtime's load check both call [`module_abi_version`]
//! (docs/adr/0014-contract-in-homecore-abi.md).

use core::fmt;

use crate::v1::{self, ABI_SECTION, SectionError};

/// The WebAssembly magic number.
const MAGIC: &[u8; 4] = b"\0asm";

/// The binary version of a core module (a component has another).
const CORE_VERSION: &[u8; 4] = &[1, 0, 0, 0];

/// Id of a custom section.
const CUSTOM_SECTION: u8 = 0;

/// Why the ABI version could not be read from a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AbiSectionError {
    /// The bytes do not start with the WebAssembly magic number.
    NoMagic,
    /// Not a core module of binary version 1 (a component, or a future binary format).
    NotCoreModule,
    /// A section's size is not an unsigned LEB128 `u32`.
    BadSectionSize {
        /// Byte offset of the section's id.
        offset: usize,
    },
    /// A section runs past the end of the module.
    SectionPastEnd {
        /// Byte offset of the section's id.
        offset: usize,
        /// The section's id.
        id: u8,
    },
    /// A custom section's name length is not an unsigned LEB128 `u32`, or the name runs past
    /// its section.
    BadCustomName {
        /// Byte offset of the section's id.
        offset: usize,
    },
    /// A custom section's name is not UTF-8.
    CustomNameNotUtf8 {
        /// Byte offset of the section's id.
        offset: usize,
    },
    /// An [`ABI_SECTION`] is malformed.
    Content {
        /// Byte offset of the section's id.
        offset: usize,
        /// What is wrong with it.
        error: SectionError,
    },
    /// Two [`ABI_SECTION`]s declare different versions.
    Conflicting {
        /// The version declared first.
        first: u32,
        /// A different one.
        other: u32,
    },
}

impl fmt::Display for AbiSectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoMagic => f.write_str("no WebAssembly magic number"),
            Self::NotCoreModule => f.write_str("not a WebAssembly core module, version 1"),
            Self::BadSectionSize { offset } => write!(f, "bad section size at byte {offset}"),
            Self::SectionPastEnd { offset, id } => write!(
                f,
                "section {id} at byte {offset} runs past the end of the module"
            ),
            Self::BadCustomName { offset } => {
                write!(f, "bad custom section name at byte {offset}")
            }
            Self::CustomNameNotUtf8 { offset } => {
                write!(f, "custom section name at byte {offset} is not UTF-8")
            }
            Self::Content { offset, error } => {
                write!(f, "custom section {ABI_SECTION} at byte {offset}: {error}")
            }
            Self::Conflicting { first, other } => write!(
                f,
                "custom section {ABI_SECTION} appears twice with different versions ({first} and {other})"
            ),
        }
    }
}

impl core::error::Error for AbiSectionError {}

/// Reads an unsigned LEB128 `u32` at `*at`, advancing it. Refuses encodings longer than five
/// bytes and a fifth byte with bits beyond 32 (as the WebAssembly spec does).
fn leb_u32(bytes: &[u8], at: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        let low = u32::from(byte & 0x7f);
        if shift == 28 && byte & 0xf0 != 0 {
            return None;
        }
        value |= low << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The ABI version a module declares in its [`ABI_SECTION`] custom sections: `Ok(None)` when it
/// has none.
///
/// Only section headers are read (no compilation, no validation of code): each section's id
/// and size are bounds-checked and the section skipped whole unless it is a custom section.
/// Every [`ABI_SECTION`] is read with [`v1::declared_version`]; all of them must agree (a
/// linker may concatenate copies).
///
/// # Errors
/// An [`AbiSectionError`] naming what is malformed and where.
///
/// ```
/// use homecore_abi::{AbiSectionError, module_abi_version};
/// let mut module = b"\0asm\x01\0\0\0\x00\x11\x0chomecore_abi".to_vec();
/// module.extend(1u32.to_le_bytes());
/// assert_eq!(module_abi_version(&module), Ok(Some(1)));
/// assert_eq!(module_abi_version(b"\0asm\x01\0\0\0"), Ok(None));
/// assert_eq!(module_abi_version(b"\x7fELF"), Err(AbiSectionError::NoMagic));
/// ```
pub fn module_abi_version(module: &[u8]) -> Result<Option<u32>, AbiSectionError> {
    if module.get(..4) != Some(MAGIC) {
        return Err(AbiSectionError::NoMagic);
    }
    if module.get(4..8) != Some(CORE_VERSION) {
        return Err(AbiSectionError::NotCoreModule);
    }
    let mut at = 8;
    let mut declared: Option<u32> = None;
    while let Some(&id) = module.get(at) {
        let offset = at;
        at += 1;
        let size = leb_u32(module, &mut at).ok_or(AbiSectionError::BadSectionSize { offset })?;
        let section = usize::try_from(size)
            .ok()
            .and_then(|size| at.checked_add(size))
            .and_then(|end| module.get(at..end))
            .ok_or(AbiSectionError::SectionPastEnd { offset, id })?;
        at += section.len();
        if id != CUSTOM_SECTION {
            continue;
        }
        let mut pos = 0;
        let name = leb_u32(section, &mut pos)
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| pos.checked_add(len))
            .and_then(|end| section.get(pos..end).map(|name| (name, end)));
        let Some((name, name_end)) = name else {
            return Err(AbiSectionError::BadCustomName { offset });
        };
        let name = core::str::from_utf8(name)
            .map_err(|_| AbiSectionError::CustomNameNotUtf8 { offset })?;
        if name != ABI_SECTION {
            continue;
        }
        let content = section.get(name_end..).unwrap_or_default();
        let version = v1::declared_version(content)
            .map_err(|error| AbiSectionError::Content { offset, error })?;
        match declared {
            Some(first) if first != version => {
                return Err(AbiSectionError::Conflicting {
                    first,
                    other: version,
                });
            }
            _ => declared = Some(version),
        }
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;

    /// A module with the given sections (id, body) and nothing else.
    fn module(sections: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        for (id, body) in sections {
            out.push(*id);
            out.push(u8::try_from(body.len()).expect("short"));
            out.extend(body);
        }
        out
    }

    /// A custom section body: name, then content.
    fn custom(name: &str, content: &[u8]) -> (u8, Vec<u8>) {
        let mut body = vec![u8::try_from(name.len()).expect("short")];
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(content);
        (0, body)
    }

    #[test]
    fn the_version_is_read_among_other_sections() {
        let m = module(&[
            (1, vec![0]),
            custom("name", b"xx"),
            custom(ABI_SECTION, &[1, 0, 0, 0, 1, 0, 0, 0]),
            (10, vec![0]),
            custom(ABI_SECTION, &[1, 0, 0, 0]),
        ]);
        assert_eq!(module_abi_version(&m), Ok(Some(1)));
        assert_eq!(module_abi_version(&module(&[(1, vec![0])])), Ok(None));
        // Any version is reported: whether it is served is the host's decision.
        let v7 = module(&[custom(ABI_SECTION, &7u32.to_le_bytes())]);
        assert_eq!(module_abi_version(&v7), Ok(Some(7)));
    }

    #[test]
    fn every_malformation_has_its_own_error() {
        let cases: [(Vec<u8>, AbiSectionError); 10] = [
            (b"".to_vec(), AbiSectionError::NoMagic),
            (b"\x7fELF\x01\0\0\0".to_vec(), AbiSectionError::NoMagic),
            (b"\0asm".to_vec(), AbiSectionError::NotCoreModule),
            (
                b"\0asm\x0d\0\x01\0".to_vec(),
                AbiSectionError::NotCoreModule,
            ),
            (
                b"\0asm\x01\0\0\0\x00\x7f".to_vec(),
                AbiSectionError::SectionPastEnd { offset: 8, id: 0 },
            ),
            (
                b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\xff".to_vec(),
                AbiSectionError::BadSectionSize { offset: 8 },
            ),
            (
                b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\x1f".to_vec(),
                AbiSectionError::BadSectionSize { offset: 8 },
            ),
            (
                b"\0asm\x01\0\0\0\x00\x02\x05a".to_vec(),
                AbiSectionError::BadCustomName { offset: 8 },
            ),
            (
                module(&[(0, vec![1, 0xff])]),
                AbiSectionError::CustomNameNotUtf8 { offset: 8 },
            ),
            (
                module(&[custom(ABI_SECTION, &[1, 0, 0])]),
                AbiSectionError::Content {
                    offset: 8,
                    error: SectionError::Malformed { len: 3 },
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(module_abi_version(&bytes), Err(expected), "{bytes:?}");
        }
        let mixed = module(&[
            custom(ABI_SECTION, &1u32.to_le_bytes()),
            custom(ABI_SECTION, &2u32.to_le_bytes()),
        ]);
        assert_eq!(
            module_abi_version(&mixed),
            Err(AbiSectionError::Conflicting { first: 1, other: 2 })
        );
        let within = module(&[custom(ABI_SECTION, &[1, 0, 0, 0, 2, 0, 0, 0])]);
        assert!(matches!(
            module_abi_version(&within),
            Err(AbiSectionError::Content {
                error: SectionError::Mixed { first: 1, other: 2 },
                ..
            })
        ));
    }

    #[test]
    fn a_five_byte_leb_with_all_32_bits_is_read() {
        // 0xffff_ffff bytes cannot follow, so the section runs past the end: the size was read.
        assert_eq!(
            module_abi_version(b"\0asm\x01\0\0\0\x00\xff\xff\xff\xff\x0f"),
            Err(AbiSectionError::SectionPastEnd { offset: 8, id: 0 })
        );
    }
}
