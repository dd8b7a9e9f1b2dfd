//! The real storage: files in one directory, written with O_DIRECT through io_uring (compio).
//!
//! Each file has a direct descriptor for block-aligned writes (no page-cache copy, no
//! write-back surprises), a direct one for reads, and a buffered one for its size and for the
//! reads a direct one cannot do. Reads go direct, widened to the filesystem's direct-IO
//! alignment (512 bytes on most disks, see [`DirectReads`]): io_uring runs them asynchronously
//! (a buffered read that misses the cache goes to a worker thread), and the shard keeps no
//! second copy in the page cache. Where the filesystem refuses O_DIRECT (tmpfs) everything is
//! buffered; fdatasync still makes writes durable, so only speed differs.

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use compio::BufResult;
use compio::buf::{IntoInner, IoBuf};
use compio::fs::{File, OpenOptions};
use compio::io::{AsyncReadAtExt, AsyncWriteAtExt};

use super::read_bytes::reused_buffer;
use super::{BlockBuffer, ReadBytes, SharedBlocks, Storage, StorageFile};
use crate::format::{BLOCK_BYTES, align_up};

#[derive(Debug, Clone)]
pub struct DiskStorage {
    directory: Rc<PathBuf>,
}

impl DiskStorage {
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        Self { directory: Rc::new(directory.into()) }
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.join(name)
    }
}

#[derive(Debug)]
pub struct DiskFile {
    direct: Option<File>,
    /// The same file opened with `O_DSYNC` as well, for writes that must be durable when they
    /// complete (`write_*_durably`); `None` when read-only.
    durable: Option<File>,
    direct_reads: Option<DirectReads>,
    buffered: File,
}

/// A read-only O_DIRECT descriptor and the alignment its reads need.
///
/// The alignment is the filesystem's (statx `STATX_DIOALIGN`, Linux 6.1+), not the engine's
/// 4 KiB block: a 4 KiB message's frame is a little over 4 KiB, so whole blocks meant reading
/// 8 KiB for it, and 4.5 to 5 KiB at 512-byte alignment. The development VM's disk serves
/// 4.5 KiB reads faster than 8 KiB ones (bench/README.md, session 9).
#[derive(Debug)]
struct DirectReads {
    file: File,
    /// Offsets and lengths of direct reads are multiples of this: a power of two, at most
    /// [`BLOCK_BYTES`] (which every direct read was aligned to before).
    alignment: usize,
}

