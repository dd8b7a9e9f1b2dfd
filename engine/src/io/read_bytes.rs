//! Bytes read for one request, in an aligned buffer the thread reuses.
//!
//! A fetch used to read its frame into a fresh aligned allocation (zero-filled, three times
//! the frame for the alignment slack), move the frame to the front, move the payload to the
//! front again, and hand the whole allocation to the caller's thread to free: about 13% of a
//! shard's time in 4 KiB random fetches (bench/README.md, session 11). Now the frame is read
//! into a buffer this thread used before, checked and decrypted where it lies, and only the
//! body is copied out; the buffer goes back to the thread's spares when the bytes are dropped.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use super::BlockBuffer;

/// Buffers kept for reuse per thread: as many as a shard has fetches in flight in the loads we
/// measured (32), with room to spare; a thread keeps only as many as it once had in use.
const SPARE_KEPT_MAX: usize = 64;
/// Reads larger than this (large messages, whole-file reads) get a buffer of their own, as
/// before: keeping such buffers would hold megabytes per thread for a rare request.
const REUSED_BYTES_MAX: usize = 256 * 1024;

thread_local! {
    static SPARE: RefCell<Vec<BlockBuffer>> = const { RefCell::new(Vec::new()) };
}

/// An aligned buffer of at least `length` bytes of capacity, reused when this thread has one
/// spare (its old bytes are still in it: a read overwrites them).
pub(super) fn reused_buffer(length: usize) -> BlockBuffer {
    let spare = SPARE.with_borrow_mut(|spare| {
        let fits = spare.iter().rposition(|buffer| buffer.capacity() >= length)?;
        Some(spare.swap_remove(fits))
    });
    spare.unwrap_or_else(|| BlockBuffer::with_capacity(length))
}

/// Bytes read from a file: a range of a reused aligned buffer, or a plain vector. A fetch
/// decrypts in place, so a spare buffer holds the last body read into it until the next read
/// overwrites it, as the freed allocation did before; `Debug` shows only the length.
pub struct ReadBytes {
    held: Held,
    start: usize,
    length: usize,
}

enum Held {
    Reused(BlockBuffer),
    Plain(Vec<u8>),
}

impl ReadBytes {
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self { start: 0, length: bytes.len(), held: Held::Plain(bytes) }
    }

    /// `buffer.as_slice()[start..start + length]`; `buffer` came from [`reused_buffer`] and
    /// goes back to the spares on drop.
    pub fn in_reused(buffer: BlockBuffer, start: usize, length: usize) -> Self {
        debug_assert!(start + length <= buffer.len(), "read range past the buffer's window");
        Self { held: Held::Reused(buffer), start, length }
    }
}

impl std::fmt::Debug for ReadBytes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ReadBytes").field("length", &self.length).finish_non_exhaustive()
    }
}

impl Deref for ReadBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        let range = self.start..self.start + self.length;
        match &self.held {
            Held::Reused(buffer) => &buffer.as_slice()[range],
            Held::Plain(bytes) => &bytes[range],
        }
    }
}

impl DerefMut for ReadBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        let range = self.start..self.start + self.length;
        match &mut self.held {
            Held::Reused(buffer) => &mut buffer.as_mut_slice()[range],
            Held::Plain(bytes) => &mut bytes[range],
        }
    }
}

impl Drop for ReadBytes {
    fn drop(&mut self) {
        let Held::Reused(buffer) = std::mem::replace(&mut self.held, Held::Plain(Vec::new())) else { return };
        if buffer.capacity() > REUSED_BYTES_MAX {
            return;
        }
        SPARE.with_borrow_mut(|spare| {
            if spare.len() < SPARE_KEPT_MAX {
                spare.push(buffer);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_read_gives_its_buffer_to_the_next_one() {
        let mut buffer = reused_buffer(5000);
        buffer.resize_for_read(5000);
        let address = buffer.as_slice().as_ptr() as usize;
        buffer.as_mut_slice()[100..105].copy_from_slice(b"frame");
        let read = ReadBytes::in_reused(buffer, 100, 5);
        assert_eq!(&*read, b"frame");
        drop(read);
        let again = reused_buffer(4096);
        assert_eq!(again.as_slice().as_ptr() as usize, address, "the spare, not a fresh allocation");
        let larger = reused_buffer(64 * 1024);
        assert_ne!(larger.as_slice().as_ptr() as usize, address, "a spare too small is not handed out");
    }

    #[test]
    fn debug_output_shows_no_bytes() {
        let read = ReadBytes::from_vec(b"secret body".to_vec());
        let shown = format!("{read:?}");
        assert!(!shown.contains("115"), "no byte values: {shown}");
        assert!(shown.contains("length: 11"), "{shown}");
    }

    #[test]
    fn plain_bytes_read_as_themselves() {
        let mut read = ReadBytes::from_vec(b"plain".to_vec());
        read[0] = b'P';
        assert_eq!(&*read, b"Plain");
    }
}
