//! The single-file bundle: a package directory's three files in one `<domain>.hcpkg` file,
//! signed exactly like the directory (the signature covers the same digest, so packing and
//! unpacking never re-sign).
//!
//! ```text
//! "HCPKG\0" u8(1)
//! u32le len, manifest bytes
//! u32le len, module file name
//! u64le len, module bytes
//! u32le len, signature file bytes (0: unsigned)
//! ```
//! Nothing may follow the last field.

use std::path::Path;

use crate::format::SIGNATURE_FILE;
use crate::read::{PluginsDir, ReadError, check_file_name, read_capped};
use crate::{PackageError, PackageFiles, PackageLimits};

/// A bundle's file name extension.
pub const BUNDLE_EXTENSION: &str = "hcpkg";

/// A bundle's first bytes: magic and format version 1.
const BUNDLE_MAGIC: &[u8; 7] = b"HCPKG\0\x01";

/// Largest module file name in a bundle, bytes.
const MAX_NAME_BYTES: u64 = 255;

/// Why a bundle's layout is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not a bundle, or a format version this host does not read.
    #[error("not a HomeCore package bundle (format 1)")]
    BadMagic,
    /// A field runs past the end of the file.
    #[error("bundle is truncated in its {field}")]
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// A field is larger than its cap.
    #[error("bundle {field} is {len} bytes, over the {max}-byte limit")]
    FieldTooLarge {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Bytes after the last field.
    #[error("bundle has {extra} bytes after its last field")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The module file name is not UTF-8.
    #[error("bundle's module file name is not UTF-8")]
    NameEncoding,
}

/// The largest bundle the limits allow: the three caps, the name cap and the header.
fn max_bundle_bytes(limits: &PackageLimits) -> u64 {
    limits
        .manifest_bytes
        .saturating_add(limits.module_bytes)
        .saturating_add(limits.signature_bytes)
        .saturating_add(MAX_NAME_BYTES)
        .saturating_add(BUNDLE_MAGIC.len() as u64 + 4 + 4 + 8 + 4)
}

/// A cursor over the bundle's bytes.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn take(&mut self, field: &'static str, len: u64, max: u64) -> Result<&'a [u8], BundleError> {
        if len > max {
            return Err(BundleError::FieldTooLarge { field, len, max });
        }
        let len = usize::try_from(len).map_err(|_| BundleError::Truncated { field })?;
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(BundleError::Truncated { field })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self, field: &'static str) -> Result<u64, BundleError> {
        let b = self.take(field, 4, 4)?;
        Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, BundleError> {
        let b = self.take(field, 8, 8)?;
        let mut n = [0; 8];
        n.copy_from_slice(b);
        Ok(u64::from_le_bytes(n))
    }

    fn field32(&mut self, field: &'static str, max: u64) -> Result<&'a [u8], BundleError> {
        let len = self.u32(field)?;
        self.take(field, len, max)
    }
}

/// The parts of a bundle.
pub(crate) struct BundleParts<'a> {
    pub(crate) manifest: &'a [u8],
    pub(crate) module_name: &'a str,
    pub(crate) module: &'a [u8],
    pub(crate) signature: Option<&'a [u8]>,
}

/// Splits a bundle into its parts, each within its cap.
pub(crate) fn parse<'a>(
    bytes: &'a [u8],
    limits: &PackageLimits,
) -> Result<BundleParts<'a>, BundleError> {
    if bytes.get(..BUNDLE_MAGIC.len()) != Some(BUNDLE_MAGIC.as_slice()) {
        return Err(BundleError::BadMagic);
    }
    let mut f = Fields {
        bytes,
        at: BUNDLE_MAGIC.len(),
    };
    let manifest = f.field32("manifest", limits.manifest_bytes)?;
    let name = f.field32("module name", MAX_NAME_BYTES)?;
    let module_name = std::str::from_utf8(name).map_err(|_| BundleError::NameEncoding)?;
    let module_len = f.u64("module")?;
    let module = f.take("module", module_len, limits.module_bytes)?;
    let signature = f.field32("signature", limits.signature_bytes)?;
    if f.at != bytes.len() {
        return Err(BundleError::TrailingBytes {
            extra: bytes.len() - f.at,
        });
    }
    Ok(BundleParts {
        manifest,
        module_name,
        module,
        signature: (!signature.is_empty()).then_some(signature),
    })
}

