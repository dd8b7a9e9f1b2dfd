//! `SequenceSet::parse`: a set prints to text that parses back to it, and resolving it against
//! a largest number gives sorted, disjoint, in-range ranges that agree with `contains`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::imap::{SequenceNumber, SequenceSet};

fuzz_target!(|input: &[u8]| {
    let Some(set) = SequenceSet::parse(input) else {
        return;
    };
    assert!(!set.ranges().is_empty());
    let printed = set.to_string();
    assert_eq!(SequenceSet::parse(printed.as_bytes()).as_ref(), Some(&set), "{printed} parses differently");

    for largest in [0, 1, 2, 7, 1000, u32::MAX - 1, u32::MAX] {
        let ranges = set.resolve(largest);
        let mut previous_end: Option<u32> = None;
        for range in &ranges {
            let (low, high) = (*range.start(), *range.end());
            assert!(1 <= low && low <= high && high <= largest, "{low}..={high} out of 1..={largest}");
            if let Some(end) = previous_end {
                assert!(low > end.saturating_add(1), "ranges not merged: ..{end} then {low}..");
            }
            previous_end = Some(high);
            for number in [low - 1, low, high, high.saturating_add(1)] {
                let resolved = ranges.iter().any(|range| range.contains(&number));
                assert_eq!(set.contains(number, largest), resolved, "contains({number}) disagrees with resolve");
            }
        }
        let exceeds = set
            .ranges()
            .iter()
            .flat_map(|range| [range.start, range.end])
            .any(|number| matches!(number, SequenceNumber::Number(number) if number.get() > largest));
        assert_eq!(set.exceeds(largest), exceeds);
    }
});
