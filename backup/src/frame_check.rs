//! Level 2 of `backup verify`: every frame of every segment (CRC, the sealed footer and its
//! digest, the AEAD tag of every encrypted record under its account's key), segments checked
//! on every core at once, findings reported in manifest order.
//!
//! For a directory target the file's BLAKE3 digest (level 1's check) is taken from the same
//! read as the frames: level 2 then reads each segment once instead of twice (hash, then scan),
//! which was half its time. Level 1 alone still hashes every file itself.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::path::Path;

use mailvault_engine::block_on;
use mailvault_engine::crypto::RecordCipher;
use mailvault_engine::format::RecordKind;
use mailvault_engine::io::{BlockBuffer, DiskStorage, Storage, StorageFile};
use mailvault_engine::offline::TableKey;
use mailvault_engine::segment::{ScanError, ScanStart, scan_segment, segment_name};

use crate::live::shard_directory;
use crate::manifest::{Manifest, ManifestSegment};
use crate::progress::bytes_bar;
use crate::verify::{Finding, VerifyReport};

/// Whether level 1 has already checked each segment's digest, or this pass is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Digests {
    /// Level 1 hashed every file (an object store's segments, hashed as they downloaded).
    Checked,
    /// Level 1 checked presence and size only: hash each segment while its frames are read.
    WithFrames,
}

/// Checks the frames of every segment of `manifest` under `segments_root` (those level 1 found
/// damaged are not read again), recording what is wrong in `report`.
pub(crate) fn check_frames(
    manifest: &Manifest,
    segments_root: &Path,
    keys: &[TableKey],
    digests: Digests,
    report: &mut VerifyReport,
) {
    let ciphers: HashMap<u64, RecordCipher> =
        keys.iter().map(|key| (key.account_id, RecordCipher::new(&key.dek))).collect();
    let already_damaged: Vec<String> = report
        .findings
        .iter()
        .filter_map(|finding| match finding {
            Finding::Damaged(what) => Some(what.clone()),
            Finding::Different(_) => None,
        })
        .collect();
    let bar = bytes_bar(manifest.segments.iter().map(|segment| segment.file.size).sum(), "frames");
    let to_check: Vec<&ManifestSegment> = manifest
        .segments
        .iter()
        .filter(|segment| {
            let named = format!("segment {}", segment.file.name);
            let skip = already_damaged.iter().any(|what| what.starts_with(&named));
            if skip {
                bar.inc(segment.file.size);
            }
            !skip
        })
        .collect();
    // Segments are checked on every core at once: one segment's check is CPU-bound (CRC32C,
    // AES-GCM and BLAKE3 over every byte) and alternates with its reads, so one at a time
    // left the disk idle half the time.
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(to_check.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, SegmentCheck)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(segment) = to_check.get(index) else { break };
                        let directory = shard_directory(segments_root, segment.shard);
                        let check = check_segment(&directory, segment.segment_id, &ciphers, digests);
                        done.push((index, block_on(check)));
                        bar.inc(segment.file.size);
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_else(|_| vec![(usize::MAX, failed("a check panicked"))]))
            .collect()
    });
    results.sort_by_key(|(index, _)| *index);
    for (index, check) in results {
        let Some(segment) = to_check.get(index) else {
            report.findings.push(Finding::Damaged("a segment check panicked".into()));
            continue;
        };
        let name = &segment.file.name;
        match check.digest {
            Some(digest) if hex::encode(digest) != segment.file.blake3 => {
                report
                    .findings
                    .push(Finding::Damaged(format!("segment {name}: its BLAKE3 digest does not match the manifest")));
            }
            Some(_) => {
                report.segments_checked += 1;
                report.bytes_checked += segment.file.size;
            }
            None => {}
        }
        match check.frames {
            Ok((checked, without_key)) => {
                report.frames_checked += checked;
                report.frames_without_key += without_key;
            }
            Err(reason) => report.findings.push(Finding::Damaged(format!("segment {name}: {reason}"))),
        }
    }
    bar.finish_and_clear();
}

/// One segment's result: its digest (when this pass takes it), and (frames checked, frames
/// without a key) or what is wrong with its frames.
struct SegmentCheck {
    digest: Option<[u8; 32]>,
    frames: Result<(u64, u64), String>,
}

fn failed(reason: &str) -> SegmentCheck {
    SegmentCheck { digest: None, frames: Err(reason.to_owned()) }
}

