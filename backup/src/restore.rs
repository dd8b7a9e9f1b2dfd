//! `backup restore`: rebuild a store from the newest backup into a new directory.
//!
//! 1. Every segment the manifest names is fetched into `<into>/shard-NNN/`, its size and
//!    BLAKE3 digest checked against the signed manifest (any mismatch stops the restore).
//! 2. Each shard gets one more segment, after the copied ones, holding every one of its
//!    accounts' keys re-wrapped (inside the HSM) from the backup key to the current KEK: the
//!    copies in the backup's segments may be under a KEK that rotation has since destroyed.
//! 3. `store.meta` is written last: a restore that stopped half-way is not a store.
//! 4. The restored store is read back and compared with the backup (level 3): equal, or the
//!    differences are reported.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use mailvault_engine::block_on;
use mailvault_engine::offline::{KeySource, SegmentSelection, StoreContents, TableKey, key_segment_image, read_shard};
use mailvault_engine::segment::segment_name;
use mailvault_hsm::{Hsm, HsmSession, WrappedDek};

use crate::compare::{Difference, compare_contents};
use crate::error::BackupError;
use crate::every_core::on_every_core;
use crate::key_table::KeyTable;
use crate::live::{live_contents, shard_directory};
use crate::local_copy;
use crate::manifest::{Manifest, ManifestSegment};
use crate::objects;
use crate::progress::bytes_bar;
use crate::run::{latest_manifest, now_unix_ms};
use crate::target::{Target, TargetSpec};

/// Account ids carry their shard in the top 16 bits (docs/format.md §4.1).
const SHARD_ID_SHIFT: u32 = 48;

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub segments_restored: usize,
    pub bytes_restored: u64,
    pub accounts: usize,
    pub messages: usize,
    /// The restored store against the backup: empty when equal.
    pub differences: Vec<Difference>,
}

/// Restores the newest backup on `spec` into `into`, which must not exist or be empty.
pub fn restore(spec: &TargetSpec, into: &Path, hsm: &Hsm) -> Result<RestoreReport, BackupError> {
    check_empty(into)?;
    let session = hsm.session()?;
    let target = spec.open(false)?;
    let mut report = RestoreReport::default();
    let runtime = objects::runtime()?;
    let (manifest, table) = runtime.block_on(fetch_manifest_and_key_table(&target, &session))?;
    fetch_segments(&runtime, &target, &manifest, into, &mut report)?;
    let keys = unwrap_all(&session, &table)?;
    let backup = write_key_segments(&manifest, into, &keys, &session)?;
    mailvault_engine::init_store(into, manifest.store.shards)?;
    let restored = live_contents(into, hsm)?;
    report.accounts = backup.accounts.len();
    report.messages = backup.message_count();
    report.differences = compare_contents(&backup, &restored);
    Ok(report)
}

fn check_empty(into: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(into).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            Err(BackupError::Invalid(format!("{} is not empty: restore only into a new directory", into.display())))
        }
        Ok(false) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(into).map_err(BackupError::io(format!("creating {}", into.display())))
        }
        Err(error) => Err(BackupError::io(format!("reading {}", into.display()))(error)),
    }
}

async fn fetch_manifest_and_key_table(
    target: &Target,
    session: &HsmSession,
) -> Result<(Manifest, KeyTable), BackupError> {
    let manifest = latest_manifest(target, session).await?.ok_or(BackupError::NoManifest)?;
    let bytes = objects::get_bytes(target, &manifest.key_table.name)
        .await?
        .ok_or_else(|| BackupError::Damaged(format!("key table {} is missing", manifest.key_table.name)))?;
    if hex::encode(blake3::hash(&bytes).as_bytes()) != manifest.key_table.blake3 {
        return Err(BackupError::Damaged(format!("key table {}: digest mismatch", manifest.key_table.name)));
    }
    let table = KeyTable::decode(&bytes).map_err(|error| BackupError::Damaged(error.to_string()))?;
    Ok((manifest, table))
}

