//! A POP3 client (RFC 1939, STLS from RFC 2595): USER/PASS, STAT, RETR with dot-unstuffing.

use std::time::Duration;

use crate::connection::Connection;
use crate::endpoint::{Endpoint, Security};
use crate::error::ClientError;
use crate::tls::TlsSettings;

/// Longest status line we accept.
const STATUS_LINE_BYTES_MAX: usize = 4096;
/// Longest line inside a message: RFC 5322 allows 998 octets, real mail sometimes has more.
const MESSAGE_LINE_BYTES_MAX: usize = 1024 * 1024;
/// Largest message we read back.
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A connected POP3 session.
#[derive(Debug)]
pub struct Pop3Client {
    connection: Connection,
    line: Vec<u8>,
}

impl Pop3Client {
    /// Connects, reads the greeting and, if the endpoint asks, says STLS.
    pub fn connect(endpoint: &Endpoint, tls: Option<&TlsSettings>, timeout: Duration) -> Result<Self, ClientError> {
        let connection = Connection::open(endpoint, tls, timeout)?;
        let mut client = Self { connection, line: Vec::new() };
        client.status("greeting")?;
        if endpoint.security == Security::StartTls {
            client.command(b"STLS\r\n", "STLS")?;
            client.connection.start_tls(tls)?;
        }
        Ok(client)
    }

    /// USER and PASS.
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        self.command(format!("USER {user}\r\n").as_bytes(), "USER")?;
        self.command(format!("PASS {password}\r\n").as_bytes(), "PASS")?;
        Ok(())
    }

    /// The number of messages in the maildrop.
    pub fn stat(&mut self) -> Result<u32, ClientError> {
        self.command(b"STAT\r\n", "STAT")?;
        let text = String::from_utf8_lossy(&self.line);
        text.split_ascii_whitespace()
            .nth(1)
            .and_then(|count| count.parse().ok())
            .ok_or_else(|| ClientError::malformed("POP3", &self.line))
    }

    /// Message `number` (1-based), unstuffed, into `out` (cleared first).
    pub fn retr(&mut self, number: u32, out: &mut Vec<u8>) -> Result<(), ClientError> {
        self.command(format!("RETR {number}\r\n").as_bytes(), "RETR")?;
        out.clear();
        loop {
            let start = out.len();
            self.connection.read_line(out, MESSAGE_LINE_BYTES_MAX)?;
            let line = &out[start..];
            if line == b".\r\n" || line == b".\n" {
                out.truncate(start);
                return Ok(());
            }
            if line.first() == Some(&b'.') {
                out.remove(start);
            }
            if out.len() > MESSAGE_BYTES_MAX {
                return Err(ClientError::TooLong(MESSAGE_BYTES_MAX));
            }
        }
    }

    /// Says QUIT (nothing was marked deleted, so nothing is removed).
    pub fn quit(mut self) {
        let _ = self.command(b"QUIT\r\n", "QUIT");
    }

    fn command(&mut self, line: &[u8], name: &'static str) -> Result<(), ClientError> {
        self.connection.send(line)?;
        self.status(name)
    }

    /// Reads a status line into `self.line`; `-ERR` is an error.
    fn status(&mut self, name: &'static str) -> Result<(), ClientError> {
        self.line.clear();
        self.connection.read_line(&mut self.line, STATUS_LINE_BYTES_MAX)?;
        if self.line.starts_with(b"+OK") {
            Ok(())
        } else if self.line.starts_with(b"-ERR") {
            Err(ClientError::refused("POP3", name, &self.line))
        } else {
            Err(ClientError::malformed("POP3", &self.line))
        }
    }
}
