//! Entity ids: `domain.object_id`, validated by Home Assistant's rules.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use homecore_abi::{EntityIdSyntaxError, IdPart};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest entity id accepted, in bytes (Home Assistant's `MAX_LENGTH_STATE_ENTITY_ID`).
pub const MAX_ENTITY_ID_LEN: usize = homecore_abi::MAX_ENTITY_ID_LEN;

/// Why a string is not a valid entity id or domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntityIdError {
    /// The string was empty.
    #[error("entity id is empty")]
    Empty,
    /// Longer than [`MAX_ENTITY_ID_LEN`].
    #[error("entity id is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Length of the rejected id.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No `.` between domain and object id.
    #[error("entity id {id:?} has no '.' between domain and object id")]
    MissingDot {
        /// The rejected id.
        id: String,
    },
    /// More than one `.`.
    #[error("entity id {id:?} has more than one '.'")]
    ExtraDot {
        /// The rejected id.
        id: String,
    },
    /// A character outside `[a-z0-9_]`.
    #[error(
        "{what} {value:?} contains {found:?} at byte {index}; only lowercase a-z, 0-9 and '_' are allowed"
    )]
    InvalidChar {
        /// `"domain"` or `"object id"`.
        what: &'static str,
        /// The rejected part.
        value: String,
        /// The offending character.
        found: char,
        /// Its byte offset in the part.
        index: usize,
    },
    /// The domain or object id part is empty.
    #[error("{what} is empty")]
    EmptyPart {
        /// `"domain"` or `"object id"`.
        what: &'static str,
    },
    /// The domain starts or ends with `_` or contains `__`.
    #[error("domain {domain:?} {why}")]
    BadUnderscore {
        /// The rejected domain.
        domain: String,
        /// Which underscore rule was broken.
        why: &'static str,
    },
    /// The object id starts or ends with `_` or contains `__`.
    #[error("object id {object_id:?} {why}")]
    ObjectIdUnderscore {
        /// The rejected object id.
        object_id: String,
        /// Which underscore rule was broken.
        why: &'static str,
    },
    /// A rule of `homecore_abi::check_entity_id` without a variant of its own here.
    #[error("{input:?}: {error}")]
    Syntax {
        /// The rejected input.
        input: String,
        /// The rule it breaks.
        error: EntityIdSyntaxError,
    },
}

/// A validated entity id such as `light.kitchen`.
///
/// Cheap to clone (one reference-counted string). Follows Home Assistant's `valid_entity_id`:
/// the domain is `[a-z0-9_]+` without a leading, trailing or doubled underscore; the object id
/// is `[a-z0-9_]+` not starting or ending with `_`; the whole id is at most
/// [`MAX_ENTITY_ID_LEN`] bytes.
///
/// ```
/// use homecore::EntityId;
/// let id: EntityId = "light.kitchen".parse()?;
/// assert_eq!(id.domain(), "light");
/// assert_eq!(id.object_id(), "kitchen");
/// assert!("Light.kitchen".parse::<EntityId>().is_err());
/// # Ok::<(), homecore::EntityIdError>(())
/// ```
#[derive(Clone)]
pub struct EntityId {
    id: Arc<str>,
    dot: u8,
}

// Equality, order and hash are the string's alone (the dot offset follows from it), so that
// maps keyed by `EntityId` can be looked up with a `&str` through `Borrow<str>`.
impl PartialEq for EntityId {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for EntityId {}

impl PartialOrd for EntityId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntityId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.id.cmp(&other.id)
    }
}

impl std::hash::Hash for EntityId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl EntityId {
    /// Validates `id` and makes an [`EntityId`] of it.
    ///
    /// # Errors
    /// An [`EntityIdError`] naming the rule the string breaks.
    pub fn new(id: &str) -> Result<Self, EntityIdError> {
        let dot = validate_entity_id(id)?;
        Ok(Self {
            id: Arc::from(id),
            dot: u8::try_from(dot).expect("domain is shorter than the 255-byte id limit"),
        })
    }

