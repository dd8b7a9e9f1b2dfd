//! The background scrub's progress, kept in a small text file in the shard's directory
//! (`scrub-state`, read and replaced by `shard/scrub_state.rs`), so that a pass resumes where
//! it stopped after a restart (a server restarted more often than a pass takes would otherwise
//! never finish one), and damage it found stays reported.
//!
//! ```text
//! mailvault scrub-state 1
//! pass_started 1764979200000        (or -: no pass under way)
//! next_segment 12                   (segments below it were checked in this pass)
//! pass_through 40                   (the newest segment sealed when the pass started)
//! last_pass 1764374400000 1764460800000   (started, finished; or -)
//! damaged 7 segment 7 is corrupt at offset 1048576: …   (one line per damaged segment)
//! crc 1a2b3c4d                      (CRC32C of every byte before this line)
//! ```
//! zero padding to a whole block. Advisory only: nothing but the scrub reads it, and a missing
//! or damaged file means the next pass starts at the first segment (with a warning). It holds
//! no mail data: segment ids, offsets, record and account ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::checked_text::{append_crc_line, checked_body};
use crate::api::ScrubPass;

const FIRST_LINE: &str = "mailvault scrub-state 1";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubState {
    /// When the pass under way started (engine clock), if one is.
    pub pass_started_unix_ms: Option<i64>,
    /// The next segment the pass under way checks: every sealed segment below it is done.
    pub next_segment: u64,
    /// The newest segment that was sealed when the pass under way started: it checks none
    /// after it, so that a shard sealing segments faster than the scrub reads still finishes
    /// its passes (the next pass takes them).
    pub pass_through: u64,
    pub last_pass: Option<ScrubPass>,
    /// Segments whose last check found damage, with what is wrong.
    pub damaged: BTreeMap<u64, String>,
}

impl ScrubState {
    pub fn encode(&self) -> String {
        let optional = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |value| value.to_string());
        let mut text = format!("{FIRST_LINE}\n");
        let _ = writeln!(text, "pass_started {}", optional(self.pass_started_unix_ms));
        let _ = writeln!(text, "next_segment {}", self.next_segment);
        let _ = writeln!(text, "pass_through {}", self.pass_through);
        match self.last_pass {
            Some(pass) => _ = writeln!(text, "last_pass {} {}", pass.started_unix_ms, pass.finished_unix_ms),
            None => text.push_str("last_pass -\n"),
        }
        for (segment_id, reason) in &self.damaged {
            // One line each: a reason's own line breaks would end it early.
            let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            let _ = writeln!(text, "damaged {segment_id} {reason}");
        }
        append_crc_line(&mut text);
        text
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let body = checked_body(bytes, refuse_control_characters)?;
        let mut lines = body.lines();
        if lines.next() != Some(FIRST_LINE) {
            return Err("not a scrub state (or of a later version)".into());
        }
        let mut state = Self::default();
        for line in lines {
            let (key, value) = line.split_once(' ').ok_or_else(|| format!("bad line {line:?}"))?;
            match key {
                "pass_started" => state.pass_started_unix_ms = optional_number(value)?,
                "next_segment" => state.next_segment = number(value)?,
                "pass_through" => state.pass_through = number(value)?,
                "last_pass" => state.last_pass = last_pass(value)?,
                "damaged" => {
                    let (segment_id, reason) = value.split_once(' ').ok_or("a damaged line without a reason")?;
                    state.damaged.insert(number(segment_id)?, reason.to_owned());
                }
                _ => return Err(format!("unknown line {line:?}")),
            }
        }
        Ok(state)
    }
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| format!("{text:?} is not a number"))
}

fn optional_number(text: &str) -> Result<Option<i64>, String> {
    if text == "-" { Ok(None) } else { number(text).map(Some) }
}

fn last_pass(text: &str) -> Result<Option<ScrubPass>, String> {
    if text == "-" {
        return Ok(None);
    }
    let (started, finished) = text.split_once(' ').ok_or("last_pass needs two times")?;
    Ok(Some(ScrubPass { started_unix_ms: number(started)?, finished_unix_ms: number(finished)? }))
}

// `encode` writes no control character but newlines (it blanks them in reasons): a state
// holding one would not re-encode to itself.
fn refuse_control_characters(c: char) -> Result<(), String> {
    if c.is_control() && c != '\n' { Err("a control character".into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{BLOCK_BYTES, align_up};

    fn sample() -> ScrubState {
        ScrubState {
            pass_started_unix_ms: Some(1_764_979_200_000),
            next_segment: 12,
            pass_through: 40,
            last_pass: Some(ScrubPass { started_unix_ms: 1_764_374_400_000, finished_unix_ms: 1_764_460_800_000 }),
            damaged: BTreeMap::from([
                (7, "segment 7 is corrupt at offset 1048576: bad checksum".to_owned()),
                (9, "at offset 4096: record 3 of account 1 fails its AEAD tag\nsecond line".to_owned()),
            ]),
        }
    }

    #[test]
    fn a_state_round_trips_through_its_text_and_block_padding() {
        let state = sample();
        let mut bytes = state.encode().into_bytes();
        bytes.resize(align_up(bytes.len(), BLOCK_BYTES), 0);
        let mut expected = state.clone();
        expected.damaged.insert(9, "at offset 4096: record 3 of account 1 fails its AEAD tag second line".to_owned());
        assert_eq!(ScrubState::decode(&bytes), Ok(expected));
        assert_eq!(ScrubState::decode(ScrubState::default().encode().as_bytes()), Ok(ScrubState::default()));
    }

    /// Regression (fuzz, session 18): a reason with a control character, under a valid CRC,
    /// decoded, and re-encoded to another state (encode blanks control characters).
    #[test]
    fn a_state_with_a_control_character_is_refused() {
        let body = "mailvault scrub-state 1\npass_started -\nnext_segment 0\npass_through 0\nlast_pass -\ndamaged 7 bad\u{2}byte\n";
        let text = format!("{body}crc {:08x}\n", crc32c::crc32c(body.as_bytes()));
        assert_eq!(ScrubState::decode(text.as_bytes()), Err("a control character".to_owned()));
        let clean = body.replace('\u{2}', " ");
        let text = format!("{clean}crc {:08x}\n", crc32c::crc32c(clean.as_bytes()));
        assert!(ScrubState::decode(text.as_bytes()).is_ok());
    }

    #[test]
    fn any_changed_byte_or_cut_is_refused() {
        let text = sample().encode().into_bytes();
        for index in 0..text.len() {
            let mut changed = text.clone();
            changed[index] ^= 0x01;
            assert!(ScrubState::decode(&changed).is_err(), "byte {index} changed");
        }
        for length in 0..text.len() - 1 {
            assert!(ScrubState::decode(&text[..length]).is_err(), "cut at {length}");
        }
    }
}
