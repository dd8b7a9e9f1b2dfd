//! The background scrub: each pass reads every sealed segment of a running store and checks
//! its frames, footer and AEAD tags; damage is named by segment and offset, listed in the stats
//! and kept across restarts, and the shard goes on serving.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns: a failed unwrap fails the test

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{FrameSpan, TestStore, frame_spans, segment_paths};
use mailvault_engine::format::{BLOCK_BYTES, FRAME_HEADER_BYTES, RecordKind, SegmentHeader, set_frame_flags};
use mailvault_engine::{Engine, Flags, INBOX, ScrubStatus, block_on};

const ACCOUNT: &str = "scrubbed@example.org";
const DAY_MS: i64 = 24 * 3600 * 1000;
const BODY_BYTES: usize = 100 * 1024;

fn body(index: usize) -> Vec<u8> {
    let mut body = format!("Subject: scrub {index}\r\n\r\n").into_bytes();
    body.resize(BODY_BYTES, b'a' + (index % 26) as u8);
    body
}

/// A store of one shard with `count` messages in 1 MiB segments (so several sealed ones),
/// written with the scrub off; the returned config turns it on (a pass a day, unthrottled).
fn store_with_mail(count: usize) -> TestStore {
    let mut store = TestStore::new(1);
    let engine = store.open();
    block_on(async {
        engine.create_account(ACCOUNT).await.unwrap();
        for index in 0..count {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
    });
    drop(engine);
    store.config.scrub_interval = Some(Duration::from_millis(DAY_MS as u64));
    store.config.scrub_bytes_per_second = None;
    store.config.compaction_check_interval = Duration::from_millis(20);
    store
}

fn scrub_status(engine: &Engine) -> ScrubStatus {
    block_on(engine.stats()).unwrap().remove(0).scrub.unwrap()
}

/// Waits (20 s at most) for a pass that started at `started_at_or_after` or later to finish.
fn wait_for_pass(engine: &Engine, started_at_or_after: i64) -> ScrubStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = scrub_status(engine);
        if status.last_pass.is_some_and(|pass| pass.started_unix_ms >= started_at_or_after) {
            return status;
        }
        assert!(Instant::now() < deadline, "no scrub pass finished in 20 s: {status:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every segment but the newest (the active one).
fn sealed_segments(store: &TestStore) -> Vec<PathBuf> {
    let mut paths = segment_paths(store.directory.path(), 0);
    paths.pop();
    paths
}

fn segment_id(path: &Path) -> u64 {
    path.file_stem().unwrap().to_str().unwrap().trim_start_matches('0').parse().unwrap()
}

/// The frames of a sealed segment's log (its footer left out).
fn record_frames(path: &Path) -> Vec<FrameSpan> {
    let mut spans = frame_spans(&std::fs::read(path).unwrap());
    let footer = spans.pop().unwrap();
    assert_eq!(footer.header.kind, RecordKind::SegmentSealed as u8);
    spans
}

#[test]
fn a_pass_checks_every_frame_of_every_sealed_segment_under_its_key() {
    let store = store_with_mail(30);
    let sealed = sealed_segments(&store);
    assert!(sealed.len() >= 2, "the test needs several sealed segments, has {}", sealed.len());
    let expected_frames: usize = sealed.iter().map(|path| record_frames(path).len()).sum();
    let before: Vec<Vec<u8>> = sealed.iter().map(|path| std::fs::read(path).unwrap()).collect();

    let engine = store.open();
    let status = wait_for_pass(&engine, common::START_UNIX_MS);
    assert_eq!(status.segments_checked, sealed.len() as u64);
    assert_eq!(status.frames_checked, expected_frames as u64);
    assert_eq!(status.frames_without_key, 0, "every encrypted frame had its key, so its tag was checked");
    assert_eq!(status.bytes_checked, before.iter().map(|bytes| bytes.len() as u64).sum::<u64>());
    assert!(status.damaged.is_empty(), "{:?}", status.damaged);
    assert_eq!(status.pass_started_unix_ms, None, "the pass is over");
    let after: Vec<Vec<u8>> = sealed.iter().map(|path| std::fs::read(path).unwrap()).collect();
    assert!(before == after, "the scrub changed a sealed segment");
}

#[test]
fn damage_found_by_a_later_pass_is_named_kept_across_a_restart_and_the_shard_serves_on() {
    let store = store_with_mail(30);
    let engine = store.open();
    wait_for_pass(&engine, common::START_UNIX_MS);
    let sealed = sealed_segments(&store);
    let damaged = &sealed[1];
    let frame = record_frames(damaged)[3];
    let offset = frame.offset + FRAME_HEADER_BYTES + 100;
    flip_byte(damaged, offset);

    assert!(scrub_status(&engine).damaged.is_empty(), "no pass is due yet, so nothing was read again");
    store.clock.advance_ms(DAY_MS);
    let status = wait_for_pass(&engine, common::START_UNIX_MS + DAY_MS);
    assert_eq!(status.damaged.len(), 1, "{:?}", status.damaged);
    let finding = &status.damaged[0];
    assert_eq!(finding.segment_id, segment_id(damaged));
    assert!(finding.reason.contains(&format!("offset {}", frame.offset)), "{}", finding.reason);
    // The other segments' mail is still served.
    let (_, messages) = block_on(engine.list_messages(ACCOUNT, INBOX)).unwrap();
    assert_eq!(block_on(engine.fetch(ACCOUNT, INBOX, messages[0].uid)).unwrap().body, body(0));
    drop(engine);

    let engine = store.open();
    let reopened = scrub_status(&engine);
    assert_eq!(reopened.damaged, status.damaged, "the finding is kept across a restart");
    assert_eq!(reopened.last_pass, status.last_pass, "and so is the last pass: none is due");
    assert_eq!(reopened.segments_checked, 0);
    drop(engine);

    // With the scrub off (as `mailvault stats` opens the store), what it found is still shown.
    let mut scrub_off = store.config.clone();
    scrub_off.scrub_interval = None;
    let engine = Engine::open(&scrub_off, &store.token.hsm).unwrap();
    let shown = scrub_status(&engine);
    assert_eq!((shown.damaged, shown.last_pass), (status.damaged, status.last_pass));
}

#[test]
fn a_record_whose_checksums_were_forged_is_caught_by_its_tag() {
    let store = store_with_mail(30);
    let sealed = sealed_segments(&store);
    let forged = &sealed[0];
    let mut bytes = std::fs::read(forged).unwrap();
    let spans = frame_spans(&bytes);
    let seed = SegmentHeader::decode(&bytes).unwrap().crc_seed();
    let target = *spans
        .iter()
        .find(|span| span.header.kind == RecordKind::MessageAppended as u8)
        .expect("a message in the first segment");
    // Change the ciphertext, then make every checksum agree: the frame's CRC, and the footer's
    // digest of the frame headers (which include that CRC) with the footer's own CRC.
    bytes[target.offset + FRAME_HEADER_BYTES + 64] ^= 0x01;
    let flags = bytes[target.offset + 13];
    set_frame_flags(&mut bytes[target.offset..target.end()], flags, seed);
    let (footer, records) = spans.split_last().unwrap();
    let mut digest = blake3::Hasher::new();
    digest.update(&bytes[..BLOCK_BYTES]);
    for span in records {
        digest.update(&bytes[span.offset..span.offset + FRAME_HEADER_BYTES]);
    }
    let digest_at = footer.offset + FRAME_HEADER_BYTES + 16;
    bytes[digest_at..digest_at + 32].copy_from_slice(digest.finalize().as_bytes());
    let footer_flags = bytes[footer.offset + 13];
    set_frame_flags(&mut bytes[footer.offset..footer.end()], footer_flags, seed);
    std::fs::write(forged, &bytes).unwrap();

    let engine = store.open();
    let status = wait_for_pass(&engine, common::START_UNIX_MS);
    assert_eq!(status.damaged.len(), 1, "{:?}", status.damaged);
    assert_eq!(status.damaged[0].segment_id, segment_id(forged));
    let reason = &status.damaged[0].reason;
    assert!(reason.contains(&format!("record {}", target.header.record_id)) && reason.contains("AEAD"), "{reason}");
}

#[test]
fn a_purged_accounts_frames_are_counted_without_a_key_not_reported() {
    let mut store = TestStore::new(1);
    let engine = store.open();
    let gone = "gone@example.org";
    block_on(async {
        engine.create_account(gone).await.unwrap();
        engine.create_account(ACCOUNT).await.unwrap();
        for index in 0..30 {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
        engine.close_account(gone, None).await.unwrap();
        engine.purge_account(gone).await.unwrap();
    });
    drop(engine);
    store.config.scrub_interval = Some(Duration::from_millis(DAY_MS as u64));
    store.config.scrub_bytes_per_second = None;
    store.config.compaction_check_interval = Duration::from_millis(20);

    let engine = store.open();
    let status = wait_for_pass(&engine, common::START_UNIX_MS);
    assert!(status.damaged.is_empty(), "{:?}", status.damaged);
    assert!(status.frames_without_key > 0, "the purged account's records were in a sealed segment: {status:?}");
    assert!(status.frames_checked > status.frames_without_key);
}

fn flip_byte(path: &Path, offset: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn segments_sealed_during_a_pass_are_left_for_the_next_one() {
    let mut store = store_with_mail(30);
    let sealed_at_start = sealed_segments(&store).len() as u64;
    // Slow enough that the appends below seal segments while the pass is still reading.
    store.config.scrub_bytes_per_second = Some(1024 * 1024);
    let engine = store.open();
    block_on(async {
        for index in 0..30 {
            engine.append(ACCOUNT, INBOX, body(index), Flags::default(), None).await.unwrap();
        }
    });
    let status = wait_for_pass(&engine, common::START_UNIX_MS);
    assert!(sealed_segments(&store).len() as u64 > sealed_at_start, "the appends sealed segments");
    assert_eq!(status.segments_checked, sealed_at_start, "a pass checks the segments sealed when it started");
}
