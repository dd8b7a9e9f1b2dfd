//! Compaction and retention: space comes back as predicted, deleted mail stays restorable for
//! its window and no longer, pruned mail's ciphertext is gone from every file, and a crash at
//! any write of a compaction loses nothing.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::TestStore;
use mailvault_engine::format::{
    ACCOUNT_SNAPSHOT_PART_BYTES, BLOCK_BYTES, FrameDecode, RecordKind, SegmentHeader, decode_frame,
};
use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{Engine, EngineConfig, Flags, INBOX, OpenError, block_on};

const ACCOUNT: &str = "max@example.org";
const DAY_MS: i64 = 24 * 3600 * 1000;
const BODY_BYTES: usize = 100 * 1024;

fn body(index: usize) -> Vec<u8> {
    let mut body = format!("Subject: compaction {index}\r\n\r\n").into_bytes();
    body.resize(BODY_BYTES, b'a' + (index % 26) as u8);
    body
}

/// The bytes the shard's segments hold: the sealed files' sizes, and the active segment's log.
/// Not the active file's size: that runs ahead of its log by whatever space it reserved (8 MiB
/// more once one commit outgrew the segment, as compaction's copies sometimes do: seen once in
/// CI as "after 8388608").
fn segment_bytes(engine: &Engine, data_dir: &Path) -> u64 {
    let mut sealed = common::segment_paths(data_dir, 0);
    sealed.pop(); // the active segment
    let sealed_bytes: u64 = sealed.iter().map(|path| std::fs::metadata(path).unwrap().len()).sum();
    sealed_bytes + block_on(engine.stats()).unwrap()[0].active_segment_bytes
}

/// A store with `count` 100 KiB messages in INBOX over several 1 MiB segments.
fn filled_store(count: usize) -> TestStore {
    let store = TestStore::new(1);
    let engine = store.open();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for index in 0..count {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
    });
    store
}

fn observe(engine: &Engine) -> String {
    block_on(async {
        let (_, messages) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
        let mut state = format!("{:?}\n", engine.list_deleted(ACCOUNT).await.unwrap());
        for message in messages {
            let fetched = engine.fetch(ACCOUNT, INBOX, message.uid).await.unwrap();
            let _ = writeln!(state, "{:?} {}", message, blake3::hash(&fetched.body));
        }
        state
    })
}

#[test]
fn compaction_reclaims_expunged_mail_once_retention_ends() {
    let store = filled_store(40);
    let engine = store.open();
    let expunged: Vec<u32> = (1..=40).filter(|uid| uid % 4 != 0).collect();
    block_on(engine.expunge(ACCOUNT, INBOX, &expunged)).unwrap();

    // Inside the retention window everything is still needed: nothing to reclaim.
    let report = block_on(engine.compact()).unwrap();
    assert_eq!(report.segments_compacted, 0, "{report:?}");
    let before = segment_bytes(&engine, store.directory.path());

    store.clock.advance_ms(15 * DAY_MS);
    let report = block_on(engine.compact()).unwrap();
    let after = segment_bytes(&engine, store.directory.path());
    assert!(report.segments_compacted >= 2, "{report:?}");
    // 10 of 40 bodies stay: the segments shrink to about a quarter (plus headers and snapshots).
    let kept = 10 * BODY_BYTES as u64;
    assert!(after < kept + kept / 2 && after < before / 2, "before {before}, after {after}, {report:?}");
    let state = observe(&engine);
    assert!(block_on(engine.list_deleted(ACCOUNT)).unwrap().is_empty());
    drop(engine);

    let engine = store.open();
    assert_eq!(observe(&engine), state);
    let (_, messages) = block_on(engine.list_messages(ACCOUNT, INBOX)).unwrap();
    assert_eq!(
        messages.iter().map(|message| message.uid).collect::<Vec<_>>(),
        vec![4, 8, 12, 16, 20, 24, 28, 32, 36, 40]
    );
    drop(engine);

    // Without the checkpoint the log alone must still say the same: the account's records in
    // the removed segments are superseded by its snapshot, the moved bodies found again.
    std::fs::remove_file(store.directory.path().join("shard-000").join("checkpoint")).unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), state);
}

