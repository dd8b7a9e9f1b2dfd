//! A shard: one core's share of the accounts and everything about them (segments, index,
//! keys). It runs as one task on its core's runtime and owns its state outright: no locks.
//!
//! Group commit: the loop takes every request waiting in its queue, turns the mutations into
//! records applied to the index and encoded into one buffer, then writes and syncs that buffer
//! once and answers them all. Requests arriving meanwhile form the next batch, planned as they
//! come while the previous commit writes, and started once its writes end (or the batch is
//! full): it is written while the previous one syncs (`pipeline`), so under load many appends
//! share one fdatasync and the disk is never idle while the shard plans. No one ever sees what is
//! not durable: a read of an account that the commits in flight changed (or of the whole shard)
//! closes the batch it lands in and waits until every commit planned so far is durable, planning
//! nothing more meanwhile (`read_fence`).

pub(crate) mod checkpoint;
mod compaction;
mod credentials;
mod emit;
mod forced_compaction;
mod lifecycle;
mod pipeline;
mod plan;
mod prune;
mod quarantine;
mod query;
mod read_fence;
pub(crate) mod recovery;
mod reopen;
pub(crate) mod request;
mod room;
pub(crate) mod routing;
mod scrub;
mod scrub_state;
mod sealed_message;
mod small_file;
mod throttle;
mod usage_summary;
mod victim_read;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use mailvault_hsm::HsmSession;

use crate::clock::Clock;
use crate::crypto::KeyTable;
use crate::index::Index;
use crate::io::Storage;
use crate::segment::ActiveSegment;
use request::{Reply, Request};

pub(crate) use quarantine::serve_quarantined;
pub(crate) use recovery::open_named;
pub(crate) use reopen::serve_reopening;

/// Most requests taken into one commit. Record ids skip ahead by more than the records one
/// commit can hold after a restart (see `recovery`), so this bounds that gap too.
const BATCH_REQUESTS_MAX: usize = 1024;
/// Longest a backup holds compaction back after sealing, should it never release the hold (a
/// crashed backup must not stop compaction for good).
const BACKUP_HOLD_MS: i64 = 30 * 60 * 1000;
/// A batch stops taking mutations once its frames pass this size, and starts. Small enough that
/// a burst of appends splits into commits that overlap (one writes while the next is planned,
/// rather than the disk waiting for a whole burst to be planned: 1 MiB of 4 KiB appends takes
/// the shard about a millisecond); large enough that one fdatasync still covers over a hundred
/// small appends (bench/README.md, session 13).
const BATCH_BYTES_MAX: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct ShardConfig {
    pub shard_id: u32,
    pub segment_bytes_max: u64,
    pub message_bytes_max: usize,
    /// A sealed segment is rewritten when the share of it still needed falls below this.
    pub compaction_live_ratio: f64,
    /// A checkpoint is written after this many records (and on segment rotation and shutdown).
    pub checkpoint_interval_records: u64,
    /// A checkpoint is also written after this many log bytes (or sixteen times the last
    /// checkpoint's size, if that is more).
    pub checkpoint_interval_bytes: u64,
    pub retention_ms: i64,
    pub clock: Arc<dyn Clock>,
    /// Background compaction's IO budget (reads + writes); `None`: unthrottled.
    pub compaction_bytes_per_second: Option<u64>,
    /// How often an idle shard looks for segments that came to qualify for compaction (e.g.
    /// because retention windows ended).
    pub compaction_check_interval: std::time::Duration,
    /// Plaintext bytes of one account-snapshot record at most (`format::snapshot_records`).
    pub account_snapshot_part_bytes: usize,
    /// How often a scrub pass starts (engine clock); `None`: no background scrub.
    pub scrub_interval: Option<std::time::Duration>,
    /// The scrub's reads per second at most; `None`: unthrottled.
    pub scrub_bytes_per_second: Option<u64>,
    /// Compacted segment files kept for reuse, at most (`EngineConfig::recycled_segments_max`).
    pub recycled_segments_max: usize,
}

