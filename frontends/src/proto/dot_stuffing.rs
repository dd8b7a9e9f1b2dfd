//! Dot-stuffing of multi-line bodies (RFC 5321 §4.5.2, RFC 1939 §3): a line that starts with
//! '.' gets another '.', and the body ends with a line holding a single '.'. Only CRLF ends a
//! line, in both directions, so "\n.\r\n" is never a terminator (SMTP smuggling).

/// Appends `body` to `out` dot-stuffed and terminated by ".\r\n". A body that does not end with
/// CRLF gets one, because the terminator must start a line.
///
/// Only lines that start with '.' need a change, so the body is copied in runs between them,
/// found with one search for "\r\n." over the whole body: byte by byte (as before) this was a
/// third of the server's CPU while POP3 clients retrieved mail in the load test
/// (bench/README.md, session 20).
pub fn stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 5);
    if body.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut copied = 0;
    // The pattern cannot overlap itself, so every dot that starts a line is a match.
    for line_end in memchr::memmem::find_iter(body, b"\r\n.") {
        let dot = line_end + 2;
        out.extend_from_slice(&body[copied..dot]);
        out.push(b'.');
        copied = dot;
    }
    out.extend_from_slice(&body[copied..]);
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// Where the unstuffer is within the line structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a line.
    LineStart,
    /// A line started with '.', which is dropped whatever follows.
    Dot,
    /// A line started with ".\r": one "\n" more and the body is over.
    DotCarriageReturn,
    /// Inside a line.
    Middle,
    /// Inside a line, after a '\r' not yet written (it may start the terminator's CRLF).
    CarriageReturn,
    /// The terminator was consumed.
    Finished,
}

/// Progress of [`Unstuffer::decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Unstuffed {
    /// Every input byte was consumed and the terminator has not come yet.
    NeedsMoreData,
    /// The terminator ended within the input; bytes after `consumed_bytes` are the next command.
    Finished {
        /// Input bytes up to and including the terminator's final LF.
        consumed_bytes: usize,
    },
}

/// Streaming inverse of [`stuff`]: feed chunks as they arrive, get the body out. Keeps at most
/// `body_bytes_max` bytes of body but always reads on to the terminator, so that a session can
/// refuse an oversized message and still find the next command.
#[derive(Debug, Clone)]
pub struct Unstuffer {
    state: State,
    body_bytes: u64,
    body_bytes_max: u64,
}

impl Unstuffer {
    /// An unstuffer at the start of a body that keeps up to `body_bytes_max` bytes.
    pub fn new(body_bytes_max: usize) -> Self {
        Self { state: State::LineStart, body_bytes: 0, body_bytes_max: body_bytes_max as u64 }
    }

    /// Body bytes seen so far, including those past the limit that were not kept.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether the body has outgrown `body_bytes_max` (it is then no longer appended).
    pub fn exceeded(&self) -> bool {
        self.body_bytes > self.body_bytes_max
    }

    /// Decodes `input`, appending unstuffed body bytes to `body` (once the limit is exceeded,
    /// `body` is incomplete and should be dropped).
    pub fn decode(&mut self, input: &[u8], body: &mut Vec<u8>) -> Unstuffed {
        let mut position = 0;
        while let Some(rest) = input.get(position..).filter(|rest| !rest.is_empty()) {
            if self.state == State::Finished {
                return Unstuffed::Finished { consumed_bytes: position };
            }
            if self.state == State::Middle {
                // Fast path: copy the run of line content up to the next CR in one go.
                let run = memchr::memchr(b'\r', rest).unwrap_or(rest.len());
                self.emit(rest.get(..run).unwrap_or_default(), body);
                position += run;
                if run == rest.len() {
                    break;
                }
            }
            let Some(&byte) = input.get(position) else {
                break;
            };
            position += 1;
            self.step(byte, body);
        }
        if self.state == State::Finished {
            Unstuffed::Finished { consumed_bytes: position }
        } else {
            Unstuffed::NeedsMoreData
        }
    }

