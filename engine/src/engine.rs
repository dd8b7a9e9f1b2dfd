//! The engine handle: starts one shard thread per core and routes each request to the shard
//! that owns its account.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures_util::FutureExt;
use mailvault_hsm::Hsm;

use crate::api::{
    AccessEvent, CompactionReport, CompactionStatus, Credentials, DeletedMessageId, DeletedMessageInfo, FlagChange,
    Flags, MailboxInfo, Message, MessageInfo, ShardStats,
};
use crate::clock::{Clock, SystemClock};
use crate::error::{EngineError, OpenError};
use crate::io::{DiskStorage, Storage};
use crate::lifecycle::PurgeObserver;
use crate::shard::request::{Mutation, OneShot, Outcome, Query, Reply, Request, SpawnRequest};
use crate::shard::routing::shard_for_account;
use crate::shard::{ShardConfig, open_named, serve_reopening};
use crate::store::{StoreMetadata, shard_directory};

/// Requests waiting per shard before senders wait too (back-pressure, not unbounded memory).
const SHARD_QUEUE_REQUESTS_MAX: usize = 4096;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Background compaction's default IO budget: about 5% of the ~2 GB/s these disks do (DESIGN
/// §9), enough to rewrite a 256 MiB segment in a few seconds.
pub const COMPACTION_BYTES_PER_SECOND_DEFAULT: u64 = 100 * 1000 * 1000;
/// The background scrub's default reads per second per shard: a store of 1 TB over 16 shards
/// (62 GB each) is read in about an hour, while 16 shards take under a sixth of a 2 GB/s disk.
pub const SCRUB_BYTES_PER_SECOND_DEFAULT: u64 = 16 * 1000 * 1000;
/// `EngineConfig::checkpoint_interval_bytes`'s default: an open after a crash reads at most
/// about this much log, a few seconds at these disks' sequential read (DESIGN §9).
pub const CHECKPOINT_INTERVAL_BYTES_DEFAULT: u64 = 4 << 30;
/// Cross-thread wakes a runtime can queue: at least the replies it may await at once.
pub const WAKE_QUEUE_ENTRIES: usize = 4096;
/// Cross-thread wakes a shard's runtime can queue. Tasks started on a shard's thread
/// ([`Engine::spawn_on_shard`]) await answers from other threads (other shards, the frontends'
/// password checkers), and each may need a wake queued at once. A thread waking a task into a
/// full queue spins until the queue drains, so two shards doing that into each other's full
/// queues would spin for good: callers keep their tasks per shard well below this (the
/// frontends' connection limit does).
pub const SHARD_WAKE_QUEUE_ENTRIES: usize = 2 * WAKE_QUEUE_ENTRIES;