/// Builds a bundle from its parts.
fn encode(parts: &BundleParts<'_>) -> Vec<u8> {
    let signature = parts.signature.unwrap_or_default();
    let mut out = Vec::with_capacity(
        BUNDLE_MAGIC.len() + 20 + parts.manifest.len() + parts.module.len() + signature.len(),
    );
    out.extend_from_slice(BUNDLE_MAGIC);
    for (bytes, wide) in [
        (parts.manifest, false),
        (parts.module_name.as_bytes(), false),
        (parts.module, true),
        (signature, false),
    ] {
        if wide {
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        } else {
            let len = u32::try_from(bytes.len()).expect("capped fields are far below 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(bytes);
    }
    out
}

/// Reads the bundle file `name` in an open plugins directory (once, within the limits,
/// relative to its handle, without following a link) as package files.
pub(crate) fn read_in(
    plugins: &PluginsDir,
    name: &std::ffi::OsStr,
    limits: &PackageLimits,
) -> Result<PackageFiles, PackageError> {
    let path = plugins.path().join(name);
    let Some(name) = name.to_str() else {
        return Err(PackageError::Read(ReadError::BadFileName {
            name: path.display().to_string(),
            why: "not a bundle file name",
        }));
    };
    let bytes = plugins
        .read_file(name, max_bundle_bytes(limits))?
        .ok_or_else(|| ReadError::Missing { path: path.clone() })?;
    let path = path.as_path();
    let parts = parse(&bytes, limits).map_err(|source| PackageError::Bundle {
        path: path.to_owned(),
        source,
    })?;
    check_file_name(parts.module_name)?;
    PackageFiles::assemble(
        path,
        parts.manifest,
        Some(parts.module_name),
        parts.signature,
        parts.module,
    )
}

/// Packs a package directory (read as discovery reads it) into one bundle's bytes, keeping
/// its signature.
pub(crate) fn pack(
    dir: &Path,
    limits: &PackageLimits,
) -> Result<(PackageFiles, Vec<u8>), PackageError> {
    let files = PackageFiles::read(dir, limits)?;
    // The signature file is carried byte for byte (already validated by the read above).
    let signature = read_capped(dir, SIGNATURE_FILE, limits.signature_bytes)?;
    let bytes = encode(&BundleParts {
        manifest: &files.manifest_bytes,
        module_name: &files.module_name,
        module: &files.module,
        signature: signature.as_deref(),
    });
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Vec<u8> {
        encode(&BundleParts {
            manifest: b"{}",
            module_name: "plugin.wasm",
            module: b"\0asm",
            signature: Some(b"sig"),
        })
    }

    #[test]
    fn bundles_round_trip() {
        let bytes = parts();
        let p = parse(&bytes, &PackageLimits::default()).expect("parses");
        assert_eq!(p.manifest, b"{}");
        assert_eq!(p.module_name, "plugin.wasm");
        assert_eq!(p.module, b"\0asm");
        assert_eq!(p.signature, Some(b"sig".as_slice()));
    }

    #[test]
    fn malformed_bundles_are_refused_with_the_field() {
        let limits = PackageLimits::default();
        let good = parts();
        assert!(matches!(
            parse(b"PK\x03\x04", &limits),
            Err(BundleError::BadMagic)
        ));
        for cut in [BUNDLE_MAGIC.len() + 2, good.len() - 1] {
            assert!(
                matches!(
                    parse(&good[..cut], &limits),
                    Err(BundleError::Truncated { .. })
                ),
                "{cut}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            parse(&trailing, &limits).err(),
            Some(BundleError::TrailingBytes { extra: 1 })
        );
        let small = PackageLimits {
            module_bytes: 3,
            ..limits
        };
        assert_eq!(
            parse(&good, &small).err(),
            Some(BundleError::FieldTooLarge {
                field: "module",
                len: 4,
                max: 3
            })
        );
        // A huge declared length is refused by its cap, not by trying to allocate it.
        let mut huge = BUNDLE_MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse(&huge, &limits),
            Err(BundleError::FieldTooLarge {
                field: "manifest",
                ..
            })
        ));
    }
}
