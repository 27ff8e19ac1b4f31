//! The state recorder: every state change written to disk in batches, off the set path.
//!
//! # How changes are observed without loss
//!
//! The recorder subscribes to every state change with a large queue. The bus never blocks a
//! publisher, so a full queue drops changes; the recorder therefore treats an event only as
//! "this entity is dirty" and, when it commits, writes each dirty entity's *current* state
//! read from the state machine (or deletes its row if the entity is gone). A dropped event is
//! noticed through the subscription's drop counter and answered with a resync: every entity
//! in the state machine or on disk is marked dirty. Reading the current state also means a
//! row never goes back in time, whatever the order events are processed in.
//!
//! # Sequence numbers
//!
//! The n-th state change published after the recorder started has sequence number n (counted
//! by the subscription: changes queued plus changes dropped). [`StateRecorder::seq`] is the
//! number of the latest change; [`StateRecorder::durable_seq`] is the highest n such that every
//! change up to n is committed. See docs/adr/0010-persistence.md.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use homecore::{Event, EventBus, EventFilter, StateMachine, Subscription, SubscriptionStats};
use rusqlite::Connection;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::states::{delete, stored_ids, upsert};
use crate::{Store, StoreError};

/// When the recorder commits.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// A change is committed at most this long after it was made (unless the disk is slower).
    pub commit_interval: Duration,
    /// A batch is committed as soon as this many entities are dirty.
    pub max_batch: usize,
    /// The recorder's event queue; an overflow costs a resync, never a lost change.
    pub queue_capacity: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            commit_interval: Duration::from_millis(20),
            max_batch: 1024,
            queue_capacity: 1 << 16,
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

    /// The defaults with another queue capacity (at least 1).
    #[must_use]
    pub fn with_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
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
    /// Full resyncs after dropped events.
    pub resyncs: u64,
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

