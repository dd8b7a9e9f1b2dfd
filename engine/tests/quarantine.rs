//! Quarantine: a store with one damaged shard refuses to open, unless told to quarantine
//! damaged shards; then the others serve, the damaged one refuses every request naming the
//! damage, and its files stay exactly as they were, so that a repair can put it back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{TestStore, frame_spans, segment_paths};
use mailvault_engine::format::RecordKind;
use mailvault_engine::{Engine, EngineConfig, EngineError, Flags, INBOX, block_on};

const ACCOUNTS: usize = 8;
const MESSAGES_PER_ACCOUNT: usize = 6;
const DAMAGED_SHARD: u32 = 1;

fn account(index: usize) -> String {
    format!("user{index}@example.org")
}

fn body(account: usize, message: usize) -> Vec<u8> {
    let mut body = format!("Subject: message {message} of account {account}\r\n\r\n").into_bytes();
    body.resize(1500 + 97 * message, b'a' + (account % 26) as u8);
    body
}

/// A two-shard store with small segments (so each shard has sealed ones) and no checkpoints
/// (so opening replays every segment and meets the damage).
fn filled_store() -> (TestStore, EngineConfig) {
    let store = TestStore::new(2);
    let mut config = store.config.clone();
    config.segment_bytes_max = 16 * 1024;
    let engine = Engine::open(&config, &store.token.hsm).unwrap();
    block_on(async {
        for index in 0..ACCOUNTS {
            engine.create_account(&account(index)).await.unwrap();
            for message in 0..MESSAGES_PER_ACCOUNT {
                engine.append(&account(index), INBOX, body(index, message), Flags::default(), None).await.unwrap();
            }
        }
    });
    drop(engine);
    for shard in 0..2 {
        let checkpoint = config.data_dir.join(format!("shard-{shard:03}")).join("checkpoint");
        if checkpoint.exists() {
            std::fs::remove_file(checkpoint).unwrap();
        }
        assert!(segment_paths(&config.data_dir, shard).len() >= 2, "shard {shard} sealed a segment");
    }
    (store, config)
}

fn shard_directory(config: &EngineConfig, shard: u32) -> PathBuf {
    config.data_dir.join(format!("shard-{shard:03}"))
}

/// Every file of a shard directory, by name, with its bytes.
fn files_of(directory: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()))
        .collect()
}

/// The damaged shard's first segment (sealed), by path and id.
fn first_segment(config: &EngineConfig, shard: u32) -> (PathBuf, u64) {
    let path = segment_paths(&config.data_dir, shard as usize).remove(0);
    let id = path.file_stem().unwrap().to_string_lossy().parse().unwrap();
    (path, id)
}

/// Flips a byte inside the payload of the segment's first message frame, with later frames
/// after it: damage, not a torn tail. Returns the segment's bytes from before.
fn damage_first_message(path: &Path) -> Vec<u8> {
    let original = std::fs::read(path).unwrap();
    let spans = frame_spans(&original);
    let message = spans.iter().find(|span| span.header.kind == RecordKind::MessageAppended as u8).unwrap();
    let mut damaged = original.clone();
    damaged[message.offset + 40 + 100] ^= 0x20;
    std::fs::write(path, damaged).unwrap();
    original
}

fn is_quarantine_refusal(error: &EngineError, segment_id: u64) -> bool {
    matches!(error, EngineError::Quarantined { shard_id: DAMAGED_SHARD, reason }
        if reason.contains(&format!("segment {segment_id}")) && reason.contains("offset"))
}