async fn check_segment(
    directory: &Path,
    segment_id: u64,
    ciphers: &HashMap<u64, RecordCipher>,
    digests: Digests,
) -> SegmentCheck {
    let storage = DiskStorage::new(directory);
    let file = match storage.open(&segment_name(segment_id), false).await {
        Ok(file) => HashingFile::new(file),
        Err(error) => return failed(&error.to_string()),
    };
    let (mut checked, mut without_key) = (0u64, 0u64);
    let scanned = scan_segment(&file, segment_id, false, ScanStart::BEGINNING, |frame| {
        checked += 1;
        let clear = RecordKind::from_u8(frame.header.kind).is_some_and(RecordKind::is_clear);
        if clear {
            return Ok(());
        }
        let Some(cipher) = ciphers.get(&frame.header.account_id) else {
            without_key += 1;
            return Ok(());
        };
        let record_id = frame.header.record_id;
        cipher
            .open(&frame.header, frame.payload)
            .map(drop)
            .map_err(|_| format!("record {record_id} of account {} fails its AEAD tag", frame.header.account_id))
    })
    .await;
    let frames = match scanned {
        Ok(_) => Ok((checked, without_key)),
        Err(ScanError::Replay { offset, reason, .. }) => Err(format!("at offset {offset}: {reason}")),
        Err(error) => Err(error.to_string()),
    };
    let digest = match digests {
        Digests::Checked => None,
        Digests::WithFrames => match file.finish().await {
            Ok(digest) => Some(digest),
            Err(error) => return SegmentCheck { digest: None, frames: Err(format!("reading it: {error}")) },
        },
    };
    SegmentCheck { digest, frames }
}

/// A segment file that hashes what the scan reads, as long as it reads on from where the hash
/// has got to (a scan reads forward, its windows overlapping); `finish` reads and hashes what
/// the scan did not (past damage, say).
struct HashingFile<F> {
    inner: F,
    hasher: RefCell<blake3::Hasher>,
    hashed_end: Cell<u64>,
}

/// Bytes per read when `finish` hashes the rest of a file.
const REST_READ_BYTES: usize = 4 * 1024 * 1024;

impl<F: StorageFile> HashingFile<F> {
    fn new(inner: F) -> Self {
        Self { inner, hasher: RefCell::new(blake3::Hasher::new()), hashed_end: Cell::new(0) }
    }

    /// The whole file's BLAKE3 digest.
    async fn finish(&self) -> io::Result<[u8; 32]> {
        let size = self.inner.size().await?;
        while self.hashed_end.get() < size {
            let offset = self.hashed_end.get();
            let length = usize::try_from(size - offset).unwrap_or(usize::MAX).min(REST_READ_BYTES);
            self.read_exact(offset, length).await?;
        }
        Ok(*self.hasher.borrow().finalize().as_bytes())
    }
}

impl<F: StorageFile> StorageFile for HashingFile<F> {
    async fn write_blocks(&self, buffer: BlockBuffer, offset: u64) -> (io::Result<()>, BlockBuffer) {
        self.inner.write_blocks(buffer, offset).await
    }

    async fn read_exact(&self, offset: u64, length: usize) -> io::Result<Vec<u8>> {
        let bytes = self.inner.read_exact(offset, length).await?;
        let end = offset + bytes.len() as u64;
        let hashed_end = self.hashed_end.get();
        if (offset..end).contains(&hashed_end) {
            self.hasher.borrow_mut().update(&bytes[(hashed_end - offset) as usize..]);
            self.hashed_end.set(end);
        }
        Ok(bytes)
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data().await
    }

    async fn preallocate(&self, length: u64) -> io::Result<()> {
        self.inner.preallocate(length).await
    }

    async fn next_data(&self, offset: u64) -> io::Result<Option<u64>> {
        self.inner.next_data(offset).await
    }

    async fn zero_range(&self, offset: u64, length: u64) -> io::Result<()> {
        self.inner.zero_range(offset, length).await
    }

    async fn set_len(&self, length: u64) -> io::Result<()> {
        self.inner.set_len(length).await
    }

    async fn size(&self) -> io::Result<u64> {
        self.inner.size().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `bytes` in a temporary directory, opened as the engine opens segments.
    fn with_file<T>(bytes: &[u8], test: impl AsyncFnOnce(HashingFile<mailvault_engine::io::DiskFile>) -> T) -> T {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("file"), bytes).expect("write the file");
        block_on(async {
            let file = DiskStorage::new(directory.path()).open("file", false).await.expect("open the file");
            test(HashingFile::new(file)).await
        })
    }

    #[test]
    fn the_digest_is_the_whole_files_whatever_was_read_before() {
        let bytes: Vec<u8> = (0..3 * REST_READ_BYTES + 12_345).map(|index| (index * 7 % 251) as u8).collect();
        let expected = *blake3::hash(&bytes).as_bytes();
        // Overlapping forward reads, a jump ahead (not hashed: the rest is read again), nothing.
        let reads: [&[(u64, usize)]; 3] = [&[(0, 4096), (100, 10_000), (5000, 70_000)], &[(0, 10), (50_000, 10)], &[]];
        for pattern in reads {
            let digest = with_file(&bytes, async |file| {
                for &(offset, length) in pattern {
                    let read = file.read_exact(offset, length).await.expect("read");
                    assert_eq!(read, bytes[offset as usize..offset as usize + length]);
                }
                file.finish().await.expect("finish")
            });
            assert_eq!(digest, expected, "after reads {pattern:?}");
        }
    }
}