/// Compacted segment files a shard keeps for reuse by default ([`EngineConfig::recycled_segments_max`]).
pub const RECYCLED_SEGMENTS_MAX_DEFAULT: usize = 2;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// A segment is sealed once it holds this much; also its preallocation.
    pub segment_bytes_max: u64,
    pub message_bytes_max: usize,
    /// Compaction rewrites a sealed segment once less than this share of it is still needed
    /// (Fastmail's rule for its backups: 0.8).
    pub compaction_live_ratio: f64,
    /// Records between checkpoints: bounds how much of the log an open replays. A shard whose
    /// index holds more than twice this many messages waits for half its index instead, so a
    /// checkpoint (which encodes the whole index) costs a bounded time per record.
    pub checkpoint_interval_records: u64,
    /// Log bytes between checkpoints: bounds an open's replay by bytes too, which a record
    /// count alone does not (100,000 records of 1 MiB attachments are 100 GB to read back). A
    /// shard whose last checkpoint was larger than a sixteenth of this waits sixteen times
    /// its size instead, so checkpoints stay a small share of what is written.
    pub checkpoint_interval_bytes: u64,
    /// How long an expunged message stays restorable (7 to 14 days in production).
    pub retention_days: u32,
    /// Pin shard `i` to core `i` (off in tests, which share cores with each other).
    pub pin_threads: bool,
    /// Open the store even when a shard's data fails verification: that shard is quarantined
    /// (its files left untouched, every request for its accounts refused with
    /// `EngineError::Quarantined`) and the others serve. Off by default: damage stops the open.
    /// A store whose every shard is damaged still fails to open.
    pub quarantine_corrupt_shards: bool,
    pub clock: Arc<dyn Clock>,
    /// Background compaction's share of the disk: bytes per second it may read plus write
    /// (`None`: unthrottled). `compact` (an operator waiting) runs at full speed.
    pub compaction_bytes_per_second: Option<u64>,
    /// How often an idle shard looks for segments that came to qualify for compaction.
    pub compaction_check_interval: std::time::Duration,
    /// Days between closing an account and its purge, unless `close` says otherwise
    /// (`PURGE_DELAY_DAYS_MIN` to `PURGE_DELAY_DAYS_MAX`; default 37).
    pub account_purge_delay_days: u32,
    /// How often the lifecycle timer looks for accounts due for purge (by `clock`) and for an
    /// interrupted purge to finish.
    pub lifecycle_interval: std::time::Duration,
    /// Told after every purge's crypto-shredding (the backups' hook): see [`PurgeObserver`].
    pub purge_observer: Option<Arc<dyn PurgeObserver>>,
    /// Plaintext bytes of one account-snapshot record at most (1 to
    /// `format::ACCOUNT_SNAPSHOT_PART_BYTES_MAX`): a larger snapshot is split over several
    /// records. Tests set it small so that ordinary accounts take several.
    pub account_snapshot_part_bytes: usize,
    /// How often each shard starts a scrub pass (engine clock): every sealed segment read and
    /// checked (frames, footer, AEAD tags), damage logged and listed in `stats`. `None` (the
    /// default for the library; the server turns it on): no background scrub.
    pub scrub_interval: Option<std::time::Duration>,
    /// The scrub's reads per second, per shard, at most (`None`: unthrottled).
    pub scrub_bytes_per_second: Option<u64>,
    /// Compacted segment files each shard keeps to reuse as new segments, at most (0: every
    /// compacted file is removed). Commits into a reused file write over blocks that were
    /// written before, which the file system syncs without converting fresh extents: appends
    /// ran 1.4x faster on the development VM (bench/README.md, session 19). Each kept file
    /// holds its disk space (up to `segment_bytes_max`) until it is reused.
    pub recycled_segments_max: usize,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            segment_bytes_max: 256 * 1024 * 1024,
            message_bytes_max: 50 * 1024 * 1024,
            checkpoint_interval_records: 100_000,
            checkpoint_interval_bytes: CHECKPOINT_INTERVAL_BYTES_DEFAULT,
            compaction_live_ratio: 0.8,
            retention_days: 14,
            pin_threads: false,
            quarantine_corrupt_shards: false,
            clock: Arc::new(SystemClock),
            compaction_bytes_per_second: Some(COMPACTION_BYTES_PER_SECOND_DEFAULT),
            compaction_check_interval: std::time::Duration::from_secs(60),
            account_purge_delay_days: crate::lifecycle::PURGE_DELAY_DAYS_DEFAULT,
            lifecycle_interval: std::time::Duration::from_secs(60),
            purge_observer: None,
            account_snapshot_part_bytes: crate::format::ACCOUNT_SNAPSHOT_PART_BYTES,
            scrub_interval: None,
            scrub_bytes_per_second: Some(SCRUB_BYTES_PER_SECOND_DEFAULT),
            recycled_segments_max: RECYCLED_SEGMENTS_MAX_DEFAULT,
        }
    }
}

/// A running engine; clone it freely (all clones talk to the same shards).
#[derive(Debug, Clone)]
pub struct Engine {
    /// Shared by the clones the engine's users hold (not by the lifecycle timer's own handle);
    /// dropped before `inner`, see [`UserHandles`].
    _users: Option<Arc<UserHandles>>,
    pub(crate) inner: Arc<Inner>,
}

/// Dropped with the last handle the engine's users hold: stops the lifecycle timer and waits
/// for its tick to end. Without it, a tick in progress held the engine past its users' drop,
/// and the process could exit while the timer was inside a purge's HSM calls (a test run saw
/// SoftHSM crash the process at exit that way). Then the engine itself is dropped here, on the
/// caller's thread, which stops and joins the shards.
#[derive(Debug)]
struct UserHandles {
    inner: std::sync::Weak<Inner>,
}

impl Drop for UserHandles {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.stop_lifecycle_timer();
        }
    }
}

impl Engine {
    /// A handle for the engine's own background work (the lifecycle timer): it does not count
    /// as a user, so it never keeps the engine alive past its users' drop for long.
    pub(crate) fn internal(inner: Arc<Inner>) -> Self {
        Self { _users: None, inner }
    }
}

/// A shard set aside at open: its data failed verification (see
/// `EngineConfig::quarantine_corrupt_shards`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedShard {
    pub shard_id: u32,
    /// What the open found, naming the segment and offset where it could.
    pub reason: String,
}

