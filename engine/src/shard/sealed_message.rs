//! A fetched message as the shard hands it over: its frame read from disk and checked to be
//! the record the index names, still sealed. The caller opens it on its own thread
//! ([`SealedMessage::open`]): decryption is the largest share of a fetch's CPU that does not
//! need the shard's state, and a shard serves every fetch of its accounts one after the other
//! (bench/README.md, session 14).

use std::sync::Arc;

use crate::api::{Message, MessageInfo};
use crate::crypto::{RecordCipher, TAG_BYTES};
use crate::error::EngineError;
use crate::format::{CrcSeed, FRAME_HEADER_BYTES, FrameHeader, appended_digest_and_body, frame_checksum_matches};
use crate::io::ReadBytes;

pub(crate) struct SealedMessage {
    pub(super) info: MessageInfo,
    pub(super) header: FrameHeader,
    /// The frame's header and payload (ciphertext, then tag), in the buffer it was read into.
    pub(super) frame: ReadBytes,
    /// The segment it was read from: its CRC seed depends on it (format version 6).
    pub(super) segment_id: u64,
    pub(super) cipher: Arc<RecordCipher>,
}

impl std::fmt::Debug for SealedMessage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SealedMessage").field("uid", &self.info.uid).finish_non_exhaustive()
    }
}

impl SealedMessage {
    /// Decrypts and authenticates the body, and checks that the digest stored with it is the
    /// index's. Neither the body's hash nor the frame's CRC is computed: the tag authenticates
    /// the body, its stored digest and the header fields that matter; the CRC is consulted
    /// only when the tag fails, to report damage as damage.
    pub(crate) fn open(self) -> Result<Message, EngineError> {
        let Self { info, header, frame, segment_id, cipher } = self;
        let corrupt = |what: &str| EngineError::Corrupt(format!("message uid {}: {what}", info.uid));
        let payload = frame.get(FRAME_HEADER_BYTES..).unwrap_or_default();
        let mut plaintext = vec![0; payload.len().saturating_sub(TAG_BYTES)];
        if cipher.open_into(&header, payload, &mut plaintext).is_err() {
            // The segment's format version is not at hand here; its frames' CRCs start from one
            // of these two seeds, and a frame that matches neither is damaged.
            let seeds = [CrcSeed::UNSEEDED, CrcSeed::of_segment(segment_id)];
            let crc_matches = seeds.into_iter().any(|seed| frame_checksum_matches(&frame, seed));
            let what = if crc_matches { "payload fails authentication" } else { "frame checksum mismatch" };
            return Err(corrupt(what));
        }
        let Ok((digest, body)) = appended_digest_and_body(&plaintext) else {
            return Err(corrupt("record does not decode"));
        };
        if digest != info.digest {
            return Err(corrupt("body digest differs from the index's"));
        }
        let prefix_length = plaintext.len() - body.len();
        plaintext.drain(..prefix_length);
        Ok(Message { info, body: plaintext })
    }
}

#[cfg(test)]
mod tests {
    use mailvault_hsm::Dek;

    use super::*;
    use crate::format::{Flags, Record, RecordKind, encode_frame};

    const BODY: &[u8] = b"Subject: sealed\r\n\r\nopened by the caller";
    /// A format 6 segment: its frames' CRCs start from its own seed.
    const SEGMENT_ID: u64 = 12;

    fn info(digest: [u8; 32]) -> MessageInfo {
        MessageInfo { uid: 7, flags: Flags::default(), size: BODY.len() as u64, internal_date_unix_ms: 1, digest }
    }

    /// A stored message's frame, sealed under `key`, as the shard reads it.
    fn sealed(key: [u8; 32], stored_digest: [u8; 32]) -> SealedMessage {
        sealed_body(key, BODY, stored_digest)
    }

    fn sealed_body(key: [u8; 32], body: &[u8], stored_digest: [u8; 32]) -> SealedMessage {
        let cipher = Arc::new(RecordCipher::new(&Dek::from_bytes(key)));
        let record = Record::MessageAppended {
            internal_date_unix_ms: 1,
            flags: Flags::default(),
            digest: stored_digest,
            body: body.to_vec(),
        };
        let mut payload = record.encode();
        let header = FrameHeader {
            kind: RecordKind::MessageAppended as u8,
            flags: 0,
            record_id: 42,
            account_id: 3,
            mailbox_id: 1,
            uid: 7,
            payload_length: (payload.len() + TAG_BYTES) as u32,
        };
        cipher.seal(&header, &mut payload);
        let mut frame = Vec::new();
        encode_frame(&header, &payload, CrcSeed::of_segment(SEGMENT_ID), &mut frame);
        frame.truncate(FRAME_HEADER_BYTES + payload.len());
        SealedMessage {
            info: info(stored_digest),
            header,
            frame: ReadBytes::from_vec(frame),
            segment_id: SEGMENT_ID,
            cipher,
        }
    }

    fn refusal(message: SealedMessage) -> String {
        match message.open() {
            Err(EngineError::Corrupt(what)) => what,
            other => panic!("expected a corrupt message, got {other:?}"),
        }
    }

    #[test]
    fn a_sealed_message_opens_to_its_body() {
        let digest = *blake3::hash(BODY).as_bytes();
        let message = sealed([1; 32], digest).open().unwrap();
        assert_eq!(message.body, BODY);
        assert_eq!(message.info.digest, digest);
    }

    /// The record's prefix (date, flags, digest) is gone from every body, whatever its size.
    #[test]
    fn messages_of_any_size_open_to_exactly_their_bodies() {
        for length in [1_usize << 20, 5000, 17, 0] {
            let body: Vec<u8> = (0..length).map(|index| (index % 251) as u8 + 1).collect();
            let opened = match sealed_body([1; 32], &body, *blake3::hash(&body).as_bytes()).open() {
                Ok(message) => message.body,
                Err(error) => panic!("a {length}-byte message does not open: {error}"),
            };
            assert_eq!(opened, body, "{length} bytes");
        }
    }

    #[test]
    fn damage_is_told_from_a_payload_that_does_not_authenticate() {
        let digest = *blake3::hash(BODY).as_bytes();
        let mut damaged = sealed([1; 32], digest);
        let last = damaged.frame.len() - 1;
        damaged.frame[last] ^= 1;
        assert!(refusal(damaged).contains("frame checksum mismatch"));
        let mut under_another_key = sealed([2; 32], digest);
        under_another_key.cipher = Arc::new(RecordCipher::new(&Dek::from_bytes([1; 32])));
        assert!(refusal(under_another_key).contains("payload fails authentication"));
        let mut other_digest = sealed([1; 32], digest);
        other_digest.info.digest = [9; 32];
        assert!(refusal(other_digest).contains("body digest differs"));
    }
}
