//! The in-memory index: accounts → mailboxes → messages, derived from the log.
//!
//! `Index::apply` is the only way state changes, both when a shard replays its segments and
//! when it commits new records, so the index after a restart is by construction the index
//! before it. Validation of requests happens before records are made (in `shard::plan`), so
//! `apply` failing means the log itself is inconsistent.

mod account;
mod apply;
mod blob_table;
#[cfg(test)]
mod body_location_tests;
mod record_id_set;
mod snapshot;
mod snapshot_pieces;
#[cfg(test)]
mod test_records;
mod uid_map;
mod usage;
#[cfg(test)]
mod usage_tests;

pub use account::{
    ACCESS_LOG_ENTRIES_MAX, Account, AppPassword, BlobLocation, Closure, DeletedMessage, Mailbox, MessageEntry,
};
pub use apply::{ApplyError, RecordLocation};
pub use uid_map::UidMap;
pub use usage::{BlobUsage, SegmentUsage};

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use blob_table::BlobTable;

/// Everything a shard knows about its accounts.
#[derive(Debug, Default)]
pub struct Index {
    /// By engine-assigned id (never chosen by a client: no flooding risk), with a fixed hasher,
    /// so that the same history iterates, and so checkpoints encode, in the same order.
    accounts: FxHashMap<u64, Account>,
    account_ids: HashMap<String, u64>,
    blobs: BlobTable,
    /// Ids of purged accounts: never handed out again, and their records are skipped.
    purged: std::collections::BTreeSet<u64>,
    /// Counts the changes after which a body may no longer be needed (see `releases`).
    releases: u64,
    /// Leading pieces of a snapshot over one record, until its `AccountSnapshot` joins them.
    snapshot_pieces: snapshot_pieces::SnapshotPieces,
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

    /// Every account's mailboxes get a new UIDVALIDITY (`Account::renew_uid_validities`).
    pub fn renew_uid_validities(&mut self, now_unix_ms: i64) {
        for account in self.accounts.values_mut() {
            account.renew_uid_validities(now_unix_ms);
        }
    }

    pub fn blob(&self, record_id: u64) -> Option<&BlobLocation> {
        self.blobs.get(record_id)
    }

    /// Where `entry`'s body is: the location the entry remembers, while no body has moved or
    /// been forgotten since it was looked up; otherwise the blob table's, which the entry then
    /// remembers. `None` if the table has no body for it.
    pub fn body_location(&self, entry: &MessageEntry) -> Option<BlobLocation> {
        let changes = self.blobs.changes();
        if let Some(location) = entry.body_hint(changes) {
            return Some(location);
        }
        let location = *self.blobs.get(entry.message.blob_record_id)?;
        entry.remember_body(location, changes);
        Some(location)
    }

    /// The bytes of the bodies located in a segment, needed or not (kept in step, not walked).
    pub fn body_bytes_in(&self, segment_id: u64) -> u64 {
        self.blobs.bytes_in(segment_id)
    }

    /// Grows at every change after which a body may be needed by no one: an expunge, a deleted
    /// mailbox, an account snapshot (a prune drops deleted mail), a purge. While it stands still,
    /// every body placed since is needed (compaction's victim search relies on it).
    pub fn releases(&self) -> u64 {
        self.releases
    }

    /// How many message bodies the index locates (each one's message is in a checkpoint too).
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&u64, &BlobLocation)> {
        self.blobs.iter()
    }

    pub fn is_purged(&self, account_id: u64) -> bool {
        self.purged.contains(&account_id)
    }

    pub fn purged_accounts(&self) -> impl Iterator<Item = u64> + '_ {
        self.purged.iter().copied()
    }

    /// Removes a purged account: its state, its name, and the places of its bodies (which no
    /// one else references: copies stay inside one account). Returns the segments that held
    /// those bodies, so compaction can rewrite them. Idempotent.
    pub fn purge_account(&mut self, account_id: u64) -> std::collections::BTreeSet<u64> {
        self.purged.insert(account_id);
        self.releases += 1;
        self.snapshot_pieces.forget(account_id);
        let mut segments = std::collections::BTreeSet::new();
        let Some(account) = self.accounts.remove(&account_id) else { return segments };
        if self.account_ids.get(&account.name) == Some(&account_id) {
            self.account_ids.remove(&account.name);
        }
        let in_mailboxes = account.mailboxes.values().flat_map(|mailbox| mailbox.messages.values());
        let deleted = account.deleted.iter().map(|deleted| &deleted.entry);
        for entry in in_mailboxes.chain(deleted) {
            if let Some(location) = self.blobs.remove(entry.message.blob_record_id) {
                segments.insert(location.segment_id);
            }
        }
        segments
    }
}
