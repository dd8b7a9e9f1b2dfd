//! The LMTP DATA decoder, streamed in fuzz-chosen chunk sizes. Byte 0 seeds the chunk sizes,
//! byte 1 picks the size limit (× 16 bytes; 255 for the default), the rest is the stream.
//!
//! Chunking never changes the result (bytes consumed, body, error); each call consumes no more
//! than its chunk, and all of it until the end; a body within the limit ends with CRLF and
//! re-stuffs to what decodes back to it; any bytes stuffed decode back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_frontends::proto::Limits;
use mailvault_frontends::proto::dot_stuffing::stuff;
use mailvault_frontends::proto::lmtp::{DataDecoder, DataError, DataStatus};

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    /// `None` while the terminator has not come.
    result: Option<Result<usize, DataError>>,
    /// Once the body outgrew the limit, what was kept of it depends on chunking.
    exceeded: bool,
    body: Vec<u8>,
}

impl Decoded {
    fn complete(consumed_bytes: usize, body: Vec<u8>) -> Self {
        Self { result: Some(Ok(consumed_bytes)), exceeded: false, body }
    }
}

/// Decodes `stream` fed in chunks of the sizes `chunk_size` gives.
fn decode(stream: &[u8], limits: &Limits, mut chunk_size: impl FnMut() -> usize) -> Decoded {
    let mut decoder = DataDecoder::new(limits);
    let mut body = Vec::new();
    let mut fed = 0;
    while fed < stream.len() {
        let chunk = &stream[fed..fed.saturating_add(chunk_size()).min(stream.len())];
        let before = body.len();
        let result = decoder.decode(chunk, &mut body);
        let consumed = match &result {
            Ok(DataStatus::NeedsMoreData) => {
                fed += chunk.len();
                continue;
            }
            Ok(DataStatus::Complete { consumed_bytes }) | Err(DataError::TooLarge { consumed_bytes, .. }) => {
                *consumed_bytes
            }
            Err(error) => panic!("unknown data error {error:?}"),
        };
        assert!(consumed <= chunk.len(), "consumed {consumed} of a {}-byte chunk", chunk.len());
        assert!(body.len() - before <= consumed, "body grew more than the input");
        let total = fed + consumed;
        let result = Some(result.map(|_| total).map_err(|error| with_consumed(error, total)));
        return Decoded { result, exceeded: decoder.exceeded(), body };
    }
    Decoded { result: None, exceeded: decoder.exceeded(), body }
}

/// The error with `consumed_bytes` counted from the start of the stream.
fn with_consumed(error: DataError, total: usize) -> DataError {
    match error {
        DataError::TooLarge { body_bytes, body_bytes_max, .. } => {
            DataError::TooLarge { consumed_bytes: total, body_bytes, body_bytes_max }
        }
        other => other,
    }
}

fuzz_target!(|input: &[u8]| {
    let [chunk_seed, limit_selector, stream @ ..] = input else {
        return;
    };
    let limit =
        if *limit_selector == u8::MAX { Limits::lmtp().message_bytes_max } else { usize::from(*limit_selector) * 16 };
    let limits = Limits { message_bytes_max: limit, ..Limits::lmtp() };

    let whole = decode(stream, &limits, || usize::MAX);
    let mut state = u32::from(*chunk_seed) | 1;
    let chunked = decode(stream, &limits, || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (state >> 16) as usize % 97
    });
    let byte_by_byte = decode(stream, &limits, || 1);
    for other in [&chunked, &byte_by_byte] {
        assert_eq!(whole.result, other.result, "chunking changed the result");
        assert_eq!(whole.exceeded, other.exceeded, "chunking changed whether the limit was exceeded");
        if !whole.exceeded {
            assert_eq!(whole.body, other.body, "chunking changed the body");
        }
    }
    assert!(whole.exceeded || whole.body.len() <= limit);
    if let Some(result) = &whole.result {
        assert_eq!(whole.exceeded, result.is_err(), "an oversized body is an error, and only that");
    }

    if let Some(Ok(consumed)) = whole.result {
        let terminated = &stream[..consumed];
        assert!(terminated == b".\r\n" || terminated.ends_with(b"\r\n.\r\n"), "ended without a terminator");
        assert!(whole.body.len() <= limit);
        assert!(whole.body.is_empty() || whole.body.ends_with(b"\r\n"));
        let mut stuffed = Vec::new();
        stuff(&whole.body, &mut stuffed);
        let again = decode(&stuffed, &Limits::lmtp(), || usize::MAX);
        assert_eq!(again, Decoded::complete(stuffed.len(), whole.body.clone()));
    }
    if let Some(Err(DataError::TooLarge { body_bytes, body_bytes_max, .. })) = whole.result {
        assert_eq!(body_bytes_max, limit);
        assert!(body_bytes > limit as u64);
    }

    // Any bytes, stuffed, come back (with a final CRLF added if they lacked one).
    let mut stuffed = Vec::new();
    stuff(stream, &mut stuffed);
    let mut expected = stream.to_vec();
    if !expected.is_empty() && !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    let again = decode(&stuffed, &Limits::lmtp(), || usize::MAX);
    assert_eq!(again, Decoded::complete(stuffed.len(), expected), "stuff then decode changed the bytes");
});
