//! The shard's table of account data keys: each stored only wrapped by the HSM's KEK (as
//! `KeyWrapped` records in the log), unwrapped on first use and cached for the shard's life.

use std::collections::HashMap;
use std::sync::Arc;

use mailvault_hsm::{HsmError, HsmSession, WrappedDek};

use super::RecordCipher;

#[derive(Debug, Default, Clone)]
pub struct KeyTable {
    entries: HashMap<u64, KeyEntry>,
}

#[derive(Debug, Clone)]
struct KeyEntry {
    wrapped: WrappedDek,
    cipher: Option<Arc<RecordCipher>>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyTableError {
    #[error("no data key for account {account_id}")]
    Missing { account_id: u64 },
    #[error("unwrapping the data key of account {account_id}: {source}")]
    Unwrap { account_id: u64, source: HsmError },
}

impl KeyTable {
    pub fn insert(&mut self, account_id: u64, wrapped: WrappedDek) {
        self.entries.insert(account_id, KeyEntry { wrapped, cipher: None });
    }

    /// Inserts an already unwrapped key (the one just generated for a new account), sparing
    /// an HSM round trip.
    pub fn insert_unwrapped(&mut self, account_id: u64, wrapped: WrappedDek, cipher: RecordCipher) {
        self.entries.insert(account_id, KeyEntry { wrapped, cipher: Some(Arc::new(cipher)) });
    }

    /// Forgets an account's key (purge): its cached key schedule is dropped (and cleansed).
    pub fn remove(&mut self, account_id: u64) {
        self.entries.remove(&account_id);
    }

    /// Replaces the wrapped form of a key (re-wrapped under a new KEK); the key itself, and
    /// its cached cipher, stay.
    pub fn replace_wrapped(&mut self, account_id: u64, wrapped: WrappedDek) {
        if let Some(entry) = self.entries.get_mut(&account_id) {
            entry.wrapped = wrapped;
        }
    }

    /// Every account with a key, in id order.
    pub fn account_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.entries.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    pub fn contains(&self, account_id: u64) -> bool {
        self.entries.contains_key(&account_id)
    }

    pub fn wrapped(&self, account_id: u64) -> Option<&WrappedDek> {
        self.entries.get(&account_id).map(|entry| &entry.wrapped)
    }

    /// Every account's wrapped key, for checkpoints.
    pub fn wrapped_keys(&self) -> impl Iterator<Item = (u64, &WrappedDek)> {
        self.entries.iter().map(|(account_id, entry)| (*account_id, &entry.wrapped))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The account's cipher, unwrapping its key through the HSM on first use.
    pub fn cipher(&mut self, account_id: u64, hsm: &HsmSession) -> Result<Arc<RecordCipher>, KeyTableError> {
        let entry = self.entries.get_mut(&account_id).ok_or(KeyTableError::Missing { account_id })?;
        if entry.cipher.is_none() {
            let dek = hsm.unwrap_dek(&entry.wrapped).map_err(|source| KeyTableError::Unwrap { account_id, source })?;
            entry.cipher = Some(Arc::new(RecordCipher::new(&dek)));
        }
        entry.cipher.clone().ok_or(KeyTableError::Missing { account_id })
    }
}
