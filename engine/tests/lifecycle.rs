//! Account lifecycle with a controllable clock: a closed account is unreachable, reopening
//! inside the delay restores it, purge happens once the delay has passed (by the timer or at
//! once on request), and after a purge the account's data key is gone everywhere: no wrapped
//! copy of it in any file (old copies included) unwraps, and the store still opens from its
//! log alone. A crash at any write of a purge ends before or after it, never half.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::TestStore;
use mailvault_engine::format::{FRAME_HEADER_BYTES, RecordKind};
use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{Engine, EngineError, Flags, INBOX, PurgeObserver, PurgeReport, SHRED_PENDING_FILE, block_on};
use mailvault_hsm::WrappedDek;

const LEAVER: &str = "leaver@example.org";
const STAYER: &str = "stayer@example.org";
const DAY_MS: i64 = 24 * 3600 * 1000;
const MARKER: &str = "PURGE-MARKER-5f1c2e";

fn body(account: &str, index: usize) -> Vec<u8> {
    let mut body = format!("Subject: {account} {index}\r\n\r\n{MARKER} {account} {index}\r\n").into_bytes();
    body.resize(2000 + index, b'x');
    body
}

/// Two accounts with a few messages each (one expunged, so there is deleted mail too).
fn populate(engine: &Engine) {
    block_on(async {
        for account in [LEAVER, STAYER] {
            engine.create_account(account).await.unwrap();
            for index in 0..6 {
                engine.append(account, INBOX, body(account, index), Flags::default(), None).await.unwrap();
            }
            engine.expunge(account, INBOX, &[2]).await.unwrap();
        }
    });
}

/// Everything observable about an open account.
fn observe(engine: &Engine, account: &str) -> String {
    block_on(async {
        let mut state = format!("{:?}\n", engine.list_mailboxes(account).await.unwrap());
        let (_, messages) = engine.list_messages(account, INBOX).await.unwrap();
        for message in messages {
            let fetched = engine.fetch(account, INBOX, message.uid).await.unwrap();
            let _ = writeln!(state, "{message:?} {}", blake3::hash(&fetched.body));
        }
        let _ = write!(state, "{:?}", engine.list_deleted(account).await.unwrap());
        state
    })
}

fn is_closed<T: std::fmt::Debug>(result: &Result<T, EngineError>) -> bool {
    matches!(result, Err(EngineError::AccountClosed { .. }))
}

