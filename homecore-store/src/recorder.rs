//! The state recorder: every state change written to disk in batches, off the set path.
//!
//! # How changes are observed without loss
//!
//! The recorder is a [`StateObserver`] of the state machine: every change appends the entity's
//! id to an in-memory change log under a mutex (a few tens of nanoseconds on the set path,
//! never a wait on disk) and counts it. A bus subscription would not do: its bounded queue
//! drops when full. The writer thread takes the whole log at once, and for each entity in it
//! writes the entity's *current* state read from the state machine (or deletes its row if the
//! entity is gone), all in one transaction. Reading the current state coalesces repeated
//! changes of one entity and means a row never goes back in time.
//!
//! # Sequence numbers
//!
//! The n-th state change made after the recorder started has sequence number n (the log's
//! count). [`StateRecorder::seq`] is the number of the latest change; the writer takes the
//! log and its count together, so after a commit every change up to that count is on disk:
//! that is [`StateRecorder::durable_seq`]. See docs/adr/0010-persistence.md.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use homecore::{EntityId, StateMachine, StateObserver};
use rusqlite::Connection;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::states::{delete, stored_ids, upsert};
use crate::{Store, StoreError};

/// When the recorder commits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// A change is committed at most this long after it was made (plus the commit's own
    /// time); while changes are pending the writer sleeps this long, then commits them all in
    /// one transaction.
    pub commit_interval: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            commit_interval: Duration::from_millis(20),
        }
    }
}

impl RecorderConfig {
    /// The defaults with another commit interval.
    #[must_use]
    pub fn with_commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }
}

/// Figures of a running recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RecorderStats {
    /// Every change up to this sequence number is committed.
    pub durable_seq: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Rows written or deleted.
    pub rows_written: u64,
    /// Commits that failed (and were retried).
    pub failures: u64,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    stats: RecorderStats,
    /// The latest commit failure (kept after later successes; `stats.failures` tells news).
    last_error: Option<Arc<StoreError>>,
    stopped: bool,
}

/// The change log the state machine appends to (see the module docs).
struct ChangeLog {
    pending: Mutex<Pending>,
    /// Told when the log goes from empty to not empty, so an idle writer wakes once per burst.
    arrived: Notify,
}

#[derive(Default)]
struct Pending {
    /// Changes logged since the recorder started.
    seq: u64,
    /// Entities changed since the writer last took the log.
    ids: Vec<EntityId>,
}

impl ChangeLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A push cannot panic half-way; the data is consistent after a poison.
        homecore::lock_unpoisoned(&self.pending)
    }

    /// The sequence number of the latest change and the entities changed since the last take.
    fn take(&self) -> (u64, Vec<EntityId>) {
        let mut pending = self.lock();
        (pending.seq, std::mem::take(&mut pending.ids))
    }
}

impl StateObserver for ChangeLog {
    fn state_changed(&self, entity_id: &EntityId) {
        let first = {
            let mut pending = self.lock();
            pending.seq += 1;
            // Consecutive changes of one entity need one entry (the writer reads the current
            // state); skipping the clone also keeps a chatty entity's reference count off the
            // writer thread.
            if pending.ids.last() != Some(entity_id) {
                pending.ids.push(entity_id.clone());
            }
            pending.ids.len() == 1
        };
        if first {
            self.arrived.notify_one();
        }
    }
}

struct Shared {
    log: Arc<ChangeLog>,
    /// Flush and stop requests.
    wake: Notify,
    /// The highest sequence number someone waits for.
    requested: AtomicU64,
    stop: AtomicBool,
}

