//! `backup restore --shard N`: the repair of one damaged shard (a quarantined one,
//! docs/format.md §8.1.1) from the newest backup, inside the store, while the other shards keep
//! their data. The store must not be open (its lock is held throughout).
//!
//! 1. The shard's segments are fetched into `shard-NNN.restoring/` beside it, and its restore
//!    segment written there (as a whole-store restore does, `restore.rs`: re-wrapped keys, new
//!    UIDVALIDITYs, record ids past the lost ones).
//! 2. The rebuilt shard is read back and compared with the backup.
//! 3. The damaged shard's directory is renamed to `shard-NNN.replaced-<unix ms>` (kept for
//!    inspection: what it held after the backup is there, and only there), and the rebuilt one
//!    takes its name. Until this step, the store is as it was.

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
    remove_if_present(&staging)?; // what an earlier attempt left
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
            // Best effort: the store is unchanged either way, and a rerun clears it too.
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

/// Renames the shard's directory aside and the rebuilt one into its place, durably.
fn swap_in(data_dir: &Path, shard: u32, staging: &Path, now: i64) -> Result<Option<PathBuf>, BackupError> {
    let live = shard_directory(data_dir, shard);
    let aside = data_dir.join(format!("shard-{shard:03}.replaced-{now}"));
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(BackupError::io(format!("renaming {} to {}", from.display(), to.display())))
    };
    let set_aside = if live.exists() {
        rename(&live, &aside)?;
        Some(aside)
    } else {
        None
    };
    if let Err(error) = rename(staging, &live) {
        if let Some(aside) = &set_aside {
            let _ = std::fs::rename(aside, &live); // put the old shard back; the error says what failed
        }
        return Err(error);
    }
    std::fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(BackupError::io(format!("syncing {}", data_dir.display())))?;
    Ok(set_aside)
}

fn remove_if_present(path: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(BackupError::io(format!("removing {}", path.display()))(error))
        }
        _ => Ok(()),
    }
}
