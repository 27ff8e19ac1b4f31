//! The operator's trust policy: which publisher keys may sign which plugins, which keys are
//! revoked, whether unsigned packages load (dev mode), and version pins.
//!
//! It is the server config's `[trust]` table:
//!
//! ```toml
//! [trust]
//! allow_unsigned = false            # dev mode: load unsigned packages, with a warning each time
//! revoked = ["0123456789abcdef"]    # key ids
//!
//! [[trust.publishers]]
//! name = "Alice"
//! key = "ed25519:3q2+7w..."
//! domains = ["motion_lights_wasm"]  # optional: the plugin domains this key may sign
//!
//! [trust.pins]
//! motion_lights_wasm = "1.0.0"      # load exactly this version, even if older than seen
//! ```

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{KeyId, PackageFiles, PublicKey};

/// A publisher key the operator trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedPublisher {
    /// A name for messages (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The publisher's key, `ed25519:<base64>`.
    pub key: PublicKey,
    /// The plugin domains this key may sign; `None`: any domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
}

/// The operator's trust policy (the server config's `[trust]` table).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustPolicy {
    /// Trusted publisher keys.
    pub publishers: Vec<TrustedPublisher>,
    /// Revoked key ids: refused even when listed in [`publishers`](Self::publishers).
    pub revoked: Vec<KeyId>,
    /// Dev mode: unsigned packages load, with a warning at every load. Signed packages are
    /// still checked in full.
    pub allow_unsigned: bool,
    /// Version pins: the domain loads only at exactly this version, which may be older than
    /// the highest version accepted before (an explicit downgrade).
    pub pins: BTreeMap<String, Version>,
}

/// Who vouches for a package that passed [`TrustPolicy::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signer {
    /// Signed by a trusted publisher.
    Publisher {
        /// The key's id.
        key_id: KeyId,
        /// The publisher's name from the policy, if given.
        name: Option<String>,
    },
    /// Unsigned, loaded because the policy is in dev mode.
    Unsigned,
}

impl Signer {
    /// The signing key's id, if signed.
    #[must_use]
    pub fn key_id(&self) -> Option<KeyId> {
        match self {
            Self::Publisher { key_id, .. } => Some(*key_id),
            Self::Unsigned => None,
        }
    }
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Publisher {
                key_id,
                name: Some(name),
            } => write!(f, "key {key_id} ({name})"),
            Self::Publisher { key_id, name: None } => write!(f, "key {key_id}"),
            Self::Unsigned => f.write_str("unsigned (dev mode)"),
        }
    }
}

/// Why the trust policy refused a package.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// No signature file, and the policy is not in dev mode.
    #[error(
        "plugin {domain} is not signed, and unsigned plugins are allowed only with `allow_unsigned = true` (dev mode)"
    )]
    Unsigned {
        /// The plugin.
        domain: String,
    },
    /// The signing key is revoked.
    #[error("plugin {domain} is signed by key {key_id}, which is revoked")]
    Revoked {
        /// The plugin.
        domain: String,
        /// The key.
        key_id: KeyId,
    },
    /// The signing key is not among the trusted publishers.
    #[error("plugin {domain} is signed by key {key_id}, which is not a trusted publisher")]
    UntrustedKey {
        /// The plugin.
        domain: String,
        /// The key.
        key_id: KeyId,
    },
    /// The signature file carries a key with the trusted key's id but other bytes.
    #[error(
        "plugin {domain}'s signature file carries a public key that differs from trusted key {key_id}"
    )]
    KeyMismatch {
        /// The plugin.
        domain: String,
        /// The key id.
        key_id: KeyId,
    },
    /// The signature does not verify: some file was changed, swapped or paired with another
    /// package's, or the signature was made with another key.
    #[error(
        "plugin {domain}: the signature by key {key_id} does not match the package files (manifest, module, domain or version changed since signing)"
    )]
    BadSignature {
        /// The plugin.
        domain: String,
        /// The key.
        key_id: KeyId,
    },
    /// The key is trusted, but not for this domain.
    #[error("key {key_id} may sign only {allowed:?}, not plugin {domain}")]
    DomainNotAllowed {
        /// The plugin.
        domain: String,
        /// The key.
        key_id: KeyId,
        /// What it may sign.
        allowed: Vec<String>,
    },
}

/// A problem in the policy itself (reported when the configuration is loaded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A publisher's `domains` lists something that is not a valid domain.
    #[error("trusted key {key_id}: {domain:?} is not a valid plugin domain")]
    BadPublisherDomain {
        /// The key.
        key_id: KeyId,
        /// The entry (capped).
        domain: String,
    },
    /// A pin names something that is not a valid domain.
    #[error("pin {domain:?} is not a valid plugin domain")]
    BadPinDomain {
        /// The entry (capped).
        domain: String,
    },
    /// The same key is listed twice.
    #[error("trusted key {key_id} is listed twice")]
    DuplicateKey {
        /// The key.
        key_id: KeyId,
    },
}

