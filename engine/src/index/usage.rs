//! Which message bodies are still needed, derived from the mailboxes on demand (never counted
//! incrementally): compaction keeps these and drops the rest.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{BlobLocation, Index, RecordLocation};

/// Blob record ids in use: by a mailbox (`live`), or only by deleted messages still inside
/// their retention window (`retained`, with the time the last such hold ends). Fx-hashed:
/// record ids are the engine's own, and this is built over every message of the shard each
/// time compaction looks for work.
#[derive(Debug, Default)]
pub struct BlobUsage {
    pub live: FxHashSet<u64>,
    pub retained: FxHashMap<u64, i64>,
}

impl BlobUsage {
    pub fn is_needed(&self, blob_record_id: u64) -> bool {
        self.live.contains(&blob_record_id) || self.retained.contains_key(&blob_record_id)
    }
}

impl Index {
    pub fn blob_usage(&self, now_unix_ms: i64, retention_ms: i64) -> BlobUsage {
        let mut usage = BlobUsage::default();
        let messages =
            self.accounts.values().flat_map(|account| account.mailboxes.values()).map(|mailbox| mailbox.messages.len());
        usage.live.reserve(messages.sum());
        for account in self.accounts.values() {
            for mailbox in account.mailboxes.values() {
                usage.live.extend(mailbox.messages.values().map(|entry| entry.message.blob_record_id));
            }
        }
        for account in self.accounts.values() {
            for deleted in &account.deleted {
                let until = deleted.expunged_unix_ms.saturating_add(retention_ms);
                let blob = deleted.entry.message.blob_record_id;
                if until > now_unix_ms && !usage.live.contains(&blob) {
                    let hold = usage.retained.entry(blob).or_insert(until);
                    *hold = (*hold).max(until);
                }
            }
        }
        usage
    }

    /// Compaction moved a body: the record is the same, only its place changed.
    pub fn relocate_blob(&mut self, blob_record_id: u64, location: RecordLocation) {
        let RecordLocation { segment_id, offset, frame_bytes } = location;
        self.blobs.insert(blob_record_id, BlobLocation { segment_id, offset, frame_bytes });
    }

    /// Forgets every body stored in a segment that is gone (compacted) or about to be.
    pub fn forget_blobs_in(&mut self, segment_id: u64) {
        self.blobs.forget_segment(segment_id);
    }

    /// A message entry whose body has no known location: the log lost a body.
    pub fn first_missing_blob(&self) -> Option<(String, u32)> {
        self.accounts.values().find_map(|account| {
            let mailboxes = account.mailboxes.values().flat_map(|mailbox| {
                mailbox.messages.iter().map(move |(uid, entry)| (mailbox.name.as_str(), uid, entry))
            });
            let deleted =
                account.deleted.iter().map(|deleted| (deleted.mailbox_name.as_str(), deleted.uid, &deleted.entry));
            mailboxes
                .chain(deleted)
                .find(|(_, _, entry)| !self.blobs.contains(entry.message.blob_record_id))
                .map(|(mailbox, uid, _)| (format!("{}/{mailbox}", account.name), uid))
        })
    }
}