/// Records every entity state change into the [`Store`] on a dedicated writer thread, so
/// [`StateMachine::set`] never waits on disk.
///
/// Durability: when [`StateRecorder::flush`] returns `Ok(n)` (or
/// [`StateRecorder::durable_seq`] reaches `n`), every state change made before the call
/// (sequence numbers up to `n`) is committed, and survives what the store's
/// [`crate::Durability`] promises. Without a flush, a change is committed within
/// [`RecorderConfig::commit_interval`] of being made, unless the disk is slower.
///
/// Dropping the recorder stops it after a final commit on its thread; [`StateRecorder::shutdown`]
/// does the same and waits for that commit.
pub struct StateRecorder {
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl std::fmt::Debug for StateRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRecorder")
            .field("path", &self.path)
            .field("seq", &self.seq())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl StateRecorder {
    /// Starts recording `states` into `store`. Every state already in the machine is committed
    /// before this returns. Rows of entities not in the machine are kept (a row is deleted
    /// only when its entity is removed while recording), so attaching before or after
    /// [`Store::restore`] loses nothing; after is cheaper.
    ///
    /// # Errors
    /// [`StoreError::CannotOpen`] and the like when the writer's connection cannot be opened,
    /// [`StoreError::Sqlite`] when the first batch cannot be committed,
    /// [`StoreError::Thread`] when the writer thread cannot be started.
    pub fn start(
        store: &Store,
        states: &StateMachine,
        config: RecorderConfig,
    ) -> Result<Self, StoreError> {
        let path = store.path().to_path_buf();
        let conn = store.connect()?;
        let in_db = stored_ids(&conn)
            .map_err(|e| store.error("reading stored entity ids", e))?
            .into_iter()
            .collect::<HashSet<_>>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| StoreError::Thread {
                path: path.clone(),
                source,
            })?;
        let log = Arc::new(ChangeLog {
            pending: Mutex::new(Pending::default()),
            arrived: Notify::new(),
        });
        let shared = Arc::new(Shared {
            log: Arc::clone(&log),
            wake: Notify::new(),
            requested: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let (progress_tx, progress) = watch::channel(Progress::default());
        let mut writer = Writer {
            conn,
            states: states.clone(),
            shared: Arc::clone(&shared),
            progress: progress_tx,
            config,
            path: path.clone(),
            dirty: HashSet::new(),
            dirty_since: None,
            in_db,
            retry_at: None,
            failures_in_a_row: 0,
        };
        // Everything already in the machine is committed before `start` returns (the observer
        // is in place first, so nothing made meanwhile is missed). Rows of entities not in the
        // machine are kept.
        let observer = Arc::clone(&log) as Arc<dyn StateObserver>;
        states.add_observer(Arc::clone(&observer));
        writer
            .dirty
            .extend(states.all().iter().map(|s| s.entity_id().clone()));
        let started = writer.write_dirty().and_then(|_| {
            std::thread::Builder::new()
                .name("homecore-store-recorder".into())
                .spawn(move || runtime.block_on(writer.run()))
                .map_err(|source| StoreError::Thread {
                    path: path.clone(),
                    source,
                })
        });
        let thread = match started {
            Ok(thread) => thread,
            Err(err) => {
                states.remove_observer(&observer);
                return Err(err);
            }
        };
        Ok(Self {
            shared,
            progress,
            thread: Some(thread),
            path,
        })
    }

    /// The sequence number of the latest state change made so far: once
    /// [`StateRecorder::durable_seq`] reaches it, every change made before this call is
    /// committed.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.shared.log.lock().seq
    }

    /// Every change up to this sequence number is committed.
    #[must_use]
    pub fn durable_seq(&self) -> u64 {
        self.progress.borrow().stats.durable_seq
    }

    /// The recorder's figures.
    #[must_use]
    pub fn stats(&self) -> RecorderStats {
        self.progress.borrow().stats
    }

    /// Waits until every state change made before this call is committed; returns the
    /// durable sequence number reached. Asks the writer to commit now rather than at the end
    /// of its interval.
    ///
    /// # Errors
    /// [`StoreError::RecorderFailed`] when a commit failed after the call (the writer keeps
    /// retrying); [`StoreError::RecorderStopped`] when the writer has stopped.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        self.wait_durable(self.seq()).await
    }

