//! The result shapes shared by every codec: a complete value, a request for more bytes, or a
//! rejected command together with how much input it occupied.

/// What a parser made of the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Parsed<T> {
    /// One whole item was parsed from the front of the input.
    Complete {
        /// The parsed item.
        value: T,
        /// How many input bytes it occupied; the session drops them and parses the rest
        /// (pipelined commands may follow in the same buffer).
        consumed_bytes: usize,
    },
    /// The input is a prefix of an item: read more bytes, then call the parser again with the
    /// whole buffer (parsers keep no state between calls).
    NeedsMoreData,
}

impl<T> Parsed<T> {
    /// The value and its length, if complete.
    pub fn complete(self) -> Option<(T, usize)> {
        match self {
            Self::Complete { value, consumed_bytes } => Some((value, consumed_bytes)),
            Self::NeedsMoreData => None,
        }
    }
}

/// A command the codec refused, with what the session must drop to resynchronise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Rejected<E> {
    /// Why the command was refused; each protocol's error maps to its reply.
    pub error: E,
    /// How many input bytes belonged to the refused command: drop them before parsing again.
    pub consumed_bytes: usize,
    /// Whether those bytes ended with the command's CRLF. It is false only when the line was
    /// too long to wait for: keep dropping input with [`discard_line`](super::discard_line)
    /// until it reports [`LineDiscard::Finished`](super::LineDiscard::Finished).
    pub line_finished: bool,
}
