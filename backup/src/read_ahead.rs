//! A local segment read front to back for verify level 2 (and hashed alone for level 1), and
//! for the checked copies of `backup run` and `restore` (`local_copy`): several O_DIRECT reads
//! in flight ahead of the frame scan, hashed (BLAKE3) in file order as they arrive, and, when
//! copying, each chunk written to the copy once the scan has passed it.
//!
//! Why: the scan asks for one window at a time and works through it before asking again, so
//! a plain file left the disk idle while the CPU checked CRCs and AEAD tags, and the CPU idle
//! while the next window was read. Level 2 ran at 0.45–0.65 of fio's sequential read, with
//! both cores a third busy (perf). Here the reads of the next windows are on the disk while
//! the scan checks this one.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::rc::Rc;

use compio::fs::File;
use compio::runtime::JoinHandle;
use mailvault_engine::io::{BlockBuffer, StorageFile, yield_now};

use crate::local_copy::{open_for_reading, read_chunk, write_chunk};

/// Bytes per read.
pub(crate) const CHUNK_BYTES: usize = 8 * 1024 * 1024;
/// Reads in flight ahead of the scan, per file.
const READS_IN_FLIGHT_MAX: usize = 4;
/// Writes of a copy in flight at most: reads wait for the oldest beyond this, so a disk that
/// writes slower than it reads does not pile the whole file up in memory.
const WRITES_IN_FLIGHT_MAX: usize = 4;

/// A read-only file that serves forward reads (each starting at or after the previous one's
/// start, as a scan reads) from chunks read ahead of them.
pub(crate) struct ReadAheadFile {
    file: Rc<File>,
    size: u64,
    state: RefCell<ReadAhead>,
}

#[derive(Default)]
struct ReadAhead {
    /// Reads issued, oldest first: they complete into `chunks` in file order.
    reads: VecDeque<JoinHandle<io::Result<(u64, BlockBuffer)>>>,
    /// Where the next read to issue starts.
    next_read: u64,
    /// Chunks received and still needed (start offset, bytes), in file order.
    chunks: VecDeque<(u64, BlockBuffer)>,
    /// End of the bytes received (and hashed) so far.
    received_end: u64,
    /// The digest of the bytes received, when asked for.
    hasher: Option<blake3::Hasher>,
    /// Buffers of chunks the scan has passed, for the next reads.
    spare: Vec<BlockBuffer>,
    /// Why a read (or a copy's write) failed: the bytes after it can no longer be hashed in
    /// order, so every later read, and the digest, fail the same way.
    failed: Option<String>,
    /// Where chunks the scan has passed are written, when copying (`copying_to`).
    copy: Option<Rc<File>>,
    /// The copy's writes in flight, oldest first; each gives its buffer back.
    writes: VecDeque<JoinHandle<io::Result<BlockBuffer>>>,
}

impl ReadAheadFile {
    /// Opens `path` (O_DIRECT where the filesystem allows it) and starts reading it; `hash`:
    /// whether to take its digest (`finish`).
    pub(crate) async fn open(path: &Path, hash: bool) -> io::Result<Self> {
        let file = open_for_reading(path).await?;
        let size = file.metadata().await?.len();
        let state = ReadAhead { hasher: hash.then(blake3::Hasher::new), ..ReadAhead::default() };
        let file = Self { file: Rc::new(file), size, state: RefCell::new(state) };
        file.issue_reads();
        Ok(file)
    }

    /// Also writes every chunk to `output`, at its own offset, once the scan has passed it
    /// (whole blocks: the last one padded, for O_DIRECT; the caller cuts `output` back to
    /// `file_size`). Before any read.
    pub(crate) fn copying_to(self, output: Rc<File>) -> Self {
        self.state.borrow_mut().copy = Some(output);
        self
    }

    /// Reads what the scan has not (past damage, say) and answers the whole file's digest
    /// (`None` if it was opened without hashing). When copying, every byte is then written.
    pub(crate) async fn finish(&self) -> io::Result<Option<[u8; 32]>> {
        let (hashing, copying) = {
            let state = self.state.borrow();
            (state.hasher.is_some(), state.copy.is_some())
        };
        if !hashing && !copying {
            return Ok(None);
        }
        while self.state.borrow().received_end < self.size {
            self.receive_next().await?;
            let received_end = self.state.borrow().received_end;
            self.release_before(received_end);
        }
        self.release_before(self.size);
        while let Some(write) = self.oldest_write_beyond(0) {
            self.reclaim(write).await?;
        }
        Ok(self.state.borrow().hasher.as_ref().map(|hasher| *hasher.finalize().as_bytes()))
    }

    /// The oldest write of the copy in flight, taken out, if more than `kept` are.
    fn oldest_write_beyond(&self, kept: usize) -> Option<JoinHandle<io::Result<BlockBuffer>>> {
        let mut state = self.state.borrow_mut();
        if state.writes.len() > kept { state.writes.pop_front() } else { None }
    }

