//! A full filesystem (fault injection around the real files: `FaultController::fill_disk`).
//! Writes that need room are refused with `StorageFull` and change nothing; reads go on, and
//! small changes (flags, deletions, the logins' access log, a prune) go on in the room kept
//! for them;
//! a restart while the disk is full opens the store; once space is freed, writes resume
//! without a restart, segment rotation included; and nothing acknowledged is lost, across
//! power losses too.
//!
//! Session 25 found, by filling a real 400 MB ext4 filesystem over LMTP, that a rotation which
//! could not preallocate the next segment stopped the whole shard, reads included, until a
//! restart.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use common::{START_UNIX_MS, TestStore, segment_paths};
use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{AccessEvent, Engine, EngineError, FlagChange, Flags, INBOX, block_on};

const ACCOUNT: &str = "full@example.org";
/// Bodies large enough that a few of them fill a test segment (1 MiB) and its reservation.
const BODY_BYTES: usize = 200 * 1024;
/// Appends tried while the disk is full before the test gives up on seeing a refusal: the
/// active segment's reservation (at most 8 MiB past its log) runs out long before, for the
/// 1 KiB ones too (they have about `BODY_BYTES` of it to fill).
const APPENDS_WHILE_FULL_MAX: usize = 1000;

fn body(number: usize) -> Vec<u8> {
    sized_body(number, BODY_BYTES)
}

fn sized_body(number: usize, bytes: usize) -> Vec<u8> {
    let mut body = format!("Subject: message {number}\r\n\r\n").into_bytes();
    body.resize(bytes, b'a' + (number % 26) as u8);
    body
}

/// A one-shard test store (1 MiB segments) on files that fail as the returned controller
/// says, and its engine.
fn faulty_store(seed: u64) -> (TestStore, FaultController, Engine) {
    let store = TestStore::new(1);
    let controller = FaultController::new(seed);
    let engine = open_faulty(&store, &controller);
    (store, controller, engine)
}

fn open_faulty(store: &TestStore, controller: &FaultController) -> Engine {
    let faults = controller.clone();
    Engine::open_with(&store.config, &store.token.hsm, move |_, directory| {
        FaultyStorage::new(directory, faults.clone())
    })
    .unwrap()
}

/// Appends bodies of `bytes` until the engine refuses; returns the uids and bodies it
/// acknowledged, and the refusal.
async fn append_until_refused(engine: &Engine, first: usize, bytes: usize) -> (Vec<(u32, Vec<u8>)>, EngineError) {
    let mut acknowledged = Vec::new();
    for number in first..first + APPENDS_WHILE_FULL_MAX {
        match engine.append(ACCOUNT, INBOX, sized_body(number, bytes), Flags::default(), None).await {
            Ok(uid) => acknowledged.push((uid, sized_body(number, bytes))),
            Err(error) => return (acknowledged, error),
        }
    }
    panic!("{APPENDS_WHILE_FULL_MAX} appends on a full disk were all accepted");
}

async fn assert_holds_exactly(engine: &Engine, messages: &[(u32, Vec<u8>)]) {
    let (_, listed) = engine.list_messages(ACCOUNT, INBOX).await.unwrap();
    let listed: Vec<u32> = listed.iter().map(|message| message.uid).collect();
    let expected: Vec<u32> = messages.iter().map(|(uid, _)| *uid).collect();
    assert_eq!(listed, expected, "the mailbox holds the acknowledged messages and nothing else");
    for (uid, body) in messages {
        assert_eq!(&engine.fetch(ACCOUNT, INBOX, *uid).await.unwrap().body, body, "uid {uid}");
    }
}