#[test]
fn deleted_mail_stays_restorable_through_compaction_inside_its_window() {
    let store = filled_store(24);
    let engine = store.open();
    block_on(engine.expunge(ACCOUNT, INBOX, &(1..=20).collect::<Vec<u32>>())).unwrap();
    block_on(engine.copy(ACCOUNT, INBOX, &[21], INBOX)).unwrap(); // more segments to rewrite
    store.clock.advance_ms(6 * DAY_MS);
    let stats = block_on(engine.stats()).unwrap();
    let retained: u64 = stats[0].segment_details.iter().map(|segment| segment.retained_bytes).sum();
    assert!(retained >= 20 * BODY_BYTES as u64, "retained bytes are accounted: {:?}", stats[0].segment_details);

    block_on(engine.compact()).unwrap();
    drop(engine);
    let engine = store.open();
    block_on(async {
        let deleted = engine.list_deleted(ACCOUNT).await.unwrap();
        assert_eq!(deleted.len(), 20);
        let (_, uid) = engine.restore(ACCOUNT, deleted[3].id).await.unwrap();
        assert_eq!(engine.fetch(ACCOUNT, INBOX, uid).await.unwrap().body, body(3));
    });
}

/// Every rotation asks compaction for a victim. Under deliveries alone nothing qualifies, and
/// the search must not walk every message each time (it grows with the store): the first pass
/// stands while nothing is released.
#[test]
fn rotations_under_deliveries_alone_walk_the_messages_at_most_once() {
    let store = filled_store(60);
    let engine = store.open();
    block_on(async {
        for index in 60..120 {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
    });
    let stats = block_on(engine.stats()).unwrap();
    assert!(stats[0].active_segment_id >= 10, "the appends rotated segments: {stats:?}");
    assert!(stats[0].usage_passes <= 1, "{} passes over the messages", stats[0].usage_passes);
}

/// A pass that ran while a segment was active learnt which of its bodies were dead; once that
/// segment seals, the search that reuses the pass must still see them.
#[test]
fn a_segment_whose_mail_died_while_it_was_active_is_compacted_once_sealed() {
    let store = TestStore::new(1);
    let engine = store.open();
    let first_segment = common::active_segment_path(store.directory.path(), 0);
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for index in 0..6 {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
        engine.expunge(ACCOUNT, INBOX, &(1..=6).collect::<Vec<u32>>()).await.unwrap();
        store.clock.advance_ms(15 * DAY_MS);
        // A pass now: the active segment is no candidate, but its bodies are dead.
        let report = engine.compact().await.unwrap();
        assert_eq!(report.segments_compacted, 0, "{report:?}");
        // Seal it with live mail (a 1 MiB segment holds ten bodies), releasing nothing.
        for index in 6..40 {
            if common::active_segment_path(store.directory.path(), 0) != first_segment {
                break;
            }
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
        assert_ne!(common::active_segment_path(store.directory.path(), 0), first_segment, "the segment sealed");
        engine.compact().await.unwrap();
    });
    assert!(!first_segment.exists(), "the sealed segment of dead mail was not compacted");
    let (_, messages) = block_on(engine.list_messages(ACCOUNT, INBOX)).unwrap();
    for message in messages {
        let fetched = block_on(engine.fetch(ACCOUNT, INBOX, message.uid)).unwrap();
        assert_eq!(fetched.body, body(message.uid as usize - 1));
    }
}

/// Each message body frame's ciphertext (its payload's first 256 bytes), by uid.
fn body_ciphertexts(data_dir: &Path) -> Vec<(u32, Vec<u8>)> {
    let mut found = Vec::new();
    for path in common::segment_paths(data_dir, 0) {
        let bytes = std::fs::read(path).unwrap();
        for span in common::frame_spans(&bytes) {
            if span.header.kind == mailvault_engine::format::RecordKind::MessageAppended as u8 {
                let payload = span.offset + mailvault_engine::format::FRAME_HEADER_BYTES;
                found.push((span.header.uid, bytes[payload..payload + 256].to_vec()));
            }
        }
    }
    found
}

fn all_store_bytes(data_dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data_dir.join("shard-000")).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

/// An account whose snapshot is over one record (here: over 200 bytes, so any account with
/// mail) is stored in several records, which replay joins: compaction and prune go ahead, and
/// the log alone, without a checkpoint, says the same afterwards. Before format version 5 such
/// an account's segments were never compacted and its prune was refused.
/// The kind of every frame in shard 0's segments (a frame is wherever one decodes, CRC and all).
fn frame_kinds(data_dir: &Path) -> Vec<RecordKind> {
    let mut kinds = Vec::new();
    for path in common::segment_paths(data_dir, 0) {
        let bytes = std::fs::read(path).unwrap();
        let seed = SegmentHeader::decode(&bytes).unwrap().crc_seed();
        for offset in (BLOCK_BYTES..bytes.len()).step_by(8) {
            if let Ok(FrameDecode::Frame(frame)) = decode_frame(&bytes[offset..], seed) {
                kinds.extend(RecordKind::from_u8(frame.header.kind));
            }
        }
    }
    kinds
}

#[test]
fn an_account_snapshot_over_one_record_is_split_and_replays_whole() {
    let mut store = TestStore::new(1);
    store.config.account_snapshot_part_bytes = 200;
    let engine = store.open();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        engine.create_mailbox(ACCOUNT, "Archive").await.unwrap();
        for index in 0..40 {
            let flags = Flags { system: Flags::SEEN, keywords: vec![format!("$Label{}", index % 5)] };
            engine.append(ACCOUNT, INBOX, body(index), flags, None).await.unwrap();
        }
        engine.copy(ACCOUNT, INBOX, &[1, 2, 3], "Archive").await.unwrap();
        engine.expunge(ACCOUNT, INBOX, &(1..=30).collect::<Vec<u32>>()).await.unwrap();
    });
    store.clock.advance_ms(6 * DAY_MS);
    block_on(engine.expunge(ACCOUNT, INBOX, &[31, 32])).unwrap();
    store.clock.advance_ms(9 * DAY_MS); // the first 30 are past retention, 31 and 32 are not
    let report = block_on(engine.compact()).unwrap();
    assert!(report.segments_compacted >= 2, "{report:?}");
    let compacted = observe(&engine);
    assert_eq!(block_on(engine.list_deleted(ACCOUNT)).unwrap().len(), 2, "{compacted}");
    drop(engine);
    let kinds = frame_kinds(store.directory.path());
    let pieces = kinds.iter().filter(|kind| **kind == RecordKind::AccountSnapshotPart).count();
    assert!(pieces >= 10, "the snapshots were split: {pieces} pieces");
    std::fs::remove_file(store.directory.path().join("shard-000").join("checkpoint")).unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), compacted, "the split snapshot replays whole");

    assert_eq!(block_on(engine.prune_deleted(ACCOUNT)).unwrap(), 2, "prune is not refused");
    block_on(engine.compact()).unwrap();
    let pruned = observe(&engine);
    drop(engine);
    std::fs::remove_file(store.directory.path().join("shard-000").join("checkpoint")).unwrap();
    let engine = store.open();
    assert_eq!(observe(&engine), pruned);
    assert!(block_on(engine.list_deleted(ACCOUNT)).unwrap().is_empty());
    let (_, archive) = block_on(engine.list_messages(ACCOUNT, "Archive")).unwrap();
    assert_eq!(archive.len(), 3, "the other mailbox came through the pieces too");
}

