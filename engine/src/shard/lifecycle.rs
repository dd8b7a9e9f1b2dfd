//! An account's life in its shard: closing (unreachable at once, purge scheduled), reopening,
//! purging (the account leaves the index and the key table; its records become dead), and
//! re-wrapping every data key under a new KEK, the shard's part of crypto-shredding (the
//! engine coordinates the shards and the HSM, see `engine::purge`).

use crate::api::AccountState;
use crate::error::EngineError;
use crate::format::Record;
use crate::io::Storage;

use super::emit::Place;
use super::request::Outcome;
use super::{BATCH_REQUESTS_MAX, Batch, Shard};

impl<S: Storage> Shard<S> {
    fn account_id_of(&self, name: &str) -> Result<u64, EngineError> {
        self.index.account_id(name).ok_or_else(|| EngineError::NoSuchAccount(name.to_owned()))
    }

    pub(super) fn close_account(
        &mut self,
        name: &str,
        purge_delay_ms: i64,
        now: i64,
        batch: &mut Batch,
    ) -> Result<Outcome, EngineError> {
        let account_id = self.account_id_of(name)?;
        if let Some(closure) = self.index.account(account_id).and_then(|account| account.closure) {
            let purge_after_unix_ms = closure.purge_after_unix_ms;
            return Err(EngineError::AccountClosed { account: name.to_owned(), purge_after_unix_ms });
        }
        let cipher = self.cipher_of(account_id)?;
        let purge_after_unix_ms = now.saturating_add(purge_delay_ms);
        let record = Record::AccountClosed { closed_unix_ms: now, purge_after_unix_ms };
        self.emit(batch, Place { account_id, mailbox_id: 0, uid: 0 }, record, &cipher);
        Ok(Outcome::At(purge_after_unix_ms))
    }

    pub(super) fn reopen_account(&mut self, name: &str, now: i64, batch: &mut Batch) -> Result<Outcome, EngineError> {
        let account_id = self.account_id_of(name)?;
        if self.index.account(account_id).and_then(|account| account.closure).is_none() {
            return Err(EngineError::AccountNotClosed(name.to_owned()));
        }
        let cipher = self.cipher_of(account_id)?;
        let record = Record::AccountReopened { at_unix_ms: now };
        self.emit(batch, Place { account_id, mailbox_id: 0, uid: 0 }, record, &cipher);
        Ok(Outcome::Done)
    }

    /// Purges a closed account: one clear `AccountPurged` record, then the account is gone from
    /// the index and the key table (its cached key dropped), and every segment that held one of
    /// its bodies is marked for rewriting, so compaction removes their ciphertext too.
    pub(super) fn purge_account(&mut self, name: &str, now: i64, batch: &mut Batch) -> Result<Outcome, EngineError> {
        let account_id = self.account_id_of(name)?;
        if self.index.account(account_id).and_then(|account| account.closure).is_none() {
            return Err(EngineError::AccountNotClosed(name.to_owned()));
        }
        let place = Place { account_id, mailbox_id: 0, uid: 0 };
        self.emit_clear(batch, place, Record::AccountPurged { at_unix_ms: now });
        let segments = self.index.purge_account(account_id);
        self.keys.remove(account_id);
        self.compaction_forced.extend(segments);
        self.force_out_older_bytes();
        self.compaction_wanted = true;
        self.compaction_rejected.clear();
        Ok(Outcome::Done)
    }

    pub(super) fn account_states(&self) -> Vec<AccountState> {
        self.index
            .accounts()
            .map(|account| AccountState {
                name: account.name.clone(),
                closed_unix_ms: account.closure.map(|closure| closure.closed_unix_ms),
                purge_after_unix_ms: account.closure.map(|closure| closure.purge_after_unix_ms),
            })
            .collect()
    }

    pub(super) fn due_purges(&self) -> Vec<String> {
        let now = self.config.clock.now_unix_ms();
        self.index
            .accounts()
            .filter(|account| account.closure.is_some_and(|closure| closure.purge_after_unix_ms <= now))
            .map(|account| account.name.clone())
            .collect()
    }

    /// Re-wraps every data key under the HSM's current KEK and commits a `KeyWrapped` record
    /// for each key that changed, then writes a checkpoint (its own key, and its key table,
    /// under the current KEK). Returns only once all of it is durable: after this, no state of
    /// this shard needs an older KEK. Returns the number of keys re-wrapped.
    pub(super) async fn rewrap_keys(&mut self) -> Result<u64, EngineError> {
        if self.failure.is_some() {
            return Err(self.failed_error());
        }
        let account_ids = self.keys.account_ids();
        let mut rewrapped = 0;
        for chunk in account_ids.chunks(BATCH_REQUESTS_MAX) {
            let mut batch = Batch::default();
            for &account_id in chunk {
                let Some(current) = self.keys.wrapped(account_id) else { continue };
                let wrapped = self.hsm.rewrap_dek(current)?;
                if &wrapped == current {
                    continue; // already under the current KEK (created since the rotation)
                }
                let wrapped_key = wrapped.to_bytes();
                self.keys.replace_wrapped(account_id, wrapped);
                self.emit_clear(
                    &mut batch,
                    Place { account_id, mailbox_id: 0, uid: 0 },
                    Record::KeyWrapped { wrapped_key },
                );
                rewrapped += 1;
            }
            self.commit(batch).await;
            if self.failure.is_some() {
                return Err(self.failed_error());
            }
        }
        self.checkpoint_durably().await?;
        Ok(rewrapped)
    }

    /// A checkpoint that must succeed (purge needs it before the old KEK is destroyed).
    async fn checkpoint_durably(&mut self) -> Result<(), EngineError> {
        // One written in the background still holds keys wrapped under the old KEK: it lands
        // first (`write_checkpoint_now` waits for it), and this one replaces it.
        self.write_checkpoint_now().await.map_err(|reason| EngineError::Io(std::io::Error::other(reason)))
    }

    fn cipher_of(&mut self, account_id: u64) -> Result<std::sync::Arc<crate::crypto::RecordCipher>, EngineError> {
        self.keys.cipher(account_id, &self.hsm).map_err(|error| EngineError::Corrupt(error.to_string()))
    }
}
