//! The package format: file names, the detached signature file, and the signed digest
//! (docs/adr/0008-signed-packages.md).
//!
//! The signature covers a domain-separated SHA-256 transcript of everything the host reads
//! from a package:
//!
//! ```text
//! digest  = SHA-256( "homecore-package-v1\0"
//!                    || u64le(len manifest) || manifest bytes (exactly as on disk)
//!                    || module SHA-256 (32 bytes) || u64le(module size)
//!                    || u64le(len domain) || domain
//!                    || u64le(len version) || version (canonical semver text)
//!                    || u64le(len module file name) || module file name )
//! message = "homecore-package-v1\0" || digest          (what Ed25519 signs)
//! ```

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::key::cap;
use crate::{KeyId, PublicKey};

/// The manifest's file name inside a package directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The detached signature's file name inside a package directory.
pub const SIGNATURE_FILE: &str = "signature.json";

/// The `format` value of a version-1 signature file.
pub const SIGNATURE_FORMAT: &str = "homecore-package-signature-v1";

/// The only signature algorithm of format version 1.
pub const SIGNATURE_ALGORITHM: &str = "ed25519";

/// Domain separation tag: starts the digest transcript and the signed message.
pub const DIGEST_CONTEXT: &[u8] = b"homecore-package-v1\0";

/// Why a signature file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Not JSON, or not the expected fields (unknown fields are refused).
    #[error("signature file is not valid: {reason}")]
    Syntax {
        /// What serde reported.
        reason: String,
    },
    /// A `format` this host does not read.
    #[error("signature file format {found:?} is not supported (expected {SIGNATURE_FORMAT:?})")]
    UnsupportedFormat {
        /// The format found (capped).
        found: String,
    },
    /// An algorithm other than Ed25519.
    #[error("signature algorithm {found:?} is not supported (expected {SIGNATURE_ALGORITHM:?})")]
    UnsupportedAlgorithm {
        /// The algorithm found (capped).
        found: String,
    },
    /// The signature is not base64 of 64 bytes.
    #[error("signature is not base64 of 64 bytes")]
    SignatureEncoding,
    /// The file's `key_id` is not the id of its `public_key`.
    #[error("signature file names key {key_id} but carries the public key of {actual}")]
    KeyIdMismatch {
        /// The id written.
        key_id: KeyId,
        /// The id of the key written.
        actual: KeyId,
    },
}

/// A SHA-256 value, shown as 64 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Hash(pub [u8; 32]);

impl Sha256Hash {
    /// The SHA-256 of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The signature file (`signature.json`) as written on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFileRepr {
    format: String,
    algorithm: String,
    key_id: KeyId,
    public_key: PublicKey,
    signature: String,
}

/// A parsed detached signature: which key signed, and the signature.
///
/// The embedded public key is informational (it lets `inspect` check the signature without a
/// trust policy); verification under a [`crate::TrustPolicy`] uses the operator's copy of the
/// key, found by [`key_id`](Self::key_id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachedSignature {
    /// The signing key's id.
    pub key_id: KeyId,
    /// The signing key, as the signer wrote it.
    pub public_key: PublicKey,
    /// The Ed25519 signature over [`signed_message`].
    pub signature: Signature,
}

impl DetachedSignature {
    /// Parses a signature file.
    ///
    /// # Errors
    /// A [`FormatError`] naming what is wrong.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, FormatError> {
        let repr: SignatureFileRepr =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Syntax {
                reason: cap(&e.to_string()),
            })?;
        if repr.format != SIGNATURE_FORMAT {
            return Err(FormatError::UnsupportedFormat {
                found: cap(&repr.format),
            });
        }
        if repr.algorithm != SIGNATURE_ALGORITHM {
            return Err(FormatError::UnsupportedAlgorithm {
                found: cap(&repr.algorithm),
            });
        }
        let actual = repr.public_key.id();
        if actual != repr.key_id {
            return Err(FormatError::KeyIdMismatch {
                key_id: repr.key_id,
                actual,
            });
        }
        let bytes: [u8; 64] = STANDARD
            .decode(repr.signature.as_bytes())
            .map_err(|_| FormatError::SignatureEncoding)?
            .try_into()
            .map_err(|_| FormatError::SignatureEncoding)?;
        Ok(Self {
            key_id: repr.key_id,
            public_key: repr.public_key,
            signature: Signature::from_bytes(&bytes),
        })
    }

    /// The signature file's text (pretty JSON, newline-terminated).
    #[must_use]
    pub fn to_json(&self) -> String {
        let repr = SignatureFileRepr {
            format: SIGNATURE_FORMAT.to_owned(),
            algorithm: SIGNATURE_ALGORITHM.to_owned(),
            key_id: self.key_id,
            public_key: self.public_key,
            signature: STANDARD.encode(self.signature.to_bytes()),
        };
        let mut text = serde_json::to_string_pretty(&repr)
            .expect("a signature file serializes: string fields only");
        text.push('\n');
        text
    }
}

