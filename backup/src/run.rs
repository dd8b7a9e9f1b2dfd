//! `backup run`: copy the sealed segments the target lacks, the key table (re-wrapped under
//! the backup key), and a signed manifest; then prune what the new manifest no longer names.
//!
//! Order matters for crash safety: segments and key table first, the manifest last (a
//! manifest never names a file that is not on the target), pruning only after the manifest is
//! durable (the previous manifest's files stay until a newer one replaces it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use mailvault_engine::StoreMetadata;
use mailvault_hsm::Hsm;

use crate::error::BackupError;
use crate::every_core::on_every_core;
use crate::frame_check::{self, Digests};
use crate::key_table::KeyTable;
use crate::live::{LocalSegment, read_live, sealed_segments};
use crate::local_copy::{self, SegmentCopy};
use crate::manifest::{MANIFEST_DIRECTORY, MANIFEST_FORMAT, Manifest, ManifestFile, ManifestSegment, StoreIdentity};
use crate::objects::{self, Fingerprint};
use crate::progress::bytes_bar;
use crate::registry::register_target;
use crate::target::{Target, TargetSpec};

pub(crate) const SEGMENT_DIRECTORY: &str = "segments";
pub(crate) const KEY_TABLE_DIRECTORY: &str = "keytables";

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub segments_copied: usize,
    pub bytes_copied: u64,
    /// Segments already on the target.
    pub segments_present: usize,
    /// Objects deleted because the new manifest no longer names them.
    pub objects_pruned: usize,
    pub key_table_copied: bool,
    /// Frames of the segments copied, each checked as recovery checks a sealed segment's.
    pub frames_checked: u64,
    /// The manifest written, or `None` when nothing changed since the last one.
    pub manifest: Option<String>,
}

pub(crate) fn segment_object_name(shard: u32, segment_id: u64) -> String {
    format!("{SEGMENT_DIRECTORY}/shard-{shard:03}/{}", mailvault_engine::segment::segment_name(segment_id))
}

/// Rounds of seal-and-copy before giving up: each extra round is needed only when compaction
/// removed a sealed segment before it was copied.
const SEAL_ROUNDS_MAX: usize = 10;

/// Seals the store's active segments and answers, per shard, its sealed segments' ids
/// (`Engine::seal_active`, on the engine or through the server's admin socket).
pub type Seal<'a> = dyn FnMut() -> Result<Vec<Vec<u64>>, BackupError> + 'a;

/// Backs the store in `data_dir` up to `spec`, sealing through `seal`.
///
/// Compaction may remove a sealed segment between the seal and its copy, moving its live
/// records into the active segment: then the run seals and copies again, so that every write
/// acknowledged before the run started is in the backup.
pub fn run_backup(
    data_dir: &Path,
    seal: &mut Seal<'_>,
    hsm: &Hsm,
    spec: &TargetSpec,
) -> Result<RunReport, BackupError> {
    let metadata = StoreMetadata::read(data_dir)?;
    let session = hsm.session()?;
    let backup_key_version = session.ensure_backup_key()?;
    let target = spec.open(true)?;
    register_target(data_dir, spec)?;
    let runtime = objects::runtime()?;
    let previous = runtime.block_on(latest_manifest(&target, &session)).unwrap_or_else(|error| {
        tracing::warn!(%error, target = %target, "the target's manifest is unusable; copying every segment again");
        None
    });
    let mut on_target: BTreeMap<String, ManifestFile> = BTreeMap::new();
    let present: BTreeMap<String, u64> =
        runtime.block_on(objects::list(&target, SEGMENT_DIRECTORY))?.into_iter().collect();
    for segment in previous.iter().flat_map(|manifest| manifest.segments.iter()) {
        if present.get(&segment.file.name) == Some(&segment.file.size) {
            on_target.insert(segment.file.name.clone(), segment.file.clone());
        }
    }
    let mut report = RunReport::default();
    let mut round = 0;
    let segments = loop {
        round += 1;
        let sealed = seal()?;
        let (local, vanished) = sealed_segments(data_dir, &sealed)?;
        let (segments, vanished_meanwhile) = copy_segments(&runtime, &target, &local, &mut on_target, &mut report)?;
        if vanished + vanished_meanwhile == 0 {
            break segments;
        }
        if round == SEAL_ROUNDS_MAX {
            return Err(BackupError::Invalid(format!(
                "compaction removed sealed segments before they were copied, {round} times in a row; run the backup again"
            )));
        }
        tracing::info!(round, "compaction removed sealed segments before they were copied; sealing again");
    };
    report.segments_present = segments.len() - report.segments_copied.min(segments.len());
    let live = read_live(data_dir, hsm)?;
    let table = wrap_for_backup(&session, &live.keys, backup_key_version)?;
    let identity = StoreIdentity {
        shards: metadata.shards,
        data_dir: data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_owned()).display().to_string(),
        hsm_token: hsm.token_label().to_owned(),
    };
    runtime.block_on(write_manifest(&target, &session, previous, segments, &table, identity, report))
}

