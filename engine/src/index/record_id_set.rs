//! A set of record ids built for one usage pass (`Index::blob_usage`): one bit per id over the
//! range the shard's bodies span, hashed only for ids outside it.
//!
//! A pass inserts every message's body id and then looks up every located body. In a hash set
//! of two million ids each of those is a cache miss (32 MB of table, rebuilt at each pass): the
//! whole pass took 89 ns per message (bench `index/2000_accounts_x_1000_messages/usage_pass`).
//! Record ids are handed out in order, and the bodies a shard keeps fill much of the range
//! between its oldest and newest, so the same set as bits fits in the cache (256 KB for two
//! million ids).

use std::ops::RangeInclusive;

use rustc_hash::FxHashSet;

/// Bits are used where they cost at most this many bytes per expected id (as much as the hash
/// set's slot alone): one body among up to 64 record ids of the range.
const MAX_BYTES_PER_ID: u64 = 8;

#[derive(Debug, Default)]
pub struct RecordIdSet {
    /// The id of bit 0 of `words[0]`.
    first: u64,
    /// Bit `i` of `words[w]` stands for id `first + 64 * w + i`.
    words: Vec<u64>,
    /// Ids outside the words' range: all of them when the range was too sparse for bits.
    others: FxHashSet<u64>,
}

impl RecordIdSet {
    /// A set for about `expected` ids, most of them in `range`: as bits over the range when that
    /// costs no more than [`MAX_BYTES_PER_ID`] per expected id, else hashed. Any id may be
    /// inserted either way.
    pub fn for_ids(range: Option<RangeInclusive<u64>>, expected: usize) -> Self {
        let expected = expected as u64;
        let Some(range) = range.filter(|range| !range.is_empty()) else {
            return Self::default();
        };
        let words = (range.end() - range.start()) / 64 + 1;
        if words.saturating_mul(8) > expected.saturating_mul(MAX_BYTES_PER_ID) {
            let mut others = FxHashSet::default();
            others.reserve(usize::try_from(expected).unwrap_or(0));
            return Self { others, ..Self::default() };
        }
        Self {
            first: *range.start(),
            words: vec![0; usize::try_from(words).unwrap_or(0)],
            others: FxHashSet::default(),
        }
    }

    pub fn insert(&mut self, id: u64) {
        match self.word_and_bit(id) {
            Some((word, bit)) => self.words[word] |= bit,
            None => {
                self.others.insert(id);
            }
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        match self.word_and_bit(id) {
            Some((word, bit)) => self.words[word] & bit != 0,
            None => self.others.contains(&id),
        }
    }

    /// Where `id`'s bit is, if the words cover it.
    fn word_and_bit(&self, id: u64) -> Option<(usize, u64)> {
        let offset = id.checked_sub(self.first)?;
        let word = usize::try_from(offset / 64).ok().filter(|word| *word < self.words.len())?;
        Some((word, 1 << (offset % 64)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// Whether the set chose bits for its range (else everything is hashed).
    fn uses_bits(set: &RecordIdSet) -> bool {
        !set.words.is_empty()
    }

    proptest! {
        /// Whatever range and count it was made for, the set holds exactly the ids inserted:
        /// inside the range, below it, above it, at the ends of its words.
        #[test]
        fn holds_exactly_what_was_inserted(
            start in 0u64..1_000,
            length in 0u64..5_000,
            expected in 0usize..200,
            inserted in proptest::collection::vec(0u64..7_000, 0..300),
            probes in proptest::collection::vec(0u64..7_000, 0..300),
        ) {
            let mut set = RecordIdSet::for_ids(Some(start..=start + length), expected);
            let mut model = BTreeSet::new();
            for id in inserted {
                set.insert(id);
                model.insert(id);
            }
            for id in probes.into_iter().chain(model.iter().copied()) {
                prop_assert_eq!(set.contains(id), model.contains(&id), "id {}", id);
            }
        }
    }

    #[test]
    fn a_dense_range_is_kept_as_bits() {
        let mut set = RecordIdSet::for_ids(Some(1_000..=1_063), 1);
        assert!(uses_bits(&set));
        set.insert(1_063);
        set.insert(u64::MAX);
        assert!(set.contains(1_063) && set.contains(u64::MAX));
        assert!(!set.contains(1_062) && !set.contains(1_064) && !set.contains(999));
        assert_eq!(set.others.len(), 1, "only the id outside the range is hashed");
    }

    #[test]
    fn bits_are_used_up_to_eight_bytes_per_expected_id() {
        // 100 words (800 bytes) for 100 ids: bits; 101 words: hashed.
        assert!(uses_bits(&RecordIdSet::for_ids(Some(10..=10 + 64 * 100 - 1), 100)));
        assert!(!uses_bits(&RecordIdSet::for_ids(Some(10..=10 + 64 * 100), 100)));
        // The range of every id: never bits, whatever is expected (no absurd allocation).
        assert!(!uses_bits(&RecordIdSet::for_ids(Some(0..=u64::MAX), 1 << 20)));
    }

    #[test]
    fn no_range_or_an_empty_one_hashes_everything() {
        for range in [None, Some(RangeInclusive::new(5, 4))] {
            let mut set = RecordIdSet::for_ids(range, 10);
            assert!(!uses_bits(&set));
            set.insert(7);
            assert!(set.contains(7) && !set.contains(8));
        }
    }
}