/// What the signature binds together.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    /// The manifest, exactly as on disk.
    pub manifest: &'a [u8],
    /// The module's SHA-256.
    pub module_sha256: &'a Sha256Hash,
    /// The module's size in bytes.
    pub module_size: u64,
    /// The plugin's domain.
    pub domain: &'a str,
    /// The plugin's version.
    pub version: &'a semver::Version,
    /// The module's file name in the package.
    pub module_name: &'a str,
}

fn put(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

impl DigestInput<'_> {
    /// The package digest (see the module docs for the transcript).
    #[must_use]
    pub fn digest(&self) -> Sha256Hash {
        let mut h = Sha256::new();
        h.update(DIGEST_CONTEXT);
        put(&mut h, self.manifest);
        h.update(self.module_sha256.0);
        h.update(self.module_size.to_le_bytes());
        put(&mut h, self.domain.as_bytes());
        put(&mut h, self.version.to_string().as_bytes());
        put(&mut h, self.module_name.as_bytes());
        Sha256Hash(h.finalize().into())
    }
}

/// The message Ed25519 signs: [`DIGEST_CONTEXT`] followed by the package digest.
#[must_use]
pub fn signed_message(digest: &Sha256Hash) -> [u8; DIGEST_CONTEXT.len() + 32] {
    let mut message = [0; DIGEST_CONTEXT.len() + 32];
    message[..DIGEST_CONTEXT.len()].copy_from_slice(DIGEST_CONTEXT);
    message[DIGEST_CONTEXT.len()..].copy_from_slice(&digest.0);
    message
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn sample() -> DetachedSignature {
        let key = SigningKey::from_bytes(&[3; 32]);
        let public = PublicKey::from(key.verifying_key());
        DetachedSignature {
            key_id: public.id(),
            public_key: public,
            signature: key.sign(b"x"),
        }
    }

    #[test]
    fn signature_files_round_trip() {
        let sig = sample();
        assert_eq!(
            DetachedSignature::from_slice(sig.to_json().as_bytes()).expect("parses"),
            sig
        );
    }

    #[test]
    fn malformed_signature_files_are_refused_with_the_reason() {
        let good: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("json");
        let with = |key: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[key] = value;
            DetachedSignature::from_slice(v.to_string().as_bytes())
        };
        assert!(matches!(
            DetachedSignature::from_slice(b"not json"),
            Err(FormatError::Syntax { .. })
        ));
        assert!(matches!(
            with("extra", "x".into()),
            Err(FormatError::Syntax { .. })
        ));
        assert!(matches!(
            with("format", "v2".into()),
            Err(FormatError::UnsupportedFormat { .. })
        ));
        assert!(matches!(
            with("algorithm", "rsa".into()),
            Err(FormatError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            with("signature", "AAAA".into()),
            Err(FormatError::SignatureEncoding)
        ));
        assert!(matches!(
            with("key_id", "0000000000000000".into()),
            Err(FormatError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn every_digest_input_changes_the_digest() {
        let hash = Sha256Hash::of(b"module");
        let other_hash = Sha256Hash::of(b"other");
        let v1 = semver::Version::new(1, 0, 0);
        let v2 = semver::Version::new(1, 0, 1);
        let base = DigestInput {
            manifest: b"{}",
            module_sha256: &hash,
            module_size: 6,
            domain: "a",
            version: &v1,
            module_name: "plugin.wasm",
        };
        let variants = [
            DigestInput {
                manifest: b"{ }",
                ..base
            },
            DigestInput {
                module_sha256: &other_hash,
                ..base
            },
            DigestInput {
                module_size: 7,
                ..base
            },
            DigestInput {
                domain: "b",
                ..base
            },
            DigestInput {
                version: &v2,
                ..base
            },
            DigestInput {
                module_name: "other.wasm",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.digest(), base.digest());
        }
        // Length prefixes: moving bytes between adjacent fields changes the digest.
        let shifted = DigestInput {
            domain: "ab",
            module_name: "lugin.wasm",
            ..base
        };
        assert_ne!(shifted.digest(), base.digest());
    }
}