    /// Waits for a write of the copy; its buffer goes back to the spare ones.
    async fn reclaim(&self, write: JoinHandle<io::Result<BlockBuffer>>) -> io::Result<()> {
        let written = write.await.unwrap_or_else(|_| Err(io::Error::other("a copy's write task stopped")));
        let mut state = self.state.borrow_mut();
        match written {
            Ok(buffer) => {
                state.spare.push(buffer);
                Ok(())
            }
            Err(error) => {
                let reason = format!("writing the copy: {error}");
                state.failed = Some(reason.clone());
                Err(io::Error::other(reason))
            }
        }
    }

    /// The file's size when it was opened.
    pub(crate) fn file_size(&self) -> u64 {
        self.size
    }

    /// Issues reads until `READS_IN_FLIGHT_MAX` are in flight or the file is all asked for.
    fn issue_reads(&self) {
        let mut state = self.state.borrow_mut();
        while state.reads.len() < READS_IN_FLIGHT_MAX && state.next_read < self.size {
            let offset = state.next_read;
            let length = usize::try_from(self.size - offset).unwrap_or(usize::MAX).min(CHUNK_BYTES);
            let buffer = state.spare.pop().unwrap_or_else(|| BlockBuffer::with_capacity(CHUNK_BYTES));
            let file = Rc::clone(&self.file);
            let read = compio::runtime::spawn(async move { read_chunk(&file, buffer, offset, length).await });
            state.reads.push_back(read);
            state.next_read += length as u64;
        }
    }

    /// Waits for the oldest read in flight, hashes its bytes and keeps them.
    async fn receive_next(&self) -> io::Result<()> {
        if let Some(reason) = &self.state.borrow().failed {
            return Err(io::Error::other(reason.clone()));
        }
        while let Some(write) = self.oldest_write_beyond(WRITES_IN_FLIGHT_MAX - 1) {
            self.reclaim(write).await?;
        }
        self.issue_reads();
        let Some(read) = self.state.borrow_mut().reads.pop_front() else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        let received = read.await.unwrap_or_else(|_| Err(io::Error::other("a read-ahead task stopped")));
        let (offset, buffer) =
            received.inspect_err(|error| self.state.borrow_mut().failed = Some(error.to_string()))?;
        let mut state = self.state.borrow_mut();
        if let Some(hasher) = &mut state.hasher {
            hasher.update(buffer.as_slice());
        }
        state.received_end = offset + buffer.len() as u64;
        state.chunks.push_back((offset, buffer));
        Ok(())
    }

    /// Lets go of the chunks that end at or before `offset`: forward reads will not ask for
    /// them. When copying, they are written now.
    fn release_before(&self, offset: u64) {
        let mut state = self.state.borrow_mut();
        while let Some((start, buffer)) = state.chunks.front()
            && start + buffer.len() as u64 <= offset
        {
            let start = *start;
            let Some((_, mut buffer)) = state.chunks.pop_front() else { break };
            match &state.copy {
                Some(output) => {
                    buffer.pad_to_block();
                    let output = Rc::clone(output);
                    let write = compio::runtime::spawn(async move { write_chunk(&output, buffer, start).await });
                    state.writes.push_back(write);
                }
                None => state.spare.push(buffer),
            }
        }
    }

    /// `length` bytes at `offset`, copied out of the chunks that hold them.
    fn copy_out(&self, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        let state = self.state.borrow();
        let mut bytes = Vec::with_capacity(length);
        let end = offset + length as u64;
        for (start, buffer) in &state.chunks {
            let chunk_end = start + buffer.len() as u64;
            if chunk_end <= offset || *start >= end {
                continue;
            }
            let from = offset.max(*start) - start;
            let to = end.min(chunk_end) - start;
            bytes.extend_from_slice(&buffer.as_slice()[from as usize..to as usize]);
        }
        if bytes.len() == length {
            Ok(bytes)
        } else {
            Err(io::Error::other(format!("read at {offset} goes back before the bytes read ahead")))
        }
    }
}

impl StorageFile for ReadAheadFile {
    async fn write_blocks(&self, buffer: BlockBuffer, _offset: u64) -> (io::Result<()>, BlockBuffer) {
        (Err(read_only()), buffer)
    }

