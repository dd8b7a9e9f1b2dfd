//! `ScrubState::decode` (the scrub's `scrub-state` file) on arbitrary bytes: never panics, and
//! a state that decodes re-encodes to text that decodes to the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::ScrubState;

fuzz_target!(|input: &[u8]| {
    if let Ok(state) = ScrubState::decode(input) {
        assert_eq!(ScrubState::decode(state.encode().as_bytes()), Ok(state));
    }
});
