//! Segment files: the active one being appended to, sealed ones that never change, and the
//! recovery scan that reads either back.

mod active;
mod commit_frames;
mod names;
mod recycling;
mod scan;

pub use active::{ActiveSegment, OpenLog, PreparedSegment, RESERVE_STEP_BYTES, TailWrite};
pub use commit_frames::CommitFrames;
pub use names::{
    SEGMENT_SUFFIX, SPARE_SUFFIX, TEMPORARY_SUFFIX, parse_segment_name, parse_spare_name, segment_name, spare_name,
    temporary_segment_name,
};
pub use recycling::RecycledSegments;
pub use scan::{ScanEnd, ScanError, ScanStart, ScannedFrame, scan_segment};
