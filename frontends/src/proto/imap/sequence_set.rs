//! IMAP sequence sets (RFC 3501 §9 `sequence-set`): "1:4,7,9:*", resolved against the largest
//! number in use to decide membership and to iterate.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;

/// One end of a range: a number, or `*` (the largest number in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SequenceNumber {
    /// An explicit message sequence number or UID.
    Number(NonZeroU32),
    /// `*`.
    Largest,
}

impl SequenceNumber {
    fn resolve(self, largest: u32) -> u32 {
        match self {
            Self::Number(number) => number.get(),
            Self::Largest => largest,
        }
    }
}

/// `start:end` in either order, or a single number when both are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SequenceRange {
    /// As written first.
    pub start: SequenceNumber,
    /// As written second (equal to `start` for a single number).
    pub end: SequenceNumber,
}

/// A non-empty list of ranges, as written by the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceSet {
    ranges: Vec<SequenceRange>,
}

impl SequenceSet {
    /// A set of the given ranges; `None` when empty.
    pub fn new(ranges: Vec<SequenceRange>) -> Option<Self> {
        (!ranges.is_empty()).then_some(Self { ranges })
    }

    /// A set holding one number.
    pub fn single(number: NonZeroU32) -> Self {
        let number = SequenceNumber::Number(number);
        Self { ranges: vec![SequenceRange { start: number, end: number }] }
    }

    /// The ranges as written.
    pub fn ranges(&self) -> &[SequenceRange] {
        &self.ranges
    }

    /// Parses `1:4,7,9:*`. Numbers are non-zero and fit in 32 bits.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let ranges = text
            .split(|&byte| byte == b',')
            .map(|range| {
                let mut ends = range.split(|&byte| byte == b':');
                let start = parse_number(ends.next()?)?;
                let end = match ends.next() {
                    Some(end) => parse_number(end)?,
                    None => start,
                };
                ends.next().is_none().then_some(SequenceRange { start, end })
            })
            .collect::<Option<Vec<_>>>()?;
        Self::new(ranges)
    }

    /// The numbers in the set, sorted and merged into disjoint ranges, with `*` standing for
    /// `largest` and everything above `largest` dropped. RFC 3501 §6.4.8: a range reaching
    /// past the largest UID still includes it ("UID FETCH 900:*" with largest 500 means 500).
    pub fn resolve(&self, largest: u32) -> Vec<RangeInclusive<u32>> {
        let mut ranges: Vec<(u32, u32)> = self
            .ranges
            .iter()
            .filter_map(|range| {
                let (first, second) = (range.start.resolve(largest), range.end.resolve(largest));
                let (low, high) = (first.min(second).max(1), first.max(second).min(largest));
                (low <= high).then_some((low, high))
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (low, high) in ranges {
            match merged.last_mut() {
                Some((_, last_high)) if low <= last_high.saturating_add(1) => {
                    *last_high = (*last_high).max(high);
                }
                _ => merged.push((low, high)),
            }
        }
        merged.into_iter().map(|(low, high)| low..=high).collect()
    }

    /// Whether `number` is in the set when the largest number in use is `largest`.
    pub fn contains(&self, number: u32, largest: u32) -> bool {
        number >= 1
            && number <= largest
            && self.ranges.iter().any(|range| {
                let (first, second) = (range.start.resolve(largest), range.end.resolve(largest));
                (first.min(second)..=first.max(second)).contains(&number)
            })
    }

    /// The numbers of [`resolve`](Self::resolve), ascending, each once.
    pub fn iter(&self, largest: u32) -> impl Iterator<Item = u32> + use<> {
        self.resolve(largest).into_iter().flatten()
    }

    /// Whether an explicit number exceeds `largest`: message sequence numbers must exist
    /// (RFC 3501 §9 seq-number), so the session replies BAD; UIDs need not.
    pub fn exceeds(&self, largest: u32) -> bool {
        self.ranges.iter().flat_map(|range| [range.start, range.end]).any(|number| match number {
            SequenceNumber::Number(number) => number.get() > largest,
            SequenceNumber::Largest => false,
        })
    }
}

fn parse_number(text: &[u8]) -> Option<SequenceNumber> {
    if text == b"*" {
        return Some(SequenceNumber::Largest);
    }
    if text.is_empty() || text.len() > 10 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number: u32 = std::str::from_utf8(text).ok()?.parse().ok()?;
    NonZeroU32::new(number).map(SequenceNumber::Number)
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(formatter, "{number}"),
            Self::Largest => formatter.write_str("*"),
        }
    }
}

impl fmt::Display for SequenceSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, range) in self.ranges.iter().enumerate() {
            if index > 0 {
                formatter.write_str(",")?;
            }
            if range.start == range.end {
                write!(formatter, "{}", range.start)?;
            } else {
                write!(formatter, "{}:{}", range.start, range.end)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> SequenceSet {
        SequenceSet::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn parses_and_prints() {
        for text in ["1", "*", "1:4,7,9:*", "4:2", "2,4:7,9,12:*"] {
            assert_eq!(set(text).to_string(), text);
        }
        for text in ["", "0", "1:", ":1", "1::2", "1,", "a", "4294967296", "1:2:3"] {
            assert_eq!(SequenceSet::parse(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn resolves_against_largest() {
        assert_eq!(set("2,4:7,9,12:*").resolve(15), vec![2..=2, 4..=7, 9..=9, 12..=15]);
        assert_eq!(set("7:4,5,1").resolve(10), vec![1..=1, 4..=7]);
        assert_eq!(set("900:*").resolve(500), vec![500..=500]);
        assert_eq!(set("1:*").resolve(0), Vec::<RangeInclusive<u32>>::new());
        assert_eq!(set("3:5,4:9").iter(6).collect::<Vec<_>>(), vec![3, 4, 5, 6]);
    }

    #[test]
    fn membership() {
        let set = set("1:3,*");
        assert!(set.contains(2, 10));
        assert!(set.contains(10, 10));
        assert!(!set.contains(5, 10));
        assert!(!set.contains(0, 10));
        assert!(set.exceeds(2));
        assert!(!set.exceeds(3));
    }
}
