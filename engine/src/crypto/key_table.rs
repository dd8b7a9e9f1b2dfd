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

    /// The account's cipher if its key is unwrapped already (no HSM call).
    pub fn cached(&self, account_id: u64) -> Option<Arc<RecordCipher>> {
        self.entries.get(&account_id).and_then(|entry| entry.cipher.clone())
    }

    /// Every account whose key is not unwrapped yet.
    pub fn uncached(&self) -> Vec<u64> {
        self.entries.iter().filter(|(_, entry)| entry.cipher.is_none()).map(|(account_id, _)| *account_id).collect()
    }

    /// Takes a key unwrapped elsewhere (by the scrub, from a copy of this table), sparing the
    /// HSM round trip, if the account still has that wrapped key: one purged or re-wrapped
    /// since keeps what it has. Returns whether it was taken.
    pub fn adopt(&mut self, account_id: u64, wrapped: &WrappedDek, cipher: Arc<RecordCipher>) -> bool {
        match self.entries.get_mut(&account_id) {
            Some(entry) if entry.cipher.is_none() && entry.wrapped == *wrapped => {
                entry.cipher = Some(cipher);
                true
            }
            _ => false,
        }
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

#[cfg(test)]
mod tests {
    use mailvault_hsm::Dek;

    use super::*;

    fn wrapped(kek_version: u32) -> WrappedDek {
        WrappedDek::new(kek_version, vec![7; 40]).unwrap()
    }

    fn cipher() -> Arc<RecordCipher> {
        Arc::new(RecordCipher::new(&Dek::from_bytes([3; 32])))
    }

    #[test]
    fn a_key_unwrapped_elsewhere_is_adopted_only_while_the_account_keeps_that_wrapped_key() {
        let mut table = KeyTable::default();
        table.insert(1, wrapped(1));
        table.insert(2, wrapped(1));
        table.insert(3, wrapped(1));
        let mut uncached = table.uncached();
        uncached.sort_unstable();
        assert_eq!(uncached, [1, 2, 3]);

        table.replace_wrapped(2, wrapped(2)); // re-wrapped under a new KEK since the copy
        table.remove(3); // purged since
        assert!(table.adopt(1, &wrapped(1), cipher()));
        assert!(!table.adopt(2, &wrapped(1), cipher()), "a key wrapped under the old KEK");
        assert!(!table.adopt(3, &wrapped(1), cipher()), "a purged account's key");
        assert!(!table.adopt(1, &wrapped(1), cipher()), "one already cached stays");
        assert!(table.cached(1).is_some() && table.cached(2).is_none() && table.cached(3).is_none());
        assert_eq!(table.uncached(), [2]);
    }
}
