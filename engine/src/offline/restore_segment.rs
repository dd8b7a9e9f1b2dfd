//! The segment a restore appends to each shard after the copied ones (docs/format.md §8.5).
//! It holds:
//!
//! - every account's key as a `KeyWrapped` record, wrapped under the current KEK: the copies
//!   in the backup's segments may be under a KEK that rotation has since destroyed;
//! - an `AccountPurged` record for each account whose key the backup no longer has: a backup
//!   taken before a purge holds its records but, once re-keyed, not its key, and without the
//!   record the restored store could not open;
//! - an `AccountSnapshot` of every account with a new UIDVALIDITY for each of its mailboxes: the
//!   lost store may have handed out uids after the backup that the restored store will hand out
//!   again, to other messages (RFC 3501 §2.3.1.1).
//!
//! Its record ids start at [`restored_record_id_floor`], far above the backup's: the restored
//! accounts keep their keys, and record ids are their nonces.
//!
//! It is an ordinary active segment (docs/format.md §2): header block, frames from offset
//! 4096, zero padding to a whole block. The engine resumes it as the active segment on open.

use std::io::{self, Write};

use mailvault_hsm::{Dek, WrappedDek};

use crate::crypto::{RecordCipher, TAG_BYTES};
use crate::format::{
    ACCOUNT_SNAPSHOT_PART_BYTES, BLOCK_BYTES, CrcSeed, FRAME_FLAG_COMMIT_END, FRAME_FLAG_COMMIT_START, FrameHeader,
    Record, RecordKind, SHARD_ID_SHIFT, SegmentHeader, add_frame_flags, align_up, encode_frame, snapshot_records,
};
use crate::index::Index;

/// Record ids (per-shard counter) the restored store skips for every second between the backup
/// and the restore: more than any shard writes on average (a million records a second).
pub const RESTORE_RECORD_IDS_PER_SECOND: u64 = 1 << 20;
/// Record ids skipped on top of that: 4096 opens' worth of `RECORD_ID_GAP` (§8.4), for the opens
/// the lost store went through after the backup.
pub const RESTORE_RECORD_ID_MARGIN: u64 = 1 << 36;
/// The restored counter must start below this, so that the restored store keeps half of its
/// shard's id space (2^48) for itself.
const RESTORED_COUNTER_MAX: u64 = 1 << 47;

/// The backup is too old for its restore to be given record ids the lost store cannot have used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the backup is {age_days} days old: a restore from it cannot be given record ids (nonces) that the lost store \
     cannot have used since (a restore skips {RESTORE_RECORD_IDS_PER_SECOND} per second of the backup's age); restore \
     a newer backup"
)]
pub struct BackupTooOld {
    pub age_days: i64,
}

/// The first record id of the segment a restore appends to shard `shard_id`, whose backup's
/// highest record id is `backup_max_record_id`, taken `backup_age_ms` before the restore.
///
/// The restored accounts keep their keys, so the restored store must never use a record id that
/// the lost store used after the backup (the same nonce under the same key, for other
/// plaintext). The lost store's ids after the backup are unknown; what bounds them is time: no
/// shard writes more than `RESTORE_RECORD_IDS_PER_SECOND` records a second on average, and the
/// margin covers the gaps its opens skipped. A restore from a restored store's backup, or a
/// second restore from the same backup, rests on the same bound: the store restored first
/// stayed under that rate too, the gaps of its own opens included.
pub fn restored_record_id_floor(
    shard_id: u32,
    backup_max_record_id: u64,
    backup_age_ms: i64,
) -> Result<u64, BackupTooOld> {
    let base = u64::from(shard_id) << SHARD_ID_SHIFT;
    let backup_counter = backup_max_record_id.saturating_sub(base);
    let age_seconds = u64::try_from(backup_age_ms.max(0) / 1000).unwrap_or(0);
    let counter = age_seconds
        .checked_mul(RESTORE_RECORD_IDS_PER_SECOND)
        .and_then(|skipped| skipped.checked_add(backup_counter))
        .and_then(|counter| counter.checked_add(RESTORE_RECORD_ID_MARGIN))
        .filter(|counter| *counter < RESTORED_COUNTER_MAX)
        .ok_or(BackupTooOld { age_days: backup_age_ms / 86_400_000 })?;
    Ok(base | counter)
}

/// One account's key, for the restore's segment.
#[derive(Debug, Clone)]
pub struct RestoredKey {
    pub account_id: u64,
    /// Wrapped for the restored store (under its current KEK).
    pub wrapped: WrappedDek,
    /// Unwrapped, to seal the account's snapshot.
    pub dek: Dek,
}

/// What a restore appends to one shard.
#[derive(Debug)]
pub struct RestoreSegment<'a> {
    pub shard_id: u32,
    pub segment_id: u64,
    pub created_unix_ms: i64,
    /// From [`restored_record_id_floor`].
    pub first_record_id: u64,
    pub keys: &'a [RestoredKey],
    /// Accounts with records in the backup but no key in its table.
    pub purged: &'a [u64],
    /// The shard's accounts as the backup holds them, their UIDVALIDITYs already renewed
    /// (`Index::renew_uid_validities`): one snapshot each.
    pub accounts: &'a Index,
}

