//! `ForcedCompaction::decode` (a shard's `compaction-forced` file: what a prune still has to
//! rewrite) on arbitrary bytes: never panics, and a state that decodes is the one whose text
//! the bytes are (up to the zero padding), so it re-encodes to them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailvault_engine::format::ForcedCompaction;

fuzz_target!(|input: &[u8]| {
    if let Ok(state) = ForcedCompaction::decode(input) {
        let text_end = input.iter().position(|byte| *byte == 0).unwrap_or(input.len());
        assert_eq!(state.encode().as_bytes(), &input[..text_end]);
        assert_eq!(ForcedCompaction::decode(state.encode().as_bytes()), Ok(state));
    }
});
