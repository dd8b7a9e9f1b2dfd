//! The active segment: appends committed batches of frames and seals itself when full.
//!
//! Writes are whole 4 KiB blocks (O_DIRECT). The last, partial block of the log is kept in
//! memory and written again, extended, by the next commit: its already-acknowledged bytes are
//! rewritten with identical values, so a write torn at any sector leaves them intact, and the
//! zero padding after the last frame reads back as the end marker.
//!
//! The file's space is reserved at creation, but its size grows in steps of
//! [`SIZE_STEP_BYTES`] ahead of the log: an O_DIRECT write past the file size cannot run
//! asynchronously (ext4 hands it to an io_uring worker thread) and makes its fdatasync journal
//! a size change, while a file sized to the whole reservation would make every scan at open
//! read (and the kernel read ahead) hundreds of megabytes of zeroes.

use std::io;
use std::rc::Rc;

use super::commit_frames::{self, CommitFrames};
use super::recycling;
use super::{segment_name, temporary_segment_name};
use crate::format::{
    BLOCK_BYTES, CrcSeed, FrameHeader, Record, RecordKind, SegmentDigest, SegmentHeader, align_up, encode_frame,
};
use crate::io::{BlockBuffer, SharedBlocks, Storage, StorageFile, is_out_of_space};

/// How far ahead of the log the file size is set.
const SIZE_STEP_BYTES: u64 = 16 * 1024 * 1024;
/// How much more space a segment reserves when its log outgrows its reservation (a commit
/// that passes the segment's size, or a log that cannot rotate for want of space).
pub const RESERVE_STEP_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct ActiveSegment<F> {
    /// Shared with the commits' IO tasks, which outlive a borrow of the segment.
    file: Rc<F>,
    segment_id: u64,
    /// Bytes from `tail_offset` to the end of the log: the last partial block, then the batch
    /// being committed.
    tail: BlockBuffer,
    tail_offset: u64,
    record_count: u64,
    /// The footer's digest of the log so far.
    digest: SegmentDigest,
    /// The file size as the next write will find it.
    file_size: u64,
    /// The space reserved at creation: the size never steps past it (only a write does).
    reserved_bytes: u64,
    /// Its header: the format version says what its readers understand (overlapping commits,
    /// block gaps).
    header: SegmentHeader,
    /// Whether its file held an earlier segment, whose bytes may lie past the log (until the
    /// seal trims them, or an open clears them).
    holds_older_bytes: bool,
}

/// Where the recovery scan left an unsealed segment, for [`ActiveSegment::resume`].
#[derive(Debug)]
pub struct OpenLog {
    pub segment_id: u64,
    /// The end of its last complete commit.
    pub log_end: u64,
    /// The footer's digest of the file up to `log_end`.
    pub digest: SegmentDigest,
    /// The bytes of the log's last partial block.
    pub tail_block: Vec<u8>,
    pub record_count: u64,
    /// The segment's header, as the scan read it.
    pub header: SegmentHeader,
}

