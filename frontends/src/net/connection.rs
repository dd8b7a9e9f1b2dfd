//! A client connection: TCP, optionally wrapped in TLS (implicit, or upgraded in place by
//! STARTTLS/STLS). Implements [`SessionIo`]; reads are bounded per call, the handshake is
//! bounded in time.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::session::SessionIo;

/// Most bytes taken from the socket per read; also the most plaintext handed to a session per
/// `read_into` (a TLS record is at most 16 KiB of plaintext).
pub const READ_CHUNK_BYTES: usize = 16 * 1024;
/// How long a client may take to complete a TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Plaintext encrypted per TLS flush when writing, so rustls's buffers stay small.
const WRITE_CHUNK_BYTES: usize = 16 * 1024;
/// How long a goodbye (TLS `close_notify`) may take before the socket is closed anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The TLS side of a connection: rustls's state and ciphertext read but not yet consumed.
struct Tls {
    session: ServerConnection,
    incoming: Vec<u8>,
}

/// A socket read in progress: it owns a handle on the socket and its buffer, so that it can
/// outlive the `read_into` call that started it.
type PendingRead = Pin<Box<dyn Future<Output = io::Result<Vec<u8>>>>>;

/// A client connection.
///
/// Reads are cancel-safe: if a `read_into` future is dropped before it completes (a session
/// racing a read against a timer, as IMAP IDLE does), the socket read it started is kept and
/// the next `read_into` picks up its bytes; nothing is lost.
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    tls_config: Option<Arc<ServerConfig>>,
    tls: Option<Box<Tls>>,
    pending_read: Option<PendingRead>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Connection")
            .field("peer", &self.peer)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

fn tls_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl Connection {
    /// A plain connection; `tls_config` is what STARTTLS upgrades with (none: STARTTLS fails).
    pub fn new(stream: TcpStream, peer: SocketAddr, tls_config: Option<Arc<ServerConfig>>) -> Self {
        // Replies are small and interactive; don't let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        Self { stream, peer, tls_config, tls: None, pending_read: None }
    }

    /// Ends the connection: TLS `close_notify` (bounded in time), then the socket.
    pub async fn close(mut self) {
        // A read left pending by an interrupted session holds a handle on the socket, and
        // compio closes a socket only once every handle is gone: cancel it first.
        self.pending_read = None;
        if let Some(tls) = self.tls.as_mut() {
            tls.session.send_close_notify();
            let _ = compio::time::timeout(CLOSE_TIMEOUT, self.flush_tls()).await;
        }
        let _ = compio::time::timeout(CLOSE_TIMEOUT, self.stream.close()).await;
    }

    /// Reads up to [`READ_CHUNK_BYTES`] from the socket; empty at end of stream.
    async fn read_socket(&mut self) -> io::Result<Vec<u8>> {
        let stream = &self.stream;
        let pending = self.pending_read.get_or_insert_with(|| {
            let mut stream = stream.clone();
            Box::pin(async move {
                let BufResult(result, chunk) = stream.read(Vec::with_capacity(READ_CHUNK_BYTES)).await;
                result.map(|_| chunk)
            })
        });
        let result = pending.as_mut().await;
        self.pending_read = None;
        result
    }

    async fn write_socket(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let BufResult(result, _) = self.stream.write_all(bytes).await;
        result
    }

    /// Sends whatever TLS records rustls has ready (handshake messages, alerts, data).
    async fn flush_tls(&mut self) -> io::Result<()> {
        loop {
            let Some(tls) = self.tls.as_mut() else { return Ok(()) };
            if !tls.session.wants_write() {
                return Ok(());
            }
            let mut records = Vec::new();
            tls.session.write_tls(&mut records)?;
            self.write_socket(records).await?;
        }
    }

    /// Feeds buffered ciphertext to rustls. Records rustls wants to send in answer (a
    /// `KeyUpdate`, say) leave with the next write or handshake flush, never from a read, which
    /// keeps reads free of writes that a cancelled read could cut in half. On a protocol error
    /// the alert is sent before the error is returned.
    async fn process_incoming(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else { return Ok(()) };
        let mut processed = Ok(());
        while !tls.incoming.is_empty() && processed.is_ok() {
            let consumed = tls.session.read_tls(&mut tls.incoming.as_slice())?;
            tls.incoming.drain(..consumed);
            processed = tls.session.process_new_packets().map(drop);
            if consumed == 0 {
                // rustls holds as much plaintext as it will take; the caller drains it first.
                break;
            }
        }
        if let Err(error) = processed {
            let _ = self.flush_tls().await;
            return Err(tls_error(error));
        }
        Ok(())
    }

    async fn handshake(&mut self) -> io::Result<()> {
        self.process_incoming().await?;
        while self.tls.as_ref().is_some_and(|tls| tls.session.is_handshaking()) {
            self.flush_tls().await?;
            let chunk = self.read_socket().await?;
            if chunk.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "client closed during the TLS handshake"));
            }
            if let Some(tls) = self.tls.as_mut() {
                tls.incoming.extend_from_slice(&chunk);
            }
            self.process_incoming().await?;
        }
        self.flush_tls().await
    }

    async fn read_tls_into(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        loop {
            let Some(tls) = self.tls.as_mut() else { return Ok(0) };
            match take_plaintext(&mut tls.session, buffer) {
                // Zero here means the client sent close_notify.
                Ok(count) => return Ok(count),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error),
            }
            if tls.incoming.is_empty() {
                let chunk = self.read_socket().await?;
                if chunk.is_empty() {
                    // Closed without close_notify: a truncation attack cannot matter to a
                    // command protocol, whose commands are complete lines.
                    return Ok(0);
                }
                if let Some(tls) = self.tls.as_mut() {
                    tls.incoming.extend_from_slice(&chunk);
                }
            }
            self.process_incoming().await?;
        }
    }
}

