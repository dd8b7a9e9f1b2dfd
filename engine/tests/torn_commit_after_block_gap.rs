//! Regression (session 18, found by `pipelined_commits` about once in 170 runs): a commit
//! started on a fresh block (after a block gap) that was still in flight at
//! a crash may be torn or lost while a later commit, planned while it was the oldest in flight,
//! lands whole. That later commit vouches for the log up to exactly the damaged commit's start:
//! recovery must cut the torn tail, not read the claim as covering the zeros of the block gap
//! and refuse to open ("frame checksum mismatch; a later commit starts at offset …").
#![allow(clippy::unwrap_used)]
use mailvault_engine::format::{
    BLOCK_BYTES, CrcSeed, DURABLE_GAP_UNIT_BYTES, FrameHeader, SegmentHeader, encode_frame, mark_commit_start,
};

/// The segment's frames' CRC seed (format 6: its own; the segment is number 1).
const SEED: CrcSeed = CrcSeed::of_segment(1);
use mailvault_engine::io::{DiskStorage, Storage};
use mailvault_engine::segment::{ScanEnd, ScanStart, scan_segment};

/// One frame that is a whole commit (start and end), with `gap` durable-gap units.
fn commit(record_id: u64, payload_bytes: usize, gap: u16) -> Vec<u8> {
    let payload = vec![0x5a; payload_bytes];
    let header = FrameHeader {
        kind: 5,
        flags: 0x01, // COMMIT_END; COMMIT_START and the gap come from mark_commit_start
        record_id,
        account_id: 1,
        mailbox_id: 1,
        uid: record_id as u32,
        payload_length: payload_bytes as u32,
    };
    let mut frame = Vec::new();
    encode_frame(&header, &payload, SEED, &mut frame);
    mark_commit_start(&mut frame, gap, SEED);
    frame
}

fn place(segment: &mut Vec<u8>, at: usize, frame: &[u8]) -> usize {
    if segment.len() < at + frame.len() {
        segment.resize(at + frame.len(), 0);
    }
    segment[at..at + frame.len()].copy_from_slice(frame);
    at + frame.len()
}

fn scan(bytes: &[u8]) -> Result<u64, String> {
    let dir = tempfile::tempdir().unwrap();
    let name = "0000000000000001.seg";
    std::fs::write(dir.path().join(name), bytes).unwrap();
    mailvault_engine::block_on(async {
        let file = DiskStorage::new(dir.path()).open(name, false).await.unwrap();
        match scan_segment(&file, 1, true, ScanStart::BEGINNING, |_| Ok(())).await {
            Ok(ScanEnd::Open { log, .. }) => Ok(log.log_end),
            Ok(ScanEnd::Sealed { .. }) => Err("sealed".into()),
            Err(error) => Err(error.to_string()),
        }
    })
}

#[test]
fn a_torn_or_lost_commit_after_a_block_gap_is_cut_when_a_later_one_vouches_only_up_to_its_start() {
    let block = BLOCK_BYTES;
    let mut segment = vec![0u8; block];
    segment[..block].copy_from_slice(&{
        let mut header_block = SegmentHeader::new(0, 1, 0).encode().to_vec();
        header_block.resize(block, 0);
        header_block
    });
    // A: durable, ends mid-block.
    let a_end = place(&mut segment, block, &commit(1, 10_000, 0));
    // B: planned while A was in flight, on a fresh block; in flight at the crash.
    let b_start = a_end.next_multiple_of(block);
    let b_end = place(&mut segment, b_start, &commit(2, 10_000, 1));
    // C: planned while B was the oldest in flight, two units after B's start: vouches for
    // everything before b_start exactly.
    let c_start = b_start + 2 * DURABLE_GAP_UNIT_BYTES as usize;
    let c_end = place(&mut segment, c_start, &commit(3, 10_000, 2));
    segment.resize(c_end.next_multiple_of(block) + 16 * block, 0);

    let mut torn = segment.clone();
    torn[b_start + 3 * 512..b_end].fill(0); // B torn after its third sector
    assert_eq!(scan(&torn), Ok(a_end as u64), "torn");
    let mut lost = segment.clone();
    lost[b_start..b_end].fill(0); // B lost whole
    assert_eq!(scan(&lost), Ok(a_end as u64), "lost");
    // Control: C vouches for A; damage in A is still reported.
    let mut damaged = segment.clone();
    damaged[block + 100] ^= 1;
    let error = scan(&damaged).unwrap_err();
    assert!(error.contains("a later commit starts"), "{error}");
}
