//! Checkpoints: a store reopened from a checkpoint plus the log after it equals the store
//! replayed from the whole log, and a damaged checkpoint is ignored, never trusted.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::fmt::Write as _;

use common::TestStore;
use mailvault_engine::{Engine, FlagChange, Flags, INBOX, block_on};

const ACCOUNT: &str = "kim@example.org";

fn body(index: usize) -> Vec<u8> {
    format!("Subject: checkpoint {index}\r\n\r\nbody {index}\r\n").into_bytes()
}

/// Appends `count` messages starting at `first`, flags every third, expunges every fifth.
fn write_history(engine: &Engine, first: usize, count: usize) {
    block_on(async {
        for index in first..first + count {
            let uid = engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
            if index % 3 == 0 {
                let seen = Flags { system: Flags::SEEN, keywords: Vec::new() };
                engine.change_flags(ACCOUNT, INBOX, &[uid], FlagChange::Add(seen)).await.unwrap();
            }
            if index % 5 == 0 {
                engine.expunge(ACCOUNT, INBOX, &[uid]).await.unwrap();
            }
        }
    });
}

/// Everything observable about the account: mailbox status, every message, the deleted list.
fn observe(engine: &Engine) -> String {
    block_on(async {
        let mut state = format!("{:?}\n", engine.list_mailboxes(ACCOUNT).await.unwrap());
        let (_, messages) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
        for message in messages {
            let fetched = engine.fetch(ACCOUNT, INBOX, message.uid).await.unwrap();
            let _ = writeln!(state, "{message:?} {}", String::from_utf8_lossy(&fetched.body));
        }
        let _ = write!(state, "{:?}", engine.list_deleted(ACCOUNT).await.unwrap());
        state
    })
}

fn checkpoint_path(store: &TestStore) -> std::path::PathBuf {
    store.directory.path().join("shard-000").join("checkpoint")
}

#[test]
fn reopening_from_a_checkpoint_and_the_log_after_it_gives_the_same_state() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 25;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    write_history(&engine, 0, 60);
    let before = observe(&engine);
    drop(engine);
    assert!(checkpoint_path(&store).exists(), "a checkpoint was written");

    let engine = store.open();
    assert_eq!(observe(&engine), before);
    // Work after the checkpoint lands after it in the log and replays too.
    write_history(&engine, 60, 7);
    let after = observe(&engine);
    drop(engine);
    let engine = store.open();
    assert_eq!(observe(&engine), after);
}

#[test]
fn a_damaged_checkpoint_is_ignored_and_the_whole_log_replays() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 10;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    write_history(&engine, 0, 30);
    let before = observe(&engine);
    drop(engine);

    let path = checkpoint_path(&store);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), before);
    drop(engine);

    std::fs::write(&path, b"not a checkpoint").unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), before);
}

#[test]
fn a_checkpoint_from_another_token_is_refused() {
    let store = TestStore::new(1);
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    write_history(&engine, 0, 5);
    let before = observe(&engine);
    drop(engine);

    // A checkpoint whose key another HSM wrapped cannot be opened; the log still can.
    let other = TestStore::new(1);
    let other_engine = other.open();
    block_on(other_engine.create_account(ACCOUNT)).unwrap();
    write_history(&other_engine, 0, 2);
    drop(other_engine);
    std::fs::copy(checkpoint_path(&other), checkpoint_path(&store)).unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), before);
}

/// A closed one-shard store whose checkpoint covers most of its first segment, and that
/// segment's path.
fn store_with_checkpointed_history() -> (TestStore, std::path::PathBuf) {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 5;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    write_history(&engine, 0, 12);
    drop(engine);
    let segment = store.directory.path().join("shard-000").join("0000000000000001.seg");
    (store, segment)
}

#[test]
fn an_open_replays_only_the_log_after_the_checkpoint() {
    let (store, segment) = store_with_checkpointed_history();
    // Damage the first frame of the log (the first open's record-id floor, at offset 4096),
    // which the checkpoint covers: an open that used the checkpoint never reads it.
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4096 + 20] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let engine = store.open();
    drop(engine);

    // Without the checkpoint the whole log replays, and the damage is reported.
    std::fs::remove_file(checkpoint_path(&store)).unwrap();
    let error = Engine::open(&store.config, &store.token.hsm).unwrap_err();
    assert!(error.to_string().contains("corrupt at offset 4096"), "{error}");
}

/// Found by the `segment_scan` fuzz target: a segment file shorter than its checkpoint's offset
/// (or a frame length in the checkpointed prefix pointing past the end) made the open fail with
/// a bare "unexpected end of file" read error, naming no offset and not quarantinable. It is
/// corruption of that segment, reported as such.
#[test]
fn a_segment_cut_short_of_its_checkpoint_is_reported_as_corruption() {
    let (store, segment) = store_with_checkpointed_history();
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(4096 + 100).unwrap();
    let error = Engine::open(&store.config, &store.token.hsm).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("corrupt at offset 4196"), "{message}");
    assert!(message.contains("lies past the end of the file"), "{message}");
}