#[test]
fn pruned_mail_leaves_no_ciphertext_in_any_file() {
    let store = filled_store(6);
    let ciphertexts = body_ciphertexts(store.directory.path());
    assert_eq!(ciphertexts.len(), 6);
    let engine = store.open();
    block_on(engine.expunge(ACCOUNT, INBOX, &[2, 3])).unwrap();
    let pruned = block_on(engine.prune_deleted(ACCOUNT)).unwrap();
    assert_eq!(pruned, 2);
    block_on(engine.compact()).unwrap();
    assert!(block_on(engine.list_deleted(ACCOUNT)).unwrap().is_empty());
    let state = observe(&engine);
    drop(engine);

    // Kept bodies were copied verbatim (their ciphertext is still there, unchanged); the
    // pruned ones are in no file of the store, checkpoint included.
    let all = all_store_bytes(store.directory.path());
    for (uid, ciphertext) in &ciphertexts {
        let present = all.windows(ciphertext.len()).any(|window| window == ciphertext.as_slice());
        assert_eq!(present, ![2, 3].contains(uid), "ciphertext of uid {uid}");
    }
    let engine = store.open();
    assert_eq!(observe(&engine), state);
}

/// A copy of `store`'s files, opened through storage that crashes after `crash_at` writes.
/// Armed before the open: compaction may start on its own as soon as the store opens.
struct CrashingCopy {
    directory: tempfile::TempDir,
    config: EngineConfig,
    controller: FaultController,
    opened: Result<Engine, OpenError>,
}

