//! Turning one record into a frame of the current batch, and applying it to the index.

use crate::crypto::{RecordCipher, TAG_BYTES};
use crate::format::{FRAME_HEADER_BYTES, FrameHeader, Record, finish_frame, snapshot_records};
use crate::index::RecordLocation;
use crate::io::Storage;

use super::{Batch, Shard};

/// Where a record belongs: its frame header's place fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct Place {
    pub account_id: u64,
    pub mailbox_id: u32,
    pub uid: u32,
}

impl<S: Storage> Shard<S> {
    /// Encrypts, frames, and applies one record. `cipher` is the account's key, looked up
    /// before anything of the mutation was emitted.
    pub(super) fn emit(&mut self, batch: &mut Batch, place: Place, record: Record, cipher: &RecordCipher) {
        self.emit_with(batch, place, record, Some(cipher));
    }

    /// [`Self::emit`] for an appended message, handing back its body once sealed into the
    /// batch (`None` if the index refused the record: the shard has failed then).
    pub(super) fn emit_append(
        &mut self,
        batch: &mut Batch,
        place: Place,
        record: Record,
        cipher: &RecordCipher,
    ) -> Option<Vec<u8>> {
        debug_assert!(matches!(record, Record::MessageAppended { .. }));
        self.emit_with(batch, place, record, Some(cipher))
    }

    /// Encrypts, frames and applies an account's snapshot: one record, or several when it is
    /// over `account_snapshot_part_bytes` (`format::snapshot_records`), in this batch.
    pub(super) fn emit_snapshot(
        &mut self,
        batch: &mut Batch,
        account_id: u64,
        encoded: Vec<u8>,
        cipher: &RecordCipher,
    ) {
        let place = Place { account_id, mailbox_id: 0, uid: 0 };
        for record in snapshot_records(encoded, self.config.account_snapshot_part_bytes) {
            self.emit(batch, place, record, cipher);
        }
    }

    /// Frames a record whose kind is stored in the clear (keys, the record-id floor).
    pub(super) fn emit_clear(&mut self, batch: &mut Batch, place: Place, record: Record) {
        debug_assert!(record.kind().is_clear());
        self.emit_with(batch, place, record, None);
    }

    /// Frames `record` into the batch and applies it; answers the message body it carried.
    fn emit_with(
        &mut self,
        batch: &mut Batch,
        place: Place,
        record: Record,
        cipher: Option<&RecordCipher>,
    ) -> Option<Vec<u8>> {
        let record_id = self.next_record_id;
        self.next_record_id += 1;
        let kind = record.kind();
        let cipher = cipher.filter(|_| !kind.is_clear());
        // Encoded straight into the batch: header room, plaintext, sealed in place, tag. A
        // message body is sealed from the request into the batch, not copied there first.
        let (frames, first_frame_at) = batch.frames.vector_mut();
        let frame_start = frames.len();
        frames.resize(frame_start + FRAME_HEADER_BYTES, 0);
        let body = record.encode_head_into(frames);
        let head_end = frames.len();
        let plaintext_bytes = head_end - frame_start - FRAME_HEADER_BYTES + body.len();
        let tag_bytes = if cipher.is_some() { TAG_BYTES } else { 0 };
        let header = FrameHeader {
            kind: kind as u8,
            flags: 0,
            record_id,
            account_id: place.account_id,
            mailbox_id: place.mailbox_id,
            uid: place.uid,
            payload_length: (plaintext_bytes + tag_bytes) as u32,
        };
        match cipher {
            Some(cipher) => {
                frames.resize(head_end + body.len() + TAG_BYTES, 0);
                let (head, tail_out) = frames[frame_start + FRAME_HEADER_BYTES..]
                    .split_at_mut(head_end - frame_start - FRAME_HEADER_BYTES);
                cipher.seal_scattered(&header, head, body, tail_out);
            }
            None => frames.extend_from_slice(body),
        }
        finish_frame(&header, self.active.crc_seed(), frames, frame_start);
        let frame_bytes = (frames.len() - frame_start) as u32;
        let frame_start = frame_start - first_frame_at; // from here on, a position in the batch
        let location = RecordLocation {
            segment_id: self.active.segment_id(),
            offset: self.active.log_end() + frame_start as u64,
            frame_bytes,
        };
        batch.last_frame_start = frame_start;
        batch.frame_count += 1;
        if kind.is_clear() {
            return None; // not index state: the key table was filled when the key was made
        }
        match self.index.apply(&header, record, location) {
            Ok(body) => body,
            Err(error) => {
                // Validation ran before any record was made, so this is a bug; stop before the
                // index and the log drift further apart (the batch is not written).
                tracing::error!(shard = self.config.shard_id, %error, "index rejected a validated record");
                self.failure = Some(format!("internal error: {error}"));
                None
            }
        }
    }
}
