//! Where each message body lives, with the body bytes each segment holds kept in step: a
//! compaction victim search can then tell a segment's share of needed bytes without walking
//! every body (see `shard::usage_summary`).

use rustc_hash::FxHashMap;

use super::BlobLocation;

/// Body locations by record id (the engine's own ids: Fx-hashed, every append inserts one).
#[derive(Debug, Default)]
pub(super) struct BlobTable {
    locations: FxHashMap<u64, BlobLocation>,
    /// The sum of `frame_bytes` over `locations`, per segment (segments with none are absent).
    bytes_by_segment: FxHashMap<u64, u64>,
}

impl BlobTable {
    pub(super) fn get(&self, record_id: u64) -> Option<&BlobLocation> {
        self.locations.get(&record_id)
    }

    pub(super) fn contains(&self, record_id: u64) -> bool {
        self.locations.contains_key(&record_id)
    }

    pub(super) fn len(&self) -> usize {
        self.locations.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&u64, &BlobLocation)> {
        self.locations.iter()
    }

    /// The bytes of the bodies located in `segment_id`.
    pub(super) fn bytes_in(&self, segment_id: u64) -> u64 {
        self.bytes_by_segment.get(&segment_id).copied().unwrap_or(0)
    }

    /// Places a body, or moves it (compaction, or a replay meeting a later copy).
    pub(super) fn insert(&mut self, record_id: u64, location: BlobLocation) {
        *self.bytes_by_segment.entry(location.segment_id).or_default() += u64::from(location.frame_bytes);
        if let Some(previous) = self.locations.insert(record_id, location) {
            self.subtract(&previous);
        }
    }

    pub(super) fn remove(&mut self, record_id: u64) -> Option<BlobLocation> {
        let removed = self.locations.remove(&record_id)?;
        self.subtract(&removed);
        Some(removed)
    }

    /// Forgets every body located in `segment_id`.
    pub(super) fn forget_segment(&mut self, segment_id: u64) {
        if self.bytes_by_segment.remove(&segment_id).is_some() {
            self.locations.retain(|_, location| location.segment_id != segment_id);
        }
    }

    fn subtract(&mut self, location: &BlobLocation) {
        if let Some(bytes) = self.bytes_by_segment.get_mut(&location.segment_id) {
            *bytes = bytes.saturating_sub(u64::from(location.frame_bytes));
            if *bytes == 0 {
                self.bytes_by_segment.remove(&location.segment_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn location(segment_id: u64, frame_bytes: u32) -> BlobLocation {
        BlobLocation { segment_id, offset: 4096, frame_bytes }
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert { record_id: u64, segment_id: u64, frame_bytes: u32 },
        Remove { record_id: u64 },
        ForgetSegment { segment_id: u64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..24_u64, 0..4_u64, 1..9000_u32).prop_map(|(record_id, segment_id, frame_bytes)| Step::Insert {
                record_id,
                segment_id,
                frame_bytes
            }),
            (0..24_u64).prop_map(|record_id| Step::Remove { record_id }),
            (0..4_u64).prop_map(|segment_id| Step::ForgetSegment { segment_id }),
        ]
    }

    proptest! {
        /// Whatever the order of places, moves and removals, each segment's byte count is the
        /// sum over the bodies located in it.
        #[test]
        fn segment_bytes_stay_the_sum_of_the_bodies_located_there(steps in prop::collection::vec(step(), 0..80)) {
            let mut table = BlobTable::default();
            for step in steps {
                match step {
                    Step::Insert { record_id, segment_id, frame_bytes } => {
                        table.insert(record_id, location(segment_id, frame_bytes));
                    }
                    Step::Remove { record_id } => {
                        table.remove(record_id);
                    }
                    Step::ForgetSegment { segment_id } => table.forget_segment(segment_id),
                }
                for segment_id in 0..4 {
                    let expected: u64 = table
                        .iter()
                        .filter(|(_, location)| location.segment_id == segment_id)
                        .map(|(_, location)| u64::from(location.frame_bytes))
                        .sum();
                    prop_assert_eq!(table.bytes_in(segment_id), expected);
                }
            }
        }
    }

    #[test]
    fn moving_a_body_moves_its_bytes() {
        let mut table = BlobTable::default();
        table.insert(7, location(1, 5000));
        table.insert(8, location(1, 100));
        table.insert(7, location(2, 5000));
        assert_eq!((table.bytes_in(1), table.bytes_in(2)), (100, 5000));
        table.forget_segment(2);
        assert!(!table.contains(7));
        assert_eq!((table.len(), table.bytes_in(2)), (1, 0));
    }
}
