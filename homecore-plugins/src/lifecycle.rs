//! A plugin's lifecycle state.

/// A plugin's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Lifecycle {
    /// Waiting for dependencies, loading, or running setup (with retries).
    Loading,
    /// Receiving events.
    Running,
    /// Tearing down.
    Stopping,
    /// Torn down (unloaded, or on the way to a reload).
    Stopped,
    /// Could not start; see the last error.
    Failed,
    /// Stopped after repeated failures; see the last error.
    Quarantined,
}

impl Lifecycle {
    /// Whether starting is over (running, or given up).
    #[must_use]
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Loading)
    }
}
