//! Pure codecs for every byte mailvault writes to disk: no IO here (docs/format.md is the spec).
//!
//! Decoders take byte slices and return values, `NeedsMoreData`, or a typed error; they never
//! panic on any input (property-tested and fuzzed).

mod bytes;
mod checked_text;
mod forced_compaction;
mod frame;
mod record;
mod scrub_state;
mod segment_digest;
mod segment_header;

pub use bytes::{ByteReader, ByteWriter, ReadError};
pub use forced_compaction::ForcedCompaction;
pub use frame::{
    CrcSeed, DURABLE_GAP_UNIT_BYTES, FRAME_ALIGN_BYTES, FRAME_FLAG_COMMIT_END, FRAME_FLAG_COMMIT_START,
    FRAME_FLAG_RELOCATED, FRAME_HEADER_BYTES, Frame, FrameDecode, FrameError, FrameHeader, add_frame_flags,
    commit_durable_gap, decode_frame, decode_frame_for_aead, encode_frame, finish_frame, frame_checksum_matches,
    frame_encoded_bytes, frame_extent, mark_commit_end, mark_commit_start, set_frame_flags, skip_block_gap,
    verified_frame,
};
pub use record::{
    ACCESS_FIELD_BYTES_MAX, ACCOUNT_SNAPSHOT_PART_BYTES, ACCOUNT_SNAPSHOT_PART_BYTES_MAX, AccessEvent, Flags,
    HASH_BYTES_MAX, KEYWORD_BYTES_MAX, KEYWORDS_MAX, LABEL_BYTES_MAX, MessageReference, NAME_BYTES_MAX, Record,
    RecordKind, appended_digest_and_body, snapshot_records,
};
pub use scrub_state::ScrubState;
pub use segment_digest::SegmentDigest;
pub use segment_header::{SEGMENT_HEADER_BYTES, SegmentHeader, SegmentHeaderError};

/// Direct IO granularity: segment writes start and end on this boundary.
pub const BLOCK_BYTES: usize = 4096;

/// The on-disk format version written in every segment header.
/// Version 2: the footer digest chains frame headers instead of hashing every byte.
/// Version 3: commits overlap on disk; a `COMMIT_START` frame carries its durable gap.
/// Version 4: a commit planned while another is in flight starts on a fresh block, after
/// zeros to the block boundary (`skip_block_gap`).
/// Version 5: an account snapshot over one record is split over `AccountSnapshotPart` records
/// (kind 21), which a version 4 reader would take for damage; this build reads kind 21 in any
/// version.
/// Version 6: frames' CRCs start from a seed of the segment's own (`CrcSeed`), so that a
/// compacted segment's file can be reused for a new segment: the earlier segment's frames left
/// past the new log fail their checksums. Bytes after a footer need not be zeros.
pub const FORMAT_VERSION: u32 = 6;

/// The oldest segment and checkpoint format this build reads: version 2 differs only in never
/// carrying a durable gap (every commit began once the one before it was written).
pub const FORMAT_VERSION_READ_MIN: u32 = 2;

/// Largest record payload accepted on write or read: a 64 MiB message is far beyond what any
/// MTA relays (Postfix defaults to 10 MiB) and bounds memory per record.
/// Record and account ids carry their shard in the bits from here up (docs/format.md §4.1):
/// `shard_id << SHARD_ID_SHIFT | per-shard counter`.
pub const SHARD_ID_SHIFT: u32 = 48;

pub const RECORD_PAYLOAD_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Largest message body a record can hold: the payload limit less room for the metadata, the
/// largest keyword set and the tag.
pub const MESSAGE_BYTES_MAX: usize = RECORD_PAYLOAD_BYTES_MAX - 16 * 1024;

/// Rounds `value` up to a multiple of `align` (a power of two).
pub const fn align_up(value: usize, align: usize) -> usize {
    (value + align - 1) & !(align - 1)
}