#[derive(Debug)]
pub(crate) struct Inner {
    senders: Vec<flume::Sender<Request>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Shard i's thread: a request made on it of shard i crosses no thread (`Engine::on_shard_thread`).
    shard_thread_ids: Vec<std::thread::ThreadId>,
    pub(crate) data_dir: PathBuf,
    pub(crate) hsm: Hsm,
    pub(crate) purge_delay_days: u32,
    pub(crate) purge_observer: Option<Arc<dyn PurgeObserver>>,
    /// Holds the one token a purge needs (purges run one at a time).
    pub(crate) purge_gate: (flume::Sender<()>, flume::Receiver<()>),
    /// Dropped first on drop: wakes the lifecycle timer, which then stops.
    lifecycle_stop: Mutex<Option<flume::Sender<()>>>,
    lifecycle_thread: Mutex<Option<JoinHandle<()>>>,
    /// Set once every shard is up (see `Engine::quarantined_shards`).
    quarantined: std::sync::OnceLock<Vec<QuarantinedShard>>,
    /// Held (flock) for the engine's life: one process writes a store at a time. Released when
    /// dropped, after the shard threads have stopped.
    _lock: std::fs::File,
}

impl Inner {
    /// Stops the lifecycle timer and waits for it (its tick, if one runs, ends first), unless
    /// called on the timer's own thread.
    fn stop_lifecycle_timer(&self) {
        if let Ok(mut stop) = self.lifecycle_stop.lock() {
            stop.take();
        }
        let thread = self.lifecycle_thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }

    /// Stops the lifecycle timer, then the shards (see `stop_shards`).
    fn stop(&self) {
        self.stop_lifecycle_timer();
        self.stop_shards();
    }

    /// Asks every shard to stop once it has answered what its queue holds, and waits for their
    /// threads to end, except the calling thread if it is a shard's: that shard stops once its
    /// thread gets back to its loop, which cannot be awaited from inside it (joining itself
    /// would panic). A second call finds nothing left to wait for.
    fn stop_shards(&self) {
        let current = std::thread::current().id();
        for (sender, thread) in self.senders.iter().zip(&self.shard_thread_ids) {
            if *thread == current {
                // Only this thread makes room in its own queue: waiting for room would wait
                // for good. Without the message, the shard stops once its queue disconnects,
                // when the last handle is dropped (what called this, on a shard's thread).
                let _ = sender.try_send(Request::Shutdown);
            } else {
                let _ = sender.send(Request::Shutdown);
            }
        }
        if let Ok(mut threads) = self.threads.lock() {
            for thread in threads.drain(..).filter(|thread| thread.thread().id() != current) {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A task started on a shard's thread (`spawn_on_shard`) may hold the last handle; the
        // store lock is then released before that shard's last checkpoint. A caller that must
        // know the shards have stopped (a process about to exit) uses `Engine::shut_down`.
        self.stop();
    }
}

/// Why a task started with [`Engine::spawn_on_shard`] gave no output.
enum TaskEnd {
    Refused(EngineError),
    Panicked(Box<dyn std::any::Any + Send>),
}

/// The output of a task started on a shard's thread ([`Engine::spawn_on_shard`]).
#[derive(Debug)]
pub struct ShardTaskHandle<T> {
    output: flume::Receiver<Result<T, TaskEnd>>,
}

impl std::fmt::Debug for TaskEnd {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(error) => formatter.debug_tuple("Refused").field(error).finish(),
            Self::Panicked(_) => formatter.write_str("Panicked"),
        }
    }
}

impl<T> ShardTaskHandle<T> {
    /// Waits for the task's output. The task's panic is resumed here, as `JoinHandle::join`
    /// hands on a thread's. Errors: the shard refused the task (quarantined), or stopped before
    /// the task ended (`ShutDown`).
    pub async fn join(self) -> Result<T, EngineError> {
        Self::ended(self.output.recv_async().await)
    }

    /// [`ShardTaskHandle::join`], blocking the calling thread (never call it on a shard's).
    pub fn join_blocking(self) -> Result<T, EngineError> {
        Self::ended(self.output.recv())
    }

    fn ended(received: Result<Result<T, TaskEnd>, flume::RecvError>) -> Result<T, EngineError> {
        match received.map_err(|_| EngineError::ShutDown)? {
            Ok(output) => Ok(output),
            Err(TaskEnd::Refused(error)) => Err(error),
            Err(TaskEnd::Panicked(panic)) => std::panic::resume_unwind(panic),
        }
    }
}

/// Runs a future to completion on a fresh runtime: for command-line tools and tests that
/// call the engine from outside any runtime.
pub fn block_on<F: Future>(future: F) -> F::Output {
    // Room for a wake per reply in flight: with compio's default of 64, a shard answering a
    // few hundred requests at once spins until the queue drains (measured by the bench).
    match crate::io::build_runtime(compio::runtime::RuntimeBuilder::new().sync_queue_size(WAKE_QUEUE_ENTRIES)) {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => panic!("cannot start an io_uring runtime: {error}"),
    }
}