    /// Waits until every change up to sequence number `seq` is committed (see
    /// [`StateRecorder::seq`]), asking the writer to commit now.
    ///
    /// # Errors
    /// As [`StateRecorder::flush`].
    pub async fn wait_durable(&self, seq: u64) -> Result<u64, StoreError> {
        let mut progress = self.progress.clone();
        let (durable, failures_before) = {
            let p = progress.borrow();
            (p.stats.durable_seq, p.stats.failures)
        };
        if durable >= seq {
            // Already committed (e.g. a request that changed nothing): no writer wake-up.
            return Ok(durable);
        }
        self.shared.requested.fetch_max(seq, Ordering::AcqRel);
        self.shared.wake.notify_one();
        let seen = progress
            .wait_for(|p| {
                p.stats.durable_seq >= seq || p.stopped || p.stats.failures > failures_before
            })
            .await
            .map(|p| p.clone())
            .map_err(|_| StoreError::RecorderStopped {
                path: self.path.clone(),
            })?;
        self.outcome(&seen, seq)
    }

    /// `Ok` when `seq` is durable in `seen`, else why not.
    fn outcome(&self, seen: &Progress, seq: u64) -> Result<u64, StoreError> {
        if seen.stats.durable_seq >= seq {
            return Ok(seen.stats.durable_seq);
        }
        match &seen.last_error {
            Some(source) => Err(StoreError::RecorderFailed {
                path: self.path.clone(),
                source: Arc::clone(source),
            }),
            None => Err(StoreError::RecorderStopped {
                path: self.path.clone(),
            }),
        }
    }

    /// Stops the recorder after a final commit of every change made so far; returns the
    /// durable sequence number reached.
    ///
    /// # Errors
    /// [`StoreError::RecorderFailed`] when the final commit failed.
    pub async fn shutdown(mut self) -> Result<u64, StoreError> {
        let outcome = self.close().await;
        if let Some(thread) = self.thread.take() {
            // The thread has published `stopped` as its last act, so this join is immediate.
            let _ = thread.join();
        }
        outcome
    }

    /// Stops the recorder like [`StateRecorder::shutdown`], through a shared reference (for a
    /// recorder behind an `Arc` that request handlers also hold): a final commit of every
    /// change made so far, then the writer stops. Later calls to
    /// [`StateRecorder::wait_durable`] for later changes fail with
    /// [`StoreError::RecorderStopped`].
    ///
    /// # Errors
    /// [`StoreError::RecorderFailed`] when the final commit failed.
    pub async fn close(&self) -> Result<u64, StoreError> {
        let seq = self.signal_stop();
        let mut progress = self.progress.clone();
        let last = match progress.wait_for(|p| p.stopped).await {
            Ok(p) => p.clone(),
            Err(_) => self.progress.borrow().clone(),
        };
        self.outcome(&last, seq)
    }

    /// Asks the writer to commit everything made so far and stop; returns that sequence number.
    fn signal_stop(&self) -> u64 {
        let seq = self.seq();
        self.shared.requested.fetch_max(seq, Ordering::AcqRel);
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        seq
    }
}

impl Drop for StateRecorder {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.signal_stop();
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    states: StateMachine,
    shared: Arc<Shared>,
    progress: watch::Sender<Progress>,
    config: RecorderConfig,
    path: PathBuf,
    /// Entities whose current state is to be written.
    dirty: HashSet<EntityId>,
    /// When the oldest uncommitted change was seen.
    dirty_since: Option<Instant>,
    /// Entities that have a row.
    in_db: HashSet<String>,
    /// After a failed commit: when to try again.
    retry_at: Option<Instant>,
    failures_in_a_row: u32,
}

/// Marks the writer stopped however its thread ends (a panic included), so waiters wake.
struct StoppedOnExit(watch::Sender<Progress>);

impl Drop for StoppedOnExit {
    fn drop(&mut self) {
        self.0.send_modify(|p| p.stopped = true);
    }
}

