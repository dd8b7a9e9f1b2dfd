//! Room on disk. A full filesystem refuses the writes that need space, with
//! [`EngineError::StorageFull`], before they change anything, and the shard goes on serving
//! reads and resumes writing by itself once space is freed.
//!
//! - A mutation is refused before it is planned: planning updates the index, which could not
//!   be taken back once the log failed to grow. So the active segment's reservation must cover
//!   the mutation first (`make_room`); growing it is one `fallocate`, which fails before
//!   anything is written. Appends need a larger margin than small changes, so that when the
//!   disk fills, deliveries stop while users can still log in (a login is recorded), flag and
//!   delete, and an operator can prune.
//! - A segment that cannot be rotated (no room to preallocate the next one) stays active: the
//!   next segment is prepared before the full one is sealed (`ActiveSegment::prepare`), so a
//!   refusal leaves the log as it was. Mutations go on into the active segment as long as its
//!   reservation can grow, and the rotation is tried again a second later, or at once after a
//!   write found room or on a `compact` request.
//!
//! Before, a rotation that failed for want of space stopped the shard, reads included, until a
//! restart (found by filling a 400 MB ext4 filesystem over LMTP).

use std::time::{Duration, Instant};

use super::recovery::RotationError;
use super::request::Mutation;
use super::{Batch, Shard};
use crate::error::EngineError;
use crate::io::{Storage, is_out_of_space};

/// Room kept in the active segment's reservation beyond what a bulk write (an append, a
/// compaction step) is known to need. What it leaves is kept for small changes: on a full
/// disk, deliveries are refused first, while logins (each one is recorded), flag changes,
/// deletions and prunes go on in the last of the reservation.
pub(super) const BULK_MARGIN_BYTES: u64 = 1024 * 1024;
/// The same for a small change, whose records the request tells (`Mutation::log_bytes_hint`);
/// sealing needs a block for the footer.
pub(super) const SMALL_MARGIN_BYTES: u64 = 64 * 1024;
/// A snapshot part's frame beyond its piece of the snapshot: header, record fields, tag.
const SNAPSHOT_PART_OVERHEAD_BYTES: u64 = 256;
/// After a rotation found no room, how long until the next try (unless a write finds room
/// first).
const ROTATION_RETRY: Duration = Duration::from_secs(1);

/// Whether and since when the shard found its filesystem full (Unix ms, engine clock), and when
/// to try rotating again.
#[derive(Debug, Default)]
pub(super) struct RoomState {
    out_of_space_since_unix_ms: Option<i64>,
    rotation_retry_at: Option<Instant>,
}

impl<S: Storage> Shard<S> {
    /// The log bytes `mutation` needs, and the margin to keep beyond them: a delivery keeps the
    /// bulk margin, every other change the small one. A prune's snapshot of the account is
    /// measured here (encoded once more: prunes are rare), so that on a full disk deleted mail
    /// can still be pruned, and then compacted away, while deliveries are refused.
    pub(super) fn room_needed(&self, mutation: &Mutation) -> (u64, u64) {
        let hint = mutation.log_bytes_hint();
        match mutation {
            Mutation::Append { .. } => (hint, BULK_MARGIN_BYTES),
            Mutation::PruneDeleted { account } => {
                let snapshot =
                    self.index.account_id(account).and_then(|id| self.index.encode_account_snapshot(id, |_| false));
                let snapshot_bytes = snapshot.map_or(0, |encoded| encoded.len() as u64);
                // Each part of the snapshot is a frame of its own.
                let parts = snapshot_bytes.div_ceil(self.config.account_snapshot_part_bytes.max(1) as u64);
                (hint + snapshot_bytes + parts * SNAPSHOT_PART_OVERHEAD_BYTES, SMALL_MARGIN_BYTES)
            }
            _ => (hint, SMALL_MARGIN_BYTES),
        }
    }

    /// Makes sure the active segment's reservation covers `bytes` more of log after `batch`,
    /// and `margin` beyond; [`EngineError::StorageFull`] if the filesystem has no room for
    /// that. Nothing is written either way.
    pub(super) async fn make_room(&mut self, bytes: u64, margin: u64, batch: &Batch) -> Result<(), EngineError> {
        let end = self.active.log_end() + batch.frames.len() as u64 + bytes + margin;
        if end <= self.active.reserved_bytes() {
            return Ok(());
        }
        match self.active.reserve_through(end).await {
            Ok(()) => {
                // Room again, or a segment past its size: rotate at the next chance.
                self.room.rotation_retry_at = None;
                self.note_room_found();
                Ok(())
            }
            Err(error) if is_out_of_space(&error) => {
                self.note_out_of_space("growing the active segment's reservation", &error);
                Err(EngineError::StorageFull { shard_id: self.config.shard_id })
            }
            // Nothing was written: the request fails, the shard goes on.
            Err(error) => Err(EngineError::Io(error)),
        }
    }

    /// Whether the active segment is full and a rotation may be tried now.
    pub(super) fn rotation_due(&self) -> bool {
        self.active.log_end() >= self.config.segment_bytes_max && self.rotation_may_be_tried()
    }

    /// Lets the next rotation be tried at once, whenever the last one found no room.
    pub(super) fn retry_rotation_now(&mut self) {
        self.room.rotation_retry_at = None;
    }

    /// Whether a rotation may be tried now: not within a second of one that found no room.
    pub(super) fn rotation_may_be_tried(&self) -> bool {
        self.failure.is_none() && self.room.rotation_retry_at.is_none_or(|at| Instant::now() >= at)
    }

    /// Rotates the active segment. Without room for the next one the active segment stays, and
    /// the rotation is tried again later: `Ok(false)`. `Err`: the shard failed (and says why).
    pub(super) async fn rotate_unless_full(&mut self) -> Result<bool, EngineError> {
        match self.rotate_segment().await {
            Ok(()) => {
                self.room.rotation_retry_at = None;
                self.note_room_found();
                Ok(true)
            }
            Err(RotationError::NoRoom(error)) => {
                self.note_out_of_space("preallocating the next segment", &error);
                self.room.rotation_retry_at = Some(Instant::now() + ROTATION_RETRY);
                Ok(false)
            }
            Err(RotationError::Failed(error)) => {
                tracing::error!(shard = self.config.shard_id, %error, "segment rotation failed; shard stops accepting requests");
                self.failure = Some(error.to_string());
                Err(self.failed_error())
            }
        }
    }

    /// Since when the shard has found its filesystem full (`ShardStats`).
    pub(super) fn out_of_space_since_unix_ms(&self) -> Option<i64> {
        self.room.out_of_space_since_unix_ms
    }

    /// Logged once per episode: every refused write would otherwise log the same line.
    fn note_out_of_space(&mut self, doing: &str, error: &std::io::Error) {
        if self.room.out_of_space_since_unix_ms.is_none() {
            tracing::warn!(shard = self.config.shard_id, %error, doing, "the filesystem is out of space: writes that need room are refused until space is freed; reads go on");
            self.room.out_of_space_since_unix_ms = Some(self.config.clock.now_unix_ms());
        }
    }

    fn note_room_found(&mut self) {
        if let Some(since) = self.room.out_of_space_since_unix_ms.take() {
            let seconds = (self.config.clock.now_unix_ms() - since) / 1000;
            tracing::info!(shard = self.config.shard_id, seconds, "the filesystem has room again: writes resume");
        }
    }
}
