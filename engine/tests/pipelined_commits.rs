//! Pipelined group commit under crashes: many appends in flight at once split into several
//! commits that overlap (one written while the one before it syncs). The process "crashes" at
//! a chosen write and the power fails (each unsynced write kept, lost or torn at a sector);
//! after recovery every acknowledged append must be there, byte for byte, and every message
//! there must be one that was sent, whole.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::TestStore;
use mailvault_engine::format::{CrcSeed, commit_durable_gap, set_frame_flags};
use mailvault_engine::io::{FaultController, FaultyStorage};
use mailvault_engine::{Engine, Flags, OpenError, block_on};

const ACCOUNT: &str = "ann@example.org";
/// Appends in flight at once: 48 of 40 KiB pass the 512 KiB batch limit, so they form
/// several commits in flight together.
const APPENDS: usize = 48;
const BODY_BYTES: usize = 40 * 1024;

fn body(index: usize) -> Vec<u8> {
    body_of(index, BODY_BYTES)
}

fn body_of(index: usize, bytes: usize) -> Vec<u8> {
    let mut body = format!("Subject: message {index}\r\n\r\n").into_bytes();
    body.extend((0..bytes).map(|offset| b'a' + ((index + offset) % 26) as u8));
    body
}

fn try_open_faulty(store: &TestStore, controller: &FaultController) -> Result<Engine, OpenError> {
    let controller = controller.clone();
    let make = move |_: u32, directory: PathBuf| FaultyStorage::new(directory, controller.clone());
    Engine::open_with(&store.config, &store.token.hsm, make)
}

fn open_faulty(store: &TestStore, controller: &FaultController) -> Engine {
    try_open_faulty(store, controller).unwrap()
}

/// After a power loss: opens the store and checks it against what was sent and acknowledged;
/// what survived unacknowledged is then as good as acknowledged (later rounds keep it).
fn reopen_and_check(
    store: &TestStore,
    controller: &FaultController,
    (sent, acknowledged): (&[Vec<u8>], &mut BTreeMap<u32, Vec<u8>>),
    context: &str,
) {
    let engine =
        try_open_faulty(store, controller).unwrap_or_else(|error| panic!("{context}: the store did not open: {error}"));
    let present = stored(&engine);
    for (uid, body) in acknowledged.iter() {
        assert_eq!(present.get(uid), Some(body), "{context}: acknowledged uid {uid} lost or changed");
    }
    for (uid, body) in &present {
        assert!(sent.contains(body), "{context}: uid {uid} holds bytes no one sent");
    }
    acknowledged.extend(present);
}

/// Sends every append at once; returns the uid of each acknowledged one.
fn append_all(engine: &Engine, round: usize) -> BTreeMap<u32, Vec<u8>> {
    block_on(async {
        let appends = (0..APPENDS).map(|index| {
            let body = body(round * APPENDS + index);
            async move {
                let result = engine.append(ACCOUNT, "INBOX", body.clone(), Flags::default(), None).await;
                result.ok().map(|uid| (uid, body))
            }
        });
        let results = futures_util::future::join_all(appends).await;
        results.into_iter().flatten().collect()
    })
}

/// Every message in INBOX, by uid.
fn stored(engine: &Engine) -> BTreeMap<u32, Vec<u8>> {
    block_on(async {
        let (_, messages) = engine.list_messages(ACCOUNT, "INBOX").await.unwrap();
        let mut stored = BTreeMap::new();
        for info in messages {
            let message = engine.fetch(ACCOUNT, "INBOX", info.uid).await.unwrap();
            stored.insert(info.uid, message.body);
        }
        stored
    })
}

/// Waits (at most 10 s) for `condition`, which the engine makes true from its own threads.
/// Shorter than the 20 s after which held writes and paused syncs go on anyway, so that what
/// only happens once they do fails the test.
fn wait_for(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("waited 10 s for {what}");
}

/// A store's engine over faulty storage, with `ACCOUNT` created.
fn open_faulty_with_account(store: &TestStore, controller: &FaultController) -> Engine {
    let engine = open_faulty(store, controller);
    block_on(engine.create_account(ACCOUNT)).unwrap();
    engine
}

