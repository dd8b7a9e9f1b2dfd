//! Compaction: rewriting sealed segments whose live share fell below the ratio, so that the
//! space of deleted (and retention-expired) mail comes back, and pruned mail is gone for good.
//!
//! Message bodies still needed (by a mailbox, or by a deleted message inside its retention
//! window) are copied verbatim, ciphertext untouched, with the `RELOCATED` flag: replaying such
//! a frame only moves the body. Every account with a record in the segment then gets a copy of
//! its wrapped key and an `AccountSnapshot`, which supersedes all of its earlier records; the
//! segment is then removed. The work runs in bounded steps between request batches, each step
//! one normal commit, so deliveries keep flowing; a crash between steps leaves both copies, and
//! replay resolves them (the later copy wins).

use std::collections::BTreeSet;

use rustc_hash::FxHashMap;

use crate::api::CompactionReport;
use crate::format::{
    BLOCK_BYTES, FRAME_FLAG_RELOCATED, FrameDecode, Record, RecordKind, decode_frame, set_frame_flags,
};
use crate::index::{BlobUsage, RecordLocation};
use crate::io::{Storage, StorageFile};
use crate::segment::{ScanEnd, ScanStart, scan_segment, segment_name};

/// The largest account snapshot a record can hold (the payload limit less the tag). Larger
/// accounts need snapshots split over several records: not built yet, so their segments are
/// left uncompacted rather than risk it.
pub(super) const SNAPSHOT_BYTES_MAX: usize = crate::format::RECORD_PAYLOAD_BYTES_MAX - 1024;

/// Bytes copied per background step under an IO budget (one commit and fdatasync each). A
/// delivery that arrives during a step waits for its write and fdatasync, so what the
/// delivery p99 sees is how many deliveries meet a step, not only how long one waits: at a
/// 100 MB/s budget, 1 MiB steps (100 a second) put it at 3.0× idle; 8 MiB steps (12 a second)
/// at 1.0–1.2×, with the p99.9 about twice as long (17–23 ms against 8–11 ms) and an eighth of
/// the fdatasyncs (bench/COMPACTION.md).
const BACKGROUND_STEP_BYTES: usize = 8 * 1024 * 1024;
/// Bytes copied per step when someone waits or no budget is set: large, since each step costs
/// an fdatasync (requests are served between steps, so this bounds their wait too).
const FULL_SPEED_STEP_BYTES: usize = 16 * 1024 * 1024;

use super::emit::Place;
use super::{Batch, Shard};

/// A segment being compacted: its bytes, how far the copy got, and whom it concerns.
#[derive(Debug)]
pub(crate) struct CompactionJob {
    victim: u64,
    bytes: Vec<u8>,
    cursor: usize,
    usage: BlobUsage,
    accounts: BTreeSet<u64>,
}

/// A victim being read and verified by a task of its own.
#[derive(Debug)]
pub(crate) struct VictimRead {
    victim: u64,
    usage: BlobUsage,
    pub(crate) done: flume::Receiver<Result<VerifiedVictim, String>>,
}

/// A victim's bytes, all verified (every frame, the footer and its digest), and the accounts
/// it mentions.
#[derive(Debug)]
pub(crate) struct VerifiedVictim {
    bytes: Vec<u8>,
    accounts: BTreeSet<u64>,
}

/// Reads the victim after verifying all of it: a segment covered by a checkpoint was not read
/// at open, and one that is damaged must be reported and kept, never rewritten from a partial
/// reading and removed.
async fn read_victim<F: StorageFile>(file: &F, victim: u64) -> Result<VerifiedVictim, String> {
    // One read; the scan verifies exactly the bytes the copy will use.
    let size = file.size().await.map_err(|error| error.to_string())?;
    let bytes = file.read_exact(0, size as usize).await.map_err(|error| error.to_string())?;
    let file = VictimBytes(bytes);
    let mut accounts = BTreeSet::new();
    let collect = |frame: crate::segment::ScannedFrame| {
        if frame.header.account_id != 0 {
            accounts.insert(frame.header.account_id);
        }
        Ok(())
    };
    let end =
        scan_segment(&file, victim, false, ScanStart::BEGINNING, collect).await.map_err(|error| error.to_string())?;
    if !matches!(end, ScanEnd::Sealed { untrimmed_end: None, .. }) {
        return Err("segment is not sealed and trimmed".into());
    }
    Ok(VerifiedVictim { bytes: file.0, accounts })
}

