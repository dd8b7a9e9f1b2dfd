//! `backup restore`: rebuild a store from the newest backup into a new directory.
//!
//! 1. Every segment the manifest names is fetched into `<into>/shard-NNN/`, its size and
//!    BLAKE3 digest checked against the signed manifest (any mismatch stops the restore).
//! 2. Each shard gets one more segment, after the copied ones (`RestoreSegment`), holding:
//!    every one of its accounts' keys re-wrapped (inside the HSM) from the backup key to the
//!    current KEK, since the copies in the backup's segments may be under a KEK that rotation
//!    has since destroyed; and a snapshot of every account giving each mailbox a new
//!    UIDVALIDITY, since the lost store may have handed out uids after the backup that the
//!    restored store will hand out again. Its record ids skip far past the backup's: the
//!    accounts keep their keys, and record ids are their nonces (docs/format.md §8.5).
//! 3. `store.meta` is written last: a restore that stopped half-way is not a store.
//! 4. The restored store is read back and compared with the backup (level 3): equal, or the
//!    differences are reported. A UIDVALIDITY counts as equal only if it was renewed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mailvault_engine::block_on;
use mailvault_engine::format::SHARD_ID_SHIFT;
use mailvault_engine::offline::{
    KeySource, RestoreSegment, RestoredKey, SegmentSelection, StoreContents, TableKey, read_shard,
    restored_record_id_floor,
};
use mailvault_engine::segment::segment_name;
use mailvault_hsm::{Hsm, HsmSession};

use crate::compare::{Difference, compare_contents};
use crate::error::BackupError;
use crate::every_core::on_every_core;
use crate::key_table::KeyTable;
use crate::live::{live_contents, shard_directory};
use crate::local_copy::{self, SegmentCopy};
use crate::manifest::{Manifest, ManifestSegment};
use crate::objects;
use crate::progress::bytes_bar;
use crate::run::{latest_manifest, now_unix_ms};
use crate::target::{Target, TargetSpec};

