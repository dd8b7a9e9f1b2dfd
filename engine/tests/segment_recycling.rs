//! Segment recycling (docs/format.md §2.5): compaction keeps the files it is done with, up to
//! `recycled_segments_max`, and new segments are written over them. The earlier segment's
//! frames left past the new log are never read as the new segment's, on a clean open, on an
//! open without a checkpoint, or after a crash at any write; a file someone still has open is
//! not reused; and a prune leaves no earlier bytes behind.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::TestStore;
use mailvault_engine::format::{FRAME_HEADER_BYTES, RecordKind};
use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{Engine, Flags, INBOX, block_on};

const ACCOUNT: &str = "rita@example.org";
const DAY_MS: i64 = 24 * 3600 * 1000;
const BODY_BYTES: usize = 100 * 1024;
const SPARES: usize = 2;

fn body(index: usize) -> Vec<u8> {
    let mut body = format!("Subject: recycling {index}\r\n\r\n").into_bytes();
    body.resize(BODY_BYTES, b'a' + (index % 26) as u8);
    body
}

fn shard_directory(store: &TestStore) -> PathBuf {
    store.directory.path().join("shard-000")
}

/// The shard's spare files: name and inode.
fn spares(store: &TestStore) -> BTreeMap<String, u64> {
    files_ending(&shard_directory(store), ".spare")
}

/// The shard's segment files: name and inode.
fn segments(store: &TestStore) -> BTreeMap<String, u64> {
    files_ending(&shard_directory(store), ".seg")
}

fn files_ending(directory: &Path, suffix: &str) -> BTreeMap<String, u64> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.ends_with(suffix)))
        .map(|entry| (entry.file_name().into_string().unwrap(), entry.metadata().unwrap().ino()))
        .collect()
}

fn append_bodies(engine: &Engine, indexes: std::ops::Range<usize>) {
    block_on(async {
        for index in indexes {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
    });
}

/// Every message listed, with its body's hash.
fn observe(engine: &Engine) -> Vec<(u32, blake3::Hash)> {
    block_on(async {
        let (_, messages) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
        let mut seen = Vec::new();
        for message in messages {
            let fetched = engine.fetch(ACCOUNT, INBOX, message.uid).await.unwrap();
            seen.push((message.uid, blake3::hash(&fetched.body)));
        }
        seen
    })
}

/// A store of 1 MiB segments whose compaction left `SPARES` spare files: 40 messages of
/// 100 KiB, 30 of them expunged and past retention, compacted.
fn store_with_spares() -> TestStore {
    let mut store = TestStore::new(1);
    store.config.recycled_segments_max = SPARES;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    append_bodies(&engine, 0..40);
    let expunged: Vec<u32> = (1..=40).filter(|uid| uid % 4 != 0).collect();
    block_on(engine.expunge(ACCOUNT, INBOX, &expunged)).unwrap();
    store.clock.advance_ms(15 * DAY_MS);
    let report = block_on(engine.compact()).unwrap();
    assert!(report.segments_compacted > SPARES as u64, "{report:?}");
    drop(engine);
    assert_eq!(spares(&store).len(), SPARES, "compaction kept no spare files");
    store
}

/// Where the log of a segment's bytes ends (the end of its last frame).
fn log_end(segment: &[u8]) -> usize {
    common::frame_spans(segment).last().map_or(4096, common::FrameSpan::end)
}

#[test]
fn new_segments_are_written_over_compacted_files_and_read_back_with_and_without_a_checkpoint() {
    let store = store_with_spares();
    let spare_inodes: BTreeSet<u64> = spares(&store).into_values().collect();
    let engine = store.open();
    // The open found them, and `stats` tells what they hold.
    let stats = &block_on(engine.stats()).unwrap()[0];
    let spare_bytes: u64 =
        spares(&store).keys().map(|name| std::fs::metadata(shard_directory(&store).join(name)).unwrap().len()).sum();
    assert_eq!((stats.spare_segment_files, stats.spare_segment_bytes), (SPARES as u64, spare_bytes));
    // Enough for two rotations; then stop with the active segment in a reused file, part full.
    let mut next = 40;
    let reused_active = loop {
        append_bodies(&engine, next..next + 1);
        next += 1;
        // An append is answered once durable; a rotation it made due runs after that. The shard
        // takes the next request only once it is done, so the files are looked at after one.
        block_on(engine.stats()).unwrap();
        let active = common::active_segment_path(store.directory.path(), 0);
        let reused = spare_inodes.contains(&std::fs::metadata(&active).unwrap().ino());
        if reused && spares(&store).is_empty() {
            break active;
        }
        assert!(next < 80, "no new segment was written into a spare file");
    };
    assert_eq!(block_on(engine.stats()).unwrap()[0].spare_segment_files, 0);
    let reused: Vec<String> =
        segments(&store).into_iter().filter(|(_, inode)| spare_inodes.contains(inode)).map(|(name, _)| name).collect();
    assert_eq!(reused.len(), SPARES, "segments in reused files: {reused:?}");
    // The active segment's file still holds the earlier segment's frames past its log.
    let bytes = std::fs::read(&reused_active).unwrap();
    let end = log_end(&bytes).next_multiple_of(4096);
    assert!(bytes[end..].windows(4).any(|window| window == b"MVRF"), "no earlier frame past the log at {end}");
    let expected = observe(&engine);
    assert_eq!(expected.len(), 10 + (next - 40));
    drop(engine);

    // A clean reopen, then a reopen from the log alone: the earlier frames are never read
    // as records, and everything reads back.
    assert_eq!(observe(&store.open()), expected);
    std::fs::remove_file(shard_directory(&store).join("checkpoint")).unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), expected);
    append_bodies(&engine, next..next + 3);
    assert_eq!(observe(&engine).len(), expected.len() + 3);
}

