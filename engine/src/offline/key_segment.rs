//! A segment image holding one commit of `KeyWrapped` records (and `AccountPurged` records)
//! and nothing else: what a restore appends after the copied segments so that the restored
//! store has every account's key wrapped under the current KEK (the copies in the backup's
//! segments may be under a KEK that rotation has since destroyed), and knows the accounts whose
//! key the backup no longer has were purged (a backup taken before a purge holds their records
//! but, once re-keyed, not their key: without the record the restored store could not open).
//!
//! It is an ordinary active segment (docs/format.md §2): header block, frames from offset
//! 4096, zero padding to a whole block. The engine resumes it as the active segment on open.

use mailvault_hsm::WrappedDek;

use crate::format::{
    BLOCK_BYTES, FRAME_FLAG_COMMIT_END, FRAME_FLAG_COMMIT_START, FrameHeader, Record, RecordKind, SegmentHeader,
    add_frame_flags, align_up, encode_frame,
};

/// The bytes of segment `segment_id` of shard `shard_id`, holding `keys` as `KeyWrapped`
/// records with record ids from `first_record_id` on (above every id in the shard's log, so
/// that they are current; they are in the clear, so their ids are no nonces).
pub fn key_segment_image(
    shard_id: u32,
    segment_id: u64,
    created_unix_ms: i64,
    first_record_id: u64,
    keys: &[(u64, WrappedDek)],
    purged: &[u64],
) -> Vec<u8> {
    let mut image = vec![0; BLOCK_BYTES];
    let header = SegmentHeader::new(shard_id, segment_id, created_unix_ms).encode();
    image[..header.len()].copy_from_slice(&header);
    let purged_record = Record::AccountPurged { at_unix_ms: created_unix_ms }.encode();
    let records = keys
        .iter()
        .map(|(account_id, wrapped)| (RecordKind::KeyWrapped, *account_id, wrapped.to_bytes()))
        .chain(purged.iter().map(|account_id| (RecordKind::AccountPurged, *account_id, purged_record.clone())));
    let mut last_frame_start = image.len();
    for (position, (kind, account_id, payload)) in records.enumerate() {
        let frame = FrameHeader {
            kind: kind as u8,
            flags: 0,
            record_id: first_record_id + position as u64,
            account_id,
            mailbox_id: 0,
            uid: 0,
            payload_length: payload.len() as u32,
        };
        last_frame_start = image.len();
        encode_frame(&frame, &payload, &mut image);
    }
    if !keys.is_empty() || !purged.is_empty() {
        add_frame_flags(&mut image[BLOCK_BYTES..], FRAME_FLAG_COMMIT_START);
        add_frame_flags(&mut image[last_frame_start..], FRAME_FLAG_COMMIT_END);
    }
    image.resize(align_up(image.len(), BLOCK_BYTES), 0);
    image
}
