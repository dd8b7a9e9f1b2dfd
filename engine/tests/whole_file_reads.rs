//! `StorageFile::read_whole`, which compaction reads its victims with: the real O_DIRECT read
//! into a reused buffer must give exactly the file's bytes, whatever the buffer held before
//! and whether or not the file ends on a block boundary; the fault-injecting wrapper must
//! inject into it as into other reads.
#![allow(clippy::expect_used)] // helpers and proptest bodies outside #[test] fns: a failed expect fails the test

mod common;

use common::write_file;
use mailvault_engine::block_on;
use mailvault_engine::io::{BlockBuffer, DiskStorage, FaultController, FaultRates, FaultyStorage, StorageFile};
use proptest::prelude::*;

fn pattern(length: usize, seed: u8) -> Vec<u8> {
    (0..length).map(|index| (index as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Reading file after file into one buffer: each read gives that file's bytes and length,
    /// never a byte left over from a larger file before it.
    #[test]
    fn a_reused_buffer_holds_exactly_each_file(sizes in proptest::collection::vec(0usize..300_000, 1..5)) {
        let directory = tempfile::tempdir().expect("tempdir");
        let storage = DiskStorage::new(directory.path());
        block_on(async {
            let mut buffer = BlockBuffer::default();
            for (index, size) in sizes.iter().enumerate() {
                let expected = pattern(*size, index as u8);
                let file = write_file(&storage, &format!("file-{index}"), &expected).await;
                let (read, returned) = file.read_whole(buffer).await;
                read.expect("read_whole");
                assert_eq!(returned.len(), expected.len(), "file {index}");
                assert!(returned.as_slice() == expected.as_slice(), "file {index}: bytes differ");
                buffer = returned;
            }
        });
    }
}

#[test]
fn a_file_larger_than_one_read_chunk_is_read_whole() {
    // 8 MiB chunks: three of them and an unaligned tail.
    let size = 3 * 8 * 1024 * 1024 + 1234;
    let directory = tempfile::tempdir().expect("tempdir");
    let storage = DiskStorage::new(directory.path());
    block_on(async {
        let expected = pattern(size, 7);
        let file = write_file(&storage, "large", &expected).await;
        let (read, returned) = file.read_whole(BlockBuffer::default()).await;
        read.expect("read_whole");
        assert!(returned.as_slice() == expected.as_slice(), "bytes differ");
    });
}

/// Minor page faults this thread has taken (`/proc/thread-self/stat`, field 10).
fn minor_faults_of_this_thread() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("thread stat");
    let after_name = &stat[stat.rfind(')').expect("the name's end") + 1..];
    after_name.split_whitespace().nth(7).expect("minflt").parse().expect("a count")
}

/// A fresh buffer for a large file is faulted in on another thread (compio's blocking pool):
/// faulted in by the read, inside its submission on the reading thread, a 64 MiB compaction
/// victim stalled the shard's requests for tens of milliseconds. 6 MiB stays below the size
/// that gets huge pages, so each 4 KiB page would be a fault of this thread's.
#[test]
fn a_fresh_buffer_for_a_large_file_is_faulted_in_off_the_reading_thread() {
    let size = 6 * 1024 * 1024;
    let directory = tempfile::tempdir().expect("tempdir");
    let storage = DiskStorage::new(directory.path());
    block_on(async {
        let expected = pattern(size, 9);
        let file = write_file(&storage, "victim", &expected).await;
        let before = minor_faults_of_this_thread();
        let (read, returned) = file.read_whole(BlockBuffer::default()).await;
        let faults = minor_faults_of_this_thread() - before;
        read.expect("read_whole");
        assert!(returned.as_slice() == expected.as_slice(), "bytes differ");
        // The 1,536 pages of the buffer; the read itself may fault in a few pages of its own.
        assert!(faults < 256, "{faults} page faults on the reading thread");
    });
}

#[test]
fn injected_read_faults_reach_whole_file_reads() {
    let expected = pattern(100_000, 3);
    let read_with = |rates: FaultRates| {
        let directory = tempfile::tempdir().expect("tempdir");
        let controller = FaultController::new(11);
        let storage = FaultyStorage::new(directory.path(), controller.clone());
        block_on(async {
            let file = write_file(&storage, "file", &expected).await;
            controller.set_rates(rates);
            let (read, returned) = file.read_whole(BlockBuffer::default()).await;
            read.map(|()| returned.as_slice().to_vec())
        })
    };
    let flipped = read_with(FaultRates { read_bit_flip_per_mille: 1000, ..FaultRates::default() }).expect("read");
    let differing: u32 = flipped.iter().zip(&expected).map(|(left, right)| (left ^ right).count_ones()).sum();
    assert_eq!(differing, 1, "exactly one bit flipped");
    let short = read_with(FaultRates { short_read_per_mille: 1000, ..FaultRates::default() });
    assert_eq!(short.expect_err("short read").kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(read_with(FaultRates::default()).expect("clean read"), expected);
}
