//! The fsyncgate lesson: after a failed fsync the data's fate is unknown, so the shard must
//! not retry and acknowledge; it stops accepting writes (and reads) until reopened.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use common::TestStore;
use mailvault_engine::io::{FaultController, FaultRates, FaultyStorage};
use mailvault_engine::{Engine, EngineError, Flags, INBOX, block_on};

#[test]
fn an_fsync_error_stops_the_shard_and_nothing_unacknowledged_is_claimed() {
    let store = TestStore::new(1);
    let controller = FaultController::new(42);
    let faults = controller.clone();
    let engine = Engine::open_with(&store.config, &store.token.hsm, move |_, directory| {
        FaultyStorage::new(directory, faults.clone())
    })
    .unwrap();
    let account = "fay@example.org";
    let message = |text: &str| format!("Subject: {text}\r\n\r\n{text}\r\n").into_bytes();
    block_on(async {
        engine.create_account(account).await.unwrap();
        engine.append(account, INBOX, message("kept"), Flags::default(), None).await.unwrap();
        controller.set_rates(FaultRates { sync_error_per_mille: 1000, ..FaultRates::default() });
        let failed = engine.append(account, INBOX, message("unknown fate"), Flags::default(), None).await;
        assert!(matches!(failed, Err(EngineError::ShardFailed { .. })), "{failed:?}");
        controller.set_rates(FaultRates::default());
        // The disk works again, but the shard does not pretend the failed sync succeeded.
        let after = engine.append(account, INBOX, message("refused"), Flags::default(), None).await;
        assert!(matches!(after, Err(EngineError::ShardFailed { .. })), "{after:?}");
        assert!(matches!(engine.list_messages(account, INBOX).await, Err(EngineError::ShardFailed { .. })));
    });
    assert_eq!(controller.counts().sync_errors, 1);
    drop(engine);
    controller.power_loss().unwrap();

    let engine = store.open();
    block_on(async {
        let (_, messages) = engine.list_messages(account, INBOX).await.unwrap();
        let uids: Vec<u32> = messages.iter().map(|message| message.uid).collect();
        assert!(uids == [1] || uids == [1, 2], "only the acknowledged message, or it and the unknown one: {uids:?}");
        assert_eq!(engine.fetch(account, INBOX, 1).await.unwrap().body, message("kept"));
        if uids.len() == 2 {
            assert_eq!(engine.fetch(account, INBOX, 2).await.unwrap().body, message("unknown fate"));
        }
    });
}