/// A spare another process still has open (a backup copying it when it was a segment, say) is
/// not written over: that reader keeps reading the bytes it opened, and the new segment gets a
/// fresh file.
#[test]
fn a_spare_file_someone_holds_open_is_not_reused() {
    let store = store_with_spares();
    let held: Vec<(u64, std::fs::File, Vec<u8>)> = spares(&store)
        .into_iter()
        .map(|(name, inode)| {
            let path = shard_directory(&store).join(name);
            (inode, std::fs::File::open(&path).unwrap(), std::fs::read(&path).unwrap())
        })
        .collect();
    let engine = store.open();
    append_bodies(&engine, 40..70); // three segments' worth: every rotation wants a spare
    let inodes: BTreeSet<u64> = segments(&store).into_values().collect();
    for (inode, mut file, before) in held {
        assert!(!inodes.contains(&inode), "a held spare was reused");
        let mut now = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut now).unwrap();
        assert!(now == before, "a held spare's bytes changed");
    }
    assert!(spares(&store).is_empty(), "the held spares were not removed: {:?}", spares(&store));
    assert_eq!(observe(&engine).len(), 40);
}

/// A spare removed behind the shard's back (by an operator freeing space, say) only costs the
/// speed it would have given: the next segment gets a fresh file, and the shard serves on.
#[test]
fn a_spare_file_gone_from_the_directory_only_costs_its_speed() {
    let store = store_with_spares();
    let engine = store.open();
    for name in spares(&store).keys() {
        std::fs::remove_file(shard_directory(&store).join(name)).unwrap();
    }
    append_bodies(&engine, 40..70); // three segments' worth: every rotation wants a spare
    assert_eq!(observe(&engine).len(), 40);
    drop(engine);
    assert_eq!(observe(&store.open()).len(), 40);
}

