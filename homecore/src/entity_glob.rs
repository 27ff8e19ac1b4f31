//! Entity id patterns such as `light.*` or `*.kitchen_*`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EntityId;

/// Why a string is not a valid entity glob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntityGlobError {
    /// The pattern was empty.
    #[error("glob is empty")]
    Empty,
    /// Longer than an entity id may be.
    #[error("glob is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Length of the pattern.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not `*` alone and not `<domain pattern>.<object pattern>`.
    #[error(
        "{pattern:?} is not a valid glob: expected '*' or '<domain>.<object_id>' with exactly one '.'"
    )]
    Shape {
        /// The rejected pattern.
        pattern: String,
    },
    /// One side of the dot is empty (e.g. `light.` or `light..x`).
    #[error("{pattern:?} is not a valid glob: empty {what}")]
    EmptyPart {
        /// The rejected pattern.
        pattern: String,
        /// `"domain"` or `"object id"`.
        what: &'static str,
    },
    /// A character other than `[a-z0-9_]`, `*` or `?`.
    #[error(
        "{pattern:?} is not a valid glob: {found:?} at byte {index}; allowed are a-z, 0-9, '_', '*', '?' and one '.'"
    )]
    InvalidChar {
        /// The rejected pattern.
        pattern: String,
        /// The offending character.
        found: char,
        /// Its byte offset.
        index: usize,
    },
}

/// A pattern over entity ids: `*` matches any run of characters, `?` any one character.
///
/// A glob is either `*` (every entity) or `<domain pattern>.<object id pattern>`, each side
/// made of `[a-z0-9_]`, `*` and `?`. The event bus indexes globs by their shape so that
/// publishing does not scan every subscriber: see [`GlobKind`].
///
/// ```
/// use homecore::{EntityGlob, EntityId};
/// let glob: EntityGlob = "*.kitchen_*".parse()?;
/// assert!(glob.matches(&"light.kitchen_ceiling".parse::<EntityId>()?));
/// assert!(!glob.matches(&"light.hall".parse::<EntityId>()?));
/// assert!("light..x".parse::<EntityGlob>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EntityGlob {
    pattern: Box<str>,
    kind: GlobKind,
    /// Byte offset of the pattern's '.' (0 for `*`, which has none); follows from `pattern`.
    dot: u8,
}

/// How a glob can be looked up without scanning.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GlobKind {
    /// Matches every entity (`*`, `*.*`).
    All,
    /// No wildcard: matches exactly one entity id.
    Exact(EntityId),
    /// Literal domain, wildcard object id (`light.*`, `light.kitchen_?`).
    Domain(Box<str>),
    /// Wildcards in the domain (`*.kitchen_*`): matched by scanning.
    Other,
}

