//! Bytes read for one request, in an aligned buffer the reading thread reuses.
//!
//! A fetch used to read its frame into a fresh aligned allocation (zero-filled, three times
//! the frame for the alignment slack), move the frame to the front, move the payload to the
//! front again, and hand the whole allocation to the caller's thread to free: about 13% of a
//! shard's time in 4 KiB random fetches (bench/README.md, session 11). Then the frame was read
//! into a buffer the shard used before, and copied out for the caller: the copy was ~7% of the
//! shard's samples, cache misses on bytes the disk had just written to memory (session 22).
//! Now the buffer itself goes to the caller. Dropped on any thread, it goes back to the thread
//! that read into it, through that thread's return queue, which the thread drains when it next
//! needs a buffer.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::BlockBuffer;

/// Buffers kept for reuse per thread: as many as a shard has fetches in flight in the loads we
/// measured (32), with room to spare; a thread keeps only as many as it once had in use (a new
/// buffer is made only when no spare fits), at most this many spare and as many more handed
/// back and not yet taken.
const SPARE_KEPT_MAX: usize = 64;
/// Reads larger than this (large messages, whole-file reads) get a buffer of their own, as
/// before: keeping such buffers would hold megabytes per thread for a rare request.
const REUSED_BYTES_MAX: usize = 256 * 1024;

/// Buffers handed back to the thread that read into them, by whichever thread dropped them
/// (that thread itself included).
type Returns = Arc<ArrayQueue<BlockBuffer>>;

thread_local! {
    static SPARE: RefCell<Vec<BlockBuffer>> = const { RefCell::new(Vec::new()) };
    static RETURNS: Returns = Arc::new(ArrayQueue::new(SPARE_KEPT_MAX));
}

/// An aligned buffer of at least `length` bytes of capacity, reused when this thread has one
/// spare (its old bytes are still in it: a read overwrites them).
pub(super) fn reused_buffer(length: usize) -> BlockBuffer {
    let spare = SPARE.with_borrow_mut(|spare| {
        take_returned(spare);
        let fits = spare.iter().rposition(|buffer| buffer.capacity() >= length)?;
        Some(spare.swap_remove(fits))
    });
    spare.unwrap_or_else(|| BlockBuffer::with_capacity(length))
}

/// Moves the buffers handed back since the last call into this thread's spares.
fn take_returned(spare: &mut Vec<BlockBuffer>) {
    RETURNS.with(|returns| {
        while spare.len() < SPARE_KEPT_MAX {
            let Some(buffer) = returns.pop() else { break };
            spare.push(buffer);
        }
    });
}

/// Bytes read from a file: a range of a reused aligned buffer, or a plain vector. It may be
/// dropped on any thread; a reused buffer then goes back to the thread that read into it. The
/// buffer keeps the ciphertext read into it until the next read overwrites it, as a freed
/// allocation would; `Debug` shows only the length.
pub struct ReadBytes {
    held: Held,
    start: usize,
    length: usize,
}

enum Held {
    /// A buffer from [`reused_buffer`], and the return queue of the thread it came from.
    Reused(BlockBuffer, Returns),
    Plain(Vec<u8>),
}

impl ReadBytes {
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self { start: 0, length: bytes.len(), held: Held::Plain(bytes) }
    }

    /// `buffer.as_slice()[start..start + length]`; `buffer` came from [`reused_buffer`] on this
    /// thread, and comes back to it on drop.
    pub fn in_reused(buffer: BlockBuffer, start: usize, length: usize) -> Self {
        debug_assert!(start + length <= buffer.len(), "read range past the buffer's window");
        let returns = RETURNS.with(Arc::clone);
        Self { held: Held::Reused(buffer, returns), start, length }
    }

    /// Keeps the first `length` bytes (all of them if there are fewer).
    pub fn truncate(&mut self, length: usize) {
        self.length = self.length.min(length);
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
            Held::Reused(buffer, _) => &buffer.as_slice()[range],
            Held::Plain(bytes) => &bytes[range],
        }
    }
}

impl DerefMut for ReadBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        let range = self.start..self.start + self.length;
        match &mut self.held {
            Held::Reused(buffer, _) => &mut buffer.as_mut_slice()[range],
            Held::Plain(bytes) => &mut bytes[range],
        }
    }
}

impl Drop for ReadBytes {
    fn drop(&mut self) {
        let Held::Reused(buffer, home) = std::mem::replace(&mut self.held, Held::Plain(Vec::new())) else { return };
        if buffer.capacity() > REUSED_BYTES_MAX {
            return;
        }
        // A full queue means the reading thread has spares enough: this buffer is freed.
        let _ = home.push(buffer);
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
    fn bytes_dropped_on_another_thread_give_their_buffer_back_to_the_reading_one() {
        let mut buffer = reused_buffer(5000);
        buffer.resize_for_read(5000);
        let address = buffer.as_slice().as_ptr() as usize;
        let read = ReadBytes::in_reused(buffer, 0, 5000);
        std::thread::spawn(move || {
            assert_eq!(read.len(), 5000);
            drop(read);
            let there = reused_buffer(4096);
            assert_ne!(there.as_slice().as_ptr() as usize, address, "the buffer is not the dropping thread's");
        })
        .join()
        .expect("the dropping thread");
        let again = reused_buffer(4096);
        assert_eq!(again.as_slice().as_ptr() as usize, address, "the returned buffer, not a fresh allocation");
    }

    #[test]
    fn truncating_keeps_the_front() {
        let mut read = ReadBytes::from_vec(b"frame and slack".to_vec());
        read.truncate(5);
        assert_eq!(&*read, b"frame");
        read.truncate(50);
        assert_eq!(&*read, b"frame", "never longer than it was");
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
