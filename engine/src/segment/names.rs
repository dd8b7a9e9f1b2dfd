//! Segment file names: the segment id, zero-padded so names sort in log order.

pub const SEGMENT_SUFFIX: &str = ".seg";

pub fn segment_name(segment_id: u64) -> String {
    format!("{segment_id:016}{SEGMENT_SUFFIX}")
}

/// Where a new segment is written before its header is durable.
pub fn temporary_segment_name(segment_id: u64) -> String {
    format!("{}{TEMPORARY_SUFFIX}", segment_name(segment_id))
}

pub const TEMPORARY_SUFFIX: &str = ".tmp";

pub fn parse_segment_name(name: &str) -> Option<u64> {
    parse_id(name.strip_suffix(SEGMENT_SUFFIX)?)
}

/// Where a compacted segment's file waits to be reused for a new segment (docs/format.md §2.5):
/// not a segment any more, so nothing that lists segments sees it.
pub const SPARE_SUFFIX: &str = ".spare";

pub fn spare_name(segment_id: u64) -> String {
    format!("{segment_id:016}{SPARE_SUFFIX}")
}

pub fn parse_spare_name(name: &str) -> Option<u64> {
    parse_id(name.strip_suffix(SPARE_SUFFIX)?)
}

fn parse_id(digits: &str) -> Option<u64> {
    if digits.len() != 16 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_in_log_order() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("000000000000004x.seg"), None);
        assert_eq!(parse_spare_name(&spare_name(42)), Some(42));
        assert_eq!(parse_segment_name(&spare_name(42)), None);
        assert_eq!(parse_spare_name(&segment_name(42)), None);
    }
}
