//! Name patterns: `*` matches any run, `?` any one byte.
//!
//! The one matcher behind entity globs, service and event-type permissions on the host and the
//! SDK's fake host (docs/adr/0014-contract-in-homecore-abi.md).

/// Whether `text` matches `pattern`, where `*` matches any run of bytes (also none) and `?`
/// any one byte; every other byte matches itself.
///
/// Iterative, two pointers: on a mismatch it backtracks only to the last `*` seen, so it runs in
/// O(pattern × text) at worst and never recurses (a recursive matcher is exponential in the
/// number of stars: `a*a*a*a*a*a*a*a*b` against sixty `a`s does not finish).
///
/// ```
/// use homecore_abi::glob_match;
/// assert!(glob_match("light.turn_*", "light.turn_on"));
/// assert!(!glob_match("light.turn_?", "light.turn_on"));
/// assert!(glob_match("*.kitchen_?", "light.kitchen_1"));
/// ```
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The last star's position in the pattern and the text position it was retried from.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&tc) = t.get(ti) {
        match p.get(pi) {
            Some(b'*') => {
                // A trailing star matches whatever is left.
                if pi + 1 == p.len() {
                    return true;
                }
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == tc => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == b'*')
}

/// The shape of a valid entity glob, as [`check_entity_glob`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityGlobShape<'a> {
    /// `*` or `*.*`: every entity.
    All,
    /// No wildcard: exactly one entity id.
    Exact,
    /// A literal domain with a wildcard object id (`light.*`).
    Domain(&'a str),
    /// A wildcard in the domain (`*.kitchen_*`).
    Other,
}

/// Why a string is not a valid entity glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntityGlobSyntaxError {
    /// The pattern was empty.
    Empty,
    /// Longer than an entity id may be.
    TooLong {
        /// Length of the pattern.
        len: usize,
        /// The limit ([`crate::MAX_ENTITY_ID_LEN`]).
        max: usize,
    },
    /// A character other than `[a-z0-9_]`, `*`, `?` or `.`.
    InvalidChar {
        /// The character.
        found: char,
        /// Its byte offset.
        index: usize,
    },
    /// Not `*` alone and not `<domain>.<object_id>` with exactly one `.`, or a literal that is
    /// not a valid entity id (it could never match one).
    Shape,
    /// One side of the dot is empty.
    EmptyPart {
        /// `"domain"` or `"object id"`.
        what: &'static str,
    },
}

/// Checks an entity glob: `*` alone, or `<domain pattern>.<object id pattern>` over
/// `[a-z0-9_]`, `*` and `?` with exactly one `.`; a pattern without wildcards must be a valid
/// entity id. The one rule for the host's subscriptions and permissions and the SDK's fake
/// host.
///
/// # Errors
/// An [`EntityGlobSyntaxError`] naming what is wrong.
///
/// ```
/// use homecore_abi::{EntityGlobShape, check_entity_glob};
/// assert_eq!(check_entity_glob("light.*"), Ok(EntityGlobShape::Domain("light")));
/// assert!(check_entity_glob("light..x").is_err());
/// ```
pub fn check_entity_glob(pattern: &str) -> Result<EntityGlobShape<'_>, EntityGlobSyntaxError> {
    if pattern.is_empty() {
        return Err(EntityGlobSyntaxError::Empty);
    }
    if pattern.len() > crate::MAX_ENTITY_ID_LEN {
        return Err(EntityGlobSyntaxError::TooLong {
            len: pattern.len(),
            max: crate::MAX_ENTITY_ID_LEN,
        });
    }
    if let Some((index, found)) = pattern
        .char_indices()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '*' | '?' | '.'))
    {
        return Err(EntityGlobSyntaxError::InvalidChar { found, index });
    }
    if pattern == "*" || pattern == "*.*" {
        return Ok(EntityGlobShape::All);
    }
    let (domain, object) = pattern
        .split_once('.')
        .ok_or(EntityGlobSyntaxError::Shape)?;
    for (part, what) in [(domain, "domain"), (object, "object id")] {
        if part.is_empty() {
            return Err(EntityGlobSyntaxError::EmptyPart { what });
        }
    }
    if object.contains('.') {
        return Err(EntityGlobSyntaxError::Shape);
    }
    let wild = |s: &str| s.contains(['*', '?']);
    match (wild(domain), wild(object)) {
        (false, false) => match crate::check_entity_id(pattern) {
            Ok(_) => Ok(EntityGlobShape::Exact),
            Err(_) => Err(EntityGlobSyntaxError::Shape),
        },
        (false, true) => Ok(EntityGlobShape::Domain(domain)),
        (true, _) => Ok(EntityGlobShape::Other),
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use super::*;

    /// The textbook recursive matcher, as the reference (exponential: small inputs only).
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, _) => t.is_empty(),
            (Some(b'*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
            (Some(&c), Some(&d)) => (c == b'?' || c == d) && reference(&p[1..], &t[1..]),
            (Some(_), None) => false,
        }
    }

    #[test]
    fn agrees_with_the_recursive_reference() {
        let patterns = [
            "", "*", "**", "?", "a*", "*a", "a?c", "a*c*", "?*", "*?", "a**b", "*.*", "l*t.*l",
        ];
        let texts = [
            "", "a", "ab", "abc", "abcd", "ba", "abc.def", "l.l", "lit.xl",
        ];
        for p in patterns {
            for t in texts {
                assert_eq!(
                    glob_match(p, t),
                    reference(p.as_bytes(), t.as_bytes()),
                    "{p:?} on {t:?}"
                );
            }
        }
    }

    #[test]
    fn many_stars_against_a_long_run_completes() {
        // The SDK's former recursive matcher never returned on this input.
        let text: String = "a".repeat(60);
        assert!(!glob_match("a*a*a*a*a*a*a*a*b", &text));
        assert!(glob_match("a*a*a*a*a*a*a*a*a", &text));
        let pattern = "*a".repeat(100) + "b";
        assert!(!glob_match(&pattern, &"a".repeat(10_000)));
        assert!(glob_match(&pattern, &("a".repeat(10_000) + "b")));
    }

    #[test]
    fn entity_globs_are_checked_by_one_rule() {
        assert_eq!(check_entity_glob("*"), Ok(EntityGlobShape::All));
        assert_eq!(check_entity_glob("*.*"), Ok(EntityGlobShape::All));
        assert_eq!(check_entity_glob("light.hall"), Ok(EntityGlobShape::Exact));
        assert_eq!(check_entity_glob("*.kitchen_?"), Ok(EntityGlobShape::Other));
        assert_eq!(check_entity_glob(""), Err(EntityGlobSyntaxError::Empty));
        assert_eq!(
            check_entity_glob("Light.*"),
            Err(EntityGlobSyntaxError::InvalidChar {
                found: 'L',
                index: 0
            })
        );
        assert_eq!(
            check_entity_glob("light"),
            Err(EntityGlobSyntaxError::Shape)
        );
        assert_eq!(
            check_entity_glob("a.b.c"),
            Err(EntityGlobSyntaxError::Shape)
        );
        assert_eq!(
            check_entity_glob("light."),
            Err(EntityGlobSyntaxError::EmptyPart { what: "object id" })
        );
        assert_eq!(
            check_entity_glob("light.__x"),
            Err(EntityGlobSyntaxError::Shape),
            "a literal that is not an entity id never matches one"
        );
        let long = alloc::format!("a.{}", "b".repeat(300));
        assert!(matches!(
            check_entity_glob(&long),
            Err(EntityGlobSyntaxError::TooLong { .. })
        ));
    }
}