/// Appends message `index` (see [`body`]) to INBOX.
async fn append(engine: &Engine, index: usize) -> Result<u32, mailvault_engine::EngineError> {
    engine.append(ACCOUNT, "INBOX", body(index), Flags::default(), None).await
}

fn commits(engine: &Engine) -> u64 {
    block_on(engine.stats()).unwrap().iter().map(|shard| shard.commits).sum()
}

/// Group commit: appends that arrive while a commit's blocks are being written do not each
/// start a commit of their own (a write queued behind those blocks, then an fdatasync each);
/// they wait, and share the one commit that starts when the disk has taken the writes. (The
/// first commit here is written in several pieces; one of a single piece is written durably,
/// and holds nothing back: see the next test.)
#[test]
fn appends_arriving_while_a_commit_writes_wait_and_share_the_next_commit() {
    const LATER: usize = 10;
    let (store, controller) = (TestStore::new(1), FaultController::new(11));
    let engine = open_faulty_with_account(&store, &controller);
    let commits_before = commits(&engine);
    controller.hold_writes();
    let uids = std::thread::scope(|scope| {
        // 160 KiB: a commit of two 128 KiB pieces.
        let large = body_of(0, 160 * 1024);
        let first = scope.spawn(|| block_on(engine.append(ACCOUNT, "INBOX", large, Flags::default(), None)));
        wait_for("the first commit's writes", || controller.writes_waiting() == 2);
        let later =
            scope.spawn(|| block_on(futures_util::future::join_all((1..=LATER).map(|index| append(&engine, index)))));
        // Ample time for the later appends to reach the shard and, if it did not hold them,
        // for their commits' writes to reach the disk beside the held one.
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert_eq!(controller.writes_waiting(), 2, "a commit started while another was still writing");
        controller.release_writes();
        let mut uids = vec![first.join().unwrap().unwrap()];
        uids.extend(later.join().unwrap().into_iter().map(Result::unwrap));
        uids
    });
    assert_eq!(uids.iter().collect::<std::collections::BTreeSet<_>>().len(), LATER + 1);
    assert_eq!(commits(&engine) - commits_before, 2, "the later appends did not share one commit");
}

/// A commit of one piece is written durably (`O_DSYNC`: write and sync in one request), so
/// the shard cannot tell when its write part ends; holding the next batch until the whole
/// durable write completed made a lightly loaded shard commit one batch at a time (8 appends
/// in flight: 22% fewer appends per second, bench/README.md, session 33). An append that
/// arrives meanwhile starts its own commit at once, on a fresh block.
#[test]
fn a_commit_written_durably_does_not_hold_back_the_next() {
    let (store, controller) = (TestStore::new(1), FaultController::new(17));
    let engine = open_faulty_with_account(&store, &controller);
    controller.hold_writes();
    let uids = std::thread::scope(|scope| {
        let first = scope.spawn(|| block_on(append(&engine, 0)));
        wait_for("the first commit's write", || controller.writes_waiting() == 1);
        let second = scope.spawn(|| block_on(append(&engine, 1)));
        wait_for("the second commit's write, beside the first", || controller.writes_waiting() == 2);
        controller.release_writes();
        [first.join().unwrap().unwrap(), second.join().unwrap().unwrap()]
    });
    assert!(uids[0] < uids[1], "uids {uids:?}");
}

/// Pipelining: a commit's fdatasync does not hold up the next commit. Appends that arrive
/// while it syncs are planned and written meanwhile (its answer still goes out first).
#[test]
fn a_commit_is_written_while_the_one_before_it_syncs() {
    let (store, controller) = (TestStore::new(1), FaultController::new(13));
    let engine = open_faulty_with_account(&store, &controller);
    controller.pause_syncs();
    let uids = std::thread::scope(|scope| {
        let first = scope.spawn(|| block_on(append(&engine, 0)));
        wait_for("the first commit's sync", || controller.syncs_waiting() == 1);
        controller.hold_writes();
        let second = scope.spawn(|| block_on(append(&engine, 1)));
        wait_for("the second commit's write, during the first one's sync", || controller.writes_waiting() == 1);
        controller.release_writes();
        controller.release_syncs();
        [first.join().unwrap().unwrap(), second.join().unwrap().unwrap()]
    });
    assert!(uids[0] < uids[1], "uids {uids:?}");
}

