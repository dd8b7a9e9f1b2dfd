//! The record frame: a 40-byte clear header (what the index needs before decrypting, and the
//! AEAD associated data) followed by the AES-256-GCM payload, padded to 8 bytes.
//!
//! ```text
//!  0  u32 magic "MVRF"      12 u8  kind        24 u64 account_id
//!  4  u32 payload_length    13 u8  flags       32 u32 mailbox_id
//!  8  u32 crc32c            14 u16 durable_gap 36 u32 uid
//!                           16 u64 record_id   40 payload, then zero padding to 8
//! ```
//! The CRC32C covers bytes 0..8, 12..40 and the payload: everything but itself. From format
//! version 6 it starts from a seed of the segment's own ([`CrcSeed`]), so that frames an
//! earlier segment left in a reused file never pass as the new segment's.
//! Flags: bit 0 `COMMIT_END` marks the last frame of a commit, bit 1 `COMMIT_START` its first
//! (one frame may carry both); recovery uses them to tell a torn last commit from damage to an
//! earlier one (see `segment::scan`). Flags are CRC-covered but not associated data, so marking
//! a batch's ends needs no re-encryption.
//!
//! Bytes 14..16 are zero except on a `COMMIT_START` frame, where they say how far before the
//! commit the log was durable when the commit's writes began (`durable_gap`, in 64 KiB units):
//! commits overlap on disk, and recovery must know which earlier damage a later commit vouches
//! for (docs/format.md §8.3).

use super::{BLOCK_BYTES, RECORD_PAYLOAD_BYTES_MAX, align_up};

pub const FRAME_HEADER_BYTES: usize = 40;
pub const FRAME_ALIGN_BYTES: usize = 8;
const FRAME_MAGIC: [u8; 4] = *b"MVRF";
/// Flag: this frame is the last of its commit.
pub const FRAME_FLAG_COMMIT_END: u8 = 1;
/// Flag: this frame is the first of its commit.
pub const FRAME_FLAG_COMMIT_START: u8 = 2;
/// Flag: a verbatim copy made by compaction; replaying it only says where the record now lives.
pub const FRAME_FLAG_RELOCATED: u8 = 4;
/// The unit of a `COMMIT_START` frame's durable gap: 64 KiB, so 16 bits span 4 GiB in flight.
pub const DURABLE_GAP_UNIT_BYTES: u64 = 64 * 1024;
const FRAME_FLAGS_KNOWN: u8 = FRAME_FLAG_COMMIT_END | FRAME_FLAG_COMMIT_START | FRAME_FLAG_RELOCATED;
const ASSOCIATED_DATA_BYTES: usize = 25;

/// Where a frame's CRC32C starts: a segment's own value from format version 6 on, so that a
/// frame an earlier segment left in a reused file (docs/format.md §2.5) fails its checksum in
/// the new one and reads as the end of the log, never as a record. Versions 2 to 5 start from
/// nothing ([`CrcSeed::UNSEEDED`]: the plain CRC32C).
///
/// A CRC that starts from a different value differs for the same bytes whatever they are (the
/// CRC's register update is invertible), so two segments whose seeds differ never accept each
/// other's frames: not a matter of chance, as a random salt's collisions would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrcSeed(u32);

impl CrcSeed {
    /// Format versions 2 to 5.
    pub const UNSEEDED: Self = Self(0);

    /// The seed of segment `segment_id` in format version 6 on: the complement of its low 32
    /// bits. Distinct for segment ids less than 2^32 apart (a shard's ids count up from 1, one
    /// per segment), and never [`CrcSeed::UNSEEDED`] below id 2^32 − 1, so a file that held a
    /// version 5 segment is safe to reuse too.
    pub const fn of_segment(segment_id: u64) -> Self {
        #[allow(clippy::cast_possible_truncation)] // the low 32 bits, on purpose
        Self(!(segment_id as u32))
    }
}

/// The clear part of a frame. Everything here except `payload_length` and `flags` is associated
/// data of the payload's AEAD, so a frame moved to another account, mailbox or uid fails to decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: u8,
    pub flags: u8,
    pub record_id: u64,
    pub account_id: u64,
    pub mailbox_id: u32,
    pub uid: u32,
    pub payload_length: u32,
}

const _: () = assert!(FRAME_HEADER_BYTES == 4 + 4 + 4 + 1 + 1 + 2 + 8 + 8 + 4 + 4);
const _: () = assert!(FRAME_HEADER_BYTES.is_multiple_of(FRAME_ALIGN_BYTES));