/// A read-only O_DIRECT descriptor, or `None` where the filesystem refuses O_DIRECT.
async fn open_direct_reads(path: &Path) -> io::Result<Option<DirectReads>> {
    match open_for_reads(path, libc::O_DIRECT).await {
        Ok(file) => {
            let alignment = direct_read_alignment(&file);
            Ok(Some(DirectReads { file, alignment }))
        }
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A read-only descriptor with `flags`, that leaves the file's access time alone
/// (`O_NOATIME`): with the usual `relatime` mount, every read checks whether the access time
/// is due (about 1% of a shard's time on random fetches, bench/README.md, session 31), and one
/// a day per segment writes it, a journal write for a read. The kernel grants `O_NOATIME` only
/// to the file's owner; for a file someone else owns (a store copied in by another user),
/// the descriptor is opened without it.
async fn open_for_reads(path: &Path, flags: i32) -> io::Result<File> {
    let open = |flags| {
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(flags);
        options
    };
    match open(flags | libc::O_NOATIME).open(path).await {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => open(flags).open(path).await,
        other => other,
    }
}

/// The offset alignment the filesystem asks of `file`'s direct reads, or a whole block where it
/// does not say (older kernels) or asks for something a block-aligned buffer cannot give.
fn direct_read_alignment(file: &File) -> usize {
    use rustix::fs::{AtFlags, StatxFlags, statx};
    let Ok(stat) = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) else {
        return BLOCK_BYTES;
    };
    let offset_alignment = stat.stx_dio_offset_align as usize;
    let memory_alignment = stat.stx_dio_mem_align as usize;
    let told = stat.stx_mask & StatxFlags::DIOALIGN.bits() != 0;
    if told && offset_alignment.is_power_of_two() && offset_alignment <= BLOCK_BYTES && memory_alignment <= BLOCK_BYTES
    {
        offset_alignment
    } else {
        BLOCK_BYTES
    }
}

/// Reads `length` bytes at `offset` through an O_DIRECT descriptor: the enclosing aligned span
/// into an aligned buffer, then the wanted bytes moved to its front.
async fn read_aligned(reads: &DirectReads, offset: u64, length: usize) -> io::Result<Vec<u8>> {
    let (buffer, skip) = read_span(reads, offset, length, BlockBuffer::with_capacity(length + reads.alignment)).await?;
    let (mut storage, start, _) = buffer.into_parts();
    storage.copy_within(start + skip..start + skip + length, 0);
    storage.truncate(length);
    Ok(storage)
}

/// As [`read_aligned`], into a buffer this thread reuses, where the bytes stay.
async fn read_aligned_reused(reads: &DirectReads, offset: u64, length: usize) -> io::Result<ReadBytes> {
    let buffer = reused_buffer(length + reads.alignment);
    let (buffer, skip) = read_span(reads, offset, length, buffer).await?;
    Ok(ReadBytes::in_reused(buffer, skip, length))
}

/// Reads the aligned span around `length` bytes at `offset` into `buffer` (grown if it must
/// be); answers it and where in it the wanted bytes start.
async fn read_span(
    reads: &DirectReads,
    offset: u64,
    length: usize,
    mut buffer: BlockBuffer,
) -> io::Result<(BlockBuffer, usize)> {
    let alignment = reads.alignment;
    let first = offset / alignment as u64 * alignment as u64;
    let skip = (offset - first) as usize;
    let wanted = skip + length;
    buffer.resize_for_read(align_up(wanted, alignment));
    let (filled, buffer) = read_direct(reads, first, wanted, buffer).await;
    if filled? < wanted {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
    }
    Ok((buffer, skip))
}

/// The most one read asks of the disk. A whole 64 MiB segment in one request kept writes
/// queued behind it for its entire length (a delivery's commit waited up to ~110 ms while
/// compaction read a victim); in 8 MiB reads, one after the other, the disk serves the
/// writes between them, and compaction ran 28% faster (bench/COMPACTION.md, session 5).
const READ_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Fills `buffer` (a multiple of the reads' alignment long) from the aligned `offset` until at
/// least `wanted` bytes are in; answers how many came, fewer only at the end of the file.
async fn read_direct(
    reads: &DirectReads,
    offset: u64,
    wanted: usize,
    buffer: BlockBuffer,
) -> (io::Result<usize>, BlockBuffer) {
    use compio::io::AsyncReadAt;
    let (mut storage, start, span) = buffer.into_parts();
    let mut filled = 0;
    let mut result = Ok(());
    // A read that reaches the end of a file whose size is not a multiple of the alignment (a
    // sealed segment) comes back short, ending at the end of the file: enough when the wanted
    // bytes are in, and nothing more can follow (the next offset would not be aligned).
    while filled < wanted {
        let range = start + filled..start + span.min(filled + READ_CHUNK_BYTES);
        let BufResult(read, slice) = reads.file.read_at(storage.slice(range), offset + filled as u64).await;
        storage = slice.into_inner();
        match read {
            Ok(read) => {
                filled += read;
                if read == 0 || filled % reads.alignment != 0 {
                    break;
                }
            }
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    (result.map(|()| filled), BlockBuffer::from_parts(storage, start, span))
}

/// A descriptor for O_DIRECT writes (buffered where the filesystem refuses O_DIRECT), with
/// `flags` added (`O_DSYNC` or none).
async fn open_direct(path: &Path, create_new: bool, flags: i32) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(create_new).custom_flags(flags);
    let mut direct = options.clone();
    direct.custom_flags(libc::O_DIRECT | flags);
    match direct.open(path).await {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!(path = %path.display(), "O_DIRECT refused; using buffered writes");
            options.create_new(false).open(path).await
        }
        other => other,
    }
}

impl Storage for DiskStorage {
    type File = DiskFile;

    async fn free_bytes(&self) -> io::Result<Option<u64>> {
        let stats = rustix::fs::statvfs(self.directory.as_path())?;
        Ok(Some(stats.f_bavail.saturating_mul(stats.f_frsize)))
    }

    async fn create(&self, name: &str) -> io::Result<DiskFile> {
        let path = self.path(name);
        let direct = open_direct(&path, true, 0).await?;
        let durable = open_direct(&path, false, libc::O_DSYNC).await?;
        let direct_reads = open_direct_reads(&path).await?;
        let buffered = open_for_reads(&path, 0).await?;
        Ok(DiskFile { direct: Some(direct), durable: Some(durable), direct_reads, buffered })
    }

    async fn open(&self, name: &str, writable: bool) -> io::Result<DiskFile> {
        let path = self.path(name);
        let (direct, durable) = if writable {
            (Some(open_direct(&path, false, 0).await?), Some(open_direct(&path, false, libc::O_DSYNC).await?))
        } else {
            (None, None)
        };
        let direct_reads = open_direct_reads(&path).await?;
        let buffered = open_for_reads(&path, 0).await?;
        Ok(DiskFile { direct, durable, direct_reads, buffered })
    }

    async fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&*self.directory)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    async fn remove(&self, name: &str) -> io::Result<()> {
        compio::fs::remove_file(self.path(name)).await
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        compio::fs::rename(self.path(from), self.path(to)).await
    }

    async fn sync_directory(&self) -> io::Result<()> {
        File::open(&*self.directory).await?.sync_all().await
    }

    /// Takes a write lease on the file and lets it go at once: Linux grants one only while no
    /// other descriptor, in any process, has the file open (`fcntl(2)`, `F_SETLEASE`). A file
    /// system without leases, or a file of another owner, answers `false`. (Neither rustix nor
    /// compio wraps `F_SETLEASE`.)
    #[allow(unsafe_code)]
    async fn is_unopened(&self, name: &str) -> io::Result<bool> {
        let file = std::fs::File::open(self.path(name))?;
        let descriptor = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: fcntl on a descriptor this function owns; F_SETLEASE takes an int argument.
        let leased = unsafe { libc::fcntl(descriptor, libc::F_SETLEASE, libc::F_WRLCK) } == 0;
        if leased {
            // SAFETY: as above; the lease is given back before the descriptor closes.
            unsafe { libc::fcntl(descriptor, libc::F_SETLEASE, libc::F_UNLCK) };
        }
        Ok(leased)
    }
}

/// Fresh buffers at least this large for a whole-file read are faulted in on a blocking-pool
/// thread (`touched_elsewhere`).
const FAULT_IN_ELSEWHERE_BYTES_MIN: usize = 4 << 20;

/// A buffer with room for `capacity` bytes, its pages faulted in off this thread
/// ([`super::elsewhere`]). Faulted in by the read instead, inside its submission on the shard's
/// thread, a 64 MiB compaction victim stalled every request of the shard for as long as 16,384
/// page faults take (bench/README.md, session 32). If that fails, this thread does it.
async fn touched_elsewhere(capacity: usize) -> BlockBuffer {
    match super::elsewhere(move || BlockBuffer::with_capacity_touched(capacity)).await {
        Some(buffer) => buffer,
        None => BlockBuffer::with_capacity_touched(capacity),
    }
}

/// Writes the buffer's blocks at `offset` through `file` and gives the buffer back.
async fn write_buffer(mut file: &File, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
    let (storage, start, length) = buffer.into_parts();
    let BufResult(result, slice) = file.write_all_at(storage.slice(start..start + length), offset).await;
    (result, BlockBuffer::from_parts(slice.into_inner(), start, length))
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "file was opened read-only")
}

