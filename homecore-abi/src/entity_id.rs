//! Entity id syntax: `domain.object_id`, by Home Assistant's rules.
//!
//! The one copy of the rule: the core's `EntityId`, the SDK's fake host and plugins all call
//! these functions (docs/adr/0014-contract-in-homecore-abi.md).

use core::fmt;

/// The longest entity id accepted, in bytes (Home Assistant's `MAX_LENGTH_STATE_ENTITY_ID`).
pub const MAX_ENTITY_ID_LEN: usize = 255;

/// One side of an entity id's dot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdPart {
    /// The part before the dot (`light`).
    Domain,
    /// The part after the dot (`kitchen`).
    ObjectId,
}

impl IdPart {
    /// `"domain"` or `"object id"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Domain => "domain",
            Self::ObjectId => "object id",
        }
    }
}

impl fmt::Display for IdPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which underscore rule a part breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnderscoreRule {
    /// Starts with `_`.
    Leading,
    /// Ends with `_`.
    Trailing,
    /// Contains `__`.
    Double,
}

impl UnderscoreRule {
    /// The rule, as a sentence's predicate: `"must not start with '_'"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Leading => "must not start with '_'",
            Self::Trailing => "must not end with '_'",
            Self::Double => "must not contain '__'",
        }
    }
}

impl fmt::Display for UnderscoreRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid entity id, domain or object id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityIdSyntaxError {
    /// The string was empty.
    Empty,
    /// Longer than [`MAX_ENTITY_ID_LEN`].
    TooLong {
        /// Length of the rejected id.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No `.` between domain and object id.
    MissingDot,
    /// More than one `.`.
    ExtraDot,
    /// The domain or object id is empty.
    EmptyPart {
        /// Which part.
        part: IdPart,
    },
    /// A character outside `[a-z0-9_]`.
    InvalidChar {
        /// Which part.
        part: IdPart,
        /// The offending character.
        found: char,
        /// Its byte offset in the part.
        index: usize,
    },
    /// The part starts or ends with `_` or contains `__`.
    Underscore {
        /// Which part.
        part: IdPart,
        /// Which rule.
        rule: UnderscoreRule,
    },
}

impl fmt::Display for EntityIdSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("entity id is empty"),
            Self::TooLong { len, max } => {
                write!(f, "entity id is {len} bytes long, the limit is {max}")
            }
            Self::MissingDot => f.write_str("entity id has no '.' between domain and object id"),
            Self::ExtraDot => f.write_str("entity id has more than one '.'"),
            Self::EmptyPart { part } => write!(f, "{part} is empty"),
            Self::InvalidChar { part, found, index } => write!(
                f,
                "{part} contains {found:?} at byte {index}; only lowercase a-z, 0-9 and '_' are allowed"
            ),
            Self::Underscore { part, rule } => write!(f, "{part} {rule}"),
        }
    }
}

impl core::error::Error for EntityIdSyntaxError {}

/// Checks a full entity id (`domain.object_id`, at most [`MAX_ENTITY_ID_LEN`] bytes) and
/// splits it at its dot.
///
/// # Errors
/// An [`EntityIdSyntaxError`] naming the first rule the string breaks, checked in this order:
/// empty, length, dot count, the domain ([`check_domain`]), the object id
/// ([`check_object_id`]).
///
/// ```
/// use homecore_abi::{EntityIdSyntaxError, IdPart, check_entity_id};
/// assert_eq!(check_entity_id("light.kitchen"), Ok(("light", "kitchen")));
/// assert_eq!(
///     check_entity_id("light.kit-chen"),
///     Err(EntityIdSyntaxError::InvalidChar { part: IdPart::ObjectId, found: '-', index: 3 })
/// );
/// ```
pub fn check_entity_id(id: &str) -> Result<(&str, &str), EntityIdSyntaxError> {
    if id.is_empty() {
        return Err(EntityIdSyntaxError::Empty);
    }
    if id.len() > MAX_ENTITY_ID_LEN {
        return Err(EntityIdSyntaxError::TooLong {
            len: id.len(),
            max: MAX_ENTITY_ID_LEN,
        });
    }
    let Some((domain, object_id)) = id.split_once('.') else {
        return Err(EntityIdSyntaxError::MissingDot);
    };
    if object_id.contains('.') {
        return Err(EntityIdSyntaxError::ExtraDot);
    }
    check_domain(domain)?;
    check_object_id(object_id)?;
    Ok((domain, object_id))
}