impl<F: StorageFile> ActiveSegment<F> {
    /// Creates, preallocates and syncs a new segment under a temporary name, which no open
    /// reads (leftover temporaries are removed on open), so a crash never leaves a segment file
    /// without a valid header. `reuse` names a spare file to write it into (see
    /// `segment::recycling`); its bytes past the new header stay until commits overwrite them.
    ///
    /// This is the step that needs disk space, and it changes nothing the store reads: if it
    /// fails (a full disk), its temporary file is removed and the log goes on where it was.
    pub async fn prepare<S: Storage<File = F>>(
        storage: &S,
        header: SegmentHeader,
        preallocate_bytes: u64,
        reuse: Option<String>,
    ) -> io::Result<PreparedSegment<F>> {
        debug_assert!(reuse.is_none() || header.may_be_in_a_reused_file());
        let temporary = temporary_segment_name(header.segment_id);
        let prepared = async {
            let (file, reused_size) = recycling::file_for_new_segment(storage, &temporary, reuse).await?;
            file.preallocate(preallocate_bytes).await?;
            let mut block = BlockBuffer::with_capacity(BLOCK_BYTES);
            block.extend_from_slice(&header.encode());
            block.pad_to_block();
            let digest = SegmentDigest::new(block.as_slice());
            let (result, mut tail) = file.write_blocks(block, 0).await;
            result?;
            file.sync_data().await?;
            tail.clear();
            Ok(PreparedSegment {
                segment: Self {
                    file: Rc::new(file),
                    segment_id: header.segment_id,
                    tail,
                    tail_offset: BLOCK_BYTES as u64,
                    record_count: 0,
                    digest,
                    file_size: reused_size.max(BLOCK_BYTES as u64),
                    reserved_bytes: preallocate_bytes.max(reused_size),
                    header,
                    holds_older_bytes: reused_size > 0,
                },
                temporary: temporary.clone(),
            })
        };
        match prepared.await {
            Ok(prepared) => Ok(prepared),
            Err(error) => {
                // Whatever it reserved goes back to the filesystem.
                if let Err(removal) = storage.remove(&temporary).await
                    && removal.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(file = temporary, error = %removal, "a new segment's temporary file stays until the next open");
                }
                Err(error)
            }
        }
    }

    /// Resumes appending to a segment recovered by the scan, at the end of its last complete
    /// commit; `file_size` is its size now, `reserved_bytes` its reservation.
    pub fn resume(file: F, log: OpenLog, (file_size, reserved_bytes): (u64, u64)) -> Self {
        let OpenLog { segment_id, log_end, digest, tail_block, record_count, header } = log;
        let tail_offset = log_end / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        debug_assert_eq!(tail_block.len() as u64, log_end - tail_offset);
        let mut tail = BlockBuffer::with_capacity(BLOCK_BYTES * 2);
        tail.extend_from_slice(&tail_block);
        Self {
            file: Rc::new(file),
            segment_id,
            tail,
            tail_offset,
            record_count,
            digest,
            file_size,
            reserved_bytes,
            header,
            // The open cleared everything past the log (`clear_after`).
            holds_older_bytes: false,
        }
    }

    pub fn segment_id(&self) -> u64 {
        self.segment_id
    }

    /// Whether bytes of an earlier segment (a reused file's) may lie past its log.
    pub fn holds_older_bytes(&self) -> bool {
        self.holds_older_bytes
    }

    /// Where the CRCs of its frames start (its format version's rule).
    pub fn crc_seed(&self) -> CrcSeed {
        self.header.crc_seed()
    }

    /// Where the next frame will start.
    pub fn log_end(&self) -> u64 {
        self.tail_offset + self.tail.len() as u64
    }

    /// Whether commits may be written before those ahead of them are durable (format version 3
    /// on: its readers know the durable gap).
    pub fn allows_overlapping_commits(&self) -> bool {
        self.header.allows_overlapping_commits()
    }

    /// Makes the next commit start on a fresh block, so that its writes share no block with
    /// the commits ahead of it and need not wait for theirs; answers whether it will. The rest
    /// of the current last block stays the zeros the previous commit wrote there, which a scan
    /// of format version 4 on skips. Not in older segments (their readers would stop at the
    /// zeros), and not needed when the log already ends on a block boundary.
    pub fn start_next_commit_on_fresh_block(&mut self) -> bool {
        if !self.tail.is_empty() && self.header.allows_block_gaps() {
            self.tail_offset += BLOCK_BYTES as u64;
            self.tail.clear();
        }
        self.tail.is_empty()
    }

    /// Records committed to this segment so far.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// The disk space reserved for the log: writes below it need no block allocation, so they
    /// cannot fail for want of space.
    pub fn reserved_bytes(&self) -> u64 {
        self.reserved_bytes
    }

    /// Reserves space for the log up to `end` (no-op if it is reserved already), in steps of
    /// [`RESERVE_STEP_BYTES`], or exactly up to `end` when the filesystem has less than a step
    /// left. Fails (out of space: `io::is_out_of_space`) before anything is written.
    pub async fn reserve_through(&mut self, end: u64) -> io::Result<()> {
        if end <= self.reserved_bytes {
            return Ok(());
        }
        let stepped = end.div_ceil(RESERVE_STEP_BYTES) * RESERVE_STEP_BYTES;
        let reserved = match self.file.preallocate(stepped).await {
            Ok(()) => stepped,
            Err(error) if is_out_of_space(&error) => {
                let exact = align_up(usize::try_from(end).map_err(io::Error::other)?, BLOCK_BYTES) as u64;
                self.file.preallocate(exact).await?;
                exact
            }
            Err(error) => return Err(error),
        };
        self.reserved_bytes = reserved;
        Ok(())
    }

    pub fn file(&self) -> &F {
        &self.file
    }

    /// The file, for IO tasks that sync it.
    pub fn shared_file(&self) -> Rc<F> {
        Rc::clone(&self.file)
    }

    /// Takes `frames` (already encoded, `count` of them) into the log and returns the write
    /// that puts them on disk: from here on the segment's bookkeeping (log end, record count,
    /// digest) includes them, so the next commit can be planned while this one is written.
    ///
    /// The caller runs the returned writes' [`TailWrite::grow`] steps in order, and starts each
    /// write's first piece only once the previous write completed, unless this commit starts on
    /// a fresh block ([`ActiveSegment::start_next_commit_on_fresh_block`]): otherwise consecutive
    /// writes share the tail block (rewritten, extended), and were both in flight at once, the
    /// older could land last and erase the newer's bytes. After a failed write the segment's on-disk state is
    /// unknown and nothing more may be written.
    pub fn begin_commit(&mut self, frames: CommitFrames, count: u64) -> TailWrite<F> {
        self.digest.add_frames(frames.as_slice());
        self.record_count += count;
        // The log from `tail_offset` on is the kept tail block followed by the frames.
        let log = [self.tail.as_slice(), frames.as_slice()];
        let logical_length = log[0].len() + log[1].len();
        let full_blocks = logical_length / BLOCK_BYTES * BLOCK_BYTES;
        let offset = self.tail_offset;
        let padded_length = align_up(logical_length, BLOCK_BYTES);
        let mut tail = BlockBuffer::with_capacity(BLOCK_BYTES * 2);
        copy_range(&log, full_blocks..logical_length, &mut tail);
        let (pieces, shared) = if self.laid_out_behind_tail(&frames, padded_length) {
            let block_start = frames.block_start;
            let mut storage = frames.into_storage();
            storage.resize(block_start + padded_length, 0); // the zero padding; no reallocation
            let buffer = Rc::new(BlockBuffer::adopt(storage, block_start, padded_length));
            let pieces = (0..padded_length)
                .step_by(WRITE_PIECE_BYTES)
                .map(|start| {
                    let end = (start + WRITE_PIECE_BYTES).min(padded_length);
                    (Piece::Shared(SharedBlocks::new(Rc::clone(&buffer), start..end)), offset + start as u64)
                })
                .collect();
            (pieces, Some(buffer))
        } else {
            // Each piece is copied straight out of the tail and the frames (one copy, not two).
            let pieces = (0..padded_length)
                .step_by(WRITE_PIECE_BYTES)
                .map(|start| {
                    let end = (start + WRITE_PIECE_BYTES).min(padded_length);
                    let mut piece = spare_pieces::take();
                    copy_range(&log, start..end.min(logical_length), &mut piece);
                    piece.pad_to_block();
                    (Piece::Copied(piece), offset + start as u64)
                })
                .collect();
            drop(frames); // its vector goes back to the spare ones (`CommitFrames`'s drop)
            (pieces, None)
        };
        self.tail = tail;
        self.tail_offset += full_blocks as u64;
        let write_end = offset + padded_length as u64;
        let grow_to = (write_end > self.file_size).then(|| {
            let stepped = (write_end + SIZE_STEP_BYTES).min(self.reserved_bytes);
            self.file_size = stepped.max(write_end);
            self.file_size
        });
        TailWrite { file: Rc::clone(&self.file), pieces, shared, grow_to }
    }

    /// An empty batch of frames laid out to follow the log's partial last block, so that its
    /// commit writes them from where they were encoded (see [`CommitFrames`]).
    pub fn next_commit_frames(&self) -> CommitFrames {
        CommitFrames::behind(self.tail.as_slice())
    }

    /// Whether `frames` can be written as they lie: laid out behind the current tail, on a
    /// block boundary in memory still (the vector did not move), with room for the padding.
    fn laid_out_behind_tail(&self, frames: &CommitFrames, padded_length: usize) -> bool {
        let (block_start, frames_start) = (frames.block_start, frames.frames_start);
        let storage = frames.storage();
        frames_start - block_start == self.tail.len()
            && storage[block_start..frames_start] == *self.tail.as_slice()
            && storage.as_ptr().wrapping_add(block_start).align_offset(BLOCK_BYTES) == 0
            && storage.capacity() >= block_start + padded_length
    }

    /// Writes the tail after the caller appended to it (the footer); no commit may be in flight.
    async fn write_tail(&mut self) -> io::Result<()> {
        let logical_length = self.tail.len();
        self.tail.pad_to_block();
        let buffer = std::mem::take(&mut self.tail);
        let (result, mut buffer) = self.file.write_blocks(buffer, self.tail_offset).await;
        buffer.truncate(logical_length);
        let full_blocks = logical_length / BLOCK_BYTES * BLOCK_BYTES;
        buffer.keep_from(full_blocks);
        self.tail = buffer;
        self.tail_offset += full_blocks as u64;
        result
    }

    /// Appends the footer, trims the preallocated space and syncs: the segment never changes
    /// again. The caller replaces this value with a new active segment.
    pub async fn seal(&mut self) -> io::Result<()> {
        let records_end = self.log_end();
        let footer =
            Record::SegmentSealed { record_count: self.record_count, records_end, digest: self.digest.finalize() }
                .encode();
        let header = FrameHeader {
            kind: RecordKind::SegmentSealed as u8,
            flags: crate::format::FRAME_FLAG_COMMIT_START | crate::format::FRAME_FLAG_COMMIT_END,
            record_id: 0,
            account_id: 0,
            mailbox_id: 0,
            uid: 0,
            payload_length: footer.len() as u32,
        };
        let mut frame = Vec::new();
        encode_frame(&header, &footer, self.crc_seed(), &mut frame);
        self.tail.extend_from_slice(&frame);
        self.write_tail().await?;
        self.file.set_len(records_end + frame.len() as u64).await?;
        self.file.sync_data().await
    }
}

