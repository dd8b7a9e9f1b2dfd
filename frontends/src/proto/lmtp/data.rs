//! The LMTP DATA body: dot-unstuffed, ended by CRLF.CRLF, fed in chunks as they arrive, and
//! capped at `message_bytes_max`.

use super::reply::Reply;
use crate::proto::Limits;
use crate::proto::dot_stuffing::{Unstuffed, Unstuffer};

/// Progress of a DATA body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum DataStatus {
    /// All input was consumed; the terminator has not come yet. Read more and call again with
    /// the new bytes only (the decoder keeps its place between calls).
    NeedsMoreData,
    /// The body is complete. Input after `consumed_bytes` is the next command (pipelining).
    Complete {
        /// Input bytes up to and including the terminator.
        consumed_bytes: usize,
    },
}

/// A body that could not be accepted; reported once its terminator has been read, so that the
/// session can reply and carry on with the next command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The body grew past `message_bytes_max`.
    #[error("message of {body_bytes} bytes exceeds the limit of {body_bytes_max} bytes")]
    TooLarge {
        /// Input bytes up to and including the terminator.
        consumed_bytes: usize,
        /// The size of the whole unstuffed body.
        body_bytes: u64,
        /// The limit it exceeded.
        body_bytes_max: usize,
    },
}

impl DataError {
    /// The reply for every recipient of the transaction.
    pub fn reply(&self) -> Reply {
        match self {
            Self::TooLarge { .. } => Reply::message_too_large(),
        }
    }
}

/// Decodes one DATA body. Create one per transaction, after replying 354.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    unstuffer: Unstuffer,
    body_bytes_max: usize,
}

impl DataDecoder {
    /// A decoder enforcing `limits.message_bytes_max`.
    pub fn new(limits: &Limits) -> Self {
        Self { unstuffer: Unstuffer::new(limits.message_bytes_max), body_bytes_max: limits.message_bytes_max }
    }

    /// Whether the body has already outgrown the limit (the session may stop buffering it).
    pub fn exceeded(&self) -> bool {
        self.unstuffer.exceeded()
    }

    /// Decodes the next chunk, appending the unstuffed body to `body`. The message in `body`
    /// ends with the CRLF that precedes the terminating dot.
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<DataStatus, DataError> {
        match self.unstuffer.decode(input, body) {
            Unstuffed::NeedsMoreData => Ok(DataStatus::NeedsMoreData),
            Unstuffed::Finished { consumed_bytes } if self.unstuffer.exceeded() => Err(DataError::TooLarge {
                consumed_bytes,
                body_bytes: self.unstuffer.body_bytes(),
                body_bytes_max: self.body_bytes_max,
            }),
            Unstuffed::Finished { consumed_bytes } => Ok(DataStatus::Complete { consumed_bytes }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2033_example_body() {
        let mut decoder = DataDecoder::new(&Limits::lmtp());
        let mut body = Vec::new();
        let input = b"Blah blah blah...\r\n...etc. etc. etc.\r\n.\r\nQUIT\r\n";
        assert_eq!(decoder.decode(input, &mut body), Ok(DataStatus::Complete { consumed_bytes: 41 }));
        assert_eq!(body, b"Blah blah blah...\r\n..etc. etc. etc.\r\n");
    }

    #[test]
    fn oversized_body_is_consumed_to_the_terminator() {
        let limits = Limits { message_bytes_max: 10, ..Limits::lmtp() };
        let mut decoder = DataDecoder::new(&limits);
        let mut body = Vec::new();
        assert_eq!(decoder.decode(b"0123456789abcdef\r\n", &mut body), Ok(DataStatus::NeedsMoreData));
        assert!(decoder.exceeded());
        let error = decoder.decode(b".\r\nRSET\r\n", &mut body).unwrap_err();
        assert_eq!(error, DataError::TooLarge { consumed_bytes: 3, body_bytes: 18, body_bytes_max: 10 });
        assert_eq!(error.reply().code, 552);
    }
}