/// Once the index holds more than twice the interval, checkpoints wait for half the index: at
/// a fixed interval each one (a whole-index encode the shard waits for) cost more per record
/// as the store grew, a quarter of a 4 KiB append run at a million messages.
#[test]
fn checkpoints_grow_apart_as_the_index_grows() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 10;
    let engine = store.open();
    let appends = 400;
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for index in 0..appends {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
        let written: u64 = engine.stats().await.unwrap().iter().map(|shard| shard.checkpoints_written).sum();
        // Every 10 records would be 40 checkpoints; half the index apart: near 10, 20, 30, 44,
        // 65, 97, 145, 217 and 325 records.
        assert!((5..=15).contains(&written), "{written} checkpoints for {appends} appends");
    });
    let before = observe(&engine);
    drop(engine);
    let engine = store.open();
    assert_eq!(observe(&engine), before);
    let (_, messages) = block_on(engine.list_messages(ACCOUNT, INBOX)).unwrap();
    assert_eq!(messages.len(), appends);
}

/// The segment a checkpoint resumes in (header bytes 16..24) and the last segment beside it.
fn checkpoint_and_last_segment(data_dir: &std::path::Path) -> Option<(u64, u64)> {
    let shard = data_dir.join("shard-000");
    let header = std::fs::read(shard.join("checkpoint")).ok()?;
    let resumes_in = u64::from_le_bytes(header[16..24].try_into().unwrap());
    let last = common::segment_paths(data_dir, 0).last()?.file_stem()?.to_str()?.parse().ok()?;
    Some((resumes_in, last))
}

/// Rotation writes no checkpoint any more, so after a crash the last one may name a segment
/// sealed since: an open resumes there (frames before the checkpoint digested for the footer,
/// the rest replayed) and reads every later segment, to the same state.
#[test]
fn a_crash_image_whose_checkpoint_names_a_sealed_segment_reopens_the_same() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 10;
    store.config.segment_bytes_max = 32 * 1024;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    let mut found = None;
    for index in 0..3000 {
        block_on(engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None)).unwrap();
        // The shard answers the next request only after what follows the append's commit (a
        // rotation: seal, then the next segment) is done, so the files are not caught halfway
        // through it, a state no crash leaves. A checkpoint may still be written in the
        // background: it lands by rename, whole or not at all.
        block_on(engine.stats()).unwrap();
        let image = tempfile::tempdir().unwrap();
        common::copy_store(store.directory.path(), image.path());
        if let Some((resumes_in, last)) = checkpoint_and_last_segment(image.path())
            && resumes_in < last
        {
            found = Some(image);
            break;
        }
    }
    let image = found.expect("a checkpoint naming a sealed segment within 3000 appends");
    let live = observe(&engine);
    drop(engine);
    let mut config = store.config.clone();
    config.data_dir = image.path().to_owned();
    let reopened = Engine::open(&config, &store.token.hsm).unwrap();
    assert_eq!(observe(&reopened), live);
}

/// Regression: checkpoints were spaced by records only (100,000 by default), so a store of
/// large messages went its whole life without one, and an open after a crash read back every
/// byte of its log (the backup bench's 1 GiB store of 1 MiB messages never had one). Now a
/// byte interval spaces them too.
#[test]
fn large_messages_are_checkpointed_by_their_bytes_not_only_by_their_count() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 1_000_000;
    store.config.checkpoint_interval_bytes = 256 * 1024;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    let large = |index: usize| [body(index), vec![b'x'; 64 * 1024]].concat();
    block_on(async {
        for index in 0..6 {
            engine.append(ACCOUNT, INBOX, large(index), Flags::default(), None).await.unwrap();
        }
    });
    // The checkpoint is written in the background: wait for it, a bounded while.
    wait_until(|| checkpoint_path(&store).exists());
    assert!(checkpoint_path(&store).exists(), "384 KiB of messages wrote no checkpoint before the shutdown");
    let before = observe(&engine);
    drop(engine);
    assert_eq!(observe(&store.open()), before);
}

/// Regression: an open counted toward its next checkpoint from zero, whatever it had replayed
/// past the last one, so after a crash the next open replayed all of that again and more (and
/// so on, crash after crash). Now what an open replays counts.
#[test]
fn an_open_that_replayed_most_of_an_interval_checkpoints_that_much_sooner() {
    let mut store = TestStore::new(1);
    store.config.checkpoint_interval_records = 40;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    drop(engine); // a checkpoint at the shutdown
    let engine = store.open();
    append_messages(&engine, 0, 30);
    block_on(engine.stats()).unwrap();
    // A crash image: its checkpoint is the one written at the first shutdown, 30-odd records
    // behind its log.
    let image = tempfile::tempdir().unwrap();
    common::copy_store(store.directory.path(), image.path());
    drop(engine);
    let image_checkpoint = image.path().join("shard-000").join("checkpoint");
    let before = std::fs::read(&image_checkpoint).unwrap();

    let mut config = store.config.clone();
    config.data_dir = image.path().to_owned();
    let engine = Engine::open(&config, &store.token.hsm).unwrap();
    append_messages(&engine, 30, 10);
    wait_until(|| std::fs::read(&image_checkpoint).unwrap() != before);
    assert!(std::fs::read(&image_checkpoint).unwrap() != before, "no checkpoint after 40 records since the last");
    drop(engine);
}

/// Appends `count` messages starting at `first`, nothing else.
fn append_messages(engine: &Engine, first: usize, count: usize) {
    block_on(async {
        for index in first..first + count {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
    });
}

/// Waits until `done` holds or 20 s have passed (checkpoints are written in the background).
fn wait_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