impl StorageFile for DiskFile {
    async fn write_blocks(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
        match self.direct.as_ref() {
            Some(direct) => write_buffer(direct, buffer, offset).await,
            None => (Err(read_only()), buffer),
        }
    }

    async fn write_shared(&self, blocks: SharedBlocks, offset: u64) -> io::Result<()> {
        let Some(mut direct) = self.direct.as_ref() else { return Err(read_only()) };
        direct.write_all_at(blocks, offset).await.0
    }

    async fn write_shared_durably(&self, blocks: SharedBlocks, offset: u64) -> io::Result<()> {
        let Some(mut durable) = self.durable.as_ref() else { return Err(read_only()) };
        durable.write_all_at(blocks, offset).await.0
    }

    async fn write_blocks_durably(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
        match self.durable.as_ref() {
            Some(durable) => write_buffer(durable, buffer, offset).await,
            None => (Err(read_only()), buffer),
        }
    }

    async fn read_exact(&self, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        if let Some(direct_reads) = &self.direct_reads {
            match read_aligned(direct_reads, offset, length).await {
                // Came up short of the wanted bytes: the buffered read below tells a read past
                // the end from a direct read the filesystem cut short.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {}
                other => return other,
            }
        }
        let BufResult(result, buffer) = self.buffered.read_exact_at(Vec::with_capacity(length), offset).await;
        result.map(|()| buffer)
    }

