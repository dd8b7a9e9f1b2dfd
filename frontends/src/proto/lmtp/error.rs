//! Why an LMTP command line was refused, and the reply each reason calls for.

use super::reply::{EnhancedStatus, Reply};

/// A refused LMTP command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The line is longer than `line_bytes_max`.
    #[error("line too long")]
    LineTooLong,
    /// The verb is not one we implement (this includes HELO and EHLO, which LMTP forbids).
    #[error("command not recognized: {0}")]
    UnknownCommand(String),
    /// The arguments do not follow the command's syntax.
    #[error("syntax error in {command} arguments")]
    Syntax {
        /// The verb.
        command: &'static str,
    },
    /// MAIL FROM with a malformed path.
    #[error("bad sender address syntax")]
    InvalidSender,
    /// RCPT TO with a malformed path.
    #[error("bad recipient address syntax")]
    InvalidRecipient,
    /// A MAIL or RCPT parameter we do not implement.
    #[error("parameter not recognized: {0}")]
    UnrecognizedParameter(String),
    /// A known parameter with a bad value.
    #[error("invalid value for parameter {0}")]
    InvalidParameterValue(&'static str),
}

impl ParseError {
    /// The reply the session sends for this error.
    pub fn reply(&self) -> Reply {
        let (code, subject, detail) = match self {
            Self::LineTooLong => (500, 5, 2),
            Self::UnknownCommand(_) => (500, 5, 1),
            Self::Syntax { .. } | Self::InvalidParameterValue(_) => (501, 5, 4),
            Self::InvalidSender => (501, 1, 7),
            Self::InvalidRecipient => (501, 1, 3),
            Self::UnrecognizedParameter(_) => (555, 5, 4),
        };
        Reply::new(code, Some(EnhancedStatus::new(5, subject, detail)), self.to_string())
    }
}
