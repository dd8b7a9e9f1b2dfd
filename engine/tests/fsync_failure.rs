//! The fsyncgate lesson: after a failed fsync the data's fate is unknown, so the shard never
//! retries the sync and acknowledges, nor serves on from an index that may be ahead of the
//! disk. It reopens itself from its files instead, as a restart would (`shard/reopen.rs`): a
//! disk that works again serves again without a restart, and one that keeps failing leaves the
//! shard refusing every request.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::time::{Duration, Instant};

use common::TestStore;
use mailvault_engine::io::{FaultController, FaultRates, FaultyStorage};
use mailvault_engine::{Engine, EngineError, Flags, INBOX, block_on};

const ACCOUNT: &str = "fay@example.org";
/// Longer than the shard's reopen waits (0, 1 and 5 s) together, with room for a slow machine.
const REOPEN_BOUND: Duration = Duration::from_secs(30);

fn message(text: &str) -> Vec<u8> {
    format!("Subject: {text}\r\n\r\n{text}\r\n").into_bytes()
}

fn open_faulty(store: &TestStore, controller: &FaultController) -> Engine {
    let faults = controller.clone();
    Engine::open_with(&store.config, &store.token.hsm, move |_, directory| {
        FaultyStorage::new(directory, faults.clone())
    })
    .unwrap()
}

fn assert_shard_failed<T: std::fmt::Debug>(result: &Result<T, EngineError>) {
    assert!(matches!(result, Err(EngineError::ShardFailed { .. })), "{result:?}");
}

#[test]
fn after_an_fsync_error_the_shard_reopens_from_its_files_and_loses_nothing_acknowledged() {
    let store = TestStore::new(1);
    let controller = FaultController::new(42);
    let engine = open_faulty(&store, &controller);
    let after = block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        engine.append(ACCOUNT, INBOX, message("kept"), Flags::default(), None).await.unwrap();
        controller.set_rates(FaultRates { sync_error_per_mille: 1000, ..FaultRates::default() });
        let failed = engine.append(ACCOUNT, INBOX, message("unknown fate"), Flags::default(), None).await;
        assert_shard_failed(&failed);
        controller.set_rates(FaultRates::default());
        // The disk works again. The shard comes back once it has reopened (at once, or after a
        // reopen that still met the failing disk, a second later); meanwhile it refuses.
        let started = Instant::now();
        loop {
            let after = engine.append(ACCOUNT, INBOX, message("after"), Flags::default(), None).await;
            match after {
                Ok(uid) => break uid,
                Err(EngineError::ShardFailed { .. }) if started.elapsed() < REOPEN_BOUND => {
                    compio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("the shard did not come back: {other:?}"),
            }
        }
    });
    assert!(controller.counts().sync_errors >= 1);
    let assert_holds = |engine: &Engine| {
        block_on(async {
            let (_, messages) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
            let uids: Vec<u32> = messages.iter().map(|message| message.uid).collect();
            assert_eq!(uids.first(), Some(&1), "{uids:?}");
            assert_eq!(uids.last(), Some(&after), "{uids:?}");
            assert!(uids.len() == 2 || uids.len() == 3, "the acknowledged two, and perhaps the unknown one: {uids:?}");
            assert_eq!(engine.fetch(ACCOUNT, INBOX, 1).await.unwrap().body, message("kept"));
            assert_eq!(engine.fetch(ACCOUNT, INBOX, after).await.unwrap().body, message("after"));
            if uids.len() == 3 {
                assert_eq!(engine.fetch(ACCOUNT, INBOX, uids[1]).await.unwrap().body, message("unknown fate"));
            }
        });
    };
    assert_holds(&engine);
    // A power loss now: what the reopened shard acknowledged is durable too.
    drop(engine);
    controller.power_loss().unwrap();
    assert_holds(&store.open());
}

#[test]
fn a_disk_that_keeps_failing_leaves_the_shard_refusing_after_three_reopens() {
    let store = TestStore::new(1);
    let controller = FaultController::new(43);
    let engine = open_faulty(&store, &controller);
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        controller.set_rates(FaultRates { sync_error_per_mille: 1000, ..FaultRates::default() });
        assert_shard_failed(&engine.append(ACCOUNT, INBOX, message("failed"), Flags::default(), None).await);
        // The failed commit's sync, then one per reopen (the first sync it tries: recovery
        // syncs the segments before it reads them) until it gives up.
        let expected_sync_errors = 1 + 3;
        let started = Instant::now();
        while controller.counts().sync_errors < expected_sync_errors {
            assert!(started.elapsed() < REOPEN_BOUND, "{:?}", controller.counts());
            assert_shard_failed(&engine.list_messages(ACCOUNT, INBOX).await);
            compio::time::sleep(Duration::from_millis(50)).await;
        }
        // Longer than any wait between reopens: there is no fourth.
        compio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(controller.counts().sync_errors, expected_sync_errors, "it stopped reopening");
        assert_shard_failed(&engine.list_messages(ACCOUNT, INBOX).await);
        assert_shard_failed(&engine.append(ACCOUNT, INBOX, message("refused"), Flags::default(), None).await);
    });
}
