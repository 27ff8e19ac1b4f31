//! The one rule for cutting text that came from outside (a plugin's log line, a client's
//! message, a manifest's value) before it reaches a log or an error message: at most a number
//! of bytes, cut at a character boundary, so the result is always valid text.

use alloc::string::String;

/// `text` cut to at most `max` bytes, at a character boundary (never inside a character).
///
/// ```
/// use homecore_abi::text::capped;
/// assert_eq!(capped("light.kitchen", 5), "light");
/// assert_eq!(capped("é", 1), "", "a two-byte character is not split");
/// assert_eq!(capped("short", 64), "short");
/// ```
#[must_use]
pub fn capped(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// `text` cut as [`capped`], with `…` appended when anything was cut: for quoting a value in
/// a message, where the reader must see that it was shortened.
///
/// ```
/// use homecore_abi::text::quoted;
/// assert_eq!(quoted("abcdef", 3), "abc…");
/// assert_eq!(quoted("abc", 3), "abc");
/// ```
#[must_use]
pub fn quoted(text: &str, max: usize) -> String {
    let kept = capped(text, max);
    let mut out = String::with_capacity(kept.len() + 3);
    out.push_str(kept);
    if kept.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_never_split_a_character_and_never_exceed_the_limit() {
        let text = "aé€😀b";
        for max in 0..=text.len() + 1 {
            let cut = capped(text, max);
            assert!(cut.len() <= max, "{max}");
            assert!(text.starts_with(cut));
            // Nothing more fits: the next character would pass the limit.
            if let Some(next) = text[cut.len()..].chars().next() {
                assert!(cut.len() + next.len_utf8() > max, "{max}");
            }
        }
        assert_eq!(quoted(text, 3), "aé…");
        assert_eq!(quoted(text, 64), text);
    }
}
