//! The targets a store has been backed up to, recorded in its data directory
//! (`backup-targets.json`, no credentials) so that erasure can reach every one of them.

use std::path::Path;

use crate::error::BackupError;
use crate::target::TargetSpec;

const REGISTRY_FILE: &str = "backup-targets.json";

/// Every target recorded for the store in `data_dir`.
pub fn registered_targets(data_dir: &Path) -> Result<Vec<TargetSpec>, BackupError> {
    let path = data_dir.join(REGISTRY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| BackupError::Invalid(format!("{} is malformed: {error}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(BackupError::io(format!("reading {}", path.display()))(error)),
    }
}

/// Records `spec` (once), atomically: written beside, fsynced, renamed, directory fsynced.
pub fn register_target(data_dir: &Path, spec: &TargetSpec) -> Result<(), BackupError> {
    let mut targets = registered_targets(data_dir)?;
    if targets.contains(spec) {
        return Ok(());
    }
    targets.push(spec.clone());
    let bytes = serde_json::to_vec_pretty(&targets).map_err(|error| BackupError::Invalid(error.to_string()))?;
    let path = data_dir.join(REGISTRY_FILE);
    let temporary = data_dir.join(format!("{REGISTRY_FILE}.tmp"));
    let what = format!("writing {}", path.display());
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        std::fs::File::open(data_dir)?.sync_all()
    };
    write().map_err(BackupError::io(what))
}