impl EntityGlob {
    /// Parses and validates a pattern.
    ///
    /// # Errors
    /// An [`EntityGlobError`] naming what is wrong with the pattern.
    pub fn new(pattern: &str) -> Result<Self, EntityGlobError> {
        use homecore_abi::{EntityGlobShape, EntityGlobSyntaxError as Syntax};
        let owned = || pattern.to_owned();
        let shape = homecore_abi::check_entity_glob(pattern).map_err(|err| match err {
            Syntax::Empty => EntityGlobError::Empty,
            Syntax::TooLong { len, max } => EntityGlobError::TooLong { len, max },
            Syntax::InvalidChar { found, index } => EntityGlobError::InvalidChar {
                pattern: owned(),
                found,
                index,
            },
            Syntax::EmptyPart { what } => EntityGlobError::EmptyPart {
                pattern: owned(),
                what,
            },
            _ => EntityGlobError::Shape { pattern: owned() },
        })?;
        let kind = match shape {
            EntityGlobShape::All => GlobKind::All,
            EntityGlobShape::Exact => match EntityId::new(pattern) {
                Ok(id) => GlobKind::Exact(id),
                Err(_) => return Err(EntityGlobError::Shape { pattern: owned() }),
            },
            EntityGlobShape::Domain(domain) => GlobKind::Domain(domain.into()),
            _ => GlobKind::Other,
        };
        let dot = pattern.find('.').unwrap_or(0);
        Ok(Self {
            pattern: pattern.into(),
            kind,
            dot: u8::try_from(dot).expect("a glob is at most 255 bytes long"),
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// How the pattern can be indexed.
    #[must_use]
    pub fn kind(&self) -> &GlobKind {
        &self.kind
    }

    /// Whether `id` matches the pattern.
    #[must_use]
    pub fn matches(&self, id: &EntityId) -> bool {
        // The pattern has exactly one '.', and so has the id: the pattern's '.' can only stand
        // for the id's, so each side of the pattern matches the same side of the id. Matching
        // the sides apart keeps a leading `*` from retrying at every byte of the whole id (the
        // bus runs this for every wildcard-domain glob on every state change).
        match &self.kind {
            GlobKind::All => true,
            GlobKind::Exact(exact) => exact == id,
            GlobKind::Domain(domain) => {
                **domain == *id.domain() && side_matches(self.object_pattern(), id.object_id())
            }
            GlobKind::Other => {
                side_matches(&self.pattern[..usize::from(self.dot)], id.domain())
                    && side_matches(self.object_pattern(), id.object_id())
            }
        }
    }

    /// The part after the dot (for a glob that has one).
    fn object_pattern(&self) -> &str {
        &self.pattern[usize::from(self.dot) + 1..]
    }

    /// Whether the pattern matches every id that `other` matches (used for permission checks:
    /// a plugin may subscribe to `light.kitchen_*` when it may read `light.*`).
    #[must_use]
    pub fn covers(&self, other: &EntityGlob) -> bool {
        match (&self.kind, &other.kind) {
            (GlobKind::All, _) => true,
            (_, GlobKind::Exact(id)) => self.matches(id),
            // A pattern matches a superset if it matches the other pattern's text taken
            // literally, with `*` in the other treated as any text: sufficient when the covering
            // pattern ends its sides in `*`, which is how grants are written (`light.*`).
            _ => wildcard_match(&self.pattern, &other.pattern) && !self.pattern.contains('?'),
        }
    }
}

/// One side of a glob against the same side of an id.
fn side_matches(pattern: &str, text: &str) -> bool {
    pattern == "*" || wildcard_match(pattern, text)
}

/// Glob match with `*` (any run) and `?` (any one byte); backtracks only to the last star, so
/// it runs in O(pattern × text) at worst. Shared by every name pattern in HomeCore (entity
/// globs, service and event-type patterns in plugin permissions); the matcher itself is
/// [`homecore_abi::glob_match`], the one the guest SDK uses too (ADR 14).
///
/// ```
/// assert!(homecore::wildcard_match("light.turn_*", "light.turn_on"));
/// assert!(!homecore::wildcard_match("light.turn_?", "light.turn_on"));
/// ```
#[must_use]
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    homecore_abi::glob_match(pattern, text)
}

impl FromStr for EntityGlob {
    type Err = EntityGlobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for EntityGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl fmt::Debug for EntityGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EntityGlob({:?})", &*self.pattern)
    }
}

impl Serialize for EntityGlob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.pattern)
    }
}

