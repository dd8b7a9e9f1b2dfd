//! A growable byte buffer whose contents start on a 4 KiB boundary in memory, as O_DIRECT
//! requires, built on a plain `Vec` (the aligned window is found inside it: no unsafe code).

use crate::format::{BLOCK_BYTES, align_up};

/// The smallest page a kernel maps: touching one byte in each faults the whole buffer in.
const PAGE_BYTES: usize = 4096;

#[derive(Debug, Default)]
pub struct BlockBuffer {
    storage: Vec<u8>,
    start: usize,
    length: usize,
}

impl BlockBuffer {
    /// An empty buffer that can hold `capacity_bytes` without reallocating.
    pub fn with_capacity(capacity_bytes: usize) -> Self {
        let mut buffer = Self::default();
        buffer.reserve(capacity_bytes);
        buffer
    }

    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Bytes it holds without reallocating.
    pub fn capacity(&self) -> usize {
        self.storage.len().saturating_sub(self.start)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.length]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.length]
    }

    /// Makes the window `length` bytes long, growing it if needed, for a read to fill: the
    /// bytes are whatever the buffer held (a reused one is not zero-filled again).
    pub fn resize_for_read(&mut self, length: usize) {
        if self.needs_growing_for(length) {
            *self = Self::with_capacity(Self::fresh_capacity_for_read(length));
        }
        self.length = length;
    }

    /// Whether [`Self::resize_for_read`] to `length` would allocate afresh.
    pub fn needs_growing_for(&self, length: usize) -> bool {
        self.capacity() < length || self.storage.is_empty()
    }

    /// The room a fresh buffer gets for a read of `length` bytes: some over it (segments
    /// differ in size by a commit or so), not a doubling: these buffers are large, and the old
    /// bytes need no copy.
    pub fn fresh_capacity_for_read(length: usize) -> usize {
        length + length / 8
    }

    /// An empty buffer with room for `capacity_bytes`, every page of it touched, so that the
    /// thread calling this takes its page faults, not a later read into it.
    pub fn with_capacity_touched(capacity_bytes: usize) -> Self {
        let mut buffer = Self::with_capacity(capacity_bytes);
        for byte in buffer.storage.iter_mut().step_by(PAGE_BYTES) {
            // An opaque zero: the allocator's pages read as zero already, and a store the
            // compiler could prove redundant would be dropped.
            *byte = std::hint::black_box(0);
        }
        buffer
    }

    pub fn clear(&mut self) {
        self.length = 0;
    }

    /// Appends bytes, moving to a larger aligned allocation when needed.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(self.length + bytes.len());
        let end = self.start + self.length;
        self.storage[end..end + bytes.len()].copy_from_slice(bytes);
        self.length += bytes.len();
    }

    /// Pads with zeroes up to the next block boundary.
    pub fn pad_to_block(&mut self) {
        let padded = align_up(self.length, BLOCK_BYTES);
        self.reserve(padded);
        self.storage[self.start + self.length..self.start + padded].fill(0);
        self.length = padded;
    }

    /// Keeps only the bytes from `from` on, moved to the front (the partial tail block).
    pub fn keep_from(&mut self, from: usize) {
        let from = from.min(self.length);
        self.storage.copy_within(self.start + from..self.start + self.length, self.start);
        self.length -= from;
    }

    pub fn truncate(&mut self, length: usize) {
        self.length = self.length.min(length);
    }

    fn reserve(&mut self, length: usize) {
        if self.storage.len() >= self.start + length && !self.storage.is_empty() {
            return;
        }
        // Growing doubles (amortized appends); the first allocation is exact, because most
        // buffers are sized once (a write piece, a read) and zero-filling twice that is waste.
        let exact = align_up(length.max(BLOCK_BYTES), BLOCK_BYTES);
        let capacity = if self.storage.is_empty() { exact } else { exact * 2 };
        // Large ones (a victim segment read whole for compaction, a scrubbed segment) come
        // from a fresh mapping: in 2 MiB pages the read that fills them faults 512 times less.
        let mut storage = super::huge_pages::zeroed_vec_in_huge_pages(capacity + BLOCK_BYTES);
        let start = storage.as_ptr().align_offset(BLOCK_BYTES);
        storage[start..start + self.length].copy_from_slice(self.as_slice());
        self.storage = storage;
        self.start = start;
    }

    /// The aligned window, for IO through owned buffers (`io_uring`): (backing vector, start,
    /// length); the vector is initialized to its full length, `start` is block-aligned.
    pub fn into_parts(self) -> (Vec<u8>, usize, usize) {
        (self.storage, self.start, self.length)
    }

    /// Adopts `storage[start..start + length]` as the window without copying it, if it starts
    /// on a block boundary in memory and is whole blocks long; otherwise copies it into a fresh
    /// aligned buffer. For bytes built in a plain vector from an aligned offset found with
    /// `align_offset` (the vector may have moved since, if it grew: then the copy).
    pub fn adopt(mut storage: Vec<u8>, start: usize, length: usize) -> Self {
        let aligned = storage.as_ptr().wrapping_add(start).align_offset(BLOCK_BYTES) == 0;
        if aligned && length.is_multiple_of(BLOCK_BYTES) && storage.len() >= start + length {
            return Self { storage, start, length };
        }
        storage.resize(storage.len().max(start + length), 0);
        let mut buffer = Self::with_capacity(length);
        buffer.extend_from_slice(&storage[start..start + length]);
        buffer
    }

    /// The inverse of [`Self::into_parts`]: `start` must be where `into_parts` said.
    pub fn from_parts(storage: Vec<u8>, start: usize, length: usize) -> Self {
        Self { storage, start, length }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vector with `bytes` written from its first block-aligned offset, as a writer would.
    fn written_from_aligned_offset(bytes: &[u8]) -> (Vec<u8>, usize) {
        let mut storage: Vec<u8> = Vec::with_capacity(BLOCK_BYTES * 4);
        let start = storage.as_ptr().align_offset(BLOCK_BYTES);
        storage.resize(start, 0);
        storage.extend_from_slice(bytes);
        (storage, start)
    }

    #[test]
    fn an_aligned_window_is_adopted_without_a_copy() {
        let bytes: Vec<u8> = (0..BLOCK_BYTES).map(|index| index as u8).collect();
        let (storage, start) = written_from_aligned_offset(&bytes);
        let address = storage.as_ptr() as usize + start;
        let buffer = BlockBuffer::adopt(storage, start, BLOCK_BYTES);
        assert_eq!(buffer.as_slice().as_ptr() as usize, address, "the same memory, not a copy");
        assert_eq!(buffer.as_slice(), bytes.as_slice());
    }

    #[test]
    fn a_window_off_a_block_boundary_is_copied_into_an_aligned_buffer() {
        let bytes: Vec<u8> = (0..BLOCK_BYTES).map(|index| (index * 7) as u8).collect();
        let (mut storage, start) = written_from_aligned_offset(&[0]);
        storage.extend_from_slice(&bytes);
        let buffer = BlockBuffer::adopt(storage, start + 1, BLOCK_BYTES);
        assert_eq!(buffer.as_slice().as_ptr().align_offset(BLOCK_BYTES), 0);
        assert_eq!(buffer.as_slice(), bytes.as_slice());
    }
}