#[test]
fn a_full_disk_refuses_writes_serves_reads_and_recovers_once_space_is_freed() {
    let (store, controller, engine) = faulty_store(25);
    let mut kept = Vec::new();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for number in 0..8 {
            let uid = engine.append(ACCOUNT, INBOX, body(number), Flags::default(), None).await.unwrap();
            kept.push((uid, body(number)));
        }

        controller.fill_disk();
        let (accepted, refusal) = append_until_refused(&engine, 100, BODY_BYTES).await;
        kept.extend(accepted);
        assert!(matches!(refusal, EngineError::StorageFull { shard_id: 0 }), "{refusal:?}");
        // Small deliveries go on a little longer, until only the room kept for small changes
        // is left.
        let (accepted, refusal) = append_until_refused(&engine, 300, 1024).await;
        kept.extend(accepted);
        assert!(matches!(refusal, EngineError::StorageFull { shard_id: 0 }), "{refusal:?}");
        assert!(refusal.to_string().contains("out of disk space"), "{refusal}");
        assert!(controller.counts().out_of_space > 0, "the disk said it was full");
        let stats = engine.stats().await.unwrap();
        assert_eq!(stats[0].out_of_space_since_unix_ms, Some(START_UNIX_MS), "stats tell the operator");
        // The shard serves reads, and refuses again rather than failing.
        assert_holds_exactly(&engine, &kept).await;
        let again = engine.append(ACCOUNT, INBOX, body(999), Flags::default(), None).await;
        assert!(matches!(again, Err(EngineError::StorageFull { .. })), "{again:?}");
        // Small changes still fit in the room kept for them: flags, deletions, logins.
        let (first_uid, _) = kept[0];
        let seen = FlagChange::Add(Flags { system: Flags::SEEN, keywords: Vec::new() });
        engine.change_flags(ACCOUNT, INBOX, &[first_uid], seen).await.unwrap();
        engine.expunge(ACCOUNT, INBOX, &[first_uid]).await.unwrap();
        kept.remove(0);
        let login = AccessEvent {
            at_unix_ms: 1,
            remote_ip: "127.0.0.1".into(),
            protocol: "imap".into(),
            method: "password".into(),
            success: true,
        };
        engine.record_access(ACCOUNT, login).await.unwrap();
        // And an operator's prune of the deleted mail, so that compaction can free its space.
        assert_eq!(engine.prune_deleted(ACCOUNT).await.unwrap(), 1);
    });
    // A crash, or a restart, while the disk is still full: the store opens and serves reads.
    drop(engine);
    controller.power_loss().unwrap();
    let engine = open_faulty(&store, &controller);
    block_on(async {
        assert_holds_exactly(&engine, &kept).await;
        let refused = engine.append(ACCOUNT, INBOX, body(998), Flags::default(), None).await;
        assert!(matches!(refused, Err(EngineError::StorageFull { .. })), "{refused:?}");
        let segments_while_full = segment_paths(store.directory.path(), 0).len();

        controller.free_disk();
        // The same size that was refused now fits; the full segment is rotated at once.
        for number in 200..204 {
            let uid = engine.append(ACCOUNT, INBOX, body(number), Flags::default(), None).await.unwrap();
            kept.push((uid, body(number)));
        }
        assert!(
            segment_paths(store.directory.path(), 0).len() > segments_while_full,
            "rotation resumed once space was freed"
        );
        assert_eq!(engine.stats().await.unwrap()[0].out_of_space_since_unix_ms, None);
        assert_holds_exactly(&engine, &kept).await;
    });
    drop(engine);
    controller.power_loss().unwrap();

    let engine = store.open();
    block_on(assert_holds_exactly(&engine, &kept));
}

#[test]
fn a_backup_seal_on_a_full_disk_is_refused_and_the_shard_goes_on() {
    let (_store, controller, engine) = faulty_store(26); // the store lives as long as the test
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        let uid = engine.append(ACCOUNT, INBOX, body(1), Flags::default(), None).await.unwrap();
        controller.fill_disk();
        let sealed = engine.seal_active().await;
        assert!(matches!(sealed, Err(EngineError::StorageFull { .. })), "{sealed:?}");
        assert_eq!(engine.fetch(ACCOUNT, INBOX, uid).await.unwrap().body, body(1));
        // The refused backup holds compaction back no more than one that never started.
        assert!(!engine.compact().await.unwrap().held_for_backup);
        controller.free_disk();
        let sealed = engine.seal_active().await.unwrap();
        assert_eq!(sealed, vec![vec![1]], "the segment that was active is sealed now");
        let next = engine.append(ACCOUNT, INBOX, body(2), Flags::default(), None).await.unwrap();
        assert_eq!(engine.fetch(ACCOUNT, INBOX, next).await.unwrap().body, body(2));
    });
}

/// `messages` of `BODY_BYTES` (six fill a test segment); all but the last deleted.
/// Returns the last one's uid.
async fn sealed_segments_of_deleted_mail(engine: &Engine, messages: usize) -> u32 {
    engine.create_account(ACCOUNT).await.unwrap();
    let mut uids = Vec::new();
    for number in 0..messages {
        uids.push(engine.append(ACCOUNT, INBOX, body(number), Flags::default(), None).await.unwrap());
    }
    let last = uids.pop().unwrap();
    engine.expunge(ACCOUNT, INBOX, &uids).await.unwrap();
    last
}