impl FrameHeader {
    /// The bytes bound into the AEAD: kind, record id, account, mailbox, uid.
    pub fn associated_data(&self) -> [u8; ASSOCIATED_DATA_BYTES] {
        let encoded = self.encode_without_crc();
        let mut associated = [0; ASSOCIATED_DATA_BYTES];
        associated[0] = encoded[12];
        associated[1..].copy_from_slice(&encoded[16..40]);
        associated
    }

    pub fn is_commit_end(&self) -> bool {
        self.flags & FRAME_FLAG_COMMIT_END != 0
    }

    pub fn is_relocated(&self) -> bool {
        self.flags & FRAME_FLAG_RELOCATED != 0
    }

    pub fn is_commit_start(&self) -> bool {
        self.flags & FRAME_FLAG_COMMIT_START != 0
    }

    fn encode_without_crc(&self) -> [u8; FRAME_HEADER_BYTES] {
        let mut bytes = [0; FRAME_HEADER_BYTES];
        bytes[0..4].copy_from_slice(&FRAME_MAGIC);
        bytes[4..8].copy_from_slice(&self.payload_length.to_le_bytes());
        bytes[12] = self.kind;
        bytes[13] = self.flags;
        bytes[16..24].copy_from_slice(&self.record_id.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.account_id.to_le_bytes());
        bytes[32..36].copy_from_slice(&self.mailbox_id.to_le_bytes());
        bytes[36..40].copy_from_slice(&self.uid.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8; FRAME_HEADER_BYTES]) -> (Self, u32) {
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let u64_at = |at: usize| {
            let mut array = [0; 8];
            array.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(array)
        };
        let header = Self {
            kind: bytes[12],
            flags: bytes[13],
            record_id: u64_at(16),
            account_id: u64_at(24),
            mailbox_id: u32_at(32),
            uid: u32_at(36),
            payload_length: u32_at(4),
        };
        (header, u32_at(8))
    }
}

/// Total bytes a frame with this payload occupies on disk, padding included.
pub const fn frame_encoded_bytes(payload_length: usize) -> usize {
    align_up(FRAME_HEADER_BYTES + payload_length, FRAME_ALIGN_BYTES)
}

/// Appends one frame (header, payload, zero padding) to `out`.
pub fn encode_frame(header: &FrameHeader, payload: &[u8], seed: CrcSeed, out: &mut Vec<u8>) {
    debug_assert_eq!(header.payload_length as usize, payload.len());
    assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX, "payload bound is checked by callers");
    let mut bytes = header.encode_without_crc();
    let crc = frame_crc(seed, &bytes, payload);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&bytes);
    out.extend_from_slice(payload);
    out.resize(start + frame_encoded_bytes(payload.len()), 0);
}

/// Turns `out[frame_start..]`, a zeroed header's room followed by the payload, into an encoded
/// frame: writes the header with its CRC and pads to 8. The zero-copy twin of [`encode_frame`].
pub fn finish_frame(header: &FrameHeader, seed: CrcSeed, out: &mut Vec<u8>, frame_start: usize) {
    let payload_length = out.len() - frame_start - FRAME_HEADER_BYTES;
    debug_assert_eq!(header.payload_length as usize, payload_length);
    assert!(payload_length <= RECORD_PAYLOAD_BYTES_MAX, "payload bound is checked by callers");
    let mut bytes = header.encode_without_crc();
    let crc = frame_crc(seed, &bytes, &out[frame_start + FRAME_HEADER_BYTES..]);
    bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    out[frame_start..frame_start + FRAME_HEADER_BYTES].copy_from_slice(&bytes);
    out.resize(frame_start + frame_encoded_bytes(payload_length), 0);
}

/// Adds `flags` (`COMMIT_START`, `COMMIT_END`) to the encoded frame at the start of `frame` and
/// refreshes its CRC (from `seed`: the segment's it is written to).
pub fn add_frame_flags(frame: &mut [u8], flags: u8, seed: CrcSeed) {
    let current = frame.get(13).copied().unwrap_or(0);
    set_frame_flags(frame, current | flags, seed);
}

/// Replaces the flags of the encoded frame at the start of `frame` and refreshes its CRC. A
/// frame that no longer starts a commit loses its durable gap (a verbatim copy by compaction).
pub fn set_frame_flags(frame: &mut [u8], flags: u8, seed: CrcSeed) {
    let gap = if flags & FRAME_FLAG_COMMIT_START != 0 { commit_durable_gap(frame) } else { 0 };
    rewrite_flags_and_gap(frame, flags, gap, seed);
}