pub(crate) struct Shard<S: Storage> {
    config: ShardConfig,
    storage: S,
    hsm: HsmSession,
    index: Index,
    keys: KeyTable,
    active: ActiveSegment<S::File>,
    /// Read handles for every segment, the active one included.
    readers: HashMap<u64, Rc<S::File>>,
    next_record_id: u64,
    next_account_number: u64,
    /// Set when a write or sync failed: the shard then refuses everything (fsyncgate: an
    /// fsync error is never retried as if the data might still be durable).
    failure: Option<String>,
    commits: u64,
    records_committed: u64,
    checkpoints_written: u64,
    /// The checkpoint being written in the background, if any (see `start_checkpoint`).
    checkpoint_writing: Option<compio::runtime::JoinHandle<Result<(), String>>>,
    /// The last periodic checkpoint's body length: the next one's buffer is sized by it.
    checkpoint_body_bytes: usize,
    records_since_checkpoint: u64,
    /// Log bytes committed since the last checkpoint was encoded (or the shard opened).
    bytes_since_checkpoint: u64,
    /// Sizes of the sealed segments, for compaction's ratio and the stats.
    sealed_segment_bytes: HashMap<u64, u64>,
    compaction_wanted: bool,
    /// What the last usage pass found, while it still stands (see `usage_summary`).
    usage_summary: Option<usage_summary::UsageSummary>,
    usage_passes: u64,
    compaction_job: Option<compaction::CompactionJob>,
    /// Reads and verifies the next victim off the request path (its task starts on first use).
    victim_reader: Option<victim_read::VictimReader<S::File>>,
    /// Segments to rewrite whatever their live share (they hold pruned mail).
    compaction_forced: std::collections::BTreeSet<u64>,
    /// What the `compaction-forced` file says (see `forced_compaction.rs`).
    forced_compaction_file: forced_compaction::ForcedCompactionFile,
    /// Segments found not worth compacting, with their needed body bytes then; looked at again
    /// after the next change, or when a timer tick finds fewer bytes needed.
    compaction_rejected: std::collections::BTreeMap<u64, u64>,
    compaction_budget: throttle::IoBudget,
    /// Segments compaction could not read; left alone and reported.
    compaction_skipped: std::collections::BTreeSet<u64>,
    compaction_report: crate::api::CompactionReport,
    /// A segment was compacted since the last checkpoint: write one when the run ends.
    compaction_checkpoint_due: bool,
    compaction_waiters: Vec<Reply<crate::api::CompactionReport>>,
    /// The last victim's buffer, for the next one (see `StorageFile::read_whole`).
    compaction_spare_buffer: Option<crate::io::BlockBuffer>,
    /// Compacted segments being removed off the shard's path (see `finish_job`).
    segment_removals: Vec<compio::runtime::JoinHandle<()>>,
    /// Compacted segments' files kept to be written over by new segments.
    recycled: crate::segment::RecycledSegments,
    pipeline: pipeline::Pipeline,
    /// Which reads the index can answer while commits are in flight.
    read_fence: read_fence::ReadFence,
    /// Whether the active segment holds a record other than the record-id floors written at
    /// opens: sealing it for a backup is needed only then (so an idle store seals nothing).
    active_has_data: bool,
    /// While a backup copies sealed segments, compaction waits (until this time, unix ms).
    backup_hold_until_ms: Option<i64>,
    /// The background scrub (its task runs when `ShardConfig::scrub_interval` is set), and what
    /// its passes recorded.
    scrubber: scrub::Scrubber<S::File>,
    /// Whether the filesystem was found full, and when to try rotating again (see `room`).
    room: room::RoomState,
}

impl<S: Storage> std::fmt::Debug for Shard<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Shard")
            .field("shard_id", &self.config.shard_id)
            .field("active_segment", &self.active.segment_id())
            .finish_non_exhaustive()
    }
}

