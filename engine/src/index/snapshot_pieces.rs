//! The leading pieces of an account snapshot over one record (`AccountSnapshotPart`, format
//! version 5), held until the `AccountSnapshot` after them joins them into the encoded account.
//!
//! The writer emits the pieces and the snapshot with consecutive record ids in one commit, so a
//! replay that sees the snapshot has seen its pieces just before it. Pieces that do not run on
//! from the ones held, or that no snapshot follows, are never joined to anything: a snapshot
//! joins only the pieces whose ids lead up to its own.

use std::collections::HashMap;

#[derive(Default)]
pub(super) struct SnapshotPieces {
    by_account: HashMap<u64, Pieces>,
}

struct Pieces {
    /// The record id the next piece, or the snapshot, must have.
    next_record_id: u64,
    bytes: Vec<u8>,
}

impl SnapshotPieces {
    pub(super) fn add(&mut self, account_id: u64, record_id: u64, piece: &[u8]) {
        let pieces =
            self.by_account.entry(account_id).or_insert(Pieces { next_record_id: record_id, bytes: Vec::new() });
        if pieces.next_record_id != record_id {
            pieces.bytes.clear(); // not a continuation: earlier pieces belong to no snapshot
        }
        pieces.bytes.extend_from_slice(piece);
        pieces.next_record_id = record_id + 1;
    }

    /// The whole encoded account whose last piece is `last` (record `record_id`).
    pub(super) fn join(&mut self, account_id: u64, record_id: u64, last: Vec<u8>) -> Vec<u8> {
        match self.by_account.remove(&account_id) {
            Some(mut pieces) if pieces.next_record_id == record_id => {
                pieces.bytes.extend_from_slice(&last);
                pieces.bytes
            }
            _ => last,
        }
    }

    pub(super) fn forget(&mut self, account_id: u64) {
        self.by_account.remove(&account_id);
    }
}

/// Sizes only: the pieces are an account's plaintext state (password hashes among it).
impl std::fmt::Debug for SnapshotPieces {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_map()
            .entries(self.by_account.iter().map(|(account_id, pieces)| (account_id, pieces.bytes.len())))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_with_consecutive_ids_join_the_snapshot_after_them() {
        let mut pieces = SnapshotPieces::default();
        pieces.add(7, 100, b"ab");
        pieces.add(7, 101, b"cd");
        pieces.add(8, 102, b"other account");
        assert_eq!(pieces.join(7, 102, b"ef".to_vec()), b"abcdef");
        assert_eq!(pieces.join(7, 103, b"alone".to_vec()), b"alone", "joined pieces are gone");
    }

    #[test]
    fn pieces_that_do_not_lead_up_to_the_snapshot_are_left_out() {
        let mut pieces = SnapshotPieces::default();
        pieces.add(7, 100, b"stale");
        pieces.add(7, 105, b"ab");
        assert_eq!(pieces.join(7, 106, b"c".to_vec()), b"abc", "a gap starts the pieces over");
        pieces.add(7, 200, b"never joined");
        assert_eq!(pieces.join(7, 300, b"x".to_vec()), b"x", "a snapshot joins only the pieces right before it");
        pieces.add(7, 400, b"purged");
        pieces.forget(7);
        assert_eq!(pieces.join(7, 401, b"y".to_vec()), b"y");
    }
}
