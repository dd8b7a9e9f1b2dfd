//! The admin socket's client side, for the CLI: send one command, wait for its reply.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use zeroize::Zeroize;

use super::REPLY_LINE_BYTES_MAX;
use super::command::{AdminCommand, AdminReply};
use super::wire::{Decoded, decode_reply, encode_request};

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
    let mut request = encode_request(command);
    let written = stream.write_all(&request);
    request.zeroize(); // it may carry a password
    if let Err(write_error) = written {
        // The server may have answered before it read the whole request (busy, a message over
        // the limit, too slow to send) and closed: its answer says why, a broken pipe does not.
        stream.set_read_timeout(Some(REFUSAL_READ_TIMEOUT))?;
        return read_reply(&mut stream).map_err(|_| write_error);
    }
    read_reply(&mut stream)
}

/// How long a client whose request could not be written looks for the server's refusal.
const REFUSAL_READ_TIMEOUT: Duration = Duration::from_secs(1);

fn read_reply(stream: &mut UnixStream) -> std::io::Result<AdminReply> {
    let mut received = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    // Decoded only once its line has ended (or grown too long): a long listing arrives in many
    // chunks, and looking at all of it after each one would take time squared in its length.
    let mut line_ended = false;
    loop {
        if line_ended || received.len() > REPLY_LINE_BYTES_MAX {
            let decoded =
                decode_reply(&received).map_err(|why| std::io::Error::new(std::io::ErrorKind::InvalidData, why))?;
            if let Decoded::Complete { value, .. } = decoded {
                return Ok(value);
            }
        }
        match stream.read(&mut chunk)? {
            // A server stopped (or killed) while the command ran: what it did is unknown.
            0 => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection without an answer (did it stop?); check what the command did",
                ));
            }
            read => {
                line_ended |= chunk[..read].contains(&b'\n');
                received.extend_from_slice(&chunk[..read]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A server on a fresh socket that answers one connection with `serve`.
    fn one_connection_server(
        serve: impl FnOnce(UnixStream) + Send + 'static,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::thread::JoinHandle<()>) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let socket = directory.path().join("admin.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let server = std::thread::spawn(move || serve(listener.accept().expect("accept").0));
        (directory, socket, server)
    }

    /// A server killed while a command ran closes the connection without a reply: the error
    /// says so, instead of a JSON parser's "EOF while parsing" (seen by hand, session 26).
    #[test]
    fn a_server_that_closes_without_an_answer_is_named() {
        let (_directory, socket, server) = one_connection_server(|mut stream| {
            let mut request = Vec::new();
            std::io::BufRead::read_until(&mut std::io::BufReader::new(&mut stream), b'\n', &mut request)
                .expect("read the command");
            // Dropped here: closed without a reply.
        });
        let error = send(&socket, &AdminCommand::Compact).expect_err("no reply");
        server.join().expect("server thread");
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(error.to_string().contains("closed the connection without an answer"), "{error}");
    }

    /// A server that refuses a command before reading it all (here a 16 MiB append) and
    /// closes: the client reports the server's answer, not the broken pipe it got writing.
    #[test]
    fn a_refusal_sent_before_the_request_was_read_is_what_the_client_reports() {
        let (_directory, socket, server) = one_connection_server(|mut stream| {
            let refusal = AdminReply::failed("16 admin commands are running: try again when one ends".to_owned());
            stream.write_all(&super::super::wire::encode_reply(&refusal)).expect("write the refusal");
            // Dropped here, the request unread.
        });
        let command = AdminCommand::append("a@example.org".into(), "INBOX".into(), vec![b'x'; 16 << 20]);
        let reply = send(&socket, &command).expect("the refusal, not a write error");
        server.join().expect("server thread");
        assert!(!reply.ok && reply.output.contains("16 admin commands are running"), "{}", reply.output);
    }
}
