//! The erasure hook: after a purge, make the purged account's key unreadable in every backup.
//!
//! Rotate the backup key; rewrite the key table of every registered target under the new
//! version from the live key table (which no longer holds the purged account), with a new
//! signed manifest naming the same segments; only when every target has its new table,
//! destroy the old backup key versions. A target that cannot be reached (or whose manifest is
//! damaged) is an error, and the old versions are kept: a later rekey retries.

use std::path::Path;

use mailvault_hsm::{Hsm, HsmSession, WrappedDek};

use crate::error::BackupError;
use crate::manifest::{MANIFEST_FORMAT, Manifest, ManifestFile};
use crate::objects;
use crate::registry::registered_targets;
use crate::run::{KEY_TABLE_DIRECTORY, latest_manifest, now_unix_ms, prune, wrap_for_backup};
use crate::target::TargetSpec;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeyReport {
    pub new_backup_key_version: u32,
    pub destroyed_versions: Vec<u32>,
    pub targets_rewritten: Vec<String>,
}

/// Re-keys every target registered in `data_dir` from `live_keys` (account id, DEK wrapped by
/// the live KEK), then destroys the old backup key versions.
pub fn rekey_targets(data_dir: &Path, hsm: &Hsm, live_keys: &[(u64, WrappedDek)]) -> Result<RekeyReport, BackupError> {
    let targets = registered_targets(data_dir)?;
    rekey(&targets, hsm, live_keys)
}

/// [`rekey_targets`] for an explicit list of targets.
pub fn rekey(targets: &[TargetSpec], hsm: &Hsm, live_keys: &[(u64, WrappedDek)]) -> Result<RekeyReport, BackupError> {
    let session = hsm.session()?;
    let old_versions = session.backup_key_versions()?;
    let new_version = session.rotate_backup_key()?;
    let table = wrap_for_backup(&session, live_keys, new_version)?;
    let mut report = RekeyReport { new_backup_key_version: new_version, ..RekeyReport::default() };
    let runtime = objects::runtime()?;
    for spec in targets {
        runtime.block_on(rewrite_key_table(spec, &session, &table))?;
        report.targets_rewritten.push(spec.location.clone());
    }
    for version in old_versions {
        session.destroy_backup_key(version)?;
        report.destroyed_versions.push(version);
    }
    Ok(report)
}

async fn rewrite_key_table(
    spec: &TargetSpec,
    session: &HsmSession,
    table: &crate::key_table::KeyTable,
) -> Result<(), BackupError> {
    let target = spec.open(false)?;
    let Some(previous) = latest_manifest(&target, session).await? else {
        return Ok(()); // registered but never written: nothing to re-key
    };
    let bytes = table.encode();
    let digest = hex::encode(blake3::hash(&bytes).as_bytes());
    let key_table =
        ManifestFile { name: format!("{KEY_TABLE_DIRECTORY}/{digest}.keys"), size: bytes.len() as u64, blake3: digest };
    objects::put_bytes(&target, &key_table.name, bytes).await?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT.to_owned(),
        created_unix_ms: now_unix_ms(Some(&previous)),
        store: previous.store.clone(),
        key_table,
        segments: previous.segments.clone(),
    };
    let name = crate::manifest::manifest_name(manifest.created_unix_ms);
    objects::put_bytes(&target, &name, manifest.sign(session)?).await?;
    // The old key table (and manifest) go: the old table is also unreadable once its key is
    // destroyed, but there is no reason to keep the bytes.
    prune(&target, &manifest).await?;
    Ok(())
}
