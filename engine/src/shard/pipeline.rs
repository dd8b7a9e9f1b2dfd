//! Pipelined group commit: while one commit is written and synced, the shard plans the next.
//!
//! Each commit with frames runs as its own IO task on the shard's runtime: once the previous
//! commit's writes completed (see `TailWrite::write_after` for why not earlier), it writes its
//! blocks, several pieces at once, then fdatasyncs. Commits are answered strictly in
//! order, each only after its own fdatasync returned: an fdatasync vouches only for writes
//! completed before it was issued, so commit N's sync never stands in for N+1's.
//!
//! While any commit is in flight the index is ahead of the disk, so every read waits for the
//! commit that was last planned before it (reads are answered with the acks of that commit).
//! Work that needs the disk to match the index (rotation, checkpoints, compaction steps,
//! shutdown) drains the pipeline first.

use std::collections::VecDeque;
use std::io;

use compio::runtime::JoinHandle;

use super::request::{Outcome, Query, Reply};
use super::{Batch, Shard};
use crate::format::{FRAME_FLAG_COMMIT_END, FRAME_FLAG_COMMIT_START, add_frame_flags};
use crate::io::{Storage, StorageFile};

/// Small commits in flight at most; more would only queue behind the disk (one fdatasync
/// each) and delay their answers, where waiting lets the next batch grow.
const IN_FLIGHT_MAX: usize = 4;

/// Commits in flight at most when the others are large (a stream of big messages). A durable
/// stream moves at most (bytes in flight) / (write + fdatasync latency): with fdatasync at
/// 2-4 ms on the disks we measured, four 1 MiB commits cap it near 1 GB/s, so large commits
/// get more room. Their pieces' memory is bounded by this times `BATCH_BYTES_MAX`.
const IN_FLIGHT_LARGE_MAX: usize = 16;

/// A commit at least this big counts as large.
const LARGE_COMMIT_BYTES: usize = super::BATCH_BYTES_MAX / 2;

/// A frames buffer grown past this (a batch with a large message) is not kept for reuse.
const SPARE_FRAMES_BYTES_MAX: usize = 4 * super::BATCH_BYTES_MAX;

/// A planned commit waiting for its IO (if it has frames) before its answers go out.
pub(super) struct InFlight {
    io: Option<JoinHandle<io::Result<()>>>,
    frame_count: u64,
    /// Bytes of frames it writes.
    bytes: usize,
    acks: Vec<(Reply<Outcome>, Outcome)>,
    queries: Vec<Query>,
}

#[derive(Default)]
pub(super) struct Pipeline {
    commits: VecDeque<InFlight>,
    /// Completes (true) when the last started commit's write succeeded; the next write waits for it.
    last_write: Option<flume::Receiver<bool>>,
    /// The frames buffer of the last started commit, emptied, for the next batch: a fresh one
    /// per batch cost a page fault per 4 KiB and a copy at every doubling as it grew.
    spare_frames: Vec<u8>,
}

impl Pipeline {
    pub(super) fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    pub(super) fn is_full(&self) -> bool {
        let large = self.commits.iter().filter(|commit| commit.bytes >= LARGE_COMMIT_BYTES).count();
        self.commits.len() - large >= IN_FLIGHT_MAX || self.commits.len() >= IN_FLIGHT_LARGE_MAX
    }

    /// An empty batch, reusing the last commit's frames buffer.
    pub(super) fn new_batch(&mut self) -> Batch {
        Batch { frames: std::mem::take(&mut self.spare_frames), ..Batch::default() }
    }

    fn recycle_frames(&mut self, frames: &mut Vec<u8>) {
        if frames.capacity() <= SPARE_FRAMES_BYTES_MAX {
            frames.clear();
            self.spare_frames = std::mem::take(frames);
        }
    }
}

impl<S: Storage> Shard<S> {
    /// Starts writing `batch` and returns without waiting for the disk; its answers go out
    /// from [`Shard::finish_oldest_commit`]. A batch without frames (reads only, or after a
    /// failure) is answered at once when nothing is in flight, else in turn.
    pub(super) async fn start_commit(&mut self, mut batch: Batch) {
        let Batch { frames, frame_count, last_frame_start, acks, deferred_queries: queries, .. } = &mut batch;
        let has_frames = *frame_count > 0 && self.failure.is_none();
        if !has_frames && self.pipeline.is_empty() {
            self.answer_commit(std::mem::take(acks), std::mem::take(queries));
            return;
        }
        let frames_bytes = if has_frames { frames.len() } else { 0 };
        let io = has_frames.then(|| {
            add_frame_flags(frames, FRAME_FLAG_COMMIT_START);
            add_frame_flags(&mut frames[*last_frame_start..], FRAME_FLAG_COMMIT_END);
            self.records_since_checkpoint += *frame_count;
            self.active_has_data = true;
            let io = self.spawn_commit_io(frames, *frame_count);
            self.pipeline.recycle_frames(frames);
            io
        });
        let commit = InFlight {
            io,
            frame_count: if has_frames { *frame_count } else { 0 },
            bytes: frames_bytes,
            acks: std::mem::take(acks),
            queries: std::mem::take(queries),
        };
        self.pipeline.commits.push_back(commit);
        if has_frames {
            // Let the IO task run now, so the write is submitted before we plan the next batch.
            crate::io::yield_now().await;
        }
    }

    fn spawn_commit_io(&mut self, frames: &[u8], frame_count: u64) -> JoinHandle<io::Result<()>> {
        let write = self.active.begin_commit(frames, frame_count);
        let file = self.active.shared_file();
        let previous_write = self.pipeline.last_write.take();
        let (write_done, write_done_receiver) = flume::bounded(1);
        self.pipeline.last_write = Some(write_done_receiver);
        compio::runtime::spawn(async move {
            let previous_written = async move {
                match previous_write {
                    Some(previous) => matches!(previous.recv_async().await, Ok(true)),
                    None => true,
                }
            };
            let written = write.write_after(previous_written).await;
            let _ = write_done.send(written.is_ok());
            written?;
            file.sync_data().await
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
        self.answer_commit(commit.acks, commit.queries);
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

    fn answer_commit(&mut self, acks: Vec<(Reply<Outcome>, Outcome)>, queries: Vec<Query>) {
        for (reply, outcome) in acks {
            let answer = match &self.failure {
                None => Ok(outcome),
                Some(_) => Err(self.failed_error()),
            };
            let _ = reply.send(answer);
        }
        for query in queries {
            self.answer(query);
        }
    }
}