/// A prune promises the pruned bodies' ciphertext leaves every file of the store. Spares hold
/// copies that compaction moved (deleted mail still inside its window is copied, not dropped),
/// and an active segment in a reused file holds an earlier segment's bytes past its log: after
/// the prune neither is left, and no file holds a byte run of those bodies' ciphertext.
#[test]
fn a_prune_leaves_no_spare_file_and_no_earlier_bytes_of_the_pruned_mail() {
    let mut store = TestStore::new(1);
    store.config.recycled_segments_max = SPARES;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    append_bodies(&engine, 0..40);
    // Dead mail (past retention) makes the segments worth compacting; the deleted mail still
    // inside its window is copied by that compaction, its first copies left in the spares.
    // Uids 20 and 40 end their segments (about ten messages each): in a reused file their
    // first copies lie past the new log longest.
    block_on(engine.expunge(ACCOUNT, INBOX, &(1..=40).filter(|uid| uid % 4 != 0).collect::<Vec<_>>())).unwrap();
    store.clock.advance_ms(15 * DAY_MS);
    let pruned = [20, 40];
    block_on(engine.expunge(ACCOUNT, INBOX, &pruned)).unwrap();
    let samples = ciphertext_samples(&store, &pruned);
    assert_eq!(samples.len(), pruned.len());
    block_on(engine.compact()).unwrap();
    let spare_inodes: BTreeSet<u64> = spares(&store).into_values().collect();
    assert_eq!(spare_inodes.len(), SPARES);
    // Deliveries until the active segment is in a reused file: an earlier segment's bytes lie
    // past its log, which may be the pruned mail's.
    let mut next = 40;
    while !spare_inodes.contains(&active_inode(&store)) {
        assert!(next < 70, "no new segment was written into a spare file");
        append_bodies(&engine, next..next + 1);
        next += 1;
    }
    let reused_active = active_inode(&store);

    assert_eq!(block_on(engine.prune_deleted(ACCOUNT)).unwrap(), 2);
    block_on(engine.compact()).unwrap(); // the rewrite the prune asked for, waited for
    assert!(spares(&store).is_empty(), "spares left after a prune: {:?}", spares(&store));
    // The reused active segment was sealed (which trims the earlier bytes), and its successor
    // is a fresh file.
    assert!(!segments(&store).values().any(|inode| *inode == reused_active), "the reused active segment stayed");
    assert!(!spare_inodes.contains(&active_inode(&store)), "a new segment went into a spare after the prune");
    assert_eq!(files_holding(&store, &samples), 0, "pruned ciphertext is still in a file of the store");
    drop(engine);
    assert_eq!(observe(&store.open()).len(), 8 + (next - 40));
}

fn active_inode(store: &TestStore) -> u64 {
    std::fs::metadata(common::active_segment_path(store.directory.path(), 0)).unwrap().ino()
}

fn holds_any(bytes: &[u8], samples: &[Vec<u8>]) -> bool {
    samples.iter().any(|sample| bytes.windows(sample.len()).any(|window| window == sample.as_slice()))
}

/// 64 bytes from the middle of the ciphertext of each message frame whose uid is in `uids`, in
/// the shard's segments as they are now.
fn ciphertext_samples(store: &TestStore, uids: &[u32]) -> Vec<Vec<u8>> {
    let mut samples = Vec::new();
    for path in common::segment_paths(store.directory.path(), 0) {
        let bytes = std::fs::read(path).unwrap();
        for span in common::frame_spans(&bytes) {
            if span.header.kind == RecordKind::MessageAppended as u8 && uids.contains(&span.header.uid) {
                let at = span.offset + FRAME_HEADER_BYTES + BODY_BYTES / 2;
                samples.push(bytes[at..at + 64].to_vec());
            }
        }
    }
    samples
}

/// How many files of the store hold any of the samples.
fn files_holding(store: &TestStore, samples: &[Vec<u8>]) -> usize {
    let mut holding = 0;
    for entry in walk(store.directory.path()) {
        // A checkpoint's temporary may be renamed away meanwhile.
        let Ok(bytes) = std::fs::read(&entry) else { continue };
        if holds_any(&bytes, samples) {
            holding += 1;
        }
    }
    holding
}