/// Copies every segment of `manifest` into the store at `into`, checking each against the
/// manifest: a directory target's on compio (O_DIRECT, several chunks in flight), an object
/// store's through tokio, one after the other.
fn fetch_segments(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    manifest: &Manifest,
    into: &Path,
    report: &mut RestoreReport,
) -> Result<(), BackupError> {
    let bar = bytes_bar(manifest.segments.iter().map(|segment| segment.file.size).sum(), "restore");
    let path_of =
        |segment: &ManifestSegment| shard_directory(into, segment.shard).join(segment_name(segment.segment_id));
    // A directory target's segments are copied on every core at once (see `run`).
    let mut local_copies = match &target.local_root {
        Some(root) => on_every_core(&manifest.segments, async |segment| {
            local_copy::copy_local_file(&root.join(&segment.file.name), &path_of(segment), &bar).await
        }),
        None => Vec::new(),
    }
    .into_iter();
    for segment in &manifest.segments {
        let path = path_of(segment);
        let found = match &target.local_root {
            Some(_) => local_copies
                .next()
                .flatten()
                .ok_or_else(|| BackupError::Invalid(format!("copying {} panicked", segment.file.name)))??,
            None => runtime.block_on(objects::fetch_object(target, &segment.file.name, Some(&path), &bar))?,
        };
        let found = found.ok_or_else(|| BackupError::Damaged(format!("segment {} is missing", segment.file.name)))?;
        if found.size != segment.file.size || hex::encode(found.digest) != segment.file.blake3 {
            return Err(BackupError::Damaged(format!("segment {} does not match the manifest", segment.file.name)));
        }
        report.segments_restored += 1;
        report.bytes_restored += found.size;
    }
    bar.finish_and_clear();
    Ok(())
}

fn unwrap_all(session: &HsmSession, table: &KeyTable) -> Result<Vec<TableKey>, BackupError> {
    let mut keys = Vec::with_capacity(table.entries.len());
    for (account_id, wrapped) in &table.entries {
        let dek = session.unwrap_backup_dek(wrapped)?;
        keys.push(TableKey { account_id: *account_id, wrapped: wrapped.clone(), dek });
    }
    Ok(keys)
}

/// Replays each restored shard from the backup (level 3's backup side) and appends its key
/// segment; returns the backup's contents.
fn write_key_segments(
    manifest: &Manifest,
    into: &Path,
    keys: &[TableKey],
    session: &HsmSession,
) -> Result<StoreContents, BackupError> {
    let mut by_shard: BTreeMap<u32, Vec<u64>> =
        (0..manifest.store.shards as u32).map(|shard| (shard, Vec::new())).collect();
    for segment in &manifest.segments {
        by_shard.entry(segment.shard).or_default().push(segment.segment_id);
    }
    let mut contents = StoreContents::default();
    for (shard, ids) in by_shard {
        let directory = shard_directory(into, shard);
        std::fs::create_dir_all(&directory).map_err(BackupError::io(format!("creating {}", directory.display())))?;
        let shard_keys: Vec<&TableKey> =
            keys.iter().filter(|key| key.account_id >> SHARD_ID_SHIFT == u64::from(shard)).collect();
        let table = shard_keys
            .iter()
            .map(|key| TableKey { account_id: key.account_id, wrapped: key.wrapped.clone(), dek: key.dek.clone() })
            .collect();
        let next_id = ids.iter().max().map_or(1, |last| last + 1);
        let read =
            block_on(read_shard(&directory, shard, SegmentSelection::Sealed(ids), KeySource::Table(table), session))?;
        contents.add_index(&read.index);
        // Accounts with records in the backup but no key in its table were purged after the
        // backup ran (a purge re-keys the table without them): the restored store must know.
        let purged: Vec<u64> = read.accounts_without_key.iter().copied().collect();
        if shard_keys.is_empty() && purged.is_empty() {
            continue;
        }
        let mut rewrapped: Vec<(u64, WrappedDek)> = Vec::with_capacity(shard_keys.len());
        for key in shard_keys {
            rewrapped.push((key.account_id, session.wrap_backup_dek_for_store(&key.wrapped)?));
        }
        let first_record_id = read.max_record_id.max(u64::from(shard) << SHARD_ID_SHIFT) + 1;
        let image = key_segment_image(shard, next_id, now_unix_ms(None), first_record_id, &rewrapped, &purged);
        write_durably(&directory, &segment_name(next_id), &image)?;
    }
    Ok(contents)
}

fn write_durably(directory: &Path, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
    let path = directory.join(name);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::File::open(directory)?.sync_all()
    };
    write().map_err(BackupError::io(format!("writing {}", path.display())))
}