#[test]
fn a_damaged_shard_stops_the_open_unless_quarantined_and_then_only_its_accounts_are_refused() {
    let (store, mut config) = filled_store();
    let (damaged_path, segment_id) = first_segment(&config, DAMAGED_SHARD);
    let original = damage_first_message(&damaged_path);
    let damaged_files = files_of(&shard_directory(&config, DAMAGED_SHARD));

    let Err(error) = Engine::open(&config, &store.token.hsm) else {
        panic!("the store opened over a damaged shard without being told to quarantine it")
    };
    assert!(error.is_damage(), "{error}");
    let message = error.to_string();
    assert!(message.contains(&format!("shard {DAMAGED_SHARD}")) && message.contains(&format!("segment {segment_id}")));
    assert_eq!(files_of(&shard_directory(&config, DAMAGED_SHARD)), damaged_files, "the refused open changed files");

    config.quarantine_corrupt_shards = true;
    let engine = Engine::open(&config, &store.token.hsm).expect("opens with the damaged shard quarantined");
    let quarantined = engine.quarantined_shards();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].shard_id, DAMAGED_SHARD);
    assert!(quarantined[0].reason.contains(&format!("segment {segment_id}")), "{}", quarantined[0].reason);

    let (mut serving, mut refused) = (Vec::new(), Vec::new());
    block_on(async {
        for index in 0..ACCOUNTS {
            let name = account(index);
            match engine.list_messages(&name, INBOX).await {
                Ok((info, messages)) => {
                    assert_eq!(messages.len(), MESSAGES_PER_ACCOUNT, "{name}");
                    for (message, info) in messages.iter().enumerate() {
                        let fetched = engine.fetch(&name, INBOX, info.uid).await.unwrap();
                        assert_eq!(fetched.body, body(index, message), "{name} uid {}", info.uid);
                    }
                    let uid = engine.append(&name, INBOX, body(index, 99), Flags::default(), None).await.unwrap();
                    assert_eq!(uid, info.uid_next, "{name}");
                    serving.push(index);
                }
                Err(error) => {
                    assert!(is_quarantine_refusal(&error, segment_id), "{name}: {error}");
                    let append = engine.append(&name, INBOX, body(index, 99), Flags::default(), None).await;
                    assert!(is_quarantine_refusal(&append.unwrap_err(), segment_id), "{name}: append");
                    let fetch = engine.fetch(&name, INBOX, 1).await;
                    assert!(is_quarantine_refusal(&fetch.unwrap_err(), segment_id), "{name}: fetch");
                    let create = engine.create_mailbox(&name, "Archive").await;
                    assert!(is_quarantine_refusal(&create.unwrap_err(), segment_id), "{name}: create mailbox");
                    refused.push(index);
                }
            }
        }
        // Work over every shard waits for the quarantined one.
        let stats = engine.stats().await;
        assert!(is_quarantine_refusal(&stats.unwrap_err(), segment_id), "stats");
        // Its thread runs no runtime to start a caller's task on.
        let task = engine.run_on_shard(DAMAGED_SHARD as usize, || async {}).await;
        assert!(is_quarantine_refusal(&task.unwrap_err(), segment_id), "a task on its thread");
    });
    assert!(!serving.is_empty() && !refused.is_empty(), "accounts on both shards: {serving:?} / {refused:?}");
    drop(engine);
    assert_eq!(
        files_of(&shard_directory(&config, DAMAGED_SHARD)),
        damaged_files,
        "serving with the shard quarantined changed its files"
    );

    // The repair: the damaged segment put back as it was. Everything opens again, with the
    // appends the healthy shard took meanwhile.
    std::fs::write(&damaged_path, original).unwrap();
    config.quarantine_corrupt_shards = false;
    let engine = Engine::open(&config, &store.token.hsm).expect("the repaired store opens");
    assert!(engine.quarantined_shards().is_empty());
    block_on(async {
        for index in 0..ACCOUNTS {
            let (_, messages) = engine.list_messages(&account(index), INBOX).await.unwrap();
            let expected = MESSAGES_PER_ACCOUNT + usize::from(serving.contains(&index));
            assert_eq!(messages.len(), expected, "{}", account(index));
        }
    });
}

#[test]
fn a_store_whose_every_shard_is_damaged_does_not_open_even_when_told_to_quarantine() {
    let store = TestStore::new(1);
    let mut config = store.config.clone();
    config.segment_bytes_max = 16 * 1024;
    let engine = Engine::open(&config, &store.token.hsm).unwrap();
    block_on(async {
        engine.create_account(&account(0)).await.unwrap();
        for message in 0..MESSAGES_PER_ACCOUNT {
            engine.append(&account(0), INBOX, body(0, message), Flags::default(), None).await.unwrap();
        }
    });
    drop(engine);
    std::fs::remove_file(shard_directory(&config, 0).join("checkpoint")).ok();
    let (path, _) = first_segment(&config, 0);
    damage_first_message(&path);
    let damaged = std::fs::read(&path).unwrap();
    config.quarantine_corrupt_shards = true;
    let Err(error) = Engine::open(&config, &store.token.hsm) else {
        panic!("opened a store with nothing left to serve")
    };
    assert!(error.is_damage(), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), damaged, "the refused open changed the damaged segment");
}

/// A shard whose directory is gone (store.meta still counts it) is named in the refusal, and
/// quarantines like a damaged one: the other shard serves, and nothing recreates the directory.
#[test]
fn a_missing_shard_directory_is_named_and_can_be_quarantined() {
    let (store, mut config) = filled_store();
    let directory = shard_directory(&config, DAMAGED_SHARD);
    let moved = config.data_dir.join("elsewhere");
    std::fs::rename(&directory, &moved).unwrap();

    let Err(error) = Engine::open(&config, &store.token.hsm) else {
        panic!("the store opened without one of its shards")
    };
    assert!(error.is_damage(), "{error}");
    assert_eq!(error.to_string(), format!("shard {DAMAGED_SHARD}: its directory shard-001 is missing from the store"));

    config.quarantine_corrupt_shards = true;
    let engine = Engine::open(&config, &store.token.hsm).expect("opens with the missing shard quarantined");
    let quarantined = engine.quarantined_shards();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].shard_id, DAMAGED_SHARD);
    let served = block_on(async {
        let mut served = 0;
        for index in 0..ACCOUNTS {
            if engine.list_messages(&account(index), INBOX).await.is_ok() {
                served += 1;
            }
        }
        served
    });
    assert!(served > 0 && served < ACCOUNTS, "{served} of {ACCOUNTS} accounts served");
    drop(engine);
    assert!(!directory.exists(), "the quarantined shard's directory was created");

    std::fs::rename(&moved, &directory).unwrap();
    config.quarantine_corrupt_shards = false;
    let engine = Engine::open(&config, &store.token.hsm).expect("opens once the directory is back");
    assert!(engine.quarantined_shards().is_empty());
}