impl CrashingCopy {
    fn new(store: &TestStore, crash_at: u64) -> Self {
        let directory = tempfile::tempdir().unwrap();
        common::copy_store(store.directory.path(), directory.path());
        let mut config = store.config.clone();
        config.data_dir = directory.path().to_path_buf();
        let controller = FaultController::new(crash_at);
        controller.crash_after_writes(crash_at);
        let faults = controller.clone();
        let opened = Engine::open_with(&config, &store.token.hsm, move |_, directory| {
            FaultyStorage::new(directory, faults.clone())
        });
        Self { directory, config, controller, opened }
    }
}

/// A prune's rewrite that a crash interrupts goes on after the restart: the segments it forced
/// (and the spares it withheld) are written down, in `compaction-forced`, before the prune is
/// answered. Before, a restart forgot them, and the pruned ciphertext stayed wherever the live
/// share kept a segment from compaction: here one message of 32 is pruned, and every segment
/// stays above the 0.8 ratio.
#[test]
fn a_prune_interrupted_by_a_crash_finishes_its_rewrite_after_the_restart() {
    let store = filled_store(32);
    let engine = store.open();
    block_on(engine.expunge(ACCOUNT, INBOX, &[5])).unwrap();
    drop(engine);
    let (_, pruned_ciphertext) =
        body_ciphertexts(store.directory.path()).into_iter().find(|(uid, _)| *uid == 5).unwrap();

    let mut interrupted = 0;
    for crash_at in 0..80 {
        let copy = CrashingCopy::new(&store, crash_at);
        let Ok(engine) = copy.opened else { continue }; // the crash came during the open: no prune
        let (config, controller) = (copy.config, copy.controller);
        let pruned = block_on(engine.prune_deleted(ACCOUNT)).is_ok();
        let finished = pruned && block_on(engine.compact()).is_ok() && !controller.has_crashed();
        controller.crash_now();
        drop(engine);
        controller.power_loss().unwrap();
        if !pruned {
            continue; // never acknowledged: nothing was promised
        }
        interrupted += u32::from(!finished);
        let engine = Engine::open(&config, &store.token.hsm).unwrap();
        block_on(engine.compact()).unwrap();
        assert!(block_on(engine.list_deleted(ACCOUNT)).unwrap().is_empty(), "crash at write {crash_at}");
        drop(engine);
        let all = all_store_bytes(copy.directory.path());
        let survived = all.windows(pruned_ciphertext.len()).any(|window| window == pruned_ciphertext.as_slice());
        assert!(!survived, "crash at write {crash_at}: the pruned ciphertext is still in the store's files");
        if finished {
            break; // the prune and its rewrite completed before this write count
        }
    }
    assert!(interrupted >= 3, "the rewrite was interrupted at only {interrupted} points");
}

#[test]
fn a_crash_at_any_write_of_a_compaction_loses_nothing() {
    crash_at_every_write_of_a_compaction(ACCOUNT_SNAPSHOT_PART_BYTES);
}

/// The same with the account's snapshot in 64-byte pieces: a crash anywhere among them loses
/// nothing either (the pieces of a torn commit are cut with it).
#[test]
fn a_crash_at_any_write_of_a_compaction_writing_a_snapshot_in_pieces_loses_nothing() {
    crash_at_every_write_of_a_compaction(64);
}

