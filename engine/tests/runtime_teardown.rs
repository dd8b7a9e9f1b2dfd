//! A runtime dropped while reads it submitted are still in the kernel must not free their
//! buffers before the kernel is done with them. Closing an io_uring does not wait for requests
//! already at the block layer: an O_DIRECT read completes later and writes into the pages of
//! its buffer, which the allocator may have handed out again by then. Every `block_on` drops
//! its runtime, and a future that ends early (a refused backup copy, a timeout) leaves its
//! reads behind: the backup test that saw "the good copy was replaced" once (session 25) read
//! the copy into memory that such a late read then overwrote.
#![allow(clippy::expect_used)] // helpers outside #[test] functions: a failed expectation fails the test

use std::time::Duration;

use compio::BufResult;
use compio::buf::{IntoInner as _, IoBuf as _};
use compio::io::AsyncReadAt as _;
use futures_util::future::join_all;
use mailvault_engine::block_on;
use mailvault_engine::io::BlockBuffer;

/// Reads in flight when the runtime goes: enough that some are still at the disk.
const READS: usize = 64;
const READ_BYTES: usize = 64 * 1024;
const FILE_BYTE: u8 = 0x55;
const CANARY_BYTE: u8 = 0xAA;
const ROUNDS: usize = 20;

/// A buffer of `READ_BYTES` as the reads use (the same allocation size, so the allocator
/// hands a freed read buffer out again), filled with `byte`.
fn filled_buffer(byte: u8) -> BlockBuffer {
    let mut buffer = BlockBuffer::with_capacity(READ_BYTES);
    buffer.extend_from_slice(&vec![byte; READ_BYTES]);
    buffer
}

/// Starts `READS` O_DIRECT reads of the file, lets the driver submit them, then drops them
/// unfinished as the future returns (and `block_on` drops the runtime).
fn abandon_reads(path: &std::path::Path) {
    block_on(async {
        let file = compio::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits().cast_signed())
            .open(path)
            .await
            .expect("open with O_DIRECT");
        let reads = (0..READS).map(|index| {
            let (storage, start, _) = filled_buffer(0).into_parts();
            let file = &file;
            async move {
                let BufResult(result, slice) =
                    file.read_at(storage.slice(start..start + READ_BYTES), (index * READ_BYTES) as u64).await;
                (result, slice.into_inner())
            }
        });
        let _unfinished = compio::time::timeout(Duration::from_micros(50), join_all(reads)).await;
    });
}

#[test]
fn a_runtime_dropped_with_reads_in_flight_frees_no_buffer_the_kernel_still_writes() {
    let directory = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory on the disk");
    let path = directory.path().join("file");
    std::fs::write(&path, vec![FILE_BYTE; READS * READ_BYTES]).expect("write the file");
    for round in 0..ROUNDS {
        abandon_reads(&path);
        // Buffers of the reads' size, allocated at once: freed read buffers come back here.
        let canaries: Vec<BlockBuffer> = (0..2 * READS).map(|_| filled_buffer(CANARY_BYTE)).collect();
        // Long enough for any read still at the disk to complete.
        std::thread::sleep(Duration::from_millis(100));
        let overwritten = canaries.iter().filter(|canary| canary.as_slice().iter().any(|&byte| byte != CANARY_BYTE));
        assert_eq!(overwritten.count(), 0, "round {round}: a read completed into memory freed and allocated again");
    }
}
