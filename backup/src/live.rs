//! The live store, read without opening it (no lock, nothing written): its sealed segments,
//! its contents and its key table. Safe while a server runs: a segment compaction removes
//! meanwhile makes the read fail, and it is retried.

use std::path::{Path, PathBuf};

use mailvault_engine::offline::{KeySource, ReadError, SegmentSelection, StoreContents, read_shard};
use mailvault_engine::segment::segment_name;
use mailvault_engine::{StoreMetadata, block_on};
use mailvault_hsm::{Hsm, WrappedDek};

use crate::error::BackupError;

/// Reads of a live store retried after a segment vanished under them (compaction).
pub(crate) const LIVE_READ_ATTEMPTS_MAX: usize = 3;

pub(crate) fn shard_directory(root: &Path, shard: u32) -> PathBuf {
    root.join(format!("shard-{shard:03}"))
}

/// A sealed segment of the live store.
#[derive(Debug, Clone)]
pub(crate) struct LocalSegment {
    pub shard: u32,
    pub segment_id: u64,
    pub path: PathBuf,
    pub size: u64,
}

/// The sealed segments `seal_active` named (per shard, in log order), and how many of them
/// compaction has removed since (their live records moved on: the caller must seal again).
pub(crate) fn sealed_segments(data_dir: &Path, sealed: &[Vec<u64>]) -> Result<(Vec<LocalSegment>, usize), BackupError> {
    let mut segments = Vec::new();
    let mut vanished = 0;
    for (shard, ids) in sealed.iter().enumerate() {
        let directory = shard_directory(data_dir, shard as u32);
        for &segment_id in ids {
            let path = directory.join(segment_name(segment_id));
            let size = match std::fs::metadata(&path) {
                Ok(metadata) => metadata.len(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    vanished += 1;
                    continue;
                }
                Err(error) => return Err(BackupError::io(format!("reading {}", path.display()))(error)),
            };
            segments.push(LocalSegment { shard: shard as u32, segment_id, path, size });
        }
    }
    Ok((segments, vanished))
}

/// What a live store holds and every account's key (wrapped by the live KEK).
pub(crate) struct LiveRead {
    pub contents: StoreContents,
    pub keys: Vec<(u64, WrappedDek)>,
}

pub(crate) fn read_live(data_dir: &Path, hsm: &Hsm) -> Result<LiveRead, BackupError> {
    let metadata = StoreMetadata::read(data_dir)?;
    let session = hsm.session()?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = block_on(async {
            let mut read = LiveRead { contents: StoreContents::default(), keys: Vec::new() };
            for shard in 0..metadata.shards as u32 {
                let directory = shard_directory(data_dir, shard);
                let shard_read =
                    read_shard(&directory, shard, SegmentSelection::Live, KeySource::Log, &session).await?;
                read.contents.add_index(&shard_read.index);
                read.keys.extend(shard_read.wrapped_keys);
            }
            Ok::<_, ReadError>(read)
        });
        match result {
            Ok(mut read) => {
                read.keys.sort_by_key(|(account_id, _)| *account_id);
                return Ok(read);
            }
            Err(error) if attempt < LIVE_READ_ATTEMPTS_MAX => {
                tracing::info!(%error, "the live store changed while it was read; reading it again");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// What the store in `data_dir` holds, read without opening it.
pub fn live_contents(data_dir: &Path, hsm: &Hsm) -> Result<StoreContents, BackupError> {
    read_live(data_dir, hsm).map(|read| read.contents)
}

/// Every account's key in the store in `data_dir` (wrapped by the live KEK), by account id.
pub fn live_key_table(data_dir: &Path, hsm: &Hsm) -> Result<Vec<(u64, WrappedDek)>, BackupError> {
    read_live(data_dir, hsm).map(|read| read.keys)
}