/// A new segment written and synced under its temporary name ([`ActiveSegment::prepare`]),
/// not yet part of the store.
#[derive(Debug)]
pub struct PreparedSegment<F> {
    segment: ActiveSegment<F>,
    temporary: String,
}

impl<F: StorageFile> PreparedSegment<F> {
    /// Renames it into place and syncs the directory: from here on an open finds it.
    pub async fn install<S: Storage<File = F>>(self, storage: &S) -> io::Result<ActiveSegment<F>> {
        let Self { segment, temporary } = self;
        storage.rename(&temporary, &segment_name(segment.segment_id)).await?;
        storage.sync_directory().await?;
        Ok(segment)
    }
}

/// One commit's blocks, from the start of its first (partial) block: see
/// [`ActiveSegment::begin_commit`].
#[derive(Debug)]
pub struct TailWrite<F> {
    file: Rc<F>,
    /// The blocks, in pieces written concurrently.
    pieces: Vec<(Piece, u64)>,
    /// The buffer the pieces share, if they were not copied: reused once they are written.
    shared: Option<Rc<BlockBuffer>>,
    /// The file size to set first, when the write would pass the current one.
    grow_to: Option<u64>,
}

/// Some of a commit's blocks: a range of the buffer its frames were encoded in, or a copy.
#[derive(Debug)]
enum Piece {
    Shared(SharedBlocks),
    Copied(BlockBuffer),
}

