//! Every size and count the codecs enforce, as named constants and an overridable [`Limits`].

/// Longest LMTP command line, CRLF included. RFC 5321 §4.5.3.1.4 asks for at least 512 octets;
/// extension parameters (SIZE, BODY) and long addresses need more, so we allow what Postfix does.
pub const LMTP_LINE_BYTES_MAX: usize = 2048;
/// Longest POP3 command line, CRLF included. RFC 2449 caps commands at 255 octets; an AUTH
/// PLAIN initial response for long credentials needs more.
pub const POP3_LINE_BYTES_MAX: usize = 1024;
/// Longest IMAP command line between literals, CRLF included. RFC 7162 §4 recommends that
/// servers accept at least 8000 octets.
pub const IMAP_LINE_BYTES_MAX: usize = 8192;
/// Largest IMAP literal other than an APPEND message (user names, passwords, search strings).
pub const LITERAL_BYTES_MAX: usize = 64 * 1024;
/// Largest message accepted by LMTP DATA or IMAP APPEND.
pub const MESSAGE_BYTES_MAX: usize = 50 * 1024 * 1024;
/// Most LMTP recipients in one transaction (Postfix's `smtpd_recipient_limit`). The session
/// counts RCPT commands and enforces it; the codec only carries the number.
pub const RECIPIENTS_MAX: usize = 1000;
/// Deepest nesting of IMAP search keys (parentheses, NOT, OR), so that a hostile command cannot
/// exhaust the stack of the recursive parser.
pub const NESTING_DEPTH_MAX: usize = 32;
/// Longest SMTP path (`<local@domain>` without the brackets), RFC 5321 §4.5.3.1.3.
pub const PATH_BYTES_MAX: usize = 256;

/// The limits one codec enforces. Start from [`Limits::lmtp`], [`Limits::pop3`] or
/// [`Limits::imap`] and override fields as the configuration says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line, CRLF included (for IMAP: each line between literals).
    pub line_bytes_max: usize,
    /// Largest IMAP literal other than an APPEND message.
    pub literal_bytes_max: usize,
    /// Largest message (LMTP DATA body after unstuffing, IMAP APPEND literal).
    pub message_bytes_max: usize,
    /// Most LMTP recipients per transaction (enforced by the session).
    pub recipients_max: usize,
    /// Deepest nesting of IMAP search keys.
    pub nesting_depth_max: usize,
}

impl Limits {
    /// The defaults for LMTP.
    pub const fn lmtp() -> Self {
        Self { line_bytes_max: LMTP_LINE_BYTES_MAX, ..Self::common() }
    }

    /// The defaults for POP3.
    pub const fn pop3() -> Self {
        Self { line_bytes_max: POP3_LINE_BYTES_MAX, ..Self::common() }
    }

    /// The defaults for IMAP.
    pub const fn imap() -> Self {
        Self { line_bytes_max: IMAP_LINE_BYTES_MAX, ..Self::common() }
    }

    const fn common() -> Self {
        Self {
            line_bytes_max: IMAP_LINE_BYTES_MAX,
            literal_bytes_max: LITERAL_BYTES_MAX,
            message_bytes_max: MESSAGE_BYTES_MAX,
            recipients_max: RECIPIENTS_MAX,
            nesting_depth_max: NESTING_DEPTH_MAX,
        }
    }
}
