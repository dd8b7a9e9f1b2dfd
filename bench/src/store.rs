//! A throwaway benchmark store: an initialized store directory on the real disk, an open
//! engine, and accounts spread evenly over its shards.

use std::path::{Path, PathBuf};

use mailvault_engine::{Engine, EngineConfig, init_store};
use mailvault_hsm::Hsm;
use mailvault_hsm::testing::TestToken;

use crate::placement::Placement;

/// Accounts created per shard, so that concurrent load reaches every shard equally.
pub const ACCOUNTS_PER_SHARD: usize = 4;
/// Candidate account names tried before giving up on filling every shard (routing is a hash).
const ACCOUNT_CANDIDATES_MAX: usize = 1024;

/// A fresh `SoftHSM2` token with the project's keys, in the directory `SOFTHSM2_CONF` names
/// (`cargo run`, `cargo bench` set it from `.cargo/config.toml`).
pub fn hsm_token() -> anyhow::Result<TestToken> {
    if std::env::var_os("SOFTHSM2_CONF").is_none() {
        anyhow::bail!(
            "SOFTHSM2_CONF is not set: run through cargo (it sets target/softhsm/softhsm2.conf), \
             or export SOFTHSM2_CONF=target/softhsm/softhsm2.conf"
        );
    }
    let token = TestToken::try_create()?;
    token.hsm.session()?.ensure_keys()?;
    Ok(token)
}

/// An open engine over a store that [`BenchStore::close`] deletes.
#[derive(Debug)]
pub struct BenchStore {
    pub engine: Engine,
    /// The accounts load goes to: [`ACCOUNTS_PER_SHARD`] on each shard, grouped by shard.
    pub accounts: Vec<String>,
    directory: PathBuf,
}

impl BenchStore {
    /// Creates (after deleting whatever was there) a store of `shards` shards in `directory`
    /// and opens it with threads unpinned (the load generator shares the cores).
    pub fn create(directory: &Path, shards: usize, hsm: &Hsm) -> anyhow::Result<Self> {
        Self::create_placed(directory, &Placement::unpinned(shards), hsm)
    }

    /// As [`BenchStore::create`], with the shards pinned if `placement` says so (called on
    /// the load generator's thread, which keeps its own cores).
    pub fn create_placed(directory: &Path, placement: &Placement, hsm: &Hsm) -> anyhow::Result<Self> {
        remove_directory(directory)?;
        init_store(directory, placement.shards())?;
        let mut config = EngineConfig::new(directory);
        config.pin_threads = placement.pins_shards();
        let engine = placement.while_unpinned(|| Engine::open(&config, hsm))??;
        let accounts = mailvault_engine::block_on(create_accounts(&engine))?;
        Ok(Self { engine, accounts, directory: directory.to_owned() })
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Stops the engine (its shard threads finish their work) and deletes the store.
    pub fn close(self) -> anyhow::Result<()> {
        let Self { engine, directory, .. } = self;
        drop(engine);
        remove_directory(&directory)
    }
}

fn remove_directory(directory: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(directory) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
        _ => Ok(()),
    }
}

/// Creates accounts one by one, watching which shard's account count grows, until every shard
/// has [`ACCOUNTS_PER_SHARD`] (routing is internal to the engine; its stats are not).
async fn create_accounts(engine: &Engine) -> anyhow::Result<Vec<String>> {
    let shards = engine.shard_count();
    let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); shards];
    let mut counts = vec![0_u64; shards];
    for candidate in 0..ACCOUNT_CANDIDATES_MAX {
        if by_shard.iter().all(|accounts| accounts.len() >= ACCOUNTS_PER_SHARD) {
            break;
        }
        let name = format!("bench-{candidate}@example.org");
        engine.create_account(&name).await?;
        for stats in engine.stats().await? {
            let shard = stats.shard_id as usize;
            if stats.accounts > counts[shard] {
                counts[shard] = stats.accounts;
                if by_shard[shard].len() < ACCOUNTS_PER_SHARD {
                    by_shard[shard].push(name.clone());
                }
            }
        }
    }
    if by_shard.iter().any(|accounts| accounts.len() < ACCOUNTS_PER_SHARD) {
        anyhow::bail!("could not place {ACCOUNTS_PER_SHARD} accounts on each of {shards} shards");
    }
    Ok(by_shard.into_iter().flatten().collect())
}
