//! What a prune or purge still has to rewrite, kept in a small text file in the shard's
//! directory (`compaction-forced`, read and replaced by `shard/forced_compaction.rs`): the
//! segments that hold its mail's ciphertext, and whether spare files must go before any is
//! reused. Without it a restart between the prune and the end of its rewrite forgot them, and
//! the pruned ciphertext stayed until compaction rewrote those segments for their live share.
//!
//! ```text
//! mailvault compaction-forced 1
//! spares_withheld                   (only if they are)
//! segment 12                        (one line per segment, ascending)
//! crc 1a2b3c4d                      (CRC32C of every byte before this line)
//! ```
//! zero padding to a whole block. It holds no mail data: segment ids only. A missing file means
//! nothing is forced; a damaged one is reported and read as nothing forced.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::checked_text::{append_crc_line, checked_body};

const FIRST_LINE: &str = "mailvault compaction-forced 1";
const SPARES_WITHHELD: &str = "spares_withheld";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForcedCompaction {
    /// Segments to rewrite whatever their live share.
    pub segments: BTreeSet<u64>,
    /// No spare file may be reused before every one is removed (it may hold an earlier copy).
    pub spares_withheld: bool,
}

impl ForcedCompaction {
    /// Nothing left to do: the file is removed rather than written.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty() && !self.spares_withheld
    }

    pub fn encode(&self) -> String {
        let mut text = format!("{FIRST_LINE}\n");
        if self.spares_withheld {
            let _ = writeln!(text, "{SPARES_WITHHELD}");
        }
        for segment_id in &self.segments {
            let _ = writeln!(text, "segment {segment_id}");
        }
        append_crc_line(&mut text);
        text
    }

    /// The state `encode` wrote (zero padding after it is ignored); anything else is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = checked_body(bytes, |_| Ok(()))?;
        let mut lines = body.split_terminator('\n');
        if lines.next() != Some(FIRST_LINE) {
            return Err("not a compaction-forced file (or of a later version)".into());
        }
        let mut state = Self::default();
        let mut lines = lines.peekable();
        if lines.next_if_eq(&SPARES_WITHHELD).is_some() {
            state.spares_withheld = true;
        }
        for line in lines {
            let id = line.strip_prefix("segment ").ok_or_else(|| format!("unexpected line `{line}`"))?;
            // Only the digits `encode` writes: one spelling per state.
            if id.is_empty() || !id.bytes().all(|byte| byte.is_ascii_digit()) || (id.len() > 1 && id.starts_with('0')) {
                return Err(format!("bad segment id `{id}`"));
            }
            let id: u64 = id.parse().map_err(|_| format!("bad segment id `{id}`"))?;
            if state.segments.last().is_some_and(|last| *last >= id) {
                return Err("segment ids out of order".into());
            }
            state.segments.insert(id);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_state_round_trips_through_its_text(
            segments in proptest::collection::btree_set(any::<u64>(), 0..20),
            spares_withheld in any::<bool>(),
            padding in 0usize..600,
        ) {
            let state = ForcedCompaction { segments, spares_withheld };
            let mut bytes = state.encode().into_bytes();
            bytes.resize(bytes.len() + padding, 0);
            prop_assert_eq!(ForcedCompaction::decode(&bytes), Ok(state));
        }

        /// Any bytes: decoded to a state that encodes back to them, or refused.
        #[test]
        fn any_bytes_decode_to_their_own_encoding_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(state) = ForcedCompaction::decode(&bytes) {
                let end = bytes.iter().position(|byte| *byte == 0).unwrap_or(bytes.len());
                let encoded = state.encode();
                prop_assert_eq!(encoded.as_bytes(), &bytes[..end]);
            }
        }
    }

    /// Lines such a file may hold, well-formed or not, for bodies that pass the crc check.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(FIRST_LINE.to_owned()),
            Just(SPARES_WITHHELD.to_owned()),
            any::<u64>().prop_map(|id| format!("segment {id}")),
            (0_u64..4).prop_map(|id| format!("segment {id}")),
            "[a-z0-9 +-]{0,12}",
            Just("segment ".to_owned()),
            Just("segment 01".to_owned()),
        ]
    }

    proptest! {
        /// Bodies that pass the crc check reach the line parser: each is decoded to a state
        /// that encodes back to it, or refused (random bytes almost never get past the crc).
        #[test]
        fn any_body_with_a_valid_crc_decodes_to_its_own_encoding_or_is_refused(
            lines in proptest::collection::vec(line(), 0..8),
        ) {
            let mut text = lines.join("\n");
            if !lines.is_empty() {
                text.push('\n');
            }
            append_crc_line(&mut text);
            if let Ok(state) = ForcedCompaction::decode(text.as_bytes()) {
                prop_assert_eq!(state.encode(), text);
            }
        }
    }

    #[test]
    fn damaged_or_foreign_text_is_refused() {
        let state = ForcedCompaction { segments: [3, 12].into(), spares_withheld: true };
        let text = state.encode();
        assert!(
            text.starts_with("mailvault compaction-forced 1\nspares_withheld\nsegment 3\nsegment 12\ncrc "),
            "{text}"
        );
        let flipped = text.replacen("segment 3", "segment 4", 1);
        assert_eq!(ForcedCompaction::decode(flipped.as_bytes()), Err("its crc does not match".into()));
        let body = "mailvault compaction-forced 1\nsegment 12\nsegment 3\n";
        let disordered = format!("{body}crc {:08x}\n", crc32c::crc32c(body.as_bytes()));
        assert_eq!(ForcedCompaction::decode(disordered.as_bytes()), Err("segment ids out of order".into()));
        let body = "mailvault scrub-state 1\n";
        let foreign = format!("{body}crc {:08x}\n", crc32c::crc32c(body.as_bytes()));
        assert!(ForcedCompaction::decode(foreign.as_bytes()).is_err());
        assert!(ForcedCompaction::decode(b"").is_err());
        assert!(ForcedCompaction::default().is_empty() && !state.is_empty());
    }
}
