//! `Index::blob_usage` and `Index::segment_usage` against a plain recount: the pass keeps its
//! set of live ids as bits over their range (or hashed, where the range is sparse) and sums
//! bodies run by run, and must come to what counting every message one by one gives.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::test_records::{Place, apply_record};
use super::{Index, RecordLocation, SegmentUsage};
use crate::api::INBOX;
use crate::format::{Flags, Record};

const ACCOUNT_ID: u64 = 1;
const INBOX_ID: u32 = 1;
const RETENTION_MS: i64 = 1_000;

struct Store {
    index: Index,
    next_record_id: u64,
    uids: Vec<u32>,
    next_uid: u32,
}

impl Store {
    fn new() -> Self {
        let mut store = Self { index: Index::default(), next_record_id: 1, uids: Vec::new(), next_uid: 1 };
        store.apply(0, Record::AccountCreated { name: "alice@example.org".to_owned(), created_unix_ms: 0 }, 1);
        store.apply(0, Record::MailboxCreated { name: INBOX.to_owned(), uid_validity: 1 }, 1);
        store
    }

    fn apply(&mut self, uid: u32, record: Record, segment_id: u64) {
        let record_id = self.next_record_id;
        self.next_record_id += 1;
        // Frames of a few sizes, so that a body counted in the wrong segment shows.
        let frame_bytes = 4096 + (record_id % 7) as u32;
        let location = RecordLocation { segment_id, offset: record_id * 4096, frame_bytes };
        let place = Place { account_id: ACCOUNT_ID, mailbox_id: INBOX_ID, uid, location };
        apply_record(&mut self.index, record_id, record, place);
    }

    fn nth_uid(&self, nth: usize) -> Option<u32> {
        (!self.uids.is_empty()).then(|| self.uids[nth % self.uids.len()])
    }

    fn new_uid(&mut self) -> u32 {
        let uid = self.next_uid;
        self.next_uid += 1;
        self.uids.push(uid);
        uid
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// An append, after `skipped` record ids went to other records (a sparse range).
    Append {
        segment_id: u64,
        skipped: u64,
    },
    /// A copy of the `nth` message, sharing its body.
    Copy {
        nth: usize,
    },
    Expunge {
        nth: usize,
        at_unix_ms: i64,
    },
    Move {
        nth: usize,
        segment_id: u64,
    },
    ForgetSegment {
        segment_id: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..4_u64, prop_oneof![Just(0_u64), 0..100_u64, 0..100_000_u64])
            .prop_map(|(segment_id, skipped)| Step::Append { segment_id, skipped }),
        1 => any::<usize>().prop_map(|nth| Step::Copy { nth }),
        2 => (any::<usize>(), 0..3_000_i64).prop_map(|(nth, at_unix_ms)| Step::Expunge { nth, at_unix_ms }),
        1 => (any::<usize>(), 0..6_u64).prop_map(|(nth, segment_id)| Step::Move { nth, segment_id }),
        1 => (0..6_u64).prop_map(|segment_id| Step::ForgetSegment { segment_id }),
    ]
}

/// The pass's answer, counted the plain way: every message, every deleted message, every body.
fn recount(index: &Index, now_unix_ms: i64) -> BTreeMap<u64, (u64, u64, Option<i64>)> {
    let account = index.account(ACCOUNT_ID).expect("the account");
    let live: BTreeSet<u64> = account
        .mailboxes
        .values()
        .flat_map(|mailbox| mailbox.messages.values())
        .map(|entry| entry.message.blob_record_id)
        .collect();
    let mut retained = BTreeMap::<u64, i64>::new();
    for deleted in &account.deleted {
        let until = deleted.expunged_unix_ms + RETENTION_MS;
        let blob = deleted.entry.message.blob_record_id;
        if until > now_unix_ms && !live.contains(&blob) {
            let hold = retained.entry(blob).or_insert(until);
            *hold = (*hold).max(until);
        }
    }
    let mut segments = BTreeMap::<u64, (u64, u64, Option<i64>)>::new();
    for (record_id, location) in index.blobs() {
        let segment = segments.entry(location.segment_id).or_default();
        if live.contains(record_id) {
            segment.0 += u64::from(location.frame_bytes);
        } else if let Some(until) = retained.get(record_id) {
            segment.1 += u64::from(location.frame_bytes);
            segment.2 = Some(segment.2.map_or(*until, |held| held.max(*until)));
        }
    }
    segments
}

proptest! {
    /// Whatever appends (in dense or sparse id ranges), copies, expunges, moves and forgotten
    /// segments came before, each segment's live and retained bytes and its last hold are
    /// those of a plain recount.
    #[test]
    fn the_pass_counts_what_a_plain_recount_counts(
        steps in prop::collection::vec(step(), 1..80),
        now_unix_ms in 0..4_000_i64,
    ) {
        let mut store = Store::new();
        for step in steps {
            match step {
                Step::Append { segment_id, skipped } => {
                    store.next_record_id += skipped;
                    let uid = store.new_uid();
                    let body = Record::MessageAppended {
                        internal_date_unix_ms: 0,
                        flags: Flags::default(),
                        digest: [7; 32],
                        body: Vec::new(),
                    };
                    store.apply(uid, body, segment_id);
                }
                Step::Copy { nth } => {
                    if let Some(source) = store.nth_uid(nth) {
                        let entry = store.index.account(ACCOUNT_ID).and_then(|account| account.mailbox(INBOX)).and_then(|inbox| inbox.messages.get(source)).cloned().expect("the source");
                        let uid = store.new_uid();
                        store.apply(uid, Record::MessageCopied { message: entry.message, flags: entry.flags }, 5);
                    }
                }
                Step::Expunge { nth, at_unix_ms } => {
                    if let Some(uid) = store.nth_uid(nth) {
                        store.uids.retain(|kept| *kept != uid);
                        store.apply(uid, Record::MessageExpunged { at_unix_ms }, 5);
                    }
                }
                Step::Move { nth, segment_id } => {
                    if let Some(uid) = store.nth_uid(nth) {
                        let inbox = store.index.account(ACCOUNT_ID).and_then(|account| account.mailbox(INBOX));
                        let blob = inbox.and_then(|inbox| inbox.messages.get(uid)).expect("the message").message.blob_record_id;
                        let location = RecordLocation { segment_id, offset: store.next_record_id * 4096, frame_bytes: 5000 };
                        store.index.relocate_blob(blob, location);
                    }
                }
                Step::ForgetSegment { segment_id } => store.index.forget_blobs_in(segment_id),
            }
        }
        let usage = store.index.blob_usage(now_unix_ms, RETENTION_MS);
        let counted: BTreeMap<u64, (u64, u64, Option<i64>)> = store
            .index
            .segment_usage(&usage)
            .into_iter()
            .map(|(segment_id, SegmentUsage { live_bytes, retained_bytes, retained_until_unix_ms })| {
                (segment_id, (live_bytes, retained_bytes, retained_until_unix_ms))
            })
            .collect();
        prop_assert_eq!(counted, recount(&store.index, now_unix_ms));
    }
}
