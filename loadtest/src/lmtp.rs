//! An LMTP client (RFC 2033): LHLO, STARTTLS, and one transaction per message, pipelined
//! (MAIL, RCPT, DATA in one write) when the server offers PIPELINING, as Postfix does.

use std::time::Duration;

use crate::connection::Connection;
use crate::endpoint::{Endpoint, Security};
use crate::error::ClientError;
use crate::tls::TlsSettings;

/// Longest reply line we accept.
const REPLY_LINE_BYTES_MAX: usize = 4096;
/// Most lines in one multi-line reply.
const REPLY_LINES_MAX: usize = 100;

/// A connected, greeted LMTP session.
#[derive(Debug)]
pub struct LmtpClient {
    connection: Connection,
    pipelining: bool,
    /// Whether MAIL may carry SIZE= (RFC 1870).
    size: bool,
    /// The dot-stuffed message being sent, kept for its allocation.
    data: Vec<u8>,
}

/// One reply: its code and its lines' text (after "250-" or "250 ").
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<Vec<u8>>,
}

impl LmtpClient {
    /// Connects, reads the greeting, says LHLO and, if the endpoint asks, STARTTLS.
    pub fn connect(
        endpoint: &Endpoint,
        tls: Option<&TlsSettings>,
        timeout: Duration,
        client_name: &str,
    ) -> Result<Self, ClientError> {
        let connection = Connection::open(endpoint, tls, timeout)?;
        let mut client = Self { connection, pipelining: false, size: false, data: Vec::new() };
        client.expect(220, "greeting")?;
        let lhlo = format!("LHLO {client_name}\r\n");
        let mut extensions = client.command(lhlo.as_bytes(), 250, "LHLO")?;
        if endpoint.security == Security::StartTls {
            if !extensions.lines.iter().any(|line| line.eq_ignore_ascii_case(b"STARTTLS")) {
                return Err(ClientError::NoStartTls("LMTP"));
            }
            client.command(b"STARTTLS\r\n", 220, "STARTTLS")?;
            client.connection.start_tls(tls)?;
            extensions = client.command(lhlo.as_bytes(), 250, "LHLO")?;
        }
        let offers = |name: &[u8]| {
            extensions
                .lines
                .iter()
                .any(|line| line.split(|byte| *byte == b' ').next().is_some_and(|word| word.eq_ignore_ascii_case(name)))
        };
        client.pipelining = offers(b"PIPELINING");
        client.size = offers(b"SIZE");
        Ok(client)
    }

    /// Delivers `message` (CRLF line endings, ending in CRLF) from `sender` to one recipient;
    /// returns once the server acknowledged it.
    pub fn deliver(&mut self, sender: &str, recipient: &str, message: &[u8]) -> Result<(), ClientError> {
        let mail = if self.size {
            format!("MAIL FROM:<{sender}> SIZE={}\r\n", message.len())
        } else {
            format!("MAIL FROM:<{sender}>\r\n")
        };
        let rcpt = format!("RCPT TO:<{recipient}>\r\n");
        if self.pipelining {
            let mut commands = Vec::with_capacity(mail.len() + rcpt.len() + 6);
            commands.extend_from_slice(mail.as_bytes());
            commands.extend_from_slice(rcpt.as_bytes());
            commands.extend_from_slice(b"DATA\r\n");
            self.connection.send(&commands)?;
            // Read all three replies before judging, so the session stays in step.
            let replies = [self.reply()?, self.reply()?, self.reply()?];
            for (reply, (code, name)) in replies.iter().zip([(250, "MAIL"), (250, "RCPT"), (354, "DATA")]) {
                if reply.code != code {
                    if name != "DATA" && replies[2].code == 354 {
                        // The server took DATA despite a refusal: end it empty.
                        self.connection.send(b".\r\n")?;
                        let _ = self.reply()?;
                    }
                    return Err(refused(name, reply));
                }
            }
        } else {
            self.command(mail.as_bytes(), 250, "MAIL")?;
            self.command(rcpt.as_bytes(), 250, "RCPT")?;
            self.command(b"DATA\r\n", 354, "DATA")?;
        }
        stuff(message, &mut self.data);
        let data = std::mem::take(&mut self.data);
        let sent = self.connection.send(&data);
        self.data = data;
        sent?;
        // One reply per accepted recipient: ours.
        let reply = self.reply()?;
        if reply.code == 250 { Ok(()) } else { Err(refused("end of DATA", &reply)) }
    }

    /// Says QUIT and closes (errors ignored: the work is done).
    pub fn quit(mut self) {
        if self.connection.send(b"QUIT\r\n").is_ok() {
            let _ = self.reply();
        }
    }

    fn command(&mut self, line: &[u8], code: u16, name: &'static str) -> Result<Reply, ClientError> {
        self.connection.send(line)?;
        self.expect(code, name)
    }

    fn expect(&mut self, code: u16, name: &'static str) -> Result<Reply, ClientError> {
        let reply = self.reply()?;
        if reply.code == code { Ok(reply) } else { Err(refused(name, &reply)) }
    }

    fn reply(&mut self) -> Result<Reply, ClientError> {
        let mut lines = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            self.connection.read_line(&mut line, REPLY_LINE_BYTES_MAX)?;
            let code = std::str::from_utf8(line.get(..3).unwrap_or_default())
                .ok()
                .and_then(|digits| digits.parse::<u16>().ok())
                .ok_or_else(|| ClientError::malformed("LMTP", &line))?;
            let text = line.get(4..).unwrap_or_default();
            lines.push(text.strip_suffix(b"\r\n").or_else(|| text.strip_suffix(b"\n")).unwrap_or(text).to_vec());
            if line.get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= REPLY_LINES_MAX {
                return Err(ClientError::malformed("LMTP", b"reply has too many lines"));
            }
        }
    }
}

fn refused(name: &'static str, reply: &Reply) -> ClientError {
    let mut text = reply.code.to_string().into_bytes();
    text.push(b' ');
    text.extend_from_slice(reply.lines.last().map_or(&[][..], Vec::as_slice));
    ClientError::refused("LMTP", name, &text)
}

/// `message` dot-stuffed (RFC 5321 §4.5.2) into `out`, with the final ".".
pub fn stuff(message: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(message.len() + message.len() / 512 + 8);
    let mut line_start = true;
    for chunk in message.split_inclusive(|byte| *byte == b'\n') {
        if line_start && chunk.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(chunk);
        line_start = chunk.last() == Some(&b'\n');
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffing_doubles_leading_dots_and_terminates() {
        let mut out = Vec::new();
        stuff(b".\r\nA\r\n..b\r\n", &mut out);
        assert_eq!(out, b"..\r\nA\r\n...b\r\n.\r\n");
        stuff(b"", &mut out);
        assert_eq!(out, b".\r\n");
    }
}
