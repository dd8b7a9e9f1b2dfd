//! Erasure reaching the backups: after a purge has crypto-shredded an account in the live
//! store, every registered target's key table is rewritten under a new backup key without the
//! purged account, and the old backup key is destroyed (see [`crate::rekey_targets`]).

use std::path::PathBuf;

use mailvault_engine::{PurgeObserver, PurgeReport};
use mailvault_hsm::Hsm;

use crate::{live_key_table, registered_targets, rekey_targets};

/// The engine's [`PurgeObserver`] for a store whose backups this process knows of (the
/// targets `backup run` registered in the data directory).
#[derive(Debug)]
pub struct RekeyBackupsOnPurge {
    data_dir: PathBuf,
    hsm: Hsm,
}

impl RekeyBackupsOnPurge {
    pub fn new(data_dir: impl Into<PathBuf>, hsm: Hsm) -> Self {
        Self { data_dir: data_dir.into(), hsm }
    }

    fn rekey(&self) -> Result<(), String> {
        let targets = registered_targets(&self.data_dir).map_err(|error| error.to_string())?;
        if targets.is_empty() {
            return Ok(()); // no backup holds a key table
        }
        // The live key table after the purge: read from the log (the purged account is gone).
        let keys = live_key_table(&self.data_dir, &self.hsm).map_err(|error| error.to_string())?;
        let report = rekey_targets(&self.data_dir, &self.hsm, &keys).map_err(|error| error.to_string())?;
        tracing::info!(
            backup_key_version = report.new_backup_key_version,
            destroyed = ?report.destroyed_versions,
            targets = ?report.targets_rewritten,
            "backup key tables rewritten after a purge"
        );
        Ok(())
    }
}

impl PurgeObserver for RekeyBackupsOnPurge {
    fn after_shredding(&self, _report: &PurgeReport) -> Result<(), String> {
        // Its own thread: the backup code runs runtimes of its own (compio for the replay,
        // tokio for object stores), which must not nest inside the purging caller's runtime.
        std::thread::scope(|scope| {
            scope.spawn(|| self.rekey()).join().unwrap_or_else(|_| Err("re-keying the backups panicked".to_owned()))
        })
    }
}
