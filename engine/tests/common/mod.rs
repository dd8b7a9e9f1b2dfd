//! Test support shared by the engine's integration tests: a real SoftHSM token and a store in
//! a temporary directory.
#![allow(dead_code, unreachable_pub, clippy::expect_used)] // test support: a failed expectation fails the test

use std::sync::Arc;

use mailvault_engine::{Engine, EngineConfig, ManualClock, init_store};
use mailvault_hsm::testing::TestToken;

#[derive(Debug)]
pub struct TestStore {
    pub token: TestToken,
    pub directory: tempfile::TempDir,
    pub config: EngineConfig,
    pub clock: ManualClock,
}

/// 2026-11-23T00:00:00Z: a fixed start so retention tests read plainly.
pub const START_UNIX_MS: i64 = 1_795_392_000_000;

impl TestStore {
    pub fn new(shards: usize) -> Self {
        let token = TestToken::create_with_keys();
        let directory = tempfile::tempdir().expect("temporary directory");
        init_store(directory.path(), shards).expect("init store");
        let clock = ManualClock::new(START_UNIX_MS);
        let mut config = EngineConfig::new(directory.path());
        config.clock = Arc::new(clock.clone());
        config.segment_bytes_max = 1024 * 1024;
        Self { token, directory, config, clock }
    }

    pub fn open(&self) -> Engine {
        Engine::open(&self.config, &self.token.hsm).expect("open engine")
    }
}

/// A shard's segment files in log order (names sort by segment id).
pub fn segment_paths(data_dir: &std::path::Path, shard_id: usize) -> Vec<std::path::PathBuf> {
    let directory = data_dir.join(format!("shard-{shard_id:03}"));
    let mut paths: Vec<_> = std::fs::read_dir(&directory)
        .expect("shard directory")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    paths.sort();
    paths
}

/// The shard's active segment: the one with the highest id.
pub fn active_segment_path(data_dir: &std::path::Path, shard_id: usize) -> std::path::PathBuf {
    segment_paths(data_dir, shard_id).pop().expect("the shard has a segment")
}

/// One frame of a segment: where it starts, its clear header, and its length with padding.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpan {
    pub offset: usize,
    pub header: mailvault_engine::format::FrameHeader,
    pub encoded_bytes: usize,
}

impl FrameSpan {
    pub fn end(&self) -> usize {
        self.offset + self.encoded_bytes
    }
}

/// Every frame of a segment's bytes, from the first record block to the end of the log, across
/// block gaps (zeros to a block boundary before a commit, format version 4); panics on anything
/// that is not a valid frame (these are segments the engine just wrote), except, from format 6,
/// after the last frame: a reused file's earlier bytes.
pub fn frame_spans(segment: &[u8]) -> Vec<FrameSpan> {
    use mailvault_engine::format::{BLOCK_BYTES, FrameDecode, SegmentHeader, decode_frame, skip_block_gap};
    let header = SegmentHeader::decode(segment).expect("a segment header");
    let seed = header.crc_seed();
    let mut spans = Vec::new();
    let mut offset = BLOCK_BYTES;
    while offset < segment.len() {
        match decode_frame(&segment[offset..], seed) {
            Ok(FrameDecode::Frame(frame)) => {
                spans.push(FrameSpan { offset, header: frame.header, encoded_bytes: frame.encoded_bytes });
                offset += frame.encoded_bytes;
            }
            Ok(FrameDecode::End) => {
                let next = skip_block_gap(&segment[offset..], offset as u64) as usize;
                if next == offset || segment.get(next..next + 4).is_none_or(|magic| magic == [0; 4]) {
                    break;
                }
                assert!(segment[offset..next].iter().all(|byte| *byte == 0), "block gap at {offset} is not zero");
                offset = next;
            }
            Err(_) if header.may_be_in_a_reused_file() => break,
            other => panic!("segment holds no valid frame at offset {offset}: {other:?}"),
        }
    }
    spans
}

/// Copies a store directory (metadata and shard directories) into `target`. Of a live store,
/// a file renamed or removed since the listing (a checkpoint landing in the background) is
/// skipped: a crash at that instant would not have seen it under that name either.
pub fn copy_store(source: &std::path::Path, target: &std::path::Path) {
    for entry in std::fs::read_dir(source).expect("store directory") {
        let entry = entry.expect("directory entry");
        let destination = target.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir_all(&destination).expect("create directory");
            copy_store(&entry.path(), &destination);
        } else {
            match std::fs::copy(entry.path(), &destination) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                copied => drop(copied.expect("copy file")),
            }
        }
    }
}

/// Writes `bytes` to a new file `name` the way the engine does (whole blocks, then the size).
pub async fn write_file<S: mailvault_engine::io::Storage>(storage: &S, name: &str, bytes: &[u8]) -> S::File {
    use mailvault_engine::io::{BlockBuffer, StorageFile};
    let file = storage.create(name).await.expect("create");
    let mut buffer = BlockBuffer::with_capacity(bytes.len());
    buffer.extend_from_slice(bytes);
    buffer.pad_to_block();
    let (written, _) = file.write_blocks(buffer, 0).await;
    written.expect("write");
    file.set_len(bytes.len() as u64).await.expect("set_len");
    file.sync_data().await.expect("sync");
    file
}
