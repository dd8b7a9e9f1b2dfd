//! Reading and replacing a shard's small state files (`scrub-state`, `compaction-forced`):
//! each a few lines of text padded to a block, written whole under a temporary name, synced,
//! and renamed over the old one.

use crate::format::{BLOCK_BYTES, align_up};
use crate::io::{BlockBuffer, Storage, StorageFile};

/// A state file is a few lines; anything longer is not one.
const STATE_BYTES_MAX: u64 = 1 << 20;

/// The file's bytes: `Ok(None)` if it does not exist, `Err` with the reason if it cannot be read.
pub(super) async fn read_small_file<S: Storage>(storage: &S, name: &str) -> Result<Option<Vec<u8>>, String> {
    let io = |error: std::io::Error| format!("reading {name}: {error}");
    if !storage.list().await.map_err(io)?.iter().any(|listed| listed == name) {
        return Ok(None);
    }
    let file = storage.open(name, false).await.map_err(io)?;
    let size = file.size().await.map_err(io)?;
    if size > STATE_BYTES_MAX {
        return Err(format!("{name} is {size} bytes long"));
    }
    let bytes = file.read_exact(0, usize::try_from(size).map_err(|_| "too long")?).await.map_err(io)?;
    Ok(Some(bytes))
}

/// Replaces `name` with `text`: written to `temporary`, synced, renamed over it; with
/// `durable_rename`, the directory is synced too, so that a crash cannot bring the old file back.
pub(super) async fn replace_small_file<S: Storage>(
    storage: &S,
    name: &str,
    temporary: &str,
    text: &str,
    durable_rename: bool,
) -> Result<(), String> {
    let io = |error: std::io::Error| format!("writing {name}: {error}");
    if storage.list().await.map_err(io)?.iter().any(|listed| listed == temporary) {
        storage.remove(temporary).await.map_err(io)?;
    }
    let mut buffer = BlockBuffer::with_capacity(align_up(text.len(), BLOCK_BYTES));
    buffer.extend_from_slice(text.as_bytes());
    buffer.pad_to_block();
    let file = storage.create(temporary).await.map_err(io)?;
    let (written, _) = file.write_blocks(buffer, 0).await;
    written.map_err(io)?;
    file.sync_data().await.map_err(io)?;
    storage.rename(temporary, name).await.map_err(io)?;
    if durable_rename {
        storage.sync_directory().await.map_err(io)?;
    }
    Ok(())
}
