//! `decode_frame` on arbitrary bytes: a frame re-encodes to exactly the bytes it was decoded
//! from (its durable gap, which lives outside the header struct, put back with
//! `mark_commit_start`), sizes stay within the input, and adding flags keeps the frame valid
//! and its durable gap. `verified_frame`
//! (the walk over bytes already verified) agrees with it on every frame and stays in bounds.
//! `decode_frame_for_aead` (a fetch's decode) agrees with it except where only the checksum is
//! wrong, which `frame_checksum_matches` then reports. The input is read as a format 5 segment's
//! (unseeded CRC, as the seed corpus was written); each frame found is also written into a
//! format 6 segment, where it must decode under that segment's seed only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::{
    CrcSeed, FRAME_FLAG_COMMIT_END, FRAME_HEADER_BYTES, FrameDecode, FrameError, add_frame_flags, commit_durable_gap,
    decode_frame, decode_frame_for_aead, encode_frame, frame_checksum_matches, frame_encoded_bytes, mark_commit_start,
    verified_frame,
};

const SEED: CrcSeed = CrcSeed::UNSEEDED;
/// A format 6 segment's seed, which no other segment's frame passes.
const REUSED_FILE_SEED: CrcSeed = CrcSeed::of_segment(7);

fuzz_target!(|input: &[u8]| {
    if let Some((_, encoded_bytes)) = verified_frame(input) {
        assert!(encoded_bytes <= input.len());
    }
    let unchecked = decode_frame_for_aead(input);
    if decode_frame(input, SEED) == Err(FrameError::BadChecksum) {
        assert!(!frame_checksum_matches(input, SEED));
        assert!(matches!(unchecked, Ok(FrameDecode::Frame(_)) | Err(FrameError::BadPadding | FrameError::BadReserved)));
    } else {
        assert_eq!(decode_frame(input, SEED), unchecked);
    }
    match decode_frame(input, SEED) {
        Ok(FrameDecode::Frame(frame)) => {
            assert!(frame_checksum_matches(input, SEED));
            assert_eq!(verified_frame(input), Some((frame.header, frame.encoded_bytes)));
            assert!(frame.encoded_bytes <= input.len());
            assert_eq!(frame.encoded_bytes, frame_encoded_bytes(frame.payload.len()));
            assert_eq!(frame.header.payload_length as usize, frame.payload.len());
            let mut encoded = Vec::new();
            encode_frame(&frame.header, frame.payload, SEED, &mut encoded);
            let gap = commit_durable_gap(input);
            if frame.header.is_commit_start() {
                mark_commit_start(&mut encoded, gap, SEED);
            } else {
                assert_eq!(gap, 0, "a frame that starts no commit decoded with a durable gap");
            }
            assert_eq!(encoded, &input[..frame.encoded_bytes], "decode then encode changed the frame");

            let mut reused = Vec::new();
            encode_frame(&frame.header, frame.payload, REUSED_FILE_SEED, &mut reused);
            assert!(matches!(decode_frame(&reused, REUSED_FILE_SEED), Ok(FrameDecode::Frame(_))));
            assert_eq!(
                decode_frame(&reused, SEED),
                Err(FrameError::BadChecksum),
                "a format 6 frame read as format 5's"
            );
            assert_eq!(
                decode_frame(input, REUSED_FILE_SEED),
                Err(FrameError::BadChecksum),
                "an old frame read as the new segment's"
            );

            let mut flagged = encoded.clone();
            add_frame_flags(&mut flagged, FRAME_FLAG_COMMIT_END, SEED);
            match decode_frame(&flagged, SEED) {
                Ok(FrameDecode::Frame(again)) => {
                    assert_eq!(again.header.flags, frame.header.flags | FRAME_FLAG_COMMIT_END);
                    assert_eq!(again.payload, frame.payload);
                    assert!(again.header.is_commit_end());
                    assert_eq!(commit_durable_gap(&flagged), gap, "adding a flag changed the durable gap");
                }
                other => panic!("a flagged frame no longer decodes: {other:?}"),
            }
        }
        Ok(FrameDecode::End) => assert!(input.len() >= 4 && input[..4] == [0; 4]),
        Ok(FrameDecode::NeedsMoreData { bytes_needed }) => {
            assert!(bytes_needed > input.len(), "asks for {bytes_needed} bytes but has {}", input.len());
            assert!(bytes_needed >= FRAME_HEADER_BYTES);
        }
        Err(_) => {}
    }
    // Never panics on any frame-sized prefix either.
    let mut copy = input.to_vec();
    add_frame_flags(&mut copy, FRAME_FLAG_COMMIT_END, SEED);
});
