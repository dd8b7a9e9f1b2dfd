//! The real recovery scan, `segment::scan_segment`, over a segment image built from the fuzz
//! bytes (see `mailvault_fuzz::segment_recipe`) in an in-memory file, on a compio runtime.
//!
//! Always: what the scan hands on is a run of valid frames from the start position to the log
//! end, and the digest, tail block and counts it returns match the image. A clean image gives
//! exactly the predicted result. With one flipped byte: damage is never handed on, a damaged
//! sealed segment is an error (unless it hit the payload of a frame the checkpoint covers, or a
//! block gap between such frames, which only a full scan reads, or lies past the footer: format
//! 6 trims what follows it), and damage followed by a later commit that vouches for it (its
//! start less its durable gap lies past the last complete commit before the damage) is an error:
//! acknowledged data was hit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::block_on;
use mailvault_engine::format::{
    BLOCK_BYTES, CrcSeed, FRAME_FLAG_COMMIT_START, FRAME_HEADER_BYTES, FrameDecode, RecordKind, SEGMENT_HEADER_BYTES,
    SegmentDigest, decode_frame, skip_block_gap,
};
use mailvault_engine::segment::{ScanEnd, ScanError, ScannedFrame, scan_segment};
use mailvault_fuzz::memory_file::MemoryFile;
use mailvault_fuzz::segment_recipe::{SEGMENT_ID, SegmentImage, build, segment_digest};

/// Header bytes from here to `SEGMENT_HEADER_BYTES` are neither checked nor CRC-covered: only a
/// footer's digest notices a change there.
const HEADER_CHECKED_BYTES: usize = 36;
/// The recipe's segment is of this build's format: its frames' CRCs start from its seed.
const SEED: CrcSeed = CrcSeed::of_segment(SEGMENT_ID);

