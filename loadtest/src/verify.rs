//! Matching retrieved messages to what was delivered: find the id header, regenerate the
//! original, compare byte for byte from the id line on (a server may add trace headers such as
//! Return-Path, Delivered-To or Received above it, nothing else).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::accounts::Accounts;
use crate::corpus::{Corpus, ID_HEADER};

/// Mismatch descriptions kept for the report.
const EXAMPLES_MAX: usize = 10;

/// What one retrieved message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Message `index`, identical; `bytes` as sent.
    Match { index: u64, bytes: usize },
    /// Message `index` seen before in this phase.
    Duplicate { index: u64 },
    /// Message `index`, in the wrong account's mailbox.
    Misplaced { index: u64 },
    /// Message `index` with different bytes.
    Mismatch { index: u64, detail: String },
    /// An id of another run (another tag), or an index past this run's messages.
    Foreign,
    /// No id header at all.
    Unidentified,
}

impl Check {
    /// Whether this counts as an error of the server.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Duplicate { .. } | Self::Misplaced { .. } | Self::Mismatch { .. })
    }
}

/// The verdict on one retrieval phase.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Verification {
    /// Delivered messages found identical.
    pub matched: u64,
    /// Delivered messages not found.
    pub missing: u64,
    pub mismatched: u64,
    pub duplicates: u64,
    pub misplaced: u64,
    /// Messages of other runs in the same mailboxes (not errors).
    pub foreign: u64,
    pub unidentified: u64,
    /// Found although their delivery had failed (a reply lost after the message was stored).
    pub found_unacknowledged: u64,
    pub examples: Vec<String>,
}

impl Verification {
    /// Missing, altered, duplicated and misplaced messages.
    pub fn errors(&self) -> u64 {
        self.missing + self.mismatched + self.duplicates + self.misplaced
    }
}

/// Checks messages of one phase, from any number of threads.
#[derive(Debug)]
pub struct Verifier<'a> {
    corpus: &'a Corpus,
    accounts: &'a Accounts,
    /// Whether each message was acknowledged at delivery.
    acknowledged: &'a [bool],
    seen: Vec<AtomicU32>,
    tally: Mutex<Verification>,
}

impl<'a> Verifier<'a> {
    pub fn new(corpus: &'a Corpus, accounts: &'a Accounts, acknowledged: &'a [bool]) -> Self {
        let seen = acknowledged.iter().map(|_| AtomicU32::new(0)).collect();
        Self { corpus, accounts, acknowledged, seen, tally: Mutex::new(Verification::default()) }
    }

    /// Checks `received`, found in account `owner`'s mailbox, and counts the outcome.
    pub fn check(&self, owner: u32, received: &[u8]) -> Check {
        let check = self.classify(owner, received);
        let mut tally = self.tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &check {
            Check::Match { index, .. } => {
                tally.matched += 1;
                let acknowledged = usize::try_from(*index).ok().and_then(|index| self.acknowledged.get(index));
                if acknowledged == Some(&false) {
                    tally.found_unacknowledged += 1;
                }
            }
            Check::Duplicate { index } => {
                tally.duplicates += 1;
                push_example(&mut tally.examples, format!("message {index}: retrieved twice"));
            }
            Check::Misplaced { index } => {
                tally.misplaced += 1;
                let user = self.accounts.user(owner);
                push_example(&mut tally.examples, format!("message {index}: found in {user}'s mailbox"));
            }
            Check::Mismatch { index, detail } => {
                tally.mismatched += 1;
                push_example(&mut tally.examples, format!("message {index}: {detail}"));
            }
            Check::Foreign => tally.foreign += 1,
            Check::Unidentified => tally.unidentified += 1,
        }
        check
    }

