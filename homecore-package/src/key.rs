//! Publisher keys: Ed25519 key pairs as text files, and the short key id that names them.
//!
//! - Public key: `ed25519:<base64 of the 32-byte key>` — one line, pasted as is into the
//!   server's `[trust]` table.
//! - Private key: `ed25519-secret:<base64 of the 32-byte seed>`, in a file created with mode
//!   0600 (never overwritten); loading refuses a file that group or others may read.
//! - [`KeyId`]: the first 8 bytes of SHA-256 of the public key, as 16 lower-case hex digits.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Prefix of a public key's text form.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// Prefix of a private key file's content.
pub const SECRET_KEY_PREFIX: &str = "ed25519-secret:";

/// Largest key file read, in bytes (a key file is under 100 bytes).
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Longest key name accepted by [`crate::keygen`].
pub const MAX_KEY_NAME_LEN: usize = 64;

/// Why a key or key file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A public key's text is not `ed25519:<base64 of 32 bytes>`.
    #[error("public key {text:?} is not `ed25519:<base64 of 32 bytes>`")]
    PublicKeySyntax {
        /// The text given (capped at 100 characters).
        text: String,
    },
    /// The 32 bytes are not a valid Ed25519 point (or are a weak key).
    #[error("public key {text:?} is not a valid Ed25519 key")]
    InvalidPublicKey {
        /// The text given (capped).
        text: String,
    },
    /// A key id is not 16 lower-case hex digits.
    #[error("key id {text:?} is not 16 lower-case hex digits")]
    KeyIdSyntax {
        /// The text given (capped).
        text: String,
    },
    /// A private key file's content is not `ed25519-secret:<base64 of 32 bytes>`.
    #[error("{path} is not a HomeCore private key (`ed25519-secret:<base64 of 32 bytes>`)")]
    SecretKeySyntax {
        /// The file.
        path: PathBuf,
    },
    /// A private key file that group or others may read or write.
    #[error(
        "private key {path} has mode {mode:04o}; it must not be accessible by group or others (chmod 600)"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key name unusable as a file name.
    #[error(
        "key name {name:?} must be 1 to {MAX_KEY_NAME_LEN} characters of [A-Za-z0-9_.-], not starting with '.' or '-'"
    )]
    BadName {
        /// The name given (capped).
        name: String,
    },
    /// A key file already exists; keygen never overwrites.
    #[error("{path} already exists; keygen never overwrites a key")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A key file is larger than any key file.
    #[error("{path} is larger than {max} bytes; not a key file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// Reading or writing a key file failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done (`read`, `create`, `write`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// Caps text from outside before it goes into an error message (100 bytes, the workspace's
/// one rule: `homecore_abi::text`).
pub(crate) fn cap(text: &str) -> String {
    homecore_abi::text::quoted(text, 100)
}

/// A short fingerprint of a public key: the first 8 bytes of its SHA-256, as 16 hex digits.
///
/// Signature files name their key by id, and the trust policy revokes keys by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id of `key`.
    #[must_use]
    pub fn of(key: &VerifyingKey) -> Self {
        let hash = Sha256::digest(key.as_bytes());
        let mut id = [0; 8];
        id.copy_from_slice(&hash[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for KeyId {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || KeyError::KeyIdSyntax { text: cap(text) };
        if text.len() != 16 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad());
        }
        let mut id = [0; 8];
        hex::decode_to_slice(text, &mut id).map_err(|_| bad())?;
        Ok(Self(id))
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A publisher's Ed25519 public key, written `ed25519:<base64>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    /// Its [`KeyId`].
    #[must_use]
    pub fn id(&self) -> KeyId {
        KeyId::of(&self.0)
    }
}

impl From<VerifyingKey> for PublicKey {
    fn from(key: VerifyingKey) -> Self {
        Self(key)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PUBLIC_KEY_PREFIX}{}",
            STANDARD.encode(self.0.as_bytes())
        )
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || KeyError::PublicKeySyntax { text: cap(text) };
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or_else(syntax)?;
        let bytes: [u8; 32] = STANDARD
            .decode(b64)
            .map_err(|_| syntax())?
            .try_into()
            .map_err(|_| syntax())?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| KeyError::InvalidPublicKey { text: cap(text) })?;
        if key.is_weak() {
            return Err(KeyError::InvalidPublicKey { text: cap(text) });
        }
        Ok(Self(key))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks a key name: 1 to [`MAX_KEY_NAME_LEN`] characters of `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`.
pub(crate) fn check_key_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_NAME_LEN
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::BadName { name: cap(name) })
    }
}

/// Creates `path` with `mode`, failing if it exists, and writes `content`.
fn create_new(path: &Path, mode: u32, content: &str) -> Result<(), KeyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::Exists {
                path: path.to_owned(),
            },
            _ => KeyError::Io {
                action: "create",
                path: path.to_owned(),
                source,
            },
        })?;
    file.write_all(content.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        })
}

/// The paths keygen writes for `name` in `dir`: `<name>.key` and `<name>.pub`.
#[must_use]
pub fn key_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Generates a key pair and writes `<name>.key` (mode 0600) and `<name>.pub` in `dir`.
/// Neither file may exist; the private key is created exclusively with its final mode, so
/// it is never readable by others, even for an instant.
pub(crate) fn generate_files(
    dir: &Path,
    name: &str,
) -> Result<(PublicKey, PathBuf, PathBuf), KeyError> {
    check_key_name(name)?;
    let (secret_path, public_path) = key_paths(dir, name);
    if public_path.exists() {
        return Err(KeyError::Exists { path: public_path });
    }
    let signing = SigningKey::generate(&mut rand_core::OsRng);
    let public = PublicKey(signing.verifying_key());
    let secret = zeroize_string(format!(
        "{SECRET_KEY_PREFIX}{}\n",
        STANDARD.encode(signing.to_bytes())
    ));
    create_new(&secret_path, 0o600, &secret.0)?;
    create_new(&public_path, 0o644, &format!("{public}\n"))?;
    Ok((public, secret_path, public_path))
}

