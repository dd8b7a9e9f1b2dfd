//! Which message bodies are still needed, derived from the mailboxes on demand (never counted
//! incrementally): compaction keeps these and drops the rest.

use rustc_hash::FxHashMap;

use super::record_id_set::RecordIdSet;
use super::{BlobLocation, Index, RecordLocation};

/// Blob record ids in use: by a mailbox (`live`), or only by deleted messages still inside
/// their retention window (`retained`, with the time the last such hold ends). Built over
/// every message of the shard each time compaction looks for work, so `live` is a bit per id
/// over the bodies' range (see [`RecordIdSet`]); deleted messages are few, and Fx-hashed.
#[derive(Debug, Default)]
pub struct BlobUsage {
    pub live: RecordIdSet,
    pub retained: FxHashMap<u64, i64>,
}

impl BlobUsage {
    pub fn is_needed(&self, blob_record_id: u64) -> bool {
        self.live.contains(blob_record_id) || self.retained.contains_key(&blob_record_id)
    }
}

/// What compaction keeps of a segment: the bytes of the bodies in it still needed.
#[derive(Debug, Default, Clone, Copy)]
pub struct SegmentUsage {
    pub live_bytes: u64,
    pub retained_bytes: u64,
    pub retained_until_unix_ms: Option<i64>,
}

impl SegmentUsage {
    fn add(&mut self, other: &Self) {
        self.live_bytes += other.live_bytes;
        self.retained_bytes += other.retained_bytes;
        self.retained_until_unix_ms = match (self.retained_until_unix_ms, other.retained_until_unix_ms) {
            (Some(mine), Some(theirs)) => Some(mine.max(theirs)),
            (mine, theirs) => mine.or(theirs),
        };
    }
}

impl Index {
    pub fn blob_usage(&self, now_unix_ms: i64, retention_ms: i64) -> BlobUsage {
        // Every live body is located (a message whose body is not is corruption, reported
        // elsewhere): the located ids' range holds them all.
        let live = RecordIdSet::for_ids(self.blobs.id_range(), self.blobs.len());
        let mut usage = BlobUsage { live, retained: FxHashMap::default() };
        for account in self.accounts.values() {
            for mailbox in account.mailboxes.values() {
                for entry in mailbox.messages.values() {
                    usage.live.insert(entry.message.blob_record_id);
                }
            }
        }
        for account in self.accounts.values() {
            for deleted in &account.deleted {
                let until = deleted.expunged_unix_ms.saturating_add(retention_ms);
                let blob = deleted.entry.message.blob_record_id;
                if until > now_unix_ms && !usage.live.contains(blob) {
                    let hold = usage.retained.entry(blob).or_insert(until);
                    *hold = (*hold).max(until);
                }
            }
        }
        usage
    }

    /// Needed body bytes per segment, by `usage` (a pass over this index).
    pub fn segment_usage(&self, usage: &BlobUsage) -> FxHashMap<u64, SegmentUsage> {
        let mut segments = FxHashMap::<u64, SegmentUsage>::default();
        // Bodies come in runs from one segment (neighbouring ids share slots in the table):
        // a run's sums are kept here and added to the map when the segment changes.
        let mut run_segment: Option<u64> = None;
        let mut run = SegmentUsage::default();
        for (record_id, location) in self.blobs() {
            if run_segment != Some(location.segment_id) {
                if let Some(segment_id) = run_segment {
                    segments.entry(segment_id).or_default().add(&run);
                }
                (run_segment, run) = (Some(location.segment_id), SegmentUsage::default());
            }
            if usage.live.contains(*record_id) {
                run.live_bytes += u64::from(location.frame_bytes);
            } else if let Some(until) = usage.retained.get(record_id) {
                run.retained_bytes += u64::from(location.frame_bytes);
                run.retained_until_unix_ms = Some(run.retained_until_unix_ms.unwrap_or(*until).max(*until));
            }
        }
        if let Some(segment_id) = run_segment {
            segments.entry(segment_id).or_default().add(&run);
        }
        segments
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
