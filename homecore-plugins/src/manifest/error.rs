//! What can be wrong with a manifest.

use std::fmt;

use homecore::{EntityGlobError, EntityIdError};

use super::RuntimeKind;
use crate::NamePatternError;

/// Why a manifest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The input is longer than [`MAX_MANIFEST_BYTES`](super::MAX_MANIFEST_BYTES).
    #[error("manifest is {len} bytes long, the limit is {max}")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not JSON.
    #[error("manifest is not valid json: {message} at line {line} column {column}")]
    Syntax {
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The input is JSON but not an object.
    #[error("manifest must be a json object, found {found}")]
    NotAnObject {
        /// The JSON type found (`"array"`, `"string"`, ...).
        found: &'static str,
    },
    /// The manifest breaks one or more rules; all of them are listed, one per line.
    #[error("{}", InvalidDisplay { domain: domain.as_deref(), problems })]
    Invalid {
        /// The manifest's `domain` if it is a string (valid or not; capped at 128 bytes).
        domain: Option<String>,
        /// Every problem found, field by field in the order of [`PluginManifest`]'s fields
        /// (then [`HomecoreSection`]'s), elements of a list in order.
        ///
        /// [`PluginManifest`]: super::PluginManifest
        /// [`HomecoreSection`]: super::HomecoreSection
        problems: Vec<ManifestProblem>,
    },
}

impl ManifestError {
    /// The problems of an [`ManifestError::Invalid`] manifest; empty for other errors.
    #[must_use]
    pub fn problems(&self) -> &[ManifestProblem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// The text of [`ManifestError::Invalid`]: a header, then one problem per line.
struct InvalidDisplay<'a> {
    domain: Option<&'a str>,
    problems: &'a [ManifestProblem],
}

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("manifest")?;
        if let Some(domain) = self.domain {
            write!(f, " of {domain:?}")?;
        }
        let n = self.problems.len();
        write!(f, " has {n} problem{}:", if n == 1 { "" } else { "s" })?;
        for problem in self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// One problem in a manifest, at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ManifestProblem {
    /// Where: dotted keys and `[index]`es from the top, e.g.
    /// `homecore.permissions.states_write[2]`. Keys that are not plain identifiers are
    /// written quoted, as `["key"]`.
    pub path: String,
    /// What is wrong there.
    pub kind: ProblemKind,
}

/// What is wrong at a [`ManifestProblem`]'s path. Values quoted from the manifest are capped
/// at 128 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A required field is absent.
    #[error("is required")]
    Missing,
    /// The value has the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What was expected (`"string"`, `"array of strings"`, ...).
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A key that is not allowed here (in `homecore.permissions` and `homecore.limits`,
    /// where a typo must not be silently ignored).
    #[error("unknown field, expected one of: {}", List(allowed))]
    UnknownField {
        /// The keys allowed here.
        allowed: &'static [&'static str],
    },
    /// An empty string, or an empty SSDP matcher.
    #[error("must not be empty")]
    Empty,
    /// A string longer than allowed.
    #[error("is {len} bytes long, the limit is {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a valid domain (`domain`, `dependencies[i]`, `after_dependencies[i]`).
    #[error(transparent)]
    InvalidDomain(EntityIdError),
    /// Not a valid entity glob (`homecore.permissions.states_read[i]`, `states_write[i]`).
    #[error("{error}")]
    InvalidGlob {
        /// The pattern.
        value: String,
        /// Why it is invalid.
        error: EntityGlobError,
    },
    /// Not a valid name pattern (`homecore.permissions.services[i]`, `events[i]`).
    #[error("{error}")]
    InvalidPattern {
        /// The pattern.
        value: String,
        /// Why it is invalid.
        error: NamePatternError,
    },
    /// An event-type pattern that matches only event types the core owns
    /// (`homecore.permissions.events[i]`): only the core makes them, so it grants nothing.
    #[error(
        "{value:?} names event types only the core may make (state_changed, call_service, homeassistant_*, ...)"
    )]
    CoreEventType {
        /// The pattern.
        value: String,
    },
    /// Not a semantic version (`version`).
    #[error("{value:?} is not a semantic version: {message}")]
    InvalidVersion {
        /// The text.
        value: String,
        /// The semver parser's explanation.
        message: String,
    },
    /// Not a semantic version requirement (`homecore.api_version`).
    #[error("{value:?} is not a semantic version requirement: {message}")]
    InvalidVersionReq {
        /// The text.
        value: String,
        /// The semver parser's explanation.
        message: String,
    },
    /// Not one of the allowed names (`iot_class`, `integration_type`, `quality_scale`,
    /// `homecore.runtime`).
    #[error("{value:?} is not one of: {}", List(allowed))]
    NotInSet {
        /// The text.
        value: String,
        /// The allowed names.
        allowed: &'static [&'static str],
    },
    /// Not an http(s) URL (`documentation`, `issue_tracker`).
    #[error("{value:?} is not an http(s) url: {reason}")]
    InvalidUrl {
        /// The text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A code owner that is not `@user` or `@org/team`.
    #[error("{value:?} is not a github user or team: it must start with '@' and have no spaces")]
    InvalidCodeowner {
        /// The text.
        value: String,
    },
    /// A dependency on the plugin's own domain.
    #[error("{domain:?} is the plugin's own domain")]
    SelfDependency {
        /// The domain.
        domain: String,
    },
    /// A value listed twice.
    #[error("{value:?} is already listed at index {first_index}")]
    Duplicate {
        /// The repeated value.
        value: String,
        /// Index of its first occurrence in the same list.
        first_index: usize,
    },
    /// `homecore.module` is not an acceptable module path.
    #[error("{value:?} is not a valid module path: {reason}")]
    InvalidModulePath {
        /// The path.
        value: String,
        /// What is wrong with it.
        reason: ModulePathError,
    },
    /// Required for this runtime (`homecore.module` for wasm plugins).
    #[error("is required for {runtime} plugins")]
    RequiredForRuntime {
        /// The plugin's runtime.
        runtime: RuntimeKind,
    },
    /// Not allowed for this runtime (`homecore.module` for native plugins).
    #[error("must be absent for {runtime} plugins")]
    NotAllowedForRuntime {
        /// The plugin's runtime.
        runtime: RuntimeKind,
    },
    /// A limit of 0 or below.
    #[error("must be greater than 0")]
    NotPositive,
    /// A limit above what its type holds.
    #[error("must be at most {max}")]
    TooLarge {
        /// The largest value allowed.
        max: u64,
    },
}

/// Why a `homecore.module` path is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModulePathError {
    /// The path is empty.
    #[error("the path is empty")]
    Empty,
    /// Starts with `/` or `\`, or a drive letter such as `C:`.
    #[error("absolute paths are not allowed")]
    Absolute,
    /// Has a `..` component.
    #[error("'..' components are not allowed")]
    ParentDir,
    /// Contains a NUL byte.
    #[error("nul bytes are not allowed")]
    Nul,
    /// The file name does not end in `.wasm`.
    #[error("the file name must end in \".wasm\"")]
    NotWasm,
}

/// Names joined by `", "`.
struct List(&'static [&'static str]);

impl fmt::Display for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// The longest text quoted from a manifest in an error, in bytes.
const MAX_QUOTED_LEN: usize = 128;

/// `text`, cut to [`MAX_QUOTED_LEN`] bytes at a character boundary, with `…` when cut.
pub(super) fn cap(text: &str) -> String {
    homecore_abi::text::quoted(text, MAX_QUOTED_LEN)
}