/// How [`Shard::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// Shutdown asked, or the queue closed.
    Stopped,
    /// A write or sync failed (the reason): what the disk holds past the last acknowledged
    /// commit is unknown.
    Failed(String),
}

/// One commit's worth of encoded frames and the answers waiting for it.
#[derive(Default)]
struct Batch {
    frames: crate::segment::CommitFrames,
    frame_count: u64,
    /// Position in `frames` of the last frame, to mark it as the commit's end.
    last_frame_start: usize,
    answers: Vec<request::Answer>,
    deferred_queries: Vec<request::Query>,
    /// `Seal` requests, answered after this batch's commit and the seal.
    seal_waiters: Vec<Reply<Vec<u64>>>,
    /// Its frames share no block with the commits before it (see `Shard::new_batch`), so its
    /// first write need not wait for theirs.
    starts_on_fresh_block: bool,
}

impl<S: Storage> Shard<S> {
    /// Serves requests until shutdown or until the queue closes, or until a write or sync
    /// fails: then every request taken is answered, and the thread reopens the shard from what
    /// the disk holds (`shard::reopen`), as a restart would, rather than going on from an index
    /// that may be ahead of it.
    pub(crate) async fn run(mut self, receiver: flume::Receiver<Request>) -> RunEnd {
        let mut shutting_down = false;
        while !shutting_down {
            if let Some(reason) = self.failure.clone() {
                self.wind_down_failed().await;
                return RunEnd::Failed(reason);
            }
            let next = if self.pipeline.is_empty() {
                self.next_request(&receiver).await
            } else {
                self.next_request_while_committing(&receiver).await
            };
            let Some(first) = next else { break };
            let mut batch = self.new_batch();
            let mut rewrap_waiters = Vec::new();
            let mut next = Some(first);
            let mut taken = 0;
            while let Some(request) = next.take() {
                match request {
                    Request::Mutate { mutation, reply } => {
                        // Refused before it is planned: the index cannot take a change back.
                        let room = if self.failure.is_none() {
                            let (bytes, margin) = self.room_needed(&mutation);
                            self.make_room(bytes, margin, &batch).await
                        } else {
                            Ok(())
                        };
                        if let Err(error) = room {
                            let _ = reply.send(Err(error));
                        } else {
                            self.read_fence.note_change(mutation.account());
                            self.plan_into(*mutation, reply, &mut batch);
                        }
                    }
                    Request::Query(query)
                        if (batch.frames.is_empty() && self.pipeline.is_empty())
                            || self.read_fence.reads_only_durable_account(&query) =>
                    {
                        self.answer(query);
                    }
                    Request::Query(query) => batch.deferred_queries.push(query),
                    Request::Shutdown => shutting_down = true,
                    Request::Compact(reply) => {
                        self.compaction_wanted = true;
                        self.compaction_rejected.clear();
                        // Asked now: a rotation that found no room a moment ago is tried again.
                        self.retry_rotation_now();
                        if self.backup_held() {
                            // Waiting would take until the backup ends (30 minutes if it never
                            // says so): answer now, and compact after the hold.
                            let held = crate::api::CompactionReport { held_for_backup: true, ..Default::default() };
                            let _ = reply.send(Ok(held));
                        } else {
                            self.compaction_waiters.push(reply);
                        }
                    }
                    Request::RewrapKeys(reply) => rewrap_waiters.push(reply),
                    Request::Seal(reply) => batch.seal_waiters.push(reply),
                    Request::ReleaseBackupHold(reply) => {
                        self.backup_hold_until_ms = None;
                        let _ = reply.send(Ok(()));
                    }
                    Request::Spawn(task) => (task.start)(),
                }
                taken += 1;
                // A read waiting closes the batch: it is answered once this batch is durable,
                // and nothing is planned after it until then (see `read_fence`).
                let reads_wait = !batch.deferred_queries.is_empty();
                if taken < BATCH_REQUESTS_MAX && batch.frames.len() < BATCH_BYTES_MAX && !shutting_down && !reads_wait {
                    next = match receiver.try_recv() {
                        Ok(request) => Some(request),
                        Err(_) if batch.frame_count > 0 => self.wait_for_more_while_writing(&receiver).await,
                        Err(_) => None,
                    };
                }
            }
            let seal_waiters = std::mem::take(&mut batch.seal_waiters);
            let reads_wait = !batch.deferred_queries.is_empty();
            // A prune planned in this batch is answered once its rewrite would survive a restart.
            self.save_forced_compaction_if_grown().await;
            self.start_commit(batch).await;
            if reads_wait {
                // The index is ahead of the disk by the commits in flight: answered from it
                // while any of them could still be lost, a read could show a message that a
                // crash then takes back, and its uid could go to another message.
                self.drain_commits().await;
            }
            if !rewrap_waiters.is_empty() {
                // Re-wrapping writes its own commits; those before it must be durable first.
                self.drain_commits().await;
                let result = self.rewrap_keys().await;
                for reply in rewrap_waiters {
                    let answer = match &result {
                        Ok(count) => Ok(*count),
                        Err(error) => {
                            Err(crate::error::EngineError::Corrupt(format!("re-wrapping data keys: {error}")))
                        }
                    };
                    let _ = reply.send(answer);
                }
            }
            if !seal_waiters.is_empty() {
                // Sealing writes the footer after the log: every commit before it lands first.
                self.drain_commits().await;
                self.seal_for_backup(seal_waiters).await;
            }
            self.after_commit().await;
        }
        self.shut_down().await;
        RunEnd::Stopped
    }

