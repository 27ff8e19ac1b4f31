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
}
