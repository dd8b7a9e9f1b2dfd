//! What every subcommand needs: the data directory, the HSM, and an open engine.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mailvault_engine::{Engine, EngineConfig, OpenError};
use mailvault_hsm::{Hsm, HsmConfig};

#[derive(Debug)]
pub(crate) struct Context {
    pub data_dir: PathBuf,
    /// `--quarantine-corrupt-shards`: see `EngineConfig::quarantine_corrupt_shards`.
    pub quarantine_corrupt_shards: bool,
}

impl Context {
    pub(crate) fn new(data_dir: PathBuf) -> Self {
        Self { data_dir, quarantine_corrupt_shards: false }
    }

    /// HSM settings from the environment; without a PIN variable, the PIN file the token
    /// script writes beside the data directory (`.mailvault/hsm-pin` in the embedded default).
    pub(crate) fn hsm(&self) -> anyhow::Result<Hsm> {
        let default_pin_file = self.data_dir.parent().unwrap_or(Path::new(".")).join("hsm-pin");
        let config = HsmConfig::from_lookup(|name| {
            std::env::var(name).ok().or_else(|| {
                let no_pin = std::env::var_os("MAILVAULT_HSM_PIN").is_none();
                (name == "MAILVAULT_HSM_PIN_FILE" && no_pin && default_pin_file.exists())
                    .then(|| default_pin_file.display().to_string())
            })
        })
        .context("HSM configuration")?;
        Hsm::open(&config).with_context(|| format!("opening HSM token `{}`", config.token_label))
    }

    /// The engine's configuration; a purge re-keys the store's registered backup targets.
    pub(crate) fn engine_config(&self, hsm: &Hsm) -> EngineConfig {
        let mut config = EngineConfig::new(&self.data_dir);
        config.quarantine_corrupt_shards = self.quarantine_corrupt_shards;
        config.purge_observer =
            Some(std::sync::Arc::new(mailvault_backup::RekeyBackupsOnPurge::new(&self.data_dir, hsm.clone())));
        config
    }

    /// Opens the engine (see [`Self::open_failed`] for its errors); a shard quarantined on the
    /// way is named on stderr.
    pub(crate) fn open_engine_with(&self, config: &EngineConfig, hsm: &Hsm) -> anyhow::Result<Engine> {
        let engine = Engine::open(config, hsm).map_err(|error| self.open_failed(error))?;
        warn_of_quarantined_shards(&engine);
        Ok(engine)
    }

    /// The error for a store that did not open; a damaged shard's says how to open the rest
    /// without it.
    pub(crate) fn open_failed(&self, error: OpenError) -> anyhow::Error {
        let opening = format!("opening store {}", self.data_dir.display());
        if error.is_damage() && !self.quarantine_corrupt_shards {
            return anyhow::Error::new(error).context(format!(
                "{opening}; to serve the other shards meanwhile, rerun with --quarantine-corrupt-shards \
                 (the damaged shard's files are left as they are)"
            ));
        }
        anyhow::Error::new(error).context(opening)
    }
}

/// Names on stderr each shard the open quarantined (`--quarantine-corrupt-shards`).
pub(crate) fn warn_of_quarantined_shards(engine: &Engine) {
    for shard in engine.quarantined_shards() {
        eprintln!(
            "warning: shard {} is quarantined, its accounts unavailable until it is repaired: {}",
            shard.shard_id, shard.reason
        );
    }
}