/// A victim's bytes, read once, as a read-only file for the scan.
struct VictimBytes(Vec<u8>);

impl StorageFile for VictimBytes {
    async fn write_blocks(
        &self,
        buffer: crate::io::BlockBuffer,
        _offset: u64,
    ) -> (std::io::Result<()>, crate::io::BlockBuffer) {
        (Err(read_only()), buffer)
    }

    async fn read_exact(&self, offset: u64, length: usize) -> std::io::Result<Vec<u8>> {
        let start = usize::try_from(offset).map_err(|_| short())?;
        let end = start.checked_add(length).ok_or_else(short)?;
        self.0.get(start..end).map(<[u8]>::to_vec).ok_or_else(short)
    }

    async fn sync_data(&self) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn preallocate(&self, _length: u64) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn zero_range(&self, _offset: u64, _length: u64) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn set_len(&self, _length: u64) -> std::io::Result<()> {
        Err(read_only())
    }

    async fn size(&self) -> std::io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::other("a victim's bytes are read-only")
}

fn short() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
}

/// What compaction keeps of each segment: the bytes of bodies still needed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SegmentUsage {
    pub live_bytes: u64,
    pub retained_bytes: u64,
    pub retained_until_unix_ms: Option<i64>,
}

impl<S: Storage> Shard<S> {
    pub(super) fn blob_usage(&self) -> BlobUsage {
        self.index.blob_usage(self.config.clock.now_unix_ms(), self.config.retention_ms)
    }

    /// Needed body bytes per segment.
    pub(super) fn segment_usage(&self, usage: &BlobUsage) -> FxHashMap<u64, SegmentUsage> {
        let mut segments = FxHashMap::<u64, SegmentUsage>::default();
        for (record_id, location) in self.index.blobs() {
            let segment = segments.entry(location.segment_id).or_default();
            if usage.live.contains(record_id) {
                segment.live_bytes += u64::from(location.frame_bytes);
            } else if let Some(until) = usage.retained.get(record_id) {
                segment.retained_bytes += u64::from(location.frame_bytes);
                segment.retained_until_unix_ms = Some(segment.retained_until_unix_ms.unwrap_or(*until).max(*until));
            }
        }
        segments
    }

    /// The sealed segment most worth compacting: forced ones first, then the lowest needed
    /// share, if below the ratio.
    #[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^52: exact in an f64
    fn next_victim(&self, usage: &BlobUsage) -> Option<u64> {
        let active = self.active.segment_id();
        // The segment being rewritten is not a candidate again (the next is read meanwhile).
        let in_progress = self.compaction_job.as_ref().map(|job| job.victim);
        let available = |segment: &u64| *segment != active && Some(*segment) != in_progress;
        if let Some(forced) = self.compaction_forced.iter().find(|segment| available(segment)) {
            return Some(*forced);
        }
        let per_segment = self.segment_usage(usage);
        self.sealed_segment_bytes
            .iter()
            .filter(|(segment, _)| available(segment))
            .filter(|(segment, _)| {
                !self.compaction_rejected.contains_key(segment) && !self.compaction_skipped.contains(segment)
            })
            .map(|(segment, bytes)| {
                let needed = per_segment.get(segment).map_or(0, |usage| usage.live_bytes + usage.retained_bytes);
                (*segment, needed as f64 / record_bytes(*bytes) as f64)
            })
            .filter(|(_, share)| *share < self.config.compaction_live_ratio)
            .min_by(|left, right| left.1.total_cmp(&right.1))
            .map(|(segment, _)| segment)
    }

    /// A step's size: bounded in the background under a budget (see `BACKGROUND_STEP_BYTES`);
    /// a whole batch when someone waits or no budget is set.
    fn compaction_step_bytes(&self) -> usize {
        if self.compaction_waiters.is_empty() && self.config.compaction_bytes_per_second.is_some() {
            BACKGROUND_STEP_BYTES
        } else {
            FULL_SPEED_STEP_BYTES
        }
    }

