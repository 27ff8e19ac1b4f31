//! Access tokens: the set the server accepts, compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// The access tokens the server accepts (`Authorization: Bearer <token>`, WebSocket `auth`).
///
/// Every accepted token is compared with the candidate in constant time, and every one is
/// compared (no early exit), so the time taken reveals neither which token matched nor how
/// many leading bytes were right. Only a length mismatch is cheaper, which reveals the length
/// of the tokens, not their content.
///
/// ```
/// use homecore_server::TokenStore;
///
/// let store = TokenStore::new(["0123456789abcdef0123"]);
/// assert!(store.check("0123456789abcdef0123"));
/// assert!(!store.check("0123456789abcdef0124"));
/// assert!(store.check_header("Bearer 0123456789abcdef0123"));
/// assert!(!store.check_header("Basic 0123456789abcdef0123"));
/// ```
#[derive(Clone)]
pub struct TokenStore {
    tokens: Vec<Box<[u8]>>,
}

impl TokenStore {
    /// A store accepting these tokens.
    pub fn new<T: AsRef<str>>(tokens: impl IntoIterator<Item = T>) -> Self {
        Self {
            tokens: tokens
                .into_iter()
                .map(|t| t.as_ref().as_bytes().into())
                .collect(),
        }
    }

    /// Whether `candidate` is one of the tokens.
    #[must_use]
    pub fn check(&self, candidate: &str) -> bool {
        let candidate = candidate.as_bytes();
        let mut found = subtle::Choice::from(0);
        for token in &self.tokens {
            found |= token.as_ref().ct_eq(candidate);
        }
        found.into()
    }

    /// Whether an `Authorization` header value is `Bearer <one of the tokens>` (scheme
    /// case-insensitive, as RFC 9110 says).
    #[must_use]
    pub fn check_header(&self, header: &str) -> bool {
        match header.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                self.check(token.trim())
            }
            _ => false,
        }
    }

    /// How many tokens are accepted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is accepted (every request is refused).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl crate::websocket::TokenCheck for TokenStore {
    fn is_valid(&self, token: &str) -> bool {
        self.check(token)
    }
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenStore({} tokens, redacted)", self.tokens.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_listed_token_is_accepted() {
        let store = TokenStore::new(["first-token-0000", "second-token-111"]);
        assert!(store.check("first-token-0000"));
        assert!(store.check("second-token-111"));
        assert!(!store.check("second-token-11"));
        assert!(!store.check(""));
    }

    #[test]
    fn an_empty_store_accepts_nothing() {
        let store = TokenStore::new(Vec::<String>::new());
        assert!(store.is_empty());
        assert!(!store.check(""));
        assert!(!store.check_header("Bearer "));
    }

    #[test]
    fn header_needs_the_bearer_scheme() {
        let store = TokenStore::new(["tok-tok-tok-tok-1"]);
        assert!(store.check_header("bearer tok-tok-tok-tok-1"));
        assert!(!store.check_header("tok-tok-tok-tok-1"));
        assert!(!store.check_header("Token tok-tok-tok-tok-1"));
    }

    #[test]
    fn debug_does_not_leak_tokens() {
        let store = TokenStore::new(["secret-secret-secret"]);
        assert!(!format!("{store:?}").contains("secret"));
    }
}
