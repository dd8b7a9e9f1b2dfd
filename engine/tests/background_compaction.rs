//! Compaction in the background: a timer finds segments that came to qualify (retention ended)
//! without anyone asking, and a throttled compaction runs while deliveries and reads go on,
//! all of them succeeding and the store matching a model throughout.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestStore;
use mailvault_engine::{Engine, Flags, INBOX, block_on};

const ACCOUNT: &str = "bg@example.org";
const DAY_MS: i64 = 24 * 3600 * 1000;
const BODY_BYTES: usize = 100 * 1024;

fn body(index: usize) -> Vec<u8> {
    let mut body = format!("Subject: background {index}\r\n\r\n").into_bytes();
    body.resize(BODY_BYTES, b'a' + (index % 26) as u8);
    body
}

/// `count` messages, all but every fourth expunged (restorable until the retention window
/// ends). Returns the model (uid → body index) of what stays.
fn store_with_expunged_mail(store: &TestStore, count: usize) -> BTreeMap<u32, usize> {
    let mut setup = store.config.clone();
    setup.compaction_live_ratio = 0.0; // nothing compacts before the test starts
    let engine = Engine::open(&setup, &store.token.hsm).unwrap();
    let mut model = BTreeMap::new();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for index in 0..count {
            let uid = engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
            model.insert(uid, index);
        }
        let expunged: Vec<u32> = model.keys().copied().filter(|uid| uid % 4 != 0).collect();
        engine.expunge(ACCOUNT, INBOX, &expunged).await.unwrap();
        model.retain(|uid, _| uid % 4 == 0);
    });
    model
}

fn check_model(engine: &Engine, model: &BTreeMap<u32, usize>) {
    block_on(async {
        let (_, messages) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
        assert_eq!(
            messages.iter().map(|message| message.uid).collect::<Vec<_>>(),
            model.keys().copied().collect::<Vec<_>>()
        );
        for (uid, index) in model {
            assert_eq!(engine.fetch(ACCOUNT, INBOX, *uid).await.unwrap().body, body(*index), "uid {uid}");
        }
    });
}

fn segment_count(store: &TestStore) -> usize {
    common::segment_paths(store.directory.path(), 0).len()
}

#[test]
fn the_timer_compacts_segments_that_came_to_qualify_without_being_asked() {
    let mut store = TestStore::new(1);
    let model = store_with_expunged_mail(&store, 40);
    store.config.compaction_check_interval = Duration::from_millis(20);
    store.config.compaction_bytes_per_second = None;
    // At the open the expunged mail is still restorable: nothing qualifies. Then the retention
    // window ends with no request and no rotation: only the timer can notice.
    let engine = store.open();
    block_on(engine.list_mailboxes(ACCOUNT)).unwrap();
    let before = segment_count(&store);
    store.clock.advance_ms(15 * DAY_MS);
    let mut compacted = false;
    // Bounded wait for the background work (not a timed assertion).
    for _ in 0..3000 {
        if segment_count(&store) < before / 2 {
            compacted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(compacted, "no background compaction: {} of {before} segments left", segment_count(&store));
    check_model(&engine, &model);
}

#[test]
fn deliveries_and_reads_succeed_while_a_throttled_compaction_runs() {
    let mut store = TestStore::new(1);
    let mut model = store_with_expunged_mail(&store, 48);
    store.clock.advance_ms(15 * DAY_MS); // every sealed segment qualifies at the open
    // Slow enough that the rewrite spans the whole loop below.
    store.config.compaction_bytes_per_second = Some(4 * 1024 * 1024);
    let engine = store.open();
    let before = segment_count(&store);
    let mut seen_counts = vec![before];
    for round in 0..40 {
        let index = 1000 + round;
        let uid = block_on(engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None)).unwrap();
        model.insert(uid, index);
        let (&some_uid, &some_index) = model.iter().nth(round % model.len()).unwrap();
        assert_eq!(block_on(engine.fetch(ACCOUNT, INBOX, some_uid)).unwrap().body, body(some_index));
        seen_counts.push(segment_count(&store));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Compaction made progress while the deliveries went on, and was not finished at once.
    assert!(seen_counts.windows(2).any(|pair| pair[1] < pair[0]), "no segment went away meanwhile: {seen_counts:?}");
    check_model(&engine, &model);
    block_on(engine.compact()).unwrap(); // the rest at full speed
    check_model(&engine, &model);
    drop(engine);
    let engine = store.open();
    check_model(&engine, &model);
}