/// Regression (session 14): a read never sees what is not durable. A listing that waited
/// behind a syncing commit used to be answered from the index as soon as that commit ended,
/// by when an append sent after it was already planned, its write not yet on the disk. After
/// a crash that append was gone, and its uid went to the next message delivered: a reader
/// that saw the uid would take one message for another (IMAP promises a uid names one message
/// for the life of its UIDVALIDITY).
#[test]
fn a_read_waiting_for_a_commit_sees_no_later_append_before_it_is_durable() {
    let (store, controller) = (TestStore::new(1), FaultController::new(17));
    let engine = open_faulty_with_account(&store, &controller);
    controller.pause_syncs();
    let (listed_sender, listed_receiver) = std::sync::mpsc::channel();
    let listed = std::thread::scope(|scope| {
        let first = scope.spawn(|| block_on(append(&engine, 0)));
        wait_for("the first commit's sync", || controller.syncs_waiting() == 1);
        controller.hold_writes();
        // The listing is queued at the shard before the second append: one thread sends both.
        let second = scope.spawn(|| {
            block_on(async {
                let mut listing = std::pin::pin!(engine.list_messages(ACCOUNT, "INBOX"));
                poll_once(listing.as_mut()).await;
                let second = append(&engine, 1);
                let listing = async { listed_sender.send(listing.await).unwrap() };
                futures_util::future::join(listing, second).await.1
            })
        });
        // Ample time for the shard to take the second append too, if it would plan it before
        // answering the listing (its write then waits, held).
        std::thread::sleep(std::time::Duration::from_millis(300));
        let answered_early = listed_receiver.try_recv().is_ok();
        assert!(!answered_early, "the listing was answered before the append it would show was durable");
        controller.release_syncs();
        let (_, listed) = listed_receiver.recv().unwrap().unwrap();
        first.join().unwrap().unwrap();
        // The second append is not durable: its write is still held. The process dies now.
        controller.crash_now();
        controller.release_writes();
        assert!(second.join().unwrap().is_err(), "an append whose write failed was acknowledged");
        listed
    });
    drop(engine);
    controller.power_loss().unwrap();
    let engine = open_faulty(&store, &controller);
    block_on(append(&engine, 2)).unwrap();
    let stored = stored(&engine);
    for info in &listed {
        assert!(stored.contains_key(&info.uid), "uid {} was listed, then lost in a crash", info.uid);
        assert!(stored[&info.uid] == body(0), "uid {} was listed, then given to another message", info.uid);
    }
    assert_eq!(listed.len(), 1, "the listing showed an append that was not durable");
}

/// Polls `future` once (a request future sends its request on the first poll).
async fn poll_once<F: Future>(mut future: std::pin::Pin<&mut F>) {
    std::future::poll_fn(|context| {
        let _ = future.as_mut().poll(context);
        std::task::Poll::Ready(())
    })
    .await;
}

/// A read of an account that no commit in flight changed is answered at once: it cannot see
/// anything that is not durable, so it waits for no sync (and drains no pipeline).
#[test]
fn a_read_of_an_account_no_commit_in_flight_changed_does_not_wait_for_the_sync() {
    const OTHER: &str = "bob@example.org";
    let (store, controller) = (TestStore::new(1), FaultController::new(19));
    let engine = open_faulty_with_account(&store, &controller);
    block_on(engine.create_account(OTHER)).unwrap();
    controller.pause_syncs();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| block_on(append(&engine, 0)));
        wait_for("the commit's sync", || controller.syncs_waiting() == 1);
        let listing = scope.spawn(|| block_on(engine.list_messages(OTHER, "INBOX")));
        wait_for("the other account's listing, while the commit syncs", || listing.is_finished());
        assert_eq!(controller.syncs_waiting(), 1, "the sync went on before the listing was answered");
        controller.release_syncs();
        assert!(listing.join().unwrap().unwrap().1.is_empty());
        first.join().unwrap().unwrap();
    });
}

