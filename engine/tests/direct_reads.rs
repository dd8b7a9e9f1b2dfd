//! `StorageFile::read_exact` and `read_reused` (which fetches read message frames with, into
//! buffers the thread reuses): an O_DIRECT read widened to the filesystem's alignment (512
//! bytes on most disks, a whole 4 KiB block elsewhere) must give exactly the bytes asked for,
//! wherever they start and end, up to the file's last byte, never bytes a reused buffer held
//! from an earlier read, and a read past the end must fail rather than come back short.
#![allow(clippy::expect_used)] // helpers and proptest bodies outside #[test] fns: a failed expect fails the test

mod common;

use common::write_file;
use mailvault_engine::block_on;
use mailvault_engine::io::{DiskStorage, Storage, StorageFile};
use proptest::prelude::*;

/// Ranges are drawn as shares of the file in these parts: fine enough to start and end
/// anywhere in a 40 KB file.
const PARTS: usize = 100_000;

fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|index| (index as u8).wrapping_mul(37).wrapping_add((index >> 8) as u8)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Ranges of every shape (inside one 512-byte sector, across sectors and blocks, ending at
    /// the file's unaligned end) read back exactly.
    #[test]
    fn any_range_of_a_file_reads_back_exactly(
        size in 1usize..40_000,
        ranges in proptest::collection::vec((0usize..PARTS, 1usize..=PARTS), 1..12),
    ) {
        let directory = tempfile::tempdir().expect("tempdir");
        let storage = DiskStorage::new(directory.path());
        let expected = pattern(size);
        block_on(async {
            let file = write_file(&storage, "file", &expected).await;
            for (start_part, length_parts) in ranges {
                let offset = (size * start_part / PARTS).min(size - 1);
                let length = ((size - offset) * length_parts / PARTS).max(1);
                let read = file.read_exact(offset as u64, length).await.expect("read_exact");
                prop_assert!(read == expected[offset..offset + length], "range {offset}+{length} of {size}");
                // Dropped at the end of each turn: the next range reuses its buffer when it fits.
                let reused = file.read_reused(offset as u64, length).await.expect("read_reused");
                prop_assert!(*reused == expected[offset..offset + length], "reused range {offset}+{length} of {size}");
            }
            let tail = file.read_exact(size as u64 - 1, 1).await.expect("last byte");
            prop_assert_eq!(tail, vec![expected[size - 1]]);
            Ok(())
        })?;
    }

    /// A read that runs past the end of the file is an error, never a shorter answer.
    #[test]
    fn a_read_past_the_end_fails(size in 1usize..20_000, overrun in 1usize..5_000, back in 0usize..600) {
        let directory = tempfile::tempdir().expect("tempdir");
        let storage = DiskStorage::new(directory.path());
        let expected = pattern(size);
        block_on(async {
            let file = write_file(&storage, "file", &expected).await;
            let offset = size.saturating_sub(back);
            let read = file.read_exact(offset as u64, size - offset + overrun).await;
            prop_assert!(read.is_err(), "read of {} bytes at {offset} of a {size}-byte file", size - offset + overrun);
            let reused = file.read_reused(offset as u64, size - offset + overrun).await;
            prop_assert!(reused.is_err(), "reused read of {} bytes at {offset}", size - offset + overrun);
            Ok(())
        })?;
    }
}

/// Reads leave a file's access time as it was (`O_NOATIME`): under `relatime` an access time
/// older than the file's last change is written at the next read, so without the flag the
/// first read below would move it.
#[test]
fn reads_leave_the_access_time_alone() {
    use std::time::{Duration, SystemTime};
    let directory = tempfile::tempdir().expect("tempdir");
    let storage = DiskStorage::new(directory.path());
    let path = directory.path().join("file");
    let expected = pattern(20_000);
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let set_access_time = || {
        let times = std::fs::FileTimes::new().set_accessed(long_ago);
        std::fs::File::options().write(true).open(&path).expect("open").set_times(times).expect("set_times");
    };
    let access_time = || std::fs::metadata(&path).expect("metadata").accessed().expect("atime");
    block_on(async {
        drop(write_file(&storage, "file", &expected).await);
        set_access_time();
        let file = storage.open("file", false).await.expect("open");
        assert_eq!(file.read_exact(100, 9000).await.expect("read_exact"), expected[100..9100]);
        assert_eq!(*file.read_reused(5000, 4608).await.expect("read_reused"), expected[5000..9608]);
    });
    assert_eq!(access_time(), long_ago, "a read through the storage moved the access time");
    // The same read through a plain descriptor does move it, unless the filesystem is mounted
    // `noatime` (then there was nothing to check).
    std::fs::read(&path).expect("plain read");
    if access_time() == long_ago {
        eprintln!("this filesystem records no access times; nothing was checked");
    }
}
