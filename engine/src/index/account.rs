//! What the index keeps per account, mailbox and message.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::format::{AccessEvent, Flags, MessageReference};

use super::UidMap;

#[derive(Debug)]
pub struct Account {
    pub id: u64,
    pub name: String,
    pub created_unix_ms: i64,
    pub mailboxes: BTreeMap<u32, Mailbox>,
    pub mailbox_ids: HashMap<String, u32>,
    /// Mailbox ids are never reused, so a restored message never lands in a stranger's mailbox.
    pub next_mailbox_id: u32,
    /// The highest UIDVALIDITY handed out, so a recreated mailbox always gets a new one.
    pub last_uid_validity: u32,
    /// The record id of the account's latest snapshot (0: none): every earlier record of the
    /// account is superseded, dead for compaction.
    pub snapshot_record_id: u64,
    /// Expunged messages, restorable until their retention window ends.
    pub deleted: Vec<DeletedMessage>,
    /// The login password's argon2id hash, if one was set.
    pub password_hash: Option<String>,
    pub app_passwords: Vec<AppPassword>,
    /// The newest login attempts, oldest first. Older ones stay in the log only until a
    /// snapshot of the account (compaction, prune) supersedes their records.
    pub access_log: VecDeque<AccessEvent>,
    /// Set while the account is closed: unreachable, and purged once its time comes.
    pub closure: Option<Closure>,
}

/// A closed account's schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closure {
    pub closed_unix_ms: i64,
    /// From this instant on the purge may run (the lifecycle timer runs it).
    pub purge_after_unix_ms: i64,
}

/// A per-device password, revocable all at once (remote logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub label: String,
    pub password_hash: String,
}

/// Access-log entries kept per account (in memory and in snapshots).
pub const ACCESS_LOG_ENTRIES_MAX: usize = 1000;

impl Account {
    pub fn mailbox_id(&self, name: &str) -> Option<u32> {
        self.mailbox_ids.get(name).copied()
    }

    pub fn mailbox(&self, name: &str) -> Option<&Mailbox> {
        self.mailbox_id(name).and_then(|id| self.mailboxes.get(&id))
    }

    /// A UIDVALIDITY never handed out before in this account (RFC 3501 §2.3.1.1): the time in
    /// seconds, or one more than the last if the clock has not moved past it.
    pub fn next_uid_validity(&self, now_unix_ms: i64) -> u32 {
        let seconds = u32::try_from(now_unix_ms / 1000).unwrap_or(u32::MAX);
        seconds.max(self.last_uid_validity.saturating_add(1))
    }

    /// Gives every mailbox one new UIDVALIDITY (`next_uid_validity`). A restore does this:
    /// the lost store may have handed out uids after the backup that the restored one will
    /// hand out again, to other messages, and a client must not take them for the ones it saw.
    pub fn renew_uid_validities(&mut self, now_unix_ms: i64) {
        let renewed = self.next_uid_validity(now_unix_ms);
        for mailbox in self.mailboxes.values_mut() {
            mailbox.uid_validity = renewed;
        }
        self.last_uid_validity = renewed;
    }
}

#[derive(Debug)]
pub struct Mailbox {
    pub id: u32,
    pub name: String,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub messages: UidMap<MessageEntry>,
}

#[derive(Debug, Clone)]
pub struct MessageEntry {
    pub message: MessageReference,
    pub flags: Flags,
    /// Where the body was when the index last looked it up (`Index::body_location`). A fetch
    /// then finds it in the entry it already reads, not in the blob table: that lookup was a
    /// cache miss, 5-7% of a shard's time in 4 KiB random fetches (bench/README.md, session
    /// 30). Not part of the entry's value: two entries that differ only here are equal.
    body_hint: Cell<BodyHint>,
}

impl MessageEntry {
    pub fn new(message: MessageReference, flags: Flags) -> Self {
        Self { message, flags, body_hint: Cell::new(BodyHint::NONE) }
    }

    /// The body's location as last looked up, if the blob table has changed
    /// `table_changes` times since, as it had then.
    pub(super) fn body_hint(&self, table_changes: u64) -> Option<BlobLocation> {
        let hint = self.body_hint.get();
        (table_changes.checked_add(1) == Some(hint.taken_at)).then_some(hint.location)
    }

    /// Remembers where the blob table, changed `table_changes` times, places the body.
    pub(super) fn remember_body(&self, location: BlobLocation, table_changes: u64) {
        // At the last count there is no "plus one": such a hint is never taken (see `BodyHint`).
        self.body_hint.set(BodyHint { location, taken_at: table_changes.checked_add(1).unwrap_or(0) });
    }
}

impl PartialEq for MessageEntry {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.flags == other.flags
    }
}

impl Eq for MessageEntry {}

/// A body's location and when it was taken: the blob table's change count then, plus one, so
/// that 0 means never taken (32 bytes: an `Option` would make it 40).
#[derive(Debug, Clone, Copy)]
struct BodyHint {
    location: BlobLocation,
    taken_at: u64,
}

impl BodyHint {
    const NONE: Self = Self { location: BlobLocation { segment_id: 0, offset: 0, frame_bytes: 0 }, taken_at: 0 };
}

const _: () = assert!(std::mem::size_of::<BodyHint>() == 32);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedMessage {
    pub mailbox_id: u32,
    pub mailbox_name: String,
    pub uid: u32,
    pub entry: MessageEntry,
    pub expunged_unix_ms: i64,
}

/// Where a message body's record lives. Which entries use it is derived when needed
/// (`Index::blob_usage`), never counted incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub segment_id: u64,
    pub offset: u64,
    pub frame_bytes: u32,
}