/// A refusal that rests on a change still in flight waits for that change to be durable: a
/// second `create mailbox` of the same name is refused as a duplicate only once the first one
/// can no longer be lost (else a crash could leave the refused name missing).
#[test]
fn a_refusal_resting_on_a_change_in_flight_waits_until_that_change_is_durable() {
    let (store, controller) = (TestStore::new(1), FaultController::new(23));
    let engine = open_faulty_with_account(&store, &controller);
    controller.pause_syncs();
    std::thread::scope(|scope| {
        let first = scope.spawn(|| block_on(engine.create_mailbox(ACCOUNT, "Work")));
        wait_for("the first creation's sync", || controller.syncs_waiting() == 1);
        let second = scope.spawn(|| block_on(engine.create_mailbox(ACCOUNT, "Work")));
        // Ample time for the second creation to be planned, and refused if refusals went out
        // at once.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!second.is_finished(), "refused before the mailbox it collides with was durable");
        controller.release_syncs();
        first.join().unwrap().unwrap();
        let refusal = second.join().unwrap().unwrap_err();
        assert!(refusal.to_string().contains("exists"), "{refusal}");
    });
}

/// Every message a listing showed survives a crash, under the uid it was shown with, wherever
/// the crash falls among overlapping commits. Each task appends, lists once its append was
/// acknowledged, and appends again: listings land among commits in flight at many points of
/// the pipeline, with appends arriving after them.
#[test]
fn every_message_a_listing_showed_survives_a_crash_at_any_write() {
    let store = TestStore::new(1);
    let controller = FaultController::new(29);
    drop(open_faulty_with_account(&store, &controller));
    let (mut crashes_with_lost_answers, mut rounds_with_listings) = (0, 0);
    // Crashes from the 20th write of a round on: earlier ones come before the first answers,
    // so before any listing is sent.
    for (round, crash_after) in (20_u64..=44).enumerate() {
        let engine = open_faulty(&store, &controller);
        controller.crash_after_writes(crash_after);
        let (acknowledged, listings) = block_on(async {
            let appends_and_listings = (0..APPENDS).map(|index| {
                let engine = &engine;
                async move {
                    let first = append(engine, 2 * (round * APPENDS + index)).await.ok();
                    let listed = engine.list_messages(ACCOUNT, "INBOX").await.ok().map(|(_, messages)| messages);
                    let second = append(engine, 2 * (round * APPENDS + index) + 1).await.ok();
                    ([first, second], listed)
                }
            });
            let results = futures_util::future::join_all(appends_and_listings).await;
            let acknowledged: Vec<u32> = results.iter().flat_map(|(uids, _)| uids.iter().flatten().copied()).collect();
            let listings: Vec<_> = results.into_iter().filter_map(|(_, listed)| listed).collect();
            (acknowledged, listings)
        });
        let seen: BTreeMap<u32, [u8; 32]> =
            listings.iter().flatten().map(|message| (message.uid, message.digest)).collect();
        if acknowledged.len() < 2 * APPENDS {
            crashes_with_lost_answers += 1;
        }
        if !seen.is_empty() {
            rounds_with_listings += 1;
        }
        controller.crash_now();
        drop(engine);
        controller.power_loss().unwrap();
        let engine = open_faulty(&store, &controller);
        let (_, present) = block_on(engine.list_messages(ACCOUNT, "INBOX")).unwrap();
        let present: BTreeMap<u32, [u8; 32]> = present.iter().map(|message| (message.uid, message.digest)).collect();
        for (uid, digest) in &seen {
            assert_eq!(present.get(uid), Some(digest), "round {round}: uid {uid} was listed, then lost or replaced");
        }
    }
    assert!(crashes_with_lost_answers > 0, "no crash hit a commit in flight: the test checked nothing");
    assert!(rounds_with_listings > 0, "no listing was answered before its round's crash: the test checked nothing");
}

#[test]
fn overlapping_commits_crashed_at_any_write_keep_every_acknowledged_append() {
    let store = TestStore::new(1);
    let controller = FaultController::new(7);
    {
        let engine = open_faulty(&store, &controller);
        block_on(engine.create_account(ACCOUNT)).unwrap();
    }
    let mut acknowledged = BTreeMap::new();
    let mut sent: Vec<Vec<u8>> = Vec::new();
    let mut crashes_with_lost_answers = 0;
    for (round, crash_after) in [1_u64, 2, 3, 4, 5, 7, 9, 12].into_iter().enumerate() {
        let engine = open_faulty(&store, &controller);
        controller.crash_after_writes(crash_after);
        sent.extend((0..APPENDS).map(|index| body(round * APPENDS + index)));
        let acked = append_all(&engine, round);
        if acked.len() < APPENDS {
            crashes_with_lost_answers += 1;
        }
        acknowledged.extend(acked);
        controller.crash_now();
        drop(engine);
        controller.power_loss().unwrap();
        reopen_and_check(&store, &controller, (&sent, &mut acknowledged), &format!("round {round}"));
    }
    assert!(crashes_with_lost_answers > 0, "no crash hit a commit in flight: the test checked nothing");
    assert_eq!(controller.counts().overlapping_writes, 0, "two writes to the same blocks were in flight at once");
}

