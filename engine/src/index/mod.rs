//! The in-memory index: accounts → mailboxes → messages, derived from the log.
//!
//! `Index::apply` is the only way state changes, both when a shard replays its segments and
//! when it commits new records, so the index after a restart is by construction the index
//! before it. Validation of requests happens before records are made (in `shard::plan`), so
//! `apply` failing means the log itself is inconsistent.

mod account;
mod apply;
mod snapshot;
mod usage;

pub use account::{ACCESS_LOG_ENTRIES_MAX, Account, AppPassword, BlobLocation, DeletedMessage, Mailbox, MessageEntry};
pub use apply::{ApplyError, RecordLocation};
pub use usage::BlobUsage;

use std::collections::HashMap;

/// Everything a shard knows about its accounts.
#[derive(Debug, Default)]
pub struct Index {
    accounts: HashMap<u64, Account>,
    account_ids: HashMap<String, u64>,
    blobs: HashMap<u64, BlobLocation>,
}

impl Index {
    pub fn account_id(&self, name: &str) -> Option<u64> {
        self.account_ids.get(name).copied()
    }

    pub fn account(&self, account_id: u64) -> Option<&Account> {
        self.accounts.get(&account_id)
    }

    pub fn account_by_name(&self, name: &str) -> Option<&Account> {
        self.account_id(name).and_then(|id| self.accounts.get(&id))
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn blob(&self, record_id: u64) -> Option<&BlobLocation> {
        self.blobs.get(&record_id)
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&u64, &BlobLocation)> {
        self.blobs.iter()
    }
}
