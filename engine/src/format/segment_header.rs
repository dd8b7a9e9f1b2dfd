//! The segment header: the first 64 bytes of a segment file (the rest of its first 4 KiB block
//! is zero, so record writes never touch the header's block).
//!
//! ```text
//!  0 [u8; 8] magic "MVSEGMT\0"   16 u64 segment_id        32 u32 crc32c of bytes 0..32
//!  8 u32 format_version          24 i64 created_unix_ms   36 zero up to 64
//! 12 u32 shard_id
//! ```

use super::{CrcSeed, FORMAT_VERSION, FORMAT_VERSION_READ_MIN};

pub const SEGMENT_HEADER_BYTES: usize = 64;
const SEGMENT_MAGIC: [u8; 8] = *b"MVSEGMT\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// `FORMAT_VERSION` for a segment this build creates; an older one read back says which
    /// rules its frames follow (a version 2 segment never gets overlapping commits).
    pub format_version: u32,
    pub shard_id: u32,
    pub segment_id: u64,
    pub created_unix_ms: i64,
}

const _: () = assert!(8 + 4 + 4 + 8 + 8 + 4 <= SEGMENT_HEADER_BYTES);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentHeaderError {
    #[error("segment header truncated")]
    Truncated,
    #[error("not a mailvault segment (bad magic)")]
    BadMagic,
    #[error("segment header checksum mismatch")]
    BadChecksum,
    #[error(
        "segment format version {found} is not supported (this build reads {FORMAT_VERSION_READ_MIN} to {FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
}

impl SegmentHeader {
    /// The header of a segment this build creates.
    pub fn new(shard_id: u32, segment_id: u64, created_unix_ms: i64) -> Self {
        Self { format_version: FORMAT_VERSION, shard_id, segment_id, created_unix_ms }
    }

    /// Whether commits in this segment may overlap on disk (format version 3 on).
    pub fn allows_overlapping_commits(&self) -> bool {
        self.format_version >= 3
    }

    /// Whether a commit in this segment may start on the next block boundary, after zeros that
    /// end the previous commit's block (format version 4 on).
    pub fn allows_block_gaps(&self) -> bool {
        self.format_version >= 4
    }

    /// Where its frames' CRCs start: the segment's own seed from format version 6 on (its file
    /// may be a reused one, holding an earlier segment's frames past its log), none before.
    pub fn crc_seed(&self) -> CrcSeed {
        if self.may_be_in_a_reused_file() { CrcSeed::of_segment(self.segment_id) } else { CrcSeed::UNSEEDED }
    }

    /// Whether its file may hold an earlier segment's bytes past its log (format version 6 on:
    /// a compacted segment's file reused, docs/format.md §2.5). Those bytes are neither frames
    /// of this segment (their CRCs start from another seed) nor zeros.
    pub fn may_be_in_a_reused_file(&self) -> bool {
        self.format_version >= 6
    }

    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&self.format_version.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.shard_id.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.segment_id.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.created_unix_ms.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..32]);
        bytes[32..36].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    pub fn decode(input: &[u8]) -> Result<Self, SegmentHeaderError> {
        let bytes = input.first_chunk::<SEGMENT_HEADER_BYTES>().ok_or(SegmentHeaderError::Truncated)?;
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(SegmentHeaderError::BadMagic);
        }
        let field = |range: std::ops::Range<usize>| -> [u8; 8] {
            let mut array = [0; 8];
            array[..range.len()].copy_from_slice(&bytes[range]);
            array
        };
        let stored_crc = u32::from_le_bytes([bytes[32], bytes[33], bytes[34], bytes[35]]);
        if crc32c::crc32c(&bytes[0..32]) != stored_crc {
            return Err(SegmentHeaderError::BadChecksum);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if !(FORMAT_VERSION_READ_MIN..=FORMAT_VERSION).contains(&version) {
            return Err(SegmentHeaderError::UnsupportedVersion { found: version });
        }
        Ok(Self {
            format_version: version,
            shard_id: u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            segment_id: u64::from_le_bytes(field(16..24)),
            created_unix_ms: i64::from_le_bytes(field(24..32)),
        })
    }
}