    async fn read_reused(&self, offset: u64, length: usize) -> io::Result<ReadBytes> {
        if let Some(direct_reads) = &self.direct_reads {
            match read_aligned_reused(direct_reads, offset, length).await {
                // As in `read_exact`: the buffered read below tells why it came up short.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {}
                other => return other,
            }
        }
        self.read_exact(offset, length).await.map(ReadBytes::from_vec)
    }

    async fn read_whole(&self, mut buffer: BlockBuffer) -> (io::Result<()>, BlockBuffer) {
        let size = match self.size().await.and_then(|size| usize::try_from(size).map_err(io::Error::other)) {
            Ok(size) => size,
            Err(error) => return (Err(error), buffer),
        };
        if let Some(direct_reads) = &self.direct_reads {
            // Straight into the caller's aligned buffer: no copy, no fresh pages to fault in.
            let length = align_up(size, BLOCK_BYTES);
            if length >= FAULT_IN_ELSEWHERE_BYTES_MIN && buffer.needs_growing_for(length) {
                buffer = touched_elsewhere(BlockBuffer::fresh_capacity_for_read(length)).await;
            }
            buffer.resize_for_read(length);
            let (filled, mut read) = read_direct(direct_reads, 0, size, buffer).await;
            match filled {
                Ok(filled) if filled >= size => {
                    read.truncate(size);
                    return (Ok(()), read);
                }
                // Cut short: the buffered read below tells why (as in `read_exact`).
                Ok(_) => buffer = read,
                Err(error) => return (Err(error), read),
            }
        }
        let BufResult(result, bytes) = self.buffered.read_exact_at(Vec::with_capacity(size), 0).await;
        buffer.clear();
        if result.is_ok() {
            buffer.extend_from_slice(&bytes);
        }
        (result, buffer)
    }

    /// On a pool thread ([`super::elsewhere`]), not io_uring's: fdatasync always blocks, so
    /// io_uring hands it to one of its workers, and a pinned shard's workers are confined to
    /// its core, where they waited for the shard 20–30% of their time. Elsewhere, 4 KiB
    /// appends at 256 in flight made 9% more per second (bench/README.md, session 33). The
    /// thread syncs a descriptor of its own, so a commit dropped meanwhile closes nothing
    /// under it (fdatasync covers the file, whichever descriptor asks).
    async fn sync_data(&self) -> io::Result<()> {
        let file = self.direct.as_ref().ok_or_else(read_only)?;
        let own = rustix::io::dup(file)?;
        match super::elsewhere(move || rustix::fs::fdatasync(&own)).await {
            Some(result) => result.map_err(io::Error::from),
            None => Err(io::Error::other("fdatasync thread failed")),
        }
    }

    async fn preallocate(&self, length: u64) -> io::Result<()> {
        let file = self.direct.as_ref().ok_or_else(read_only)?;
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, length) {
            // Filesystems without fallocate still work, only with costlier syncs.
            Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        match rustix::fs::seek(&self.buffered, rustix::fs::SeekFrom::Data(offset)) {
            Ok(next) => Ok(Some(next)),
            Err(rustix::io::Errno::NXIO) => Ok(None),
            // No SEEK_DATA here: every byte may be data.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::OPNOTSUPP) => Ok(Some(offset)),
            Err(error) => Err(error.into()),
        }
    }

