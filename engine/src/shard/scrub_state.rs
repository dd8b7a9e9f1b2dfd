//! Reading and replacing the shard's `scrub-state` file (its text: `format::ScrubState`).

use crate::format::{BLOCK_BYTES, ScrubState, align_up};
use crate::io::{BlockBuffer, Storage, StorageFile};

const SCRUB_STATE_FILE: &str = "scrub-state";
const SCRUB_STATE_TEMPORARY_FILE: &str = "scrub-state.tmp";
/// A state file is a few lines; anything longer is not one.
const STATE_BYTES_MAX: u64 = 1 << 20;

/// The shard's scrub state: `Ok(None)` if it has none, `Err` with the reason if it is unusable.
pub(crate) async fn load_scrub_state<S: Storage>(storage: &S) -> Result<Option<ScrubState>, String> {
    let io = |error: std::io::Error| format!("reading {SCRUB_STATE_FILE}: {error}");
    if !storage.list().await.map_err(io)?.iter().any(|name| name == SCRUB_STATE_FILE) {
        return Ok(None);
    }
    let file = storage.open(SCRUB_STATE_FILE, false).await.map_err(io)?;
    let size = file.size().await.map_err(io)?;
    if size > STATE_BYTES_MAX {
        return Err(format!("{SCRUB_STATE_FILE} is {size} bytes long"));
    }
    let bytes = file.read_exact(0, usize::try_from(size).map_err(|_| "too long")?).await.map_err(io)?;
    ScrubState::decode(&bytes).map(Some).map_err(|reason| format!("{SCRUB_STATE_FILE}: {reason}"))
}

/// Replaces the shard's scrub state: a temporary file, synced, renamed over the old one. The
/// directory is not synced: losing the rename to a crash only repeats a segment's check.
pub(crate) async fn store_scrub_state<S: Storage>(storage: &S, state: &ScrubState) -> Result<(), String> {
    let io = |error: std::io::Error| format!("writing {SCRUB_STATE_FILE}: {error}");
    if storage.list().await.map_err(io)?.iter().any(|name| name == SCRUB_STATE_TEMPORARY_FILE) {
        storage.remove(SCRUB_STATE_TEMPORARY_FILE).await.map_err(io)?;
    }
    let text = state.encode();
    let mut buffer = BlockBuffer::with_capacity(align_up(text.len(), BLOCK_BYTES));
    buffer.extend_from_slice(text.as_bytes());
    buffer.pad_to_block();
    let file = storage.create(SCRUB_STATE_TEMPORARY_FILE).await.map_err(io)?;
    let (written, _) = file.write_blocks(buffer, 0).await;
    written.map_err(io)?;
    file.sync_data().await.map_err(io)?;
    storage.rename(SCRUB_STATE_TEMPORARY_FILE, SCRUB_STATE_FILE).await.map_err(io)
}
