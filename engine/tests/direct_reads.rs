//! `StorageFile::read_exact` and `read_reused` (which fetches read message frames with, into
//! buffers the thread reuses): an O_DIRECT read widened to the filesystem's alignment (512
//! bytes on most disks, a whole 4 KiB block elsewhere) must give exactly the bytes asked for,
//! wherever they start and end, up to the file's last byte, never bytes a reused buffer held
//! from an earlier read, and a read past the end must fail rather than come back short.
#![allow(clippy::expect_used)] // helpers and proptest bodies outside #[test] fns: a failed expect fails the test

mod common;

use common::write_file;
use mailvault_engine::block_on;
use mailvault_engine::io::{DiskStorage, StorageFile};
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