/// What the scan returned, in plain values.
#[derive(Debug)]
enum Outcome {
    Sealed { record_count: u64, untrimmed_end: Option<u64> },
    Open { log_end: u64, record_count: u64, torn: bool },
    Failed(#[allow(dead_code)] String),
}

fn scan(image: &SegmentImage) -> (Outcome, Vec<ScannedFrame>) {
    let file = MemoryFile::new(image.bytes.clone());
    let mut delivered = Vec::new();
    let result = block_on(scan_segment(&file, SEGMENT_ID, image.is_last, image.start, |frame| {
        delivered.push(frame);
        Ok(())
    }));
    assert_eq!(file.into_bytes(), image.bytes, "the scan wrote to the file");
    let outcome = match result {
        Ok(ScanEnd::Sealed { record_count, untrimmed_end }) => Outcome::Sealed { record_count, untrimmed_end },
        Ok(ScanEnd::Open { log, torn }) => {
            check_open(image, log.log_end, &log.digest, &log.tail_block);
            Outcome::Open { log_end: log.log_end, record_count: log.record_count, torn: torn.is_some() }
        }
        Err(error @ (ScanError::Io { .. } | ScanError::Replay { .. })) => panic!("unexpected scan error: {error}"),
        Err(error) => Outcome::Failed(error.to_string()),
    };
    (outcome, delivered)
}

fn check_open(image: &SegmentImage, log_end: u64, digest: &SegmentDigest, tail_block: &[u8]) {
    assert!(log_end >= image.start.offset && log_end <= image.bytes.len() as u64, "log end {log_end} out of range");
    let log_end = log_end as usize;
    assert_eq!(digest.finalize(), segment_digest(&image.bytes[..log_end]), "digest is not that of the log");
    let tail_start = log_end / BLOCK_BYTES * BLOCK_BYTES;
    assert_eq!(tail_block, &image.bytes[tail_start..log_end], "tail block is not the log's last block");
}

/// The frames handed on are contiguous from the start (but for block gaps: zeros to the next
/// block boundary after a commit end), each valid in the image, no footer.
fn check_delivered(image: &SegmentImage, outcome: &Outcome, delivered: &[ScannedFrame]) {
    let mut offset = image.start.offset;
    let mut after_commit_end = true;
    for frame in delivered {
        if frame.offset != offset {
            let gap =
                usize::try_from(offset).expect("offset fits")..usize::try_from(frame.offset).expect("offset fits");
            assert_eq!(
                frame.offset,
                offset.next_multiple_of(BLOCK_BYTES as u64),
                "frames handed on are not contiguous"
            );
            assert!(after_commit_end, "a block gap at {offset} inside a commit");
            assert!(image.bytes[gap].iter().all(|byte| *byte == 0), "a block gap at {offset} is not zero");
            offset = frame.offset;
        }
        after_commit_end = frame.header.is_commit_end();
        let at = usize::try_from(offset).expect("offset fits");
        match decode_frame(&image.bytes[at..], SEED) {
            Ok(FrameDecode::Frame(decoded)) => {
                assert_eq!(decoded.header, frame.header);
                assert_eq!(decoded.payload, frame.payload.as_slice());
                assert_eq!(decoded.encoded_bytes, frame.frame_bytes as usize);
            }
            other => panic!("handed on a frame that does not decode at {offset}: {other:?}"),
        }
        assert_ne!(frame.header.kind, RecordKind::SegmentSealed as u8, "handed on the footer");
        offset += u64::from(frame.frame_bytes);
    }
    let count = image.start.record_count + delivered.len() as u64;
    match *outcome {
        Outcome::Open { log_end, record_count, .. } => {
            assert_eq!(log_end, offset, "log end is not the end of the last frame handed on");
            assert_eq!(record_count, count);
        }
        Outcome::Sealed { record_count, untrimmed_end } => {
            assert_eq!(record_count, count);
            let at = usize::try_from(offset).expect("offset fits");
            let at = usize::try_from(skip_block_gap(&image.bytes[at..], offset)).expect("offset fits");
            let Ok(FrameDecode::Frame(footer)) = decode_frame(&image.bytes[at..], SEED) else {
                panic!("sealed without a footer at {offset}");
            };
            assert_eq!(footer.header.kind, RecordKind::SegmentSealed as u8);
            let footer_end = at + footer.encoded_bytes;
            match untrimmed_end {
                // Format 6: whatever follows the footer (a reused file's earlier bytes) is trimmed.
                Some(end) => assert_eq!(end as usize, footer_end),
                None => assert_eq!(footer_end, image.bytes.len()),
            }
        }
        Outcome::Failed(_) => {}
    }
}

/// A clean image: the result is known exactly.
fn check_clean(image: &SegmentImage, outcome: &Outcome, delivered: &[ScannedFrame]) {
    let commit_ends = image.commit_ends();
    let (log_end, record_count) = commit_ends.last().copied().unwrap_or((BLOCK_BYTES as u64, 0));
    let pending = image.frames.len() as u64 - record_count;
    let expected_delivered = record_count.saturating_sub(image.start.record_count);
    match (image.footer, image.is_last, outcome) {
        (Some(_), _, Outcome::Failed(_)) if pending > 0 => {}
        (Some(_), _, Outcome::Sealed { record_count: sealed, untrimmed_end }) if pending == 0 => {
            assert_eq!(*sealed, record_count);
            assert_eq!(untrimmed_end.is_some(), image.bytes.len() as u64 > image.footer.map_or(0, |footer| footer.1));
        }
        (None, false, Outcome::Failed(_)) => {}
        (None, true, Outcome::Open { log_end: found_end, record_count: found, torn }) => {
            assert_eq!(*found_end, log_end);
            assert_eq!(*found, record_count);
            assert_eq!(*torn, pending > 0, "torn tail misreported");
        }
        _ => panic!(
            "clean image: expected footer={:?} is_last={} pending={pending}, got {outcome:?}",
            image.footer, image.is_last
        ),
    }
    if !matches!(outcome, Outcome::Failed(_)) {
        assert_eq!(delivered.len() as u64, expected_delivered);
    }
}

/// One flipped byte at `at`, the image otherwise clean.
fn check_one_flip(image: &SegmentImage, at: usize, outcome: &Outcome, delivered: &[ScannedFrame], clean: &Outcome) {
    let at_offset = at as u64;
    let in_footer = image.footer.is_some_and(|(start, end)| (start..end).contains(&at_offset));
    let unchecked_header_bytes = (HEADER_CHECKED_BYTES..SEGMENT_HEADER_BYTES).contains(&at);
    let failed = matches!(outcome, Outcome::Failed(_));
    // Frames a checkpoint covers are walked by their headers only (docs/format.md §2.3): their
    // payloads and padding, and the block gaps between them (zeros after a commit's end), are
    // checked by a full scan (compaction, an open without checkpoint, backup verify), not by
    // this one. Regression: a flip inside a block gap before the checkpoint's offset
    // (corpus `regression-flip-in-a-block-gap-a-checkpoint-covers`).
    let header_bytes = FRAME_HEADER_BYTES as u64;
    let in_a_header = image.frames.iter().any(|frame| (frame.offset..frame.offset + header_bytes).contains(&at_offset));
    let in_covered_bytes = (BLOCK_BYTES as u64..image.start.offset).contains(&at_offset) && !in_a_header;
    // Past the footer (format 6): an earlier segment's bytes in a reused file, trimmed.
    if let Some((_, footer_end)) = image.footer.filter(|(_, end)| at_offset >= *end) {
        match clean {
            Outcome::Sealed { .. } => assert!(
                matches!(outcome, Outcome::Sealed { untrimmed_end: Some(end), .. } if *end == footer_end),
                "flip at {at} past the footer: {outcome:?}"
            ),
            _ => assert!(failed, "flip at {at} past a footer that failed without it: {outcome:?}"),
        }
        return;
    }
    // Otherwise a sealed segment is checked end to end (header block, digest, footer).
    if image.footer.is_some() && !(image.is_last && in_footer) && !in_covered_bytes {
        assert!(failed, "flip at {at} in a sealed segment went unnoticed: {outcome:?}");
        return;
    }
    if at < BLOCK_BYTES && !unchecked_header_bytes {
        assert!(failed, "flip at {at} in the header block went unnoticed: {outcome:?}");
        return;
    }
    let Some(damaged) = image.frames.iter().position(|frame| (frame.offset..frame.end).contains(&at_offset)) else {
        if at_offset >= image.frames_end() && !in_footer {
            // Past the log: the log itself must read as it did without the flip.
            match (outcome, clean) {
                (
                    Outcome::Open { log_end, record_count, .. },
                    Outcome::Open { log_end: clean_end, record_count: clean_count, .. },
                ) => {
                    assert_eq!((log_end, record_count), (clean_end, clean_count), "flip past the log changed it");
                }
                (Outcome::Failed(_), Outcome::Failed(_)) => {}
                _ => panic!("flip past the log at {at}: {outcome:?}, clean {clean:?}"),
            }
        }
        return;
    };
    let damaged_frame = image.frames[damaged];
    if damaged_frame.offset < image.start.offset {
        return; // Covered by the checkpoint: not read again (only hashed, for a footer).
    }
    assert!(
        delivered.iter().all(|frame| frame.offset < damaged_frame.offset),
        "handed on the damaged frame at {} or beyond",
        damaged_frame.offset
    );
    let durable_end = image
        .commit_ends()
        .into_iter()
        .map(|(end, _)| end)
        .filter(|end| *end <= damaged_frame.offset)
        .chain([image.start.offset])
        .max()
        .unwrap_or(image.start.offset);
    let later_commit = image.frames[damaged + 1..]
        .iter()
        .any(|frame| frame.flags & FRAME_FLAG_COMMIT_START != 0 && frame.vouched_end > durable_end);
    if later_commit {
        assert!(failed, "flip at {at} before a later commit went unnoticed: {outcome:?}");
    }
}

fuzz_target!(|recipe: &[u8]| {
    let image = build(recipe, true);
    let (outcome, delivered) = scan(&image);
    check_delivered(&image, &outcome, &delivered);
    if !image.start_is_commit_end || image.dirty {
        return;
    }
    match image.flips.as_slice() {
        [] => check_clean(&image, &outcome, &delivered),
        [at] => {
            let (clean, _) = scan(&build(recipe, false));
            check_one_flip(&image, *at, &outcome, &delivered, &clean);
        }
        _ => {}
    }
});