impl Piece {
    /// Writes the piece at `offset`; `durably`: durable once written (`StorageFile::write_*_durably`).
    async fn write<F: StorageFile>(self, file: &F, offset: u64, durably: bool) -> io::Result<()> {
        match self {
            Self::Shared(blocks) if durably => file.write_shared_durably(blocks, offset).await,
            Self::Shared(blocks) => file.write_shared(blocks, offset).await,
            Self::Copied(buffer) => {
                let (result, buffer) = if durably {
                    file.write_blocks_durably(buffer, offset).await
                } else {
                    file.write_blocks(buffer, offset).await
                };
                spare_pieces::put(buffer);
                result
            }
        }
    }

    fn discard(self) {
        if let Self::Copied(buffer) = self {
            spare_pieces::put(buffer);
        }
    }
}

impl<F: StorageFile> TailWrite<F> {
    /// Sets the file size the commit's blocks need, before any of them is written. Commits grow
    /// the file in the order they were planned, so a later commit's size is never cut back by
    /// an earlier, smaller one.
    pub async fn grow(&self) -> io::Result<()> {
        match self.grow_to {
            Some(size) => self.file.set_len(size).await,
            None => Ok(()),
        }
    }

    /// Whether [`Self::write`] leaves the blocks durable: a commit of one piece asks the disk
    /// to write and sync it in one request (`O_DSYNC`), where a separate fdatasync would be a
    /// second round trip through an io_uring worker. Several pieces are written as they are
    /// and synced once: durable writes would cost a flush each where the disk lacks FUA.
    pub fn writes_durably(&self) -> bool {
        self.pieces.len() == 1
    }