    /// The whole id, e.g. `light.kitchen`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// The part before the dot, e.g. `light`.
    #[must_use]
    pub fn domain(&self) -> &str {
        &self.id[..usize::from(self.dot)]
    }

    /// The part after the dot, e.g. `kitchen`.
    #[must_use]
    pub fn object_id(&self) -> &str {
        &self.id[usize::from(self.dot) + 1..]
    }
}

/// Checks a domain by Home Assistant's rule (`[a-z0-9_]+`, no leading, trailing or double `_`).
///
/// # Errors
/// An [`EntityIdError`] naming the rule the string breaks.
pub fn validate_domain(domain: &str) -> Result<(), EntityIdError> {
    homecore_abi::check_domain(domain)
        .map_err(|e| EntityIdError::from_syntax(e, domain, Checked::Part))
}

/// Checks an object id (`[a-z0-9_]+`, not starting or ending with `_`, no `__`: Home
/// Assistant's `VALID_ENTITY_ID` lookahead `(?!.+__)` covers the whole id, not only the domain).
///
/// # Errors
/// An [`EntityIdError`] naming the rule the string breaks.
pub fn validate_object_id(object_id: &str) -> Result<(), EntityIdError> {
    homecore_abi::check_object_id(object_id)
        .map_err(|e| EntityIdError::from_syntax(e, object_id, Checked::Part))
}

/// Validates a full entity id and returns the byte offset of its dot.
fn validate_entity_id(id: &str) -> Result<usize, EntityIdError> {
    homecore_abi::check_entity_id(id)
        .map(|(domain, _)| domain.len())
        .map_err(|e| EntityIdError::from_syntax(e, id, Checked::WholeId))
}

/// What a string was checked as.
#[derive(Clone, Copy)]
enum Checked {
    /// A whole `domain.object_id`.
    WholeId,
    /// A domain or an object id alone.
    Part,
}

impl EntityIdError {
    /// The error for `input` from the rule's own error (the rule lives once, in
    /// `homecore_abi`: ADR 14).
    fn from_syntax(error: EntityIdSyntaxError, input: &str, checked: Checked) -> Self {
        // The text of the part an error names: a side of the id's dot, or the whole input
        // when it was checked as a domain or an object id alone.
        let part_text = |part: IdPart| match (checked, part, input.split_once('.')) {
            (Checked::WholeId, IdPart::Domain, Some((domain, _))) => domain,
            (Checked::WholeId, IdPart::ObjectId, Some((_, object_id))) => object_id,
            _ => input,
        };
        match error {
            EntityIdSyntaxError::Empty => Self::Empty,
            EntityIdSyntaxError::TooLong { len, max } => Self::TooLong { len, max },
            EntityIdSyntaxError::MissingDot => Self::MissingDot {
                id: input.to_owned(),
            },
            EntityIdSyntaxError::ExtraDot => Self::ExtraDot {
                id: input.to_owned(),
            },
            EntityIdSyntaxError::EmptyPart { part } => Self::EmptyPart {
                what: part.as_str(),
            },
            EntityIdSyntaxError::InvalidChar { part, found, index } => Self::InvalidChar {
                what: part.as_str(),
                value: part_text(part).to_owned(),
                found,
                index,
            },
            EntityIdSyntaxError::Underscore {
                part: IdPart::Domain,
                rule,
            } => Self::BadUnderscore {
                domain: part_text(IdPart::Domain).to_owned(),
                why: rule.as_str(),
            },
            EntityIdSyntaxError::Underscore {
                part: IdPart::ObjectId,
                rule,
            } => Self::ObjectIdUnderscore {
                object_id: part_text(IdPart::ObjectId).to_owned(),
                why: rule.as_str(),
            },
            // A rule added to the ABI crate later: reported as the ABI crate words it.
            _ => Self::Syntax {
                input: input.to_owned(),
                error,
            },
        }
    }
}

