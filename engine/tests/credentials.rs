//! Login credentials and the access log: stored as encrypted records, surviving restarts and
//! checkpoints, hashes only.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use common::TestStore;
use mailvault_engine::{AccessEvent, EngineError, block_on};
use mailvault_hsm::password::{PasswordParams, hash_password, verify_password};

const ACCOUNT: &str = "lee@example.org";

fn attempt(at_unix_ms: i64, success: bool) -> AccessEvent {
    AccessEvent { at_unix_ms, remote_ip: "127.0.0.1".into(), protocol: "imap".into(), method: "LOGIN".into(), success }
}

#[test]
fn passwords_app_passwords_and_access_log_survive_restart_and_checkpoint() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 4;
    let params = PasswordParams::default();
    let hash = hash_password(&params, "correct horse").unwrap();
    let phone = hash_password(&params, "phone app password").unwrap();
    let engine = store.open();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        engine.set_password(ACCOUNT, hash.clone()).await.unwrap();
        engine.add_app_password(ACCOUNT, "phone".into(), phone.clone()).await.unwrap();
        for index in 0..6 {
            engine.record_access(ACCOUNT, attempt(1000 + index, index % 2 == 0)).await.unwrap();
        }
    });
    drop(engine);

    let engine = store.open();
    block_on(async {
        let credentials = engine.credentials(ACCOUNT).await.unwrap();
        let stored = credentials.password_hash.unwrap();
        assert!(verify_password("correct horse", &stored).unwrap());
        assert!(!verify_password("wrong", &stored).unwrap());
        assert_eq!(credentials.app_passwords.len(), 1);
        assert_eq!(credentials.app_passwords[0].label, "phone");

        let log = engine.access_log(ACCOUNT, 4).await.unwrap();
        let times: Vec<i64> = log.iter().map(|event| event.at_unix_ms).collect();
        assert_eq!(times, vec![1005, 1004, 1003, 1002], "newest first, limited");
        assert!(log[1].success && !log[0].success);

        assert_eq!(engine.revoke_app_passwords(ACCOUNT).await.unwrap(), 1);
        assert!(engine.credentials(ACCOUNT).await.unwrap().app_passwords.is_empty());
    });
    drop(engine);
    let engine = store.open();
    assert!(block_on(engine.credentials(ACCOUNT)).unwrap().app_passwords.is_empty());
}

#[test]
fn only_argon2id_hashes_are_accepted_and_bad_input_changes_nothing() {
    let store = TestStore::new(1);
    let engine = store.open();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        let plain = engine.set_password(ACCOUNT, "hunter2".into()).await;
        assert!(matches!(plain, Err(EngineError::InvalidInput { .. })), "{plain:?}");
        let long_ip = AccessEvent { remote_ip: "x".repeat(4096), ..attempt(1, true) };
        assert!(matches!(engine.record_access(ACCOUNT, long_ip).await, Err(EngineError::InvalidInput { .. })));
        assert!(matches!(
            engine.record_access("nobody@example.org", attempt(1, false)).await,
            Err(EngineError::NoSuchAccount(_))
        ));
        let credentials = engine.credentials(ACCOUNT).await.unwrap();
        assert_eq!(credentials.password_hash, None);
        assert!(engine.access_log(ACCOUNT, 10).await.unwrap().is_empty());
    });
}