    /// Writes the commit's blocks, in pieces in flight together that may land in any order:
    /// the first piece once `first_piece_after` says the previous commit's writes all completed
    /// (it rewrites their shared tail block; `false`: they failed, and it is not written), the
    /// others at once. Recovery tells this commit's pieces, landed ahead of a torn earlier
    /// commit, from proof of damage by the durable gap on the commit's first frame.
    pub async fn write(self, first_piece_after: impl Future<Output = bool>) -> io::Result<()> {
        let durably = self.writes_durably();
        let Self { file, pieces, shared, .. } = self;
        let mut pieces = pieces.into_iter();
        let first = pieces.next();
        let first_write = async {
            let Some((piece, offset)) = first else { return Ok(()) };
            if !first_piece_after.await {
                piece.discard();
                return Err(io::Error::other("an earlier commit's write failed"));
            }
            piece.write(&*file, offset, durably).await
        };
        let others = futures_util::future::join_all(pieces.map(|(piece, offset)| piece.write(&*file, offset, false)));
        let (first_result, others) = futures_util::future::join(first_write, others).await;
        if let Some(buffer) = shared.and_then(|buffer| Rc::try_unwrap(buffer).ok()) {
            commit_frames::recycle(buffer.into_parts().0);
        }
        others.into_iter().fold(first_result, io::Result::and)
    }
}

/// Write pieces whose write completed, kept for the next commit on the same thread (each shard
/// runs on its own): a fresh 128 KiB buffer per piece cost a page fault per 4 KiB of it, or
/// zero-filling it, on every commit; a recycled one is only overwritten.
mod spare_pieces {
    use std::cell::RefCell;

    use super::WRITE_PIECE_BYTES;
    use crate::io::BlockBuffer;

    /// At most this many are kept per thread (16 MiB: what the most commits a shard has in
    /// flight hold; a thread keeps only as many as it once had in use at once).
    const KEPT_MAX: usize = 128;

    thread_local! {
        static SPARE: RefCell<Vec<BlockBuffer>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer that holds a whole piece.
    pub(super) fn take() -> BlockBuffer {
        let spare = SPARE.with_borrow_mut(Vec::pop);
        spare.unwrap_or_else(|| BlockBuffer::with_capacity(WRITE_PIECE_BYTES))
    }

    pub(super) fn put(mut buffer: BlockBuffer) {
        if buffer.capacity() < WRITE_PIECE_BYTES {
            return;
        }
        buffer.clear();
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < KEPT_MAX {
                spare.push(buffer);
            }
        });
    }
}

