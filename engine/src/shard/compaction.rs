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
use std::rc::Rc;

use rustc_hash::FxHashMap;

use crate::api::CompactionReport;
use crate::format::{
    BLOCK_BYTES, FRAME_FLAG_RELOCATED, FrameHeader, Record, RecordKind, set_frame_flags, skip_block_gap, verified_frame,
};
use crate::index::{BlobUsage, RecordLocation, SegmentUsage};
use crate::io::{BlockBuffer, Storage};

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
use super::usage_summary::UsageSummary;
use super::victim_read::{AskedVictim, VerifiedVictim, VictimReader};
use super::{Batch, Shard};

/// A segment being compacted: its bytes, how far the copy got, and whom it concerns.
#[derive(Debug)]
pub(crate) struct CompactionJob {
    victim: u64,
    bytes: BlockBuffer,
    cursor: usize,
    usage: Rc<BlobUsage>,
    accounts: BTreeSet<u64>,
}

impl<S: Storage> Shard<S> {
    pub(super) fn blob_usage(&self) -> BlobUsage {
        self.index.blob_usage(self.config.clock.now_unix_ms(), self.config.retention_ms)
    }

    /// The sealed segment most worth compacting: forced ones first, then the lowest needed
    /// share, if below the ratio. `needed_bytes` gives a segment's needed body bytes.
    #[allow(clippy::cast_precision_loss)] // byte counts stay far below 2^52: exact in an f64
    fn next_victim(&self, needed_bytes: impl Fn(u64) -> u64) -> Option<u64> {
        let active = self.active.segment_id();
        // The segment being rewritten, and those being read, are not candidates again.
        let in_progress = self.compaction_job.as_ref().map(|job| job.victim);
        let asked = |segment: u64| self.victim_reader.as_ref().is_some_and(|reader| reader.is_asked(segment));
        let available = |segment: &u64| *segment != active && Some(*segment) != in_progress && !asked(*segment);
        if let Some(forced) = self.compaction_forced.iter().find(|segment| available(segment)) {
            return Some(*forced);
        }
        self.sealed_segment_bytes
            .iter()
            .filter(|(segment, _)| available(segment))
            .filter(|(segment, _)| {
                !self.compaction_rejected.contains_key(segment) && !self.compaction_skipped.contains(segment)
            })
            .map(|(segment, bytes)| (*segment, needed_bytes(*segment) as f64 / record_bytes(*bytes) as f64))
            .filter(|(_, share)| *share < self.config.compaction_live_ratio)
            .min_by(|left, right| left.1.total_cmp(&right.1))
            .map(|(segment, _)| segment)
    }

    /// A step's size: bounded in the background under a budget (see `BACKGROUND_STEP_BYTES`);
    /// a whole batch when someone waits or no budget is set.
    fn compaction_step_bytes(&self) -> usize {
        if self.compaction_at_full_speed() { FULL_SPEED_STEP_BYTES } else { BACKGROUND_STEP_BYTES }
    }

    /// Someone waits for compaction, or no IO budget bounds it.
    fn compaction_at_full_speed(&self) -> bool {
        !self.compaction_waiters.is_empty() || self.config.compaction_bytes_per_second.is_none()
    }

    fn needed_bytes(&self, usage: &BlobUsage, segment: u64) -> u64 {
        self.index.segment_usage(usage).get(&segment).map_or(0, |usage| usage.live_bytes + usage.retained_bytes)
    }

    /// How long background compaction must wait for its IO budget. A `compact` request (an
    /// operator waiting for it) runs at full speed.
    pub(super) fn compaction_pause(&mut self) -> Option<std::time::Duration> {
        if self.compaction_waiters.is_empty() { self.compaction_budget.wait() } else { None }
    }

    /// The idle timer: look for work again. A segment once found not worth rewriting is looked
    /// at again only if it needs fewer body bytes now (retention ended, mail was deleted).
    /// While the last usage pass stands (nothing released, no hold ended) its summary tells
    /// that without walking every message again: a store left alone pays no pass per tick.
    pub(super) fn compaction_tick(&mut self) {
        if self.standing_usage_summary().is_none() {
            self.usage_pass();
        }
        if let Some(summary) = &self.usage_summary {
            let index = &self.index;
            self.compaction_rejected
                .retain(|segment, needed_then| summary.needed_bytes(index, *segment) >= *needed_then);
        }
        self.compaction_wanted = true;
    }

