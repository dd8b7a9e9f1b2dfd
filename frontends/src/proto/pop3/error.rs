//! Why a POP3 command line was refused.

use super::reply::Reply;
use crate::proto::sasl::SaslError;

/// A refused POP3 command. Every one is answered with `-ERR` and the message, and the session
/// stays in its state (RFC 1939 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line is longer than `line_bytes_max`.
    #[error("line too long")]
    LineTooLong,
    /// The keyword is not one we implement.
    #[error("unknown command: {0}")]
    UnknownCommand(String),
    /// Missing, extra or malformed arguments.
    #[error("syntax error in {command} arguments")]
    Syntax {
        /// The keyword.
        command: &'static str,
    },
    /// The AUTH initial response could not be decoded.
    #[error("{0}")]
    Sasl(#[from] SaslError),
}

impl ParseError {
    /// The `-ERR` reply for this error.
    pub fn reply(&self) -> Reply {
        Reply::error(self.to_string())
    }
}