impl<'de> Deserialize<'de> for EntityGlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> EntityId {
        EntityId::new(s).expect("valid id")
    }

    #[test]
    fn kinds_are_classified_for_indexing() {
        assert_eq!(EntityGlob::new("*").expect("ok").kind(), &GlobKind::All);
        assert_eq!(EntityGlob::new("*.*").expect("ok").kind(), &GlobKind::All);
        assert_eq!(
            EntityGlob::new("light.hall").expect("ok").kind(),
            &GlobKind::Exact(id("light.hall"))
        );
        assert_eq!(
            EntityGlob::new("light.*").expect("ok").kind(),
            &GlobKind::Domain("light".into())
        );
        assert_eq!(
            EntityGlob::new("*.kitchen_*").expect("ok").kind(),
            &GlobKind::Other
        );
    }

    #[test]
    fn matching() {
        let g = EntityGlob::new("*.kitchen_*").expect("ok");
        assert!(g.matches(&id("light.kitchen_ceiling")));
        assert!(g.matches(&id("sensor.kitchen_t")));
        assert!(!g.matches(&id("light.hall_kitchen_x")));
        let g = EntityGlob::new("light.k?t*").expect("ok");
        assert!(g.matches(&id("light.kitchen")));
        assert!(!g.matches(&id("light.kxxtchen")));
        assert!(!g.matches(&id("switch.kitchen")));
        let g = EntityGlob::new("light.*_motion").expect("ok");
        assert!(g.matches(&id("light.a_b_motion")));
        assert!(!g.matches(&id("light.a_motion_x")));
    }

    /// The textbook recursive matcher, as the reference for the fast paths.
    fn reference_match(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some(b'*'), _) => {
                reference_match(&p[1..], t) || (!t.is_empty() && reference_match(p, &t[1..]))
            }
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && reference_match(&p[1..], &t[1..]),
            (Some(_), None) => false,
        }
    }

    #[test]
    fn matching_by_sides_agrees_with_matching_the_whole_id() {
        let globs = [
            "*",
            "*.*",
            "light.*",
            "light.k*",
            "light.k?t*",
            "light.*_motion",
            "li*.*",
            "*t.h*",
            "*.kitchen_*",
            "?????.*",
            "*?.*?",
            "l*t.*l",
            "*.*_*",
            "light.hall",
            "*.hall",
        ];
        let ids = [
            "light.hall",
            "light.kitchen",
            "light.a_b_motion",
            "lights.hall",
            "sensor.t",
            "switch.kitchen_fan",
            "l.l",
            "light.kitchen_motion_x",
        ];
        for glob in globs {
            let parsed = EntityGlob::new(glob).expect(glob);
            for entity in ids {
                let expected = reference_match(glob.as_bytes(), entity.as_bytes());
                assert_eq!(parsed.matches(&id(entity)), expected, "{glob} on {entity}");
                assert_eq!(wildcard_match(glob, entity), expected, "{glob} on {entity}");
            }
        }
    }

    #[test]
    fn wildcard_match_agrees_with_the_reference() {
        let patterns = ["a*", "*", "a*c*", "b*", "*a", "a?c", "a**", "?*", ""];
        let texts = ["", "a", "abc", "abcd", "abd", "ba", "abc.def"];
        for p in patterns {
            for t in texts {
                assert_eq!(
                    wildcard_match(p, t),
                    reference_match(p.as_bytes(), t.as_bytes()),
                    "{p:?} on {t:?}"
                );
            }
        }
    }

    #[test]
    fn invalid_globs_name_the_problem() {
        assert_eq!(EntityGlob::new(""), Err(EntityGlobError::Empty));
        assert!(matches!(
            EntityGlob::new("light..x"),
            Err(EntityGlobError::Shape { .. })
        ));
        assert!(matches!(
            EntityGlob::new("light"),
            Err(EntityGlobError::Shape { .. })
        ));
        assert!(matches!(
            EntityGlob::new(".x"),
            Err(EntityGlobError::EmptyPart { what: "domain", .. })
        ));
        assert!(matches!(
            EntityGlob::new("Light.*"),
            Err(EntityGlobError::InvalidChar {
                found: 'L',
                index: 0,
                ..
            })
        ));
        assert!(matches!(
            EntityGlob::new("light._x"),
            Err(EntityGlobError::Shape { .. })
        ));
        let long = format!("a.{}", "*".repeat(300));
        assert!(matches!(
            EntityGlob::new(&long),
            Err(EntityGlobError::TooLong { .. })
        ));
    }

    #[test]
    fn covers_for_permission_checks() {
        let light = EntityGlob::new("light.*").expect("ok");
        assert!(light.covers(&EntityGlob::new("light.kitchen_*").expect("ok")));
        assert!(light.covers(&EntityGlob::new("light.hall").expect("ok")));
        assert!(!light.covers(&EntityGlob::new("*.hall").expect("ok")));
        assert!(!light.covers(&EntityGlob::new("switch.*").expect("ok")));
        assert!(EntityGlob::new("*").expect("ok").covers(&light));
        assert!(!EntityGlob::new("light.hall").expect("ok").covers(&light));
    }
}
