//! Unit tests build indexes as replay does, one record at a time.

use super::{Index, RecordLocation};
use crate::format::{FRAME_FLAG_COMMIT_END, FrameHeader, Record};

/// Where a record of `account_id`'s mailbox `mailbox_id` (message `uid`, 0 for none) goes.
#[derive(Clone, Copy)]
pub(super) struct Place {
    pub account_id: u64,
    pub mailbox_id: u32,
    pub uid: u32,
    pub location: RecordLocation,
}

/// Applies `record` as record `record_id` at `place`, as replay would; a refusal fails the test.
pub(super) fn apply_record(index: &mut Index, record_id: u64, record: Record, place: Place) {
    let header = FrameHeader {
        kind: record.kind() as u8,
        flags: FRAME_FLAG_COMMIT_END,
        record_id,
        account_id: place.account_id,
        mailbox_id: place.mailbox_id,
        uid: place.uid,
        payload_length: 0,
    };
    if let Err(error) = index.apply(&header, record, place.location) {
        panic!("applying record {record_id}: {error}");
    }
}
