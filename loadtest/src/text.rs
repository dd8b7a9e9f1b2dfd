//! Filler for message bodies: wrapped prose (with the lines that test dot-stuffing and mbox
//! quoting), HTML, and base64 of random bytes; every line CRLF-terminated and short.

use crate::rng::SplitMix64;

/// Words for the prose, a few of them non-ASCII so 8-bit bodies really carry 8-bit bytes.
const WORDS: [&str; 48] = [
    "the",
    "mail",
    "storage",
    "engine",
    "keeps",
    "every",
    "message",
    "safe",
    "under",
    "keys",
    "that",
    "only",
    "hardware",
    "module",
    "can",
    "unwrap",
    "meeting",
    "tomorrow",
    "invoice",
    "attached",
    "please",
    "review",
    "quarterly",
    "report",
    "thanks",
    "regards",
    "schedule",
    "project",
    "update",
    "naïve",
    "café",
    "Grüße",
    "déjà",
    "vu",
    "señor",
    "über",
    "and",
    "of",
    "to",
    "in",
    "for",
    "with",
    "on",
    "at",
    "by",
    "from",
    "about",
    "we",
];

/// Lines that must survive transport unchanged: a lone dot ends LMTP DATA and POP3 listings
/// unless stuffed; "From " is quoted by mbox writers.
const SPECIAL_LINES: [&str; 4] = [".", "..", ".leading dot", "From the desk of the load generator"];

/// Longest prose line before wrapping, CRLF excluded (RFC 5322 recommends 78).
const LINE_WIDTH: usize = 72;
/// Base64 line length (RFC 2045).
const BASE64_LINE: usize = 76;

/// Appends prose to `out` until it grew by about `budget` bytes (whole lines only, so it may
/// stop up to one line short).
pub fn prose(rng: &mut SplitMix64, out: &mut Vec<u8>, budget: usize) {
    let end = out.len() + budget;
    let mut line = String::with_capacity(LINE_WIDTH + 16);
    while out.len() + LINE_WIDTH + 2 <= end {
        line.clear();
        if rng.chance(0.02) {
            line.push_str(SPECIAL_LINES[rng.index(SPECIAL_LINES.len())]);
        } else if rng.chance(0.08) {
            // Paragraph break.
        } else {
            while line.len() < LINE_WIDTH - 12 {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(WORDS[rng.index(WORDS.len())]);
            }
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends an HTML rendering of about `budget` bytes of prose.
pub fn html(rng: &mut SplitMix64, out: &mut Vec<u8>, budget: usize) {
    out.extend_from_slice(b"<!DOCTYPE html>\r\n<html><body>\r\n");
    let end = out.len() + budget;
    while out.len() + LINE_WIDTH * 4 < end {
        out.extend_from_slice(b"<p>\r\n");
        let paragraph = (LINE_WIDTH * (2 + rng.index(5))).min(end - out.len());
        prose(rng, out, paragraph);
        out.extend_from_slice(b"</p>\r\n");
    }
    out.extend_from_slice(b"</body></html>\r\n");
}

/// Appends base64 (76-column lines) of random bytes; about `budget` bytes of encoded text.
pub fn base64_random(rng: &mut SplitMix64, out: &mut Vec<u8>, budget: usize) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let lines = budget.div_ceil(BASE64_LINE + 2).max(1);
    for _ in 0..lines {
        // 57 random bytes encode to exactly 76 characters.
        for _ in 0..19 {
            let bits = rng.next_u64();
            for shift in [18u32, 12, 6, 0] {
                out.push(ALPHABET[((bits >> shift) & 63) as usize]);
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_lines(bytes: &[u8]) {
        assert!(bytes.ends_with(b"\r\n"));
        for line in bytes.split(|byte| *byte == b'\n') {
            assert!(line.len() <= 998);
            assert!(!line[..line.len().saturating_sub(1)].contains(&b'\r'), "bare CR");
            if !line.is_empty() {
                assert_eq!(line.last(), Some(&b'\r'), "bare LF");
            }
        }
    }

    #[test]
    fn every_filler_is_crlf_and_near_its_budget() {
        let mut rng = SplitMix64::new(3, 3);
        for budget in [200, 5_000, 100_000] {
            let mut out = Vec::new();
            prose(&mut rng, &mut out, budget);
            assert!(out.len() <= budget && out.len() + 80 > budget, "{} vs {budget}", out.len());
            assert_lines(&out);
            let mut out = Vec::new();
            html(&mut rng, &mut out, budget);
            assert_lines(&out);
            let mut out = Vec::new();
            base64_random(&mut rng, &mut out, budget);
            assert!(out.len() + 200 > budget);
            assert_lines(&out);
        }
    }
}