fn spare_files(store: &TestStore) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store.directory.path().join("shard-000"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "spare"))
        .collect()
}

#[test]
fn on_a_full_disk_a_prune_is_compacted_from_the_sealed_segments_first() {
    let (store, controller, engine) = faulty_store(27);
    block_on(async {
        // Seventeen: two sealed segments, and the active one holds deleted mail too, so it must
        // be sealed (a new segment, which the full disk has no room for) to be rewritten.
        let last = sealed_segments_of_deleted_mail(&engine, 17).await;
        let segments_before = segment_paths(store.directory.path(), 0).len();
        controller.fill_disk();
        assert_eq!(engine.prune_deleted(ACCOUNT).await.unwrap(), 16);
        let report = engine.compact().await.unwrap();
        assert!(report.segments_compacted >= 2 && report.bytes_reclaimed > 0, "{report:?}");
        assert!(report.out_of_space, "the active segment waits for room: {report:?}");
        assert!(segment_paths(store.directory.path(), 0).len() < segments_before);
        assert_eq!(engine.fetch(ACCOUNT, INBOX, last).await.unwrap().body, body(16));

        controller.free_disk();
        let report = engine.compact().await.unwrap();
        assert!(!report.out_of_space && report.segments_compacted == 1, "the active one now: {report:?}");
        assert_eq!(engine.fetch(ACCOUNT, INBOX, last).await.unwrap().body, body(16));
    });
}

#[test]
fn on_a_full_disk_compacted_segments_go_back_to_the_filesystem_not_to_the_spares() {
    let (store, controller, engine) = faulty_store(28);
    assert!(store.config.recycled_segments_max > 0, "spares are kept when there is room");
    block_on(async {
        let last = sealed_segments_of_deleted_mail(&engine, 16).await;
        // The deleted mail's retention window ends: compaction may drop it.
        store.clock.advance_ms(15 * 24 * 3600 * 1000);
        controller.fill_disk();
        let report = engine.compact().await.unwrap();
        assert!(report.segments_compacted >= 2 && report.bytes_reclaimed > 0, "{report:?}");
        assert_eq!(
            spare_files(&store),
            Vec::<std::path::PathBuf>::new(),
            "a full disk gets the compacted files' space back"
        );
        assert_eq!(engine.fetch(ACCOUNT, INBOX, last).await.unwrap().body, body(15));

        controller.free_disk();
        let next = engine.append(ACCOUNT, INBOX, body(16), Flags::default(), None).await.unwrap();
        assert_eq!(engine.fetch(ACCOUNT, INBOX, next).await.unwrap().body, body(16));
    });
}

/// A prune on a full disk is answered, but its `compaction-forced` file has no room (a new
/// file). It is written before the first commit once there is room, and from then on a restart
/// resumes the rewrite. Before, the failed write counted as written: the file never came, and
/// a restart forgot the active segment that the prune had left to rewrite.
#[test]
fn a_prune_made_on_a_full_disk_is_written_down_once_there_is_room() {
    let (store, controller, engine) = faulty_store(29);
    let forced_file = store.directory.path().join("shard-000").join("compaction-forced");
    let last = block_on(async {
        let last = sealed_segments_of_deleted_mail(&engine, 17).await;
        controller.fill_disk();
        assert_eq!(engine.prune_deleted(ACCOUNT).await.unwrap(), 16);
        assert!(!forced_file.exists(), "a full disk has no room for the file");
        let report = engine.compact().await.unwrap();
        assert!(report.out_of_space, "the active segment waits for room: {report:?}");
        assert!(report.rewrite_unrecorded, "the operator is told: {report:?}");

        controller.free_disk();
        let seen = FlagChange::Add(Flags { system: Flags::SEEN, keywords: Vec::new() });
        engine.change_flags(ACCOUNT, INBOX, &[last], seen).await.unwrap();
        last
    });
    let forced = std::fs::read_to_string(&forced_file).expect("written before the next commit");
    assert!(!forced.trim().is_empty(), "{forced}");

    drop(engine);
    controller.power_loss().unwrap();
    let engine = open_faulty(&store, &controller);
    block_on(async {
        let report = engine.compact().await.unwrap();
        assert!(report.segments_compacted >= 1, "the restart resumed the rewrite: {report:?}");
        assert!(!report.out_of_space && !report.rewrite_unrecorded, "{report:?}");
        assert_eq!(engine.fetch(ACCOUNT, INBOX, last).await.unwrap().body, body(16));
    });
}
