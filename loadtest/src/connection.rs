//! One client connection: TCP, TLS from the first byte or after STARTTLS, and a read buffer for
//! line-based protocols with literals.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use crate::endpoint::{Endpoint, Security};
use crate::error::ClientError;
use crate::tls::TlsSettings;

/// Bytes read from the socket at once.
const READ_CHUNK_BYTES: usize = 64 * 1024;

enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Only while switching to TLS.
    Switching,
}

/// A connected, buffered stream.
pub struct Connection {
    transport: Transport,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tls = matches!(self.transport, Transport::Tls(_));
        formatter
            .debug_struct("Connection")
            .field("tls", &tls)
            .field("buffered", &(self.end - self.start))
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects; with [`Security::Tls`] also completes the handshake. `tls` is needed unless
    /// the endpoint is plain.
    pub fn open(endpoint: &Endpoint, tls: Option<&TlsSettings>, timeout: Duration) -> Result<Self, ClientError> {
        let connect_error = |source| ClientError::Connect { address: endpoint.address.clone(), source };
        let stream = TcpStream::connect(&endpoint.address).map_err(connect_error)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut connection = Self {
            transport: Transport::Plain(stream),
            buffer: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
        };
        if endpoint.security == Security::Tls {
            connection.start_tls(tls)?;
        }
        Ok(connection)
    }

    /// Switches to TLS and completes the handshake. Anything the server sent after its
    /// STARTTLS reply and before the handshake could have been injected: refused.
    pub fn start_tls(&mut self, tls: Option<&TlsSettings>) -> Result<(), ClientError> {
        let tls = tls.ok_or_else(|| ClientError::Tls(rustls::Error::General("no TLS settings".to_owned())))?;
        if self.start != self.end {
            return Err(ClientError::malformed("tls", b"plaintext after the STARTTLS reply"));
        }
        let Transport::Plain(mut stream) = std::mem::replace(&mut self.transport, Transport::Switching) else {
            return Err(ClientError::Tls(rustls::Error::General("TLS already on".to_owned())));
        };
        let mut session = ClientConnection::new(tls.config.clone(), tls.server_name.clone())?;
        while session.is_handshaking() {
            session.complete_io(&mut stream)?;
        }
        self.transport = Transport::Tls(Box::new(StreamOwned::new(session, stream)));
        Ok(())
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// Sends all of `bytes` at once.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let writer: &mut dyn Write = match &mut self.transport {
            Transport::Plain(stream) => stream,
            Transport::Tls(stream) => stream.as_mut(),
            Transport::Switching => return Err(ClientError::Closed),
        };
        writer.write_all(bytes)?;
        writer.flush()?;
        Ok(())
    }

    /// Appends the next line, LF included, to `out`. Fails past `limit` bytes or at the end of
    /// the stream.
    pub fn read_line(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), ClientError> {
        let mut taken = 0;
        loop {
            let available = &self.buffer[self.start..self.end];
            if let Some(position) = available.iter().position(|byte| *byte == b'\n') {
                out.extend_from_slice(&available[..=position]);
                self.start += position + 1;
                return Ok(());
            }
            taken += available.len();
            if taken > limit {
                return Err(ClientError::TooLong(limit));
            }
            out.extend_from_slice(available);
            self.start = self.end;
            self.fill()?;
        }
    }

    /// Appends exactly `length` bytes to `out`.
    pub fn read_exact(&mut self, length: usize, out: &mut Vec<u8>) -> Result<(), ClientError> {
        let mut wanted = length;
        out.reserve(length);
        while wanted > 0 {
            if self.start == self.end {
                self.fill()?;
            }
            let take = wanted.min(self.end - self.start);
            out.extend_from_slice(&self.buffer[self.start..self.start + take]);
            self.start += take;
            wanted -= take;
        }
        Ok(())
    }

    /// Reads more into the (empty) buffer.
    fn fill(&mut self) -> Result<(), ClientError> {
        debug_assert_eq!(self.start, self.end);
        let reader: &mut dyn Read = match &mut self.transport {
            Transport::Plain(stream) => stream,
            Transport::Tls(stream) => stream.as_mut(),
            Transport::Switching => return Err(ClientError::Closed),
        };
        let count = loop {
            match reader.read(&mut self.buffer) {
                Ok(count) => break count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Err(ClientError::Closed),
                Err(error) => return Err(error.into()),
            }
        };
        if count == 0 {
            return Err(ClientError::Closed);
        }
        self.start = 0;
        self.end = count;
        Ok(())
    }
}