pub(crate) fn wrap_for_backup(
    session: &mailvault_hsm::HsmSession,
    live_keys: &[(u64, mailvault_hsm::WrappedDek)],
    backup_key_version: u32,
) -> Result<KeyTable, BackupError> {
    let mut entries = Vec::with_capacity(live_keys.len());
    for (account_id, wrapped) in live_keys {
        entries.push((*account_id, session.wrap_dek_for_backup(wrapped, backup_key_version)?));
    }
    entries.sort_by_key(|(account_id, _)| *account_id);
    entries.dedup_by_key(|(account_id, _)| *account_id);
    Ok(KeyTable { backup_key_version, entries })
}

/// Copies the segments of `local` the target lacks, checking every frame of each; returns the
/// manifest entries of all of `local` that exist, and how many vanished before they could be
/// copied. A segment whose frames fail the check is not copied, and once the others are, the
/// run stops with `StoreDamaged` naming every such segment: no manifest is written, so the
/// target keeps its previous backup.
fn copy_segments(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    local: &[LocalSegment],
    on_target: &mut BTreeMap<String, ManifestFile>,
    report: &mut RunReport,
) -> Result<(Vec<ManifestSegment>, usize), BackupError> {
    let mut to_copy = Vec::new();
    let mut segments = Vec::with_capacity(local.len());
    for segment in local {
        let name = segment_object_name(segment.shard, segment.segment_id);
        match on_target.get(&name) {
            Some(file) if file.size == segment.size => {
                let file = file.clone();
                segments.push(ManifestSegment { shard: segment.shard, segment_id: segment.segment_id, file });
            }
            _ => to_copy.push((segment, name)),
        }
    }
    let bar = bytes_bar(to_copy.iter().map(|(segment, _)| segment.size).sum(), "backup");
    // A directory target copies on every core at once, each on a compio runtime (io_uring),
    // checking frames on the way. An object store's uploads stream through tokio (never one
    // runtime inside the other), so their frames are checked first, on every core: one more
    // local read of each segment uploaded, where the network is the slower side.
    let mut outcomes = on_every_core(&to_copy, async |(segment, name)| match &target.local_root {
        Some(root) => local_copy::copy_segment(&segment.path, &root.join(name), segment.segment_id, &bar).await,
        None => check_before_upload(segment).await,
    })
    .into_iter();
    let mut vanished = 0;
    let mut damaged = Vec::new();
    for (segment, name) in to_copy {
        let copied =
            outcomes.next().flatten().ok_or_else(|| BackupError::Invalid(format!("copying {name} panicked")))??;
        let (fingerprint, frames) = match copied {
            SegmentCopy::Vanished => {
                vanished += 1;
                continue;
            }
            SegmentCopy::Damaged(reason) => {
                damaged.push(format!("shard {} segment {}: {reason}", segment.shard, segment.path.display()));
                continue;
            }
            SegmentCopy::Whole { fingerprint, frames } if target.local_root.is_some() => (fingerprint, frames),
            SegmentCopy::Whole { fingerprint: checked, frames } => {
                let Some(uploaded) = runtime.block_on(objects::upload_file(target, &name, &segment.path, &bar))? else {
                    vanished += 1;
                    continue;
                };
                // Sealed segments never change: bytes other than those checked mean the store's
                // disk or another writer changed the file meanwhile.
                if uploaded != checked {
                    damaged.push(format!(
                        "shard {} segment {}: it changed between its check and its upload",
                        segment.shard,
                        segment.path.display()
                    ));
                    continue;
                }
                (uploaded, frames)
            }
        };
        report.segments_copied += 1;
        report.bytes_copied += fingerprint.size;
        report.frames_checked += frames;
        let file = ManifestFile { name: name.clone(), size: fingerprint.size, blake3: hex::encode(fingerprint.digest) };
        on_target.insert(name, file.clone());
        segments.push(ManifestSegment { shard: segment.shard, segment_id: segment.segment_id, file });
    }
    bar.finish_and_clear();
    if !damaged.is_empty() {
        return Err(BackupError::StoreDamaged(damaged));
    }
    segments.sort_by_key(|segment| (segment.shard, segment.segment_id));
    Ok((segments, vanished))
}

