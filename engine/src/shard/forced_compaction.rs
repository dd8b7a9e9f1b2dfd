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

/// What the file says, and whether the last write of it failed.
#[derive(Debug)]
pub(super) struct ForcedCompactionFile {
    saved: ForcedCompaction,
    /// Warned once per run of failures, not at every commit that tries again.
    write_failing: bool,
}

impl ForcedCompactionFile {
    /// The file as it was read at open.
    pub(super) fn written(saved: ForcedCompaction) -> Self {
        Self { saved, write_failing: false }
    }
}

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
    /// disk) is logged and tried again before the next batch's commit and at the next run's
    /// end: meanwhile the rewrite goes on, but a restart would leave what the file lacks to
    /// compaction by live share ([`Self::forced_compaction_recorded`] says when).
    pub(super) async fn save_forced_compaction(&mut self) {
        let saved = &self.forced_compaction_file.saved;
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
        if !self.forced_compaction_recorded() {
            self.write_forced_compaction().await;
        }
    }

    /// Whether the file names everything still forced (more, after a rewrite it has not
    /// caught up with, is fine: see [`Self::save_forced_compaction_if_grown`]); false after a
    /// prune or purge whose write failed, until a later write succeeds.
    pub(super) fn forced_compaction_recorded(&self) -> bool {
        let saved = &self.forced_compaction_file.saved;
        self.compaction_forced.is_subset(&saved.segments) && (!self.recycled.is_withheld() || saved.spares_withheld)
    }

    /// What the file says changes only once it is written: after a failure, the next
    /// [`Self::save_forced_compaction_if_grown`] tries again. Marking it saved regardless left
    /// a prune made on a full disk unrecorded for good, space freed or not.
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
        let shard = self.config.shard_id;
        let failing_before = std::mem::replace(&mut self.forced_compaction_file.write_failing, written.is_err());
        match written {
            Ok(()) => {
                self.forced_compaction_file.saved = forced;
                if failing_before {
                    tracing::info!(shard, "the segments a prune still has to rewrite are written down now");
                }
            }
            Err(reason) if !failing_before => {
                tracing::warn!(shard, %reason, "cannot write down the segments a prune still has to rewrite (tried again at each commit); a restart before that succeeds would not resume the rewrite");
            }
            Err(reason) => tracing::debug!(shard, %reason, "still cannot write down what a prune has to rewrite"),
        }
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
