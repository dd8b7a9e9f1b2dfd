//! `SegmentHeader::decode` on arbitrary bytes: a header re-encodes to the bytes it covers
//! (magic, version, fields, CRC) and decodes again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::SegmentHeader;

/// Bytes 36..64 are "zero up to 64" in the layout but neither checked nor CRC-covered.
const COVERED_BYTES: usize = 36;

fuzz_target!(|input: &[u8]| {
    if let Ok(header) = SegmentHeader::decode(input) {
        let encoded = header.encode();
        assert_eq!(&encoded[..COVERED_BYTES], &input[..COVERED_BYTES], "decode then encode changed the header");
        assert_eq!(SegmentHeader::decode(&encoded), Ok(header));
    }
});
