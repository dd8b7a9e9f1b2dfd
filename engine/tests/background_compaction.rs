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

/// Distinct record ids of the message bodies in the shard's segment files.
fn bodies_on_disk(store: &TestStore) -> std::collections::BTreeSet<u64> {
    let body_kind = mailvault_engine::format::RecordKind::MessageAppended as u8;
    common::segment_paths(store.directory.path(), 0)
        .iter()
        .flat_map(|path| common::frame_spans(&std::fs::read(path).unwrap()))
        .filter(|span| span.header.kind == body_kind)
        .map(|span| span.header.record_id)
        .collect()
}

/// Regression: a prune that arrives while compaction is part way through a victim (or has the
/// next one read ahead) must drop the pruned bodies from it. The job kept the usage it started
/// under, in which the pruned mail was still restorable, and copied those bodies into the
/// active segment, where nothing forced them out: prune's promise (the ciphertext leaves every
/// file) was broken until that segment was compacted one day.
#[test]
fn a_prune_during_a_compaction_job_drops_the_pruned_bodies_instead_of_moving_them() {
    let mut store = TestStore::new(1);
    // Two sealed 12 MiB segments: a job copies its first 8 MiB step and then waits for budget.
    store.config.segment_bytes_max = 12 * 1024 * 1024;
    let mut setup = store.config.clone();
    setup.compaction_live_ratio = 0.0;
    let engine = Engine::open(&setup, &store.token.hsm).unwrap();
    let uids: Vec<u32> = block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        let mut uids = Vec::new();
        for index in 0..260 {
            uids.push(engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap());
        }
        uids
    });
    // Only the first segment (about 120 messages) qualifies: a quarter of its messages are
    // dead (expunged, window over), so it needs about 75% of its bytes (9 MiB: more than one
    // 8 MiB step), under the 0.8 ratio. Some near its end are retained (expunged today), so
    // they lie beyond the first step. The other segments hold live mail only: nothing else
    // is rewritten and the active segment does not fill up, so whatever compaction moves
    // into it stays there.
    let group = |remainder: u32, from: u32| {
        uids.iter().copied().filter(move |uid| (from..120).contains(uid) && uid % 4 == remainder).collect::<Vec<_>>()
    };
    block_on(engine.expunge(ACCOUNT, INBOX, &group(1, 0))).unwrap();
    store.clock.advance_ms(15 * DAY_MS);
    block_on(engine.expunge(ACCOUNT, INBOX, &group(2, 90))).unwrap();
    drop(engine);

    store.config.compaction_bytes_per_second = Some(1); // after one step, the job waits
    let engine = store.open();
    let mut in_progress = None;
    for _ in 0..2000 {
        in_progress = block_on(engine.stats()).unwrap()[0].compacting;
        if in_progress.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let progress = in_progress.expect("a background compaction job started");
    assert!(progress.done_bytes < progress.bytes, "the job waits part way: {progress:?}");
    // The cheap status says the same as the stats, and counts every segment's bytes.
    let shard_stats = block_on(engine.stats()).unwrap().remove(0);
    let during = block_on(engine.compaction_status()).unwrap()[0];
    assert_eq!(during.compacting, Some(progress));
    let segment_bytes: u64 = shard_stats.segment_details.iter().map(|segment| segment.bytes).sum();
    assert_eq!(during.segment_bytes, segment_bytes);

    let pruned = block_on(engine.prune_deleted(ACCOUNT)).unwrap();
    // The expired ones too: they stay in the deleted list until a snapshot drops them.
    assert_eq!(pruned as usize, group(1, 0).len() + group(2, 90).len());
    block_on(engine.compact()).unwrap();
    let live = uids.len() - pruned as usize;
    assert_eq!(bodies_on_disk(&store).len(), live, "only live mail's bodies are left in the files");
    assert!(block_on(engine.stats()).unwrap()[0].compacting.is_none());
    let after = block_on(engine.compaction_status()).unwrap()[0];
    assert_eq!(after.compacting, None);
    assert!(after.segment_bytes < during.segment_bytes, "compaction shrank the segments: {after:?} {during:?}");
    let (_, listed) = block_on(engine.list_messages(ACCOUNT, INBOX)).unwrap();
    assert_eq!(listed.len(), live);
}

/// The idle timer looks for work at every tick, but walks every message again only when
/// something changed since the last walk: on a store left alone that walk stands (at ten
/// million messages a walk stops the shard for about 150 ms).
#[test]
fn idle_ticks_walk_the_messages_again_only_after_a_release() {
    let mut store = TestStore::new(1);
    let model = store_with_expunged_mail(&store, 8);
    store.config.compaction_check_interval = Duration::from_millis(10);
    let engine = store.open();
    let passes = || block_on(engine.stats()).unwrap()[0].usage_passes;
    // Polled every 50 ms: each request restarts the shard's wait for its next tick.
    let wait_for = |done: &dyn Fn() -> bool| {
        for _ in 0..400 {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    // With no walk yet to stand on, the first tick walks (bounded wait, not a timed assertion).
    assert!(wait_for(&|| passes() >= 1), "no tick walked the messages");
    let settled = passes();
    std::thread::sleep(Duration::from_millis(300)); // some thirty ticks, nothing changing
    assert_eq!(passes(), settled, "ticks walked the messages with nothing released");
    // An expunge releases a body: the next tick walks again.
    let first = *model.keys().next().unwrap();
    block_on(engine.expunge(ACCOUNT, INBOX, &[first])).unwrap();
    assert!(wait_for(&|| passes() > settled), "no tick walked the messages after an expunge");
}
