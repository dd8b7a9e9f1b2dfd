//! "Prune this account now": its deleted mail stops being restorable at once, whatever the
//! retention window, and the segments holding those bodies are rewritten so the bytes are gone.

use crate::error::EngineError;
use crate::io::Storage;

use super::request::Outcome;
use super::{Batch, Shard};

impl<S: Storage> Shard<S> {
    pub(super) fn prune_deleted(&mut self, account: &str, batch: &mut Batch) -> Result<Outcome, EngineError> {
        let (found, cipher) = self.account(account)?;
        let account_id = found.id;
        let pruned: Vec<u64> = found.deleted.iter().map(|deleted| deleted.entry.message.blob_record_id).collect();
        let encoded = self
            .index
            .encode_account_snapshot(account_id, |_| false)
            .ok_or_else(|| EngineError::NoSuchAccount(account.to_owned()))?;
        self.emit_snapshot(batch, account_id, encoded, &cipher);
        // Bodies nothing else needs now: rewrite their segments (the active one is sealed first).
        let usage = std::rc::Rc::new(self.blob_usage());
        for blob in pruned.iter().filter(|blob| !usage.is_needed(**blob)) {
            if let Some(location) = self.index.blob(*blob) {
                self.compaction_forced.insert(location.segment_id);
            }
        }
        // A victim being copied or read ahead was chosen under the usage before this prune, which
        // still needs the pruned bodies (retained): copied under it, they would move to the
        // active segment instead of leaving the store.
        self.use_for_compaction_in_flight(&usage);
        self.force_out_older_bytes();
        self.compaction_wanted = true;
        self.compaction_rejected.clear();
        Ok(Outcome::Count(pruned.len() as u32))
    }
}
