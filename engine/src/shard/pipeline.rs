//! Pipelined group commit: while commits are written and synced, the shard plans the next.
//!
//! Each commit with frames runs as its own IO task on the shard's runtime: it grows the file if
//! it must (in commit order), writes its blocks, several pieces at once, then fdatasyncs. A
//! commit of one piece (up to 128 KiB: every commit of a lightly loaded shard) is written
//! durably instead, write and sync in one request (`O_DSYNC`) rather than a write and then an
//! fdatasync on another thread: 22–25% more appends per second at 1 and 8 in flight, 65% more
//! one at a time into recycled segments (bench/README.md, session 33). Its writes overlap
//! those of the commits ahead of it. A commit planned while another is in flight starts on a
//! fresh block (format version 4), so the two share no block; otherwise its first
//! piece rewrites the tail block it shares with the previous commit, and waits for that
//! commit's writes (see `TailWrite::write`). Its first frame carries its durable gap: how far
//! before it the log was synced when it was planned, which is what lets recovery cut several
//! torn commits without mistaking one that landed ahead of a torn one for proof of damage
//! (docs/format.md §7, §8.3).
//! Commits are answered strictly in order, each only after its own fdatasync (or durable write)
//! returned: an fdatasync vouches only for writes completed before it was issued, so commit
//! N's sync never stands in for N+1's.
//!
//! While any commit is in flight the index is ahead of the disk. A read that could see a change
//! in flight closes the batch it lands in, and the shard drains the pipeline before it plans
//! anything more: the read is answered with that batch's mutations, when the index and the disk
//! agree (`read_fence`). Answered as soon as the commit planned before it ended, it would also
//! see the batches planned meanwhile, which a crash could still take back (with the uids it
//! showed then given to other messages; bench/README.md, session 14).
//! Work that needs the disk to match the index (rotation, checkpoints, compaction steps,
//! shutdown) drains the pipeline first.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

use compio::runtime::JoinHandle;

use super::request::{Answer, Query};
use super::{Batch, Shard};
use crate::format::{DURABLE_GAP_UNIT_BYTES, FRAME_FLAG_COMMIT_END, add_frame_flags, mark_commit_start};
use crate::io::{Storage, StorageFile};
use crate::segment::CommitFrames;

/// Small commits in flight at most; more would only queue behind the disk (one fdatasync
/// each) and delay their answers, where waiting lets the next batch grow.
const IN_FLIGHT_MAX: usize = 4;

/// Commits in flight at most when the others are large (a stream of big messages). A durable
/// stream moves at most (bytes in flight) / (write + fdatasync latency): with fdatasync at
/// 2-4 ms on the disks we measured, four 512 KiB commits cap it near 500 MB/s, so large commits
/// get more room. Their pieces' memory is bounded by this times `BATCH_BYTES_MAX`.
const IN_FLIGHT_LARGE_MAX: usize = 16;

/// A commit at least this big counts as large.
const LARGE_COMMIT_BYTES: usize = super::BATCH_BYTES_MAX / 2;

/// A planned commit waiting for its IO (if it has frames) before its answers go out.
pub(super) struct InFlight {
    io: Option<JoinHandle<io::Result<()>>>,
    /// Its batch's number (see `ReadFence`).
    batch_number: u64,
    /// The log end before this commit: with a commit of frames, where it starts on disk.
    start: u64,
    frame_count: u64,
    /// Bytes of frames it writes.
    bytes: usize,
    answers: Vec<Answer>,
    queries: Vec<Query>,
}

pub(super) struct Pipeline {
    commits: VecDeque<InFlight>,
    /// Commits whose blocks are still being written (their fdatasync not yet begun); commits
    /// written durably are not counted (see `spawn_commit_io`).
    writing: Rc<Cell<usize>>,
    /// Rung by a commit's IO task when its writes end and when it ends: the request loop waits
    /// on it and on the request queue at once.
    doorbell: (flume::Sender<()>, flume::Receiver<()>),
    /// Completes (true) when the last started commit's write succeeded; the next commit's
    /// first piece waits for it.
    last_write: Option<flume::Receiver<bool>>,
    /// Completes (true) when the last started commit grew the file as it needed; the next
    /// commit grows it, and writes any of its pieces, only after that.
    last_grow: Option<flume::Receiver<bool>>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            commits: VecDeque::new(),
            writing: Rc::default(),
            doorbell: flume::bounded(1),
            last_write: None,
            last_grow: None,
        }
    }
}

impl Pipeline {
    pub(super) fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    /// Whether a commit in flight is still writing its blocks: the disk is busy with writes,
    /// so a batch that would only start another write can wait and grow.
    pub(super) fn is_writing(&self) -> bool {
        self.writing.get() > 0
    }

