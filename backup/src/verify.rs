//! `backup verify`: three levels, cheapest first.
//!
//! 1. The manifest's signature (HSM HMAC); every file it names present, with its size and
//!    BLAKE3 digest.
//! 2. Every frame of every segment: CRC, the sealed footer and its digest, and the AEAD tag of
//!    every encrypted record under its account's key from the backup's key table.
//! 3. The backup replayed into accounts → mailboxes → messages and compared with a store,
//!    message by message and mailbox by mailbox.
//!
//! Nothing here writes to the compared store. Damage is reported per file and the check goes
//! on with the next one, so one report names everything that is wrong.

use std::path::{Path, PathBuf};

use mailvault_engine::block_on;
use mailvault_engine::offline::{KeySource, SegmentSelection, StoreContents, TableKey, read_shard};
use mailvault_engine::segment::segment_name;
use mailvault_hsm::{Hsm, HsmSession};

use crate::compare::{Difference, compare_contents};
use crate::error::BackupError;
use crate::every_core::on_every_core;
use crate::frame_check::{Digests, check_frames};
use crate::key_table::KeyTable;
use crate::live::{live_contents, shard_directory};
use crate::local_copy;
use crate::manifest::Manifest;
use crate::objects;
use crate::progress::bytes_bar;
use crate::run::{SEGMENT_DIRECTORY, latest_manifest_name};
use crate::target::{Target, TargetSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VerifyLevel {
    Files = 1,
    Frames = 2,
    Contents = 3,
}

impl VerifyLevel {
    pub fn from_number(level: u8) -> Option<Self> {
        match level {
            1 => Some(Self::Files),
            2 => Some(Self::Frames),
            3 => Some(Self::Contents),
            _ => None,
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The backup itself is damaged: what, where.
    Damaged(String),
    /// The backup is intact but differs from the compared store.
    Different(Difference),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyVerdict {
    Equal,
    Different,
    Damaged,
}

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub manifest: Option<Manifest>,
    pub findings: Vec<Finding>,
    pub segments_checked: usize,
    pub bytes_checked: u64,
    pub frames_checked: u64,
    /// Frames of accounts the key table no longer holds (erased): not readable, not damage.
    pub frames_without_key: u64,
    pub messages_compared: usize,
}

impl VerifyReport {
    pub fn verdict(&self) -> VerifyVerdict {
        if self.findings.iter().any(|finding| matches!(finding, Finding::Damaged(_))) {
            VerifyVerdict::Damaged
        } else if self.findings.is_empty() {
            VerifyVerdict::Equal
        } else {
            VerifyVerdict::Different
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.verdict() {
            VerifyVerdict::Equal => crate::exit_code::EQUAL,
            VerifyVerdict::Different => crate::exit_code::DIFFERENT,
            VerifyVerdict::Damaged => crate::exit_code::DAMAGED,
        }
    }

    fn damaged(&mut self, what: String) {
        self.findings.push(Finding::Damaged(what));
    }
}

/// Verifies the newest backup on `spec` at `level`; level 3 compares it with the store in
/// `compare_with`. Segments of an S3 target are downloaded into `work_dir` for levels 2 and 3
/// (a temporary directory there, removed after).
pub fn verify(
    spec: &TargetSpec,
    level: VerifyLevel,
    hsm: &Hsm,
    compare_with: Option<&Path>,
    work_dir: &Path,
) -> Result<VerifyReport, BackupError> {
    if level == VerifyLevel::Contents && compare_with.is_none() {
        return Err(BackupError::Invalid("level 3 needs a store to compare with".into()));
    }
    let session = hsm.session()?;
    let target = spec.open(false)?;
    let download = (level >= VerifyLevel::Frames && target.local_root.is_none())
        .then(|| tempfile::Builder::new().prefix("mailvault-verify-").tempdir_in(work_dir))
        .transpose()
        .map_err(BackupError::io(format!("creating a work directory in {}", work_dir.display())))?;
    let segments_root = match (&target.local_root, &download) {
        (Some(root), _) => root.join(SEGMENT_DIRECTORY),
        (None, Some(download)) => download.path().join(SEGMENT_DIRECTORY),
        (None, None) => PathBuf::new(),
    };
    let mut report = VerifyReport::default();
    let runtime = objects::runtime()?;
    // A directory target's segments are hashed in the frame pass at level 2 (one read each).
    let digests = if level >= VerifyLevel::Frames && target.local_root.is_some() {
        Digests::WithFrames
    } else {
        Digests::Checked
    };
    let Some((manifest, table)) = runtime.block_on(check_manifest_and_key_table(&target, &session, &mut report))?
    else {
        return Ok(report);
    };
    let download_into = download.as_ref().map(|_| segments_root.as_path());
    check_segment_files(&runtime, &target, &manifest, download_into, digests, &mut report)?;
    report.manifest = Some(manifest.clone());
    if level == VerifyLevel::Files {
        return Ok(report);
    }
    let keys = unwrap_table(&session, table.as_ref(), &mut report);
    check_frames(&manifest, &segments_root, &keys, digests, &mut report);
    if level == VerifyLevel::Frames || report.verdict() == VerifyVerdict::Damaged {
        return Ok(report); // a damaged backup cannot be compared meaningfully
    }
    let backup = backup_contents(&manifest, &segments_root, &keys, &session)?;
    let store = live_contents(compare_with.unwrap_or(Path::new(".")), hsm)?;
    report.messages_compared = backup.message_count().max(store.message_count());
    report.findings.extend(compare_contents(&backup, &store).into_iter().map(Finding::Different));
    Ok(report)
}

/// Level 1, first part: the manifest and key table, returned if they could be read (what is
/// wrong with them recorded).
async fn check_manifest_and_key_table(
    target: &Target,
    session: &HsmSession,
    report: &mut VerifyReport,
) -> Result<Option<(Manifest, Option<KeyTable>)>, BackupError> {
    let name = latest_manifest_name(target).await?.ok_or(BackupError::NoManifest)?;
    let bytes = objects::get_bytes(target, &name).await?.ok_or(BackupError::NoManifest)?;
    let manifest = match Manifest::open_signed(&bytes, session) {
        Ok(manifest) => manifest,
        Err(BackupError::Damaged(what)) => {
            report.damaged(format!("{name}: {what}"));
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let table = match objects::get_bytes(target, &manifest.key_table.name).await? {
        None => {
            report.damaged(format!("key table {} is missing from the target", manifest.key_table.name));
            None
        }
        Some(bytes) if hex::encode(blake3::hash(&bytes).as_bytes()) != manifest.key_table.blake3 => {
            report.damaged(format!("key table {}: its digest does not match the manifest", manifest.key_table.name));
            None
        }
        Some(bytes) => match KeyTable::decode(&bytes) {
            Ok(table) => Some(table),
            Err(error) => {
                report.damaged(format!("key table {}: {error}", manifest.key_table.name));
                None
            }
        },
    };
    Ok(Some((manifest, table)))
}

/// Level 1, second part: every segment present, with its size and digest, each one damaged or
/// missing recorded. With `download_into`, segments are also written there. With
/// `Digests::WithFrames` (a directory target at level 2), presence and size only: the frame
/// pass hashes them in the same read. A directory target is read in place (on compio, O_DIRECT,
/// several reads in flight), an object store through tokio: one after the other, never one
/// runtime inside the other.
fn check_segment_files(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    manifest: &Manifest,
    download_into: Option<&Path>,
    digests: Digests,
    report: &mut VerifyReport,
) -> Result<(), BackupError> {
    let bar = bytes_bar(manifest.segments.iter().map(|segment| segment.file.size).sum(), "verify");
    // A directory target's files are hashed on every core at once, in manifest order here.
    let mut local_hashes = match (&target.local_root, digests) {
        (Some(root), Digests::Checked) => on_every_core(&manifest.segments, async |segment| {
            local_copy::hash_local_file(&root.join(&segment.file.name), &bar).await
        }),
        _ => Vec::new(),
    }
    .into_iter();
    for segment in &manifest.segments {
        let file = &segment.file;
        // (size, digest); no digest when the frame pass takes it from its own read.
        let found = match (&target.local_root, digests) {
            (Some(root), Digests::WithFrames) => {
                bar.inc(file.size);
                match std::fs::metadata(root.join(&file.name)) {
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                    Err(error) => return Err(BackupError::io(format!("reading {}", file.name))(error)),
                    Ok(found) => Some((found.len(), None)),
                }
            }
            (Some(_), Digests::Checked) => {
                let hashed = local_hashes.next().flatten();
                let hashed = hashed.ok_or_else(|| BackupError::Invalid(format!("hashing {} panicked", file.name)))?;
                hashed?.map(|found| (found.size, Some(found.digest)))
            }
            (None, _) => {
                let into = download_into.map(|root| local_segment_path(root, segment.shard, segment.segment_id));
                runtime
                    .block_on(objects::fetch_object(target, &file.name, into.as_deref(), &bar))?
                    .map(|found| (found.size, Some(found.digest)))
            }
        };
        match found {
            None => report.damaged(format!("segment {} is missing from the target", file.name)),
            Some((size, _)) if size != file.size => {
                report.damaged(format!("segment {}: {size} bytes, the manifest says {}", file.name, file.size));
            }
            Some((_, Some(digest))) if hex::encode(digest) != file.blake3 => {
                report.damaged(format!("segment {}: its BLAKE3 digest does not match the manifest", file.name));
            }
            Some((size, Some(_))) => {
                report.segments_checked += 1;
                report.bytes_checked += size;
            }
            Some((_, None)) => {}
        }
    }
    bar.finish_and_clear();
    Ok(())
}

fn local_segment_path(segments_root: &Path, shard: u32, segment_id: u64) -> PathBuf {
    shard_directory(segments_root, shard).join(segment_name(segment_id))
}

/// The key table's DEKs, unwrapped by the backup key. A key that does not unwrap is damage.
fn unwrap_table(session: &HsmSession, table: Option<&KeyTable>, report: &mut VerifyReport) -> Vec<TableKey> {
    let mut keys = Vec::new();
    for (account_id, wrapped) in table.iter().flat_map(|table| table.entries.iter()) {
        match session.unwrap_backup_dek(wrapped) {
            Ok(dek) => keys.push(TableKey { account_id: *account_id, wrapped: wrapped.clone(), dek }),
            Err(error) => {
                report.damaged(format!("key table: the key of account {account_id} does not unwrap: {error}"));
            }
        }
    }
    keys
}

/// Level 3's backup side: every shard replayed from the backup's segments and key table.
fn backup_contents(
    manifest: &Manifest,
    segments_root: &Path,
    keys: &[TableKey],
    session: &HsmSession,
) -> Result<StoreContents, BackupError> {
    let mut contents = StoreContents::default();
    let mut by_shard: std::collections::BTreeMap<u32, Vec<u64>> = std::collections::BTreeMap::new();
    for segment in &manifest.segments {
        by_shard.entry(segment.shard).or_default().push(segment.segment_id);
    }
    for (shard, ids) in by_shard {
        let shard_keys = keys
            .iter()
            .map(|key| TableKey { account_id: key.account_id, wrapped: key.wrapped.clone(), dek: key.dek.clone() })
            .collect();
        let directory = shard_directory(segments_root, shard);
        let read = block_on(read_shard(
            &directory,
            shard,
            SegmentSelection::Sealed(ids),
            KeySource::Table(shard_keys),
            session,
        ))?;
        if !read.accounts_without_key.is_empty() {
            tracing::info!(
                shard,
                accounts = read.accounts_without_key.len(),
                "accounts without a key in the backup (erased) skipped"
            );
        }
        contents.add_index(&read.index);
    }
    Ok(contents)
}