/// Most bytes per write: commits larger than this go out as several writes in flight at once.
const WRITE_PIECE_BYTES: usize = 128 * 1024;

/// Appends bytes `range` of the concatenation of `parts` to `out`.
fn copy_range(parts: &[&[u8]], range: std::ops::Range<usize>, out: &mut BlockBuffer) {
    let mut part_start = 0;
    for part in parts {
        let part_end = part_start + part.len();
        let from = range.start.max(part_start);
        let to = range.end.min(part_end);
        if from < to {
            out.extend_from_slice(&part[from - part_start..to - part_start]);
        }
        part_start = part_end;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::io::DiskStorage;

    /// Bytes that stand for frames here (the segment does not parse them).
    fn frame_bytes(length: usize, seed: u8) -> Vec<u8> {
        (0..length).map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed) | 1).collect()
    }

    /// Commits `bytes` appended to `frames` and writes them; answers whether the write took
    /// them from `frames` as they lay (no copy).
    async fn commit(segment: &mut ActiveSegment<crate::io::DiskFile>, mut frames: CommitFrames, bytes: &[u8]) -> bool {
        frames.extend_from_slice(bytes);
        let write = segment.begin_commit(frames, 1);
        let shared = write.shared.is_some();
        write.grow().await.unwrap();
        write.write(std::future::ready(true)).await.unwrap();
        shared
    }

    /// A new segment of 4 MiB, installed in `storage`.
    async fn installed_segment(storage: &DiskStorage) -> ActiveSegment<crate::io::DiskFile> {
        let header = SegmentHeader::new(0, 1, 0);
        let prepared = ActiveSegment::prepare(storage, header, 4 * 1024 * 1024, None).await.unwrap();
        prepared.install(storage).await.unwrap()
    }

    /// Batches laid out behind the tail are written from where they were built, including
    /// the one after a commit that ended mid-block; a batch that was not is copied; and the
    /// file holds the same bytes either way.
    #[test]
    fn laid_out_batches_are_written_without_a_copy_and_land_where_copies_would() {
        let directory = tempfile::tempdir().unwrap();
        let storage = DiskStorage::new(directory.path());
        crate::block_on(async {
            let mut segment = installed_segment(&storage).await;
            let mut expected = Vec::new();
            for (round, length) in [5000_usize, 300_000, 10, 70_000].into_iter().enumerate() {
                let bytes = frame_bytes(length, round as u8);
                let frames = segment.next_commit_frames();
                assert!(commit(&mut segment, frames, &bytes).await, "round {round} was copied");
                expected.extend_from_slice(&bytes);
            }
            let bytes = frame_bytes(9000, 9);
            let shared = commit(&mut segment, CommitFrames::default(), &bytes).await;
            assert!(!shared, "a batch not laid out must be copied");
            expected.extend_from_slice(&bytes);
            segment.file().sync_data().await.unwrap();
            let on_disk = segment.file().read_exact(BLOCK_BYTES as u64, expected.len()).await.unwrap();
            assert!(on_disk == expected, "the log differs from the frames committed");
            assert_eq!(segment.log_end(), (BLOCK_BYTES + expected.len()) as u64);
        });
    }

    /// A commit that fits one piece is written durably (no fdatasync after it); one of several
    /// pieces is not (a durable write per piece would be a flush per piece).
    #[test]
    fn only_a_commit_of_one_piece_is_written_durably() {
        let directory = tempfile::tempdir().unwrap();
        let storage = DiskStorage::new(directory.path());
        crate::block_on(async {
            let mut segment = installed_segment(&storage).await;
            for (length, durably) in [(4200, true), (WRITE_PIECE_BYTES - 2 * BLOCK_BYTES, true), (300_000, false)] {
                let mut frames = segment.next_commit_frames();
                frames.extend_from_slice(&frame_bytes(length, 3));
                let write = segment.begin_commit(frames, 1);
                assert_eq!(write.writes_durably(), durably, "a commit of {length} bytes");
                write.grow().await.unwrap();
                write.write(std::future::ready(true)).await.unwrap();
            }
        });
    }
}
