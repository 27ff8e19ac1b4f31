//! What the APIs acknowledge is on disk: a state-changing request is answered only once every
//! state change made before the answer is committed by the store's recorder
//! (docs/adr/0010-persistence.md). Shared by the REST and WebSocket APIs.

use std::sync::{Arc, OnceLock};

use homecore_store::StateRecorder;

/// The recorder whose commits acknowledgements wait for; none until the server sets one
/// (an API without a store acknowledges at once). Cheap to clone; clones share the recorder.
#[derive(Clone, Default)]
pub(crate) struct Durability(Arc<OnceLock<Arc<StateRecorder>>>);

impl Durability {
    /// Sets the recorder; later calls are ignored.
    pub(crate) fn set(&self, recorder: Arc<StateRecorder>) {
        let _ = self.0.set(recorder);
    }

    /// Waits until every state change made before this call is committed.
    ///
    /// # Errors
    /// Why the commit failed: the change is in memory (and was announced on the bus) but not
    /// acknowledged as durable.
    pub(crate) async fn committed(&self) -> Result<(), String> {
        let Some(recorder) = self.0.get() else {
            return Ok(());
        };
        recorder
            .wait_durable(recorder.seq())
            .await
            .map(drop)
            .map_err(|err| {
                format!(
                    "the change was made but could not be saved: {}",
                    crate::rest::error_chain(&err)
                )
            })
    }
}