/// Marks the encoded frame at the start of `frame` as the first of its commit, whose writes
/// began while the log was durable only up to `durable_gap_units` × 64 KiB before the frame
/// (0: every byte before it), and refreshes its CRC.
pub fn mark_commit_start(frame: &mut [u8], durable_gap_units: u16, seed: CrcSeed) {
    let current = frame.get(13).copied().unwrap_or(0);
    rewrite_flags_and_gap(frame, current | FRAME_FLAG_COMMIT_START, durable_gap_units, seed);
}

/// The durable gap of the encoded frame at the start of `frame`, in 64 KiB units (0 unless it
/// starts a commit written while earlier commits were not yet durable).
pub fn commit_durable_gap(frame: &[u8]) -> u16 {
    match frame.get(14..16) {
        Some(&[low, high]) => u16::from_le_bytes([low, high]),
        _ => 0,
    }
}

fn rewrite_flags_and_gap(frame: &mut [u8], flags: u8, gap: u16, seed: CrcSeed) {
    let Some(header_bytes) = frame.first_chunk_mut::<FRAME_HEADER_BYTES>() else {
        return;
    };
    header_bytes[13] = flags;
    header_bytes[14..16].copy_from_slice(&gap.to_le_bytes());
    let header_copy = *header_bytes;
    let (header, _) = FrameHeader::decode(&header_copy);
    let payload_end = FRAME_HEADER_BYTES + header.payload_length as usize;
    let Some(payload) = frame.get(FRAME_HEADER_BYTES..payload_end) else {
        return;
    };
    let crc = frame_crc(seed, &header_copy, payload);
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Marks the encoded frame at the start of `frame` as the last of its commit.
pub fn mark_commit_end(frame: &mut [u8], seed: CrcSeed) {
    add_frame_flags(frame, FRAME_FLAG_COMMIT_END, seed);
}

fn frame_crc(seed: CrcSeed, header: &[u8; FRAME_HEADER_BYTES], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(seed.0, &header[0..8]);
    let crc = crc32c::crc32c_append(crc, &header[12..40]);
    crc32c::crc32c_append(crc, payload)
}

/// A decoded frame borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    pub payload: &'a [u8],
    /// Bytes this frame occupies, padding included: the offset of the next frame.
    pub encoded_bytes: usize,
}

/// What the bytes at a frame position hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDecode<'a> {
    Frame(Frame<'a>),
    /// Zeroes where a magic would be: the end of the written records (preallocated space).
    End,
    /// The input ends inside the frame; `bytes_needed` is the whole frame's size.
    NeedsMoreData {
        bytes_needed: usize,
    },
}

/// The bytes at a frame position are not a valid frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("bad frame magic")]
    BadMagic,
    #[error("frame payload length {length} exceeds the limit")]
    TooLong { length: u32 },
    #[error("frame checksum mismatch")]
    BadChecksum,
    #[error("frame padding is not zero")]
    BadPadding,
    #[error("frame has unknown flags, or a durable gap without starting a commit")]
    BadReserved,
}

/// The encoded size of the frame whose header starts `input`, judged by its magic and length
/// only, without the CRC: for walking frames a checkpoint already vouches for. `None` if no
/// frame header starts there.
pub fn frame_extent(input: &[u8]) -> Option<usize> {
    let header_bytes = input.first_chunk::<FRAME_HEADER_BYTES>()?;
    if header_bytes[0..4] != FRAME_MAGIC {
        return None;
    }
    let (header, _) = FrameHeader::decode(header_bytes);
    let payload_length = header.payload_length as usize;
    (payload_length <= RECORD_PAYLOAD_BYTES_MAX).then(|| frame_encoded_bytes(payload_length))
}

/// Where the next frame of a log that was already verified starts, given the bytes `at`
/// segment offset `offset`: there, or at the next block boundary when no frame starts there
/// (zero magic) and `offset` is not one. From format version 4 a commit planned while another
/// was in flight starts on a fresh block, so that its writes share no block with the commits
/// ahead and need not wait for them; the zeros in between are the rest of the previous
/// commit's last block, which it wrote. (The scan checks those zeros; walks of verified bytes
/// only step over them.)
pub fn skip_block_gap(at: &[u8], offset: u64) -> u64 {
    let no_frame_here = at.first_chunk::<4>().is_some_and(|magic| *magic == [0; 4]);
    let block = BLOCK_BYTES as u64;
    if no_frame_here && !offset.is_multiple_of(block) { offset.next_multiple_of(block) } else { offset }
}