impl Engine {
    /// Opens an initialized store: one thread per shard, each recovering its segments. Returns
    /// once every shard is ready, or the first shard's error; with
    /// `quarantine_corrupt_shards`, a shard whose data fails verification is set aside instead
    /// (`Engine::quarantined_shards`), unless every shard is.
    pub fn open(config: &EngineConfig, hsm: &Hsm) -> Result<Self, OpenError> {
        Self::open_with(config, hsm, |_, directory| DiskStorage::new(directory))
    }

    /// Opens the store with each shard's storage made by `make_storage(shard_id, directory)`,
    /// called on the shard's own thread: the seam through which tests put a fault-injecting
    /// storage around the real one.
    pub fn open_with<S, F>(config: &EngineConfig, hsm: &Hsm, make_storage: F) -> Result<Self, OpenError>
    where
        S: Storage,
        F: Fn(u32, PathBuf) -> S + Send + Sync + 'static,
    {
        let make_storage = Arc::new(make_storage);
        crate::lifecycle::check_purge_delay_days(config.account_purge_delay_days)
            .map_err(|error| OpenError::Shard { shard_id: 0, source: error })?;
        let metadata = StoreMetadata::read(&config.data_dir)?;
        let lock = lock_store(&config.data_dir)?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut senders = Vec::new();
        let mut shard_thread_ids = Vec::new();
        let mut threads = Vec::new();
        let mut ready = Vec::new();
        for shard_id in 0..metadata.shards {
            let (sender, receiver) = flume::bounded(SHARD_QUEUE_REQUESTS_MAX);
            let (ready_sender, ready_receiver) = flume::bounded(1);
            let shard_config = ShardConfig {
                shard_id: shard_id as u32,
                segment_bytes_max: config.segment_bytes_max,
                message_bytes_max: config.message_bytes_max,
                checkpoint_interval_records: config.checkpoint_interval_records,
                checkpoint_interval_bytes: config.checkpoint_interval_bytes,
                compaction_live_ratio: config.compaction_live_ratio,
                retention_ms: i64::from(config.retention_days) * DAY_MS,
                clock: config.clock.clone(),
                compaction_bytes_per_second: config.compaction_bytes_per_second,
                compaction_check_interval: config.compaction_check_interval,
                account_snapshot_part_bytes: config.account_snapshot_part_bytes,
                scrub_interval: config.scrub_interval,
                scrub_bytes_per_second: config.scrub_bytes_per_second,
                recycled_segments_max: config.recycled_segments_max,
            };
            let directory = shard_directory(&config.data_dir, shard_id);
            let hsm = hsm.clone();
            let core = config.pin_threads.then_some(shard_id % cores);
            let quarantine_damage = config.quarantine_corrupt_shards;
            let make_storage = make_storage.clone();
            let thread = std::thread::Builder::new().name(format!("mailvault-shard-{shard_id}")).spawn(move || {
                let storage = make_storage(shard_id as u32, directory);
                run_shard_thread(&shard_config, &storage, &hsm, core, quarantine_damage, &receiver, &ready_sender);
            })?;
            senders.push(sender);
            shard_thread_ids.push(thread.thread().id());
            threads.push(thread);
            ready.push(ready_receiver);
        }
        let (lifecycle_stop, stop_receiver) = flume::bounded(1);
        let inner = Arc::new(Inner {
            senders,
            shard_thread_ids,
            threads: Mutex::new(threads),
            data_dir: config.data_dir.clone(),
            hsm: hsm.clone(),
            purge_delay_days: config.account_purge_delay_days,
            purge_observer: config.purge_observer.clone(),
            purge_gate: crate::lifecycle::new_purge_gate(),
            lifecycle_stop: Mutex::new(Some(lifecycle_stop)),
            lifecycle_thread: Mutex::new(None),
            quarantined: std::sync::OnceLock::new(),
            _lock: lock,
        });
        let engine = Self { _users: Some(Arc::new(UserHandles { inner: Arc::downgrade(&inner) })), inner };
        let mut quarantined = Vec::new();
        let mut first_damage = None;
        for (shard_id, receiver) in ready.into_iter().enumerate() {
            let stopped = OpenError::Shard { shard_id: shard_id as u32, source: EngineError::ShutDown };
            if let ShardOpened::Quarantined(damage) = receiver.recv().unwrap_or(Err(stopped))? {
                quarantined.push(QuarantinedShard { shard_id: shard_id as u32, reason: damage.damage_reason() });
                first_damage.get_or_insert(damage);
            }
        }
        if let Some(damage) = first_damage.filter(|_| quarantined.len() == engine.shard_count()) {
            // Nothing would serve: more likely a wrong token or key than damage everywhere.
            return Err(damage);
        }
        let _ = engine.inner.quarantined.set(quarantined);
        crate::lifecycle::finish_interrupted_shred(&engine);
        let timer = crate::lifecycle::spawn_lifecycle_timer(
            Arc::downgrade(&engine.inner),
            config.lifecycle_interval,
            stop_receiver,
        )?;
        if let Ok(mut thread) = engine.inner.lifecycle_thread.lock() {
            *thread = Some(timer);
        }
        Ok(engine)
    }

