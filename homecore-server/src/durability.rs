//! What the APIs acknowledge is on disk: a state-changing request is answered only once every
//! state change made before the answer is committed by the store's recorder
//! (docs/adr/0010-persistence.md). Shared by the REST and WebSocket APIs.

use std::sync::Arc;

use homecore_store::StateRecorder;

/// The recorder whose commits acknowledgements wait for, if any (an API without a store
/// acknowledges at once). Cheap to clone; clones share the recorder.
#[derive(Clone, Default)]
pub(crate) struct Durability(Option<Arc<StateRecorder>>);

impl Durability {
    /// Acknowledgements wait for `recorder`'s commits (none: at once).
    pub(crate) fn new(recorder: Option<Arc<StateRecorder>>) -> Self {
        Self(recorder)
    }

    /// Waits until every state change made before this call is committed.
    ///
    /// # Errors
    /// Why the commit failed: the change is in memory (and was announced on the bus) but not
    /// acknowledged as durable.
    pub(crate) async fn committed(&self) -> Result<(), String> {
        let Some(recorder) = &self.0 else {
            return Ok(());
        };
        recorder
            .wait_durable(recorder.seq())
            .await
            .map(drop)
            .map_err(|err| {
                format!(
                    "the change was made but could not be saved: {}",
                    crate::error_chain::error_chain(&err)
                )
            })
    }
}
