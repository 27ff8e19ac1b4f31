//! One line for an error and its causes, as the server logs them and answers them
//! (REST and WebSocket errors, startup, durability, hot reload).
//!
//! homecore-package keeps its own `chain` for its command reports: it drops a cause only when
//! the message already *ends* with it (a `transparent` wrapper), where this one drops a cause
//! the message already *contains* anywhere (the server's errors often quote their cause
//! mid-sentence, e.g. "the change was made but could not be saved: …"). Different rules, so
//! two functions.

/// An error and its sources, joined with `: `; a source whose text the line already contains
/// is skipped.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use homecore::ServiceError;

    use super::*;

    #[test]
    fn error_chain_joins_distinct_sources() {
        let name = homecore::ServiceName::new("a", "b").expect("valid");
        let err = ServiceError::Failed {
            name,
            source: Box::new(homecore_plugins::PluginError::Timeout { limit_ms: 5 }),
        };
        assert_eq!(
            error_chain(&err),
            "service a.b failed: call exceeded its 5 ms deadline"
        );
    }

    #[test]
    fn a_source_already_quoted_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: inner")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner")]
        struct Inner;
        assert_eq!(error_chain(&Outer(Inner)), "outer: inner");
    }
}
