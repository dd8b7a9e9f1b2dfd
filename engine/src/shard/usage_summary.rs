//! What the last usage pass learnt, kept so that a compaction victim search can tell that no
//! sealed segment qualifies without walking every message and body again.
//!
//! Every rotation asks for a victim. Under deliveries alone nothing ever qualifies, and the
//! pass (`Index::blob_usage`, then `segment_usage`) costs time in proportion to the shard's
//! mail: ~9% of a shard's CPU in a 4 KiB append run at a million messages, and a stall of
//! tens of milliseconds per segment that grows with the store. While nothing was released
//! since the pass (`Index::releases`) and no retention hold it counted has ended, every body
//! placed since is needed, so a segment's needed bytes are the body bytes it locates now less
//! the bytes that were not needed then. That estimate only ever counts too much as needed (a
//! body compaction copied under an older pass may have died just before; the next release
//! corrects it), so it can skip a victim search but never picks a victim: a search that the
//! estimate does not rule out runs the full pass.

use rustc_hash::FxHashMap;

use crate::index::{BlobUsage, Index, SegmentUsage};

#[derive(Debug)]
pub(super) struct UsageSummary {
    /// `Index::releases` at the pass.
    releases: u64,
    /// When the first retention hold the pass counted ends: a body it counted as needed is
    /// not from then on.
    holds_end_unix_ms: i64,
    /// Per segment, the bytes of the bodies it located that no one needed at the pass.
    unneeded_bytes: FxHashMap<u64, u64>,
}

impl UsageSummary {
    /// Sums up a full pass (`usage`, and `per_segment` derived from it over the same index).
    pub(super) fn of(index: &Index, usage: &BlobUsage, per_segment: &FxHashMap<u64, SegmentUsage>) -> Self {
        let unneeded_bytes = per_segment
            .iter()
            .map(|(segment_id, usage)| {
                let needed = usage.live_bytes + usage.retained_bytes;
                (*segment_id, index.body_bytes_in(*segment_id).saturating_sub(needed))
            })
            .filter(|(_, unneeded)| *unneeded > 0)
            .collect();
        let holds_end_unix_ms = usage.retained.values().copied().min().unwrap_or(i64::MAX);
        Self { releases: index.releases(), holds_end_unix_ms, unneeded_bytes }
    }

    /// Whether the pass still describes the index: nothing released since, no hold ended.
    pub(super) fn stands(&self, index: &Index, now_unix_ms: i64) -> bool {
        index.releases() == self.releases && now_unix_ms < self.holds_end_unix_ms
    }

    /// A segment's needed body bytes now, while the summary `stands`.
    pub(super) fn needed_bytes(&self, index: &Index, segment_id: u64) -> u64 {
        let unneeded = self.unneeded_bytes.get(&segment_id).copied().unwrap_or(0);
        index.body_bytes_in(segment_id).saturating_sub(unneeded)
    }
}
