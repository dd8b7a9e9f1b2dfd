//! LMTP replies: a three-digit code, an optional enhanced status code (RFC 3463, advertised by
//! ENHANCEDSTATUSCODES, RFC 2034) and one or more text lines.

use std::fmt;

/// An enhanced status code `class.subject.detail`, e.g. `2.1.5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus {
    /// 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject (0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol,
    /// 6 content, 7 security).
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Builds a code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self { class, subject, detail }
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An extension advertised in the LHLO reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// RFC 2920: the client may send several commands without waiting.
    Pipelining,
    /// RFC 6152: 8-bit message bodies.
    EightBitMime,
    /// RFC 1870: the largest message accepted, in bytes.
    Size(u64),
    /// RFC 2034: replies carry enhanced status codes.
    EnhancedStatusCodes,
    /// RFC 3207: STARTTLS is offered.
    StartTls,
}

impl fmt::Display for Capability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pipelining => formatter.write_str("PIPELINING"),
            Self::EightBitMime => formatter.write_str("8BITMIME"),
            Self::Size(bytes) => write!(formatter, "SIZE {bytes}"),
            Self::EnhancedStatusCodes => formatter.write_str("ENHANCEDSTATUSCODES"),
            Self::StartTls => formatter.write_str("STARTTLS"),
        }
    }
}

/// One reply, possibly multi-line. Line text never contains CR or LF: they are replaced by
/// spaces on output, so text taken from a client cannot inject a reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code, repeated on every line (RFC 2034 §3).
    pub status: Option<EnhancedStatus>,
    /// The text lines; at least one is written (an empty one if none).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, status: Option<EnhancedStatus>, text: impl Into<String>) -> Self {
        debug_assert!((200..600).contains(&code), "reply codes are 2xx to 5xx");
        Self { code, status, lines: vec![text.into()] }
    }

    /// Adds a line.
    #[must_use]
    pub fn with_line(mut self, text: impl Into<String>) -> Self {
        self.lines.push(text.into());
        self
    }

    /// Appends the wire form to `out`: `250-first\r\n250 last\r\n`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let count = self.lines.len().max(1);
        for index in 0..count {
            let separator = if index + 1 == count { ' ' } else { '-' };
            let text = self.lines.get(index).map_or("", String::as_str);
            let line = match self.status {
                Some(status) => format!("{}{separator}{status} {text}", self.code),
                None => format!("{}{separator}{text}", self.code),
            };
            out.extend(line.bytes().map(|byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// 220 greeting on connect.
    pub fn service_ready(host: &str) -> Self {
        Self::new(220, None, format!("{host} LMTP ready"))
    }

    /// The LHLO reply: the host name, then one capability per line (RFC 2034 §3: no enhanced
    /// code in this reply).
    pub fn lhlo(host: &str, capabilities: &[Capability]) -> Self {
        let mut reply = Self::new(250, None, host);
        reply.lines.extend(capabilities.iter().map(ToString::to_string));
        reply
    }

    /// 250 2.0.0 with the given text (RSET, NOOP).
    pub fn ok(text: impl Into<String>) -> Self {
        Self::new(250, Some(EnhancedStatus::new(2, 0, 0)), text)
    }

    /// 250 2.1.0 for MAIL FROM.
    pub fn sender_ok() -> Self {
        Self::new(250, Some(EnhancedStatus::new(2, 1, 0)), "Sender OK")
    }

    /// 250 2.1.5 for RCPT TO.
    pub fn recipient_ok() -> Self {
        Self::new(250, Some(EnhancedStatus::new(2, 1, 5)), "Recipient OK")
    }

    /// 354 after DATA.
    pub fn start_data() -> Self {
        Self::new(354, None, "Start mail input; end with <CRLF>.<CRLF>")
    }

    /// 250 2.0.0 for one recipient once the message is stored.
    pub fn delivered(recipient: &str) -> Self {
        Self::ok(format!("<{recipient}> delivered"))
    }

    /// 252 for VRFY: we never disclose whether a mailbox exists.
    pub fn cannot_verify() -> Self {
        Self::new(
            252,
            Some(EnhancedStatus::new(2, 5, 0)),
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }

    /// 220 2.0.0 before the TLS handshake.
    pub fn ready_to_start_tls() -> Self {
        Self::new(220, Some(EnhancedStatus::new(2, 0, 0)), "Ready to start TLS")
    }

    /// 221 2.0.0 for QUIT.
    pub fn closing(host: &str) -> Self {
        Self::new(221, Some(EnhancedStatus::new(2, 0, 0)), format!("{host} closing connection"))
    }

    /// 503 5.5.1 for a command out of order (RCPT before MAIL, DATA without recipients...).
    pub fn bad_sequence() -> Self {
        Self::new(503, Some(EnhancedStatus::new(5, 5, 1)), "Bad sequence of commands")
    }

    /// 452 4.5.3 for a RCPT past `recipients_max`.
    pub fn too_many_recipients() -> Self {
        Self::new(452, Some(EnhancedStatus::new(4, 5, 3)), "Too many recipients")
    }

    /// 552 5.3.4 for a message past `message_bytes_max` (announced by SIZE or seen in DATA).
    pub fn message_too_large() -> Self {
        Self::new(552, Some(EnhancedStatus::new(5, 3, 4)), "Message size exceeds fixed maximum message size")
    }

    /// 550 5.1.1 for a recipient with no mailbox here.
    pub fn no_such_user() -> Self {
        Self::new(550, Some(EnhancedStatus::new(5, 1, 1)), "No such user here")
    }

    /// 550 5.2.1 for a recipient whose account is closed (RFC 3463: mailbox disabled, not
    /// accepting messages): permanent, so the MTA bounces instead of retrying.
    pub fn mailbox_disabled() -> Self {
        Self::new(550, Some(EnhancedStatus::new(5, 2, 1)), "Mailbox disabled, not accepting messages")
    }

    /// 452 4.3.1 when the store is out of disk space (RFC 5321's "insufficient system
    /// storage", RFC 3463's "mail system full"): temporary, so the MTA keeps the message
    /// queued and retries; the store takes deliveries again by itself once space is freed.
    pub fn insufficient_storage() -> Self {
        Self::new(452, Some(EnhancedStatus::new(4, 3, 1)), "Insufficient system storage, try again later")
    }

    /// 451 4.3.0 for a failure of ours that the client should retry.
    pub fn local_error() -> Self {
        Self::new(451, Some(EnhancedStatus::new(4, 3, 0)), "Local error in processing, try again later")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_lhlo() {
        let reply = Reply::lhlo(
            "mx.example.com",
            &[
                Capability::Pipelining,
                Capability::EightBitMime,
                Capability::Size(1000),
                Capability::EnhancedStatusCodes,
                Capability::StartTls,
            ],
        );
        assert_eq!(
            String::from_utf8(reply.to_bytes()).unwrap(),
            "250-mx.example.com\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1000\r\n\
             250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
        );
    }

    #[test]
    fn enhanced_code_on_every_line() {
        let reply = Reply::ok("first").with_line("second");
        assert_eq!(reply.to_bytes(), b"250-2.0.0 first\r\n250 2.0.0 second\r\n");
    }

    #[test]
    fn line_breaks_in_text_cannot_inject_lines() {
        let reply = Reply::new(550, None, "evil\r\n250 ok");
        assert_eq!(reply.to_bytes(), b"550 evil  250 ok\r\n");
    }

    #[test]
    fn empty_reply_still_has_a_line() {
        let reply = Reply { code: 250, status: None, lines: Vec::new() };
        assert_eq!(reply.to_bytes(), b"250 \r\n");
    }
}
