//! POP3 replies: `+OK`/`-ERR` status lines with optional RFC 2449 response codes, dot-stuffed
//! multi-line bodies, listings, CAPA, SASL challenges, and the TOP cut of a message.

use std::fmt;

use crate::proto::{base64, dot_stuffing};

/// An RFC 2449 / RFC 3206 extended response code, sent in brackets after `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `[IN-USE]`: the maildrop is locked by another session.
    InUse,
    /// `[LOGIN-DELAY]`: the user logs in too often.
    LoginDelay,
    /// `[SYS/TEMP]`: a temporary failure of ours.
    SystemTemporary,
    /// `[SYS/PERM]`: a permanent failure of ours.
    SystemPermanent,
    /// `[AUTH]`: the credentials were wrong.
    Auth,
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::InUse => "IN-USE",
            Self::LoginDelay => "LOGIN-DELAY",
            Self::SystemTemporary => "SYS/TEMP",
            Self::SystemPermanent => "SYS/PERM",
            Self::Auth => "AUTH",
        })
    }
}

/// A one-line status reply. CR and LF in the text become spaces on output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `+OK` when true, `-ERR` when false.
    pub ok: bool,
    /// The extended response code, if any.
    pub code: Option<ResponseCode>,
    /// The human-readable text.
    pub text: String,
}

impl Reply {
    /// `+OK text`.
    pub fn ok(text: impl Into<String>) -> Self {
        Self { ok: true, code: None, text: text.into() }
    }

    /// `-ERR text`.
    pub fn error(text: impl Into<String>) -> Self {
        Self { ok: false, code: None, text: text.into() }
    }

    /// `-ERR [CODE] text`.
    pub fn error_with_code(code: ResponseCode, text: impl Into<String>) -> Self {
        Self { ok: false, code: Some(code), text: text.into() }
    }

    /// `+OK count size` for STAT.
    pub fn stat(message_count: usize, total_bytes: u64) -> Self {
        Self::ok(format!("{message_count} {total_bytes}"))
    }

    /// `+OK msg size` for LIST with an argument.
    pub fn scan_listing(message: u32, size_bytes: u64) -> Self {
        Self::ok(format!("{message} {size_bytes}"))
    }

    /// `+OK msg unique-id` for UIDL with an argument.
    pub fn unique_id_listing(message: u32, unique_id: &str) -> Self {
        Self::ok(format!("{message} {unique_id}"))
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.ok { b"+OK" } else { b"-ERR" });
        if let Some(code) = self.code {
            out.extend_from_slice(format!(" [{code}]").as_bytes());
        }
        if !self.text.is_empty() {
            out.push(b' ');
            write_text(&self.text, out);
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

fn write_text(text: &str, out: &mut Vec<u8>) {
    out.extend(text.bytes().map(|byte| if byte == b'\r' || byte == b'\n' { b' ' } else { byte }));
}

/// A capability announced by CAPA (RFC 2449 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capability {
    /// TOP is implemented.
    Top,
    /// USER/PASS login is allowed.
    User,
    /// UIDL is implemented.
    Uidl,
    /// The SASL mechanisms AUTH accepts.
    Sasl(Vec<String>),
    /// Extended response codes are used.
    ResponseCodes,
    /// The `[AUTH]` response code is used (RFC 3206).
    AuthResponseCode,
    /// Commands may be pipelined.
    Pipelining,
    /// STLS is offered.
    Stls,
    /// The server's name and version.
    Implementation(String),
}

impl fmt::Display for Capability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Top => formatter.write_str("TOP"),
            Self::User => formatter.write_str("USER"),
            Self::Uidl => formatter.write_str("UIDL"),
            Self::Sasl(mechanisms) => write!(formatter, "SASL {}", mechanisms.join(" ")),
            Self::ResponseCodes => formatter.write_str("RESP-CODES"),
            Self::AuthResponseCode => formatter.write_str("AUTH-RESP-CODE"),
            Self::Pipelining => formatter.write_str("PIPELINING"),
            Self::Stls => formatter.write_str("STLS"),
            Self::Implementation(name) => write!(formatter, "IMPLEMENTATION {name}"),
        }
    }
}

/// Appends `+OK status`, then `body` dot-stuffed and terminated by ".\r\n" (RETR, TOP).
pub fn write_multiline(status: &str, body: &[u8], out: &mut Vec<u8>) {
    Reply::ok(status).write_to(out);
    dot_stuffing::stuff(body, out);
}

/// Appends `+OK status` and one line per entry, then ".\r\n" (LIST, UIDL, CAPA without
/// arguments). Entries are written as given: the caller passes "msg size" or "msg uid".
pub fn write_listing<I, S>(status: &str, entries: I, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    Reply::ok(status).write_to(out);
    for entry in entries {
        let entry = entry.as_ref();
        if entry.starts_with('.') {
            out.push(b'.');
        }
        write_text(entry, out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// Appends the CAPA reply.
pub fn write_capabilities(capabilities: &[Capability], out: &mut Vec<u8>) {
    write_listing("Capability list follows", capabilities.iter().map(ToString::to_string), out);
}

/// Appends a SASL challenge line `+ base64` (RFC 5034 §4); PLAIN sends an empty one.
pub fn write_challenge(challenge: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(base64::encode(challenge).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The part of `message` that TOP sends: the header, the blank line, and the first
/// `body_lines` lines of the body (RFC 1939 §7). A message without a blank line is all header.
pub fn message_top(message: &[u8], body_lines: u32) -> &[u8] {
    let Some(header_end) = message.windows(4).position(|window| window == b"\r\n\r\n") else {
        return message;
    };
    let mut end = header_end + 4;
    for _ in 0..body_lines {
        match message.get(end..).and_then(|rest| rest.windows(2).position(|pair| pair == b"\r\n")) {
            Some(line_end) => end += line_end + 2,
            None => return message,
        }
    }
    message.get(..end).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(Reply::stat(2, 320).to_bytes(), b"+OK 2 320\r\n");
        assert_eq!(Reply::error("no such message").to_bytes(), b"-ERR no such message\r\n");
        assert_eq!(
            Reply::error_with_code(ResponseCode::InUse, "maildrop locked").to_bytes(),
            b"-ERR [IN-USE] maildrop locked\r\n"
        );
    }

    #[test]
    fn multiline_body_is_stuffed() {
        let mut out = Vec::new();
        write_multiline("120 octets", b"Subject: x\r\n\r\n.dot\r\n", &mut out);
        assert_eq!(out, b"+OK 120 octets\r\nSubject: x\r\n\r\n..dot\r\n.\r\n");
    }

    #[test]
    fn rfc2449_capa_example() {
        let mut out = Vec::new();
        write_capabilities(
            &[Capability::Top, Capability::User, Capability::Sasl(vec!["PLAIN".into()]), Capability::Uidl],
            &mut out,
        );
        assert_eq!(out, b"+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\n.\r\n");
    }

    #[test]
    fn top_cuts_after_body_lines() {
        let message = b"A: 1\r\nB: 2\r\n\r\nline1\r\nline2\r\nline3\r\n";
        assert_eq!(message_top(message, 0), b"A: 1\r\nB: 2\r\n\r\n");
        assert_eq!(message_top(message, 2), b"A: 1\r\nB: 2\r\n\r\nline1\r\nline2\r\n");
        assert_eq!(message_top(message, 9), message);
        assert_eq!(message_top(b"A: 1\r\n", 3), b"A: 1\r\n");
    }

    #[test]
    fn empty_challenge() {
        let mut out = Vec::new();
        write_challenge(b"", &mut out);
        assert_eq!(out, b"+ \r\n");
    }
}
