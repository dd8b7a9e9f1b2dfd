//! `mailvault scrub`: every sealed segment of the live store read and checked as `backup verify
//! --level 2` checks a backup's (each frame's CRC, the footer and its digest, every encrypted
//! record's AEAD tag under its account's key), without opening the store: no lock, nothing
//! written, safe beside a running server.
//!
//! Why: a sealed segment is read again only by compaction, by a replay without a checkpoint, or
//! by a backup's first copy of it. Bit rot in one that none of these reaches stays hidden until
//! a fetch of the mail in it fails, possibly after the backups that held it intact were
//! replaced. A scrub finds it while a backup still holds a good copy to repair from.

use std::collections::HashMap;
use std::path::Path;

use mailvault_engine::crypto::RecordCipher;
use mailvault_engine::offline::{KeySource, ReadError, SegmentSelection, read_shard};
use mailvault_engine::segment::{ScanError, parse_segment_name};
use mailvault_engine::{StoreMetadata, block_on};
use mailvault_hsm::{Hsm, HsmSession};

use crate::error::BackupError;
use crate::every_core::on_every_core;
use crate::frame_check::{Digests, check_segment_at};
use crate::live::{LIVE_READ_ATTEMPTS_MAX, sealed_segments, shard_directory};
use crate::progress::bytes_bar;

/// What a scrub found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    pub segments_checked: usize,
    pub bytes_checked: u64,
    pub frames_checked: u64,
    /// Frames of accounts without a key (purged: unreadable by design, not damage; or, on a
    /// shard whose keys could not be read, every encrypted frame).
    pub frames_without_key: u64,
    /// Segments compaction removed between the listing and their check.
    pub segments_vanished: usize,
    /// One line per problem: `shard N segment FILE: what`, or `shard N: what` when a shard's
    /// keys could not be read (its frames are then checked without their tags).
    pub damaged: Vec<String>,
}

impl ScrubReport {
    /// `exit_code::EQUAL` if nothing is damaged, else `exit_code::DAMAGED`.
    pub fn exit_code(&self) -> u8 {
        if self.damaged.is_empty() { crate::exit_code::EQUAL } else { crate::exit_code::DAMAGED }
    }
}

/// Checks every sealed segment of the store in `data_dir` (each shard's newest segment is its
/// active one, which every open checks, and is left out).
pub fn scrub(data_dir: &Path, hsm: &Hsm) -> Result<ScrubReport, BackupError> {
    let metadata = StoreMetadata::read(data_dir)?;
    let session = hsm.session()?;
    let mut report = ScrubReport::default();
    let mut sealed_ids = Vec::with_capacity(metadata.shards);
    let mut ciphers = HashMap::new();
    for shard in 0..u32::try_from(metadata.shards).unwrap_or(u32::MAX) {
        let directory = shard_directory(data_dir, shard);
        sealed_ids.push(sealed_segment_ids(&directory)?);
        match shard_ciphers(&directory, shard, &session)? {
            Ok(shard_ciphers) => ciphers.extend(shard_ciphers),
            Err(damage) => report.damaged.push(format!("shard {shard}: reading its keys: {damage}")),
        }
    }
    // Segments compaction removed since the listing are counted, not checked.
    let (segments, vanished) = sealed_segments(data_dir, &sealed_ids)?;
    report.segments_vanished = vanished;
    let bar = bytes_bar(segments.iter().map(|segment| segment.size).sum(), "scrub");
    let checks = on_every_core(&segments, async |segment| {
        let check = check_segment_at(&segment.path, segment.segment_id, &ciphers, Digests::Checked).await;
        bar.inc(segment.size);
        check
    });
    bar.finish_and_clear();
    for (segment, check) in segments.iter().zip(checks) {
        let name = || format!("shard {} segment {}", segment.shard, segment.path.display());
        match check {
            None => report.damaged.push(format!("{}: its check panicked", name())),
            Some(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => report.segments_vanished += 1,
            Some(Err(error)) => return Err(BackupError::io(format!("reading {}", segment.path.display()))(error)),
            Some(Ok(check)) => match check.frames {
                Ok((checked, without_key)) => {
                    report.segments_checked += 1;
                    report.bytes_checked += segment.size;
                    report.frames_checked += checked;
                    report.frames_without_key += without_key;
                }
                Err(reason) => report.damaged.push(format!("{}: {reason}", name())),
            },
        }
    }
    Ok(report)
}

/// The ids of the sealed segments in a shard's directory: every segment but the newest.
fn sealed_segment_ids(directory: &Path) -> Result<Vec<u64>, BackupError> {
    let mut ids: Vec<u64> = std::fs::read_dir(directory)
        .map_err(BackupError::io(format!("listing {}", directory.display())))?
        .filter_map(|entry| entry.ok()?.file_name().to_str().and_then(parse_segment_name))
        .collect();
    ids.sort_unstable();
    ids.pop();
    Ok(ids)
}

/// A cipher for every account of the shard, its key unwrapped by the live KEK in the HSM; or,
/// when the shard's log is damaged where a replay reads it, what is wrong (`Ok(Err)`). A read
/// that fails otherwise (a segment compaction removed under it, say) is tried again.
fn shard_ciphers(
    directory: &Path,
    shard: u32,
    session: &HsmSession,
) -> Result<Result<HashMap<u64, RecordCipher>, String>, BackupError> {
    let mut attempt = 0;
    let read = loop {
        attempt += 1;
        match block_on(read_shard(directory, shard, SegmentSelection::Live, KeySource::Log, session)) {
            Ok(read) => break read,
            Err(error) if attempt < LIVE_READ_ATTEMPTS_MAX => {
                tracing::info!(%error, "the live store changed while it was read; reading it again");
            }
            Err(ReadError::Segment { source, .. }) if !matches!(source, ScanError::Io { .. }) => {
                return Ok(Err(source.to_string()));
            }
            Err(error) => return Err(error.into()),
        }
    };
    let mut ciphers = HashMap::with_capacity(read.wrapped_keys.len());
    for (account_id, wrapped) in &read.wrapped_keys {
        ciphers.insert(*account_id, RecordCipher::new(&session.unwrap_dek(wrapped)?));
    }
    Ok(Ok(ciphers))
}