    /// Whether the oldest commit's IO ended (its answers are ready to go out).
    pub(super) fn oldest_is_done(&self) -> bool {
        self.commits.front().is_some_and(|commit| commit.io.as_ref().is_none_or(JoinHandle::is_finished))
    }

    /// Completes once a commit's IO task rang since the last call (spuriously at most once).
    pub(super) async fn rung(&self) {
        let _ = self.doorbell.1.recv_async().await;
    }

    pub(super) fn is_full(&self) -> bool {
        let large = self.commits.iter().filter(|commit| commit.bytes >= LARGE_COMMIT_BYTES).count();
        self.commits.len() - large >= IN_FLIGHT_MAX || self.commits.len() >= IN_FLIGHT_LARGE_MAX
    }
}

impl<S: Storage> Shard<S> {
    /// An empty batch, its frames laid out behind the log's last block. Behind a commit still in
    /// flight it starts on a fresh block: sharing the block that commit ended in would make its
    /// first write wait until all of that commit's writes completed, and under load that
    /// chain, one commit's writes after the other's, was the limit (bench/README.md, session
    /// 8). Decided here, before any frame is placed: the index learns each frame's offset as
    /// it is planned.
    pub(super) fn new_batch(&mut self) -> Batch {
        let in_flight = self.pipeline.commits.iter().any(|commit| commit.io.is_some());
        let starts_on_fresh_block = in_flight && self.active.start_next_commit_on_fresh_block();
        Batch { frames: self.active.next_commit_frames(), starts_on_fresh_block, ..Batch::default() }
    }

    /// Starts writing `batch` and returns without waiting for the disk; its answers go out
    /// from [`Shard::finish_oldest_commit`]. A batch without frames (reads only, or after a
    /// failure) is answered at once when nothing is in flight, else in turn.
    pub(super) async fn start_commit(&mut self, mut batch: Batch) {
        let shares_tail_block = !batch.starts_on_fresh_block;
        let batch_number = self.read_fence.start_batch();
        let Batch { frames, frame_count, last_frame_start, answers, deferred_queries: queries, .. } = &mut batch;
        let frames = std::mem::take(frames);
        let wants_frames = *frame_count > 0 && self.failure.is_none();
        let durable_gap = if wants_frames { self.make_room_for_durable_gap().await } else { 0 };
        // Waiting for commits in flight may have found one failed: then nothing more is written.
        let has_frames = wants_frames && self.failure.is_none();
        if !has_frames && self.pipeline.is_empty() {
            self.read_fence.durable_through(batch_number);
            self.answer_commit(std::mem::take(answers), std::mem::take(queries));
            return;
        }
        let frames_bytes = if has_frames { frames.len() } else { 0 };
        let start = self.active.log_end();
        let io = has_frames.then(|| {
            let mut frames = frames;
            let seed = self.active.crc_seed();
            mark_commit_start(frames.as_mut_slice(), durable_gap, seed);
            add_frame_flags(&mut frames.as_mut_slice()[*last_frame_start..], FRAME_FLAG_COMMIT_END, seed);
            self.records_since_checkpoint += *frame_count;
            self.bytes_since_checkpoint += frames_bytes as u64;
            self.active_has_data = true;
            self.spawn_commit_io(frames, *frame_count, shares_tail_block)
        });
        let commit = InFlight {
            io,
            batch_number,
            start,
            frame_count: if has_frames { *frame_count } else { 0 },
            bytes: frames_bytes,
            answers: std::mem::take(answers),
            queries: std::mem::take(queries),
        };
        self.pipeline.commits.push_back(commit);
        if has_frames {
            // Let the IO task run now, so the write is submitted before we plan the next batch.
            crate::io::yield_now().await;
        }
    }

    /// The durable gap of a commit planned now, in 64 KiB units (rounded up: the claim may
    /// fall short of what is durable, never beyond it). The log is durable up to the start of
    /// the oldest commit in flight with frames, or all of it. Waits for commits in flight when
    /// the gap would not fit in 16 bits, or when the active segment predates overlapping
    /// commits (format version 2: its commits must not begin before the ones ahead are durable).
    async fn make_room_for_durable_gap(&mut self) -> u16 {
        loop {
            let log_end = self.active.log_end();
            let durable_end =
                self.pipeline.commits.iter().find(|commit| commit.io.is_some()).map(|commit| commit.start);
            let Some(durable_end) = durable_end else { return 0 };
            let units = (log_end - durable_end).div_ceil(DURABLE_GAP_UNIT_BYTES);
            match u16::try_from(units) {
                Ok(units) if self.active.allows_overlapping_commits() => return units,
                _ => self.finish_oldest_commit().await,
            }
        }
    }