impl Writer {
    async fn run(mut self) {
        let _stopped = StoppedOnExit(self.progress.clone());
        loop {
            if self.dirty_since.is_none() && !self.shared.log.lock().ids.is_empty() {
                self.dirty_since = Some(Instant::now());
            }
            match self.deadline() {
                // Nothing uncommitted: wait for the first change (one wake-up per burst) or a
                // flush.
                None => tokio::select! {
                    biased;
                    () = self.shared.wake.notified() => {}
                    () = self.shared.log.arrived.notified() => {}
                },
                // Changes are pending: sleep until they are due without listening for more,
                // so a change never has to wake this thread.
                Some(at) => tokio::select! {
                    biased;
                    () = self.shared.wake.notified() => {}
                    () = tokio::time::sleep_until(at) => {}
                },
            }
            let stopping = self.shared.stop.load(Ordering::Acquire);
            if stopping {
                // Changes after this are not recorded; everything before is in the log.
                let log = Arc::clone(&self.shared.log) as Arc<dyn StateObserver>;
                self.states.remove_observer(&log);
            }
            if stopping || self.commit_due() {
                self.commit();
            }
            if stopping {
                break;
            }
        }
    }

    /// When the next commit is due without further events.
    fn deadline(&self) -> Option<Instant> {
        if let Some(retry) = self.retry_at {
            return Some(retry);
        }
        self.dirty_since.map(|t| t + self.config.commit_interval)
    }

    fn commit_due(&self) -> bool {
        let now = Instant::now();
        if self.retry_at.is_some_and(|t| now < t) {
            return false;
        }
        self.shared.requested.load(Ordering::Acquire) > self.durable()
            || self
                .dirty_since
                .is_some_and(|t| now >= t + self.config.commit_interval)
    }

    fn durable(&self) -> u64 {
        self.progress.borrow().stats.durable_seq
    }

    /// Takes the change log and commits it: see the module docs.
    fn commit(&mut self) {
        let (target, ids) = self.shared.log.take();
        self.dirty.extend(ids);
        if self.dirty.is_empty() {
            self.succeeded(target, 0);
            return;
        }
        match self.write_dirty() {
            Ok(rows) => self.succeeded(target, rows),
            Err(source) => self.failed(source),
        }
    }

    /// Writes every dirty entity's current state in one transaction; returns the rows written.
    fn write_dirty(&mut self) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let err = |operation, e| StoreError::classify(&path, operation, e);
        let tx = self
            .conn
            .transaction()
            .map_err(|e| err("starting a state batch", e))?;
        let mut rows = 0;
        let mut present = Vec::new();
        let mut gone = Vec::new();
        for id in &self.dirty {
            match self.states.get(id) {
                Some(state) => {
                    upsert(&tx, &state).map_err(|e| err("writing a state", e))?;
                    if !self.in_db.contains(id.as_str()) {
                        present.push(id.as_str().to_owned());
                    }
                    rows += 1;
                }
                None if self.in_db.contains(id.as_str()) => {
                    delete(&tx, id.as_str()).map_err(|e| err("deleting a state", e))?;
                    gone.push(id.as_str().to_owned());
                    rows += 1;
                }
                None => {}
            }
        }
        tx.commit()
            .map_err(|e| err("committing a state batch", e))?;
        for id in gone {
            self.in_db.remove(&id);
        }
        self.in_db.extend(present);
        self.dirty.clear();
        Ok(rows)
    }

    fn succeeded(&mut self, target: u64, rows: u64) {
        self.dirty.clear();
        self.dirty_since = None;
        self.retry_at = None;
        self.failures_in_a_row = 0;
        self.progress.send_modify(|p| {
            p.stats.durable_seq = p.stats.durable_seq.max(target);
            if rows > 0 {
                p.stats.commits += 1;
                p.stats.rows_written += rows;
            }
        });
        // A waiter whose sequence number was not visible yet asks again on the next round.
        if self.shared.requested.load(Ordering::Acquire) > target {
            self.dirty_since = Some(Instant::now());
        }
    }

    fn failed(&mut self, error: StoreError) {
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let backoff = self
            .config
            .commit_interval
            .saturating_mul(1 << self.failures_in_a_row.min(6))
            .min(Duration::from_secs(1));
        tracing::error!(
            path = %self.path.display(),
            error = %error,
            retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
            "state recorder could not commit; retrying"
        );
        self.retry_at = Some(Instant::now() + backoff);
        let error = Arc::new(error);
        self.progress.send_modify(|p| {
            p.stats.failures += 1;
            p.last_error = Some(error);
        });
    }
}
