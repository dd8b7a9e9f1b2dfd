//! The messages of a run, each a pure function of (seed, tag, index, recipient): delivery
//! generates them, verification regenerates them, nothing is kept in memory in between.
//!
//! Every message starts with `X-Loadtest-Id: <tag>.<index>`, so a retrieved copy can be
//! matched to its original and compared from that line on (servers add trace headers above it).

use std::fmt::Write as _;

use crate::rng::SplitMix64;
use crate::{sizes, text};

/// The header that names a message; always the first line of what we send.
pub const ID_HEADER: &str = "X-Loadtest-Id";

/// What a message looks like, chosen by size like real mail: small ones are mostly plain text,
/// large ones mostly carry attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// One text/plain part, 8-bit.
    Plain,
    /// multipart/alternative: text/plain and text/html.
    Alternative,
    /// multipart/mixed: a text part and base64 attachments.
    Attachments,
}

/// The generator for one run.
#[derive(Debug, Clone)]
pub struct Corpus {
    seed: u64,
    tag: String,
    size_max: usize,
}

impl Corpus {
    /// `tag` (letters and digits) tells this run's messages from any others in the same
    /// mailboxes; `size_max` caps the size mix.
    pub fn new(seed: u64, tag: &str, size_max: usize) -> Self {
        Self { seed, tag: tag.to_owned(), size_max }
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn size_max(&self) -> usize {
        self.size_max
    }

    /// The target size and shape of message `index` (the bytes come within a line of it).
    pub fn plan(&self, index: u64) -> (usize, Shape) {
        let mut rng = SplitMix64::new(self.seed, index);
        let size = sizes::sample_size(&mut rng, self.size_max);
        let roll = rng.next_f64();
        let shape = match size {
            0..4_096 if roll < 0.7 => Shape::Plain,
            0..4_096 => Shape::Alternative,
            4_096..51_200 if roll < 0.4 => Shape::Plain,
            4_096..51_200 if roll < 0.9 => Shape::Alternative,
            4_096..51_200 => Shape::Attachments,
            _ if roll < 0.15 => Shape::Alternative,
            _ => Shape::Attachments,
        };
        (size, shape)
    }

    /// The full message `index` addressed to `recipient`, CRLF line endings.
    pub fn message(&self, index: u64, recipient: &str) -> Vec<u8> {
        let (size, shape) = self.plan(index);
        // A stream of its own, so the body does not depend on how `plan` used its generator.
        let mut rng = SplitMix64::new(self.seed ^ 0x6D65_7373_6167_6573, index);
        let mut out = Vec::with_capacity(size + 512);
        self.headers(&mut out, index, recipient, shape);
        let boundary = format!("=_lt_{}_{index}", self.tag);
        let body_budget = size.saturating_sub(out.len());
        match shape {
            Shape::Plain => {
                header(&mut out, "Content-Type", "text/plain; charset=utf-8");
                header(&mut out, "Content-Transfer-Encoding", "8bit");
                out.extend_from_slice(b"\r\n");
                text::prose(&mut rng, &mut out, body_budget.saturating_sub(100));
            }
            Shape::Alternative => {
                header(&mut out, "Content-Type", &format!("multipart/alternative; boundary=\"{boundary}\""));
                out.extend_from_slice(b"\r\n");
                alternative(&mut rng, &mut out, &boundary, body_budget.saturating_sub(400));
            }
            Shape::Attachments => {
                header(&mut out, "Content-Type", &format!("multipart/mixed; boundary=\"{boundary}\""));
                out.extend_from_slice(b"\r\nThis is a multi-part message in MIME format.\r\n");
                attachments(&mut rng, &mut out, &boundary, body_budget.saturating_sub(600));
            }
        }
        out
    }

    /// The id header's value for message `index`.
    pub fn id(&self, index: u64) -> String {
        format!("{}.{index}", self.tag)
    }

    fn headers(&self, out: &mut Vec<u8>, index: u64, recipient: &str, shape: Shape) {
        header(out, ID_HEADER, &self.id(index));
        let sender = index % 97;
        header(out, "From", &format!("Sender {sender} <sender{sender}@loadtest.example>"));
        header(out, "To", &format!("<{recipient}>"));
        let subject = match shape {
            Shape::Plain => "Notes",
            Shape::Alternative => "Newsletter",
            Shape::Attachments => "Documents attached",
        };
        header(out, "Subject", &format!("{subject} #{index} (Grüße)"));
        header(out, "Date", &date(index));
        header(out, "Message-ID", &format!("<{}.{index}@loadtest.example>", self.tag));
        header(out, "MIME-Version", "1.0");
    }
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A valid, deterministic RFC 5322 date (day of week omitted, which the grammar allows).
fn date(index: u64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = index * 37;
    let day = 1 + (seconds / 86_400) % 28;
    let month = MONTHS[((seconds / (86_400 * 28)) % 12) as usize];
    let mut text = format!("{day} {month} 2024 ");
    let _ = write!(text, "{:02}:{:02}:{:02} +0000", (seconds / 3600) % 24, (seconds / 60) % 60, seconds % 60);
    text
}

fn part_start(out: &mut Vec<u8>, boundary: &str, content_type: &str, encoding: &str) {
    out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    header(out, "Content-Type", content_type);
    header(out, "Content-Transfer-Encoding", encoding);
}

fn parts_end(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
}

fn alternative(rng: &mut SplitMix64, out: &mut Vec<u8>, boundary: &str, budget: usize) {
    part_start(out, boundary, "text/plain; charset=utf-8", "8bit");
    out.extend_from_slice(b"\r\n");
    text::prose(rng, out, budget * 2 / 5);
    part_start(out, boundary, "text/html; charset=utf-8", "8bit");
    out.extend_from_slice(b"\r\n");
    text::html(rng, out, budget * 3 / 5);
    parts_end(out, boundary);
}

fn attachments(rng: &mut SplitMix64, out: &mut Vec<u8>, boundary: &str, budget: usize) {
    const KINDS: [(&str, &str); 4] = [
        ("application/pdf", "pdf"),
        ("image/jpeg", "jpg"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
        ("application/octet-stream", "bin"),
    ];
    let text_budget = (budget / 20).clamp(300, 8_000).min(budget);
    part_start(out, boundary, "text/plain; charset=utf-8", "8bit");
    out.extend_from_slice(b"\r\n");
    text::prose(rng, out, text_budget);
    let count = 1 + rng.index(3);
    let share = budget.saturating_sub(text_budget) / count;
    for number in 0..count {
        let (content_type, extension) = KINDS[rng.index(KINDS.len())];
        let name = format!("document-{number}.{extension}");
        part_start(out, boundary, &format!("{content_type}; name=\"{name}\""), "base64");
        header(out, "Content-Disposition", &format!("attachment; filename=\"{name}\""));
        out.extend_from_slice(b"\r\n");
        text::base64_random(rng, out, share.saturating_sub(200));
    }
    parts_end(out, boundary);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_deterministic_and_near_their_planned_size() {
        let corpus = Corpus::new(1, "0123456789abcdef", sizes::SIZE_MAX_BYTES);
        for index in 0..300 {
            let message = corpus.message(index, "user0001@example.org");
            assert_eq!(message, corpus.message(index, "user0001@example.org"));
            let (size, _) = corpus.plan(index);
            let slack = 600 + size / 50;
            assert!(message.len().abs_diff(size) < slack, "message {index}: {} vs {size}", message.len());
            assert!(message.starts_with(format!("{ID_HEADER}: 0123456789abcdef.{index}\r\n").as_bytes()));
            assert!(message.ends_with(b"\r\n"));
            assert!(message.split(|byte| *byte == b'\n').all(|line| line.len() <= 998));
        }
    }

    #[test]
    fn every_shape_occurs() {
        let corpus = Corpus::new(9, "t", sizes::SIZE_MAX_BYTES);
        let shapes: Vec<Shape> = (0..500).map(|index| corpus.plan(index).1).collect();
        for shape in [Shape::Plain, Shape::Alternative, Shape::Attachments] {
            assert!(shapes.contains(&shape), "{shape:?} missing");
        }
    }

    #[test]
    fn the_size_cap_holds() {
        let corpus = Corpus::new(5, "t", 200 * 1024);
        assert!((0..2_000).all(|index| corpus.message(index, "a@b").len() <= 200 * 1024 + 1_000));
    }
}