    /// Starts the commit's IO task. Its first piece waits for the previous commit's writes only
    /// if it `shares_tail_block` with them.
    fn spawn_commit_io(
        &mut self,
        frames: CommitFrames,
        frame_count: u64,
        shares_tail_block: bool,
    ) -> JoinHandle<io::Result<()>> {
        let write = self.active.begin_commit(frames, frame_count);
        let file = self.active.shared_file();
        let previous_write = self.pipeline.last_write.take().filter(|_| shares_tail_block);
        let (write_done, write_done_receiver) = flume::bounded(1);
        self.pipeline.last_write = Some(write_done_receiver);
        let previous_grow = self.pipeline.last_grow.take();
        let (grow_done, grow_done_receiver) = flume::bounded(1);
        self.pipeline.last_grow = Some(grow_done_receiver);
        // A durable write's end is its sync's: counted as writing, it would hold the next batch
        // back for the whole sync, where a plain write holds it only until its blocks are down.
        let synced = write.writes_durably();
        let writing = Ringing::new(&self.pipeline.doorbell.0, (!synced).then_some(&self.pipeline.writing));
        let ended = Ringing::new(&self.pipeline.doorbell.0, None);
        // A dropped sender (an early return below) reads as a failure to the next commit.
        compio::runtime::spawn(async move {
            let _ended = ended;
            if !signalled_success(previous_grow).await {
                return Err(io::Error::other("an earlier commit's write failed"));
            }
            write.grow().await?;
            let _ = grow_done.send(true);
            let written = write.write(signalled_success(previous_write)).await;
            let _ = write_done.send(written.is_ok());
            drop(writing);
            written?;
            if synced { Ok(()) } else { file.sync_data().await }
        })
    }

    /// Waits for the oldest commit's IO and answers it.
    pub(super) async fn finish_oldest_commit(&mut self) {
        let Some(commit) = self.pipeline.commits.pop_front() else { return };
        if let Some(io) = commit.io {
            let result = match io.await {
                Ok(result) => result,
                Err(error) => Err(io::Error::other(format!("commit task ended: {error}"))),
            };
            match result {
                Ok(()) if self.failure.is_none() => {
                    self.commits += 1;
                    self.records_committed += commit.frame_count;
                }
                Ok(()) => {}
                Err(error) => {
                    tracing::error!(shard = self.config.shard_id, %error, "commit failed; shard stops accepting requests");
                    self.failure.get_or_insert_with(|| error.to_string());
                }
            }
        }
        self.read_fence.durable_through(commit.batch_number);
        self.answer_commit(commit.answers, commit.queries);
    }

    /// Waits for every commit in flight: afterwards the disk holds everything the index does.
    pub(super) async fn drain_commits(&mut self) {
        while !self.pipeline.is_empty() {
            self.finish_oldest_commit().await;
        }
    }

    /// Writes `batch` and waits until it and everything before it is durable and answered
    /// (then rotates a full segment, as after every commit).
    pub(super) async fn commit(&mut self, batch: Batch) {
        self.drain_commits().await;
        self.start_commit(batch).await;
        self.drain_commits().await;
        self.after_commit().await;
    }

    fn answer_commit(&mut self, answers: Vec<Answer>, queries: Vec<Query>) {
        for (reply, answer) in answers {
            let answer = match &self.failure {
                None => answer,
                Some(_) => Err(self.failed_error()),
            };
            let _ = reply.send(answer);
        }
        for query in queries {
            self.answer(query);
        }
    }
}

/// Rings the pipeline's doorbell when dropped: when a commit's writes end (and then counts it
/// out of those writing), or when its IO task ends, on every path out of either.
struct Ringing {
    bell: flume::Sender<()>,
    writing: Option<Rc<Cell<usize>>>,
}

impl Ringing {
    fn new(bell: &flume::Sender<()>, writing: Option<&Rc<Cell<usize>>>) -> Self {
        if let Some(writing) = writing {
            writing.set(writing.get() + 1);
        }
        Self { bell: bell.clone(), writing: writing.cloned() }
    }
}

impl Drop for Ringing {
    fn drop(&mut self) {
        if let Some(writing) = &self.writing {
            writing.set(writing.get() - 1);
        }
        // Full: a ring is already waiting, which is all the loop needs to look again.
        let _ = self.bell.try_send(());
    }
}

/// Whether the step a commit waits for succeeded (no step to wait for: yes).
async fn signalled_success(signal: Option<flume::Receiver<bool>>) -> bool {
    match signal {
        Some(signal) => matches!(signal.recv_async().await, Ok(true)),
        None => true,
    }
}