/// The header and encoded size of the whole frame that starts `input`, judged by its magic and
/// length only (no CRC, no padding check): for bytes a scan has just verified. Compaction
/// walked its verified victim twice more with `decode_frame`, and those checksums were a third
/// of the shard's CPU while it compacted. `None` where no whole frame starts.
pub fn verified_frame(input: &[u8]) -> Option<(FrameHeader, usize)> {
    let encoded_bytes = frame_extent(input)?;
    let header_bytes = input.first_chunk::<FRAME_HEADER_BYTES>()?;
    (input.len() >= encoded_bytes).then(|| (FrameHeader::decode(header_bytes).0, encoded_bytes))
}

/// Decodes the frame at the start of `input`, read from a segment whose frames' CRCs start
/// from `seed`.
pub fn decode_frame(input: &[u8], seed: CrcSeed) -> Result<FrameDecode<'_>, FrameError> {
    decode_frame_checking(input, Checksum::Verify(seed))
}

/// Decodes the frame at the start of `input` without its checksum, for a caller that opens the
/// payload's AEAD next: the tag authenticates the payload and every header field but the length
/// and the flags, and a damaged length fails the tag too. A fetch skips the CRC this way (2.5-6%
/// of a shard's time in random reads) and asks [`frame_checksum_matches`] only when the tag
/// fails, to say which it was. A damaged CRC field or flag byte then goes unnoticed by a fetch,
/// whose body is authentic; recovery, scrub and backup verification still decode with the CRC.
pub fn decode_frame_for_aead(input: &[u8]) -> Result<FrameDecode<'_>, FrameError> {
    decode_frame_checking(input, Checksum::LeaveToAead)
}

/// Whether the frame at the start of `input` (its header and payload all there) has the
/// checksum it stores, from `seed`.
pub fn frame_checksum_matches(input: &[u8], seed: CrcSeed) -> bool {
    let Some(header_bytes) = input.first_chunk::<FRAME_HEADER_BYTES>() else {
        return false;
    };
    let (header, stored_crc) = FrameHeader::decode(header_bytes);
    input
        .get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + header.payload_length as usize)
        .is_some_and(|payload| frame_crc(seed, header_bytes, payload) == stored_crc)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checksum {
    Verify(CrcSeed),
    LeaveToAead,
}

fn decode_frame_checking(input: &[u8], checksum: Checksum) -> Result<FrameDecode<'_>, FrameError> {
    let Some(header_bytes) = input.first_chunk::<FRAME_HEADER_BYTES>() else {
        if input.len() >= 4 && input[..4] == [0; 4] {
            return Ok(FrameDecode::End);
        }
        return Ok(FrameDecode::NeedsMoreData { bytes_needed: FRAME_HEADER_BYTES });
    };
    if header_bytes[0..4] == [0; 4] {
        return Ok(FrameDecode::End);
    }
    if header_bytes[0..4] != FRAME_MAGIC {
        return Err(FrameError::BadMagic);
    }
    let (header, stored_crc) = FrameHeader::decode(header_bytes);
    let payload_length = header.payload_length as usize;
    if payload_length > RECORD_PAYLOAD_BYTES_MAX {
        return Err(FrameError::TooLong { length: header.payload_length });
    }
    let encoded_bytes = frame_encoded_bytes(payload_length);
    let Some(frame_bytes) = input.get(..encoded_bytes) else {
        return Ok(FrameDecode::NeedsMoreData { bytes_needed: encoded_bytes });
    };
    let payload = &frame_bytes[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + payload_length];
    if let Checksum::Verify(seed) = checksum
        && frame_crc(seed, header_bytes, payload) != stored_crc
    {
        return Err(FrameError::BadChecksum);
    }
    if frame_bytes[FRAME_HEADER_BYTES + payload_length..].iter().any(|byte| *byte != 0) {
        return Err(FrameError::BadPadding);
    }
    let gap_allowed = header.is_commit_start();
    if header.flags & !FRAME_FLAGS_KNOWN != 0 || (!gap_allowed && header_bytes[14..16] != [0, 0]) {
        return Err(FrameError::BadReserved);
    }
    Ok(FrameDecode::Frame(Frame { header, payload, encoded_bytes }))
}