struct Shared {
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
    stats: SubscriptionStats,
    bus: EventBus,
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
    /// before this returns (rows of entities not in the machine are kept, but a later resync
    /// deletes them: attach after [`Store::restore`]).
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
        let bus = states.bus().clone();
        let sub = bus
            .subscribe([EventFilter::AllStateChanges], config.queue_capacity.max(1))
            .expect("capacity is at least 1");
        let stats = sub.stats();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|source| StoreError::Thread {
                path: path.clone(),
                source,
            })?;
        let shared = Arc::new(Shared {
            wake: Notify::new(),
            requested: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let (progress_tx, progress) = watch::channel(Progress::default());
        let mut writer = Writer {
            conn,
            sub,
            stats: stats.clone(),
            states: states.clone(),
            shared: Arc::clone(&shared),
            progress: progress_tx,
            config,
            path: path.clone(),
            received: 0,
            synced_drops: 0,
            need_resync: false,
            dirty: HashSet::new(),
            dirty_since: None,
            in_db,
            retry_at: None,
            failures_in_a_row: 0,
        };
        // Everything already in the machine is committed before `start` returns (the
        // subscription is already in place, so nothing made meanwhile is missed). Rows of
        // entities not in the machine are kept.
        writer.dirty.extend(
            states
                .all()
                .iter()
                .map(|s| s.entity_id().as_str().to_owned()),
        );
        writer.write_dirty()?;
        let thread = std::thread::Builder::new()
            .name("homecore-store-recorder".into())
            .spawn(move || runtime.block_on(writer.run()))
            .map_err(|source| StoreError::Thread {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            shared,
            stats,
            bus,
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
        // Taking the bus lock orders this read after every publish that has completed
        // (publishes count deliveries and drops under that lock).
        let _ = self.bus.subscriber_count();
        self.stats.delivered() + self.stats.dropped()
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
        let failures_before = progress.borrow().stats.failures;
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
        let seq = self.signal_stop();
        let mut progress = self.progress.clone();
        let last = match progress.wait_for(|p| p.stopped).await {
            Ok(p) => p.clone(),
            Err(_) => self.progress.borrow().clone(),
        };
        if let Some(thread) = self.thread.take() {
            // The thread has published `stopped` as its last act, so this join is immediate.
            let _ = thread.join();
        }
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
    sub: Subscription,
    stats: SubscriptionStats,
    states: StateMachine,
    shared: Arc<Shared>,
    progress: watch::Sender<Progress>,
    config: RecorderConfig,
    path: PathBuf,
    /// Events taken from the queue so far.
    received: u64,
    /// The drop count the last successful commit accounted for.
    synced_drops: u64,
    /// A resync is owed (drops, or events that could not be received).
    need_resync: bool,
    /// Entities whose current state is to be written.
    dirty: HashSet<String>,
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
        let mut buffer = Vec::with_capacity(self.config.max_batch);
        loop {
            let deadline = self.deadline();
            let mut bus_gone = false;
            tokio::select! {
                biased;
                () = self.shared.wake.notified() => {}
                n = self.sub.recv_many(&mut buffer, self.config.max_batch) => {
                    bus_gone = n == 0;
                    self.received += n as u64;
                    for event in buffer.drain(..) {
                        self.mark(&event);
                    }
                }
                () = sleep_until(deadline) => {}
            }
            let stopping = self.shared.stop.load(Ordering::Acquire) || bus_gone;
            if stopping || self.commit_due() {
                self.commit();
            }
            if stopping {
                break;
            }
        }
    }

    fn mark(&mut self, event: &Event) {
        if let Some(change) = event.as_state_changed() {
            self.dirty.insert(change.entity_id.as_str().to_owned());
            self.dirty_since.get_or_insert_with(Instant::now);
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
            || self.dirty.len() >= self.config.max_batch
            || self.stats.dropped() > self.synced_drops
            || self
                .dirty_since
                .is_some_and(|t| now >= t + self.config.commit_interval)
    }

    fn durable(&self) -> u64 {
        self.progress.borrow().stats.durable_seq
    }

    /// Takes in everything published so far and commits it: see the module docs.
    fn commit(&mut self) {
        // Order the counter reads after every completed publish (see `StateRecorder::seq`).
        let _ = self.states.bus().subscriber_count();
        let delivered = self.stats.delivered();
        let dropped = self.stats.dropped();
        while self.received < delivered {
            let Some(event) = self.sub.try_recv() else {
                // Counted but not visible yet: a resync covers it.
                self.need_resync = true;
                break;
            };
            self.received += 1;
            self.mark(&event);
        }
        let resync = self.need_resync || dropped > self.synced_drops;
        if resync {
            tracing::warn!(
                path = %self.path.display(),
                dropped = dropped - self.synced_drops,
                "state recorder missed events; writing every entity's current state"
            );
            self.dirty.extend(
                self.states
                    .all()
                    .iter()
                    .map(|s| s.entity_id().as_str().to_owned()),
            );
            self.dirty.extend(self.in_db.iter().cloned());
        }
        let target = delivered + dropped;
        if self.dirty.is_empty() {
            self.succeeded(target, dropped, resync, 0);
            return;
        }
        match self.write_dirty() {
            Ok(rows) => self.succeeded(target, dropped, resync, rows),
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
            match self.states.get_str(id) {
                Some(state) => {
                    upsert(&tx, &state).map_err(|e| err("writing a state", e))?;
                    present.push(id.clone());
                    rows += 1;
                }
                None if self.in_db.contains(id) => {
                    delete(&tx, id).map_err(|e| err("deleting a state", e))?;
                    gone.push(id.clone());
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

    fn succeeded(&mut self, target: u64, dropped: u64, resync: bool, rows: u64) {
        self.dirty.clear();
        self.dirty_since = None;
        self.synced_drops = dropped;
        self.need_resync = false;
        self.retry_at = None;
        self.failures_in_a_row = 0;
        self.progress.send_modify(|p| {
            p.stats.durable_seq = p.stats.durable_seq.max(target);
            if rows > 0 {
                p.stats.commits += 1;
                p.stats.rows_written += rows;
            }
            if resync {
                p.stats.resyncs += 1;
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
            retry_in_ms = backoff.as_millis() as u64,
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