    fn needed_bytes(&self, usage: &BlobUsage, segment: u64) -> u64 {
        self.segment_usage(usage).get(&segment).map_or(0, |usage| usage.live_bytes + usage.retained_bytes)
    }

    /// How long background compaction must wait for its IO budget. A `compact` request (an
    /// operator waiting for it) runs at full speed.
    pub(super) fn compaction_pause(&mut self) -> Option<std::time::Duration> {
        if self.compaction_waiters.is_empty() { self.compaction_budget.wait() } else { None }
    }

    /// The idle timer: look for work again. A segment once found not worth rewriting is looked
    /// at again only if it needs fewer body bytes now (retention ended, mail was deleted).
    pub(super) fn compaction_tick(&mut self) {
        let usage = self.blob_usage();
        let per_segment = self.segment_usage(&usage);
        self.compaction_rejected.retain(|segment, needed_then| {
            per_segment.get(segment).map_or(0, |usage| usage.live_bytes + usage.retained_bytes) >= *needed_then
        });
        self.compaction_wanted = true;
    }

    /// Does one bounded step; returns whether compaction has more to do.
    pub(super) async fn compaction_step(&mut self) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if self.compaction_forced.contains(&self.active.segment_id()) {
            // Forced data in the active segment: seal it so that it can be rewritten.
            if let Err(error) = self.rotate_segment().await {
                self.failure = Some(error.to_string());
                return false;
            }
        }
        if self.compaction_job.is_none() {
            let Some(reading) = self.compaction_reading.take() else {
                let usage = self.blob_usage();
                let Some(victim) = self.next_victim(&usage) else {
                    self.compaction_forced.clear();
                    if std::mem::take(&mut self.compaction_checkpoint_due) {
                        self.checkpoint().await;
                    }
                    return false;
                };
                if let Err(reason) = self.start_reading(victim, usage) {
                    self.skip_victim(victim, &reason);
                }
                return true;
            };
            let read = match reading.done.try_recv() {
                Ok(read) => read,
                Err(flume::TryRecvError::Empty) => {
                    self.compaction_reading = Some(reading);
                    return true; // `next_request` waits for it
                }
                Err(flume::TryRecvError::Disconnected) => Err("the read task stopped".to_owned()),
            };
            let VictimRead { victim, usage, .. } = reading;
            let needed = self.needed_bytes(&usage, victim);
            match read.and_then(|read| self.start_job(victim, usage, read)) {
                Ok(job) if !self.compaction_forced.contains(&victim) && !self.worth_compacting(&job) => {
                    // Its metadata is still current: not worth it until something changes.
                    self.compaction_rejected.insert(victim, needed);
                    return true;
                }
                Ok(job) => {
                    self.compaction_job = Some(job);
                    // Read the next victim while this one is copied: reads and writes overlap.
                    let usage = self.blob_usage();
                    if let Some(next) = self.next_victim(&usage)
                        && let Err(reason) = self.start_reading(next, usage)
                    {
                        self.skip_victim(next, &reason);
                    }
                }
                Err(reason) => {
                    self.skip_victim(victim, &reason);
                    return true; // other segments may still qualify
                }
            }
        }
        let Some(mut job) = self.compaction_job.take() else { return false };
        let mut batch = Batch::default();
        let mut relocated = Vec::new();
        self.copy_needed_bodies(&mut job, &mut batch, &mut relocated);
        // The index takes the new places before the commit, as for every record: the commit may
        // rotate the segment and write a checkpoint, which must describe the log up to it.
        for (record_id, location) in relocated {
            self.index.relocate_blob(record_id, location);
        }
        let finished = job.cursor >= job.bytes.len();
        if finished {
            self.supersede_accounts(&job, &mut batch);
        }
        self.compaction_budget.spend(batch.frames.len() as u64);
        self.commit(batch).await;
        if self.failure.is_some() {
            return false;
        }
        if !finished {
            self.compaction_job = Some(job);
            return true;
        }
        self.finish_job(job).await;
        true
    }

    fn skip_victim(&mut self, victim: u64, reason: &str) {
        tracing::error!(shard = self.config.shard_id, segment = victim, %reason, "compaction leaves the segment as it is");
        self.compaction_forced.remove(&victim);
        self.compaction_skipped.insert(victim);
    }

    /// The full liveness test, made once the segment is read: needed bodies plus metadata
    /// records no snapshot of their account supersedes (`next_victim` saw only the bodies).
    #[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^52: exact in an f64
    fn worth_compacting(&self, job: &CompactionJob) -> bool {
        let mut live_bytes = 0u64;
        let mut cursor = BLOCK_BYTES;
        while let Ok(FrameDecode::Frame(frame)) = decode_frame(job.bytes.get(cursor..).unwrap_or_default()) {
            let header = frame.header;
            let is_body = header.kind == RecordKind::MessageAppended as u8;
            let needed = if is_body {
                job.usage.is_needed(header.record_id)
                    && self
                        .index
                        .blob(header.record_id)
                        .is_some_and(|location| location.segment_id == job.victim && location.offset == cursor as u64)
            } else {
                self.index
                    .account(header.account_id)
                    .is_some_and(|account| header.record_id > account.snapshot_record_id)
            };
            if needed {
                live_bytes += frame.encoded_bytes as u64;
            }
            cursor += frame.encoded_bytes;
        }
        (live_bytes as f64) < self.config.compaction_live_ratio * record_bytes(job.bytes.len() as u64) as f64
    }

    /// Starts reading the victim on a task of its own, so requests are served while it is read
    /// and verified (a whole segment: tens of milliseconds the shard would otherwise stall).
    fn start_reading(&mut self, victim: u64, usage: BlobUsage) -> Result<(), String> {
        let file = self.readers.get(&victim).ok_or("segment has no reader")?.clone();
        let (sender, done) = flume::bounded(1);
        compio::runtime::spawn(async move {
            let _ = sender.send(read_victim(&*file, victim).await);
        })
        .detach();
        self.compaction_reading = Some(VictimRead { victim, usage, done });
        Ok(())
    }

    /// The job, once its victim is read and verified. Every account the segment mentions must
    /// fit in one snapshot record, or the segment cannot be superseded.
    fn start_job(&mut self, victim: u64, usage: BlobUsage, read: VerifiedVictim) -> Result<CompactionJob, String> {
        let VerifiedVictim { bytes, accounts } = read;
        for &account_id in &accounts {
            let size = self.index.encode_account_snapshot(account_id, |_| true).map_or(0, |encoded| encoded.len());
            if size > SNAPSHOT_BYTES_MAX {
                return Err(format!("account {account_id} needs a {size}-byte snapshot, above the record limit"));
            }
        }
        self.compaction_budget.spend(bytes.len() as u64);
        Ok(CompactionJob { victim, bytes, cursor: BLOCK_BYTES, usage, accounts })
    }

    /// Copies the needed bodies from the job's cursor on, up to one batch's worth.
    fn copy_needed_bodies(
        &self,
        job: &mut CompactionJob,
        batch: &mut Batch,
        relocated: &mut Vec<(u64, RecordLocation)>,
    ) {
        let step_bytes = self.compaction_step_bytes();
        while job.cursor < job.bytes.len() && batch.frames.len() < step_bytes {
            let frame = match decode_frame(&job.bytes[job.cursor..]) {
                Ok(FrameDecode::Frame(frame)) if frame.header.kind != RecordKind::SegmentSealed as u8 => frame,
                // The footer: `start_job` verified every frame before it.
                _ => {
                    job.cursor = job.bytes.len();
                    break;
                }
            };
            let header = frame.header;
            let encoded_bytes = frame.encoded_bytes;
            if header.account_id != 0 {
                job.accounts.insert(header.account_id);
            }
            let here = self
                .index
                .blob(header.record_id)
                .is_some_and(|location| location.segment_id == job.victim && location.offset == job.cursor as u64);
            if header.kind == RecordKind::AccountPurged as u8 {
                // Carried forward forever (clear, a few dozen bytes): replay must always learn
                // that the account is gone, or it would wait for a key that no longer exists.
                let start = batch.frames.len();
                batch.frames.extend_from_slice(&job.bytes[job.cursor..job.cursor + encoded_bytes]);
                set_frame_flags(&mut batch.frames[start..], 0);
                batch.last_frame_start = start;
                batch.frame_count += 1;
            } else if header.kind == RecordKind::MessageAppended as u8 && here && job.usage.is_needed(header.record_id)
            {
                let start = batch.frames.len();
                let location = RecordLocation {
                    segment_id: self.active.segment_id(),
                    offset: self.active.log_end() + start as u64,
                    frame_bytes: encoded_bytes as u32,
                };
                batch.frames.extend_from_slice(&job.bytes[job.cursor..job.cursor + encoded_bytes]);
                set_frame_flags(&mut batch.frames[start..], FRAME_FLAG_RELOCATED);
                batch.last_frame_start = start;
                batch.frame_count += 1;
                relocated.push((header.record_id, location));
            }
            job.cursor += encoded_bytes;
        }
    }

    /// Gives every account the segment mentioned a fresh key copy and snapshot, superseding
    /// all of its records there (retention-expired deleted messages are left out).
    fn supersede_accounts(&mut self, job: &CompactionJob, batch: &mut Batch) {
        let now = self.config.clock.now_unix_ms();
        let retention_ms = self.config.retention_ms;
        for &account_id in &job.accounts {
            let Some(wrapped) = self.keys.wrapped(account_id).map(mailvault_hsm::WrappedDek::to_bytes) else {
                continue; // an account that no longer exists: its records simply die
            };
            let keep =
                |deleted: &crate::index::DeletedMessage| deleted.expunged_unix_ms.saturating_add(retention_ms) > now;
            let Some(encoded) = self.index.encode_account_snapshot(account_id, keep) else { continue };
            let Ok(cipher) = self.keys.cipher(account_id, &self.hsm) else {
                tracing::error!(shard = self.config.shard_id, account_id, "compaction cannot open an account key");
                self.failure = Some("compaction cannot open an account key".into());
                return;
            };
            let place = Place { account_id, mailbox_id: 0, uid: 0 };
            self.emit_clear(batch, place, Record::KeyWrapped { wrapped_key: wrapped });
            self.emit(batch, place, Record::AccountSnapshot { encoded }, &cipher);
        }
    }

    async fn finish_job(&mut self, job: CompactionJob) {
        let victim = job.victim;
        self.index.forget_blobs_in(victim);
        // Reads already under way hold their own handle on the file and finish undisturbed.
        self.readers.remove(&victim);
        let bytes = self.sealed_segment_bytes.remove(&victim).unwrap_or(0);
        self.compaction_forced.remove(&victim);
        let removed = match self.storage.remove(&segment_name(victim)).await {
            Ok(()) => self.storage.sync_directory().await,
            Err(error) => Err(error),
        };
        if let Err(error) = removed {
            tracing::warn!(shard = self.config.shard_id, segment = victim, %error, "compacted segment not removed");
        }
        self.compaction_report.segments_compacted += 1;
        self.compaction_report.bytes_reclaimed += bytes;
        // A checkpoint per victim cost as much as copying half of it; the open does not need
        // one here (the last checkpoint names the active segment, which is never a victim,
        // and replay puts relocated bodies in their new place), so one is written when the
        // run ends, to shorten the next open's replay.
        self.compaction_checkpoint_due = true;
    }
}

/// A segment's bytes that records can occupy: its header block is fixed overhead, which no
/// rewrite can reclaim, so it must not count as dead (tiny segments would be rewritten forever).
fn record_bytes(segment_bytes: u64) -> u64 {
    segment_bytes.saturating_sub(BLOCK_BYTES as u64).max(1)
}

impl CompactionReport {
    pub(crate) fn merge(&mut self, other: &CompactionReport) {
        self.segments_compacted += other.segments_compacted;
        self.bytes_reclaimed += other.bytes_reclaimed;
    }
}
