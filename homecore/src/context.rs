//! Contexts: who or what caused a change, and the loop guard built on them.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How many causal steps a chain of writes may take: a change made in reaction to an event has
/// the event's context as parent and a depth one higher. A write whose context is deeper than
/// this is refused with [`LoopGuardError`] and counted (see `EventBus::loop_guard_refusals`).
///
/// Sixteen steps is far more than any real automation chain (motion → light → scene → …) and
/// bounds a plugin that reacts to its own writes to sixteen dispatches per external change.
/// See docs/adr/0002-loop-guard.md.
pub const MAX_CONTEXT_DEPTH: u16 = 16;

/// A write refused by the loop guard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("causal chain of context {context_id} is {depth} steps deep, the limit is {max}")]
#[non_exhaustive]
pub struct LoopGuardError {
    /// The refused context.
    pub context_id: ContextId,
    /// Its depth.
    pub depth: u16,
    /// [`MAX_CONTEXT_DEPTH`].
    pub max: u16,
}

/// A context id: a ULID (48-bit millisecond timestamp, 80 bits unique per process), shown as
/// 26 Crockford base32 characters like Home Assistant's.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(u128);

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A string that is not a ULID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a context id (26 Crockford base32 characters)")]
#[non_exhaustive]
pub struct ContextIdError {
    /// The rejected text (at most 64 characters of it).
    pub value: String,
}

impl ContextId {
    /// A new, process-unique id.
    #[must_use]
    pub fn new() -> Self {
        static SEED: OnceLock<(u64, u16)> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let &(seed, high) = SEED.get_or_init(|| {
            let random = RandomState::new().hash_one(0x686f_6d65_636f_7265_u64);
            (random, (random >> 48) as u16 ^ 0x5a5a)
        });
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            & 0xFFFF_FFFF_FFFF;
        let unique = seed.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
        Self((u128::from(millis) << 80) | (u128::from(high) << 64) | u128::from(unique))
    }

    /// The raw 128-bit value.
    #[must_use]
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// Makes an id from its raw value.
    #[must_use]
    pub fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The id's text (26 Crockford base32 characters, as [`fmt::Display`] writes it) as
    /// ASCII bytes, without a formatter: for serializers on a hot path.
    #[must_use]
    pub fn to_bytes(self) -> [u8; 26] {
        let mut out = [0u8; 26];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = CROCKFORD[(v & 31) as usize];
            v >>= 5;
        }
        out
    }
}

impl Default for ContextId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for ContextId {
    type Err = ContextIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ContextIdError {
            value: s.chars().take(64).collect(),
        };
        if s.len() != 26 {
            return Err(err());
        }
        let mut v: u128 = 0;
        for (i, b) in s.bytes().enumerate() {
            let digit = CROCKFORD
                .iter()
                .position(|&c| c == b.to_ascii_uppercase())
                .ok_or_else(err)?;
            // The first character carries only 3 bits (26 * 5 = 130 > 128).
            if i == 0 && digit > 7 {
                return Err(err());
            }
            v = (v << 5) | digit as u128;
        }
        Ok(Self(v))
    }
}

impl fmt::Display for ContextId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(std::str::from_utf8(&bytes).expect("Crockford alphabet is ASCII"))
    }
}

impl fmt::Debug for ContextId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for ContextId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = self.to_bytes();
        serializer.serialize_str(std::str::from_utf8(&bytes).expect("Crockford alphabet is ASCII"))
    }
}

impl<'de> Deserialize<'de> for ContextId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who or what caused a change, as Home Assistant's `Context`.
///
/// A change made in reaction to an event carries a child of the event's context:
/// `parent_id` is the event's context id and the depth is one higher. The depth feeds the loop
/// guard ([`MAX_CONTEXT_DEPTH`]); it is not serialized (Home Assistant's wire shape has
/// `id`, `parent_id`, `user_id`; HomeCore adds `origin` when a plugin caused the change).
///
/// ```
/// use homecore::Context;
/// let user = Context::for_user("alice");
/// let reaction = user.child(Some("motion_lights".into()));
/// assert_eq!(reaction.parent_id, Some(user.id));
/// assert_eq!(reaction.depth(), 1);
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// This context's id.
    pub id: ContextId,
    /// The context of the event this change reacts to.
    pub parent_id: Option<ContextId>,
    /// The user who asked for the change.
    pub user_id: Option<Arc<str>>,
    /// The plugin (by domain) that made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
    #[serde(skip)]
    depth: u16,
}

impl Context {
    /// A root context: no parent, no user.
    #[must_use]
    pub fn new() -> Self {
        Self {
            id: ContextId::new(),
            parent_id: None,
            user_id: None,
            origin: None,
            depth: 0,
        }
    }

    /// A root context for a change a user asked for.
    #[must_use]
    pub fn for_user(user_id: impl Into<Arc<str>>) -> Self {
        Self {
            user_id: Some(user_id.into()),
            ..Self::new()
        }
    }

    /// A context for a change made in reaction to this one, by `origin` (a plugin domain).
    #[must_use]
    pub fn child(&self, origin: Option<Arc<str>>) -> Self {
        Self {
            id: ContextId::new(),
            parent_id: Some(self.id),
            user_id: None,
            origin,
            depth: self.depth.saturating_add(1),
        }
    }

    /// How many reactions lie between this context and its root.
    #[must_use]
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// Refuses a context deeper than [`MAX_CONTEXT_DEPTH`].
    ///
    /// # Errors
    /// [`LoopGuardError`] when the chain is too deep.
    pub fn check_depth(&self) -> Result<(), LoopGuardError> {
        if self.depth > MAX_CONTEXT_DEPTH {
            Err(LoopGuardError {
                context_id: self.id,
                depth: self.depth,
                max: MAX_CONTEXT_DEPTH,
            })
        } else {
            Ok(())
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id)
            .field("parent_id", &self.parent_id)
            .field("user_id", &self.user_id)
            .field("origin", &self.origin)
            .field("depth", &self.depth)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let a = ContextId::new();
        let b = ContextId::new();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text.parse::<ContextId>(), Ok(a));
        assert!("not-a-ulid".parse::<ContextId>().is_err());
        assert!("8ZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<ContextId>().is_err());
    }

    #[test]
    fn children_deepen_until_the_guard_refuses() {
        let mut ctx = Context::new();
        for _ in 0..MAX_CONTEXT_DEPTH {
            ctx = ctx.child(None);
            assert!(ctx.check_depth().is_ok());
        }
        let too_deep = ctx.child(None);
        let err = too_deep.check_depth().expect_err("too deep");
        assert_eq!(err.depth, MAX_CONTEXT_DEPTH + 1);
    }

    #[test]
    fn serializes_like_home_assistant() {
        let ctx = Context::for_user("u1");
        let json = serde_json::to_value(&ctx).expect("serializes");
        assert_eq!(json["user_id"], "u1");
        assert!(json["parent_id"].is_null());
        assert!(json.get("origin").is_none());
        assert_eq!(json["id"].as_str().map(str::len), Some(26));
    }
}