    pub fn shard_count(&self) -> usize {
        self.inner.senders.len()
    }

    /// Stops the engine and returns once every shard's thread has ended: each shard first
    /// answers what its queue holds, so every acknowledged write is durable, and writes its last
    /// checkpoint. Dropping the last handle does the same, but a handle may be held where its
    /// drop comes later, on another thread (a task started on a shard's thread that its runtime
    /// drops in a later turn); a process about to exit calls this instead, so that it does not
    /// exit while a shard is still writing. Handles still held elsewhere get
    /// `EngineError::ShutDown` from then on, and the store stays locked until the last is
    /// dropped. Call it off the shards' threads.
    pub fn shut_down(self) {
        self.inner.stop();
    }

    /// The shard that owns `account` (whether or not the account exists): the one whose
    /// thread serves its requests without a hand-off (`run_on_shard`).
    pub fn shard_of(&self, account: &str) -> usize {
        shard_for_account(account, self.shard_count())
    }

    /// The shards set aside at open because their data failed verification (only with
    /// `EngineConfig::quarantine_corrupt_shards`), with what was found.
    pub fn quarantined_shards(&self) -> &[QuarantinedShard] {
        self.inner.quarantined.get().map_or(&[], Vec::as_slice)
    }

    async fn send(&self, shard: usize, request: Request) -> Result<(), EngineError> {
        self.inner.senders[shard].send_async(request).await.map_err(|_| EngineError::ShutDown)
    }

    /// Whether the calling code runs on shard `shard`'s own thread (in a task started there by
    /// [`Engine::spawn_on_shard`] or [`Engine::run_on_shard`]): its requests to that shard then
    /// cross no thread. False for a shard that does not exist.
    pub fn on_shard_thread(&self, shard: usize) -> bool {
        self.inner.shard_thread_ids.get(shard) == Some(&std::thread::current().id())
    }