impl RestoreSegment<'_> {
    /// Writes the segment to `out`, one account per commit (its key, then its snapshot, in
    /// several records if it is large), then one commit of the purged accounts, so that neither
    /// this nor a replay of it holds more than one account's snapshot at a time.
    pub fn write(&self, out: impl Write) -> io::Result<()> {
        let mut header = vec![0; BLOCK_BYTES];
        let segment_header = SegmentHeader::new(self.shard_id, self.segment_id, self.created_unix_ms);
        let encoded = segment_header.encode();
        header[..encoded.len()].copy_from_slice(&encoded);
        let mut commits = CommitWriter {
            out,
            seed: segment_header.crc_seed(),
            written: 0,
            next_record_id: self.first_record_id,
            commit: Vec::new(),
            last_frame_start: 0,
        };
        commits.write(&header)?;
        for key in self.keys {
            commits.push(RecordKind::KeyWrapped, key.account_id, key.wrapped.to_bytes(), None);
            if let Some(encoded) = self.accounts.encode_account_snapshot(key.account_id, |_| true) {
                let cipher = RecordCipher::new(&key.dek);
                for record in snapshot_records(encoded, ACCOUNT_SNAPSHOT_PART_BYTES) {
                    commits.push(record.kind(), key.account_id, record.encode(), Some(&cipher));
                }
            }
            commits.end_commit()?;
        }
        let purged_record = Record::AccountPurged { at_unix_ms: self.created_unix_ms }.encode();
        for account_id in self.purged {
            commits.push(RecordKind::AccountPurged, *account_id, purged_record.clone(), None);
        }
        commits.end_commit()?;
        commits.finish()
    }
}

/// Frames gathered into one commit, then written out.
struct CommitWriter<W> {
    out: W,
    /// The segment's frame CRC seed.
    seed: CrcSeed,
    written: usize,
    next_record_id: u64,
    commit: Vec<u8>,
    last_frame_start: usize,
}

impl<W: Write> CommitWriter<W> {
    fn push(&mut self, kind: RecordKind, account_id: u64, mut payload: Vec<u8>, cipher: Option<&RecordCipher>) {
        let tag_bytes = if cipher.is_some() { TAG_BYTES } else { 0 };
        let frame = FrameHeader {
            kind: kind as u8,
            flags: 0,
            record_id: self.next_record_id,
            account_id,
            mailbox_id: 0,
            uid: 0,
            payload_length: (payload.len() + tag_bytes) as u32,
        };
        if let Some(cipher) = cipher {
            cipher.seal(&frame, &mut payload);
        }
        self.next_record_id += 1;
        self.last_frame_start = self.commit.len();
        encode_frame(&frame, &payload, self.seed, &mut self.commit);
    }

    fn end_commit(&mut self) -> io::Result<()> {
        if self.commit.is_empty() {
            return Ok(());
        }
        let seed = self.seed;
        add_frame_flags(&mut self.commit, FRAME_FLAG_COMMIT_START, seed);
        add_frame_flags(&mut self.commit[self.last_frame_start..], FRAME_FLAG_COMMIT_END, seed);
        let commit = std::mem::take(&mut self.commit);
        self.write(&commit)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.written += bytes.len();
        self.out.write_all(bytes)
    }

    /// Zero padding to a whole block, as every segment ends.
    fn finish(mut self) -> io::Result<()> {
        let padding = align_up(self.written, BLOCK_BYTES) - self.written;
        self.write(&vec![0; padding])?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn the_floor_skips_the_margin_and_a_million_ids_per_second_of_the_backups_age() {
        let shard = 3_u64 << SHARD_ID_SHIFT;
        let floor = restored_record_id_floor(3, shard + 500, 10_000).unwrap();
        assert_eq!(floor, shard + 500 + RESTORE_RECORD_ID_MARGIN + 10 * RESTORE_RECORD_IDS_PER_SECOND);
        let empty = restored_record_id_floor(3, 0, 0).unwrap();
        assert_eq!(empty, shard + RESTORE_RECORD_ID_MARGIN, "an empty shard's floor is still in its own id space");
        let clock_behind = restored_record_id_floor(3, shard + 500, -5_000).unwrap();
        assert_eq!(clock_behind, shard + 500 + RESTORE_RECORD_ID_MARGIN);
    }

    #[test]
    fn a_backup_older_than_the_id_space_allows_is_refused_by_age() {
        let four_years = 4 * 365 * DAY_MS;
        assert!(restored_record_id_floor(0, 1, four_years).is_ok());
        let error = restored_record_id_floor(0, 1, 5 * 365 * DAY_MS).unwrap_err();
        assert_eq!(error, BackupTooOld { age_days: 5 * 365 });
        assert!(error.to_string().starts_with("the backup is 1825 days old"), "{error}");
        assert!(restored_record_id_floor(0, 1, i64::MAX).is_err(), "no overflow");
    }
}