/// A string wiped from memory when dropped.
struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        // Best-effort wipe without unsafe: overwrite the bytes in place (same length, so no
        // reallocation) before the buffer is freed.
        let len = self.0.len();
        self.0.clear();
        self.0.extend(std::iter::repeat_n('\0', len));
        std::hint::black_box(&self.0);
    }
}

fn zeroize_string(s: String) -> Secret {
    Secret(s)
}

/// Reads a small file, refusing anything over [`MAX_KEY_FILE_BYTES`].
fn read_small(file: &mut File, path: &Path) -> Result<Secret, KeyError> {
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|source| KeyError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
    let text = Secret(text);
    if text.0.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            max: MAX_KEY_FILE_BYTES,
        });
    }
    Ok(text)
}

/// Loads a private key file written by [`crate::keygen`].
///
/// # Errors
/// [`KeyError::InsecurePermissions`] when group or others may access it,
/// [`KeyError::SecretKeySyntax`], [`KeyError::TooLarge`], [`KeyError::Io`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |source| KeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = read_small(&mut file, path)?;
    let syntax = || KeyError::SecretKeySyntax {
        path: path.to_owned(),
    };
    let b64 = text
        .0
        .trim()
        .strip_prefix(SECRET_KEY_PREFIX)
        .ok_or_else(syntax)?;
    let mut bytes = STANDARD.decode(b64).map_err(|_| syntax())?;
    let seed: Result<[u8; 32], _> = bytes.as_slice().try_into();
    bytes.fill(0);
    Ok(SigningKey::from_bytes(&seed.map_err(|_| syntax())?))
}

/// Loads a public key file (`ed25519:<base64>`, as written by [`crate::keygen`]).
///
/// # Errors
/// [`KeyError::PublicKeySyntax`], [`KeyError::InvalidPublicKey`], [`KeyError::TooLarge`],
/// [`KeyError::Io`].
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    let mut file = File::open(path).map_err(|source| KeyError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let text = read_small(&mut file, path)?;
    text.0.trim().parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_0600_private_key_and_a_loadable_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (public, secret_path, public_path) =
            generate_files(dir.path(), "alice").expect("keygen");
        let mode = std::fs::metadata(&secret_path).expect("exists").mode() & 0o777;
        assert_eq!(mode, 0o600);
        let signing = load_signing_key(&secret_path).expect("loads");
        assert_eq!(PublicKey(signing.verifying_key()), public);
        assert_eq!(load_public_key(&public_path).expect("loads"), public);
    }

    #[test]
    fn keygen_never_overwrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate_files(dir.path(), "alice").expect("keygen");
        let err = generate_files(dir.path(), "alice").expect_err("exists");
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
    }

    #[test]
    fn bad_key_names_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["", "../x", "a/b", ".hidden", "-x", "a b", &"x".repeat(65)] {
            let err = generate_files(dir.path(), name).expect_err("bad name");
            assert!(matches!(err, KeyError::BadName { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn a_private_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, secret_path, _) = generate_files(dir.path(), "k").expect("keygen");
        std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let err = load_signing_key(&secret_path).expect_err("insecure");
        assert!(
            matches!(err, KeyError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn malformed_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "ed25519-secret:not base64!").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            load_signing_key(&path),
            Err(KeyError::SecretKeySyntax { .. })
        ));
        std::fs::write(&path, vec![b'a'; 5000]).expect("write");
        assert!(matches!(
            load_signing_key(&path),
            Err(KeyError::TooLarge { .. })
        ));
        assert!(matches!(
            load_signing_key(&dir.path().join("missing.key")),
            Err(KeyError::Io { action: "read", .. })
        ));
    }

    #[test]
    fn public_key_text_round_trips_and_rejects_garbage() {
        let key = PublicKey(SigningKey::from_bytes(&[7; 32]).verifying_key());
        let text = key.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.parse::<PublicKey>().expect("parses"), key);
        for bad in ["", "ed25519:", "rsa:AAAA", "ed25519:AAAA", "ed25519:!!!"] {
            assert!(
                matches!(
                    bad.parse::<PublicKey>(),
                    Err(KeyError::PublicKeySyntax { .. })
                ),
                "{bad}"
            );
        }
        // The identity point is a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = format!("ed25519:{}", STANDARD.encode(identity));
        assert!(matches!(
            weak.parse::<PublicKey>(),
            Err(KeyError::InvalidPublicKey { .. })
        ));
    }

    #[test]
    fn key_ids_are_16_hex_digits_of_the_public_key_hash() {
        let key = PublicKey(SigningKey::from_bytes(&[7; 32]).verifying_key());
        let id = key.id();
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(
            text,
            hex::encode(&Sha256::digest(key.verifying_key().as_bytes())[..8])
        );
        assert_eq!(text.parse::<KeyId>().expect("parses"), id);
        for bad in [
            "",
            "abc",
            "ABCDEF0123456789",
            "zzzzzzzzzzzzzzzz",
            "0123456789abcdef0",
        ] {
            assert!(
                matches!(bad.parse::<KeyId>(), Err(KeyError::KeyIdSyntax { .. })),
                "{bad}"
            );
        }
    }
}
