//! The byte plumbing every line-based session shares: one input buffer the codecs parse from
//! the front, one output buffer of queued replies flushed before each read (so pipelined
//! commands get their replies in one write, RFC 2920 §3), and skipping over-long lines.

use crate::proto::{LineDiscard, discard_line};

use super::SessionIo;
use super::context::{Interrupted, SessionContext};

/// A session's connection and buffers.
#[derive(Debug)]
pub struct Exchange<'a, Io> {
    pub io: &'a mut Io,
    pub context: &'a SessionContext,
    /// Bytes read and not yet consumed by a parser.
    pub input: Vec<u8>,
    output: Vec<u8>,
    /// Inside the rest of a line that was too long: drop input until its CRLF.
    discarding: bool,
}

impl<'a, Io: SessionIo> Exchange<'a, Io> {
    pub fn new(io: &'a mut Io, context: &'a SessionContext) -> Self {
        Self { io, context, input: Vec::new(), output: Vec::new(), discarding: false }
    }

    /// The queued replies, to append to.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Sends the queued replies.
    pub async fn flush(&mut self) -> Result<(), Interrupted> {
        if self.output.is_empty() {
            return Ok(());
        }
        let output = std::mem::take(&mut self.output);
        self.context.write(self.io, &output).await
    }

    /// Flushes, then reads more input.
    pub async fn fill(&mut self) -> Result<(), Interrupted> {
        self.flush().await?;
        self.context.read(self.io, &mut self.input).await.map(drop)
    }

    /// Drops the first `count` input bytes.
    pub fn consume(&mut self, count: usize) {
        self.input.drain(..count.min(self.input.len()));
    }

    /// Starts skipping the rest of an over-long line (after a rejection with
    /// `line_finished: false`).
    pub fn discard_rest_of_line(&mut self) {
        self.discarding = true;
    }

    /// While skipping an over-long line: drops what belongs to it and says whether the line
    /// is over (parse again) or not (read more first).
    pub fn skip_discarded(&mut self) -> bool {
        if !self.discarding {
            return true;
        }
        match discard_line(&self.input) {
            LineDiscard::Finished { consumed_bytes } => {
                self.consume(consumed_bytes);
                self.discarding = false;
                true
            }
            LineDiscard::Unfinished { consumed_bytes } => {
                self.consume(consumed_bytes);
                false
            }
        }
    }

    /// Upgrades to TLS after the "go ahead" reply: flushes it, forgets any input that came
    /// before the handshake (RFC 3207 §4.2: it may have been injected in plaintext) and
    /// performs the handshake.
    pub async fn start_tls(&mut self) -> Result<(), Interrupted> {
        self.flush().await?;
        self.input.clear();
        self.discarding = false;
        self.io.start_tls().await.map_err(Interrupted::Io)
    }
}