    /// After a failure: answers everything taken, and ends the IO still running, so that no
    /// removal or checkpoint rename lands after the reopen read the directory.
    async fn wind_down_failed(&mut self) {
        self.drain_commits().await;
        self.answer_compaction_waiters();
        self.finish_segment_removals().await;
        self.finish_checkpoint_writing().await;
    }

    /// Leaves the files as the next open wants them: every commit durable, compacted segments
    /// removed, what a prune still has to rewrite written down, and a checkpoint at the end.
    async fn shut_down(&mut self) {
        self.drain_commits().await;
        self.after_commit().await;
        self.finish_segment_removals().await;
        self.save_forced_compaction().await;
        if self.records_since_checkpoint > 1 {
            self.checkpoint().await;
        }
        self.finish_checkpoint_writing().await;
    }

    /// Rotates a full segment and writes a due checkpoint, once the commits in flight are
    /// durable (both describe the log up to its end).
    pub(super) async fn after_commit(&mut self) {
        self.scrub_tick().await;
        let rotate = self.rotation_due();
        let checkpoint = self.checkpoint_due();
        if !rotate && !checkpoint {
            return;
        }
        self.drain_commits().await;
        if self.failure.is_some() {
            return;
        }
        if rotate && self.rotate_unless_full().await.is_err() {
            return;
        }
        if checkpoint {
            self.start_checkpoint().await;
        }
    }

    /// The next request to serve while commits are in flight; each commit is answered as soon
    /// as its IO ends. `None` once the queue is closed.
    async fn next_request_while_committing(&mut self, receiver: &flume::Receiver<Request>) -> Option<Request> {
        loop {
            if self.pipeline.is_empty() {
                return self.next_request(receiver).await;
            }
            if self.pipeline.oldest_is_done() {
                self.finish_oldest_commit().await;
                continue;
            }
            let request = match receiver.try_recv() {
                Ok(request) => request,
                Err(flume::TryRecvError::Disconnected) => return None,
                Err(flume::TryRecvError::Empty) => match first_of(receiver.recv_async(), self.pipeline.rung()).await {
                    Either::First(request) => request.ok()?,
                    Either::Second(()) => continue,
                },
            };
            if self.pipeline.is_full() {
                self.finish_oldest_commit().await;
            }
            return Some(request);
        }
    }

