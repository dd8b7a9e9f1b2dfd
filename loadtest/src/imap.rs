//! An `IMAP4rev1` client, just enough to read a mailbox back: STARTTLS, LOGIN, EXAMINE,
//! UID SEARCH ALL, and UID FETCH BODY.PEEK[] one message at a time (as a mail client opens them)
//! or many in one command (as a client syncing a mailbox for offline use fetches them).

use std::time::Duration;

use crate::connection::Connection;
use crate::endpoint::{Endpoint, Security};
use crate::error::ClientError;
use crate::tls::TlsSettings;

/// Longest response line between literals (a SEARCH of a large mailbox is one long line).
const LINE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest literal we read.
const LITERAL_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A connected IMAP session.
#[derive(Debug)]
pub struct ImapClient {
    connection: Connection,
    next_tag: u32,
}

/// One response: its lines joined (literal markers kept, CRLFs removed) and its literals.
#[derive(Debug, Default)]
struct Response {
    text: Vec<u8>,
    literals: Vec<Vec<u8>>,
}

impl ImapClient {
    /// Connects, reads the greeting and, if the endpoint asks, says STARTTLS.
    pub fn connect(endpoint: &Endpoint, tls: Option<&TlsSettings>, timeout: Duration) -> Result<Self, ClientError> {
        let connection = Connection::open(endpoint, tls, timeout)?;
        let mut client = Self { connection, next_tag: 1 };
        let greeting = client.response()?;
        if !greeting.text.starts_with(b"* OK") && !greeting.text.starts_with(b"* PREAUTH") {
            return Err(ClientError::refused("IMAP", "greeting", &greeting.text));
        }
        if endpoint.security == Security::StartTls {
            client.command("STARTTLS", "STARTTLS")?;
            client.connection.start_tls(tls)?;
        }
        Ok(client)
    }

    /// LOGIN with quoted credentials.
    pub fn login(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        let command = format!("LOGIN {} {}", quoted(user)?, quoted(password)?);
        self.command(&command, "LOGIN").map(drop)
    }

    /// EXAMINE (read-only SELECT) `mailbox`.
    pub fn examine(&mut self, mailbox: &str) -> Result<(), ClientError> {
        let command = format!("EXAMINE {}", quoted(mailbox)?);
        self.command(&command, "EXAMINE").map(drop)
    }

    /// Every uid in the selected mailbox.
    pub fn uid_search_all(&mut self) -> Result<Vec<u32>, ClientError> {
        let mut uids = Vec::new();
        for response in self.command("UID SEARCH ALL", "SEARCH")? {
            if let Some(rest) = response.text.strip_prefix(b"* SEARCH") {
                for word in rest.split(|byte| *byte == b' ').filter(|word| !word.is_empty()) {
                    let uid = std::str::from_utf8(word).ok().and_then(|word| word.parse().ok());
                    uids.push(uid.ok_or_else(|| ClientError::malformed("IMAP", &response.text))?);
                }
            }
        }
        Ok(uids)
    }

    /// The whole message `uid` (BODY.PEEK[], so no \Seen flag is set).
    pub fn fetch_body(&mut self, uid: u32) -> Result<Vec<u8>, ClientError> {
        let responses = self.command(&format!("UID FETCH {uid} BODY.PEEK[]"), "FETCH")?;
        for mut response in responses {
            let is_fetch = response.text.windows(7).any(|window| window.eq_ignore_ascii_case(b" FETCH "));
            if is_fetch && contains_ignore_case(&response.text, b"BODY[]") && !response.literals.is_empty() {
                let uid_text = format!("UID {uid}");
                if !contains_ignore_case(&response.text, uid_text.as_bytes()) {
                    continue; // an unsolicited FETCH for another message
                }
                return Ok(response.literals.swap_remove(0));
            }
        }
        Err(ClientError::malformed("IMAP", format!("no BODY[] for uid {uid}").as_bytes()))
    }