    /// Starts `task` on shard `shard`'s thread, as a task of the shard's own runtime, and
    /// returns at once; the handle gives its output. Requests the task makes of that shard cross
    /// no thread: the shard and its caller take turns on one core, with no wake-up of another
    /// core between them (which costs tens of microseconds in a VM; DESIGN §9). Frontends use it
    /// to serve connections on the shards' cores (`mailvault serve --frontends-on-shards`).
    ///
    /// The task shares the core with the shard's commits: long CPU work in it delays them, and
    /// a blocking call in it stalls the shard (a blocking wait for an answer from this same
    /// shard never ends). Sending the request blocks while the shard's queue is full, so call
    /// this off the shards' threads; a task already on one uses [`Engine::run_on_shard`].
    pub fn spawn_on_shard<F, Fut>(&self, shard: usize, task: F) -> Result<ShardTaskHandle<Fut::Output>, EngineError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let (request, handle) = self.spawn_request(shard, task)?;
        self.inner.senders[shard].send(request).map_err(|_| EngineError::ShutDown)?;
        Ok(handle)
    }

    /// [`Engine::spawn_on_shard`] for async callers: waits for room in the shard's queue
    /// without blocking the caller's thread, then for the task's output.
    pub async fn run_on_shard<F, Fut>(&self, shard: usize, task: F) -> Result<Fut::Output, EngineError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let (request, handle) = self.spawn_request(shard, task)?;
        self.send(shard, request).await?;
        handle.join().await
    }

    fn spawn_request<F, Fut>(
        &self,
        shard: usize,
        task: F,
    ) -> Result<(Request, ShardTaskHandle<Fut::Output>), EngineError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        if shard >= self.shard_count() {
            return Err(EngineError::InvalidInput {
                what: "shard",
                reason: format!("shard {shard} does not exist; the store has {}", self.shard_count()),
            });
        }
        let (done, output) = flume::bounded(1);
        let refused = done.clone();
        let start = Box::new(move || {
            compio::runtime::spawn(async move {
                // A panic (of `task` itself or of its future) is handed to the caller, as a
                // thread's is to `join`; the shard goes on.
                let outcome = std::panic::AssertUnwindSafe(async move { task().await }).catch_unwind().await;
                let _ = done.send(outcome.map_err(TaskEnd::Panicked));
            })
            .detach();
        });
        let refuse = Box::new(move |error| {
            let _ = refused.send(Err(TaskEnd::Refused(error)));
        });
        Ok((Request::Spawn(SpawnRequest { start, refuse }), ShardTaskHandle { output }))
    }

    pub(crate) async fn mutate(&self, account: &str, mutation: Mutation) -> Result<Outcome, EngineError> {
        let shard = shard_for_account(account, self.shard_count());
        self.ask(shard, |reply| Request::Mutate { mutation: Box::new(mutation), reply }).await
    }

    /// Sends shard `shard` the request `make` builds around a one-shot answer, and waits for
    /// the answer (fetches and mutations: see `OneShot`).
    async fn ask<T>(&self, shard: usize, make: impl FnOnce(OneShot<T>) -> Request) -> Result<T, EngineError> {
        let (reply, answer) = futures_channel::oneshot::channel();
        self.send(shard, make(reply)).await?;
        answer.await.map_err(|_| EngineError::ShutDown)?
    }

    async fn query<T>(&self, account: &str, make: impl FnOnce(Reply<T>) -> Query) -> Result<T, EngineError> {
        self.query_shard(self.shard_of(account), make).await
    }

    async fn query_shard<T>(&self, shard: usize, make: impl FnOnce(Reply<T>) -> Query) -> Result<T, EngineError> {
        let (reply, answer) = flume::bounded(1);
        self.send(shard, Request::Query(make(reply))).await?;
        answer.recv_async().await.map_err(|_| EngineError::ShutDown)?
    }

    pub(crate) async fn query_all_requests<T>(
        &self,
        make: impl Fn(Reply<T>) -> Request,
    ) -> Result<Vec<T>, EngineError> {
        let mut answers = Vec::new();
        for shard in 0..self.shard_count() {
            let (reply, answer) = flume::bounded(1);
            self.send(shard, make(reply)).await?;
            answers.push(answer);
        }
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.recv_async().await.map_err(|_| EngineError::ShutDown)??);
        }
        Ok(results)
    }

    pub(crate) async fn query_all<T>(&self, make: impl Fn(Reply<T>) -> Query) -> Result<Vec<T>, EngineError> {
        self.query_all_requests(|reply| Request::Query(make(reply))).await
    }

    pub async fn create_account(&self, account: &str) -> Result<(), EngineError> {
        self.mutate(account, Mutation::CreateAccount { account: account.to_owned() }).await.map(drop)
    }

    /// Every account name, sorted.
    pub async fn list_accounts(&self) -> Result<Vec<String>, EngineError> {
        let mut names: Vec<String> = self.query_all(Query::Accounts).await?.into_iter().flatten().collect();
        names.sort();
        Ok(names)
    }

    pub async fn create_mailbox(&self, account: &str, name: &str) -> Result<(), EngineError> {
        let mutation = Mutation::CreateMailbox { account: account.to_owned(), name: name.to_owned() };
        self.mutate(account, mutation).await.map(drop)
    }

    pub async fn rename_mailbox(&self, account: &str, from: &str, to: &str) -> Result<(), EngineError> {
        let mutation =
            Mutation::RenameMailbox { account: account.to_owned(), from: from.to_owned(), to: to.to_owned() };
        self.mutate(account, mutation).await.map(drop)
    }

    /// Deletes a mailbox; its messages become restorable deleted messages.
    pub async fn delete_mailbox(&self, account: &str, name: &str) -> Result<(), EngineError> {
        let mutation = Mutation::DeleteMailbox { account: account.to_owned(), name: name.to_owned() };
        self.mutate(account, mutation).await.map(drop)
    }

    pub async fn list_mailboxes(&self, account: &str) -> Result<Vec<MailboxInfo>, EngineError> {
        let account_name = account.to_owned();
        self.query(account, |reply| Query::Mailboxes { account: account_name, reply }).await
    }

    /// Stores a message; returns its uid once it is durable.
    pub async fn append(
        &self,
        account: &str,
        mailbox: &str,
        body: Vec<u8>,
        flags: Flags,
        internal_date_unix_ms: Option<i64>,
    ) -> Result<u32, EngineError> {
        // Hashed here, on the caller's thread: the shard's thread is the one every append of
        // its accounts shares, and the digest needs nothing the shard owns.
        let digest = *blake3::hash(&body).as_bytes();
        let mutation = Mutation::Append {
            account: account.to_owned(),
            mailbox: mailbox.to_owned(),
            body,
            digest,
            flags,
            internal_date_unix_ms,
        };
        match self.mutate(account, mutation).await? {
            // The body is dropped here, on the thread that allocated it (`SpentBody`).
            Outcome::Appended { uid, body: _ } => Ok(uid),
            other => Err(unexpected(&other)),
        }
    }

    /// The mailbox's status and every message's metadata, in uid order.
    pub async fn list_messages(
        &self,
        account: &str,
        mailbox: &str,
    ) -> Result<(MailboxInfo, Vec<MessageInfo>), EngineError> {
        let (account_name, mailbox) = (account.to_owned(), mailbox.to_owned());
        self.query(account, |reply| Query::Messages { account: account_name, mailbox, reply }).await
    }

    pub async fn fetch(&self, account: &str, mailbox: &str, uid: u32) -> Result<Message, EngineError> {
        let (account_name, mailbox) = (account.to_owned(), mailbox.to_owned());
        let shard = self.shard_of(account);
        let local = self.on_shard_thread(shard);
        let sealed = self
            .ask(shard, |reply| Request::Query(Query::Fetch { account: account_name, mailbox, uid, local, reply }))
            .await?;
        // Decrypted here, on the caller's thread, not on the shard's (see `SealedMessage`).
        sealed.open()
    }

    pub async fn change_flags(
        &self,
        account: &str,
        mailbox: &str,
        uids: &[u32],
        change: FlagChange,
    ) -> Result<(), EngineError> {
        let mutation = Mutation::ChangeFlags {
            account: account.to_owned(),
            mailbox: mailbox.to_owned(),
            uids: uids.to_vec(),
            change,
        };
        self.mutate(account, mutation).await.map(drop)
    }

    /// Copies messages; returns (source uid, new uid) pairs.
    pub async fn copy(
        &self,
        account: &str,
        from: &str,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>, EngineError> {
        self.copy_or_move(account, from, uids, to, false).await
    }

    /// Moves messages (not via the deleted list); returns (source uid, new uid) pairs.
    pub async fn move_messages(
        &self,
        account: &str,
        from: &str,
        uids: &[u32],
        to: &str,
    ) -> Result<Vec<(u32, u32)>, EngineError> {
        self.copy_or_move(account, from, uids, to, true).await
    }

    async fn copy_or_move(
        &self,
        account: &str,
        from: &str,
        uids: &[u32],
        to: &str,
        remove_source: bool,
    ) -> Result<Vec<(u32, u32)>, EngineError> {
        let mutation = Mutation::Copy {
            account: account.to_owned(),
            from: from.to_owned(),
            uids: uids.to_vec(),
            to: to.to_owned(),
            remove_source,
        };
        match self.mutate(account, mutation).await? {
            Outcome::UidMap(map) => Ok(map),
            other => Err(unexpected(&other)),
        }
    }

    /// Expunges messages: they leave the mailbox and stay restorable for the retention window.
    pub async fn expunge(&self, account: &str, mailbox: &str, uids: &[u32]) -> Result<(), EngineError> {
        let mutation =
            Mutation::Expunge { account: account.to_owned(), mailbox: mailbox.to_owned(), uids: uids.to_vec() };
        self.mutate(account, mutation).await.map(drop)
    }

    /// Deleted messages still inside their retention window, oldest first.
    pub async fn list_deleted(&self, account: &str) -> Result<Vec<DeletedMessageInfo>, EngineError> {
        let account_name = account.to_owned();
        self.query(account, |reply| Query::Deleted { account: account_name, reply }).await
    }

    /// Restores a deleted message into its mailbox (or INBOX if that is gone): (mailbox, uid).
    pub async fn restore(&self, account: &str, deleted: DeletedMessageId) -> Result<(String, u32), EngineError> {
        match self.mutate(account, Mutation::Restore { account: account.to_owned(), deleted }).await? {
            Outcome::Restored { mailbox, uid } => Ok((mailbox, uid)),
            other => Err(unexpected(&other)),
        }
    }

    /// Sets the account's login password, given as an argon2id PHC string (hash it first, with
    /// `mailvault_hsm::password`); the password itself never reaches the engine.
    pub async fn set_password(&self, account: &str, password_hash: String) -> Result<(), EngineError> {
        self.mutate(account, Mutation::SetPassword { account: account.to_owned(), password_hash }).await.map(drop)
    }

    /// Adds a per-device password (argon2id PHC string) under a label the user recognizes.
    pub async fn add_app_password(
        &self,
        account: &str,
        label: String,
        password_hash: String,
    ) -> Result<(), EngineError> {
        let mutation = Mutation::AddAppPassword { account: account.to_owned(), label, password_hash };
        self.mutate(account, mutation).await.map(drop)
    }

    /// Revokes every app password of the account (remote logout); returns how many there were.
    pub async fn revoke_app_passwords(&self, account: &str) -> Result<u32, EngineError> {
        match self.mutate(account, Mutation::RevokeAppPasswords { account: account.to_owned() }).await? {
            Outcome::Count(count) => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// The hashes login checks against.
    pub async fn credentials(&self, account: &str) -> Result<Credentials, EngineError> {
        let account_name = account.to_owned();
        self.query(account, |reply| Query::Credentials { account: account_name, reply }).await
    }

    /// Records a login attempt in the account's access log (durable, encrypted).
    pub async fn record_access(&self, account: &str, event: AccessEvent) -> Result<(), EngineError> {
        self.mutate(account, Mutation::RecordAccess { account: account.to_owned(), event }).await.map(drop)
    }

    /// The account's newest login attempts, newest first, at most `limit` (and at most the
    /// last 1000, which the index keeps in memory).
    pub async fn access_log(&self, account: &str, limit: usize) -> Result<Vec<AccessEvent>, EngineError> {
        let account_name = account.to_owned();
        self.query(account, |reply| Query::AccessLog { account: account_name, limit, reply }).await
    }

    /// Drops the account's deleted mail now, whatever the retention window, and rewrites the
    /// segments that held it; returns how many messages were pruned. Compaction runs in the
    /// background; `compact` waits for it.
    pub async fn prune_deleted(&self, account: &str) -> Result<u32, EngineError> {
        match self.mutate(account, Mutation::PruneDeleted { account: account.to_owned() }).await? {
            Outcome::Count(count) => Ok(count),
            other => Err(unexpected(&other)),
        }
    }

    /// Compacts every segment that qualifies, on every shard; returns once done.
    pub async fn compact(&self) -> Result<CompactionReport, EngineError> {
        let mut total = CompactionReport::default();
        for report in self.query_all_requests(Request::Compact).await? {
            total.merge(&report);
        }
        Ok(total)
    }

    /// Seals every shard's active segment that holds data, after every write acknowledged
    /// before this call; returns, per shard (index = shard id), its sealed segments' ids at
    /// that moment. Sealed segments never change: they are what a backup copies. Compaction may
    /// remove one later, moving its live records into the active segment: a backup that finds
    /// one gone before it copied it seals again. Pending compaction is finished first (as
    /// `compact` does); then compaction is held back (no segment removed) until
    /// [`Engine::release_backup_hold`], or for 30 minutes at most.
    pub async fn seal_active(&self) -> Result<Vec<Vec<u64>>, EngineError> {
        self.compact().await?;
        self.query_all_requests(Request::Seal).await
    }

    /// Lets compaction run again after a backup (see [`Engine::seal_active`]).
    pub async fn release_backup_hold(&self) -> Result<(), EngineError> {
        self.query_all_requests(Request::ReleaseBackupHold).await.map(drop)
    }

    pub async fn stats(&self) -> Result<Vec<ShardStats>, EngineError> {
        self.query_all(Query::Stats).await
    }

    /// Per shard (index = shard id), what compaction is rewriting and the bytes of its
    /// segments: cheap enough to ask several times a second while a compaction runs.
    pub async fn compaction_status(&self) -> Result<Vec<CompactionStatus>, EngineError> {
        self.query_all(Query::Compaction).await
    }
}

/// Takes the store's exclusive lock, or says who has it: held while the file stays open. The
/// engine holds it for its life; offline work that writes the store (a shard's repair from a
/// backup) holds it meanwhile.
pub fn lock_store(data_dir: &std::path::Path) -> Result<std::fs::File, OpenError> {
    let path = data_dir.join("store.lock");
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(OpenError::InUse(data_dir.display().to_string())),
        Err(error) => Err(OpenError::Io(error.into())),
    }
}

pub(crate) fn unexpected(outcome: &Outcome) -> EngineError {
    EngineError::Corrupt(format!("internal error: unexpected outcome {outcome:?}"))
}

/// How a shard's thread came up.
enum ShardOpened {
    Serving,
    /// Its data failed verification and the engine was told to quarantine such shards: the
    /// thread refuses every request (`shard::serve_quarantined`).
    Quarantined(OpenError),
}

fn run_shard_thread<S: Storage>(
    config: &ShardConfig,
    storage: &S,
    hsm: &Hsm,
    core: Option<usize>,
    quarantine_damage: bool,
    receiver: &flume::Receiver<Request>,
    ready: &flume::Sender<Result<ShardOpened, OpenError>>,
) {
    let shard_id = config.shard_id;
    let mut builder = crate::io::prompt_runtime_builder();
    builder.sync_queue_size(SHARD_WAKE_QUEUE_ENTRIES);
    if let Some(core) = core {
        builder.thread_affinity(std::iter::once(core).collect());
    }
    let runtime = match crate::io::build_runtime(&mut builder) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error.into()));
            return;
        }
    };
    crate::io::block_on_prompt(&runtime, async {
        match open_named(storage.clone(), config.clone(), hsm).await {
            Ok(shard) => {
                let _ = ready.send(Ok(ShardOpened::Serving));
                serve_reopening(shard, storage, config, hsm, receiver).await;
            }
            Err(error) if quarantine_damage && error.is_damage() => {
                let reason = error.damage_reason();
                tracing::error!(shard = shard_id, %reason, "shard quarantined: its data failed verification; its accounts are unavailable until it is repaired");
                let _ = ready.send(Ok(ShardOpened::Quarantined(error)));
                crate::shard::serve_quarantined(shard_id, &reason, receiver).await;
            }
            Err(error) => {
                let _ = ready.send(Err(error));
            }
        }
    });
}
