//! A segment file in memory, for running the real recovery scan over a fuzzed image. A fuzz
//! harness, not a test double: reads past the end fail like a short file would.

use std::cell::RefCell;
use std::io;

use mailvault_engine::io::{BlockBuffer, StorageFile};

#[derive(Debug, Default)]
pub struct MemoryFile {
    bytes: RefCell<Vec<u8>>,
}

impl MemoryFile {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self { bytes: RefCell::new(bytes) }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes.into_inner()
    }
}

fn range(offset: u64, length: usize) -> io::Result<(usize, usize)> {
    let start = usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let end = start.checked_add(length).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok((start, end))
}

impl StorageFile for MemoryFile {
    async fn write_blocks(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
        let result = range(offset, buffer.len()).map(|(start, end)| {
            let mut bytes = self.bytes.borrow_mut();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(buffer.as_slice());
        });
        (result, buffer)
    }

    async fn read_exact(&self, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        let (start, end) = range(offset, length)?;
        self.bytes.borrow().get(start..end).map(<[u8]>::to_vec).ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    async fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    async fn preallocate(&self, length: u64) -> io::Result<()> {
        let (_, end) = range(length, 0)?;
        let mut bytes = self.bytes.borrow_mut();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        Ok(())
    }

    async fn zero_range(&self, offset: u64, length: u64) -> io::Result<()> {
        let mut bytes = self.bytes.borrow_mut();
        let size = bytes.len() as u64;
        let start = offset.min(size) as usize;
        let end = offset.saturating_add(length).min(size) as usize;
        bytes[start..end].fill(0);
        Ok(())
    }

    async fn set_len(&self, length: u64) -> io::Result<()> {
        let (_, end) = range(length, 0)?;
        self.bytes.borrow_mut().resize(end, 0);
        Ok(())
    }

    async fn size(&self) -> io::Result<u64> {
        Ok(self.bytes.borrow().len() as u64)
    }
}
