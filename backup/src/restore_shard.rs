//! `backup restore --shard N`: the repair of one damaged shard (a quarantined one,
//! docs/format.md §8.1.1) from the newest backup, inside the store, while the other shards keep
//! their data. The store must not be open (its lock is held throughout).
//!
//! 1. The shard's segments are fetched into `shard-NNN.restoring/` beside it, and its restore
//!    segment written there (as a whole-store restore does, `restore.rs`: re-wrapped keys, new
//!    UIDVALIDITYs, record ids past the lost ones).
//! 2. The rebuilt shard is read back and compared with the backup.
//! 3. The rebuilt directory and the damaged one trade names in one atomic rename
//!    (`RENAME_EXCHANGE`), so at no instant is the shard's directory missing; then the damaged
//!    one is renamed `shard-NNN.replaced-<unix ms>` (kept for inspection: what it held after the
//!    backup is there, and only there). Until the exchange, the store is as it was.
//!
//! A `shard-NNN.restoring/` found at the start was left by an interrupted repair, and may hold
//! the shard's previous data (if the interruption fell between the two renames): the repair
//! refuses to run until the operator has looked at it and moved it away.

use std::path::{Path, PathBuf};

use mailvault_engine::offline::{KeySource, SegmentSelection, StoreContents, read_shard, restored_record_id_floor};
use mailvault_engine::{StoreMetadata, block_on, lock_store};
use mailvault_hsm::Hsm;

use crate::compare::compare_contents;
use crate::error::BackupError;
use crate::live::shard_directory;
use crate::objects;
use crate::restore::{
    RestoreReport, count_renewed, fetch_manifest_and_key_table, fetch_segments, unwrap_all, write_restore_segments,
};
use crate::run::now_unix_ms;
use crate::target::TargetSpec;

#[derive(Debug)]
pub struct ShardRestoreReport {
    pub restore: RestoreReport,
    /// Where the replaced shard's directory went (none if the shard had no directory).
    pub set_aside: Option<PathBuf>,
}

/// Rebuilds shard `shard` of the store in `data_dir` from the newest backup on `spec`.
pub fn restore_shard(
    spec: &TargetSpec,
    data_dir: &Path,
    shard: u32,
    hsm: &Hsm,
) -> Result<ShardRestoreReport, BackupError> {
    let metadata = StoreMetadata::read(data_dir)?;
    let _lock = lock_store(data_dir)?;
    let session = hsm.session()?;
    let target = spec.open(false)?;
    let runtime = objects::runtime()?;
    let (manifest, table) = runtime.block_on(fetch_manifest_and_key_table(&target, &session))?;
    if manifest.store.shards != metadata.shards {
        return Err(BackupError::Invalid(format!(
            "the backup is of a store with {} shards, this one has {}",
            manifest.store.shards, metadata.shards
        )));
    }
    if shard as usize >= metadata.shards {
        return Err(BackupError::Invalid(format!(
            "no shard {shard}: the store has shards 0 to {}",
            metadata.shards - 1
        )));
    }
    let now = now_unix_ms(None);
    restored_record_id_floor(0, 0, now - manifest.created_unix_ms)
        .map_err(|error| BackupError::Invalid(error.to_string()))?;

    let staging = data_dir.join(format!("shard-{shard:03}.restoring"));
    if staging.exists() {
        return Err(BackupError::Invalid(format!(
            "{} exists: an earlier repair was interrupted, and it may hold the shard's previous data; look at it, \
             move it away, and run the repair again",
            staging.display()
        )));
    }
    std::fs::create_dir_all(&staging).map_err(BackupError::io(format!("creating {}", staging.display())))?;
    let mut report = RestoreReport::default();
    let segments: Vec<_> = manifest.segments.iter().filter(|segment| segment.shard == shard).cloned().collect();
    let rebuilt = (|| {
        fetch_segments(&runtime, &target, &segments, |_| staging.clone(), &mut report)?;
        let keys = unwrap_all(&session, &table, Some(shard))?;
        let backup = write_restore_segments(&manifest, [shard], |_| staging.clone(), &keys, &session, now)?;
        let read = block_on(read_shard(&staging, shard, SegmentSelection::Live, KeySource::Log, &session))?;
        let mut restored = StoreContents::default();
        restored.add_index(&read.index);
        Ok::<_, BackupError>((backup, restored))
    })();
    let (backup, restored) = match rebuilt {
        Ok(rebuilt) => rebuilt,
        Err(error) => {
            // It holds only this attempt's copies. Best effort: the store is unchanged either
            // way, and a rerun names the directory if it is still there.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    report.accounts = backup.accounts.len();
    report.messages = backup.message_count();
    report.differences = compare_contents(&backup, &restored);
    report.mailboxes_renewed = count_renewed(&backup, &restored, &mut report.differences);
    let set_aside = swap_in(data_dir, shard, &staging, now)?;
    Ok(ShardRestoreReport { restore: report, set_aside })
}

/// Puts the rebuilt directory in the shard's place and the old one aside, durably.
fn swap_in(data_dir: &Path, shard: u32, staging: &Path, now: i64) -> Result<Option<PathBuf>, BackupError> {
    let live = shard_directory(data_dir, shard);
    let failed = |what: String| BackupError::io(what);
    let set_aside = if live.exists() {
        rustix::fs::renameat_with(rustix::fs::CWD, staging, rustix::fs::CWD, &live, rustix::fs::RenameFlags::EXCHANGE)
            .map_err(|errno| {
                failed(format!("exchanging {} with {}", staging.display(), live.display()))(errno.into())
            })?;
        let aside = data_dir.join(format!("shard-{shard:03}.replaced-{now}"));
        std::fs::rename(staging, &aside).map_err(failed(format!(
            "renaming the old shard {} to {}",
            staging.display(),
            aside.display()
        )))?;
        Some(aside)
    } else {
        std::fs::rename(staging, &live).map_err(failed(format!(
            "renaming {} to {}",
            staging.display(),
            live.display()
        )))?;
        None
    };
    std::fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(failed(format!("syncing {}", data_dir.display())))?;
    Ok(set_aside)
}