#[derive(Debug, Default)]
pub struct RestoreReport {
    pub segments_restored: usize,
    pub bytes_restored: u64,
    pub accounts: usize,
    pub messages: usize,
    /// Mailboxes given a new UIDVALIDITY.
    pub mailboxes_renewed: usize,
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
    let now = now_unix_ms(None);
    // Refused before anything is copied; the real floor needs the copied segments' record ids.
    restored_record_id_floor(0, 0, now - manifest.created_unix_ms)
        .map_err(|error| BackupError::Invalid(error.to_string()))?;
    fetch_segments(&runtime, &target, &manifest.segments, |shard| shard_directory(into, shard), &mut report)?;
    let keys = unwrap_all(&session, &table, None)?;
    let shards = 0..manifest.store.shards as u32;
    let backup = write_restore_segments(&manifest, shards, |shard| shard_directory(into, shard), &keys, &session, now)?;
    mailvault_engine::init_store(into, manifest.store.shards)?;
    let restored = live_contents(into, hsm)?;
    report.accounts = backup.accounts.len();
    report.messages = backup.message_count();
    report.differences = compare_contents(&backup, &restored);
    report.mailboxes_renewed = count_renewed(&backup, &restored, &mut report.differences);
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

pub(crate) async fn fetch_manifest_and_key_table(
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
pub(crate) fn fetch_segments(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    segments: &[ManifestSegment],
    shard_directory_of: impl Fn(u32) -> PathBuf + Sync,
    report: &mut RestoreReport,
) -> Result<(), BackupError> {
    let bar = bytes_bar(segments.iter().map(|segment| segment.file.size).sum(), "restore");
    let path_of = |segment: &ManifestSegment| shard_directory_of(segment.shard).join(segment_name(segment.segment_id));
    // A directory target's segments are copied on every core at once (see `run`).
    let mut local_copies = match &target.local_root {
        Some(root) => on_every_core(segments, async |segment| {
            let source = root.join(&segment.file.name);
            match local_copy::copy_segment(&source, &path_of(segment), segment.segment_id, &bar).await? {
                SegmentCopy::Whole { fingerprint, .. } => Ok(Some(fingerprint)),
                SegmentCopy::Vanished => Ok(None),
                SegmentCopy::Damaged(reason) => {
                    Err(BackupError::Damaged(format!("segment {}: {reason}", segment.file.name)))
                }
            }
        }),
        None => Vec::new(),
    }
    .into_iter();
    for segment in segments {
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

/// The table's keys unwrapped by the backup key: every one, or only shard `only`'s.
pub(crate) fn unwrap_all(
    session: &HsmSession,
    table: &KeyTable,
    only: Option<u32>,
) -> Result<Vec<TableKey>, BackupError> {
    let mut keys = Vec::with_capacity(table.entries.len());
    let wanted = |account_id: u64| only.is_none_or(|shard| account_id >> SHARD_ID_SHIFT == u64::from(shard));
    for (account_id, wrapped) in table.entries.iter().filter(|(account_id, _)| wanted(*account_id)) {
        let dek = session.unwrap_backup_dek(wrapped)?;
        keys.push(TableKey { account_id: *account_id, wrapped: wrapped.clone(), dek });
    }
    Ok(keys)
}

/// Replays each restored shard from the backup and appends its restore segment.
pub(crate) fn write_restore_segments(
    manifest: &Manifest,
    shards: impl IntoIterator<Item = u32>,
    shard_directory_of: impl Fn(u32) -> PathBuf,
    keys: &[TableKey],
    session: &HsmSession,
    now: i64,
) -> Result<StoreContents, BackupError> {
    let mut by_shard: BTreeMap<u32, Vec<u64>> = shards.into_iter().map(|shard| (shard, Vec::new())).collect();
    for segment in &manifest.segments {
        if let Some(ids) = by_shard.get_mut(&segment.shard) {
            ids.push(segment.segment_id);
        }
    }
    let mut contents = StoreContents::default();
    for (shard, ids) in by_shard {
        let directory = shard_directory_of(shard);
        std::fs::create_dir_all(&directory).map_err(BackupError::io(format!("creating {}", directory.display())))?;
        let shard_keys: Vec<TableKey> =
            keys.iter().filter(|key| key.account_id >> SHARD_ID_SHIFT == u64::from(shard)).cloned().collect();
        let table = KeySource::Table(shard_keys.clone());
        let next_id = ids.iter().max().map_or(1, |last| last + 1);
        let mut read = block_on(read_shard(&directory, shard, SegmentSelection::Sealed(ids), table, session))?;
        contents.add_index(&read.index);
        // Accounts with records in the backup but no key in its table were purged after the
        // backup ran (a purge re-keys the table without them): the restored store must know.
        let purged: Vec<u64> = read.accounts_without_key.iter().copied().collect();
        if shard_keys.is_empty() && purged.is_empty() {
            continue;
        }
        let mut restored_keys = Vec::with_capacity(shard_keys.len());
        for key in shard_keys {
            let wrapped = session.wrap_backup_dek_for_store(&key.wrapped)?;
            restored_keys.push(RestoredKey { account_id: key.account_id, wrapped, dek: key.dek });
        }
        read.index.renew_uid_validities(now);
        let first_record_id = restored_record_id_floor(shard, read.max_record_id, now - manifest.created_unix_ms)
            .map_err(|error| BackupError::Invalid(error.to_string()))?;
        let segment = RestoreSegment {
            shard_id: shard,
            segment_id: next_id,
            created_unix_ms: now,
            first_record_id,
            keys: &restored_keys,
            purged: &purged,
            accounts: &read.index,
        };
        write_durably(&directory, &segment_name(next_id), |file| segment.write(file))?;
    }
    Ok(contents)
}

/// Counts the restored mailboxes whose UIDVALIDITY is newer than the backup's, and adds a
/// difference for each one whose is not (the comparison lets a newer one pass as equal).
pub(crate) fn count_renewed(
    backup: &StoreContents,
    restored: &StoreContents,
    differences: &mut Vec<Difference>,
) -> usize {
    let mut renewed = 0;
    for (account, in_backup) in &backup.accounts {
        let Some(in_store) = restored.accounts.get(account) else { continue };
        for (mailbox, old) in &in_backup.mailboxes {
            let Some(new) = in_store.mailboxes.get(mailbox) else { continue };
            if new.uid_validity > old.uid_validity {
                renewed += 1;
            } else {
                differences.push(Difference {
                    account: account.clone(),
                    mailbox: Some(mailbox.clone()),
                    uid: None,
                    what: format!("UIDVALIDITY not renewed: backup {}, store {}", old.uid_validity, new.uid_validity),
                });
            }
        }
    }
    renewed
}

/// Creates `name` in `directory`, writes it with `write` (buffered), and makes it and its
/// directory entry durable.
fn write_durably(
    directory: &Path,
    name: &str,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), BackupError> {
    let path = directory.join(name);
    let create = || -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        write(&mut writer)?;
        writer.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::File::open(directory)?.sync_all()
    };
    create().map_err(BackupError::io(format!("writing {}", path.display())))
}
