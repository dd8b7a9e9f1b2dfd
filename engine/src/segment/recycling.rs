//! Compacted segment files kept to be reused as new segments (docs/format.md §2.5).
//!
//! A new segment in a fresh, fallocated file writes into unwritten extents, and every
//! fdatasync of a commit then also journals their conversion to written ones: on the disks
//! measured, durable writes over blocks written before ran 1.5-1.8x faster (bench/README.md,
//! sessions 11-14). A compacted segment's file is such blocks. So, up to
//! `EngineConfig::recycled_segments_max` per shard, compaction renames the file it is done with
//! to `<id>.spare` instead of removing it, and the next new segment is written into it: a new
//! header over the old one, then commits over the old frames. The old frames left past the new
//! log are never taken for the new segment's: from format version 6 a frame's CRC starts from
//! its segment's own seed (`format::CrcSeed`).
//!
//! A file is reused only while no descriptor has it open ([`Storage::is_unopened`]): a read
//! still under way (a fetch that looked the body up before compaction moved it, a backup or
//! scrub copying the segment from another process) would otherwise read the new segment's
//! bytes in place of the old ones. Such a file is removed instead.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use super::{parse_spare_name, segment_name, spare_name};
use crate::format::{BLOCK_BYTES, align_up};
use crate::io::{Storage, StorageFile};

/// A compacted file is kept as a spare only while the filesystem has this many times its size
/// free: spares make commits faster, but near a full disk the space matters more (and on a
/// full one, it is what lets the store write again).
const SPARES_KEPT_FREE_SEGMENTS: u64 = 4;

/// The shard's spare files: those ready for reuse, and how many are being renamed into place.
#[derive(Debug, Clone, Default)]
pub struct RecycledSegments {
    state: Rc<RefCell<Pool>>,
}

#[derive(Debug, Default)]
struct Pool {
    /// Ids of the segments whose files wait, renamed and durable, as `<id>.spare`, and their
    /// sizes.
    ready: Vec<(u64, u64)>,
    /// `ready` plus retirements still renaming: never more than `max`.
    kept: usize,
    max: usize,
    /// Set by a prune or purge: no spare is handed out until they are all removed, since their
    /// bytes may hold the ciphertext it promised is gone.
    withheld: bool,
}

impl RecycledSegments {
    /// The spares in a shard's directory, at most `max` of them (the others are removed: the
    /// setting may have been lowered since they were kept).
    pub async fn load<S: Storage>(storage: &S, max: usize, shard_id: u32) -> io::Result<Self> {
        let mut ids: Vec<u64> = storage.list().await?.iter().filter_map(|name| parse_spare_name(name)).collect();
        ids.sort_unstable();
        let surplus = ids.len().saturating_sub(max);
        for id in ids.drain(..surplus) {
            tracing::info!(shard = shard_id, segment = id, "removing a spare segment file over the limit");
            storage.remove(&spare_name(id)).await?;
        }
        if surplus > 0 {
            storage.sync_directory().await?;
        }
        let mut ready = Vec::with_capacity(ids.len());
        for id in ids {
            ready.push((id, storage.open(&spare_name(id), false).await?.size().await?));
        }
        let pool = Pool { kept: ready.len(), ready, max, withheld: false };
        Ok(Self { state: Rc::new(RefCell::new(pool)) })
    }

    /// Spare files ready for reuse, and their bytes on disk.
    pub fn files_and_bytes(&self) -> (u64, u64) {
        let pool = self.state.borrow();
        (pool.ready.len() as u64, pool.ready.iter().map(|(_, bytes)| bytes).sum())
    }