    async fn read_exact(&self, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        let end = offset.checked_add(length as u64).filter(|end| *end <= self.size);
        let Some(end) = end else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
        };
        while self.state.borrow().received_end < end {
            self.receive_next().await?;
        }
        self.release_before(offset);
        let bytes = self.copy_out(offset, length)?;
        // The reads just issued reach the disk when the runtime next polls its driver: let it
        // do so now, before the caller spends a while checking these bytes.
        self.issue_reads();
        yield_now().await;
        Ok(bytes)
    }

    async fn sync_data(&self) -> io::Result<()> {
        Err(read_only())
    }

    async fn preallocate(&self, _length: u64) -> io::Result<()> {
        Err(read_only())
    }

    async fn zero_range(&self, _offset: u64, _length: u64) -> io::Result<()> {
        Err(read_only())
    }

    async fn set_len(&self, _length: u64) -> io::Result<()> {
        Err(read_only())
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.size)
    }
}

fn read_only() -> io::Error {
    io::Error::other("a segment under verification is read-only")
}

#[cfg(test)]
mod tests {
    use mailvault_engine::block_on;

    use super::*;

    /// A file of `bytes` in a temporary directory, opened for reading ahead (hashing it).
    fn with_file<T>(bytes: &[u8], test: impl AsyncFnOnce(ReadAheadFile) -> T) -> T {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("file");
        std::fs::write(&path, bytes).expect("write the file");
        block_on(async { test(ReadAheadFile::open(&path, true).await.expect("open the file")).await })
    }

    fn file_bytes() -> Vec<u8> {
        (0..3 * CHUNK_BYTES + 12_345).map(|index| (index * 7 % 251) as u8).collect()
    }

    #[test]
    fn forward_reads_get_the_files_bytes_and_the_digest_is_the_whole_files() {
        let bytes = file_bytes();
        let expected = *blake3::hash(&bytes).as_bytes();
        let chunk = CHUNK_BYTES as u64;
        // Overlapping windows (as a scan reads), windows across chunk boundaries, a jump
        // ahead, a read of the very end, no read at all.
        let patterns: [&[(u64, usize)]; 4] = [
            &[(0, 4096), (100, 10_000), (5000, 70_000), (chunk - 10, 20), (chunk - 10, CHUNK_BYTES + 20)],
            &[(0, 10), (2 * chunk + 5, 10)],
            &[(bytes.len() as u64 - 1, 1)],
            &[],
        ];
        for pattern in patterns {
            let digest = with_file(&bytes, async |file| {
                for &(offset, length) in pattern {
                    let read = file.read_exact(offset, length).await.expect("read");
                    assert!(read == bytes[offset as usize..offset as usize + length], "read ({offset}, {length})");
                }
                file.finish().await.expect("finish")
            });
            assert_eq!(digest, Some(expected), "after reads {pattern:?}");
        }
    }

    #[test]
    fn a_read_past_the_end_or_back_before_what_was_let_go_is_an_error_not_wrong_bytes() {
        let bytes = file_bytes();
        with_file(&bytes, async |file| {
            let past_end = file.read_exact(bytes.len() as u64 - 5, 6).await;
            assert_eq!(past_end.expect_err("past the end").kind(), io::ErrorKind::UnexpectedEof);
            file.read_exact(2 * CHUNK_BYTES as u64 + 1, 10).await.expect("read ahead");
            let back = file.read_exact(5, 10).await;
            assert!(back.expect_err("backwards").to_string().contains("goes back before"));
        });
    }

    /// A failed read must not leave a hole that the digest skips: every read after it, and
    /// the digest, fail with its reason, even once the reads after it would succeed.
    #[test]
    fn after_a_failed_read_every_read_and_the_digest_fail() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("file");
        let bytes: Vec<u8> = (0..(READS_IN_FLIGHT_MAX + 2) * CHUNK_BYTES).map(|index| (index % 251) as u8).collect();
        std::fs::write(&path, &bytes).expect("write the file");
        block_on(async {
            let file = ReadAheadFile::open(&path, true).await.expect("open the file");
            // The first reads are issued but have not run yet (nothing awaited since): they
            // find the file cut short. The reads issued after them find it whole again.
            std::fs::File::options().write(true).open(&path).and_then(|cut| cut.set_len(0)).expect("cut the file");
            let first = file.read_exact(0, 10).await.expect_err("the file shrank");
            std::fs::write(&path, &bytes).expect("write the file again");
            for _ in 0..=READS_IN_FLIGHT_MAX {
                let later = file.read_exact(bytes.len() as u64 - 10, 10).await.expect_err("still failed");
                assert_eq!(later.to_string(), first.to_string());
            }
            assert_eq!(file.finish().await.expect_err("no digest").to_string(), first.to_string());
        });
    }

    #[test]
    fn a_file_opened_without_hashing_has_no_digest() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("file");
        std::fs::write(&path, b"some bytes").expect("write the file");
        let digest = block_on(async {
            let file = ReadAheadFile::open(&path, false).await.expect("open the file");
            assert_eq!(file.read_exact(5, 5).await.expect("read"), b"bytes");
            file.finish().await.expect("finish")
        });
        assert_eq!(digest, None);
    }
}