/// Appends the plaintext `session` holds (rustls holds about 16 KiB at most) to `buffer`, a
/// record at a time; answers how many bytes, as `Read::read` would: 0 once the
/// client sent `close_notify`, `WouldBlock` when nothing is there yet, and an error that follows
/// data only at the next call. Reading through `Read` instead needs the room zero-filled first,
/// 16 KiB per call; end to end, dropping that did not show beyond the noise (bench/README.md,
/// session 21).
fn take_plaintext(session: &mut ServerConnection, buffer: &mut Vec<u8>) -> io::Result<usize> {
    let mut reader = session.reader();
    let mut taken = 0;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(_) if taken > 0 => break,
            Err(error) => return Err(error),
        };
        if chunk.is_empty() {
            break;
        }
        let length = chunk.len();
        buffer.extend_from_slice(chunk);
        reader.consume(length);
        taken += length;
    }
    Ok(taken)
}

impl SessionIo for Connection {
    async fn read_into(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        if self.tls.is_some() {
            return self.read_tls_into(buffer).await;
        }
        let chunk = self.read_socket().await?;
        buffer.extend_from_slice(&chunk);
        Ok(chunk.len())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.tls.is_none() {
            return self.write_socket(bytes.to_vec()).await;
        }
        for chunk in bytes.chunks(WRITE_CHUNK_BYTES) {
            if let Some(tls) = self.tls.as_mut() {
                tls.session.writer().write_all(chunk)?;
            }
            self.flush_tls().await?;
        }
        Ok(())
    }

    async fn start_tls(&mut self) -> io::Result<()> {
        if self.tls.is_some() {
            return Err(io::Error::other("the connection already uses TLS"));
        }
        let config = self.tls_config.clone().ok_or_else(|| io::Error::other("TLS is not configured"))?;
        let session = ServerConnection::new(config).map_err(tls_error)?;
        self.tls = Some(Box::new(Tls { session, incoming: Vec::new() }));
        match compio::time::timeout(TLS_HANDSHAKE_TIMEOUT, self.handshake()).await {
            Ok(result) => result,
            Err(_elapsed) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out")),
        }
    }

    fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn peer_address(&self) -> SocketAddr {
        self.peer
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::task::Poll;

    use super::*;

    /// A read whose future is dropped after the kernel completed it must not lose the bytes:
    /// IMAP IDLE drops pending reads whenever it has an update to write.
    #[test]
    fn a_dropped_read_loses_nothing() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let listener = compio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let client = std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(address).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                stream.write_all(b"hello\r\n").unwrap();
                std::thread::sleep(Duration::from_secs(1));
            });
            let (stream, peer) = listener.accept().await.unwrap();
            let mut connection = Connection::new(stream, peer, None);
            let mut buffer = Vec::new();
            {
                let mut read = std::pin::pin!(connection.read_into(&mut buffer));
                let first_poll = std::future::poll_fn(|context| Poll::Ready(read.as_mut().poll(context))).await;
                assert!(first_poll.is_pending());
                // Let the runtime submit the read, then block it while the bytes arrive, so the
                // kernel completes the read before anyone polls it again; then drop it.
                compio::time::sleep(Duration::from_millis(10)).await;
                std::thread::sleep(Duration::from_millis(300));
            }
            let count = compio::time::timeout(Duration::from_secs(5), connection.read_into(&mut buffer))
                .await
                .expect("the bytes of the dropped read are delivered")
                .unwrap();
            assert_eq!((count, buffer.as_slice()), (7, &b"hello\r\n"[..]));
            client.join().unwrap();
        });
    }

    /// A rustls client and this server's TLS configuration (a self-signed certificate), with
    /// the handshake done over in-memory buffers.
    fn handshaken_pair(directory: &std::path::Path) -> (rustls::ClientConnection, ServerConnection) {
        let source = crate::net::tls::CertificateSource::SelfSigned { directory: directory.to_path_buf() };
        let loaded = crate::net::tls::load(&source, &[]).unwrap();
        let pem = std::fs::read(&loaded.certificate_path).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(certificate.unwrap()).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(crate::net::tls::provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut server = ServerConnection::new(loaded.config).unwrap();
        let mut sent = Vec::new();
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                return (client, server);
            }
            while to_server(&mut client, &mut server, &mut sent) {}
            let mut bytes = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut bytes).unwrap();
            }
            client.read_tls(&mut bytes.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        panic!("the handshake did not finish in 10 rounds");
    }

    /// Lets the server decrypt what the client sent, at most about 8 KiB of it (the server
    /// holds at most 16 KiB of plaintext not yet taken); answers whether it moved anything.
    fn to_server(client: &mut rustls::ClientConnection, server: &mut ServerConnection, sent: &mut Vec<u8>) -> bool {
        while client.wants_write() {
            client.write_tls(sent).unwrap();
        }
        let mut unread = &sent[..sent.len().min(8 * 1024)];
        let moving = unread.len();
        while !unread.is_empty() {
            server.read_tls(&mut unread).unwrap();
            server.process_new_packets().unwrap();
        }
        sent.drain(..moving);
        moving > 0
    }

    /// Sends `data` in records of at most 5000 bytes (several per call), then, with
    /// `close_notify`, the alert; answers what `take_plaintext` gave in each call until it
    /// gave 0 or failed, and how it ended.
    fn taken_in_calls(data: &[u8], close_notify: bool) -> (Vec<u8>, Vec<usize>, io::Result<usize>) {
        let directory = tempfile::tempdir().unwrap();
        let (mut client, mut server) = handshaken_pair(directory.path());
        let mut buffer = b"kept: ".to_vec();
        let nothing_yet = take_plaintext(&mut server, &mut buffer).map_err(|error| error.kind());
        assert_eq!(nothing_yet, Err(io::ErrorKind::WouldBlock), "before any data");
        assert_eq!(buffer, b"kept: ", "nothing appended while there is nothing");
        client.set_buffer_limit(None);
        for piece in data.chunks(5000) {
            client.writer().write_all(piece).unwrap();
        }
        if close_notify {
            client.send_close_notify();
        }
        let mut calls = Vec::new();
        let mut sent = Vec::new();
        for _ in 0..1000 {
            let moved = to_server(&mut client, &mut server, &mut sent);
            if !moved && !close_notify && calls.iter().sum::<usize>() == data.len() {
                // The TCP connection ends without the alert.
                server.read_tls(&mut [].as_slice()).unwrap();
                server.process_new_packets().unwrap();
            }
            match take_plaintext(&mut server, &mut buffer) {
                Ok(0) => return (buffer, calls, Ok(0)),
                Ok(count) => calls.push(count),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return (buffer, calls, Err(error)),
            }
        }
        panic!("no end after 1000 calls");
    }

    fn pattern(length: usize) -> Vec<u8> {
        (0..length).map(|index| (index % 251) as u8).collect()
    }

    #[test]
    fn tls_plaintext_is_appended_whole_and_in_order_then_close_notify_reads_as_zero() {
        let data = pattern(100 * 1024);
        let (buffer, calls, end) = taken_in_calls(&data, true);
        assert_eq!(end.unwrap(), 0, "close_notify ends the stream");
        assert_eq!(&buffer[..6], b"kept: ", "appended after what the buffer held");
        assert!(buffer[6..] == data[..], "every byte, in order");
        assert_eq!(calls.iter().sum::<usize>(), data.len());
        assert!(calls.iter().any(|&count| count > 5000), "a call takes several records: {calls:?}");
    }

    #[test]
    fn tls_data_before_an_unclean_close_comes_first_and_the_close_after() {
        let data = pattern(30 * 1024);
        let (buffer, calls, end) = taken_in_calls(&data, false);
        assert_eq!(end.map_err(|error| error.kind()), Err(io::ErrorKind::UnexpectedEof));
        assert!(buffer[6..] == data[..], "the data came before the error");
        assert_eq!(calls.iter().sum::<usize>(), data.len());
    }
}
