//! Reading and replacing the shard's `scrub-state` file (its text: `format::ScrubState`).

use crate::format::ScrubState;
use crate::io::Storage;

use super::small_file::{read_small_file, replace_small_file};

const SCRUB_STATE_FILE: &str = "scrub-state";
const SCRUB_STATE_TEMPORARY_FILE: &str = "scrub-state.tmp";

/// The shard's scrub state: `Ok(None)` if it has none, `Err` with the reason if it is unusable.
pub(crate) async fn load_scrub_state<S: Storage>(storage: &S) -> Result<Option<ScrubState>, String> {
    match read_small_file(storage, SCRUB_STATE_FILE).await? {
        None => Ok(None),
        Some(bytes) => ScrubState::decode(&bytes).map(Some).map_err(|reason| format!("{SCRUB_STATE_FILE}: {reason}")),
    }
}

/// Replaces the shard's scrub state. The directory is not synced: losing the rename to a crash
/// only repeats a segment's check.
pub(crate) async fn store_scrub_state<S: Storage>(storage: &S, state: &ScrubState) -> Result<(), String> {
    replace_small_file(storage, SCRUB_STATE_FILE, SCRUB_STATE_TEMPORARY_FILE, &state.encode(), false).await
}
