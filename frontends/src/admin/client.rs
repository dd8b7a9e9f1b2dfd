//! The admin socket's client side, for the CLI: send one command, wait for its reply.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use zeroize::Zeroize;

use super::command::{AdminCommand, AdminReply};
use super::{LINE_BYTES_MAX, PAYLOAD_BYTES_MAX};

/// How long the server may take to answer (hashing a password takes a fraction of a second;
/// a busy engine may add more).
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// Sends `command` to the server listening on `socket` and returns its reply. A command that
/// waits for compaction is waited for as long as it takes (Ctrl-C leaves it running in the
/// server); any other times out after two minutes.
pub fn send(socket: &Path, command: &AdminCommand) -> std::io::Result<AdminReply> {
    let mut stream = UnixStream::connect(socket)?;
    let reply_timeout = (!command.waits_for_compaction()).then_some(REPLY_TIMEOUT);
    stream.set_read_timeout(reply_timeout)?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let mut request = serde_json::to_vec(command).map_err(std::io::Error::other)?;
    request.push(b'\n');
    let written = stream.write_all(&request).and_then(|()| stream.write_all(command.payload()));
    request.zeroize();
    written?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    (&mut reader).take(LINE_BYTES_MAX as u64).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        // A server stopped (or killed) while the command ran: what it did is unknown.
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without an answer (did it stop?); check what the command did",
        ));
    }
    let mut reply: AdminReply = serde_json::from_slice(&line).map_err(|error| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad reply from the admin socket: {error}"))
    })?;
    if reply.payload_bytes > PAYLOAD_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the admin socket announced a payload of {} bytes, more than a message can be",
                reply.payload_bytes
            ),
        ));
    }
    reply.payload = vec![0; reply.payload_bytes];
    reader.read_exact(&mut reply.payload)?;
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server killed while a command ran closes the connection without a reply: the error
    /// says so, instead of a JSON parser's "EOF while parsing" (seen by hand, session 26).
    #[test]
    fn a_server_that_closes_without_an_answer_is_named() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let socket = directory.path().join("admin.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            BufReader::new(&mut stream).read_until(b'\n', &mut request).expect("read the command");
            // Dropped here: closed without a reply.
        });
        let error = send(&socket, &AdminCommand::Compact).expect_err("no reply");
        server.join().expect("server thread");
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("closed the connection without an answer"), "{error}");
    }
}
