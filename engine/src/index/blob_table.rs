//! Where each message body lives, with the body bytes each segment holds kept in step: a
//! compaction victim search can then tell a segment's share of needed bytes without walking
//! every body (see `shard::usage_summary`).

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::RangeInclusive;

use rustc_hash::FxHashMap;

use super::BlobLocation;

/// Hashes record ids so that ids handed out one after the other land in neighbouring slots:
/// every append inserts the next id, and with Fx-hashing each insert (and each move when the
/// table grew) touched a cold cache line, 6-7% of a shard's time in 4 KiB appends at a million
/// bodies (under 1% with this hash). Runs of [`RUN_IDS`] consecutive ids take consecutive slots
/// from a well-mixed base, so ids with a stride (a body every 64th record, say) still spread
/// over the table rather than pile onto a few slots; the top seven bits, which hashbrown
/// compares in its control bytes, are mixed per id.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct RecordIdHasher(u64);

/// Consecutive ids that share a run of slots (a power of two).
const RUN_IDS: u64 = 64;
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for RecordIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; anything else still gets a usable hash.
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }

    fn finish(&self) -> u64 {
        const CONTROL_BITS: u64 = !(u64::MAX >> 7);
        let id = self.0;
        // The product's high half is the well-mixed one: rotated down, it places the run, and
        // its top bits turn the run (ids a multiple of `RUN_IDS` apart must not share a slot).
        let mixed = (id / RUN_IDS).wrapping_mul(GOLDEN).rotate_left(32);
        let slot = mixed.wrapping_mul(RUN_IDS) | (id.wrapping_add(mixed >> 58) % RUN_IDS);
        (slot & !CONTROL_BITS) | (id.wrapping_mul(GOLDEN) & CONTROL_BITS)
    }
}

type ByRecordId = HashMap<u64, BlobLocation, BuildHasherDefault<RecordIdHasher>>;

/// Body locations by record id (the engine's own ids, handed out in order: see `RecordIdHasher`).
#[derive(Debug, Default)]
pub(super) struct BlobTable {
    locations: ByRecordId,
    /// The sum of `frame_bytes` over `locations`, per segment (segments with none are absent).
    bytes_by_segment: FxHashMap<u64, u64>,
    /// Grows whenever a body moves or is forgotten, never when one is placed for the first time.
    /// A location read from this table while it stood at some value is still the table's own
    /// as long as it stands there (see `MessageEntry::body_hint`).
    changes: u64,
    /// The lowest and highest id located, kept in step as bodies are placed; `None` once an end
    /// may have gone (a removal), until `id_range` walks the table again.
    ends: Cell<Option<Ends>>,
}

/// The lowest and highest id of a table, or `Empty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    Empty,
    Span(u64, u64),
}

impl Ends {
    fn with(self, id: u64) -> Self {
        match self {
            Self::Empty => Self::Span(id, id),
            Self::Span(lowest, highest) => Self::Span(lowest.min(id), highest.max(id)),
        }
    }
}

impl BlobTable {
    pub(super) fn get(&self, record_id: u64) -> Option<&BlobLocation> {
        self.locations.get(&record_id)
    }

    /// How many times a body moved or was forgotten (see the field).
    pub(super) fn changes(&self) -> u64 {
        self.changes
    }

    pub(super) fn contains(&self, record_id: u64) -> bool {
        self.locations.contains_key(&record_id)
    }

    pub(super) fn len(&self) -> usize {
        self.locations.len()
    }

    /// The lowest and highest record id located, if any: kept in step, except after a removal,
    /// which the next call answers with a walk over the table (a pass's set of ids is sized
    /// by it: `Index::blob_usage`).
    pub(super) fn id_range(&self) -> Option<RangeInclusive<u64>> {
        let ends = self.ends.get().unwrap_or_else(|| {
            let ends = self.locations.keys().fold(Ends::Empty, |ends, id| ends.with(*id));
            self.ends.set(Some(ends));
            ends
        });
        match ends {
            Ends::Empty => None,
            Ends::Span(lowest, highest) => Some(lowest..=highest),
        }
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
        self.ends.set(self.ends.get().map(|ends| ends.with(record_id)));
        if let Some(previous) = self.locations.insert(record_id, location) {
            self.subtract(&previous);
            self.changes += 1;
        }
    }

    pub(super) fn remove(&mut self, record_id: u64) -> Option<BlobLocation> {
        let removed = self.locations.remove(&record_id)?;
        self.ends.set(None);
        self.subtract(&removed);
        self.changes += 1;
        Some(removed)
    }

    /// Forgets every body located in `segment_id`.
    pub(super) fn forget_segment(&mut self, segment_id: u64) {
        if self.bytes_by_segment.remove(&segment_id).is_some() {
            self.locations.retain(|_, location| location.segment_id != segment_id);
            self.ends.set(None);
            self.changes += 1;
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
        /// sum over the bodies located in it, and the id range is the lowest and highest id.
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
                let lowest = table.iter().map(|(id, _)| *id).min();
                let highest = table.iter().map(|(id, _)| *id).max();
                prop_assert_eq!(table.id_range(), lowest.zip(highest).map(|(lowest, highest)| lowest..=highest));
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

    /// Message entries trust the place they remember only while this count stands still
    /// (`Index::body_location`): it must move whenever a place is no longer the table's.
    #[test]
    fn the_change_count_grows_when_a_body_moves_or_goes_and_not_when_one_is_placed() {
        let mut table = BlobTable::default();
        table.insert(1, location(1, 100));
        table.insert(2, location(1, 100));
        table.insert(3, location(2, 100));
        assert_eq!(table.changes(), 0, "first places");
        table.insert(1, location(3, 100));
        assert_eq!(table.changes(), 1, "a move");
        table.remove(2);
        assert_eq!(table.changes(), 2, "a removal");
        assert_eq!(table.remove(2), None);
        assert_eq!(table.changes(), 2, "removing what is not there changes nothing");
        table.forget_segment(2);
        assert_eq!(table.changes(), 3, "a forgotten segment");
        table.forget_segment(2);
        assert_eq!(table.changes(), 3, "forgetting a segment with no bodies changes nothing");
    }

    fn slot(id: u64, buckets: u64) -> u64 {
        let mut hasher = RecordIdHasher::default();
        hasher.write_u64(id);
        hasher.finish() % buckets
    }

    /// Consecutive ids fill neighbouring slots (the point of the hash), and ids with any
    /// power-of-two stride still spread over the table: hashbrown probes 16 slots at a time,
    /// so what must stay small is how many ids want the same 16 (else lookups walk chains).
    #[test]
    fn record_ids_keep_their_neighbours_and_strides_still_spread() {
        let buckets = 1 << 16;
        let base = 1_000_064;
        let run_start = slot(base, buckets) / RUN_IDS * RUN_IDS;
        let in_run: std::collections::BTreeSet<u64> = (base..base + RUN_IDS).map(|id| slot(id, buckets)).collect();
        assert_eq!(in_run, (run_start..run_start + RUN_IDS).collect(), "a run of ids takes one run of slots");
        for stride_bits in 0..24 {
            let mut per_group = std::collections::HashMap::<u64, u64>::new();
            for index in 0..buckets / 2 {
                *per_group.entry(slot(base + (index << stride_bits), buckets) / 16).or_default() += 1;
            }
            let fullest = per_group.values().copied().max().unwrap_or(0);
            assert!(fullest <= 24, "stride 2^{stride_bits}: {fullest} ids want the same 16 slots");
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