    /// Does one bounded step; returns whether compaction has more to do.
    pub(super) async fn compaction_step(&mut self) -> bool {
        if self.failure.is_some() {
            return false;
        }
        if self.compaction_forced.contains(&self.active.segment_id()) && self.rotation_may_be_tried() {
            // Forced data in the active segment: seal it so that it can be rewritten. Without
            // room for the next segment, the sealed victims go first: rewriting those is what
            // frees room on a full disk (pruned mail), and the rotation is tried again later.
            if self.rotate_unless_full().await.is_err() {
                return false;
            }
        }
        if self.compaction_job.is_none() {
            self.ask_for_next_victim();
            if self.victim_reader.as_ref().is_none_or(|reader| reader.asked.is_none()) {
                if self.compaction_forced.contains(&self.active.segment_id()) {
                    // The active segment could not be sealed for want of room, and the files
                    // this run removed may have made some: try once more.
                    self.finish_segment_removals().await;
                    self.retry_rotation_now();
                    match self.rotate_unless_full().await {
                        Ok(true) => return true, // the sealed segment is the next victim
                        Ok(false) => {}
                        Err(_) => return false,
                    }
                }
                // Nothing left worth compacting: the run ends, and its buffer goes back to the
                // allocator (a segment's worth of memory per shard, idle until the next run).
                // An active segment that could not be sealed for want of room stays marked, for
                // the next run (the idle timer's) once there is room.
                let active = self.active.segment_id();
                self.compaction_forced.retain(|segment| *segment == active);
                if !self.compaction_forced.is_empty() {
                    self.compaction_report.out_of_space = true;
                }
                self.compaction_spare_buffer = None;
                self.finish_segment_removals().await;
                self.remove_withheld_spares().await;
                // Done (or left to the next run): the file says so, for the next open.
                self.save_forced_compaction().await;
                if std::mem::take(&mut self.compaction_checkpoint_due) {
                    self.checkpoint().await;
                }
                return false;
            }
            let Some((AskedVictim { victim, usage }, read)) = self.victim_reader.as_mut().and_then(VictimReader::take)
            else {
                return true; // still being read: `next_request` waits for it
            };
            match read.map(|read| self.start_job(victim, usage, read)) {
                Ok(job) if !self.compaction_forced.contains(&victim) && !self.worth_compacting(&job) => {
                    // Its metadata is still current: not worth it until something changes. (The
                    // per-segment pass behind `needed_bytes` walks every body: only here.)
                    let needed = self.needed_bytes(&job.usage, victim);
                    self.compaction_rejected.insert(victim, needed);
                    self.compaction_spare_buffer = Some(job.bytes);
                    return true;
                }
                Ok(job) => {
                    self.compaction_job = Some(job);
                    // Read the next victim while this one is copied: reads and writes overlap.
                    self.ask_for_next_victim();
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
        let cursor = job.cursor;
        self.copy_needed_bodies(&mut job, &mut batch, &mut relocated);
        // A step that copies nothing (a victim's dead tail) frees a segment without writing
        // more than its accounts' snapshots: on a full disk, that is what makes room.
        if !batch.frames.is_empty() && self.make_room(0, super::room::BULK_MARGIN_BYTES, &batch).await.is_err() {
            // Nothing of the step is applied yet: it is taken again from the same frame.
            // Compaction stops until its next look, and a `compact` waiting is told why.
            job.cursor = cursor;
            self.compaction_job = Some(job);
            self.compaction_report.out_of_space = true;
            return false;
        }
        self.compaction_report.out_of_space = false;
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
        self.finish_job(job);
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
        // The reader verified every frame of the victim (`read_victim`): no checksums again.
        while let Some((at, header, encoded_bytes)) = next_victim_frame(job.bytes.as_slice(), cursor) {
            cursor = at;
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
                live_bytes += encoded_bytes as u64;
            }
            cursor += encoded_bytes;
        }
        (live_bytes as f64) < self.config.compaction_live_ratio * record_bytes(job.bytes.len() as u64) as f64
    }

    /// Asks the reader for the next victim unless it has one in hand already, so requests are
    /// served while it is read and verified (a whole segment: tens of milliseconds the shard
    /// would otherwise stall), and the copy of the current one overlaps its read. One ahead,
    /// not more: a second read ahead at full speed measured the same (824 against 828 MB/s
    /// over three runs each) for another segment's worth of memory per shard.
    fn ask_for_next_victim(&mut self) {
        if self.no_victim_since_last_pass() {
            return;
        }
        let mut pass: Option<(Rc<BlobUsage>, FxHashMap<u64, SegmentUsage>)> = None;
        while self.victim_reader.as_ref().is_none_or(|reader| reader.asked.is_none()) {
            // One usage pass however many candidates are skipped (it walks every message).
            let (usage, per_segment) = pass.get_or_insert_with(|| {
                let (usage, per_segment) = self.usage_pass();
                (Rc::new(usage), per_segment)
            });
            let needed =
                |segment: u64| per_segment.get(&segment).map_or(0, |usage| usage.live_bytes + usage.retained_bytes);
            let Some(victim) = self.next_victim(needed) else { return };
            let usage = Rc::clone(usage);
            let Some(file) = self.readers.get(&victim).cloned() else {
                self.skip_victim(victim, "segment has no reader");
                continue;
            };
            let buffer = self.compaction_spare_buffer.take().unwrap_or_default();
            self.victim_reader.get_or_insert_with(VictimReader::spawn).ask(victim, usage, file, buffer);
        }
    }

    /// The full usage pass (every message, then every body), remembered for the searches after
    /// it (`UsageSummary`).
    fn usage_pass(&mut self) -> (BlobUsage, FxHashMap<u64, SegmentUsage>) {
        let usage = self.blob_usage();
        let per_segment = self.index.segment_usage(&usage);
        self.usage_summary = Some(UsageSummary::of(&self.index, &usage, &per_segment));
        self.usage_passes += 1;
        (usage, per_segment)
    }

    /// Whether the last pass shows, without walking the index again, that no segment qualifies.
    fn no_victim_since_last_pass(&self) -> bool {
        let Some(summary) = self.standing_usage_summary() else {
            return false;
        };
        self.next_victim(|segment| summary.needed_bytes(&self.index, segment)).is_none()
    }

    /// The last usage pass's summary, while it still describes the index (see `UsageSummary`).
    fn standing_usage_summary(&self) -> Option<&UsageSummary> {
        let now = self.config.clock.now_unix_ms();
        self.usage_summary.as_ref().filter(|summary| summary.stands(&self.index, now))
    }

    pub(super) fn compaction_progress(&self) -> Option<crate::api::CompactionProgress> {
        self.compaction_job.as_ref().map(|job| crate::api::CompactionProgress {
            segment_id: job.victim,
            bytes: job.bytes.len() as u64,
            done_bytes: job.cursor as u64,
        })
    }

    /// Makes `usage` the one the current job and the victims read ahead copy under: after a
    /// prune, bodies that were needed (retained) no longer are.
    pub(super) fn use_for_compaction_in_flight(&mut self, usage: &Rc<BlobUsage>) {
        if let Some(job) = &mut self.compaction_job {
            job.usage = Rc::clone(usage);
        }
        if let Some(asked) = self.victim_reader.as_mut().and_then(|reader| reader.asked.as_mut()) {
            asked.usage = Rc::clone(usage);
        }
    }

    /// The job, once its victim is read and verified.
    fn start_job(&mut self, victim: u64, usage: Rc<BlobUsage>, read: VerifiedVictim) -> CompactionJob {
        let VerifiedVictim { bytes, accounts } = read;
        self.compaction_budget.spend(bytes.len() as u64);
        CompactionJob { victim, bytes, cursor: BLOCK_BYTES, usage, accounts }
    }

    /// Copies the needed bodies from the job's cursor on, up to one batch's worth.
    fn copy_needed_bodies(
        &self,
        job: &mut CompactionJob,
        batch: &mut Batch,
        relocated: &mut Vec<(u64, RecordLocation)>,
    ) {
        let step_bytes = self.compaction_step_bytes();
        // Only copies count against the step: dead frames after the last copy are skipped in
        // the same step, so a victim whose tail is dead finishes in it (no commit of its own
        // for the snapshots).
        while job.cursor < job.bytes.len() {
            let (header, encoded_bytes) = match next_victim_frame(job.bytes.as_slice(), job.cursor) {
                Some((at, header, encoded_bytes)) if header.kind != RecordKind::SegmentSealed as u8 => {
                    job.cursor = at;
                    (header, encoded_bytes)
                }
                // The footer. The reader verified every frame before it (`read_victim`), so
                // they are walked without their checksums.
                _ => {
                    job.cursor = job.bytes.len();
                    break;
                }
            };
            if header.account_id != 0 {
                job.accounts.insert(header.account_id);
            }
            let here = self
                .index
                .blob(header.record_id)
                .is_some_and(|location| location.segment_id == job.victim && location.offset == job.cursor as u64);
            // Purge markers are carried forward forever (clear, a few dozen bytes): replay must
            // always learn that the account is gone, or it would wait for a key that no longer
            // exists.
            let carries_purge = header.kind == RecordKind::AccountPurged as u8;
            let copies_body =
                header.kind == RecordKind::MessageAppended as u8 && here && job.usage.is_needed(header.record_id);
            if (carries_purge || copies_body) && batch.frames.len() >= step_bytes {
                break;
            }
            let start = batch.frames.len();
            if carries_purge {
                batch.frames.extend_from_slice(&job.bytes.as_slice()[job.cursor..job.cursor + encoded_bytes]);
                set_frame_flags(&mut batch.frames.as_mut_slice()[start..], 0, self.active.crc_seed());
                batch.last_frame_start = start;
                batch.frame_count += 1;
            } else if copies_body {
                let location = RecordLocation {
                    segment_id: self.active.segment_id(),
                    offset: self.active.log_end() + start as u64,
                    frame_bytes: encoded_bytes as u32,
                };
                batch.frames.extend_from_slice(&job.bytes.as_slice()[job.cursor..job.cursor + encoded_bytes]);
                // The copy's CRC is made anew, from the active segment's seed (format 6).
                set_frame_flags(
                    &mut batch.frames.as_mut_slice()[start..],
                    FRAME_FLAG_RELOCATED,
                    self.active.crc_seed(),
                );
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
                return; // the failure ends the step
            };
            let place = Place { account_id, mailbox_id: 0, uid: 0 };
            self.emit_clear(batch, place, Record::KeyWrapped { wrapped_key: wrapped });
            self.emit_snapshot(batch, account_id, encoded, &cipher);
        }
    }

    fn finish_job(&mut self, job: CompactionJob) {
        let victim = job.victim;
        self.index.forget_blobs_in(victim);
        // Reads already under way hold their own handle on the file and finish undisturbed.
        self.readers.remove(&victim);
        let bytes = self.sealed_segment_bytes.remove(&victim).unwrap_or(0);
        self.compaction_forced.remove(&victim);
        self.compaction_spare_buffer = Some(job.bytes);
        self.remove_segment_file(victim, bytes);
        self.compaction_report.segments_compacted += 1;
        self.compaction_report.bytes_reclaimed += bytes;
        // A checkpoint per victim cost as much as copying half of it; the open does not need
        // one here (the last checkpoint names the active segment, which is never a victim,
        // and replay puts relocated bodies in their new place), so one is written when the
        // run ends, to shorten the next open's replay.
        self.compaction_checkpoint_due = true;
    }

    /// Retires a compacted segment's file on a task of its own (kept for reuse as a new
    /// segment, or removed: `segment::recycling`): unlinking 64 MiB and syncing the directory
    /// took 15-17 ms, an eighth of a victim's time on the shard. Nothing waits for it but the
    /// end of the run (`finish_segment_removals`): until the change is durable a crash only
    /// brings the file back, every record in it superseded by the copies and snapshots
    /// committed before this point, and the next compaction retires it again.
    fn remove_segment_file(&mut self, victim: u64, bytes: u64) {
        let retirement = self.recycled.retire(self.storage.clone(), victim, bytes);
        let shard_id = self.config.shard_id;
        let removal = compio::runtime::spawn(async move {
            if let Err(error) = retirement.await {
                tracing::warn!(shard = shard_id, segment = victim, %error, "compacted segment not removed");
            }
        });
        self.segment_removals.push(removal);
    }

    /// Removes the spare segment files, at the end of a run a prune or purge forced.
    async fn remove_withheld_spares(&mut self) {
        if let Err(error) = self.recycled.remove_withheld(&self.storage).await {
            tracing::warn!(shard = self.config.shard_id, %error, "spare segment files not removed");
        }
    }

    /// Marks what a prune or purge needs rewritten beyond the segments holding its bodies:
    /// the active segment, if its file was reused and may still hold an earlier segment's
    /// bytes past its log (sealing trims them), and the spare files (removed at the end of
    /// the run).
    pub(super) fn force_out_older_bytes(&mut self) {
        self.recycled.withhold();
        if self.active.holds_older_bytes() {
            self.compaction_forced.insert(self.active.segment_id());
        }
    }

    /// Waits until every compacted segment's removal is done (and durable, unless it failed):
    /// before a checkpoint, and before a `compact` request is answered, so that whoever asked
    /// for the space (or for pruned mail to be gone) finds the files gone.
    pub(super) async fn finish_segment_removals(&mut self) {
        for removal in std::mem::take(&mut self.segment_removals) {
            let _ = removal.await;
        }
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
        self.held_for_backup |= other.held_for_backup;
        self.out_of_space |= other.out_of_space;
        self.rewrite_unrecorded |= other.rewrite_unrecorded;
    }
}

/// The frame of a verified victim at `cursor`, or past the block gap there: where it starts, its
/// header and its encoded size. `None` at the end of the bytes.
fn next_victim_frame(bytes: &[u8], cursor: usize) -> Option<(usize, FrameHeader, usize)> {
    let at = skip_block_gap(bytes.get(cursor..).unwrap_or_default(), cursor as u64) as usize;
    verified_frame(bytes.get(at..).unwrap_or_default()).map(|(header, encoded_bytes)| (at, header, encoded_bytes))
}
