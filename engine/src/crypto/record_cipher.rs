//! Seals and opens record payloads with one account's data key.
//!
//! Nonce: the record id (8 bytes, little-endian) then four zero bytes. Record ids never repeat
//! within a store (see `shard::recovery`), and a data key belongs to one account, so no nonce
//! is ever used twice under one key. Associated data: the frame header's authenticated bytes
//! (kind, record id, account, mailbox, uid).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use mailvault_hsm::Dek;

use crate::format::FrameHeader;

pub const TAG_BYTES: usize = 16;

/// An account's data key, expanded for AES-256-GCM. aws-lc cleanses the key schedule on drop.
pub struct RecordCipher {
    key: LessSafeKey,
}

impl std::fmt::Debug for RecordCipher {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RecordCipher(<redacted>)")
    }
}

/// The payload does not authenticate under this key and header: tampered, moved, or another
/// account's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("record does not authenticate (tampered, moved, or wrong key)")]
pub struct RecordOpenError;

pub fn record_nonce(record_id: u64) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..8].copy_from_slice(&record_id.to_le_bytes());
    nonce
}

impl RecordCipher {
    pub fn new(dek: &Dek) -> Self {
        // A 32-byte key is always a valid AES-256 key, so construction cannot fail.
        let key = UnboundKey::new(&AES_256_GCM, dek.as_bytes())
            .map_or_else(|_| unreachable!("a 32-byte key is a valid AES-256-GCM key"), LessSafeKey::new);
        Self { key }
    }

    /// Encrypts `plaintext` in place and appends the tag; `header.payload_length` must already
    /// be `plaintext.len() + TAG_BYTES` (it is not authenticated, the CRC covers it).
    pub fn seal(&self, header: &FrameHeader, plaintext: &mut Vec<u8>) {
        let tag = self.seal_in_place(header, plaintext);
        plaintext.extend_from_slice(&tag);
    }

    /// Encrypts `plaintext` in place and returns the tag that follows it in the frame.
    pub fn seal_in_place(&self, header: &FrameHeader, plaintext: &mut [u8]) -> [u8; TAG_BYTES] {
        let nonce = Nonce::assume_unique_for_key(record_nonce(header.record_id));
        let associated = header.associated_data();
        // Sealing fails only past GCM's 64 GiB limit; record payloads are bounded far below.
        let Ok(tag) = self.key.seal_in_place_separate_tag(nonce, Aad::from(&associated), plaintext) else {
            unreachable!("sealed inputs are bounded far below the AES-GCM limit");
        };
        let mut bytes = [0; TAG_BYTES];
        bytes.copy_from_slice(tag.as_ref());
        bytes
    }

    /// Seals the payload `head` ‖ `tail` as [`Self::seal_in_place`] would, without copying
    /// `tail` first: `head` is encrypted in place, `tail` is read where it lies and encrypted
    /// into `tail_out_and_tag`, which must be `tail.len() + TAG_BYTES` long and ends with the tag.
    pub fn seal_scattered(&self, header: &FrameHeader, head: &mut [u8], tail: &[u8], tail_out_and_tag: &mut [u8]) {
        assert_eq!(tail_out_and_tag.len(), tail.len() + TAG_BYTES, "a sealed tail is followed by its tag");
        let nonce = Nonce::assume_unique_for_key(record_nonce(header.record_id));
        let associated = header.associated_data();
        // With the lengths checked above, sealing fails only past GCM's 64 GiB limit.
        let Ok(()) = self.key.seal_in_place_scatter(nonce, Aad::from(&associated), head, tail, tail_out_and_tag) else {
            unreachable!("sealed inputs are bounded far below the AES-GCM limit");
        };
    }

    /// Decrypts and authenticates a frame payload, returning the plaintext.
    pub fn open(&self, header: &FrameHeader, payload: Vec<u8>) -> Result<Vec<u8>, RecordOpenError> {
        self.open_with(record_nonce(header.record_id), &header.associated_data(), payload)
    }

    /// Seals `plaintext` in place with an explicit nonce and associated data, returning the tag
    /// (checkpoints: a fresh key each time, so nonce 0 is used once).
    pub fn seal_with(&self, nonce: [u8; 12], associated: &[u8], plaintext: &mut [u8]) -> [u8; TAG_BYTES] {
        let nonce = Nonce::assume_unique_for_key(nonce);
        // Sealing fails only past GCM's 64 GiB limit; callers bound their inputs far below.
        let Ok(tag) = self.key.seal_in_place_separate_tag(nonce, Aad::from(associated), plaintext) else {
            unreachable!("sealed inputs are bounded far below the AES-GCM limit");
        };
        let mut bytes = [0; TAG_BYTES];
        bytes.copy_from_slice(tag.as_ref());
        bytes
    }

    /// Decrypts and authenticates a frame payload where it lies, answering the plaintext: the
    /// payload less its tag.
    pub fn open_in_place<'a>(
        &self,
        header: &FrameHeader,
        payload: &'a mut [u8],
    ) -> Result<&'a mut [u8], RecordOpenError> {
        let nonce = Nonce::assume_unique_for_key(record_nonce(header.record_id));
        self.key.open_in_place(nonce, Aad::from(&header.associated_data()), payload).map_err(|_| RecordOpenError)
    }

    /// Decrypts and authenticates a frame payload (ciphertext then tag) into `plaintext`, which
    /// must be the payload's length less the tag, leaving the payload as it was (so a payload
    /// that fails can still be checked against its frame's checksum).
    pub fn open_into(&self, header: &FrameHeader, payload: &[u8], plaintext: &mut [u8]) -> Result<(), RecordOpenError> {
        let ciphertext_length = payload.len().checked_sub(TAG_BYTES).ok_or(RecordOpenError)?;
        if plaintext.len() != ciphertext_length {
            return Err(RecordOpenError);
        }
        let (ciphertext, tag) = payload.split_at(ciphertext_length);
        let nonce = Nonce::assume_unique_for_key(record_nonce(header.record_id));
        let associated = header.associated_data();
        self.key
            .open_separate_gather(nonce, Aad::from(&associated), ciphertext, tag, plaintext)
            .map_err(|_| RecordOpenError)
    }

    pub fn open_with(
        &self,
        nonce: [u8; 12],
        associated: &[u8],
        mut payload: Vec<u8>,
    ) -> Result<Vec<u8>, RecordOpenError> {
        let nonce = Nonce::assume_unique_for_key(nonce);
        let plaintext_length =
            self.key.open_in_place(nonce, Aad::from(associated), &mut payload).map_err(|_| RecordOpenError)?.len();
        payload.truncate(plaintext_length);
        Ok(payload)
    }
}
