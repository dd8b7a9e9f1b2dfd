//! The engine API end to end: real files through io_uring, keys from a real SoftHSM token.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use common::TestStore;
use mailvault_engine::{EngineError, FlagChange, Flags, INBOX, block_on};

fn message(marker: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nTo: b@example.org\r\nSubject: {marker}\r\n\r\nBody {marker}\r\n").into_bytes()
}

#[test]
fn append_then_fetch_returns_identical_bytes_across_restart() {
    let store = TestStore::new(2);
    let engine = store.open();
    let bodies: Vec<Vec<u8>> = (0..20).map(|index| message(&format!("m{index}"))).collect();
    let uids = block_on(async {
        engine.create_account("alice@example.org").await.unwrap();
        let mut uids = Vec::new();
        for body in &bodies {
            uids.push(engine.append("alice@example.org", "inbox", body.clone(), Flags::default(), None).await.unwrap());
        }
        uids
    });
    assert_eq!(uids, (1..=20).collect::<Vec<u32>>());
    drop(engine);

    let engine = store.open();
    block_on(async {
        let (info, messages) = engine.list_messages("alice@example.org", INBOX).await.unwrap();
        assert_eq!(info.messages, 20);
        assert_eq!(info.uid_next, 21);
        assert_eq!(messages.len(), 20);
        for (uid, body) in uids.iter().zip(&bodies) {
            let fetched = engine.fetch("alice@example.org", INBOX, *uid).await.unwrap();
            assert_eq!(&fetched.body, body);
            assert_eq!(fetched.info.digest, *blake3::hash(body).as_bytes());
        }
    });
}

#[test]
fn mailbox_operations_flags_copy_move_expunge_restore() {
    let store = TestStore::new(1);
    let engine = store.open();
    let account = "bob@example.org";
    block_on(async {
        engine.create_account(account).await.unwrap();
        assert!(matches!(engine.create_account(account).await, Err(EngineError::AccountExists(_))));
        engine.create_mailbox(account, "Work").await.unwrap();
        assert!(matches!(engine.create_mailbox(account, "Work").await, Err(EngineError::MailboxExists(_))));
        let first = engine.append(account, INBOX, message("one"), Flags::default(), None).await.unwrap();
        let second = engine.append(account, INBOX, message("two"), Flags::default(), None).await.unwrap();

        let seen = Flags { system: Flags::SEEN, keywords: vec!["$Label1".into()] };
        engine.change_flags(account, INBOX, &[first], FlagChange::Add(seen)).await.unwrap();
        let copied = engine.copy(account, INBOX, &[first], "Work").await.unwrap();
        assert_eq!(copied, vec![(first, 1)]);
        let moved = engine.move_messages(account, INBOX, &[second], "Work").await.unwrap();
        assert_eq!(moved, vec![(second, 2)]);
        engine.rename_mailbox(account, "Work", "Archive").await.unwrap();
        engine.expunge(account, "Archive", &[1]).await.unwrap();
        assert!(matches!(engine.expunge(account, "Archive", &[1]).await, Err(EngineError::NoSuchMessage(1))));
    });
    drop(engine);

    let engine = store.open();
    block_on(async {
        let mailboxes = engine.list_mailboxes(account).await.unwrap();
        let names: Vec<_> = mailboxes.iter().map(|mailbox| mailbox.name.as_str()).collect();
        assert_eq!(names, vec![INBOX, "Archive"]);
        let (_, inbox) = engine.list_messages(account, INBOX).await.unwrap();
        assert_eq!(inbox.len(), 1);
        assert!(inbox[0].flags.contains(Flags::SEEN));
        assert_eq!(inbox[0].flags.keywords, vec!["$Label1".to_owned()]);
        let (_, archive) = engine.list_messages(account, "Archive").await.unwrap();
        assert_eq!(archive.iter().map(|message| message.uid).collect::<Vec<_>>(), vec![2]);

        let deleted = engine.list_deleted(account).await.unwrap();
        assert_eq!(deleted.len(), 1);
        let (mailbox, uid) = engine.restore(account, deleted[0].id).await.unwrap();
        assert_eq!((mailbox.as_str(), uid), ("Archive", 3));
        let restored = engine.fetch(account, "Archive", 3).await.unwrap();
        assert_eq!(restored.body, message("one"));
        assert!(restored.info.flags.contains(Flags::SEEN));
    });
}

#[test]
fn restore_works_inside_the_retention_window_and_not_after() {
    let store = TestStore::new(1);
    let engine = store.open();
    let account = "carol@example.org";
    block_on(async {
        engine.create_account(account).await.unwrap();
        for index in 0..2 {
            engine.append(account, INBOX, message(&format!("r{index}")), Flags::default(), None).await.unwrap();
        }
        engine.expunge(account, INBOX, &[1, 2]).await.unwrap();
        let deleted = engine.list_deleted(account).await.unwrap();
        assert_eq!(deleted.len(), 2);

        store.clock.advance_ms(13 * 24 * 3600 * 1000);
        engine.restore(account, deleted[0].id).await.unwrap();

        store.clock.advance_ms(2 * 24 * 3600 * 1000);
        assert!(matches!(engine.restore(account, deleted[1].id).await, Err(EngineError::NotRestorable)));
        assert!(engine.list_deleted(account).await.unwrap().is_empty());
    });
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let store = TestStore::new(1);
    let engine = store.open();
    let account = "dave@example.org";
    block_on(async {
        assert!(matches!(engine.create_account("").await, Err(EngineError::InvalidInput { .. })));
        assert!(matches!(engine.create_account("a\r\nb").await, Err(EngineError::InvalidInput { .. })));
        engine.create_account(account).await.unwrap();
        assert!(matches!(
            engine.append("nobody@example.org", INBOX, message("x"), Flags::default(), None).await,
            Err(EngineError::NoSuchAccount(_))
        ));
        assert!(matches!(
            engine.append(account, "Nope", message("x"), Flags::default(), None).await,
            Err(EngineError::NoSuchMailbox(_))
        ));
        assert!(matches!(
            engine.append(account, INBOX, Vec::new(), Flags::default(), None).await,
            Err(EngineError::InvalidInput { .. })
        ));
        let bad_flags = Flags { system: 0x80, keywords: Vec::new() };
        assert!(matches!(
            engine.append(account, INBOX, message("x"), bad_flags, None).await,
            Err(EngineError::InvalidInput { .. })
        ));
        assert!(matches!(engine.delete_mailbox(account, "inbox").await, Err(EngineError::InvalidInput { .. })));
        let (info, messages) = engine.list_messages(account, INBOX).await.unwrap();
        assert_eq!((info.messages, messages.len(), info.uid_next), (0, 0, 1));
        assert_eq!(engine.list_accounts().await.unwrap(), vec![account.to_owned()]);
    });
}

#[test]
fn segments_rotate_and_sealed_segments_replay() {
    let store = TestStore::new(1);
    let engine = store.open();
    let account = "erin@example.org";
    let body = vec![b'x'; 100 * 1024];
    block_on(async {
        engine.create_account(account).await.unwrap();
        for _ in 0..30 {
            engine.append(account, INBOX, body.clone(), Flags::default(), None).await.unwrap();
        }
        let stats = engine.stats().await.unwrap();
        assert!(stats[0].segments >= 3, "{stats:?}");
    });
    drop(engine);
    let engine = store.open();
    block_on(async {
        for uid in 1..=30 {
            assert_eq!(engine.fetch(account, INBOX, uid).await.unwrap().body, body);
        }
    });
}