    /// Retires the file of compacted segment `segment_id` (of `bytes`), whose records were all
    /// moved and which the index no longer names: kept as a spare while the pool has room and
    /// the filesystem has [`SPARES_KEPT_FREE_SEGMENTS`] segments' worth free, else removed.
    ///
    /// The returned future (run on a task of its own) makes the change durable. Until it is, a
    /// crash only brings the segment back, every record in it superseded.
    pub fn retire<S: Storage>(
        &self,
        storage: S,
        segment_id: u64,
        bytes: u64,
    ) -> impl Future<Output = io::Result<()>> + 'static {
        let keep = {
            let mut pool = self.state.borrow_mut();
            let keep = pool.kept < pool.max;
            pool.kept += usize::from(keep);
            keep
        };
        let state = Rc::clone(&self.state);
        async move {
            let name = segment_name(segment_id);
            let room_to_keep = match storage.free_bytes().await {
                Ok(Some(free)) => free >= bytes.saturating_mul(SPARES_KEPT_FREE_SEGMENTS),
                Ok(None) | Err(_) => true,
            };
            if keep && !room_to_keep {
                state.borrow_mut().kept -= 1;
            }
            let keep = keep && room_to_keep;
            let moved =
                if keep { storage.rename(&name, &spare_name(segment_id)).await } else { storage.remove(&name).await };
            let durable = match moved {
                Ok(()) => storage.sync_directory().await,
                Err(error) => Err(error),
            };
            if keep {
                let mut pool = state.borrow_mut();
                match durable {
                    Ok(()) => pool.ready.push((segment_id, bytes)),
                    Err(_) => pool.kept -= 1,
                }
            }
            durable
        }
    }

    /// A spare to write the next segment into (its name), if one is ready and spares are not
    /// withheld.
    pub fn take(&self) -> Option<String> {
        let mut pool = self.state.borrow_mut();
        if pool.withheld {
            return None;
        }
        let (id, _) = pool.ready.pop()?;
        pool.kept -= 1;
        Some(spare_name(id))
    }

    /// Hands out no spare until [`RecycledSegments::remove_withheld`] has removed them all: a
    /// prune or purge promises its mail's ciphertext leaves the store's files, and a spare may
    /// hold an earlier copy of it (compaction copies deleted mail still inside its window).
    pub fn withhold(&self) {
        self.state.borrow_mut().withheld = true;
    }

    /// Whether spares are withheld (until [`RecycledSegments::remove_withheld`]).
    pub fn is_withheld(&self) -> bool {
        self.state.borrow().withheld
    }

    /// If spares are withheld: removes every one, and hands spares out again (later ones).
    /// Retirements still renaming must have finished. On a failure the spares not yet removed
    /// stay withheld (and so does the flag, which `compaction-forced` records), for a retry.
    pub async fn remove_withheld<S: Storage>(&self, storage: &S) -> io::Result<()> {
        if !self.state.borrow().withheld {
            return Ok(());
        }
        let ids = std::mem::take(&mut self.state.borrow_mut().ready);
        for (position, (id, _)) in ids.iter().enumerate() {
            if let Err(error) = storage.remove(&spare_name(*id)).await {
                self.state.borrow_mut().ready.extend(ids[position..].iter().copied());
                return Err(error);
            }
            self.state.borrow_mut().kept -= 1;
        }
        // Also after a retry that had nothing left to remove: the last attempt's sync may be
        // the one that failed.
        storage.sync_directory().await?;
        self.state.borrow_mut().withheld = false;
        Ok(())
    }
}

/// A writable file for a new segment, under the name `temporary`: the spare `reuse` renamed
/// there, if no descriptor has it open, or else a fresh file. Answers the file and its size
/// (a reused file keeps its size, rounded up to a block; a fresh one is empty). A spare that
/// cannot be reused (open elsewhere, gone, or failing) only costs the speed it would have
/// given: the segment gets a fresh file.
pub(super) async fn file_for_new_segment<S: Storage>(
    storage: &S,
    temporary: &str,
    reuse: Option<String>,
) -> io::Result<(S::File, u64)> {
    if let Some(spare) = reuse {
        match reuse_spare(storage, &spare, temporary).await {
            Ok(Some(reused)) => return Ok(reused),
            Ok(None) => tracing::info!(file = spare, "a spare segment file is open elsewhere: not reused"),
            Err(error) => tracing::warn!(file = spare, %error, "a spare segment file could not be reused"),
        }
        // Renamed or not, it is not to be written over: gone, so that the fresh file can take
        // the name (a reader holding it keeps its bytes, as with any removed file).
        match storage.remove(temporary).await {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok((storage.create(temporary).await?, 0))
}

/// The spare renamed to `temporary` and opened for writing, with its size rounded up to a
/// block; `None` if a descriptor has it open.
async fn reuse_spare<S: Storage>(storage: &S, spare: &str, temporary: &str) -> io::Result<Option<(S::File, u64)>> {
    storage.rename(spare, temporary).await?;
    if !storage.is_unopened(temporary).await? {
        return Ok(None);
    }
    let file = storage.open(temporary, true).await?;
    let size = file.size().await?;
    let block_size = align_up(usize::try_from(size).map_err(io::Error::other)?, BLOCK_BYTES) as u64;
    if block_size != size {
        file.set_len(block_size).await?; // the new log's writes are whole blocks
    }
    Ok(Some((file, block_size)))
}
