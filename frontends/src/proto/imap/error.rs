//! Why an IMAP command was refused, and the tagged (or untagged) reply for it.

use super::command::Tag;
use crate::proto::sasl::SaslError;

/// A refused IMAP command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line (between literals) is longer than `line_bytes_max`.
    #[error("line too long")]
    LineTooLong,
    /// A literal is larger than `literal_bytes_max` (or `message_bytes_max` for APPEND). The
    /// session replies without reading it; a non-synchronizing literal is already on its way,
    /// so the session should then close the connection (RFC 7888 §4).
    #[error("literal of {size} bytes is too large")]
    LiteralTooLarge {
        /// The announced size.
        size: u64,
        /// Whether it was `{n+}`.
        non_synchronizing: bool,
    },
    /// The line does not start with a valid tag.
    #[error("missing or invalid tag")]
    InvalidTag,
    /// The command name is not one we implement.
    #[error("unknown command {0}")]
    UnknownCommand(String),
    /// The arguments do not follow the grammar; the text says what was expected.
    #[error("syntax error: expected {0}")]
    Syntax(&'static str),
    /// A mailbox name that is not valid modified UTF-7.
    #[error("mailbox name is not valid modified UTF-7")]
    InvalidMailboxName,
    /// A string that must be text is not UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A date or date-time that does not exist or is malformed.
    #[error("invalid date")]
    InvalidDate,
    /// A malformed sequence set.
    #[error("invalid sequence set")]
    InvalidSequenceSet,
    /// Search keys nested deeper than `nesting_depth_max`.
    #[error("search criteria nested too deeply")]
    NestingTooDeep,
    /// SEARCH CHARSET other than UTF-8 or US-ASCII.
    #[error("unsupported charset {0}")]
    UnsupportedCharset(String),
    /// A bad AUTHENTICATE initial response.
    #[error("{0}")]
    Sasl(#[from] SaslError),
    /// During IDLE, anything other than DONE.
    #[error("expected DONE")]
    ExpectedDone,
}

/// A refused command with its tag, when the tag could be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct TaggedError {
    /// The command's tag; `None` when the line had no valid tag (reply untagged).
    pub tag: Option<Tag>,
    /// Why the command was refused.
    pub error: ParseError,
}

impl TaggedError {
    /// Appends the reply: `tag NO [BADCHARSET (UTF-8 US-ASCII)] ...` for a charset we do not
    /// search in (RFC 3501 §6.4.4), `tag BAD ...` otherwise, `* BAD ...` without a tag.
    pub fn write_reply(&self, out: &mut Vec<u8>) {
        match &self.tag {
            Some(tag) => out.extend_from_slice(tag.as_str().as_bytes()),
            None => out.push(b'*'),
        }
        if matches!(self.error, ParseError::UnsupportedCharset(_)) {
            out.extend_from_slice(b" NO [BADCHARSET (UTF-8 US-ASCII)] ");
        } else {
            out.extend_from_slice(b" BAD ");
        }
        out.extend(self.error.to_string().bytes().map(|byte| if byte.is_ascii_control() { b' ' } else { byte }));
        out.extend_from_slice(b"\r\n");
    }
}