fn walk(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

/// A crash at any write while appends go into reused files, then a power loss (each write not
/// yet synced kept, lost or torn, the bytes it replaced coming back: here, the earlier
/// segment's): every acknowledged append reads back whole, and whatever else is listed is one
/// of the messages sent, whole.
#[test]
fn a_crash_at_any_write_into_a_reused_file_loses_no_acknowledged_append() {
    const APPENDS: usize = 24;
    const TASKS: usize = 3;
    let store = store_with_spares();
    let sent: BTreeSet<[u8; 32]> = (40..40 + APPENDS).map(|index| *blake3::hash(&body(index)).as_bytes()).collect();
    let before = observe(&store.open());
    let (mut crashes_in_reused_files, mut finished) = (0, false);
    for crash_at in 0..200 {
        let copy = tempfile::tempdir().unwrap();
        common::copy_store(store.directory.path(), copy.path());
        let spare_inodes: BTreeSet<u64> =
            files_ending(&copy.path().join("shard-000"), ".spare").into_values().collect();
        let mut config = store.config.clone();
        config.data_dir = copy.path().to_path_buf();
        let controller = FaultController::new(crash_at);
        let faults = controller.clone();
        let engine = Engine::open_with(&config, &store.token.hsm, move |_, directory| {
            FaultyStorage::new(directory, faults.clone())
        })
        .unwrap();
        controller.crash_after_writes(crash_at);
        let acknowledged = append_concurrently(&engine, APPENDS, TASKS);
        finished = acknowledged.len() == APPENDS && !controller.has_crashed();
        controller.crash_now();
        drop(engine);
        controller.power_loss().unwrap();

        let active = common::active_segment_path(copy.path(), 0);
        crashes_in_reused_files += usize::from(spare_inodes.contains(&std::fs::metadata(active).unwrap().ino()));
        let engine = Engine::open(&config, &store.token.hsm).unwrap();
        let after = observe(&engine);
        assert!(after.starts_with(&before), "crash at write {crash_at}: earlier messages changed");
        let listed: BTreeMap<u32, blake3::Hash> = after.iter().copied().collect();
        // (`blake3::Hash` is no map key: it has no order; uids are.)
        for (uid, index) in &acknowledged {
            assert_eq!(listed.get(uid), Some(&blake3::hash(&body(*index))), "crash at {crash_at}: uid {uid} lost");
        }
        for (uid, hash) in &after[before.len()..] {
            assert!(sent.contains(hash.as_bytes()), "crash at {crash_at}: uid {uid} holds no message that was sent");
        }
        if finished {
            break;
        }
    }
    assert!(finished, "the appends never completed within the crash points tried");
    assert!(crashes_in_reused_files >= 3, "only {crashes_in_reused_files} crashes came in a reused file");
}

/// Appends bodies 40.. from `tasks` tasks at once (so commits overlap); the uid and body index
/// of each append acknowledged before the first failure.
fn append_concurrently(engine: &Engine, appends: usize, tasks: usize) -> Vec<(u32, usize)> {
    block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let engine = engine.clone();
                compio::runtime::spawn(async move {
                    let mut acknowledged = Vec::new();
                    for index in (40 + task..40 + appends).step_by(tasks) {
                        match engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await {
                            Ok(uid) => acknowledged.push((uid, index)),
                            Err(_) => break,
                        }
                    }
                    acknowledged
                })
            })
            .collect();
        let mut acknowledged = Vec::new();
        for handle in handles {
            acknowledged.extend(handle.await.unwrap());
        }
        acknowledged
    })
}

/// A spare whose removal failed after a prune stays withheld, and `compaction-forced` says so:
/// after a restart the spares are removed, never written over with their earlier bytes kept.
/// Before, the failed removal cleared the flag first, and the restart offered them for reuse.
#[test]
fn spares_a_prune_could_not_remove_are_removed_after_the_restart() {
    let store = store_with_spares();
    let faults = FaultController::new(7);
    faults.fail_removes_ending(Some(".spare"));
    let storage_faults = faults.clone();
    let engine = Engine::open_with(&store.config, &store.token.hsm, move |_, directory| {
        FaultyStorage::new(directory, storage_faults.clone())
    })
    .unwrap();
    block_on(engine.expunge(ACCOUNT, INBOX, &[4])).unwrap();
    assert_eq!(block_on(engine.prune_deleted(ACCOUNT)).unwrap(), 1);
    block_on(engine.compact()).unwrap();
    assert_eq!(spares(&store).len(), SPARES, "the injected failure removed nothing");
    let forced = std::fs::read_to_string(shard_directory(&store).join("compaction-forced")).unwrap();
    assert!(forced.contains("spares_withheld"), "the state file lost the withheld spares:\n{forced}");
    drop(engine);

    let engine = store.open();
    block_on(engine.compact()).unwrap();
    assert!(spares(&store).is_empty(), "spares left after the restart: {:?}", spares(&store));
    assert_eq!(observe(&engine).len(), 9);
}
