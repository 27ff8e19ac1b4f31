//! The SDK's error type.

use std::fmt::Write as _;

use homecore_abi::v1::Status;

/// A boxed error of any kind, for [`Error::Other`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a host call or a plugin call failed.
///
/// Host calls fail with [`Error::Host`], which carries the ABI's [`Status`]; a plugin's own
/// failures are [`Error::Config`], [`Error::UnknownService`], [`Error::Json`] or
/// [`Error::Other`]. When a plugin call returns an error, the SDK hands its message (with its
/// sources) to the host through the `error` import and answers [`Status::GuestError`] (or
/// [`Status::UnknownService`] for [`Error::UnknownService`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A host call answered a failure status.
    #[error("host call {call} failed: {status}")]
    Host {
        /// The import called, e.g. `state_set`.
        call: &'static str,
        /// What the host answered.
        status: Status,
    },
    /// A host call answered a code that is neither a status nor a result it may give.
    #[error("host call {call} answered unexpected code {code}")]
    UnexpectedCode {
        /// The import called.
        call: &'static str,
        /// The code.
        code: i64,
    },
    /// A host call's result is not the JSON the ABI promises.
    #[error("host call {call} answered malformed json")]
    BadResponse {
        /// The import called.
        call: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The plugin's configuration is invalid.
    #[error("invalid configuration at {path}: {reason}")]
    Config {
        /// Where in the configuration, e.g. `quiet_seconds` or `rooms[2]`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The plugin does not provide the service it was asked for.
    #[error("plugin does not provide service {service}")]
    UnknownService {
        /// The service asked for.
        service: String,
    },
    /// The plugin's own JSON could not be read or written.
    #[error("json data could not be converted")]
    Json(#[from] serde_json::Error),
    /// Any other failure inside the plugin.
    #[error(transparent)]
    Other(BoxError),
}

impl Error {
    /// Wraps any error, or a message (`&str`, `String`), as [`Error::Other`].
    ///
    /// ```
    /// use homecore_plugin_sdk::Error;
    /// let err = Error::other("the bridge did not answer");
    /// assert_eq!(err.to_string(), "the bridge did not answer");
    /// ```
    pub fn other(err: impl Into<BoxError>) -> Self {
        Self::Other(err.into())
    }

    /// A configuration error at `path`.
    ///
    /// ```
    /// use homecore_plugin_sdk::Error;
    /// let err = Error::config("quiet_seconds", "must be above 0");
    /// assert_eq!(err.to_string(), "invalid configuration at quiet_seconds: must be above 0");
    /// ```
    pub fn config(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The host's status, when a host call failed.
    #[must_use]
    pub fn status(&self) -> Option<Status> {
        match self {
            Self::Host { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error for a failed host call's code: a [`Status`], or [`Error::UnexpectedCode`].
    pub(crate) fn from_code(call: &'static str, code: i64) -> Self {
        match i32::try_from(code).ok().and_then(Status::from_code) {
            Some(status) if status != Status::Ok => Self::Host { call, status },
            _ => Self::UnexpectedCode { call, code },
        }
    }

    /// The status an export answers for this error.
    pub(crate) fn export_status(&self) -> Status {
        match self {
            Self::UnknownService { .. } => Status::UnknownService,
            _ => Status::GuestError,
        }
    }

    /// The message with every source, `outer: inner: innermost`, as the host is told it.
    #[must_use]
    pub fn report(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = write!(text, "{self}");
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            let _ = write!(text, ": {err}");
            source = err.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_codes_map_to_statuses() {
        let err = Error::from_code("state_set", -2);
        assert_eq!(err.status(), Some(Status::Denied));
        assert_eq!(
            err.to_string(),
            "host call state_set failed: permission denied (-2)"
        );
        assert!(matches!(
            Error::from_code("kv_get", -999),
            Error::UnexpectedCode { code: -999, .. }
        ));
        assert!(matches!(
            Error::from_code("kv_get", 0),
            Error::UnexpectedCode { code: 0, .. }
        ));
        assert!(matches!(
            Error::from_code("kv_get", i64::MIN),
            Error::UnexpectedCode { .. }
        ));
    }

    #[test]
    fn report_includes_sources() {
        let source = serde_json::from_str::<u8>("x").expect_err("not json");
        let err = Error::BadResponse {
            call: "state_get",
            source,
        };
        let report = err.report();
        assert!(
            report.starts_with("host call state_get answered malformed json: expected value"),
            "{report}"
        );
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Error>();
        is_send_sync::<crate::OwnedState>();
        is_send_sync::<crate::ServiceResult>();
        is_send_sync::<crate::Config<'_>>();
    }

    #[test]
    fn unknown_service_has_its_own_status() {
        let err = Error::UnknownService {
            service: "x.y".into(),
        };
        assert_eq!(err.export_status(), Status::UnknownService);
        assert_eq!(Error::other("boom").export_status(), Status::GuestError);
    }
}
