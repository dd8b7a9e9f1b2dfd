//! One client connection as the IMAP session sees it: buffered input parsed into commands
//! (literal continuations, over-long lines; idle timeout and remote logout come from the
//! shared context), buffered output, and the count of commands refused in a row.

use std::io;

use mailvault_engine::Engine;

use super::completion::Completion;
use super::options::ImapOptions;
use crate::proto::imap::{self, Command, ParseError, Parsed, ResponseCode, Status, Tag, TaggedError};
use crate::proto::sasl::{self, SaslError, SaslResponse};
use crate::proto::{self, Limits, LineDiscard};
use crate::session::context::Interrupted;
use crate::session::{SessionContext, SessionIo};

/// Buffers above this are given back after use (one big APPEND or FETCH must not pin its
/// memory for the rest of a long session).
const BUFFER_KEPT_BYTES_MAX: usize = 1024 * 1024;

/// What arrived from the client.
#[derive(Debug)]
pub(super) enum Incoming {
    Command(Command),
    /// The parser refused a command; `must_close` when its data is already on the way and
    /// cannot be told apart from the next command (an over-large `{n+}` literal).
    Refused {
        error: TaggedError,
        must_close: bool,
    },
}

/// The session's end of the connection.
#[derive(Debug)]
pub(super) struct Client<'a, C> {
    pub(super) io: &'a mut C,
    pub(super) session: &'a SessionContext,
    pub(super) options: ImapOptions,
    pub(super) input: Vec<u8>,
    pub(super) output: Vec<u8>,
    /// The data offset of the literal a continuation request was sent for: one per literal.
    continued_literal: Option<usize>,
    /// Parse again only once the input holds this many bytes (a literal is arriving).
    awaited_bytes: usize,
    consecutive_bad: u32,
}

impl<'a, C: SessionIo> Client<'a, C> {
    pub(super) fn new(io: &'a mut C, session: &'a SessionContext, options: ImapOptions) -> Self {
        Self {
            io,
            session,
            options,
            input: Vec::new(),
            output: Vec::new(),
            continued_literal: None,
            awaited_bytes: 0,
            consecutive_bad: 0,
        }
    }

