//! Named regression tests: each pins a bug that the property and crash tests found in the engine.
#![allow(clippy::unwrap_used)] // helpers fail the test the way the tests themselves do

mod common;

use common::TestStore;
use mailvault_engine::{EngineError, FlagChange, Flags, INBOX, block_on};

const ACCOUNT: &str = "regression@example.org";

fn store_with_messages(count: u32) -> TestStore {
    let store = TestStore::new(1);
    let engine = store.open();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        engine.create_mailbox(ACCOUNT, "Archive").await.unwrap();
        for index in 0..count {
            let body = format!("Subject: message {index}\r\n\r\nbody {index}\r\n").into_bytes();
            engine.append(ACCOUNT, INBOX, body, Flags::default(), None).await.unwrap();
        }
    });
    store
}

/// A uid listed twice in one expunge made two `MessageExpunged` records for one message; the
/// second contradicted the index, stopped the shard, and was committed anyway, so the store
/// could not be opened again. Repeated uids are now refused up front, for every uid-list request.
#[test]
fn a_uid_listed_twice_is_refused_and_the_store_still_opens() {
    let store = store_with_messages(2);
    let engine = store.open();
    block_on(async {
        let refused = |result: Result<(), EngineError>| matches!(result, Err(EngineError::InvalidInput { .. }));
        assert!(refused(engine.expunge(ACCOUNT, INBOX, &[1, 2, 1]).await));
        let seen = FlagChange::Add(Flags { system: Flags::SEEN, keywords: Vec::new() });
        assert!(refused(engine.change_flags(ACCOUNT, INBOX, &[2, 2], seen).await));
        assert!(refused(engine.copy(ACCOUNT, INBOX, &[1, 1], "Archive").await.map(drop)));
        assert!(refused(engine.move_messages(ACCOUNT, INBOX, &[2, 2], "Archive").await.map(drop)));
        // The shard still serves, and nothing changed.
        engine.expunge(ACCOUNT, INBOX, &[1]).await.unwrap();
    });
    drop(engine);

    let engine = store.open();
    block_on(async {
        let (_, inbox) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
        assert_eq!(inbox.iter().map(|message| message.uid).collect::<Vec<_>>(), vec![2]);
        assert!(inbox[0].flags.system == 0);
        let (archive, _) = engine.list_messages(ACCOUNT, "Archive").await.unwrap();
        assert_eq!((archive.messages, archive.uid_next), (0, 1));
        assert_eq!(engine.list_deleted(ACCOUNT).await.unwrap().len(), 1);
    });
}
