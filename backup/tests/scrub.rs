//! `scrub`: every sealed segment of a live store checked in place (frames, footers, AEAD tags
//! under the live keys), beside an open engine, writing nothing; damage named by shard, file
//! and offset.
#![allow(clippy::unwrap_used)]

mod support;

use mailvault_engine::format::BLOCK_BYTES;
use mailvault_engine::segment::{parse_segment_name, segment_name};
use mailvault_engine::{Flags, block_on};
use support::{Fixture, files_under, message};

/// Every sealed segment's id in a shard: all but the newest (the active one).
fn sealed_ids(shard_directory: &std::path::Path) -> Vec<u64> {
    let mut ids: Vec<u64> = files_under(shard_directory).iter().filter_map(|name| parse_segment_name(name)).collect();
    ids.sort_unstable();
    ids.pop();
    ids
}

/// Every file under the data directory with its bytes.
fn snapshot(root: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    files_under(root).into_iter().map(|name| (name.clone(), std::fs::read(root.join(&name)).unwrap())).collect()
}

#[test]
fn a_scrub_checks_every_sealed_segment_beside_an_open_engine_and_names_a_damaged_one() {
    let fixture = Fixture::new();
    fixture.populate();
    let shards = ["shard-000", "shard-001"].map(|name| fixture.data_dir().join(name));
    assert!(shards.iter().all(|shard| !sealed_ids(shard).is_empty()), "the fixture's segments are small");
    let sealed: usize = shards.iter().map(|shard| sealed_ids(shard).len()).sum();

    let engine = fixture.open();
    let before = snapshot(fixture.data_dir());
    let report = mailvault_backup::scrub(fixture.data_dir(), &fixture.token.hsm).unwrap();
    assert!(report.damaged.is_empty(), "{:?}", report.damaged);
    assert_eq!(report.segments_checked, sealed, "{report:?}");
    assert!(report.frames_checked > 30, "{report:?}");
    assert_eq!(report.frames_without_key, 0, "every account's key was unwrapped: {report:?}");
    assert_eq!(report.exit_code(), mailvault_backup::exit_code::EQUAL);
    assert!(snapshot(fixture.data_dir()) == before, "the scrub wrote nothing");
    block_on(engine.append("alice", "INBOX", message("alice", 40), Flags::default(), None)).unwrap();
    drop(engine);

    // A flipped bit in a frame of a sealed segment the open does not replay (its checkpoint
    // covers it): the engine serves on, the scrub names it.
    let shard_one = &shards[1];
    let first = sealed_ids(shard_one)[0];
    let path = shard_one.join(segment_name(first));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[BLOCK_BYTES + 60] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    drop(fixture.open());
    let report = mailvault_backup::scrub(fixture.data_dir(), &fixture.token.hsm).unwrap();
    assert_eq!(report.damaged.len(), 1, "{:?}", report.damaged);
    let expected = format!("shard 1 segment {}: segment {first} is corrupt at offset ", path.display());
    assert!(report.damaged[0].starts_with(&expected), "{:?} does not start with {expected:?}", report.damaged);
    assert_eq!(report.segments_checked, sealed_ids(&shards[0]).len() + sealed_ids(shard_one).len() - 1);
    assert_eq!(report.exit_code(), mailvault_backup::exit_code::DAMAGED);
}

/// A shard whose log is damaged where a replay reads it (after its checkpoint) cannot give its
/// keys: the scrub says so, and still checks that shard's frames (their tags unchecked).
#[test]
fn a_shard_whose_keys_cannot_be_read_is_named_and_its_frames_still_checked() {
    let fixture = Fixture::new();
    fixture.populate();
    let engine = fixture.open();
    for _ in 0..2 {
        // Larger than a segment: each seals one more of alice's shard (1).
        block_on(engine.append("alice", "INBOX", message("alice", 9), Flags::default(), None)).unwrap();
    }
    drop(engine);
    let shard_one = fixture.data_dir().join("shard-001");
    assert!(sealed_ids(&shard_one).len() >= 3, "{:?}", files_under(&shard_one));
    std::fs::remove_file(shard_one.join("checkpoint")).unwrap();
    let first = sealed_ids(&shard_one)[0];
    let path = shard_one.join(segment_name(first));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[BLOCK_BYTES + 60] ^= 1;
    std::fs::write(&path, &bytes).unwrap();

    let report = mailvault_backup::scrub(fixture.data_dir(), &fixture.token.hsm).unwrap();
    assert_eq!(report.damaged.len(), 2, "{:?}", report.damaged);
    assert!(report.damaged[0].starts_with("shard 1: reading its keys: segment "), "{:?}", report.damaged);
    assert!(report.damaged[1].starts_with(&format!("shard 1 segment {}: ", path.display())), "{:?}", report.damaged);
    assert!(report.frames_without_key > 0, "shard 1's intact segments are checked without keys: {report:?}");
}
