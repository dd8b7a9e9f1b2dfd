//! The storage seam: the few file operations the engine needs, so that a fault-injecting
//! storage can wrap the real one under test. The real one is `DiskStorage` (io_uring).

mod block_buffer;
mod disk;
mod elsewhere;
mod faulty;
mod huge_pages;
mod prompt_loop;
mod read_bytes;
mod ring;
mod shared_blocks;
mod yield_now;

pub use block_buffer::BlockBuffer;
pub use disk::{DiskFile, DiskStorage};
pub use elsewhere::elsewhere;
pub use faulty::{FaultController, FaultCounts, FaultRates, FaultyFile, FaultyStorage};
pub use huge_pages::vec_in_huge_pages;
pub use prompt_loop::{block_on_prompt, prompt_runtime_builder, spawn_started, want_prompt_round};
pub use read_bytes::ReadBytes;
pub use ring::build_runtime;
pub use shared_blocks::SharedBlocks;
pub use yield_now::yield_now;

use std::io;

/// Whether `error` says the filesystem has no space left for this (`ENOSPC`), or the user's
/// quota has none (`EDQUOT`): nothing was written, and the same call can work once space is
/// freed.
pub fn is_out_of_space(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// A directory of files. Futures are `!Send` by design: each shard runs on its own core's
/// single-threaded runtime.
#[allow(async_fn_in_trait)]
pub trait Storage: Clone + 'static {
    type File: StorageFile;

    /// Creates a new file (failing if it exists), open for block-aligned direct writes and reads.
    async fn create(&self, name: &str) -> io::Result<Self::File>;
    /// Opens an existing file; `writable` also opens it for direct writes.
    async fn open(&self, name: &str, writable: bool) -> io::Result<Self::File>;
    /// File names in the directory, unsorted.
    async fn list(&self) -> io::Result<Vec<String>>;
    async fn remove(&self, name: &str) -> io::Result<()>;
    /// Atomically replaces `to` with `from` (rename(2)).
    async fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes creations, renames and removals in the directory durable.
    async fn sync_directory(&self) -> io::Result<()>;
    /// Whether no descriptor anywhere (this process or another) has the file open: a file about
    /// to be overwritten for reuse must not be, since a reader holding it (a fetch in flight, a
    /// backup copying it) would read the new bytes in place of the old. `false` when it cannot
    /// tell.
    async fn is_unopened(&self, name: &str) -> io::Result<bool> {
        let _ = name;
        Ok(false)
    }
    /// Bytes the filesystem has free for this store (what an unprivileged writer may use);
    /// `None` when it cannot tell.
    async fn free_bytes(&self) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

#[allow(async_fn_in_trait)]
pub trait StorageFile: 'static {
    /// Writes whole blocks at a block-aligned offset; gives the buffer back for reuse.
    async fn write_blocks(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer);
    /// Writes whole blocks of a shared buffer at a block-aligned offset. Files that cannot
    /// write from it as it is copy the blocks into a buffer of their own.
    async fn write_shared(&self, blocks: SharedBlocks, offset: u64) -> io::Result<()> {
        let mut buffer = BlockBuffer::with_capacity(blocks.len());
        buffer.extend_from_slice(blocks.as_slice());
        self.write_blocks(buffer, offset).await.0
    }
    /// Writes whole blocks of a shared buffer at a block-aligned offset and returns once they
    /// are durable, as [`Self::write_shared`] then [`Self::sync_data`] would (the default).
    /// Files that can ask the disk for both in one request (`O_DSYNC`) do.
    async fn write_shared_durably(&self, blocks: SharedBlocks, offset: u64) -> io::Result<()> {
        self.write_shared(blocks, offset).await?;
        self.sync_data().await
    }
    /// As [`Self::write_shared_durably`], from a buffer given back for reuse.
    async fn write_blocks_durably(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
        let (result, buffer) = self.write_blocks(buffer, offset).await;
        match result {
            Ok(()) => (self.sync_data().await, buffer),
            Err(error) => (Err(error), buffer),
        }
    }
    /// Reads exactly `length` bytes at `offset` (any alignment).
    async fn read_exact(&self, offset: u64, length: usize) -> io::Result<Vec<u8>>;
    /// As [`Self::read_exact`], for bytes the caller checks and transforms in place and then
    /// drops (a fetch's frame): files that can read them into a buffer the thread reuses do.
    async fn read_reused(&self, offset: u64, length: usize) -> io::Result<ReadBytes> {
        self.read_exact(offset, length).await.map(ReadBytes::from_vec)
    }
    /// Reads the whole file into `buffer` (its old contents replaced), giving it back either
    /// way: compaction reads each victim into the same buffer, which a large read would
    /// otherwise fault in and zero-fill page by page on every segment.
    async fn read_whole(&self, mut buffer: BlockBuffer) -> (io::Result<()>, BlockBuffer) {
        let read = async {
            let size = usize::try_from(self.size().await?).map_err(io::Error::other)?;
            self.read_exact(0, size).await
        };
        let result = read.await.map(|bytes| {
            buffer.clear();
            buffer.extend_from_slice(&bytes);
        });
        (result, buffer)
    }
    /// fdatasync: everything written before it is durable once it returns Ok.
    async fn sync_data(&self) -> io::Result<()>;
    /// Reserves disk space for `length` bytes from offset 0 without changing the file size
    /// (later writes into it skip block allocation; see `ActiveSegment` for the size).
    async fn preallocate(&self, length: u64) -> io::Result<()>;
    /// Where the next bytes that may be non-zero start at or after `offset` (`SEEK_DATA`), so
    /// scans can jump over preallocated space; `None` if only zeroes follow. Files that cannot
    /// tell answer `offset`.
    async fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        Ok(Some(offset))
    }
    /// Makes `[offset, offset + length)` read back as zeroes without changing the file size:
    /// recovery clears what a crashed commit may have left past the log's end.
    async fn zero_range(&self, offset: u64, length: u64) -> io::Result<()>;
    async fn set_len(&self, length: u64) -> io::Result<()>;
    async fn size(&self) -> io::Result<u64>;
}