    fn step(&mut self, byte: u8, body: &mut Vec<u8>) {
        self.state = match (self.state, byte) {
            (State::LineStart, b'.') => State::Dot,
            (State::LineStart | State::Middle | State::Dot, b'\r') => {
                if self.state == State::Dot {
                    State::DotCarriageReturn
                } else {
                    State::CarriageReturn
                }
            }
            (State::DotCarriageReturn, b'\n') | (State::Finished, _) => State::Finished,
            (State::CarriageReturn, b'\n') => {
                self.emit(b"\r\n", body);
                State::LineStart
            }
            (State::CarriageReturn | State::DotCarriageReturn, b'\r') => {
                self.emit(b"\r", body);
                State::CarriageReturn
            }
            (State::CarriageReturn | State::DotCarriageReturn, other) => {
                self.emit(&[b'\r', other], body);
                State::Middle
            }
            (State::LineStart | State::Middle | State::Dot, other) => {
                self.emit(&[other], body);
                State::Middle
            }
        };
    }

    fn emit(&mut self, bytes: &[u8], body: &mut Vec<u8>) {
        self.body_bytes += bytes.len() as u64;
        if !self.exceeded() {
            body.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unstuff(input: &[u8]) -> (Vec<u8>, Unstuffed) {
        let mut body = Vec::new();
        let progress = Unstuffer::new(usize::MAX).decode(input, &mut body);
        (body, progress)
    }

    /// The definition, byte by byte: the oracle for [`stuff`], which copies runs.
    fn stuff_bytewise(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at_line_start = true;
        let mut previous_was_cr = false;
        for &byte in body {
            if at_line_start && byte == b'.' {
                out.push(b'.');
            }
            out.push(byte);
            at_line_start = previous_was_cr && byte == b'\n';
            previous_was_cr = byte == b'\r';
        }
        if !body.is_empty() && !body.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest::proptest! {
        /// Bodies of dots, line-ending bytes and a letter: every way a line can start and end.
        #[test]
        fn stuffing_in_runs_is_stuffing_byte_by_byte(
            body in proptest::collection::vec(proptest::sample::select(vec![b'.', b'\r', b'\n', b'a']), 0..64)
        ) {
            let mut out = Vec::new();
            stuff(&body, &mut out);
            proptest::prop_assert_eq!(out, stuff_bytewise(&body));
        }
    }

    #[test]
    fn stuffs_leading_dots_only() {
        let mut out = Vec::new();
        stuff(b".hidden\r\na.b\r\n..\r\n", &mut out);
        assert_eq!(out, b"..hidden\r\na.b\r\n...\r\n.\r\n");
    }

    #[test]
    fn adds_missing_final_crlf() {
        let mut out = Vec::new();
        stuff(b"no newline", &mut out);
        assert_eq!(out, b"no newline\r\n.\r\n");
        out.clear();
        stuff(b"", &mut out);
        assert_eq!(out, b".\r\n");
    }

    #[test]
    fn unstuffs_and_stops_at_terminator() {
        let (body, progress) = unstuff(b"..hidden\r\n.x\r\n.\r\nQUIT\r\n");
        assert_eq!(body, b".hidden\r\nx\r\n");
        assert_eq!(progress, Unstuffed::Finished { consumed_bytes: 17 });
    }

    #[test]
    fn bare_line_feeds_do_not_terminate() {
        let (body, progress) = unstuff(b"a\n.\r\nb\r\n.\n.\r\n");
        assert_eq!(body, b"a\n.\r\nb\r\n\n.\r\n");
        assert_eq!(progress, Unstuffed::NeedsMoreData);
    }

    #[test]
    fn empty_body() {
        assert_eq!(unstuff(b".\r\n"), (Vec::new(), Unstuffed::Finished { consumed_bytes: 3 }));
    }

    #[test]
    fn keeps_counting_past_the_limit() {
        let mut unstuffer = Unstuffer::new(4);
        let mut body = Vec::new();
        assert_eq!(unstuffer.decode(b"abcdef\r\n", &mut body), Unstuffed::NeedsMoreData);
        assert!(unstuffer.exceeded());
        assert_eq!(unstuffer.decode(b".\r\nNOOP", &mut body), Unstuffed::Finished { consumed_bytes: 3 });
        assert_eq!(unstuffer.body_bytes(), 8);
        assert!(body.len() <= 4, "nothing past the limit is kept");
    }
}