/// Regression (session 7): the commits in flight write at once, so a power loss may keep a
/// later commit whole and tear or lose an earlier one. Neither was acknowledged (each waits for
/// the one before it), so recovery must cut both, never read the later one as proof that
/// acknowledged data was damaged and refuse to open. Syncs are held until the crash, as a
/// slow cache flush would be, so the crash always finds commits written and none durable.
/// Before the durable gap (format version 3), a later commit's writes began once the earlier
/// one's writes completed, not once they were synced, and the store then failed to open here.
#[test]
fn a_power_loss_that_keeps_a_later_commit_and_tears_an_earlier_one_cuts_both() {
    let mut later_commits_written = 0;
    for seed in 1..=8_u64 {
        let mut store = TestStore::new(1);
        // Room for every round: a rotation would wait for a held sync.
        store.config.segment_bytes_max = 64 * 1024 * 1024;
        let controller = FaultController::new(seed);
        {
            let engine = open_faulty(&store, &controller);
            block_on(engine.create_account(ACCOUNT)).unwrap();
        }
        let mut acknowledged = BTreeMap::new();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        for (round, crash_after) in [7_u64, 9, 11, 13].into_iter().enumerate() {
            let engine = open_faulty(&store, &controller);
            let written_before = controller.counts().writes_kept;
            controller.hold_syncs_until_crash();
            controller.crash_after_writes(crash_after);
            sent.extend((0..APPENDS).map(|index| body(round * APPENDS + index)));
            let acked = append_all(&engine, round);
            assert!(acked.is_empty(), "seed {seed} round {round}: an append was answered before its sync returned");
            controller.crash_now();
            drop(engine);
            controller.power_loss().unwrap();
            later_commits_written += usize::from(controller.counts().writes_kept > written_before);
            let context = format!("seed {seed} round {round}");
            reopen_and_check(&store, &controller, (&sent, &mut acknowledged), &context);
        }
    }
    assert!(later_commits_written > 0, "no power loss kept a write: the test checked nothing");
}

/// Rounds of appends at most while looking for an overlapping commit.
const GAP_ROUNDS_MAX: usize = 8;

/// Every commit start in the shard's active segment, with its durable gap.
/// How the commits of the active segment sit on disk.
#[derive(Debug)]
struct CommitShape {
    /// Each commit's durable gap (format version 3 on).
    durable_gaps: Vec<u16>,
    /// Commits that start on a fresh block after zeros (format version 4 on).
    block_gaps: usize,
}

fn commit_shape(store: &TestStore) -> CommitShape {
    let segment = std::fs::read(common::active_segment_path(store.directory.path(), 0)).unwrap();
    let spans = common::frame_spans(&segment);
    let durable_gaps = spans
        .iter()
        .filter(|span| span.header.is_commit_start())
        .map(|span| commit_durable_gap(&segment[span.offset..]))
        .collect();
    CommitShape { durable_gaps, block_gaps: block_gaps(&spans) }
}

/// How many frames start after a block gap rather than where the frame before them ends.
fn block_gaps(spans: &[common::FrameSpan]) -> usize {
    spans.windows(2).filter(|pair| pair[0].offset + pair[0].encoded_bytes != pair[1].offset).count()
}