    async fn zero_range(&self, offset: u64, length: u64) -> io::Result<()> {
        use rustix::fs::FallocateFlags;
        let file = self.direct.as_ref().ok_or_else(read_only)?;
        match rustix::fs::fallocate(file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, offset, length) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::OPNOTSUPP) => write_zeroes(file, offset, length).await,
            Err(error) => Err(error.into()),
        }
    }

    async fn set_len(&self, length: u64) -> io::Result<()> {
        self.direct.as_ref().ok_or_else(read_only)?.set_len(length).await
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.buffered.metadata().await?.len())
    }
}

/// Zero-fill for filesystems that cannot punch holes; offsets are block-aligned by callers.
async fn write_zeroes(mut file: &File, offset: u64, length: u64) -> io::Result<()> {
    const CHUNK_BYTES: u64 = 1024 * 1024;
    let mut zeroes = BlockBuffer::with_capacity(CHUNK_BYTES as usize);
    zeroes.pad_to_block();
    let mut written = 0;
    while written < length {
        let chunk = (length - written).min(CHUNK_BYTES) as usize;
        zeroes.clear();
        zeroes.extend_from_slice(&vec![0; chunk]);
        zeroes.pad_to_block();
        let (storage, start, chunk_length) = zeroes.into_parts();
        let BufResult(result, slice) =
            file.write_all_at(storage.slice(start..start + chunk_length), offset + written).await;
        zeroes = BlockBuffer::from_parts(slice.into_inner(), start, chunk_length);
        result?;
        written += chunk as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Whether `file`'s descriptor has `O_DSYNC` (by libc's value: rustix's `OFlags::DSYNC`
    /// is `O_SYNC` on Linux).
    fn syncs_each_write(file: &File) -> bool {
        rustix::fs::fcntl_getfl(file).unwrap().bits() & libc::O_DSYNC as u32 != 0
    }

    /// A durable write goes through a descriptor opened with `O_DSYNC` (the kernel syncs each
    /// write before it completes, which is what lets a commit skip its fdatasync); plain
    /// writes do not, and both land where they were asked to.
    #[test]
    fn durable_writes_go_through_a_descriptor_that_syncs_each_write() {
        let directory = tempfile::tempdir().unwrap();
        let storage = DiskStorage::new(directory.path());
        crate::block_on(async {
            let created = storage.create("created").await.unwrap();
            drop(created);
            for (name, file) in [
                ("created", storage.create("other").await.unwrap()),
                ("reopened", storage.open("created", true).await.unwrap()),
            ] {
                let durable = file.durable.as_ref().unwrap();
                assert!(syncs_each_write(durable), "{name}: the durable descriptor lacks O_DSYNC");
                assert!(!syncs_each_write(file.direct.as_ref().unwrap()), "{name}: plain writes sync");
                let mut buffer = BlockBuffer::with_capacity(2 * BLOCK_BYTES);
                buffer.extend_from_slice(&[7; BLOCK_BYTES]);
                let (result, _) = file.write_blocks_durably(buffer, 0).await;
                result.unwrap();
                let shared = SharedBlocks::new(Rc::new(block_of(9)), 0..BLOCK_BYTES);
                file.write_shared_durably(shared, BLOCK_BYTES as u64).await.unwrap();
                let bytes = file.read_exact(0, 2 * BLOCK_BYTES).await.unwrap();
                assert!(bytes[..BLOCK_BYTES].iter().all(|&byte| byte == 7), "{name}: first block");
                assert!(bytes[BLOCK_BYTES..].iter().all(|&byte| byte == 9), "{name}: second block");
            }
            let reader = storage.open("created", false).await.unwrap();
            assert!(reader.durable.is_none());
            let (result, _) = reader.write_blocks_durably(block_of(1), 0).await;
            assert_eq!(result.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        });
    }

    fn block_of(byte: u8) -> BlockBuffer {
        let mut buffer = BlockBuffer::with_capacity(BLOCK_BYTES);
        buffer.extend_from_slice(&[byte; BLOCK_BYTES]);
        buffer
    }
}
