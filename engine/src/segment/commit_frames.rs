//! A commit's frames, encoded where its write will take them from.
//!
//! Every commit used to be encoded into a plain vector and then copied, block by block, into
//! aligned write pieces: one more pass over every byte written (about 5% of a shard's time in
//! 4 KiB appends, more in 64 KiB ones). A batch laid out by [`CommitFrames::behind`] starts, at
//! a block-aligned offset in memory, with a copy of the log's partial last block, so its
//! frames sit in memory as they will on disk, and [`super::ActiveSegment::begin_commit`] writes
//! the blocks from the vector as they are. A vector that moved since (a large message made it
//! grow) or a batch not laid out behind the tail (`CommitFrames::default()`) is copied, as
//! before.

use std::cell::RefCell;

use crate::format::BLOCK_BYTES;

/// Capacity of a fresh vector: a full batch (`shard::BATCH_BYTES_MAX`) plus its last message,
/// the tail block and the alignment, so that one seldom moves while it is filled.
const FRESH_CAPACITY_BYTES: usize = 512 * 1024 + 256 * 1024;
/// Vectors kept for reuse per thread: as many as a shard's commits in flight (up to 16 large
/// ones) and the batch it fills; a thread keeps only as many as it once had in use at once.
const SPARE_KEPT_MAX: usize = 20;
/// Larger vectors (a commit of one huge message) go back to the allocator.
const SPARE_BYTES_MAX: usize = 4 * 1024 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The frames of one commit. Positions given to and by its methods count from its first frame.
#[derive(Debug, Default)]
pub struct CommitFrames {
    storage: Vec<u8>,
    /// Where the copy of the tail block begins (on a block boundary in memory, when laid out).
    pub(super) block_start: usize,
    /// Where the frames begin: `block_start` plus the tail's length.
    pub(super) frames_start: usize,
}

impl CommitFrames {
    /// Frames laid out to follow `tail`, the bytes of the log's partial last block, in a
    /// reused vector when one is spare (a fresh one costs a page fault per 4 KiB).
    pub(super) fn behind(tail: &[u8]) -> Self {
        let mut storage = SPARE.with_borrow_mut(Vec::pop).unwrap_or_default();
        storage.clear();
        if storage.capacity() < FRESH_CAPACITY_BYTES {
            storage.reserve_exact(FRESH_CAPACITY_BYTES);
        }
        let block_start = storage.as_ptr().align_offset(BLOCK_BYTES);
        storage.resize(block_start, 0);
        storage.extend_from_slice(tail);
        Self { frames_start: storage.len(), block_start, storage }
    }

    /// Bytes of frames so far.
    pub fn len(&self) -> usize {
        self.storage.len() - self.frames_start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.frames_start..]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.frames_start..]
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.storage.extend_from_slice(bytes);
    }

    /// For encoders that append to a vector: the vector, and where in it the frames begin
    /// (positions in the vector less that are positions in the frames).
    pub fn vector_mut(&mut self) -> (&mut Vec<u8>, usize) {
        (&mut self.storage, self.frames_start)
    }

    pub(super) fn storage(&self) -> &Vec<u8> {
        &self.storage
    }

    /// The vector, for the write.
    pub(super) fn into_storage(mut self) -> Vec<u8> {
        std::mem::take(&mut self.storage)
    }
}

/// A batch dropped unwritten (it held only reads, or the shard failed) gives its vector back:
/// a read-only load would otherwise allocate one per batch.
impl Drop for CommitFrames {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.storage));
    }
}

/// Gives a vector whose commit is written back for a later batch.
pub(super) fn recycle(storage: Vec<u8>) {
    if storage.capacity() > SPARE_BYTES_MAX || storage.capacity() < FRESH_CAPACITY_BYTES {
        return;
    }
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARE_KEPT_MAX {
            spare.push(storage);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_laid_out_behind_a_tail_start_where_the_tail_ends_on_an_aligned_block() {
        let tail = vec![7_u8; 1000];
        let mut frames = CommitFrames::behind(&tail);
        frames.extend_from_slice(b"frame");
        assert_eq!(frames.as_slice(), b"frame");
        assert_eq!(frames.len(), 5);
        let (storage, frames_start) = frames.vector_mut();
        assert_eq!(storage.as_ptr().wrapping_add(frames_start - tail.len()).align_offset(BLOCK_BYTES), 0);
        assert_eq!(&storage[frames_start - tail.len()..frames_start], tail.as_slice());
    }

    #[test]
    fn a_recycled_vector_comes_back_emptied() {
        let mut frames = CommitFrames::behind(&[]);
        frames.extend_from_slice(&[1; 4096]);
        let pointer = frames.as_slice().as_ptr();
        recycle(frames.into_storage());
        let again = CommitFrames::behind(&[]);
        assert!(again.is_empty());
        assert_eq!(again.storage.as_ptr().wrapping_add(again.block_start), pointer);
    }

    #[test]
    fn a_batch_dropped_unwritten_gives_its_vector_back() {
        let frames = CommitFrames::behind(&[]);
        let pointer = frames.storage.as_ptr();
        drop(frames);
        assert_eq!(CommitFrames::behind(&[]).storage.as_ptr(), pointer);
    }
}
