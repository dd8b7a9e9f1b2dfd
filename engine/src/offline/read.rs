//! Read-only replay of one shard's segments: a live shard (its checkpoint used when it can be,
//! the active segment read up to its last complete commit) or a backup's copy of one (exactly
//! the segments its manifest lists, every one sealed, keys from the backup's key table).
//!
//! This is recovery's `Replay`, minus everything recovery writes: no temporaries removed, no
//! torn tail cut, no segment trimmed, no record-id floor committed, no lock taken.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::rc::Rc;

use mailvault_hsm::{Dek, HsmSession, WrappedDek};

use crate::crypto::{KeyTable, RecordCipher};
use crate::index::Index;
use crate::io::{DiskStorage, Storage};
use crate::segment::{ScanError, ScanStart, parse_segment_name, scan_segment, segment_name};
use crate::shard::checkpoint::load_checkpoint;
use crate::shard::recovery::Replay;

/// Which segments of the directory to replay.
#[derive(Debug, Clone)]
pub enum SegmentSelection {
    /// Every segment in the directory; the last may be the active one. The shard's checkpoint
    /// is used if it can be (as an open would), else the whole log is replayed.
    Live,
    /// Exactly these segments, every one sealed (a backup's copy of a shard).
    Sealed(Vec<u64>),
}

/// Where the account keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// The log's `KeyWrapped` records (and the checkpoint's key table), unwrapped by the KEK.
    Log,
    /// Keys given whole (a backup's key table, unwrapped by the backup key): the log's
    /// `KeyWrapped` records are ignored, and an account without a key here is skipped.
    Table(Vec<TableKey>),
}

/// One account's key from a backup's key table.
#[derive(Debug, Clone)]
pub struct TableKey {
    pub account_id: u64,
    /// The key as the table holds it (wrapped by the backup key): kept for reference only.
    pub wrapped: WrappedDek,
    pub dek: Dek,
}

/// What a shard holds.
#[derive(Debug)]
pub struct ShardRead {
    pub index: Index,
    /// The highest record id seen (a restore writes its key records above it).
    pub max_record_id: u64,
    /// Accounts with records but no key in the given table (erased accounts): skipped.
    pub accounts_without_key: BTreeSet<u64>,
    /// The segments replayed or covered by the checkpoint, in log order.
    pub segment_ids: Vec<u64>,
    /// Every account's wrapped key as the replay ended (the live KEK's, with `KeySource::Log`).
    pub wrapped_keys: Vec<(u64, WrappedDek)>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("reading shard {shard_id}: {source}")]
    Io { shard_id: u32, source: std::io::Error },
    #[error("shard {shard_id}: {source}")]
    Segment { shard_id: u32, source: ScanError },
    #[error("shard {shard_id} is inconsistent: {reason}")]
    Inconsistent { shard_id: u32, reason: String },
}

impl KeySource {
    fn into_table(self) -> (KeyTable, bool) {
        match self {
            Self::Log => (KeyTable::default(), false),
            Self::Table(keys) => {
                let mut table = KeyTable::default();
                for key in keys {
                    table.insert_unwrapped(key.account_id, key.wrapped, RecordCipher::new(&key.dek));
                }
                (table, true)
            }
        }
    }
}

/// Replays the segments of `directory` (shard `shard_id`) without changing anything.
pub async fn read_shard(
    directory: &Path,
    shard_id: u32,
    selection: SegmentSelection,
    keys: KeySource,
    hsm: &HsmSession,
) -> Result<ShardRead, ReadError> {
    let io = |source| ReadError::Io { shard_id, source };
    let storage = DiskStorage::new(directory);
    let (segment_ids, live) = match selection {
        SegmentSelection::Live => {
            let mut ids: Vec<u64> =
                storage.list().await.map_err(io)?.iter().filter_map(|name| parse_segment_name(name)).collect();
            ids.sort_unstable();
            (ids, true)
        }
        SegmentSelection::Sealed(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            (ids, false)
        }
    };
    let (table, keys_fixed) = keys.into_table();
    let checkpoint = if live && !keys_fixed {
        match load_checkpoint(&storage, hsm, shard_id).await {
            Ok(Some(checkpoint)) if segment_ids.contains(&checkpoint.position.segment_id) => Some(checkpoint),
            Ok(_) => None,
            Err(reason) => {
                tracing::warn!(shard = shard_id, %reason, "checkpoint unusable; reading the whole log");
                None
            }
        }
    } else {
        None
    };
    let resume = checkpoint.as_ref().map(|checkpoint| checkpoint.position);
    let mut replay = match checkpoint {
        Some(loaded) => Replay::new(hsm, loaded.index, loaded.keys, loaded.position.max_record_id),
        None if keys_fixed => Replay::with_fixed_keys(hsm, table),
        None => Replay::new(hsm, Index::default(), table, 0),
    };
    let mut readers = HashMap::new();
    for (position, &segment_id) in segment_ids.iter().enumerate() {
        let file = storage.open(&segment_name(segment_id), false).await.map_err(io)?;
        let start = match resume {
            Some(resume) if segment_id < resume.segment_id => {
                readers.insert(segment_id, Rc::new(file));
                continue;
            }
            Some(resume) if segment_id == resume.segment_id => {
                ScanStart { offset: resume.log_end, record_count: resume.record_count }
            }
            _ => ScanStart::BEGINNING,
        };
        let is_last = live && position + 1 == segment_ids.len();
        scan_segment(&file, segment_id, is_last, start, |frame| replay.apply(segment_id, frame))
            .await
            .map_err(|source| ReadError::Segment { shard_id, source })?;
        readers.insert(segment_id, Rc::new(file));
        // Records that waited for their account's key (met under a KEK a purge destroyed,
        // before the re-wrapped copy) are applied once it appeared, as open does.
        replay.apply_ready(&readers).await.map_err(|reason| ReadError::Inconsistent { shard_id, reason })?;
    }
    let accounts_without_key = replay.take_accounts_without_key();
    let (index, keys, max_record_id) =
        replay.finish(&readers).map_err(|reason| ReadError::Inconsistent { shard_id, reason })?;
    let mut wrapped_keys: Vec<(u64, WrappedDek)> =
        keys.wrapped_keys().map(|(account_id, wrapped)| (account_id, wrapped.clone())).collect();
    wrapped_keys.sort_by_key(|(account_id, _)| *account_id);
    Ok(ShardRead { index, max_record_id, accounts_without_key, segment_ids, wrapped_keys })
}
