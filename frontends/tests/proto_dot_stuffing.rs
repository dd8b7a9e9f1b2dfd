//! Property: dot-stuffing then unstuffing gives the body back, however the stuffed bytes are cut
//! into chunks, and the decoder stops exactly after the terminator.

use mailvault_frontends::proto::dot_stuffing::{Unstuffed, Unstuffer, stuff};
use mailvault_frontends::proto::{Limits, lmtp};
use proptest::prelude::*;

/// Bodies rich in the bytes that matter: dots, CR, LF.
fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..200)
}

fn expected(body: &[u8]) -> Vec<u8> {
    let mut expected = body.to_vec();
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    expected
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn stuffing_round_trips_in_any_chunking(body in body(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut wire = Vec::new();
        stuff(&body, &mut wire);
        let next_command = b"QUIT\r\n";
        let total = wire.len();
        wire.extend_from_slice(next_command);

        let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        points.dedup();

        let mut unstuffer = Unstuffer::new(usize::MAX);
        let mut decoded = Vec::new();
        let mut finished_at = None;
        for pair in points.windows(2) {
            match unstuffer.decode(&wire[pair[0]..pair[1]], &mut decoded) {
                Unstuffed::NeedsMoreData => {}
                Unstuffed::Finished { consumed_bytes } => {
                    finished_at = Some(pair[0] + consumed_bytes);
                    break;
                }
            }
        }
        prop_assert_eq!(finished_at, Some(total));
        prop_assert_eq!(decoded, expected(&body));
    }

    #[test]
    fn data_decoder_enforces_the_limit_and_still_finds_the_end(body in body(), limit in 0_usize..100) {
        let mut wire = Vec::new();
        stuff(&body, &mut wire);
        let limits = Limits { message_bytes_max: limit, ..Limits::lmtp() };
        let mut decoder = lmtp::DataDecoder::new(&limits);
        let mut decoded = Vec::new();
        let expected = expected(&body);
        match decoder.decode(&wire, &mut decoded) {
            Ok(lmtp::DataStatus::Complete { consumed_bytes }) => {
                prop_assert!(expected.len() <= limit);
                prop_assert_eq!(consumed_bytes, wire.len());
                prop_assert_eq!(decoded, expected);
            }
            Err(lmtp::DataError::TooLarge { consumed_bytes, body_bytes, .. }) => {
                prop_assert!(expected.len() > limit);
                prop_assert_eq!(consumed_bytes, wire.len());
                prop_assert_eq!(body_bytes, expected.len() as u64);
                prop_assert!(decoded.len() <= limit);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
