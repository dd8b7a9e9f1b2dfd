//! The `scrub-state` text (`format::ScrubState`): any state round-trips, any bytes decode to a
//! state or an error without panicking, and a state that decodes re-encodes to itself.

use std::collections::BTreeMap;

use mailvault_engine::ScrubPass;
use mailvault_engine::format::ScrubState;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn state() -> impl Strategy<Value = ScrubState> {
    (
        proptest::option::of(any::<i64>()),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of((any::<i64>(), any::<i64>())),
        btree_map(any::<u64>(), "[^\\p{Cc}]{1,80}", 0..4),
    )
        .prop_map(|(pass_started_unix_ms, next_segment, pass_through, last_pass, damaged)| ScrubState {
            pass_started_unix_ms,
            next_segment,
            pass_through,
            last_pass: last_pass
                .map(|(started_unix_ms, finished_unix_ms)| ScrubPass { started_unix_ms, finished_unix_ms }),
            damaged: damaged.into_iter().collect::<BTreeMap<_, _>>(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_state_round_trips_with_block_padding(state in state(), padding in 0_usize..4096) {
        let mut bytes = state.encode().into_bytes();
        bytes.resize(bytes.len() + padding, 0);
        prop_assert_eq!(ScrubState::decode(&bytes), Ok(state));
    }

    #[test]
    fn any_bytes_decode_without_panicking_and_what_decodes_re_encodes(bytes in vec(any::<u8>(), 0..512)) {
        if let Ok(state) = ScrubState::decode(&bytes) {
            prop_assert_eq!(ScrubState::decode(state.encode().as_bytes()), Ok(state));
        }
    }

    #[test]
    fn a_changed_byte_of_an_encoded_state_is_refused(state in state(), position in any::<prop::sample::Index>(), flip in 1_u8..=255) {
        let mut bytes = state.encode().into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= flip;
        prop_assert!(ScrubState::decode(&bytes).is_err(), "byte {at} changed and still decoded");
    }
}
