//! What a prune or purge still has to rewrite, kept across restarts in the shard's
//! `compaction-forced` file (its text: `format::ForcedCompaction`). The set lives in the
//! shard (`compaction_forced`, and the spares' withholding); this writes it down when a prune
//! or purge adds to it, before the commit that did is answered, brings it up to date at the
//! end of a compaction run and at shutdown, and reads it back at open.

use crate::format::ForcedCompaction;
use crate::io::Storage;

use super::Shard;
use super::small_file::{read_small_file, replace_small_file};

const FORCED_COMPACTION_FILE: &str = "compaction-forced";
const FORCED_COMPACTION_TEMPORARY_FILE: &str = "compaction-forced.tmp";

/// What the file says is still to do, of the segments that `exists`; nothing if there is no
/// file, or (with a warning) if it cannot be read.
pub(super) async fn load_forced_compaction<S: Storage>(
    storage: &S,
    shard_id: u32,
    exists: impl Fn(u64) -> bool,
) -> ForcedCompaction {
    let loaded = match read_small_file(storage, FORCED_COMPACTION_FILE).await {
        Ok(None) => return ForcedCompaction::default(),
        Ok(Some(bytes)) => {
            ForcedCompaction::decode(&bytes).map_err(|reason| format!("{FORCED_COMPACTION_FILE}: {reason}"))
        }
        Err(reason) => Err(reason),
    };
    match loaded {
        Ok(mut forced) => {
            // Segments rewritten before the file was brought up to date are gone.
            forced.segments.retain(|segment| exists(*segment));
            forced
        }
        Err(reason) => {
            tracing::warn!(shard = shard_id, %reason, "a prune's rewrite cannot be resumed; compaction will take its segments by their live share");
            ForcedCompaction::default()
        }
    }
}

impl<S: Storage> Shard<S> {
    /// Writes down what is forced if it changed since it was last written (removes the file
    /// once nothing is): at the end of a compaction run and at shutdown. A failure (a full
    /// disk) is logged and not retried until the set changes again: the rewrite goes on, but a
    /// restart before it ends would leave the rest to compaction by live share.
    pub(super) async fn save_forced_compaction(&mut self) {
        let saved = &self.forced_compaction_saved;
        if self.compaction_forced == saved.segments && self.recycled.is_withheld() == saved.spares_withheld {
            return;
        }
        self.write_forced_compaction().await;
    }

    /// [`Self::save_forced_compaction`] before a batch's commit, so that a prune is answered
    /// only once a restart would resume its rewrite: only when a prune or purge added to what
    /// is forced. What a rewrite finished is written at the run's end (or at
    /// shutdown): meanwhile the file names more than is left, which a restart only checks
    /// again (stale ids name removed segments; withheld spares already removed are none).
    /// Writing each shrink before the next batch put a file write and two syncs in front of
    /// client commits once per rewritten segment.
    pub(super) async fn save_forced_compaction_if_grown(&mut self) {
        let saved = &self.forced_compaction_saved;
        let grown = !self.compaction_forced.is_subset(&saved.segments)
            || (self.recycled.is_withheld() && !saved.spares_withheld);
        if grown {
            self.write_forced_compaction().await;
        }
    }

    async fn write_forced_compaction(&mut self) {
        let forced =
            ForcedCompaction { segments: self.compaction_forced.clone(), spares_withheld: self.recycled.is_withheld() };
        let written = if forced.is_empty() {
            remove_forced_compaction_file(&self.storage).await
        } else {
            let text = forced.encode();
            replace_small_file(&self.storage, FORCED_COMPACTION_FILE, FORCED_COMPACTION_TEMPORARY_FILE, &text, true)
                .await
        };
        if let Err(reason) = written {
            tracing::warn!(shard = self.config.shard_id, %reason, "cannot write down the segments a prune still has to rewrite; a restart before the rewrite ends would not resume it");
        }
        self.forced_compaction_saved = forced;
    }
}

async fn remove_forced_compaction_file<S: Storage>(storage: &S) -> Result<(), String> {
    let io = |error: std::io::Error| format!("removing {FORCED_COMPACTION_FILE}: {error}");
    match storage.remove(FORCED_COMPACTION_FILE).await {
        Ok(()) => storage.sync_directory().await.map_err(io),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io(error)),
    }
}
