//! A backup's key table: every account's DEK wrapped under one backup key version.
//!
//! ```text
//! 0  [u8; 8]  magic "MVBKEYS1"
//! 8  u32      backup_key_version   (the HSM key `mailvault-backup-kek-v<N>`)
//! 12 u32      entry_count          (≤ 2^28)
//! 16 entry_count × { u64 account_id ‖ u16 length ‖ WrappedDek bytes (docs/format.md §6) }
//! ```
//! Little-endian; account ids strictly ascending; consumed exactly. Its BLAKE3 digest is in
//! the signed manifest, so a table that decodes but was altered is still caught.

use mailvault_hsm::WrappedDek;

const MAGIC: [u8; 8] = *b"MVBKEYS1";
const ENTRY_COUNT_MAX: u32 = 1 << 28;
const WRAPPED_BYTES_MAX: usize = 6 + mailvault_hsm::WRAPPED_BLOB_BYTES_MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTable {
    pub backup_key_version: u32,
    /// (account id, DEK wrapped under the backup key), ascending by account id.
    pub entries: Vec<(u64, WrappedDek)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyTableError {
    #[error("key table is truncated")]
    Truncated,
    #[error("not a key table (bad magic)")]
    BadMagic,
    #[error("key table: {0}")]
    Malformed(&'static str),
}

impl KeyTable {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + self.entries.len() * 60);
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&self.backup_key_version.to_le_bytes());
        bytes.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (account_id, wrapped) in &self.entries {
            let encoded = wrapped.to_bytes();
            bytes.extend_from_slice(&account_id.to_le_bytes());
            bytes.extend_from_slice(&(encoded.len() as u16).to_le_bytes());
            bytes.extend_from_slice(&encoded);
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, KeyTableError> {
        let mut reader = Reader(bytes);
        if reader.take(8)? != MAGIC {
            return Err(KeyTableError::BadMagic);
        }
        let backup_key_version = reader.u32()?;
        let count = reader.u32()?;
        if count > ENTRY_COUNT_MAX {
            return Err(KeyTableError::Malformed("entry count"));
        }
        let mut entries = Vec::with_capacity((count as usize).min(bytes.len() / 16));
        for _ in 0..count {
            let account_id = reader.u64()?;
            let length = usize::from(reader.u16()?);
            if length > WRAPPED_BYTES_MAX {
                return Err(KeyTableError::Malformed("wrapped key length"));
            }
            let wrapped =
                WrappedDek::from_bytes(reader.take(length)?).map_err(|_| KeyTableError::Malformed("wrapped key"))?;
            if entries.last().is_some_and(|(previous, _)| *previous >= account_id) {
                return Err(KeyTableError::Malformed("account ids not ascending"));
            }
            entries.push((account_id, wrapped));
        }
        if !reader.0.is_empty() {
            return Err(KeyTableError::Malformed("trailing bytes"));
        }
        Ok(Self { backup_key_version, entries })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], KeyTableError> {
        if self.0.len() < length {
            return Err(KeyTableError::Truncated);
        }
        let (taken, rest) = self.0.split_at(length);
        self.0 = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeyTableError> {
        self.take(N)?.try_into().map_err(|_| KeyTableError::Truncated)
    }

    fn u16(&mut self) -> Result<u16, KeyTableError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, KeyTableError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, KeyTableError> {
        self.array().map(u64::from_le_bytes)
    }
}