fn crash_at_every_write_of_a_compaction(account_snapshot_part_bytes: usize) {
    let mut store = filled_store(32);
    store.config.account_snapshot_part_bytes = account_snapshot_part_bytes;
    // This engine must not compact (in the background, once the clock moves): the crash loop
    // below is to find the work still to do. A ratio of 0 makes no segment qualify.
    let mut setup = store.config.clone();
    setup.compaction_live_ratio = 0.0;
    let engine = Engine::open(&setup, &store.token.hsm).unwrap();
    block_on(engine.expunge(ACCOUNT, INBOX, &(1..=26).collect::<Vec<u32>>())).unwrap();
    store.clock.advance_ms(15 * DAY_MS);
    let expected = observe(&engine);
    drop(engine);

    let mut crashes = 0;
    for crash_at in 0..40 {
        let copy = CrashingCopy::new(&store, crash_at);
        let (config, controller) = (copy.config, copy.controller);
        let finished = match copy.opened {
            Ok(engine) => {
                let finished = block_on(engine.compact()).is_ok() && !controller.has_crashed();
                controller.crash_now();
                drop(engine);
                finished
            }
            Err(_) => false,
        };
        controller.power_loss().unwrap();
        let engine = Engine::open(&config, &store.token.hsm).unwrap();
        assert_eq!(observe(&engine), expected, "crash at write {crash_at}");
        if finished {
            break; // the compaction completed before this write count: every point was covered
        }
        crashes += u32::from(controller.counts().crashes > 0);
    }
    assert!(crashes >= 4, "compaction crashed at only {crashes} points");
}

/// A segment damaged where the open did not look (a checkpoint covers it) is reported and kept
/// by compaction, never rewritten from a partial reading and removed.
#[test]
fn compaction_leaves_a_damaged_segment_in_place() {
    let store = filled_store(24);
    let engine = store.open();
    block_on(engine.expunge(ACCOUNT, INBOX, &(1..=20).collect::<Vec<u32>>())).unwrap();
    drop(engine);
    let first = common::segment_paths(store.directory.path(), 0).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&first, &bytes).unwrap();

    store.clock.advance_ms(15 * DAY_MS);
    let engine = store.open();
    let report = block_on(engine.compact()).unwrap();
    assert!(first.exists(), "the damaged segment was removed ({report:?})");
    assert_eq!(std::fs::read(&first).unwrap(), bytes, "the damaged segment was changed");
    // The messages outside the damage are all still readable.
    for uid in 21..=24 {
        assert_eq!(block_on(engine.fetch(ACCOUNT, INBOX, uid)).unwrap().body, body(uid as usize - 1));
    }
}

/// A `compact` during a backup's hold waited for the whole hold (30 minutes when the backup
/// never released it): the backup bench's second `seal_active` hung there. It is answered at
/// once now, saying it was held back, and compaction runs once the hold is released.
#[test]
fn a_compact_during_a_backup_hold_answers_at_once_and_compacts_after_it() {
    let store = filled_store(40);
    let engine = std::sync::Arc::new(store.open());
    block_on(async {
        engine.seal_active().await.unwrap();
        // Mail to reclaim once the hold is over.
        engine.expunge(ACCOUNT, INBOX, &(1..=40).filter(|uid| uid % 4 != 0).collect::<Vec<_>>()).await.unwrap();
        engine.prune_deleted(ACCOUNT).await.unwrap();
    });
    let bytes_held = segment_bytes(&engine, store.directory.path());

    let (answer, answered) = std::sync::mpsc::channel();
    let asking = std::sync::Arc::clone(&engine);
    std::thread::spawn(move || answer.send(block_on(asking.compact())));
    // A bound for a hang, not a speed: the answer needs no IO at all.
    let held = answered.recv_timeout(std::time::Duration::from_secs(120)).expect("compact answers during a hold");
    let held = held.unwrap();
    assert!(held.held_for_backup, "{held:?}");
    assert_eq!(held.segments_compacted, 0);
    assert_eq!(segment_bytes(&engine, store.directory.path()), bytes_held, "nothing removed under the hold");

    block_on(engine.release_backup_hold()).unwrap();
    let after = block_on(engine.compact()).unwrap();
    assert!(!after.held_for_backup, "{after:?}");
    assert!(after.segments_compacted > 0, "{after:?}");
    assert!(segment_bytes(&engine, store.directory.path()) < bytes_held / 2);
}
