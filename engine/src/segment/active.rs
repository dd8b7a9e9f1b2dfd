//! The active segment: appends committed batches of frames and seals itself when full.
//!
//! Writes are whole 4 KiB blocks (O_DIRECT). The last, partial block of the log is kept in
//! memory and written again, extended, by the next commit: its already-acknowledged bytes are
//! rewritten with identical values, so a write torn at any sector leaves them intact, and the
//! zero padding after the last frame reads back as the end marker.

use std::io;

use super::{segment_name, temporary_segment_name};
use crate::format::{BLOCK_BYTES, FrameHeader, Record, RecordKind, SegmentHeader, encode_frame};
use crate::io::{BlockBuffer, Storage, StorageFile};

#[derive(Debug)]
pub struct ActiveSegment<F> {
    file: F,
    segment_id: u64,
    /// Bytes from `tail_offset` to the end of the log: the last partial block, then the batch
    /// being committed.
    tail: BlockBuffer,
    tail_offset: u64,
    record_count: u64,
    /// BLAKE3 of every byte of the file up to the end of the log, for the footer.
    digest: blake3::Hasher,
}

impl<F: StorageFile> ActiveSegment<F> {
    /// Creates, preallocates and syncs a new segment whose header block is durable on return.
    /// It is written under a temporary name and renamed into place, so a crash never leaves a
    /// segment file without a valid header (leftover temporaries are removed on open).
    pub async fn create<S: Storage<File = F>>(
        storage: &S,
        header: SegmentHeader,
        preallocate_bytes: u64,
    ) -> io::Result<Self> {
        let name = segment_name(header.segment_id);
        let temporary = temporary_segment_name(header.segment_id);
        let file = storage.create(&temporary).await?;
        file.preallocate(preallocate_bytes).await?;
        let mut block = BlockBuffer::with_capacity(BLOCK_BYTES);
        block.extend_from_slice(&header.encode());
        block.pad_to_block();
        let mut digest = blake3::Hasher::new();
        digest.update(block.as_slice());
        let (result, mut tail) = file.write_blocks(block, 0).await;
        result?;
        file.sync_data().await?;
        storage.rename(&temporary, &name).await?;
        storage.sync_directory().await?;
        tail.clear();
        Ok(Self { file, segment_id: header.segment_id, tail, tail_offset: BLOCK_BYTES as u64, record_count: 0, digest })
    }

    /// Resumes appending to a segment recovered by the scan: `log_end` is the end of its last
    /// valid frame, `digest` covers the file up to it, `tail_block` holds the bytes of its
    /// last partial block.
    pub fn resume(
        file: F,
        segment_id: u64,
        log_end: u64,
        digest: blake3::Hasher,
        tail_block: &[u8],
        record_count: u64,
    ) -> Self {
        let tail_offset = log_end / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
        debug_assert_eq!(tail_block.len() as u64, log_end - tail_offset);
        let mut tail = BlockBuffer::with_capacity(BLOCK_BYTES * 2);
        tail.extend_from_slice(tail_block);
        Self { file, segment_id, tail, tail_offset, record_count, digest }
    }

    pub fn segment_id(&self) -> u64 {
        self.segment_id
    }

    /// Where the next frame will start.
    pub fn log_end(&self) -> u64 {
        self.tail_offset + self.tail.len() as u64
    }

    /// Records committed to this segment so far.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    pub fn file(&self) -> &F {
        &self.file
    }

    /// Writes `frames` (already encoded, `count` of them) after the log and makes them
    /// durable. On error the segment's on-disk state is unknown: the caller must stop writing
    /// (an fsync error is never retried as if the data might be durable).
    pub async fn commit(&mut self, frames: &[u8], count: u64) -> io::Result<()> {
        self.digest.update(frames);
        self.tail.extend_from_slice(frames);
        self.write_tail().await?;
        self.file.sync_data().await?;
        self.record_count += count;
        Ok(())
    }

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
        let footer = Record::SegmentSealed {
            record_count: self.record_count,
            records_end,
            digest: *self.digest.finalize().as_bytes(),
        }
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
        encode_frame(&header, &footer, &mut frame);
        self.tail.extend_from_slice(&frame);
        self.write_tail().await?;
        self.file.set_len(records_end + frame.len() as u64).await?;
        self.file.sync_data().await
    }
}
