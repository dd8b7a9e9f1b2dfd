//! The `AccountSnapshot` record's payload (one account's whole state, written by compaction and
//! prune) through its only public decoder, `Index::apply`. The frame names the account whose id
//! the payload's first 8 bytes hold, so the id check passes and the decoder runs to the end.
//!
//! An applied snapshot leaves a consistent account (findable by its name and id, recording the
//! snapshot's record id), and it encodes to a snapshot that applies again to the same bytes,
//! also when split over `AccountSnapshotPart` records (format version 5) at any piece size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::{FrameHeader, Record, snapshot_records};
use mailvault_engine::index::{Index, RecordLocation};

const RECORD_ID: u64 = 77;

fn apply(account_id: u64, encoded: Vec<u8>) -> Option<Index> {
    apply_records(account_id, RECORD_ID, vec![Record::AccountSnapshot { encoded }])
}

/// Applies `records` with consecutive record ids from `first_record_id`.
fn apply_records(account_id: u64, first_record_id: u64, records: Vec<Record>) -> Option<Index> {
    let mut index = Index::default();
    for (position, record) in records.into_iter().enumerate() {
        let header = FrameHeader {
            kind: record.kind() as u8,
            flags: 0,
            record_id: first_record_id + position as u64,
            account_id,
            mailbox_id: 0,
            uid: 0,
            payload_length: 0, // not read by apply
        };
        let location = RecordLocation { segment_id: 1, offset: 4096, frame_bytes: 64 };
        index.apply(&header, record, location).ok()?;
    }
    Some(index)
}

fuzz_target!(|input: &[u8]| {
    let account_id = input.first_chunk::<8>().map_or(0, |bytes| u64::from_le_bytes(*bytes));
    let Some(index) = apply(account_id, input.to_vec()) else {
        return;
    };
    let account = index.account(account_id).expect("the snapshot's account is there");
    assert_eq!(account.id, account_id);
    assert_eq!(account.snapshot_record_id, RECORD_ID);
    assert_eq!(index.account_id(&account.name), Some(account_id));
    for (id, mailbox) in &account.mailboxes {
        assert_eq!(mailbox.id, *id);
    }

    let encoded = index.encode_account_snapshot(account_id, |_| true).expect("the account encodes");
    let again = apply(account_id, encoded.clone()).expect("an encoded snapshot applies");
    let encoded_again = again.encode_account_snapshot(account_id, |_| true).expect("the account encodes");
    assert_eq!(encoded_again, encoded, "apply then encode is not a fixed point");

    let records = snapshot_records(encoded.clone(), 1 + input.len() % 97);
    let last_record_id = RECORD_ID + records.len() as u64 - 1;
    let pieced = apply_records(account_id, RECORD_ID, records).expect("a split snapshot applies");
    let account = pieced.account(account_id).expect("the snapshot's account is there");
    assert_eq!(account.snapshot_record_id, last_record_id, "the last record stands for the snapshot");
    let encoded_pieced = pieced.encode_account_snapshot(account_id, |_| true).expect("the account encodes");
    // The encoding holds the snapshot's record id: compare with the whole snapshot at that id.
    let whole = apply_records(account_id, last_record_id, vec![Record::AccountSnapshot { encoded }]);
    let encoded_whole = whole.and_then(|index| index.encode_account_snapshot(account_id, |_| true));
    assert_eq!(Some(encoded_pieced), encoded_whole, "pieces join to another account");
});
