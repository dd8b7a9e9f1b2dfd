//! Whole blocks of one buffer that several writes share: a commit's pieces, written from the
//! buffer its frames were encoded in rather than copied into buffers of their own.

use std::ops::Range;
use std::rc::Rc;

use super::BlockBuffer;
use crate::format::BLOCK_BYTES;

/// A block-aligned range of a shared [`BlockBuffer`] (which starts on a block boundary in
/// memory, so the range does too).
#[derive(Debug, Clone)]
pub struct SharedBlocks {
    buffer: Rc<BlockBuffer>,
    range: Range<usize>,
}

impl SharedBlocks {
    /// `range` should start on a block boundary (a direct write from anywhere else fails with
    /// an error, nothing written); it is cut at the buffer's end, so slicing never panics.
    pub fn new(buffer: Rc<BlockBuffer>, range: Range<usize>) -> Self {
        debug_assert!(range.start.is_multiple_of(BLOCK_BYTES), "shared blocks start on a block boundary");
        let end = range.end.min(buffer.len());
        Self { buffer, range: range.start.min(end)..end }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buffer.as_slice()[self.range.clone()]
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

impl compio::buf::IoBuf for SharedBlocks {
    fn as_init(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_one_buffer_see_its_bytes() {
        let mut buffer = BlockBuffer::with_capacity(3 * BLOCK_BYTES);
        let bytes: Vec<u8> = (0..3 * BLOCK_BYTES).map(|index| (index % 251) as u8).collect();
        buffer.extend_from_slice(&bytes);
        let buffer = Rc::new(buffer);
        let first = SharedBlocks::new(Rc::clone(&buffer), 0..BLOCK_BYTES);
        let rest = SharedBlocks::new(Rc::clone(&buffer), BLOCK_BYTES..10 * BLOCK_BYTES);
        assert_eq!(first.as_slice(), &bytes[..BLOCK_BYTES]);
        assert_eq!(rest.as_slice(), &bytes[BLOCK_BYTES..]);
        assert_eq!(rest.as_slice().as_ptr().align_offset(BLOCK_BYTES), 0);
        drop((first, rest));
        assert_eq!(Rc::strong_count(&buffer), 1);
    }
}