impl FromStr for EntityId {
    type Err = EntityIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for EntityId {
    type Error = EntityIdError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for EntityId {
    fn as_ref(&self) -> &str {
        &self.id
    }
}

impl Borrow<str> for EntityId {
    fn borrow(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Debug for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.id, f)
    }
}

impl Serialize for EntityId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for EntityId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_split_into_domain_and_object_id() {
        for id in [
            "light.kitchen",
            "sensor.temp_1",
            "a.b",
            "input_boolean.x2",
            "zwave_js.node_5",
        ] {
            let parsed = EntityId::new(id).expect(id);
            assert_eq!(parsed.as_str(), id);
            assert_eq!(format!("{}.{}", parsed.domain(), parsed.object_id()), id);
        }
    }

    #[test]
    fn invalid_ids_name_the_rule() {
        assert_eq!(EntityId::new(""), Err(EntityIdError::Empty));
        assert!(matches!(
            EntityId::new("light"),
            Err(EntityIdError::MissingDot { .. })
        ));
        assert!(matches!(
            EntityId::new("light.a.b"),
            Err(EntityIdError::ExtraDot { .. })
        ));
        assert!(matches!(
            EntityId::new("Light.kitchen"),
            Err(EntityIdError::InvalidChar {
                what: "domain",
                found: 'L',
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            EntityId::new("light.kit-chen"),
            Err(EntityIdError::InvalidChar {
                what: "object id",
                found: '-',
                index: 3,
                ..
            })
        ));
        assert!(matches!(
            EntityId::new("_light.x"),
            Err(EntityIdError::BadUnderscore {
                why: "must not start with '_'",
                ..
            })
        ));
        assert!(matches!(
            EntityId::new("light_.x"),
            Err(EntityIdError::BadUnderscore { .. })
        ));
        assert!(matches!(
            EntityId::new("li__ght.x"),
            Err(EntityIdError::BadUnderscore { .. })
        ));
        assert!(matches!(
            EntityId::new("light._x"),
            Err(EntityIdError::ObjectIdUnderscore { .. })
        ));
        assert!(matches!(
            EntityId::new("light.x_"),
            Err(EntityIdError::ObjectIdUnderscore { .. })
        ));
        assert!(matches!(
            EntityId::new("light.a__b"),
            Err(EntityIdError::ObjectIdUnderscore { .. })
        ));
        assert!(matches!(
            EntityId::new(".x"),
            Err(EntityIdError::EmptyPart { what: "domain" })
        ));
        assert!(matches!(
            EntityId::new("light."),
            Err(EntityIdError::EmptyPart { what: "object id" })
        ));
        assert!(matches!(
            EntityId::new("light.ké"),
            Err(EntityIdError::InvalidChar { found: 'é', .. })
        ));
    }

    #[test]
    fn a_part_checked_alone_is_named_whole_in_its_error() {
        assert!(matches!(
            validate_domain("a.b"),
            Err(EntityIdError::InvalidChar { what: "domain", value, found: '.', index: 1 })
                if value == "a.b"
        ));
        assert!(matches!(
            validate_object_id("x.y_"),
            Err(EntityIdError::InvalidChar { what: "object id", value, .. }) if value == "x.y_"
        ));
        assert!(matches!(
            validate_object_id("y_"),
            Err(EntityIdError::ObjectIdUnderscore { object_id, why: "must not end with '_'" })
                if object_id == "y_"
        ));
    }

    #[test]
    fn length_limit_is_255_bytes() {
        let ok = format!("a.{}", "b".repeat(253));
        assert!(EntityId::new(&ok).is_ok());
        let long = format!("a.{}", "b".repeat(254));
        assert_eq!(
            EntityId::new(&long),
            Err(EntityIdError::TooLong { len: 256, max: 255 })
        );
    }

    #[test]
    fn serde_round_trip_rejects_invalid() {
        let id: EntityId = serde_json::from_str("\"switch.porch\"").expect("valid");
        assert_eq!(
            serde_json::to_string(&id).expect("serializes"),
            "\"switch.porch\""
        );
        assert!(serde_json::from_str::<EntityId>("\"switch porch\"").is_err());
    }
}