fn every_file(directory: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(every_file(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every wrapped key in every segment (`KeyWrapped` frames, by account) and checkpoint (the
/// checkpoint's own wrapped key, which guards its table of data keys) under `directory`.
fn wrapped_keys(directory: &Path) -> Vec<(Option<u64>, WrappedDek)> {
    let mut found = Vec::new();
    for path in every_file(directory) {
        let bytes = std::fs::read(&path).unwrap();
        if path.extension().is_some_and(|extension| extension == "seg") {
            for span in common::frame_spans(&bytes) {
                if span.header.kind == RecordKind::KeyWrapped as u8 {
                    let payload = &bytes[span.offset + FRAME_HEADER_BYTES..][..span.header.payload_length as usize];
                    found.push((Some(span.header.account_id), WrappedDek::from_bytes(payload).unwrap()));
                }
            }
        } else if path.file_name().is_some_and(|name| name == "checkpoint") {
            let length = u32::from_le_bytes(bytes[48..52].try_into().unwrap()) as usize;
            found.push((None, WrappedDek::from_bytes(&bytes[64..64 + length]).unwrap()));
        }
    }
    found
}

fn account_id_of(directory: &Path, shards: usize) -> Vec<u64> {
    // The ids with an `AccountPurged` record: what the purge left behind in the clear.
    let mut ids = Vec::new();
    for shard in 0..shards {
        for path in common::segment_paths(directory, shard) {
            let bytes = std::fs::read(path).unwrap();
            for span in common::frame_spans(&bytes) {
                if span.header.kind == RecordKind::AccountPurged as u8 {
                    ids.push(span.header.account_id);
                }
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn remove_checkpoints(directory: &Path, shards: usize) {
    for shard in 0..shards {
        let path = directory.join(format!("shard-{shard:03}")).join("checkpoint");
        if path.exists() {
            std::fs::remove_file(path).unwrap();
        }
    }
}

#[test]
fn a_closed_account_is_unreachable_and_reopening_inside_the_delay_restores_everything() {
    let store = TestStore::new(2);
    let engine = store.open();
    populate(&engine);
    let before = observe(&engine, LEAVER);
    let purge_at = block_on(engine.close_account(LEAVER, None)).unwrap();
    assert_eq!(purge_at, common::START_UNIX_MS + 37 * DAY_MS);

    assert!(is_closed(&block_on(engine.list_mailboxes(LEAVER))));
    assert!(is_closed(&block_on(engine.fetch(LEAVER, INBOX, 1))));
    assert!(is_closed(&block_on(engine.credentials(LEAVER))));
    assert!(is_closed(&block_on(engine.append(LEAVER, INBOX, body(LEAVER, 9), Flags::default(), None))));
    assert!(is_closed(&block_on(engine.close_account(LEAVER, None))));
    let states = block_on(engine.account_states()).unwrap();
    let leaver = states.iter().find(|state| state.name == LEAVER).unwrap();
    assert_eq!(leaver.purge_after_unix_ms, Some(purge_at));
    assert!(!observe(&engine, STAYER).is_empty());

    // The state survives a restart, from the checkpoint and from the log alone.
    drop(engine);
    remove_checkpoints(store.directory.path(), 2);
    let engine = store.open();
    assert!(is_closed(&block_on(engine.list_mailboxes(LEAVER))));

    store.clock.advance_ms(10 * DAY_MS);
    assert!(block_on(engine.purge_due()).unwrap().purged_accounts.is_empty(), "purged before its time");
    block_on(engine.reopen_account(LEAVER)).unwrap();
    assert_eq!(observe(&engine, LEAVER), before);
    assert!(matches!(block_on(engine.reopen_account(LEAVER)), Err(EngineError::AccountNotClosed(_))));
    assert!(matches!(block_on(engine.purge_account(LEAVER)), Err(EngineError::AccountNotClosed(_))));
    store.clock.advance_ms(30 * DAY_MS);
    assert!(block_on(engine.purge_due()).unwrap().purged_accounts.is_empty(), "a reopened account was purged");

    // Closed again: the delay counts from the new closing.
    block_on(engine.close_account(LEAVER, None)).unwrap();
    store.clock.advance_ms(37 * DAY_MS - 1);
    assert!(block_on(engine.purge_due()).unwrap().purged_accounts.is_empty(), "purged before its time");
    store.clock.advance_ms(1);
    assert_eq!(block_on(engine.purge_due()).unwrap().purged_accounts, [LEAVER]);
    assert!(matches!(block_on(engine.list_mailboxes(LEAVER)), Err(EngineError::NoSuchAccount(_))));
}

/// Compaction rewrites a closed account's records into a snapshot: the closure must be in it,
/// so that the log alone (no checkpoint) still says the account is closed.
#[test]
fn closure_survives_compaction_snapshots_and_a_full_replay() {
    let store = TestStore::new(1);
    let engine = store.open();
    populate(&engine);
    let before = observe(&engine, LEAVER);
    let purge_at = block_on(engine.close_account(LEAVER, Some(100))).unwrap();
    // Pruning the other account forces the segment holding both accounts' records to be
    // rewritten: every account in it, the closed one included, gets a snapshot.
    block_on(engine.prune_deleted(STAYER)).unwrap();
    let report = block_on(engine.compact()).unwrap();
    assert!(report.segments_compacted >= 1, "{report:?}");
    drop(engine);
    remove_checkpoints(store.directory.path(), 1);
    let engine = store.open();
    let states = block_on(engine.account_states()).unwrap();
    let leaver = states.iter().find(|state| state.name == LEAVER).unwrap();
    assert_eq!(leaver.purge_after_unix_ms, Some(purge_at));
    assert!(is_closed(&block_on(engine.list_mailboxes(LEAVER))));
    block_on(engine.reopen_account(LEAVER)).unwrap();
    assert_eq!(observe(&engine, LEAVER), before);
}

#[test]
fn purge_delays_outside_37_days_to_a_year_are_refused() {
    let store = TestStore::new(1);
    let engine = store.open();
    populate(&engine);
    for days in [0, 36, 366, u32::MAX] {
        let refused = block_on(engine.close_account(LEAVER, Some(days)));
        assert!(matches!(refused, Err(EngineError::InvalidInput { what: "purge delay", .. })), "{days}: {refused:?}");
    }
    assert_eq!(block_on(engine.close_account(LEAVER, Some(365))).unwrap(), common::START_UNIX_MS + 365 * DAY_MS);
    drop(engine);
    let mut config = store.config.clone();
    config.account_purge_delay_days = 30;
    assert!(Engine::open(&config, &store.token.hsm).is_err(), "a store opened with a 30-day purge delay");
}

/// Records what the purge told its observer (the backups' seam).
#[derive(Debug, Default)]
struct RecordingObserver {
    reports: Mutex<Vec<PurgeReport>>,
}

impl PurgeObserver for RecordingObserver {
    fn after_shredding(&self, report: &PurgeReport) -> Result<(), String> {
        self.reports.lock().unwrap().push(report.clone());
        Ok(())
    }
}

#[test]
fn purge_after_the_delay_shreds_the_key_so_no_copy_of_it_unwraps_anywhere() {
    let mut store = TestStore::new(2);
    let observer = Arc::new(RecordingObserver::default());
    store.config.purge_observer = Some(observer.clone());
    let engine = store.open();
    populate(&engine);
    block_on(engine.close_account(LEAVER, None)).unwrap();
    drop(engine); // checkpoints written: the "old disk" below has them
    let old_disk = tempfile::tempdir().unwrap();
    common::copy_store(store.directory.path(), old_disk.path());

    let engine = store.open();
    store.clock.advance_ms(37 * DAY_MS);
    let stayer_before = observe(&engine, STAYER);
    let report = block_on(engine.purge_due()).unwrap();
    assert_eq!(report.purged_accounts, [LEAVER]);
    assert_eq!(observer.reports.lock().unwrap().as_slice(), std::slice::from_ref(&report));
    assert!(matches!(block_on(engine.list_mailboxes(LEAVER)), Err(EngineError::NoSuchAccount(_))));
    assert!(block_on(engine.account_states()).unwrap().iter().all(|state| state.name != LEAVER));
    assert_eq!(observe(&engine, STAYER), stayer_before);
    block_on(engine.compact()).unwrap();
    drop(engine);
    assert!(!store.directory.path().join(SHRED_PENDING_FILE).exists());

    // Only the new KEK is left in the HSM.
    let session = store.token.hsm.session().unwrap();
    assert_eq!(session.status().unwrap().kek_versions, [report.kek_version]);
    // No wrapped key of the purged account, and no checkpoint key of the old checkpoints,
    // unwraps: not in the live files, not in the copy taken before the purge.
    let purged = account_id_of(store.directory.path(), 2);
    assert_eq!(purged.len(), 1, "one AccountPurged record carried in the clear");
    let old = wrapped_keys(old_disk.path());
    assert!(old.iter().any(|(account, _)| *account == Some(purged[0])));
    assert!(old.iter().any(|(account, _)| account.is_none()), "the old disk has checkpoints");
    for (account, wrapped) in &old {
        assert!(session.unwrap_dek(wrapped).is_err(), "an old wrapped key of {account:?} still unwraps");
    }
    for (account, wrapped) in wrapped_keys(store.directory.path()).iter().filter(|(account, _)| account.is_none()) {
        assert_eq!(wrapped.kek_version(), report.kek_version, "a live checkpoint key {account:?} under an old KEK");
    }
    // Live files: every copy of the purged key fails; surviving accounts and the checkpoints
    // have a copy under the new KEK (their older copies, under the destroyed one, fail too).
    let live = wrapped_keys(store.directory.path());
    for (account, wrapped) in &live {
        let unwraps = session.unwrap_dek(wrapped).is_ok();
        assert_eq!(unwraps, wrapped.kek_version() == report.kek_version, "live wrapped key of {account:?}");
        assert!(!(unwraps && *account == Some(purged[0])), "the purged key unwraps");
    }
    for account in live.iter().filter_map(|(account, _)| *account).filter(|account| *account != purged[0]) {
        let current = live.iter().filter(|(owner, _)| *owner == Some(account));
        assert!(current.clone().any(|(_, wrapped)| wrapped.kek_version() == report.kek_version), "{account}");
    }
    // The purged account's mail left every file (compaction rewrote its segments), and the
    // marker never was in any file in the clear.
    for path in every_file(store.directory.path()) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(MARKER.len()).any(|window| window == MARKER.as_bytes()), "{path:?}");
        if path.extension().is_some_and(|extension| extension == "seg") {
            for span in common::frame_spans(&bytes) {
                let is_body = span.header.kind == RecordKind::MessageAppended as u8;
                assert!(!(is_body && span.header.account_id == purged[0]), "a purged body is still in {path:?}");
            }
        }
    }

    // The log alone (no checkpoint) still opens: old keys under the destroyed KEK wait for the
    // re-wrapped ones; the purged account's records are skipped.
    remove_checkpoints(store.directory.path(), 2);
    let engine = store.open();
    assert_eq!(observe(&engine, STAYER), stayer_before);
    assert!(matches!(block_on(engine.list_mailboxes(LEAVER)), Err(EngineError::NoSuchAccount(_))));
    // The id is never handed out again: a new account of the same name is a new account.
    block_on(engine.create_account(LEAVER)).unwrap();
    assert_eq!(block_on(engine.list_messages(LEAVER, INBOX)).unwrap().1.len(), 0);
    drop(engine);
    remove_checkpoints(store.directory.path(), 2);
    let engine = store.open();
    assert_eq!(block_on(engine.list_messages(LEAVER, INBOX)).unwrap().1.len(), 0);
}

/// Fails its first call: the backups' step failing must fail the purge and keep it pending.
#[derive(Debug, Default)]
struct FailingOnceObserver {
    calls: Mutex<u32>,
}

impl PurgeObserver for FailingOnceObserver {
    fn after_shredding(&self, _report: &PurgeReport) -> Result<(), String> {
        let mut calls = self.calls.lock().unwrap();
        *calls += 1;
        if *calls == 1 { Err("backup target unreachable".into()) } else { Ok(()) }
    }
}

#[test]
fn a_failing_purge_observer_fails_the_purge_and_the_next_open_runs_it_again() {
    let mut store = TestStore::new(1);
    let observer = Arc::new(FailingOnceObserver::default());
    store.config.purge_observer = Some(observer.clone());
    let engine = store.open();
    populate(&engine);
    block_on(engine.close_account(LEAVER, None)).unwrap();
    let failed = block_on(engine.purge_account(LEAVER));
    assert!(matches!(failed, Err(EngineError::PurgeUnfinished(_))), "{failed:?}");
    assert!(store.directory.path().join(SHRED_PENDING_FILE).exists());
    // The live store is already shredded: the account is gone, one KEK left.
    assert!(matches!(block_on(engine.list_mailboxes(LEAVER)), Err(EngineError::NoSuchAccount(_))));
    drop(engine);
    let engine = store.open();
    assert_eq!(*observer.calls.lock().unwrap(), 2, "the open did not run the observer again");
    // The retry reused the KEK version the failed attempt created: no versions pile up.
    assert_eq!(store.token.hsm.session().unwrap().status().unwrap().kek_versions, [2]);
    assert!(!store.directory.path().join(SHRED_PENDING_FILE).exists());
    assert_eq!(store.token.hsm.session().unwrap().status().unwrap().kek_versions.len(), 1);
    assert!(!observe(&engine, STAYER).is_empty());
}

#[test]
fn purge_now_works_only_on_closed_accounts_and_the_old_log_replays_without_checkpoints() {
    let store = TestStore::new(1);
    let engine = store.open();
    populate(&engine);
    let stayer_before = observe(&engine, STAYER);
    assert!(matches!(block_on(engine.purge_account(LEAVER)), Err(EngineError::AccountNotClosed(_))));
    assert!(matches!(block_on(engine.purge_account("nobody")), Err(EngineError::NoSuchAccount(_))));
    block_on(engine.close_account(LEAVER, Some(365))).unwrap();
    let report = block_on(engine.purge_account(LEAVER)).unwrap();
    assert_eq!(report.purged_accounts, [LEAVER]);
    assert_eq!(report.destroyed_kek_versions, [1]);
    // More history after the purge, then a second purge: two rotations in one log.
    block_on(engine.append(STAYER, INBOX, body(STAYER, 50), Flags::default(), None)).unwrap();
    block_on(engine.create_account("second@example.org")).unwrap();
    block_on(engine.close_account("second@example.org", None)).unwrap();
    block_on(engine.purge_account("second@example.org")).unwrap();
    let stayer_after = observe(&engine, STAYER);
    assert_ne!(stayer_after, stayer_before);
    drop(engine);
    remove_checkpoints(store.directory.path(), 1);
    let engine = store.open();
    assert_eq!(observe(&engine, STAYER), stayer_after);
    assert_eq!(block_on(engine.account_states()).unwrap().len(), 1);
}

#[test]
fn the_lifecycle_timer_purges_in_the_background_once_the_clock_passes_the_delay() {
    let mut store = TestStore::new(1);
    store.config.lifecycle_interval = std::time::Duration::from_millis(20);
    let engine = store.open();
    populate(&engine);
    block_on(engine.close_account(LEAVER, None)).unwrap();
    store.clock.advance_ms(37 * DAY_MS + 1);
    // Waits for the timer (no timed assertion: the bound only keeps a broken timer from
    // hanging the test run).
    let mut purged = false;
    for _ in 0..3000 {
        if block_on(engine.account_states()).unwrap().iter().all(|state| state.name != LEAVER) {
            purged = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(purged, "the timer never purged the account");
}

#[test]
fn a_crash_at_any_write_of_a_purge_ends_before_or_after_it_never_half() {
    let mut outcomes = (0, 0);
    let mut crashed_points = 0;
    for crash_at in 0..24 {
        let store = TestStore::new(2);
        let engine = store.open();
        populate(&engine);
        let leaver_before = observe(&engine, LEAVER);
        let stayer_before = observe(&engine, STAYER);
        block_on(engine.close_account(LEAVER, None)).unwrap();
        drop(engine);

        let controller = FaultController::new(crash_at);
        let faults = controller.clone();
        let engine = Engine::open_with(&store.config, &store.token.hsm, move |_, directory| {
            FaultyStorage::new(directory, faults.clone())
        })
        .unwrap();
        controller.crash_after_writes(crash_at);
        let finished = block_on(engine.purge_account(LEAVER)).is_ok() && !controller.has_crashed();
        crashed_points += u32::from(controller.has_crashed());
        controller.crash_now();
        drop(engine);
        controller.power_loss().unwrap();

        // The next open finishes the shredding (if the purge record is durable) or leaves the
        // account closed and whole.
        let engine = store.open();
        assert!(!store.directory.path().join(SHRED_PENDING_FILE).exists(), "crash at {crash_at}");
        assert_eq!(observe(&engine, STAYER), stayer_before, "crash at {crash_at}");
        let session = store.token.hsm.session().unwrap();
        assert_eq!(session.status().unwrap().kek_versions.len(), 1, "crash at {crash_at}");
        let states = block_on(engine.account_states()).unwrap();
        if states.iter().any(|state| state.name == LEAVER) {
            block_on(engine.reopen_account(LEAVER)).unwrap();
            assert_eq!(observe(&engine, LEAVER), leaver_before, "crash at {crash_at}");
            outcomes.0 += 1;
        } else {
            let purged = account_id_of(store.directory.path(), 2);
            for (account, wrapped) in wrapped_keys(store.directory.path()) {
                if account.is_some_and(|account| purged.contains(&account)) {
                    assert!(session.unwrap_dek(&wrapped).is_err(), "crash at {crash_at}");
                }
            }
            outcomes.1 += 1;
        }
        drop(engine);
        remove_checkpoints(store.directory.path(), 2);
        let engine = store.open();
        assert_eq!(observe(&engine, STAYER), stayer_before, "crash at {crash_at}, log alone");
        if finished {
            break;
        }
    }
    assert!(outcomes.0 >= 1 && outcomes.1 >= 1, "before/after outcomes: {outcomes:?}");
    assert!(crashed_points >= 4, "the purge crashed at only {crashed_points} points");
}

/// A purge dropped while it holds the one-purge-at-a-time gate (an admin command cancelled by
/// a stopping server, say) gives the gate back: the next purge runs. Before, it waited forever.
#[test]
fn a_purge_dropped_halfway_leaves_the_next_one_free_to_run() {
    let store = TestStore::new(1);
    let engine = store.open();
    populate(&engine);
    block_on(engine.close_account(LEAVER, Some(365))).unwrap();
    block_on(engine.close_account(STAYER, Some(365))).unwrap();
    let shred_pending = store.directory.path().join(SHRED_PENDING_FILE);
    block_on(async {
        let mut purge = std::pin::pin!(engine.purge_account(LEAVER));
        // Polled until it holds the gate: its first step under it marks the shred pending.
        for _ in 0..10_000 {
            let polled = futures_util::future::poll_immediate(purge.as_mut()).await;
            assert!(polled.is_none(), "the purge finished before it could be dropped halfway");
            if shred_pending.exists() {
                return;
            }
            compio::time::sleep(std::time::Duration::from_micros(100)).await;
        }
        panic!("the purge never took the gate");
    });
    // The bound only keeps a lost gate from hanging the test run.
    let (sender, receiver) = std::sync::mpsc::channel();
    let next = engine.clone();
    std::thread::spawn(move || {
        let _ = sender.send(block_on(next.purge_account(STAYER)).map(|report| report.purged_accounts));
    });
    let purged = receiver.recv_timeout(std::time::Duration::from_secs(120)).expect("the next purge never ran");
    assert_eq!(purged.unwrap(), [STAYER]);
}