    /// The whole messages `uids` (BODY.PEEK[]) in one command, as `(uid, body)` in the order
    /// the server sent them.
    pub fn fetch_bodies(&mut self, uids: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, ClientError> {
        let set: Vec<String> = uids.iter().map(u32::to_string).collect();
        let responses = self.command(&format!("UID FETCH {} BODY.PEEK[]", set.join(",")), "FETCH")?;
        let mut bodies = Vec::with_capacity(uids.len());
        for mut response in responses {
            let is_fetch = response.text.windows(7).any(|window| window.eq_ignore_ascii_case(b" FETCH "));
            if !is_fetch || !contains_ignore_case(&response.text, b"BODY[]") || response.literals.is_empty() {
                continue; // flags of another message, or an unsolicited update
            }
            let uid = uid_of(&response.text).ok_or_else(|| ClientError::malformed("IMAP", &response.text))?;
            bodies.push((uid, response.literals.swap_remove(0)));
        }
        Ok(bodies)
    }

    /// LOGOUT, errors ignored.
    pub fn logout(mut self) {
        let _ = self.command("LOGOUT", "LOGOUT");
    }

    /// Sends `command` under a new tag; returns the untagged responses once it completed OK.
    fn command(&mut self, command: &str, name: &'static str) -> Result<Vec<Response>, ClientError> {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        self.connection.send(format!("{tag} {command}\r\n").as_bytes())?;
        let mut untagged = Vec::new();
        loop {
            let response = self.response()?;
            if let Some(status) = response.text.strip_prefix(tag.as_bytes()).and_then(|rest| rest.strip_prefix(b" ")) {
                if status.len() >= 2 && status[..2].eq_ignore_ascii_case(b"OK") {
                    return Ok(untagged);
                }
                return Err(ClientError::refused("IMAP", name, &response.text));
            }
            if response.text.starts_with(b"* BYE") && name != "LOGOUT" {
                return Err(ClientError::refused("IMAP", name, &response.text));
            }
            untagged.push(response);
        }
    }

    /// Reads one response: a line, and while it ends in a literal `{n}`, the literal and the
    /// line that goes on after it.
    fn response(&mut self) -> Result<Response, ClientError> {
        let mut response = Response::default();
        loop {
            let start = response.text.len();
            self.connection.read_line(&mut response.text, LINE_BYTES_MAX)?;
            let mut end = response.text.len();
            while end > start && matches!(response.text[end - 1], b'\r' | b'\n') {
                end -= 1;
            }
            response.text.truncate(end);
            let Some(length) = literal_length(&response.text[start..]) else {
                return Ok(response);
            };
            if length > LITERAL_BYTES_MAX {
                return Err(ClientError::TooLong(LITERAL_BYTES_MAX));
            }
            let mut literal = Vec::new();
            self.connection.read_exact(length, &mut literal)?;
            response.literals.push(literal);
        }
    }
}

/// The length of the literal announced at the end of `line` (`{123}` or `{123+}`), if any.
fn literal_length(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|byte| *byte == b'{')?;
    let digits = &inner[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The number after `UID ` in a FETCH response.
fn uid_of(text: &[u8]) -> Option<u32> {
    let at = text.windows(4).position(|window| window.eq_ignore_ascii_case(b"UID "))?;
    let digits: Vec<u8> = text[at + 4..].iter().copied().take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}

/// `text` as an IMAP quoted string.
fn quoted(text: &str) -> Result<String, ClientError> {
    if text.bytes().any(|byte| byte == b'\r' || byte == b'\n' || byte == 0) {
        return Err(ClientError::malformed("IMAP", b"credential with CR, LF or NUL"));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for character in text.chars() {
        if character == '"' || character == '\\' {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_lengths_and_quoting() {
        assert_eq!(literal_length(b"* 1 FETCH (UID 4 BODY[] {1234}"), Some(1234));
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {12+}"), Some(12));
        assert_eq!(literal_length(b"* 1 FETCH (UID 4)"), None);
        assert_eq!(literal_length(b"* OK {x}"), None);
        assert_eq!(quoted("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quoted("a\r\n").is_err());
        assert_eq!(uid_of(b"* 3 FETCH (UID 41 BODY[] {12})"), Some(41));
        assert_eq!(uid_of(b"* 3 FETCH (BODY[] {12} uid 7)"), Some(7));
        assert_eq!(uid_of(b"* 3 FETCH (BODY[] {12})"), None);
    }
}