    /// The next request for a batch of records while a commit in flight is still writing its
    /// blocks (answering commits that end meanwhile). `None` once those writes end (or the
    /// queue closes): the batch starts then. Started at once instead, it would be a write of a
    /// few records queued behind those blocks, with an fdatasync of its own; held, it takes
    /// every request that comes meanwhile, and the shard plans them while the disk writes
    /// (bench/README.md, session 13).
    async fn wait_for_more_while_writing(&mut self, receiver: &flume::Receiver<Request>) -> Option<Request> {
        loop {
            if self.pipeline.oldest_is_done() {
                self.finish_oldest_commit().await;
                continue;
            }
            if !self.pipeline.is_writing() {
                return None;
            }
            match first_of(receiver.recv_async(), self.pipeline.rung()).await {
                Either::First(request) => return request.ok(),
                Either::Second(()) => {}
            }
        }
    }

    /// The next request to serve. While none waits, background work runs: compaction steps
    /// (one bounded step at a time, within the IO budget) and the idle timer's look for work.
    /// `None` once the queue is closed.
    async fn next_request(&mut self, receiver: &flume::Receiver<Request>) -> Option<Request> {
        let mut tick_at = std::time::Instant::now() + self.config.compaction_check_interval;
        loop {
            self.scrub_tick().await;
            if !self.compaction_wanted || self.backup_held() {
                let until_tick = tick_at.saturating_duration_since(std::time::Instant::now());
                match compio::time::timeout(until_tick, self.idle_wait(receiver)).await {
                    Ok(Some(request)) => return request.ok(),
                    Ok(None) => {} // the scrub's answer: the next turn records it
                    Err(_) => {
                        self.compaction_tick();
                        tick_at = std::time::Instant::now() + self.config.compaction_check_interval;
                    }
                }
                continue;
            }
            match receiver.try_recv() {
                Ok(request) => return Some(request),
                Err(flume::TryRecvError::Disconnected) => return None,
                Err(flume::TryRecvError::Empty) => {}
            }
            if self.compaction_job.is_none()
                && let Some(reader) = self.victim_reader.as_mut()
                && reader.is_waiting()
            {
                // The next victim is still being read: serve requests meanwhile.
                if let Either::First(request) = first_of(receiver.recv_async(), reader.wait()).await {
                    return request.ok();
                }
            }
            if let Some(pause) = self.compaction_pause() {
                // Over its IO budget: wait for a request or for the budget, whichever first.
                if let Ok(request) = compio::time::timeout(pause, receiver.recv_async()).await {
                    return request.ok();
                }
                continue;
            }
            self.compaction_wanted = self.compaction_step().await;
            if !self.compaction_wanted {
                self.answer_compaction_waiters();
            }
        }
    }

    /// Waits for a request, or (`None`) for the scrub task's answer.
    async fn idle_wait(&mut self, receiver: &flume::Receiver<Request>) -> Option<Result<Request, flume::RecvError>> {
        match first_of(receiver.recv_async(), self.scrubber.wait_for_answer()).await {
            Either::First(request) => Some(request),
            Either::Second(()) => None,
        }
    }

    /// The first commit after an open: one `RecordIdFloor` frame, alone. Once it is durable, no
    /// record id at or below it can be handed out again after any later crash, and its write
    /// rewrites the tail block with zeroes after the log, clearing what a torn commit left.
    pub(super) async fn commit_record_id_floor(&mut self) -> std::io::Result<()> {
        let mut batch = Batch::default();
        let place = emit::Place { account_id: 0, mailbox_id: 0, uid: 0 };
        self.emit_clear(&mut batch, place, crate::format::Record::RecordIdFloor);
        let had_data = self.active_has_data;
        self.commit(batch).await;
        self.active_has_data = had_data; // a floor is no data a backup needs
        match &self.failure {
            None => Ok(()),
            Some(reason) => Err(std::io::Error::other(reason.clone())),
        }
    }