    fn classify(&self, owner: u32, received: &[u8]) -> Check {
        let Some((offset, value)) = find_id(received) else { return Check::Unidentified };
        let Some(index) = value
            .strip_prefix(self.corpus.tag())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|index| index.parse::<u64>().ok())
        else {
            return Check::Foreign;
        };
        let Some(seen) = usize::try_from(index).ok().and_then(|slot| self.seen.get(slot)) else {
            return Check::Foreign;
        };
        if self.accounts.owner(index) != owner {
            return Check::Misplaced { index };
        }
        if seen.fetch_add(1, Ordering::Relaxed) > 0 {
            return Check::Duplicate { index };
        }
        let expected = self.corpus.message(index, &self.accounts.user(owner));
        let received = &received[offset..];
        if received == expected.as_slice() {
            return Check::Match { index, bytes: expected.len() };
        }
        let first_difference =
            received.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(received.len().min(expected.len()));
        Check::Mismatch {
            index,
            detail: format!(
                "{} bytes received (after {offset} bytes of added headers), {} sent, first difference at byte {first_difference}",
                received.len(),
                expected.len()
            ),
        }
    }

    /// The phase's verdict: the tally plus every acknowledged message never seen.
    pub fn finish(self) -> Verification {
        let mut tally = self.tally.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut missing_by_account: BTreeMap<u32, u64> = BTreeMap::new();
        for (index, seen) in self.seen.iter().enumerate() {
            if self.acknowledged[index] && seen.load(Ordering::Relaxed) == 0 {
                tally.missing += 1;
                *missing_by_account.entry(self.accounts.owner(index as u64)).or_default() += 1;
            }
        }
        for (owner, count) in missing_by_account {
            push_example(&mut tally.examples, format!("{count} messages missing from {}", self.accounts.user(owner)));
        }
        tally
    }
}

fn push_example(examples: &mut Vec<String>, example: String) {
    if examples.len() < EXAMPLES_MAX {
        examples.push(example);
    }
}

/// The offset of the id header line within the header section, and its value.
pub fn find_id(message: &[u8]) -> Option<(usize, &str)> {
    let mut offset = 0;
    for line in message.split_inclusive(|byte| *byte == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            return None; // end of the header section
        }
        if line.len() > ID_HEADER.len() + 1
            && line[..ID_HEADER.len()].eq_ignore_ascii_case(ID_HEADER.as_bytes())
            && line[ID_HEADER.len()] == b':'
        {
            let value = std::str::from_utf8(&line[ID_HEADER.len() + 1..]).ok()?;
            return Some((offset, value.trim()));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_after_added_headers_and_flags_every_error() {
        let corpus = Corpus::new(3, "run1", 50_000);
        let accounts = Accounts::new("u{i}", "p", 2);
        let acknowledged = vec![true; 4];
        let verifier = Verifier::new(&corpus, &accounts, &acknowledged);
        let mut received = b"Return-Path: <>\r\nDelivered-To: u0001\r\n".to_vec();
        received.extend(corpus.message(0, "u0001"));
        assert!(matches!(verifier.check(0, &received), Check::Match { index: 0, .. }));
        assert_eq!(verifier.check(0, &received), Check::Duplicate { index: 0 });
        assert_eq!(verifier.check(0, &corpus.message(1, "u0002")), Check::Misplaced { index: 1 });
        let mut altered = corpus.message(2, "u0001");
        let last = altered.len() - 3;
        altered[last] ^= 1;
        assert!(matches!(verifier.check(0, &altered), Check::Mismatch { index: 2, .. }));
        assert_eq!(verifier.check(0, &Corpus::new(3, "run2", 50_000).message(0, "u0001")), Check::Foreign);
        assert_eq!(verifier.check(0, b"Subject: x\r\n\r\nX-Loadtest-Id: run1.0\r\n"), Check::Unidentified);
        let verdict = verifier.finish();
        assert_eq!((verdict.matched, verdict.duplicates, verdict.misplaced, verdict.mismatched), (1, 1, 1, 1));
        assert_eq!((verdict.foreign, verdict.unidentified, verdict.missing), (1, 1, 2));
        assert_eq!(verdict.errors(), 5);
    }
}
