//! `Index::body_location`: the location a message entry remembers is used only while it is
//! still the blob table's.

use proptest::prelude::*;

use super::test_records::{Place, apply_record};
use super::{BlobLocation, Index, MessageEntry, RecordLocation};
use crate::api::INBOX;
use crate::format::{Flags, MessageReference, Record};

const ACCOUNT_ID: u64 = 1;
const INBOX_ID: u32 = 1;

/// An index with one account and its INBOX, and the record id the next record gets.
fn index_with_an_inbox() -> (Index, u64) {
    let mut index = Index::default();
    let mut next_record_id = 1;
    let created = Record::AccountCreated { name: "alice@example.org".to_owned(), created_unix_ms: 0 };
    apply(&mut index, &mut next_record_id, 0, created, 1);
    let inbox = Record::MailboxCreated { name: INBOX.to_owned(), uid_validity: 1 };
    apply(&mut index, &mut next_record_id, 0, inbox, 1);
    (index, next_record_id)
}

/// Applies `record` for message `uid` of the INBOX, at segment `segment_id`; answers its record id.
fn apply(index: &mut Index, next_record_id: &mut u64, uid: u32, record: Record, segment_id: u64) -> u64 {
    let record_id = *next_record_id;
    *next_record_id += 1;
    let location = RecordLocation { segment_id, offset: record_id * 4096, frame_bytes: 4096 };
    apply_record(index, record_id, record, Place { account_id: ACCOUNT_ID, mailbox_id: INBOX_ID, uid, location });
    record_id
}

fn appended() -> Record {
    Record::MessageAppended { internal_date_unix_ms: 0, flags: Flags::default(), digest: [7; 32], body: Vec::new() }
}

fn entry(index: &Index, uid: u32) -> &MessageEntry {
    let inbox = index.account(ACCOUNT_ID).and_then(|account| account.mailbox(INBOX));
    match inbox.and_then(|inbox| inbox.messages.get(uid)) {
        Some(entry) => entry,
        None => panic!("uid {uid} is not in the INBOX"),
    }
}

fn table_location(index: &Index, entry: &MessageEntry) -> Option<BlobLocation> {
    index.blob(entry.message.blob_record_id).copied()
}

#[test]
fn a_moved_body_is_found_at_its_new_place_not_where_its_entry_last_saw_it() {
    let (mut index, mut next_record_id) = index_with_an_inbox();
    let record_id = apply(&mut index, &mut next_record_id, 1, appended(), 3);
    let before = index.body_location(entry(&index, 1));
    assert_eq!(before.map(|location| location.segment_id), Some(3));

    let moved = RecordLocation { segment_id: 9, offset: 8192, frame_bytes: 4096 };
    index.relocate_blob(record_id, moved);

    let after = index.body_location(entry(&index, 1));
    assert_eq!(after, Some(BlobLocation { segment_id: 9, offset: 8192, frame_bytes: 4096 }));
}

#[test]
fn a_forgotten_body_is_not_found_through_the_place_its_entry_last_saw() {
    let (mut index, mut next_record_id) = index_with_an_inbox();
    apply(&mut index, &mut next_record_id, 1, appended(), 3);
    assert!(index.body_location(entry(&index, 1)).is_some());

    index.forget_blobs_in(3);

    assert_eq!(index.body_location(entry(&index, 1)), None);
}

#[test]
fn a_place_remembered_at_the_last_change_count_is_never_trusted() {
    let (index, _) = index_with_an_inbox();
    let entry = MessageEntry::new(
        MessageReference { blob_record_id: 5, size: 0, internal_date_unix_ms: 0, digest: [0; 32] },
        Flags::default(),
    );
    let location = BlobLocation { segment_id: 2, offset: 0, frame_bytes: 4096 };
    entry.remember_body(location, u64::MAX);
    assert_eq!(entry.body_hint(u64::MAX), None);
    entry.remember_body(location, 4);
    assert_eq!(entry.body_hint(4), Some(location));
    assert_eq!(entry.body_hint(5), None);
    // The table has no body 5: nothing remembered stands in for it.
    assert_eq!(index.body_location(&entry), None);
}

#[test]
fn entries_that_differ_only_in_what_they_remember_are_equal() {
    let message = MessageReference { blob_record_id: 5, size: 10, internal_date_unix_ms: 1, digest: [1; 32] };
    let looked_up = MessageEntry::new(message.clone(), Flags::default());
    looked_up.remember_body(BlobLocation { segment_id: 2, offset: 0, frame_bytes: 4096 }, 0);
    assert_eq!(looked_up, MessageEntry::new(message, Flags::default()));
}

#[derive(Debug, Clone)]
enum Step {
    Append {
        segment_id: u64,
    },
    /// A copy of the `nth` message (modulo those there), sharing its body.
    Copy {
        nth: usize,
    },
    /// The body of the `nth` message moves to `segment_id`.
    Move {
        nth: usize,
        segment_id: u64,
    },
    ForgetSegment {
        segment_id: u64,
    },
    /// A fetch of the `nth` message looks its body up (and its entry remembers it).
    Look {
        nth: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4_u64).prop_map(|segment_id| Step::Append { segment_id }),
        any::<usize>().prop_map(|nth| Step::Copy { nth }),
        (any::<usize>(), 0..6_u64).prop_map(|(nth, segment_id)| Step::Move { nth, segment_id }),
        (0..6_u64).prop_map(|segment_id| Step::ForgetSegment { segment_id }),
        any::<usize>().prop_map(|nth| Step::Look { nth }),
    ]
}

proptest! {
    /// Whatever appends, copies, moves, forgotten segments and lookups come in whatever order,
    /// every message's body is found where the blob table places it (or not at all).
    #[test]
    fn a_body_is_always_found_where_the_table_places_it(steps in prop::collection::vec(step(), 1..60)) {
        let (mut index, mut next_record_id) = index_with_an_inbox();
        let mut uids: Vec<u32> = Vec::new();
        for step in steps {
            let nth_uid = |nth: usize| (!uids.is_empty()).then(|| uids[nth % uids.len()]);
            match step {
                Step::Append { segment_id } => {
                    let uid = uids.len() as u32 + 1;
                    apply(&mut index, &mut next_record_id, uid, appended(), segment_id);
                    uids.push(uid);
                }
                Step::Copy { nth } => {
                    if let Some(source) = nth_uid(nth) {
                        let uid = uids.len() as u32 + 1;
                        let MessageEntry { message, flags, .. } = entry(&index, source).clone();
                        apply(&mut index, &mut next_record_id, uid, Record::MessageCopied { message, flags }, 5);
                        uids.push(uid);
                    }
                }
                Step::Move { nth, segment_id } => {
                    if let Some(uid) = nth_uid(nth) {
                        let record_id = entry(&index, uid).message.blob_record_id;
                        let offset = next_record_id * 4096;
                        next_record_id += 1;
                        index.relocate_blob(record_id, RecordLocation { segment_id, offset, frame_bytes: 4096 });
                    }
                }
                Step::ForgetSegment { segment_id } => index.forget_blobs_in(segment_id),
                Step::Look { nth } => {
                    if let Some(uid) = nth_uid(nth) {
                        index.body_location(entry(&index, uid));
                    }
                }
            }
            for uid in &uids {
                let entry = entry(&index, *uid);
                prop_assert_eq!(index.body_location(entry), table_location(&index, entry), "uid {}", uid);
            }
        }
    }
}