    /// Seals the active segment if it holds data, so that every write acknowledged before the
    /// request lies in a sealed segment a backup can copy; answers with the sealed segments'
    /// ids at that moment (compaction may remove some of them later: their live records then
    /// move to the active segment, and the backup must seal again).
    async fn seal_for_backup(&mut self, waiters: Vec<Reply<Vec<u64>>>) {
        let mut rotated = false;
        // Without room for the next segment the active one cannot be sealed: the backup is told
        // so, and may try again.
        let mut out_of_space = false;
        if self.failure.is_none() && self.active_has_data {
            // An error means the shard failed: the answers below say so.
            if let Ok(sealed) = self.rotate_unless_full().await {
                rotated = sealed;
                out_of_space = !sealed;
            }
        }
        // The backup reads the live store's keys offline, from the checkpoint on: without one
        // at the log's end it would replay every segment since the last one (docs/backups.md
        // §3). That is needed whether or not this seal rotated: a commit that filled the active
        // segment rotated it already, and rotations write no checkpoint, so the last one could
        // be a whole store of large messages back (half of a bench run's time, session 17). A
        // lone record-id floor (written at every open) is not worth one, as at shutdown.
        if rotated || self.records_since_checkpoint > 1 {
            self.checkpoint().await;
        } else {
            self.finish_checkpoint_writing().await;
        }
        // A refused backup copies nothing: no hold then, compaction is what frees room.
        if !out_of_space {
            self.backup_hold_until_ms = Some(self.config.clock.now_unix_ms() + BACKUP_HOLD_MS);
        }
        // A `compact` waiting now would wait for the whole hold: answer it with what was done.
        if !out_of_space && !self.compaction_waiters.is_empty() {
            self.compaction_report.held_for_backup = true;
            self.answer_compaction_waiters(); // takes the report, flag and all
        }
        let mut sealed: Vec<u64> = self.sealed_segment_bytes.keys().copied().collect();
        sealed.sort_unstable();
        for reply in waiters {
            let answer = if self.failure.is_some() {
                Err(self.failed_error())
            } else if out_of_space {
                Err(crate::error::EngineError::StorageFull { shard_id: self.config.shard_id })
            } else {
                Ok(sealed.clone())
            };
            let _ = reply.send(answer);
        }
    }

    /// Whether a backup's hold keeps compaction from removing segments now.
    fn backup_held(&self) -> bool {
        self.backup_hold_until_ms.is_some_and(|until| self.config.clock.now_unix_ms() < until)
    }

    /// Answers every `compact` request with what compaction did since the last answer
    /// (background work included).
    fn answer_compaction_waiters(&mut self) {
        if self.compaction_waiters.is_empty() {
            return;
        }
        let mut report = std::mem::take(&mut self.compaction_report);
        report.rewrite_unrecorded = !self.forced_compaction_recorded();
        let waiters = std::mem::take(&mut self.compaction_waiters);
        for reply in waiters {
            let answer = if self.failure.is_some() { Err(self.failed_error()) } else { Ok(report) };
            let _ = reply.send(answer);
        }
    }

    fn failed_error(&self) -> crate::error::EngineError {
        crate::error::EngineError::ShardFailed {
            shard_id: self.config.shard_id,
            reason: self.failure.clone().unwrap_or_default(),
        }
    }
}

enum Either<A, B> {
    First(A),
    Second(B),
}

/// Whichever of two futures completes first (the other is dropped; both used here are
/// cancel-safe channel receives).
async fn first_of<A: Future, B: Future>(first: A, second: B) -> Either<A::Output, B::Output> {
    let mut first = std::pin::pin!(first);
    let mut second = std::pin::pin!(second);
    std::future::poll_fn(|context| {
        if let std::task::Poll::Ready(value) = first.as_mut().poll(context) {
            return std::task::Poll::Ready(Either::First(value));
        }
        second.as_mut().poll(context).map(Either::Second)
    })
    .await
}
