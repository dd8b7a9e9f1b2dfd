//! Level 2 of `backup verify`: every frame of every segment (CRC, the sealed footer and its
//! digest, the AEAD tag of every encrypted record under its account's key), segments checked
//! on every core at once, findings reported in manifest order.
//!
//! For a directory target the file's BLAKE3 digest (level 1's check) is taken from the same
//! read as the frames: level 2 then reads each segment once instead of twice (hash, then scan),
//! which was half its time. Level 1 alone still hashes every file itself.

use std::collections::HashMap;
use std::path::Path;

use mailvault_engine::crypto::RecordCipher;
use mailvault_engine::format::RecordKind;
use mailvault_engine::offline::TableKey;
use mailvault_engine::segment::{ScanError, ScanStart, scan_segment, segment_name};

use crate::every_core::on_every_core;
use crate::live::shard_directory;
use crate::manifest::{Manifest, ManifestSegment};
use crate::progress::bytes_bar;
use crate::read_ahead::ReadAheadFile;
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
    // AES-GCM and BLAKE3 over every byte) while its reads run ahead of it.
    let checks = on_every_core(&to_check, async |segment| {
        let directory = shard_directory(segments_root, segment.shard);
        let check = check_segment(&directory, segment.segment_id, &ciphers, digests).await;
        bar.inc(segment.file.size);
        check
    });
    for (segment, check) in to_check.iter().zip(checks) {
        let name = &segment.file.name;
        let check = check.unwrap_or_else(|| failed("its check panicked"));
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
pub(crate) struct SegmentCheck {
    pub digest: Option<[u8; 32]>,
    pub frames: Result<(u64, u64), String>,
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
    let path = directory.join(segment_name(segment_id));
    check_segment_at(&path, segment_id, ciphers, digests).await.unwrap_or_else(|error| failed(&error.to_string()))
}

/// Checks the segment at `path`; an error if it cannot be opened (`NotFound` if it is gone).
pub(crate) async fn check_segment_at(
    path: &Path,
    segment_id: u64,
    ciphers: &HashMap<u64, RecordCipher>,
    digests: Digests,
) -> std::io::Result<SegmentCheck> {
    let file = ReadAheadFile::open(path, digests == Digests::WithFrames).await?;
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
    Ok(match file.finish().await {
        Ok(digest) => SegmentCheck { digest, frames },
        Err(error) => SegmentCheck { digest: None, frames: Err(format!("reading it: {error}")) },
    })
}
