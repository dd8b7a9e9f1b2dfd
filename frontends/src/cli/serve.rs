//! `init` and `serve`.

use anyhow::Context as _;
use mailvault_engine::{StoreMetadata, block_on, init_store};

use super::Context;

fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Creates the store if missing (keeping an existing one's shard count) and the HSM keys.
pub(crate) fn init(context: &Context, shards: Option<usize>) -> anyhow::Result<StoreMetadata> {
    let shards = match (shards, StoreMetadata::read(&context.data_dir)) {
        (Some(shards), _) => shards,
        (None, Ok(existing)) => existing.shards,
        (None, Err(_)) => default_shards(),
    };
    let hsm = context.hsm()?;
    let status = hsm.session()?.ensure_keys().context("creating HSM keys")?;
    let metadata = init_store(&context.data_dir, shards)?;
    println!(
        "store {} ready: {} shards; HSM token `{}`: KEK v{}",
        context.data_dir.display(),
        metadata.shards,
        hsm.token_label(),
        status.current_kek.unwrap_or(0)
    );
    Ok(metadata)
}

/// Opens everything and keeps the engine up. Every acknowledged write is already durable,
/// so stopping the process at any moment loses nothing. The protocol listeners (LMTP, POP3,
/// IMAP) are not built yet; until they are, this reports and waits.
pub(crate) fn serve(context: &Context, shards: Option<usize>) -> anyhow::Result<()> {
    init(context, shards)?;
    let engine = context.open_engine()?;
    let stats = block_on(engine.stats())?;
    let accounts: u64 = stats.iter().map(|shard| shard.accounts).sum();
    let messages: u64 = stats.iter().map(|shard| shard.messages).sum();
    println!(
        "mailvault serving store {}: {} shards, {accounts} accounts, {messages} messages",
        context.data_dir.display(),
        stats.len()
    );
    println!("protocol listeners (LMTP, POP3, IMAP) are not implemented yet; the engine is open. Stop with Ctrl-C.");
    loop {
        std::thread::park();
    }
}