impl TrustPolicy {
    /// Checks the policy's own entries: domains valid, each key listed once.
    ///
    /// # Errors
    /// Every [`PolicyError`] found.
    pub fn validate(&self) -> Result<(), Vec<PolicyError>> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for publisher in &self.publishers {
            let key_id = publisher.key.id();
            if !seen.insert(key_id) {
                problems.push(PolicyError::DuplicateKey { key_id });
            }
            for domain in publisher.domains.iter().flatten() {
                if homecore::validate_domain(domain).is_err() {
                    problems.push(PolicyError::BadPublisherDomain {
                        key_id,
                        domain: crate::key::cap(domain),
                    });
                }
            }
        }
        for domain in self.pins.keys() {
            if homecore::validate_domain(domain).is_err() {
                problems.push(PolicyError::BadPinDomain {
                    domain: crate::key::cap(domain),
                });
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// A strict policy trusting one key for every domain (e.g. `verify --key alice.pub`).
    #[must_use]
    pub fn trusting(key: PublicKey) -> Self {
        Self {
            publishers: vec![TrustedPublisher {
                name: None,
                key,
                domains: None,
            }],
            ..Self::default()
        }
    }

    /// The trusted publisher with this key id.
    #[must_use]
    pub fn publisher(&self, key_id: KeyId) -> Option<&TrustedPublisher> {
        self.publishers.iter().find(|p| p.key.id() == key_id)
    }

    /// Whether `key_id` is revoked.
    #[must_use]
    pub fn is_revoked(&self, key_id: KeyId) -> bool {
        self.revoked.contains(&key_id)
    }

    /// Decides whether a package's files may load: a valid signature (`verify_strict`) by a
    /// trusted, unrevoked key allowed for the plugin's domain — or no signature in dev mode,
    /// which logs a warning every time.
    ///
    /// # Errors
    /// A [`TrustError`] naming the key and the plugin.
    pub fn check(&self, files: &PackageFiles) -> Result<Signer, TrustError> {
        let domain = files.domain();
        let Some(sig) = &files.signature else {
            if self.allow_unsigned {
                tracing::warn!(
                    plugin = %domain,
                    path = %files.dir.display(),
                    "LOADING AN UNSIGNED PLUGIN: allow_unsigned (dev mode) is on; never use it in production"
                );
                return Ok(Signer::Unsigned);
            }
            return Err(TrustError::Unsigned {
                domain: domain.to_owned(),
            });
        };
        let key_id = sig.key_id;
        if self.is_revoked(key_id) {
            return Err(TrustError::Revoked {
                domain: domain.to_owned(),
                key_id,
            });
        }
        let publisher = self
            .publisher(key_id)
            .ok_or_else(|| TrustError::UntrustedKey {
                domain: domain.to_owned(),
                key_id,
            })?;
        if publisher.key != sig.public_key {
            return Err(TrustError::KeyMismatch {
                domain: domain.to_owned(),
                key_id,
            });
        }
        publisher
            .key
            .verifying_key()
            .verify_strict(&files.message(), &sig.signature)
            .map_err(|_| TrustError::BadSignature {
                domain: domain.to_owned(),
                key_id,
            })?;
        if let Some(allowed) = &publisher.domains
            && !allowed.iter().any(|d| d == domain)
        {
            return Err(TrustError::DomainNotAllowed {
                domain: domain.to_owned(),
                key_id,
                allowed: allowed.clone(),
            });
        }
        Ok(Signer::Publisher {
            key_id,
            name: publisher.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use ed25519_dalek::{Signer as _, SigningKey};
    use homecore_plugins::PluginManifest;

    use super::*;
    use crate::{DetachedSignature, Sha256Hash};

    fn files(signature: Option<DetachedSignature>) -> PackageFiles {
        let manifest = br#"{"domain": "hall", "name": "Hall", "version": "1.0.0",
            "homecore": {"runtime": "wasm", "api_version": "^1", "module": "plugin.wasm"}}"#;
        PackageFiles {
            dir: PathBuf::from("hall"),
            manifest_bytes: manifest.as_slice().into(),
            manifest: Arc::new(PluginManifest::from_slice(manifest).expect("valid")),
            module_name: "plugin.wasm".into(),
            module: b"module".as_slice().into(),
            module_sha256: Sha256Hash::of(b"module"),
            signature,
        }
    }

    fn signed_by(key: &SigningKey) -> PackageFiles {
        let unsigned = files(None);
        let public = PublicKey::from(key.verifying_key());
        files(Some(DetachedSignature {
            key_id: public.id(),
            public_key: public,
            signature: key.sign(&unsigned.message()),
        }))
    }

    #[test]
    fn a_signature_file_carrying_another_key_under_a_trusted_id_is_refused() {
        let alice = SigningKey::from_bytes(&[1; 32]);
        let bob = SigningKey::from_bytes(&[2; 32]);
        let mut package = signed_by(&alice);
        let policy = TrustPolicy::trusting(PublicKey::from(alice.verifying_key()));
        policy.check(&package).expect("genuine");
        // Only reachable with a key id collision; checked anyway.
        if let Some(sig) = &mut package.signature {
            sig.public_key = PublicKey::from(bob.verifying_key());
        }
        let err = policy.check(&package).expect_err("other key");
        assert!(matches!(err, TrustError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn a_key_listed_twice_is_a_policy_problem() {
        let key = PublicKey::from(SigningKey::from_bytes(&[1; 32]).verifying_key());
        let mut policy = TrustPolicy::trusting(key);
        policy.validate().expect("valid");
        policy.publishers.push(policy.publishers[0].clone());
        assert_eq!(
            policy.validate(),
            Err(vec![PolicyError::DuplicateKey { key_id: key.id() }])
        );
    }

    #[test]
    fn signer_display_names_the_key_and_the_publisher() {
        let key_id = PublicKey::from(SigningKey::from_bytes(&[1; 32]).verifying_key()).id();
        let named = Signer::Publisher {
            key_id,
            name: Some("Alice".into()),
        };
        assert_eq!(named.to_string(), format!("key {key_id} (Alice)"));
        assert_eq!(Signer::Unsigned.to_string(), "unsigned (dev mode)");
        assert_eq!(Signer::Unsigned.key_id(), None);
    }
}