/// Compaction walks its victims' frames across their block gaps: every live body of segments
/// written by overlapping commits survives the rewrite and a reopen. A walk that stopped at the
/// first gap would have taken it for the end and dropped every body after it.
#[test]
fn compaction_copies_every_live_body_across_block_gaps() {
    let mut store = TestStore::new(1);
    store.config.segment_bytes_max = 4 * 1024 * 1024;
    let engine = store.open();
    block_on(engine.create_account(ACCOUNT)).unwrap();
    let sealed_gaps = |store: &TestStore| {
        let paths = common::segment_paths(store.directory.path(), 0);
        let sealed = &paths[..paths.len() - 1];
        sealed.iter().map(|path| block_gaps(&common::frame_spans(&std::fs::read(path).unwrap()))).sum::<usize>()
    };
    let mut acked = BTreeMap::new();
    for round in 0..GAP_ROUNDS_MAX {
        acked.extend(append_all(&engine, round));
        if round >= 2 && sealed_gaps(&store) > 0 {
            break;
        }
    }
    assert!(sealed_gaps(&store) > 0, "no sealed segment has a block gap: the test checked nothing");
    let mut victims = common::segment_paths(store.directory.path(), 0);
    victims.pop(); // the active one
    let deleted: Vec<u32> = acked.keys().copied().filter(|uid| uid % 2 == 1).collect();
    acked.retain(|uid, _| uid % 2 == 0);
    block_on(async {
        engine.expunge(ACCOUNT, "INBOX", &deleted).await.unwrap();
        engine.prune_deleted(ACCOUNT).await.unwrap();
        engine.compact().await.unwrap();
    });
    assert!(victims.iter().any(|path| !path.exists()), "no segment was compacted: the test checked nothing");
    assert_eq!(stored(&engine), acked, "after compaction");
    drop(engine);
    assert_eq!(stored(&store.open()), acked, "after compaction and a reopen");
}

/// A store written by an older build stays readable by it: an active segment of version 2 or 3
/// is read (both are still supported) and appended to only as its version allows: without
/// durable gaps in version 2, which its reader refuses, and without block gaps in either, where
/// their readers would see the end of the log. The same appends carry durable gaps in version
/// 3 and block gaps in a segment this build created (the controls).
#[test]
fn older_active_segments_are_read_and_appended_to_as_their_version_allows() {
    let mut shapes = Vec::new();
    for version in [2_u32, 3, 4] {
        let mut store = TestStore::new(1);
        // One segment for everything: a rotation would start a version 3 one.
        store.config.segment_bytes_max = 64 * 1024 * 1024;
        block_on(store.open().create_account(ACCOUNT)).unwrap();
        let path = common::active_segment_path(store.directory.path(), 0);
        let mut segment = std::fs::read(&path).unwrap();
        // Its frames so far take the older version's CRC (no seed before version 6).
        for span in common::frame_spans(&segment) {
            let flags = span.header.flags;
            set_frame_flags(&mut segment[span.offset..span.end()], flags, CrcSeed::UNSEEDED);
        }
        segment[8..12].copy_from_slice(&version.to_le_bytes());
        let crc = crc32c::crc32c(&segment[..32]);
        segment[32..36].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &segment).unwrap();

        let engine = store.open();
        let mut acked = BTreeMap::new();
        // Whether a commit is planned while another is in flight depends on timing (a loaded
        // machine may finish each commit first): rounds go on until the control shows a gap,
        // and the version 2 segment gets all of them.
        for round in 0..GAP_ROUNDS_MAX {
            let round_acked = append_all(&engine, round);
            assert_eq!(round_acked.len(), APPENDS, "version {version}: every append is acknowledged");
            acked.extend(round_acked);
            let shape = commit_shape(&store);
            let control_shown = match version {
                3 => shape.durable_gaps.iter().any(|gap| *gap > 0),
                4 => shape.block_gaps > 0,
                _ => false,
            };
            if control_shown {
                break;
            }
        }
        drop(engine);
        assert_eq!(stored(&store.open()), acked, "version {version}: the appends read back");
        shapes.push(commit_shape(&store));
    }
    let [version_2, version_3, version_4] = &shapes[..] else { unreachable!() };
    assert!(version_2.durable_gaps.iter().all(|gap| *gap == 0), "durable gaps in a version 2 segment: {version_2:?}");
    assert_eq!(version_2.block_gaps, 0, "block gaps in a version 2 segment");
    assert!(
        version_3.durable_gaps.iter().any(|gap| *gap > 0),
        "no commit overlapped another: the test checked nothing"
    );
    assert_eq!(version_3.block_gaps, 0, "block gaps in a version 3 segment");
    assert!(version_4.block_gaps > 0, "no commit started on a fresh block: the block gap checks checked nothing");
}