/// An object store's segment checked before its upload: frames, and the digest the upload must
/// match.
async fn check_before_upload(segment: &LocalSegment) -> Result<SegmentCopy, BackupError> {
    let no_keys = HashMap::new();
    let check =
        match frame_check::check_segment_at(&segment.path, segment.segment_id, &no_keys, Digests::WithFrames).await {
            Ok(check) => check,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(SegmentCopy::Vanished),
            Err(error) => return Err(BackupError::io(format!("reading {}", segment.path.display()))(error)),
        };
    Ok(match (check.frames, check.digest) {
        (Err(reason), _) => SegmentCopy::Damaged(reason),
        (Ok((frames, _)), Some(digest)) => {
            SegmentCopy::Whole { fingerprint: Fingerprint { size: segment.size, digest }, frames }
        }
        (Ok(_), None) => return Err(BackupError::Invalid(format!("{}: no digest was taken", segment.path.display()))),
    })
}

/// Writes the key table and, if anything changed, the signed manifest; then prunes.
async fn write_manifest(
    target: &Target,
    session: &mailvault_hsm::HsmSession,
    previous: Option<Manifest>,
    segments: Vec<ManifestSegment>,
    table: &KeyTable,
    identity: StoreIdentity,
    mut report: RunReport,
) -> Result<RunReport, BackupError> {
    let key_table = put_key_table(target, table, &mut report).await?;
    let unchanged = previous.as_ref().is_some_and(|previous| {
        previous.segments == segments && previous.key_table == key_table && previous.store == identity
    });
    let manifest = match previous {
        Some(previous) if unchanged => previous,
        previous => {
            let manifest = Manifest {
                format: MANIFEST_FORMAT.to_owned(),
                created_unix_ms: now_unix_ms(previous.as_ref()),
                store: identity,
                key_table,
                segments,
            };
            let name = crate::manifest::manifest_name(manifest.created_unix_ms);
            objects::put_bytes(target, &name, manifest.sign(session)?).await?;
            report.manifest = Some(name);
            manifest
        }
    };
    report.objects_pruned = prune(target, &manifest).await?;
    Ok(report)
}

/// Writes the key table unless the target has it already (it is named by its digest).
async fn put_key_table(target: &Target, table: &KeyTable, report: &mut RunReport) -> Result<ManifestFile, BackupError> {
    let bytes = table.encode();
    let digest = hex::encode(blake3::hash(&bytes).as_bytes());
    let name = format!("{KEY_TABLE_DIRECTORY}/{digest}.keys");
    let file = ManifestFile { name: name.clone(), size: bytes.len() as u64, blake3: digest };
    let present = objects::list(target, KEY_TABLE_DIRECTORY).await?;
    if !present.iter().any(|(existing, size)| *existing == name && *size == file.size) {
        objects::put_bytes(target, &name, bytes).await?;
        report.key_table_copied = true;
    }
    Ok(file)
}

/// Deletes every segment, key table and manifest that `manifest` (now durable) does not name.
pub(crate) async fn prune(target: &Target, manifest: &Manifest) -> Result<usize, BackupError> {
    let current = crate::manifest::manifest_name(manifest.created_unix_ms);
    let mut keep: BTreeSet<&str> = manifest.segments.iter().map(|segment| segment.file.name.as_str()).collect();
    keep.insert(&manifest.key_table.name);
    keep.insert(&current);
    let mut pruned = 0;
    for directory in [SEGMENT_DIRECTORY, KEY_TABLE_DIRECTORY, MANIFEST_DIRECTORY] {
        for (name, _) in objects::list(target, directory).await? {
            if !keep.contains(name.as_str()) {
                objects::delete(target, &name).await?;
                pruned += 1;
            }
        }
    }
    Ok(pruned)
}

/// The target's newest manifest, signature checked; `None` if it has none.
pub(crate) async fn latest_manifest(
    target: &Target,
    session: &mailvault_hsm::HsmSession,
) -> Result<Option<Manifest>, BackupError> {
    let Some(name) = latest_manifest_name(target).await? else { return Ok(None) };
    let bytes = objects::get_bytes(target, &name).await?.ok_or(BackupError::NoManifest)?;
    Manifest::open_signed(&bytes, session).map(Some)
}

pub(crate) async fn latest_manifest_name(target: &Target) -> Result<Option<String>, BackupError> {
    let names = objects::list(target, MANIFEST_DIRECTORY).await?;
    Ok(names.into_iter().map(|(name, _)| name).filter(|name| crate::manifest::is_manifest_name(name)).max())
}

/// Now, but always after the previous manifest (names sort by time; a clock step back must
/// not make an older manifest look newer).
pub(crate) fn now_unix_ms(previous: Option<&Manifest>) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
    previous.map_or(now, |previous| now.max(previous.created_unix_ms + 1))
}