/// Checks a domain: `[a-z0-9_]+`, not starting or ending with `_`, no `__`.
///
/// # Errors
/// [`EntityIdSyntaxError::EmptyPart`], [`EntityIdSyntaxError::InvalidChar`] or
/// [`EntityIdSyntaxError::Underscore`], with [`IdPart::Domain`].
pub fn check_domain(domain: &str) -> Result<(), EntityIdSyntaxError> {
    check_part(IdPart::Domain, domain)
}

/// Checks an object id: `[a-z0-9_]+`, not starting or ending with `_`, no `__` (Home
/// Assistant's `VALID_ENTITY_ID` lookahead `(?!.+__)` covers the whole id, not only the
/// domain).
///
/// # Errors
/// [`EntityIdSyntaxError::EmptyPart`], [`EntityIdSyntaxError::InvalidChar`] or
/// [`EntityIdSyntaxError::Underscore`], with [`IdPart::ObjectId`].
pub fn check_object_id(object_id: &str) -> Result<(), EntityIdSyntaxError> {
    check_part(IdPart::ObjectId, object_id)
}

fn check_part(part: IdPart, value: &str) -> Result<(), EntityIdSyntaxError> {
    if value.is_empty() {
        return Err(EntityIdSyntaxError::EmptyPart { part });
    }
    if let Some((index, found)) = value
        .char_indices()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '_'))
    {
        return Err(EntityIdSyntaxError::InvalidChar { part, found, index });
    }
    let rule = if value.starts_with('_') {
        UnderscoreRule::Leading
    } else if value.ends_with('_') {
        UnderscoreRule::Trailing
    } else if value.contains("__") {
        UnderscoreRule::Double
    } else {
        return Ok(());
    };
    Err(EntityIdSyntaxError::Underscore { part, rule })
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn valid_ids_split_at_the_dot() {
        for (id, domain, object) in [
            ("light.kitchen", "light", "kitchen"),
            ("a.b", "a", "b"),
            ("zwave_js.node_5", "zwave_js", "node_5"),
        ] {
            assert_eq!(check_entity_id(id), Ok((domain, object)));
        }
    }

    #[test]
    fn each_rule_has_its_error() {
        use EntityIdSyntaxError as E;
        use IdPart::{Domain, ObjectId};
        let cases = [
            ("", E::Empty),
            ("light", E::MissingDot),
            ("light.a.b", E::ExtraDot),
            (".x", E::EmptyPart { part: Domain }),
            ("light.", E::EmptyPart { part: ObjectId }),
            (
                "Light.x",
                E::InvalidChar {
                    part: Domain,
                    found: 'L',
                    index: 0,
                },
            ),
            (
                "light.ké",
                E::InvalidChar {
                    part: ObjectId,
                    found: 'é',
                    index: 1,
                },
            ),
            (
                "_light.x",
                E::Underscore {
                    part: Domain,
                    rule: UnderscoreRule::Leading,
                },
            ),
            (
                "light.x_",
                E::Underscore {
                    part: ObjectId,
                    rule: UnderscoreRule::Trailing,
                },
            ),
            (
                "li__ght.x",
                E::Underscore {
                    part: Domain,
                    rule: UnderscoreRule::Double,
                },
            ),
        ];
        for (id, expected) in cases {
            assert_eq!(check_entity_id(id), Err(expected), "{id:?}");
        }
        let long = format!("a.{}", "b".repeat(254));
        assert_eq!(
            check_entity_id(&long),
            Err(E::TooLong { len: 256, max: 255 })
        );
        assert!(check_entity_id(&long[..255]).is_ok());
        assert_eq!(
            E::Underscore {
                part: ObjectId,
                rule: UnderscoreRule::Double
            }
            .to_string(),
            "object id must not contain '__'"
        );
    }
}