    pub(super) fn engine(&self) -> &'a Engine {
        self.session.engine()
    }

    pub(super) fn limits(&self) -> Limits {
        *self.session.limits()
    }

    /// Reads more bytes, or says why the session ends (closed, idle, logged out, shut down).
    pub(super) async fn read_more(&mut self) -> Result<(), Interrupted> {
        self.session.read(self.io, &mut self.input).await.map(drop)
    }

    /// Sends everything written so far.
    pub(super) async fn flush(&mut self) -> Result<(), Interrupted> {
        if !self.output.is_empty() {
            self.session.write(self.io, &self.output).await?;
            self.output.clear();
        }
        if self.output.capacity() > BUFFER_KEPT_BYTES_MAX {
            self.output = Vec::new();
        }
        Ok(())
    }

    /// Reads the next command, sending continuation requests for synchronizing literals.
    pub(super) async fn read_command(&mut self) -> Result<Incoming, Interrupted> {
        let limits = self.limits();
        loop {
            if !self.input.is_empty() && self.input.len() >= self.awaited_bytes {
                match imap::parse_command(&self.input, &limits) {
                    Ok(Parsed::Complete { value, consumed_bytes }) => {
                        self.consume(consumed_bytes);
                        return Ok(Incoming::Command(value));
                    }
                    Ok(Parsed::NeedsMoreData) => self.awaited_bytes = self.input.len() + 1,
                    Ok(Parsed::NeedsLiteral(request)) => {
                        let size = usize::try_from(request.size).unwrap_or(usize::MAX);
                        self.awaited_bytes = request.data_offset.saturating_add(size).max(self.input.len() + 1);
                        if !request.non_synchronizing && self.continued_literal != Some(request.data_offset) {
                            self.continued_literal = Some(request.data_offset);
                            imap::write_continuation("Ready for literal data", &mut self.output);
                            self.flush().await?;
                        }
                    }
                    Err(rejected) => {
                        self.consume(rejected.consumed_bytes);
                        if !rejected.line_finished {
                            self.discard_line().await?;
                        }
                        let must_close =
                            matches!(rejected.error.error, ParseError::LiteralTooLarge { non_synchronizing: true, .. });
                        return Ok(Incoming::Refused { error: rejected.error, must_close });
                    }
                }
            }
            self.read_more().await?;
        }
    }

    /// Drops `count` bytes of parsed input and forgets the literal bookkeeping.
    fn consume(&mut self, count: usize) {
        self.input.drain(..count.min(self.input.len()));
        self.continued_literal = None;
        self.awaited_bytes = 0;
        if self.input.capacity() > BUFFER_KEPT_BYTES_MAX && self.input.len() < BUFFER_KEPT_BYTES_MAX / 16 {
            self.input.shrink_to(BUFFER_KEPT_BYTES_MAX / 16);
        }
    }

    /// Skips the rest of an over-long line. A "line" longer than the largest message is not
    /// a client talking IMAP: the session ends.
    pub(super) async fn discard_line(&mut self) -> Result<(), Interrupted> {
        let mut discarded = 0_usize;
        loop {
            match proto::discard_line(&self.input) {
                LineDiscard::Finished { consumed_bytes } => {
                    self.consume(consumed_bytes);
                    return Ok(());
                }
                LineDiscard::Unfinished { consumed_bytes } => {
                    self.consume(consumed_bytes);
                    discarded = discarded.saturating_add(consumed_bytes);
                    if discarded > self.limits().message_bytes_max {
                        let error = io::Error::new(io::ErrorKind::InvalidData, "a line without end");
                        return Err(Interrupted::Io(error));
                    }
                }
            }
            self.read_more().await?;
        }
    }

    /// Reads the client's answer to an AUTHENTICATE challenge.
    pub(super) async fn read_sasl_response(&mut self) -> Result<Result<SaslResponse, SaslError>, Interrupted> {
        let limits = self.limits();
        loop {
            match sasl::parse_response_line(&self.input, &limits) {
                Ok(proto::Parsed::Complete { value, consumed_bytes }) => {
                    self.consume(consumed_bytes);
                    return Ok(Ok(value));
                }
                Ok(proto::Parsed::NeedsMoreData) => {}
                Err(rejected) => {
                    self.consume(rejected.consumed_bytes);
                    if !rejected.line_finished {
                        self.discard_line().await?;
                    }
                    return Ok(Err(rejected.error));
                }
            }
            self.read_more().await?;
        }
    }

    /// Upgrades to TLS after the tagged OK has been sent. Bytes the client sent before the
    /// handshake are dropped (RFC 3501 §6.2.1: they could be an attacker's injected commands).
    pub(super) async fn start_tls(&mut self) -> Result<(), Interrupted> {
        self.flush().await?;
        self.input.clear();
        self.continued_literal = None;
        self.awaited_bytes = 0;
        self.io.start_tls().await.map_err(Interrupted::Io)
    }

    /// Writes an untagged status response.
    pub(super) fn untagged(&mut self, status: Status, code: Option<&ResponseCode>, text: &str) {
        imap::write_untagged(status, code, text, &mut self.output);
    }

    /// Writes the tagged response that ends a command, and counts BAD ones in a row.
    pub(super) fn complete(&mut self, tag: &Tag, completion: &Completion) {
        imap::write_tagged(tag, completion.status, completion.code.as_ref(), &completion.text, &mut self.output);
        self.count(completion.status);
    }

    /// Writes the reply to a command the parser refused.
    pub(super) fn refuse(&mut self, error: &TaggedError) {
        error.write_reply(&mut self.output);
        self.count(Status::Bad);
    }

    fn count(&mut self, status: Status) {
        if status == Status::Bad {
            self.consecutive_bad = self.consecutive_bad.saturating_add(1);
        } else {
            self.consecutive_bad = 0;
        }
    }

    /// Whether the client has sent too many bad commands in a row to keep talking to it.
    pub(super) fn is_babbling(&self) -> bool {
        self.consecutive_bad >= self.options.consecutive_bad_commands_max
    }
}
