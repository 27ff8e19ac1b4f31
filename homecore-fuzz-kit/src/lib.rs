//! What every property-based fuzz target of HomeCore shares (docs/fuzzing.md): the run's
//! settings, byte-level mutations of a valid sample, and arbitrary JSON values. A
//! dev-dependency of the crates that fuzz their readers; it depends on nothing of HomeCore's.
//!
//! ```
//! use homecore_fuzz_kit::{Edits, apply};
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::default();
//! let edits = Edits::default().strategy().new_tree(&mut runner).unwrap().current();
//! let mutated = apply(br#"{"state":"on"}"#, &edits);
//! assert!(mutated.len() <= 14 + edits.len());
//! ```

use std::ops::RangeInclusive;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;

/// A fuzz run's settings: `PROPTEST_CASES` cases (256 by default, a short run fit for the
/// test command), no failure-persistence files.
#[must_use]
pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// One edit of a valid sample; positions wrap around the sample's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Edit {
    /// XOR the byte at a position with a non-zero mask.
    Flip(usize, u8),
    /// Insert a byte at a position.
    Insert(usize, u8),
    /// Delete the byte at a position.
    Delete(usize),
    /// Cut the sample at a position.
    Truncate(usize),
}

/// How a sample is mutated.
#[derive(Debug, Clone)]
pub struct Edits {
    /// The masks a flip uses (`1..=127` keeps ASCII text ASCII).
    pub flip: RangeInclusive<u8>,
    /// The bytes an insertion picks from (`None`: any byte).
    pub inserted: Option<&'static [u8]>,
    /// The most edits per case (at least one).
    pub most: usize,
}

impl Default for Edits {
    fn default() -> Self {
        Self {
            flip: 1..=255,
            inserted: None,
            most: 3,
        }
    }
}

impl Edits {
    /// Insertions pick from `bytes` (a text format's punctuation, say).
    #[must_use]
    pub fn inserting(mut self, bytes: &'static [u8]) -> Self {
        self.inserted = Some(bytes);
        self
    }

    /// The strategy: one to `most` edits.
    pub fn strategy(self) -> impl Strategy<Value = Vec<Edit>> {
        let inserted = match self.inserted {
            Some(bytes) => prop::sample::select(bytes.to_vec()).boxed(),
            None => any::<u8>().boxed(),
        };
        let edit = prop_oneof![
            (any::<usize>(), self.flip).prop_map(|(i, b)| Edit::Flip(i, b)),
            (any::<usize>(), inserted).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Delete),
            any::<usize>().prop_map(Edit::Truncate),
        ];
        prop::collection::vec(edit, 1..=self.most.max(1))
    }
}

/// `sample` with `edits` applied in order.
#[must_use]
pub fn apply(sample: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut out = sample.to_vec();
    for edit in edits {
        let len = out.len();
        match *edit {
            Edit::Flip(i, b) if len > 0 => out[i % len] ^= b,
            Edit::Insert(i, b) => out.insert(i % (len + 1), b),
            Edit::Delete(i) if len > 0 => {
                out.remove(i % len);
            }
            Edit::Truncate(i) => out.truncate(i % (len + 1)),
            _ => {}
        }
    }
    out
}

/// Arbitrary JSON values up to `depth` levels: every scalar kind (finite numbers), any text,
/// text matching `strings` (a regex of the format's own vocabulary), objects keyed by `[a-z_]`.
pub fn json_value(strings: &'static str, depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        strings.prop_map(Value::String),
    ];
    leaf.prop_recursive(depth, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_wrap_around_and_never_panic_on_empty_samples() {
        let edits = [
            Edit::Flip(7, 1),
            Edit::Insert(100, b'x'),
            Edit::Delete(3),
            Edit::Truncate(1),
        ];
        assert_eq!(apply(b"abc", &edits), b"x");
        assert_eq!(apply(b"", &edits), b"");
    }
}
